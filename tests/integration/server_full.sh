#!/usr/bin/env bash
# Store-full policy, real server on real sanlock (tests/cluster/lib.sh), a
# store with only 9 data chunks.  Checks: with the default policy a full
# store releases the lowest-priority unused snapshot (oldest first), logs it
# loudly, and the origin write then succeeds; a snapshot in use (use count)
# is never released; with `--store-full fail` the origin write gets ENOSPC
# and every snapshot keeps its data; `csnap check` is clean.
# san: yes
set -u
src=${CSNAP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CSNAP_BUILD:-$src/build}
. "$src/tests/cluster/lib.sh"
C=$build/csnap
PC=$build/tools/proto_client
fail() { echo "FAIL: $*"; for f in "$CLUSTER_DIR"/node*/server*.log; do echo "--- $f"; tail -25 "$f"; done; exit 1; }

cluster_start 1 64M
truncate -s 0 "$CLUSTER_STORE"; truncate -s 5M "$CLUSTER_STORE"
tr '\0' 'A' </dev/zero | head -c 64M >"$CLUSTER_ORIGIN"
"$C" mkstore --chunk-size 64K "$CLUSTER_STORE" "$CLUSTER_ORIGIN" | grep -q ' 9 data chunks' || fail "mkstore (expected 9 data chunks)"
"$PC" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" leaseinit "$CLUSTER_IO_TIMEOUT" >/dev/null || fail "lease init"
pc() { node_run 1 "$PC" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" "$@"; }
cs() { node_run 1 "$C" "$@"; }
names() { cs snapshot list s --json | sed -n 's/.*"name": "\([^"]*\)".*/\1/p' | tr '\n' ' '; }

node_spawn 1 server "$C" server --grace-ms 0 s >/dev/null
wait_log 1 server 'master for store' 60 || fail "no master"

# a: priority 0, oldest; b: priority 0, newer; keep: priority 9; pinned:
# priority -5 but in use.
cs snapshot create s a --priority 0 >/dev/null || fail "create a"
pc owrite 0 4 0x61 >/dev/null || fail "write 0-3"        # 4 chunks, shared by a
cs snapshot create s b --priority 0 >/dev/null || fail "create b"
cs snapshot create s keep --priority 9 >/dev/null || fail "create keep"
cs snapshot create s pinned --priority -5 >/dev/null || fail "create pinned"
cs snapshot set s pinned --use >/dev/null || fail "use pinned"
pc owrite 4 4 0x62 >/dev/null || fail "write 4-7"        # 4 more: 8 of 9 used
pc owrite 8 1 0x63 >/dev/null || fail "write 8"          # 9 of 9
# The store is full now.  The next copy-out must release "a" (lowest
# priority among unused, oldest), not pinned (in use) nor b (newer).
pc owrite 9 1 0x64 >/dev/null || fail "write 9 on a full store (release policy)"
wait_log 1 server 'SNAPSHOT STORE FULL: releasing snapshot a ' 10 || fail "release not logged loudly"
[ "$(names)" = "b keep pinned " ] || fail "after release: [$(names)]"
pc sread keep 4 1 | grep -q '^chunk 4 0x41 at store$' || fail "keep lost chunk 4"
pc sread keep 9 1 | grep -q '^chunk 9 0x41 at store$' || fail "keep chunk 9 not copied"

# Policy "fail": restart the server with it, fill up, expect ENOSPC.
node_kill_procs 1 TERM
wait_log 1 server 'orderly hand-over done' 30 || fail "no orderly stop"
node_spawn 1 server2 "$C" server --grace-ms 0 --store-full fail s >/dev/null
wait_log 1 server2 'master for store' 60 || fail "no master after restart"
n=10; got=""
while [ $n -lt 40 ]; do
  if ! out=$(pc owrite $n 1 0x65 2>&1); then got=$out; break; fi
  n=$((n + 1))
done
echo "$got" | grep -q 'snapshot store is full' || fail "expected ENOSPC, got: [$got] after chunk $n"
wait_log 1 server2 'store full: failing the write with ENOSPC' 10 || fail "ENOSPC not logged"
[ "$(names)" = "b keep pinned " ] || fail "policy fail released a snapshot: [$(names)]"
pc sread keep $n 1 | grep -q "^chunk $n 0x41 at origin$" || fail "refused chunk $n must be untouched on the origin"
pc sread keep 4 1 | grep -q '^chunk 4 0x41 at store$' || fail "keep lost chunk 4"

node_kill_procs 1 TERM
wait_log 1 server2 'orderly hand-over done' 30 || fail "no orderly stop"
"$C" check "$CLUSTER_STORE" || fail "csnap check"
echo "PASS"
