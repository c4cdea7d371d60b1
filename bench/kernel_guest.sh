#!/usr/bin/env bash
# bench/kernel_guest.sh - runs INSIDE the qemu VM of bench/kernel_peers.sh:
# 4 KiB random writes on an origin with 0, 1, 4, 16 and 64 snapshots for
# csnap (activated: the kernel nbd client and dm-linear), dm-snapshot and
# dm-thin, on loop devices over tmpfs.  Prints one line per measurement,
# "KP SYSTEM SNAPSHOTS IOPS", and "KP-DONE" at the end.
#
# Each pass is KP_WRITES (default 1024) 4 KiB writes at random offsets
# (fio libaio, direct, depth 32) over a KP_SIZE_MB (256) origin of 64 KiB
# chunks, so most writes are first writes of a chunk since the last
# snapshot.  Snapshots
# are added cumulatively (0, then 1, 4, 16, 64), each pass right after the
# newest one.  Chunks: csnap and dm-thin 64 KiB; dm-snapshot 4 KiB (it
# copies each chunk into every snapshot's own COW device, and 64 copies of
# 64 KiB per write would not fit the VM's memory).  Emulation (TCG)
# distorts absolute speed: compare each system with itself at 1 snapshot.
set -u
C=$CSNAP_BUILD/csnap
size_mb=${KP_SIZE_MB:-256}
writes=${KP_WRITES:-1024}
counts=${KP_COUNTS:-"0 1 4 16 64"}
export CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-3}
# shellcheck source=../tests/cluster/lib.sh
. "$CSNAP_SRC/tests/cluster/lib.sh"
W=/tmp/kp
mkdir -p $W
sectors=$((size_mb * 2048))
# No udev here: make the /dev/mapper nodes, and name devices in tables by
# number.
dmc() { dmsetup create "$@" && dmsetup mknodes; }
devno() { dmsetup info -c --noheadings -o major,minor "$1" | tr -d ' '; }

measure() {   # measure SYSTEM N DEV
  local iops
  iops=$(fio --name=kp --filename="$3" --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio \
             --direct=1 --size="${size_mb}M" --io_size=$((writes * 4))k --randrepeat=0 \
             --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{ printf "%.0f", $49 }')
  echo "KP $1 $2 ${iops:-0}"
}
fill() {
  fio --name=fill --filename="$1" --rw=write --bs=1M --ioengine=psync --direct=1 \
      --size="${size_mb}M" --eta=never --output=/dev/null
}
# run_counts SYSTEM DEV ADD_SNAPSHOT_FN
run_counts() {
  local have=0 n
  for n in $counts; do
    while [ $have -lt "$n" ]; do have=$((have + 1)); "$3" $have || { echo "KP-ERR $1 snapshot $have"; return 1; }; done
    measure "$1" "$n" "$2"
  done
}

# --- dm-snapshot ---------------------------------------------------------
dmsnap() {
  local base cow cowsz=$((64 * 2048))
  truncate -s "${size_mb}M" $W/o.img
  base=$(losetup -f --show $W/o.img)
  fill "$base"
  truncate -s $((65 * 64))M $W/cow.img
  cow=$(losetup -f --show $W/cow.img)
  dmc kp-real --table "0 $sectors linear $base 0"
  dmc kp-origin --table "0 $sectors snapshot-origin $(devno kp-real)"
  add() {
    dmc "kp-cow$1" --table "0 $cowsz linear $cow $(($1 * cowsz))" &&
    dmsetup suspend kp-origin &&
    dmc "kp-snap$1" --table "0 $sectors snapshot $(devno kp-real) $(devno "kp-cow$1") P 8" &&
    dmsetup resume kp-origin
  }
  run_counts dm-snapshot /dev/mapper/kp-origin add
  dmsetup remove_all --force >/dev/null 2>&1
  losetup -d "$base" "$cow"
  rm -f $W/o.img $W/cow.img
}

# --- dm-thin -------------------------------------------------------------
dmthin() {
  local meta data
  truncate -s 64M $W/meta.img
  truncate -s $((size_mb * 8))M $W/data.img
  meta=$(losetup -f --show $W/meta.img)
  data=$(losetup -f --show $W/data.img)
  dmc kp-pool --table "0 $((size_mb * 8 * 2048)) thin-pool $meta $data 128 0 1 skip_block_zeroing"
  dmsetup message kp-pool 0 "create_thin 0"
  dmc kp-thin --table "0 $sectors thin $(devno kp-pool) 0"
  fill /dev/mapper/kp-thin
  add() {
    dmsetup suspend kp-thin && dmsetup message kp-pool 0 "create_snap $1 0" && dmsetup resume kp-thin
  }
  run_counts dm-thin /dev/mapper/kp-thin add
  dmsetup remove_all --force >/dev/null 2>&1
  losetup -d "$meta" "$data"
  rm -f $W/meta.img $W/data.img
}

# --- csnap ---------------------------------------------------------------
csnap_sys() {
  local store origin
  cluster_start 1 $((size_mb * 7))M || { echo "KP-ERR csnap cluster_start"; return 1; }
  truncate -s "${size_mb}M" "$CLUSTER_ORIGIN"
  store=$(losetup -f --show "$CLUSTER_STORE") && origin=$(losetup -f --show "$CLUSTER_ORIGIN") || return 1
  fill "$origin"
  CLUSTER_STORE=$store CLUSTER_ORIGIN=$origin
  node_write_conf 1
  printf 'activate = origin\n' >>"$(node_conf 1)"
  "$C" mkstore --chunk-size 64K --max-snapshots 128 "$store" "$origin" >/dev/null || return 1
  "$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$store" >/dev/null || return 1
  node_spawn 1 server "$C" server --grace-ms 0 s >/dev/null
  wait_log 1 server 'master for store' 120 || { echo "KP-ERR csnap no master"; return 1; }
  node_spawn 1 export "$C" export s >/dev/null
  wait_for 60 test -S "$(node_dir 1)/run/s.sock" || { echo "KP-ERR csnap export"; return 1; }
  node_run 1 "$C" activate --wait 60 s >/dev/null 2>&1 || { echo "KP-ERR csnap activate"; return 1; }
  add() { node_run 1 "$C" snapshot create s "k$1" >/dev/null; }
  run_counts csnap /dev/mapper/csnap-s-origin add
  node_run 1 "$C" deactivate s >/dev/null 2>&1
  cluster_stop >/dev/null 2>&1
}

for s in ${KP_SYSTEMS:-csnap dm-thin dm-snapshot}; do
  case $s in
    csnap) csnap_sys ;;
    dm-thin) dmthin ;;
    dm-snapshot) dmsnap ;;
  esac
done
echo "KP-DONE"
