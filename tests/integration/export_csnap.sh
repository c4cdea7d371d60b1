#!/usr/bin/env bash
# tests/integration/export_csnap.sh - `csnap export` of a real store with a
# real metadata server on real sanlock (tests/cluster/lib.sh), driven by
# NBD clients nobody here wrote.
#
# Checks: nbdinfo --list shows the origin and each snapshot as it is
# created; nbdcopy round trip on the origin; a snapshot export reads back
# (qemu-img convert) exactly the origin's content at snapshot time after
# the origin has been overwritten; fio with verification on the origin and
# on a snapshot; concurrent unaligned I/O on both, against a model;
# snapshot writes touch neither the origin nor other snapshots; a second
# node's export sees the same data; a deleted snapshot is withdrawn;
# `csnap check` is clean at the end.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires nbdinfo nbdcopy fio qemu-img
requires_libnbd


cluster_start 2 512M
origin_fill random 128M
store_init
d=$CLUSTER_DIR

master_standby --grace-ms 300

# node1 overrides the listener; node2 uses csnap.conf (export = unix,
# socket RUN_DIR/s.sock).
sock1=$d/node1.sock sock2=$(export_sock 2)
start_export 1 "$sock1" --socket "$sock1" s
start_export 2 "$sock2" s
o1="nbd+unix:///origin?socket=$sock1"
o2="nbd+unix:///origin?socket=$sock2"

echo "== nbdinfo --list"
nbdinfo --list "nbd+unix://?socket=$sock1" | grep -E 'export=|export-size' || fail "nbdinfo --list"
export_listed "$sock1" origin || fail "origin not listed"

echo "== nbdcopy round trip through node1, read back through node2"
head -c 128M /dev/urandom >"$d/r1"
nbdcopy "$d/r1" "$o1" || fail "nbdcopy write"
nbdcopy "$o2" "$d/b1" || fail "nbdcopy read"
cmp "$d/r1" "$d/b1" || fail "origin round trip differs"

echo "== snapshot s1; overwrite the origin; s1 keeps the old content"
node_run 1 "$C" snapshot create s s1 >/dev/null || fail "create s1"
wait_exported "$sock1" s1
wait_exported "$sock2" s1
ref1=$(sha256sum <"$d/r1" | cut -d' ' -f1)
head -c 128M /dev/urandom >"$d/r2"
nbdcopy "$d/r2" "$o2" || fail "overwrite origin"
nbdcopy "$o1" "$d/b2" || fail "read origin"
cmp "$d/r2" "$d/b2" || fail "origin after snapshot differs"
qemu-img convert -f raw -O raw "nbd+unix:///s1?socket=$sock1" "$d/s1.img" || fail "qemu-img convert s1"
[ "$(sha256sum <"$d/s1.img" | cut -d' ' -f1)" = "$ref1" ] || fail "s1 is not the origin at snapshot time"
echo "s1 checksum matches the origin at snapshot time"

echo "== fio with verification on the origin (first writes after s2) and on s1"
node_run 1 "$C" snapshot create s s2 >/dev/null || fail "create s2"
wait_exported "$sock1" s2
qemu-img convert -f raw -O raw "$o1" "$d/at-s2.img" || fail "read origin at s2"
for target in origin s1; do
  cat >"$d/$target.fio" <<EOF
[global]
ioengine=nbd
uri=nbd+unix:///$target?socket=$sock1
size=32M
iodepth=16
verify=crc32c
verify_fatal=1
do_verify=1
[rand]
rw=randwrite
bsrange=512-128k
blockalign=512
[seq]
offset=64M
rw=write
bs=1M
EOF
  fio "$d/$target.fio" >"$d/$target.fio.log" 2>&1 || { cat "$d/$target.fio.log"; fail "fio on $target"; }
  grep -qiE 'verify: bad|verify failed' "$d/$target.fio.log" && fail "fio verify on $target"
done
qemu-img convert -f raw -O raw "nbd+unix:///s2?socket=$sock2" "$d/s2.img" || fail "read s2"
cmp "$d/s2.img" "$d/at-s2.img" || fail "s2 changed by writes to the origin or to s1"

echo "== concurrent unaligned I/O against a model: origin and s1"
$py "$src/tests/integration/export_stress.py" "$o1" $((16 << 20)) 7 60 || fail "stress origin"
$py "$src/tests/integration/export_stress.py" "nbd+unix:///s1?socket=$sock2" $((16 << 20)) 8 60 ||
  fail "stress s1"
qemu-img convert -f raw -O raw "nbd+unix:///s2?socket=$sock1" "$d/s2b.img" || fail "read s2"
cmp "$d/s2b.img" "$d/at-s2.img" || fail "s2 changed"

echo "== delete s1: withdrawn from both exports"
# Deletion waits until no export holds a session to s1 (idle after 1 s).
wait_for 20 node_run 2 "$C" snapshot delete s s1 || fail "delete s1: $(node_run 2 "$C" snapshot delete s s1 2>&1)"
wait_for 20 bash -c "! nbdinfo --list 'nbd+unix://?socket=$sock1' | grep -q 'export=\"s1\"'" ||
  fail "s1 still exported on node1"
wait_for 20 bash -c "! nbdinfo --list 'nbd+unix://?socket=$sock2' | grep -q 'export=\"s1\"'" ||
  fail "s1 still exported on node2"
export_listed "$sock1" s2 || fail "s2 vanished"

echo "== orderly shutdown"
node_kill_procs 1 TERM
node_kill_procs 2 TERM
wait_log 1 export 'shutting down' 20 || fail "node1 export did not stop"
sleep 1
no_sanitizer_reports "$(node_log 1 export)" "$(node_log 2 export)"
check_store
echo "PASS"
