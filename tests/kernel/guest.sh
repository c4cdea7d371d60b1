#!/usr/bin/env bash
# tests/kernel/guest.sh - runs INSIDE the kernel test VM (tests/kernel/
# run.sh): csnap volumes as kernel block devices on real nbd and
# device-mapper, with a two-node csnap cluster (tests/cluster/lib.sh: a
# sanlock daemon per node on the guest's loopback).  Store and origin are
# loop devices (O_DIRECT works on them; tmpfs has none in this kernel).
# Each check prints PASS/FAIL/SKIP; the last line is
# "N passed, N failed, N skipped".
set -u
src=$CSNAP_SRC
C=$CSNAP_BUILD/csnap
# emulation on a shared machine: lease renewals must not miss their window
export CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-3}
. "$src/tests/cluster/lib.sh"
pass=0 failn=0 skip=0
ok()   { pass=$((pass + 1)); echo "PASS $*"; }
bad()  { failn=$((failn + 1)); echo "FAIL $*"; }
skp()  { skip=$((skip + 1)); echo "SKIP $*"; }
info() { echo "INFO $*"; }
T0=$(date +%s)
section() { echo "== $* (at $(( $(date +%s) - T0 )) s)"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() {
  trap - EXIT
  section "end"
  cluster_stop >/dev/null 2>&1
  echo "$pass passed, $failn failed, $skip skipped"
  exit 0
}
logs() {
  for i in 1 2; do for n in server export; do
    f=$(node_log $i $n); [ -f "$f" ] && { echo "--- node$i $n"; tail -15 "$f"; }
  done; done
  dmesg | tail -20
}
abort() { bad "$*"; logs; finish; }

n1() { node_run 1 "$@"; }
act() { n1 "$C" activate --wait 30 "$@"; }
deact() { n1 "$C" deactivate "$@"; }
is_blk() { [ -b "$1" ]; }
io_errors() { dmesg | grep -cE 'I/O error|blk_update_request|Buffer I/O|EXT4-fs error' || true; }

# udevd, if it starts here, makes /dev/csnap and by-uuid links from the rules
udev=0
if systemd-udevd --daemon >/dev/null 2>&1 && sleep 1 && [ -e /run/udev/control ]; then
  udev=1
  info "udevd running"
else
  info "udevd did not start: csnap makes the /dev/csnap links itself"
fi

cluster_start 2 128M || abort "cluster_start"
trap finish EXIT
store=$(losetup -f --show "$CLUSTER_STORE") && origin=$(losetup -f --show "$CLUSTER_ORIGIN") ||
  abort "losetup"
CLUSTER_STORE=$store CLUSTER_ORIGIN=$origin
for i in 1 2; do
  node_write_conf $i
  # requests re-sent 8 s after their connection died (export killed below)
  printf 'nbd_timeout = 8\nnbd_dead_timeout = 60\nactivate = origin\n' >>"$(node_conf $i)"
done
"$C" mkstore --name shared --chunk-size 64K "$store" "$origin" >/dev/null || abort "mkstore"
"$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$store" >/dev/null || abort "lease init"
# node2 is the master: the volumes are used on node1, so the master killed
# below is on another node than the filesystem
srv2=$(node_spawn 2 server "$C" server --grace-ms 300 s)
wait_log 2 server 'master for store' 60 || abort "no master"
srv1=$(node_spawn 1 server "$C" server --grace-ms 300 s)
wait_log 1 server 'standby' 60 || abort "node1 not standby"
exp1=$(node_spawn 1 export "$C" -v export s)
node_spawn 2 export "$C" -v export s >/dev/null
sock1=$(node_dir 1)/run/s.sock
wait_for 30 test -S "$sock1" || abort "node1 export socket"

section "activate the origin"
out=$(act s 2>&1); rc=$?
info "$out"
check "activate s (origin): exit 0" [ $rc -eq 0 ]
check "/dev/csnap/s/origin is a block device" is_blk /dev/csnap/s/origin
check "/dev/mapper/csnap-s-origin exists" is_blk /dev/mapper/csnap-s-origin
uuid=$("$C" dump "$store" 2>/dev/null | awk '/uuid/ {print $NF; exit}' | tr -d -)
dmu=$(dmsetup info -c --noheadings -o uuid csnap-s-origin 2>/dev/null)
check "dm uuid is CSNAP-<store uuid>-origin ($dmu)" [ "$dmu" = "CSNAP-$uuid-origin" ]
tbl=$(dmsetup table csnap-s-origin 2>/dev/null)
check "dm-linear over an nbd device: $tbl" sh -c "echo '$tbl' | grep -Eq '^0 262144 linear 43:[0-9]+ 0$'"
nbd=$(for b in /sys/block/nbd*/backend; do grep -q ':origin$' "$b" 2>/dev/null && echo "$b"; done | head -1)
check "nbd backend identifier csnap:<uuid>:origin ($nbd)" sh -c "grep -q '^csnap:.*:origin$' '$nbd'"
if [ $udev = 1 ]; then
  check "udev made the /dev/csnap link (11-dm-csnap.rules): $(readlink /dev/csnap/s/origin)" \
    sh -c "readlink /dev/csnap/s/origin | grep -q '^\.\./\.\./dm-[0-9]*$'"
  nb=$(basename "$(dirname "$nbd")")
  check "raw $nb marked SYSTEMD_READY=0 by the rules" \
    sh -c "udevadm info --query=property /dev/$nb | grep -qx SYSTEMD_READY=0"
  check "udevadm test: the rules give the dm device the link" \
    sh -c "udevadm test /sys/class/block/\$(basename \$(readlink -f /dev/mapper/csnap-s-origin)) 2>&1 | grep -q 'csnap/s/origin'"
fi
out=$(act s 2>&1); rc=$?
check "activate again: no-op, exit 0" sh -c "[ $rc -eq 0 ] && echo '$out' | grep -q already-active"

section "scan and store aliases"
uuidd=$("$C" dump "$store" 2>/dev/null | awk '/uuid/ {print $NF; exit}')
out=$(timeout 20 "$C" scan -c "$(node_conf 1)" 2>&1); rc=$?
info "$(echo "$out" | tail -n +2)"
check "scan lists the store on $store as s (not reading csnap's own volumes)" \
  sh -c "[ $rc -eq 0 ] && echo '$out' | grep -Eq '^$store +$uuidd +shared +s '"
check "scan lists only real stores" [ "$(echo "$out" | grep -c "$uuidd")" -eq 1 ]
out=$(act "UUID=$uuidd" origin 2>&1)
check "activate UUID=<store uuid>: the same volume, already active" sh -c "echo '$out' | grep -q already-active"
out=$(act LABEL=shared origin 2>&1)
check "activate LABEL=<store label>: the same volume, already active" sh -c "echo '$out' | grep -q already-active"
out=$(act "$store" origin 2>&1)
check "activate by device path: the same volume, already active" sh -c "echo '$out' | grep -q already-active"
check "one dm device for the origin whatever the store was called" \
  [ "$(dmsetup ls | grep -c '^csnap-s-origin')" -eq 1 ]

if [ $udev = 1 ]; then
  # the autoactivation rule reads /etc/csnap/csnap.conf, as on a real node
  mkdir -p /etc/csnap && cp "$(node_conf 1)" /etc/csnap/csnap.conf
  lb=$(basename "$store")
  check "udevadm test: the store's device wants csnap-activate@s.service" \
    sh -c "udevadm test --action=add /sys/class/block/$lb 2>&1 | grep -q 'SYSTEMD_WANTS=csnap-activate@s.service'"
  lo=$(basename "$origin")
  check "udevadm test: the origin's device wants nothing" \
    sh -c "! udevadm test --action=add /sys/class/block/$lo 2>&1 | grep -q 'SYSTEMD_WANTS=csnap'"
  printf 'autoactivate = no\n' >>/etc/csnap/csnap.conf
  check "udevadm test: autoactivate = no opts out" \
    sh -c "! udevadm test --action=add /sys/class/block/$lb 2>&1 | grep -q 'SYSTEMD_WANTS=csnap'"
  rm -f /etc/csnap/csnap.conf
fi

section "filesystem on the origin"
check "mkfs.ext4" mke2fs -q -F -t ext4 /dev/csnap/s/origin
mkdir -p /mnt/o /mnt/s
check "mount origin" mount -t ext4 /dev/csnap/s/origin /mnt/o
for f in 1 2 3; do head -c $((f * 300000)) /dev/urandom >/mnt/o/file$f; done
mkdir -p /mnt/o/dir && echo "before snapshot" >/mnt/o/dir/note
(cd /mnt/o && md5sum file1 file2 file3 dir/note) >/tmp/sums.before
sync

section "snapshot while mounted (fsfreeze)"
fsfreeze -f /mnt/o && n1 "$C" snapshot create s snap1 >/dev/null; rc=$?
fsfreeze -u /mnt/o
check "snapshot create under fsfreeze" [ $rc -eq 0 ]
head -c 500000 /dev/urandom >/mnt/o/file2; echo "after snapshot" >/mnt/o/dir/note; rm /mnt/o/file3
sync
out=$(act s snap1 2>&1); rc=$?
info "$out"
check "activate s snap1" [ $rc -eq 0 ]
check "/dev/csnap/s/snap1 is a block device" is_blk /dev/csnap/s/snap1
sid=$(dmsetup info -c --noheadings -o uuid csnap-s-snap1 2>/dev/null)
check "snapshot dm uuid ends in its id, not its name ($sid)" sh -c "echo '$sid' | grep -Eq '^CSNAP-$uuid-[0-9]+$'"
check "mount snapshot read-only" mount -t ext4 -o ro,noload /dev/csnap/s/snap1 /mnt/s
check "snapshot has the files as they were" sh -c "cd /mnt/s && md5sum -c /tmp/sums.before >/dev/null"
umount /mnt/s
check "mount snapshot read-write" mount -t ext4 /dev/csnap/s/snap1 /mnt/s
echo "written in the snapshot" >/mnt/s/snapfile
check "snapshot still has the old files (rw)" sh -c "cd /mnt/s && md5sum -c /tmp/sums.before >/dev/null"
umount /mnt/s
check "origin unchanged by the snapshot write" [ ! -e /mnt/o/snapfile ]
check "origin has its new content" grep -q "after snapshot" /mnt/o/dir/note
if [ $udev = 1 ]; then
  fsu=$(blkid -o value -s UUID /dev/csnap/s/origin)
  check "no by-uuid link to a raw nbd device" sh -c "! ls -l /dev/disk/by-uuid/ | grep -q nbd"
  check "by-uuid points at the origin, not the snapshot" \
    sh -c "[ \"\$(readlink -f /dev/disk/by-uuid/$fsu)\" = \"\$(readlink -f /dev/mapper/csnap-s-origin)\" ]"
else
  skp "by-uuid link (no udevd in this VM)"
fi

section "deactivate refuses an open volume"
out=$(deact s origin 2>&1); rc=$?
info "$out"
check "deactivate mounted origin: refused (exit 1)" [ $rc -eq 1 ]
check "refusal says it is open" sh -c "echo '$out' | grep -q 'is open'"
check "origin still there and mounted" sh -c "[ -b /dev/csnap/s/origin ] && grep -q /mnt/o /proc/mounts"
check "origin still readable" sh -c "cd /mnt/o && cat file1 file2 >/dev/null"

section "kill the export under fio verify"
e0=$(io_errors)
fio --name=v --filename=/mnt/o/fio.dat --size=8M --bs=4k --rw=randwrite --direct=1 \
    --ioengine=libaio --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 \
    --output=/tmp/fio.out >/dev/null 2>&1 &
fpid=$!
sleep 3
check "fio still running when the export is killed" kill -0 "$fpid"
kill -9 "$exp1"; info "export of node1 killed (pid $exp1)"
sleep 2
exp1=$(node_spawn 1 export "$C" -v export s)
wait "$fpid"; frc=$?
check "fio verify through an export restart: exit 0" [ $frc -eq 0 ]
check "fio verify found no error" sh -c "! grep -qiE 'verify.*(bad|fail)|err=' /tmp/fio.out || grep -q 'err= 0' /tmp/fio.out"
check "no I/O error in the kernel log" [ "$(io_errors)" -eq "$e0" ]
check "new export re-attached the device" wait_log 1 export 're-attached' 20
[ $frc -eq 0 ] || { tail -20 /tmp/fio.out; logs; }
dmesg | grep -E 'nbd|block nbd' | tail -5 | while read -r l; do info "kernel: $l"; done

section "master (node2) killed while the filesystem is in use on node1"
e0=$(io_errors)
fio --name=m --filename=/mnt/o/fio2.dat --size=8M --bs=4k --rw=randwrite --direct=1 \
    --ioengine=libaio --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 \
    --output=/tmp/fio2.out >/dev/null 2>&1 &
fpid=$!
sleep 2
check "fio still running when the master is killed" kill -0 "$fpid"
kill -9 "$srv2"; info "master server of node2 killed"
wait_log 1 server 'master for store' 60 && ok "node1 took over" || bad "node1 took over"
wait "$fpid"; frc=$?
check "fio verify across the master hand-over: exit 0" [ $frc -eq 0 ]
check "no I/O error in the kernel log" [ "$(io_errors)" -eq "$e0" ]
srv2=$(node_spawn 2 server "$C" server --grace-ms 300 s)

section "csnap resize grows the activated origin, not the snapshot"
MiB=1048576
osz=$(blockdev --getsize64 /dev/mapper/csnap-s-origin)
ssz=$(blockdev --getsize64 /dev/mapper/csnap-s-snap1)
ofile=$(losetup -nO BACK-FILE "$origin")
info "origin $osz bytes, snap1 $ssz bytes, origin file $ofile"
truncate -s $((192 * MiB)) "$ofile" && losetup -c "$origin"
check "origin loop device extended to 192 MiB" [ "$(blockdev --getsize64 "$origin")" -eq $((192 * MiB)) ]
check "activated origin still at its old size before the resize" [ "$osz" -eq $((128 * MiB)) ]
out=$(n1 "$C" resize s 2>&1); rc=$?
info "$out"
check "csnap resize s: exit 0" [ $rc -eq 0 ]
check "/dev/mapper/csnap-s-origin grows to 192 MiB without deactivate" \
  wait_for 20 sh -c "[ \$(blockdev --getsize64 /dev/mapper/csnap-s-origin) -eq $((192 * MiB)) ]"
onb=$(basename "$(dirname "$nbd")")
check "its $onb too" [ "$(blockdev --getsize64 "/dev/$onb")" -eq $((192 * MiB)) ]
tbl=$(dmsetup table csnap-s-origin 2>/dev/null)
check "dm-linear table has the new length: $tbl" sh -c "echo '$tbl' | grep -Eq '^0 393216 linear 43:[0-9]+ 0$'"
# both nodes' exports run on this one kernel: whichever keeper comes first
# grows the device, the other finds it grown already
check "an export says it resized the device" wait_for 10 grep -q \
  "activated origin resized to $((192 * MiB)) bytes" "$(node_log 1 export)" "$(node_log 2 export)"
head -c $MiB /dev/urandom >/tmp/newrange
check "write 1 MiB at 160 MiB through the dm device" \
  dd if=/tmp/newrange of=/dev/mapper/csnap-s-origin bs=$MiB seek=160 oflag=direct conv=notrunc status=none
check "read it back through the dm device" sh -c \
  "dd if=/dev/mapper/csnap-s-origin bs=$MiB skip=160 count=1 iflag=direct status=none | cmp -s - /tmp/newrange"
check "it is on the origin device at that offset" sh -c \
  "dd if=$origin bs=$MiB skip=160 count=1 iflag=direct status=none | cmp -s - /tmp/newrange"
check "snapshot device keeps its size ($ssz)" [ "$(blockdev --getsize64 /dev/mapper/csnap-s-snap1)" -eq "$ssz" ]
check "filesystem on the origin still readable" grep -q "after snapshot" /mnt/o/dir/note
check "no I/O error in the kernel log" [ "$(io_errors)" -eq "$e0" ]

section "deactivate after umount"
umount /mnt/o
out=$(deact s origin 2>&1); rc=$?
info "$out"
check "deactivate s origin: exit 0" [ $rc -eq 0 ]
check "/dev/csnap/s/origin gone" [ ! -e /dev/csnap/s/origin ]
check "dm device gone" sh -c "! dmsetup info csnap-s-origin >/dev/null 2>&1"
check "nbd device disconnected" sh -c "! grep -qs ':origin$' /sys/block/nbd*/backend"

section "--all both ways"
sed -i 's/^activate = origin$/activate = origin snap1/' "$(node_conf 1)"
out=$(act --all 2>&1); rc=$?
info "$out"
check "activate --all: exit 0" [ $rc -eq 0 ]
check "--all: origin and snap1 active" sh -c "[ -b /dev/csnap/s/origin ] && [ -b /dev/csnap/s/snap1 ]"
check "origin content survived deactivate/activate" sh -c \
  "mount -t ext4 -o ro /dev/csnap/s/origin /mnt/o && grep -q 'after snapshot' /mnt/o/dir/note; r=\$?; umount /mnt/o; exit \$r"
out=$(deact --all 2>&1); rc=$?
info "$out"
check "deactivate --all: exit 0" [ $rc -eq 0 ]
check "--all: nothing left (dm)" sh -c "! dmsetup ls 2>/dev/null | grep -q csnap-"
check "--all: nothing left (nbd)" sh -c "! grep -qs '^csnap:' /sys/block/nbd*/backend"
check "--all: /dev/csnap gone" [ ! -e /dev/csnap/s ]

section "deactivate --force on a mounted volume"
act s origin >/dev/null 2>&1 && mount -t ext4 -o ro /dev/csnap/s/origin /mnt/o ||
  bad "activate and mount for --force"
out=$(deact --force s origin 2>&1); rc=$?
info "$out"
check "deactivate --force of the mounted origin: exit 0" [ $rc -eq 0 ]
check "--force: nbd device disconnected" sh -c "! grep -qs ':origin$' /sys/block/nbd*/backend"
check "--force: reads now fail instead of hanging" \
  sh -c "! timeout 30 dd if=/dev/mapper/csnap-s-origin of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null"
timeout 30 umount /mnt/o
check "--force: the dm device goes with the last close" wait_for 30 sh -c "! dmsetup info csnap-s-origin >/dev/null 2>&1"
check "--force: nothing left" sh -c "[ ! -e /dev/csnap/s/origin ] && ! dmsetup ls | grep -q csnap-"
finish
