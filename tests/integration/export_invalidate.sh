#!/usr/bin/env bash
# tests/integration/export_invalidate.sh - one snapshot written from two
# nodes: a location cached by one export is invalidated by the master
# when the other export's write moves the chunk (real sanlock, servers
# and exports on two nodes, libnbd clients).
#
# Snapshots s1 and s2 share origin chunk 5 after it is copied out (the
# origin is written).  node2's export reads s1 chunk 5 (caches its store
# location) and keeps the snapshot open; node1's export writes 4 KiB into
# s1 chunk 5, which gives s1 a chunk of its own.  Once that write is
# acknowledged, node2's next read of s1 chunk 5 must see the new data
# (not the old shared chunk), and s2 must still have the old data.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires_libnbd


cluster_2node A
node_run 1 "$C" snapshot create s s1 >/dev/null || fail "create s1"
node_run 1 "$C" snapshot create s s2 >/dev/null || fail "create s2"
for s in s1 s2; do
  wait_exported "$sock1" $s
  wait_exported "$sock2" $s
done

C5=$((5 * 65536))
# The origin write copies chunk 5 out once, shared by s1 and s2.
$py - "nbd+unix:///origin?socket=$sock1" $C5 <<'PY' || fail "origin write"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pwrite(b'B' * 65536, int(sys.argv[2])); h.flush()
PY

# node2: read s1 chunk 5 (cached at the shared store chunk), then wait,
# then read it again on the same open snapshot.
cat >"$d/reader.py" <<'PY'
import nbd, os, sys, time
uri, off, go, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
h = nbd.NBD(); h.connect_uri(uri)
first = h.pread(65536, off)
print("first", "old" if first == b'A' * 65536 else "unexpected", flush=True)
while not os.path.exists(go):
    time.sleep(0.05)
second = h.pread(65536, off)
ok = second[:4096] == b'C' * 4096 and second[4096:] == b'A' * (65536 - 4096)
print("second", "new" if ok else ("stale" if second == b'A' * 65536 else "wrong"), flush=True)
PY
node_spawn 2 reader $py "$d/reader.py" "nbd+unix:///s1?socket=$sock2" $C5 "$d/go" "$d/out" >/dev/null
wait_log 2 reader '^first old$' 30 || fail "node2 did not read the old data of s1 chunk 5"

# node1 writes 4 KiB into s1 chunk 5: s1 gets a chunk of its own.
$py - "nbd+unix:///s1?socket=$sock1" $C5 <<'PY' || fail "snapshot write on node1"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pwrite(b'C' * 4096, int(sys.argv[2])); h.flush()
PY
touch "$d/go"
wait_log 2 reader '^second ' 30 || fail "node2 reader did not read again"
grep -q '^second new$' "$(node_log 2 reader)" ||
  fail "node2 read s1 chunk 5 at a stale location after node1's write was acknowledged: $(grep '^second' "$(node_log 2 reader)")"
echo "node2 saw node1's snapshot write (its cached location was invalidated)"

$py - "nbd+unix:///s2?socket=$sock2" $C5 <<'PY' || fail "s2 chunk 5 lost its old data"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); assert h.pread(65536, int(sys.argv[2])) == b'A' * 65536
PY
echo "s2 keeps the old data"

node_kill_procs 1 TERM
node_kill_procs 2 TERM
wait_log 1 export 'shutting down' 20 || fail "node1 export did not stop"
sleep 1
no_sanitizer_reports
check_store
echo "PASS"
