#!/usr/bin/env bash
# Store-full policy, real server on real sanlock (tests/cluster/lib.sh), a
# store with only a few data chunks (D).  Checks: with the default policy a full
# store releases the lowest-priority unused snapshot (oldest first), logs it
# loudly, and the origin write then succeeds; a snapshot in use (use count)
# is never released; with `--store-full fail` the origin write gets ENOSPC
# and every snapshot keeps its data; `csnap check` is clean.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 1 64M
truncate -s 0 "$CLUSTER_STORE"; truncate -s 6M "$CLUSTER_STORE"
origin_fill A 64M
store_init
D=$(sed -n 's/.*, \([0-9]*\) data chunks.*/\1/p' "$CLUSTER_DIR/mkstore.out")
[ -n "$D" ] && [ "$D" -ge 6 ] && [ "$D" -le 200 ] || fail "mkstore: unexpected data chunk count [$D]"
A=$((D / 2))
echo "store of $D data chunks"
names() { cs 1 snapshot list s --json | sed -n 's/.*"name": "\([^"]*\)".*/\1/p' | tr '\n' ' '; }

start_master 1 --grace-ms 0

# a: priority 0, oldest; b: priority 0, newer; keep: priority 9; pinned:
# priority -5 but in use.
cs 1 snapshot create s a --priority 0 >/dev/null || fail "create a"
pc 1 owrite 0 "$A" 0x61 >/dev/null || fail "write 0..A-1"    # A chunks, only a
cs 1 snapshot create s b --priority 0 >/dev/null || fail "create b"
cs 1 snapshot create s keep --priority 9 >/dev/null || fail "create keep"
cs 1 snapshot create s pinned --priority -5 >/dev/null || fail "create pinned"
cs 1 snapshot set s pinned --use >/dev/null || fail "use pinned"
pc 1 owrite "$A" $((D - A)) 0x62 >/dev/null || fail "write A..D-1"   # the store is full now
cs 1 status s --json | grep -q '"free_chunks": 0,' || fail "store should be full: $(cs 1 status s --json | head -2)"
# The next copy-out must release "a" (lowest priority among unused, oldest),
# not pinned (in use) nor b (newer).
pc 1 owrite "$D" 1 0x64 >/dev/null || fail "write on a full store (release policy)"
wait_log 1 server 'SNAPSHOT STORE FULL: releasing snapshot a ' 10 || fail "release not logged loudly"
[ "$(names)" = "b keep pinned " ] || fail "after release: [$(names)]"
pc 1 sread keep "$A" 1 | grep -q "^chunk $A 0x41 at store$" || fail "keep lost chunk $A"
pc 1 sread keep "$D" 1 | grep -q "^chunk $D 0x41 at store$" || fail "keep chunk $D not copied"
pc 1 sread keep 0 1 | grep -q '^chunk 0 0x61 at origin$' || fail "keep chunk 0 (written before keep) must read the origin"

# Policy "fail": restart the server with it, fill up, expect ENOSPC.
node_kill_procs 1 TERM
wait_log 1 server 'orderly hand-over done' 30 || fail "no orderly stop"
start_master 1 --log server2 --grace-ms 0 --store-full fail
n=$((D + 1)); got=""
while [ $n -lt $((2 * D + 5)) ]; do
  if ! out=$(pc 1 owrite $n 1 0x65 2>&1); then got=$out; break; fi
  n=$((n + 1))
done
echo "$got" | grep -q 'snapshot store is full' || fail "expected ENOSPC, got: [$got] after chunk $n"
wait_log 1 server2 'store full: failing the write with ENOSPC' 10 || fail "ENOSPC not logged"
[ "$(names)" = "b keep pinned " ] || fail "policy fail released a snapshot: [$(names)]"
pc 1 sread keep $n 1 | grep -q "^chunk $n 0x41 at origin$" || fail "refused chunk $n must be untouched on the origin"
pc 1 sread keep "$A" 1 | grep -q "^chunk $A 0x41 at store$" || fail "keep lost chunk $A"

node_kill_procs 1 TERM
wait_log 1 server2 'orderly hand-over done' 30 || fail "no orderly stop"
no_sanitizer_reports
check_store
echo "PASS"
