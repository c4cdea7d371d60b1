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
set -u
src=${CSNAP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CSNAP_BUILD:-$src/build}
. "$src/tests/cluster/lib.sh"
C=$build/csnap
py=/usr/bin/python3
$py -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd not installed"; exit 77; }

fail() {
  echo "FAIL: $*"
  for i in 1 2; do
    for n in server export; do
      [ -f "$(node_log $i $n)" ] && { echo "--- node$i $n"; tail -20 "$(node_log $i $n)"; }
    done
  done
  exit 1
}

cluster_start 2 128M
truncate -s 32M "$CLUSTER_ORIGIN"
"$C" mkstore --chunk-size 64K "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || fail "mkstore"
"$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null || fail "lease init"
d=$CLUSTER_DIR
node_spawn 1 server "$C" server s >/dev/null
wait_log 1 server 'master for store' 60 || fail "no master"
node_spawn 2 server "$C" server s >/dev/null
wait_log 2 server 'standby' 60 || fail "node2 not standby"
sock1=$d/node1.sock sock2=$d/node2.sock
node_spawn 1 export "$C" -v export --socket "$sock1" s >/dev/null
node_spawn 2 export "$C" -v export --socket "$sock2" s >/dev/null
wait_for 20 test -S "$sock1" || fail "node1 export socket"
wait_for 20 test -S "$sock2" || fail "node2 export socket"
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
if grep -l -E 'AddressSanitizer|runtime error|LeakSanitizer' "$d"/node*/*.log; then fail "sanitizer report"; fi
"$C" check "$CLUSTER_STORE" >/dev/null || fail "csnap check"
echo "PASS"
