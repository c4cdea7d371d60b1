#!/usr/bin/env bash
# csnap agent finding stores configured as UUID=<uuid> (tests/cluster/lib.sh,
# one node, real sanlock).  Stores: one found once under $CSNAP_SCAN, one
# present twice there (ambiguous: refused), one absent, one on a loop
# device found through /proc/partitions (skipped without loop devices), and
# a path holding no store, and a path longer than an agent protocol line
# (csnap.conf takes paths up to PATH_MAX: its STORE line must still be one
# line, shortened, and `agent status` must still work).  Each gets the
# right state and a clear reason; the found ones are joined and answer
# WHERE by name, uuid and device.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 1
scan=$CLUSTER_DIR/scan
mkdir -p "$scan"
U1=$(new_uuid); U2=$(new_uuid); U3=$(new_uuid); U4=$(new_uuid)
for f in a b1 b2; do truncate -s 8M "$scan/$f.img"; done
truncate -s 8M "$CLUSTER_DIR/empty.img"
"$T/agent_fakestore" "$scan/a.img" "$U1" 1 || fail "making store a"
"$T/agent_fakestore" "$scan/b1.img" "$U2" 1 || fail "making store b1"
"$T/agent_fakestore" "$scan/b2.img" "$U2" 1 || fail "making store b2"

LOOP=
truncate -s 8M "$CLUSTER_DIR/loop.img"
if LOOP=$(losetup -f --show "$CLUSTER_DIR/loop.img" 2>/dev/null); then
  trap 'losetup -d "$LOOP"; cluster_stop' EXIT
  "$T/agent_fakestore" "$LOOP" "$U4" 1 || fail "making the loop store"
else
  echo "note: no loop device here; the /proc/partitions case is not tested"
fi

# 1,500 bytes, a path that does not exist
longdev=$CLUSTER_DIR/$(printf 'long-directory-name/%.0s' $(seq 70))end.img
conf=$(node_conf 1)
cat >"$conf" <<CONF
[global]
host_id = 1
node_name = node1
address = $(node_addr 1)
io_timeout = 1
run_dir = $(node_dir 1)/run

[store sa]
device = UUID=$U1
[store sb]
device = UUID=$U2
[store sc]
device = UUID=$U3
[store se]
device = $CLUSTER_DIR/empty.img
[store sf]
device = $longdev
CONF
[ -n "$LOOP" ] && printf '[store sd]\ndevice = UUID=%s\n' "$U4" >>"$conf"

A=$(node_spawn 1 agent env CSNAP_SCAN="$scan" "$C" agent -c "$conf" --poll-ms 200)
status() { node_run 1 "$C" agent status -c "$conf"; }
line() { status | grep "^STORE name=$1 "; }
has() { line "$1" | grep -Eq "$2"; }
wait_for 30 has sa "state=joined" || fail "sa not joined: $(line sa)"
has sa "uuid=$U1 device=$scan/a.img " || fail "sa: wrong device: $(line sa)"
wait_for 10 has sb "state=failed .*UUID=$U2 is on 2 devices .*ambiguous" || fail "sb: $(line sb)"
wait_for 10 has sc "state=failed .*no device with csnap store UUID=$U3" || fail "sc: $(line sc)"
wait_for 10 has se "state=failed .*not a csnap store" || fail "se: $(line se)"
wait_for 10 has sf "state=failed " || fail "sf: $(status 2>&1 | cut -c1-200)"
out=$(status) || fail "agent status with a long device path: $out"
want=5; [ -n "$LOOP" ] && want=6
[ "$(echo "$out" | grep -c '^STORE ')" = $want ] || fail "not one STORE line per store: $out"
sf=$(line sf)
[ ${#sf} -lt 1024 ] || fail "sf: STORE line of ${#sf} bytes"
echo "$sf" | grep -q " device=\.\.\.[^ ]*long-directory-name/end.img state=failed " ||
  fail "sf: device not shortened to its end: $sf"
if [ -n "$LOOP" ]; then
  wait_for 30 has sd "state=joined" || fail "sd not joined: $(line sd)"
  has sd "device=$LOOP " || fail "sd: wrong device: $(line sd)"
  node_run 1 "$C" agent where -c "$conf" "$U4" | grep -q "^NONE $U4 " || fail "where sd"
fi
for name in sa "$U1" "$scan/a.img" "UUID=$U1"; do
  out=$(node_run 1 "$C" agent where -c "$conf" "$name")
  [ $? = 3 ] || fail "where $name: exit status (want 3 = NONE): $out"
  echo "$out" | grep -q "^NONE $U1 the master lease is free" || fail "where $name: $out"
done
out=$(node_run 1 "$C" agent where -c "$conf" sb 2>&1)
[ $? = 1 ] || fail "where on a failed store should fail: $out"
echo "$out" | grep -q "store sb is not available on this node yet: .*ambiguous" || fail "where sb: $out"
kill -TERM "$A"
wait_for 20 sh -c '! kill -0 $0 2>/dev/null' "$A" || fail "agent did not stop"
grep -q "agent: stopped" "$(node_log 1 agent)" || fail "no orderly stop"
no_sanitizer_reports
echo ok
