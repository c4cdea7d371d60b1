#!/usr/bin/env bash
# tests/integration/export_newsnap.sh - a snapshot can be opened on every
# node's export as soon as `csnap snapshot create` returns (issue 9,
# defect 7): the master tells every export of the new snapshot (after the
# commit) and answers the creator only when they serve it.  Before, the
# exports found it by polling the list every second, and a client that
# connected right after create got "no export named".
#
# Two nodes, each with a server and an export.  Five times: write a
# marker through node1's origin, create snapshot nK from node2 (the
# standby's node), and at once open nK on both exports and read the marker.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires_libnbd


cluster_2node
# Both exports' origin sessions are up (they are the ones told).
wait_for 20 bash -c "[ \$(grep -c 'origin host' '$(node_log 1 server)') -ge 2 ]" ||
  fail "exports not connected to the master"

cat >"$d/open.py" <<'PY'
import nbd, sys
uri, marker = sys.argv[1], sys.argv[2].encode()
h = nbd.NBD()
try:
    h.connect_uri(uri)
except nbd.Error as e:
    print("cannot open:", e); sys.exit(1)
got = h.pread(4096, 1 << 20)
if got != marker * (4096 // len(marker)):
    print("wrong data:", got[:16]); sys.exit(1)
PY
for k in 1 2 3 4 5; do
  marker=$(printf 'snap%04d' $k)
  $py - "nbd+unix:///origin?socket=$sock1" "$marker" <<'PY' || fail "origin write $k"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(sys.argv[2].encode() * 512, 1 << 20); h.flush()
PY
  node_run 2 "$C" snapshot create s "n$k" >/dev/null || fail "create n$k"
  for s in "$sock1" "$sock2"; do
    out=$($py "$d/open.py" "nbd+unix:///n$k?socket=$s" "$marker" 2>&1) ||
      fail "snapshot n$k could not be used on $s right after create returned: $out"
  done
done
echo "each new snapshot was served by both exports when create returned"

node_kill_procs 1 TERM
node_kill_procs 2 TERM
sleep 1
no_sanitizer_reports
check_store
echo "PASS"
