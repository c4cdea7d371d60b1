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
set -u
src=${CSNAP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CSNAP_BUILD:-$src/build}
. "$src/tests/cluster/lib.sh"
C=$build/csnap
PC=$build/tools/proto_client
py=/usr/bin/python3
for t in nbdinfo nbdcopy fio qemu-img; do
  command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
$py -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd not installed"; exit 77; }
[ -x "$PC" ] || { echo "SKIP: tests/tools/proto_client not built"; exit 77; }

fail() {
  echo "FAIL: $*"
  for i in 1 2; do
    for n in server export; do
      [ -f "$(node_log $i $n)" ] && { echo "--- node$i $n"; tail -25 "$(node_log $i $n)"; }
    done
  done
  exit 1
}

cluster_start 2 512M
truncate -s 128M "$CLUSTER_ORIGIN"
head -c 128M /dev/urandom >"$CLUSTER_ORIGIN"
"$C" mkstore --chunk-size 64K "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || fail "mkstore"
"$PC" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" leaseinit "$CLUSTER_IO_TIMEOUT" >/dev/null || fail "lease init"
d=$CLUSTER_DIR

node_spawn 1 server "$C" server --grace-ms 300 s >/dev/null
wait_log 1 server 'master for store' 60 || fail "no master"
node_spawn 2 server "$C" server --grace-ms 300 s >/dev/null
wait_log 2 server 'standby' 60 || fail "node2 not standby"

sock1=$d/node1.sock sock2=$d/node2.sock
node_spawn 1 export "$C" -v export --socket "$sock1" s >/dev/null
node_spawn 2 export "$C" -v export --socket "$sock2" s >/dev/null
wait_for 20 test -S "$sock1" || fail "node1 export socket"
wait_for 20 test -S "$sock2" || fail "node2 export socket"
o1="nbd+unix:///origin?socket=$sock1"
o2="nbd+unix:///origin?socket=$sock2"
listed() { nbdinfo --list "nbd+unix://?socket=$1" 2>/dev/null | grep -q "export=\"$2\""; }

echo "== nbdinfo --list"
nbdinfo --list "nbd+unix://?socket=$sock1" | grep -E 'export=|export-size' || fail "nbdinfo --list"
listed "$sock1" origin || fail "origin not listed"

echo "== nbdcopy round trip through node1, read back through node2"
head -c 128M /dev/urandom >"$d/r1"
nbdcopy "$d/r1" "$o1" || fail "nbdcopy write"
nbdcopy "$o2" "$d/b1" || fail "nbdcopy read"
cmp "$d/r1" "$d/b1" || fail "origin round trip differs"

echo "== snapshot s1; overwrite the origin; s1 keeps the old content"
node_run 1 "$C" snapshot create s s1 >/dev/null || fail "create s1"
wait_for 20 listed "$sock1" s1 || fail "s1 not exported on node1"
wait_for 20 listed "$sock2" s1 || fail "s1 not exported on node2"
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
wait_for 20 listed "$sock1" s2 || fail "s2 not exported"
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
listed "$sock1" s2 || fail "s2 vanished"

echo "== orderly shutdown"
node_kill_procs 1 TERM
node_kill_procs 2 TERM
wait_log 1 export 'shutting down' 20 || fail "node1 export did not stop"
sleep 1
for i in 1 2; do
  if grep -E 'AddressSanitizer|runtime error|LeakSanitizer' "$(node_log $i export)"; then
    fail "sanitizer report in node$i export"
  fi
done
"$C" check "$CLUSTER_STORE" >/dev/null || fail "csnap check"
echo "PASS"
