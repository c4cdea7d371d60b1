#!/usr/bin/env bash
# Store-full policy on a store that is not full (issue 9, defects 2 and 3),
# real server on real sanlock (tests/cluster/lib.sh): a 128 MiB store, a
# 64 MiB origin, 64 KiB chunks.
#  - defect 2: the tree area of such a store is ~110 blocks; the old room
#    estimate (one tree block per chunk) refused a single 8 MiB origin write
#    after one snapshot, and the release policy then released snapshots of
#    an almost empty store.  Here an 8 MiB and a 16 MiB write (one request
#    each) succeed, no snapshot is released, the space used is exactly the
#    chunks copied.
#  - defect 3: when the first release candidate has an NBD client (through
#    a real export), the next candidate is released instead of failing the
#    write with ENOSPC; that candidate, a snapshot the export opened by
#    itself a moment ago (PROTO_F_PASSIVE, no NBD client), does not count
#    as in use.
# Then `csnap check` is clean and the kept snapshots read what they held.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires nbdinfo
requires_libnbd

cluster_start 1 128M
origin_fill A 64M
store_init
D=$(sed -n 's/.*, \([0-9]*\) data chunks.*/\1/p' "$CLUSTER_DIR/mkstore.out")
O=1024	# origin chunks
# Part B needs the store to fill up during its second whole-origin write.
[ -n "$D" ] && [ "$D" -gt $((384 + O + 10)) ] && [ "$D" -lt $((384 + 2 * O - 2)) ] ||
  fail "mkstore: unexpected data chunk count [$D]"
echo "store of $D data chunks"
names() { cs 1 snapshot list s --json | sed -n 's/.*"name": "\([^"]*\)".*/\1/p' | tr '\n' ' '; }
free_chunks() { cs 1 status s --json | sed -n 's/.*"free_chunks": \([0-9]*\),.*/\1/p'; }
released() { grep -c 'releasing snapshot' "$CLUSTER_DIR"/node1/server*.log; }

start_master 1 --grace-ms 0

echo "== defect 2: 8 MiB and 16 MiB origin writes on an almost empty store"
cs 1 snapshot create s s1 --priority 9 >/dev/null || fail "create s1"
out=$(pc 1 owrite 0 128 0x61 2>&1) || fail "one 8 MiB origin write after one snapshot: $out"
cs 1 snapshot create s s2 --priority 9 >/dev/null || fail "create s2"
cs 1 snapshot create s s3 --priority 9 >/dev/null || fail "create s3"
out=$(pc 1 owrite 128 256 0x62 2>&1) || fail "one 16 MiB origin write: $out"
[ "$(names)" = "s1 s2 s3 " ] || fail "snapshots released on an almost empty store: [$(names)]"
[ "$(released)" = 0 ] || fail "release logged on an almost empty store"
[ "$(free_chunks)" = $((D - 384)) ] || fail "free chunks $(free_chunks), expected $((D - 384))"

echo "== defect 3: the first candidate has an NBD client; a new one the export merely opened does not count"
sock=$CLUSTER_DIR/node1.sock
start_export 1 "$sock" --socket "$sock" s
epid=$(sed -n '$p' "$CLUSTER_DIR/node1/pids" | cut -d' ' -f1)
cs 1 snapshot create s old --priority 0 >/dev/null || fail "create old"
wait_exported "$sock" old
rel=$CLUSTER_DIR/release-old
# A real NBD client on "old": reads a block, stays connected until $rel.
"$py" -c '
import nbd, os, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1])
assert h.pread(4096, 5 * 65536) == b"a" * 4096
print("connected", flush=True)
while not os.path.exists(sys.argv[2]): time.sleep(0.05)
assert h.pread(4096, 5 * 65536) == b"a" * 4096
h.shutdown()
' "nbd+unix:///old?socket=$sock" "$rel" >"$CLUSTER_DIR/hold.out" 2>&1 &
hold=$!
FAIL_LOGS+=("$CLUSTER_DIR/hold.out")
wait_for 20 grep -q '^connected' "$CLUSTER_DIR/hold.out" || fail "NBD client on old"
out=$(pc 1 owrite 0 $((O - 1)) 0x63 2>&1) || fail "whole-origin write for old: $out"
cs 1 snapshot create s u1 --priority 0 >/dev/null || fail "create u1"
# The export opens every new snapshot at once (to learn its size) and
# lets it go a second later: freeze it while it holds u1 open, so the
# store fills up exactly then.
wait_log 1 server 'client .*: snapshot u1 host 1 .*passive' 20 || fail "export did not open u1 (passively)"
kill -STOP "$epid"
# Needs O-1 more chunks, about 385 are free: the store is full.  "old"
# (oldest, same priority) has an NBD client: u1 must go, and the write
# succeed.
out=$(pc 1 owrite 0 $((O - 1)) 0x64 2>&1) || { kill -CONT "$epid"; fail "write on a full store whose first candidate is in use: $out"; }
kill -CONT "$epid"
wait_log 1 server 'SNAPSHOT STORE FULL: releasing snapshot u1 ' 10 || fail "u1 not released"
[ "$(names)" = "s1 s2 s3 old " ] || fail "after release: [$(names)]"
touch "$rel"
wait "$hold" || fail "NBD client on old failed"
pc 1 sread old 5 1 | grep -q '^chunk 5 0x61 at store$' || fail "old lost chunk 5"
pc 1 sread old 500 1 | grep -q '^chunk 500 0x41 at store$' || fail "old lost chunk 500"
pc 1 sread s1 5 1 | grep -q '^chunk 5 0x41 at store$' || fail "s1 lost chunk 5"
pc 1 sread s2 200 1 | grep -q '^chunk 200 0x41 at store$' || fail "s2 lost chunk 200"

node_kill_procs 1 TERM
wait_log 1 server 'orderly hand-over done' 30 || fail "no orderly stop"
no_sanitizer_reports
check_store
echo "PASS"
