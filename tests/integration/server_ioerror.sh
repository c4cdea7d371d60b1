#!/usr/bin/env bash
# A copy-out that fails (the origin shrinks under the server, so reading the
# chunk fails): the server discards the open transaction, fails that origin
# write with EIO (the client must not write), stays up, and serves the same
# write once the origin is readable again; `csnap check` is clean.
# san: yes
set -u
src=${CSNAP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CSNAP_BUILD:-$src/build}
. "$src/tests/cluster/lib.sh"
C=$build/csnap
PC=$build/tools/proto_client
fail() { echo "FAIL: $*"; for f in "$CLUSTER_DIR"/node*/server*.log; do [ -f "$f" ] && { echo "--- $f"; tail -25 "$f"; }; done; exit 1; }

cluster_start 1 64M
tr '\0' 'A' </dev/zero | head -c 64M >"$CLUSTER_ORIGIN"
"$C" mkstore --chunk-size 64K "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || fail "mkstore"
"$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null || fail "lease init"
pc() { node_run 1 "$PC" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" "$@"; }
cs() { node_run 1 "$C" "$@"; }

node_spawn 1 server "$C" server --grace-ms 0 s >/dev/null
wait_log 1 server 'master for store' 60 || fail "no master"
cs snapshot create s s1 >/dev/null || fail "create s1"
pc owrite 3 1 0x42 >/dev/null || fail "first write"

truncate -s 32M "$CLUSTER_ORIGIN"          # chunks 512.. can no longer be read
out=$(pc owrite 600 2 0x43 2>&1) && fail "origin write succeeded although its copy-out failed"
echo "$out" | grep -q 'copy-out to the snapshot store failed' || fail "unexpected error: $out"
wait_log 1 server 'discarding the open transaction' 10 || fail "abort not logged"
truncate -s 64M "$CLUSTER_ORIGIN"          # readable again (zeros now)

pc owrite 600 2 0x43 >/dev/null || fail "write after the origin came back"
pc sread s1 600 2 | grep -c ' 0x00 at store$' | grep -q '^2$' || fail "s1 chunks 600-601 after retry: $(pc sread s1 600 2)"
pc sread s1 3 1 | grep -q '^chunk 3 0x41 at store$' || fail "s1 chunk 3 lost in the abort"
pc owrite 4 1 0x44 >/dev/null || fail "server unusable after the abort"
pc sread s1 4 1 | grep -q '^chunk 4 0x41 at store$' || fail "s1 chunk 4"

node_kill_procs 1 TERM
wait_log 1 server 'orderly hand-over done' 30 || fail "no orderly stop"
if grep -l -E 'Sanitizer|runtime error' "$CLUSTER_DIR"/node*/*.log; then fail "sanitizer report in a log"; fi
"$C" check "$CLUSTER_STORE" || fail "csnap check"
echo "PASS"
