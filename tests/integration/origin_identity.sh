#!/usr/bin/env bash
# tests/integration/origin_identity.sh - wrong-origin protection.
#
# mkstore records the origin's size and identity (src/store/origin_id.h);
# `csnap check STORE ORIGIN`, `csnap server` (before it competes for the
# master lease) and `csnap export` refuse any other device with a one-line
# reason naming both identities, and accept the right one.  Covered: file
# origins (xattr mark), loop devices over them (mark on the backing file),
# an origin of another size, one marked by another store (mkstore refuses
# to make a second store for it without --force), a copy of the
# right file, sysfs wwids (a fake sysfs tree over real loop devices, via
# $CSNAP_SYSFS: whole disk, partition, an id too long for the superblock),
# and the server and export of a real cluster (real sanlock).
# san: yes
. "$(dirname "$0")/../functions.sh"
loops=()
cleanup() {
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
  cluster_stop
}

cluster_start 2 64M
trap cleanup EXIT
d=$CLUSTER_DIR
origin_fill random 16M

# refused WHAT PATTERN CMD...: CMD must fail with a one-line error matching PATTERN
refused() {
  local what=$1 pat=$2 out; shift 2
  if out=$("$@" 2>&1); then fail "$what: accepted: $out"; fi
  echo "$out" | grep -Eq "$pat" || fail "$what: unexpected message: $out"
  echo "ok  refused $what: $(echo "$out" | grep -E "$pat" | head -1)"
}
accepted() {
  local what=$1 out; shift
  out=$("$@" 2>&1) || fail "$what: refused: $out"
  echo "ok  accepted $what"
}

echo "== files"
out=$("$C" mkstore --chunk-size 64K "$CLUSTER_STORE" "$CLUSTER_ORIGIN") || fail "mkstore: $out"
uuid=$(echo "$out" | awk '/uuid/ {print $2}')
echo "$out" | grep -q "id mark:$uuid" || fail "mkstore did not mark the origin file: $out"
"$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null || fail "lease init"
accepted "the right origin" "$C" check "$CLUSTER_STORE" "$CLUSTER_ORIGIN"
cp "$CLUSTER_ORIGIN" "$d/copy.img"		# same size and data, but not the origin
truncate -s 16M "$d/blank.img"
truncate -s 32M "$d/big.img"
truncate -s 8M "$d/lo-small.img"
refused "a copy of the origin" "not this store's origin: it has id none \(no user.csnap.store xattr\), the store was made for mark:$uuid" \
  "$C" check "$CLUSTER_STORE" "$d/copy.img"
refused "a blank file of the right size" "not this store's origin" "$C" check "$CLUSTER_STORE" "$d/blank.img"
# (a bigger device with the recorded identity is the origin extended and
# not yet resized, accepted; this one lacks the mark)
refused "a bigger file" "not this store's origin: it has id none" \
  "$C" check "$CLUSTER_STORE" "$d/big.img"
refused "a smaller file" "is 8388608 bytes, but the store was made for an origin of 16777216 bytes" \
  "$C" check "$CLUSTER_STORE" "$d/lo-small.img"
truncate -s 64M "$d/other-store.img"
out=$("$C" mkstore "$d/other-store.img" "$d/blank.img") || fail "mkstore other: $out"
other=$(echo "$out" | awk '/uuid/ {print $2}')
refused "another store's origin" "it has id mark:$other, the store was made for mark:$uuid" \
  "$C" check "$CLUSTER_STORE" "$d/blank.img"
truncate -s 64M "$d/third-store.img"
refused "a second store for a marked origin (no --force)" "origin $d/blank.img is marked as the origin of store $other" \
  "$C" mkstore "$d/third-store.img" "$d/blank.img"
refused "a missing origin" "origin: .*No such file" "$C" check "$CLUSTER_STORE" "$d/none.img"

if command -v losetup >/dev/null && l=$(losetup -f --show "$CLUSTER_ORIGIN" 2>/dev/null); then
  echo "== loop devices"
  loops+=("$l")
  lb=$(losetup -f --show "$d/copy.img") || fail "losetup"
  loops+=("$lb")
  accepted "a loop device over the origin" "$C" check "$CLUSTER_STORE" "$l"
  refused "a loop device over the copy" "it has id none" "$C" check "$CLUSTER_STORE" "$lb"
  # A store made for a loop device marks its backing file.
  truncate -s 64M "$d/loop-store.img"
  truncate -s 8M "$d/lo.img"
  l2=$(losetup -f --show "$d/lo.img") || fail "losetup"
  loops+=("$l2")
  out=$("$C" mkstore "$d/loop-store.img" "$l2") || fail "mkstore on $l2: $out"
  echo "$out" | grep -q "id mark:" || fail "no mark for a loop device: $out"
  accepted "the loop store's origin by its backing file" "$C" check "$d/loop-store.img" "$d/lo.img"
  refused "the wrong loop device" "it has id mark:$uuid, the store was made for mark:" \
    "$C" check "$d/loop-store.img" "$l"

  echo "== sysfs ids (fake sysfs tree over the real loop devices)"
  fs=$d/sys
  mkdev() {	# mkdev DEV DIR: /sys/dev/block/MAJ:MIN -> DIR
    local mm; mm=$(printf '%d:%d' "0x$(stat -c %t "$1")" "0x$(stat -c %T "$1")")
    mkdir -p "$fs/dev/block" "$2"
    ln -sfn "$2" "$fs/dev/block/$mm"
  }
  mkdev "$l" "$fs/devices/host0/block/sdx"
  echo "naa.600140512345678901234567890abcde" >"$fs/devices/host0/block/sdx/wwid"
  mkdev "$lb" "$fs/devices/host1/block/sdy"
  echo "naa.6001405ffffffffffffffffffffffff0" >"$fs/devices/host1/block/sdy/wwid"
  truncate -s 64M "$d/wwid-store.img"
  out=$(CSNAP_SYSFS=$fs "$C" mkstore --force "$d/wwid-store.img" "$l") || fail "mkstore wwid: $out"
  echo "$out" | grep -q "id wwid:naa.600140512345678901234567890abcde" || fail "wwid not recorded: $out"
  accepted "the disk with the recorded wwid" env CSNAP_SYSFS="$fs" "$C" check "$d/wwid-store.img" "$l"
  refused "a disk with another wwid" "it has id wwid:naa.6001405ffffffffffffffffffffffff0, the store was made for wwid:naa.600140512345678901234567890abcde" \
    env CSNAP_SYSFS="$fs" "$C" check "$d/wwid-store.img" "$lb"
  rm "$fs/devices/host1/block/sdy/wwid"
  refused "a disk without a wwid" "it has id none, the store was made for wwid:" \
    env CSNAP_SYSFS="$fs" "$C" check "$d/wwid-store.img" "$lb"
  # A partition: the disk's wwid and the partition number.
  mkdev "$lb" "$fs/devices/host1/block/sdy/sdy2"
  echo 2 >"$fs/devices/host1/block/sdy/sdy2/partition"
  echo "t10.ATA     A DISK MODEL NAME THAT IS RATHER LONG              SERIAL0123456789" \
    >"$fs/devices/host1/block/sdy/wwid"
  out=$(CSNAP_SYSFS=$fs "$C" mkstore --force "$d/wwid-store.img" "$lb") || fail "mkstore partition: $out"
  echo "$out" | grep -Eq "id wwid#[0-9a-f]{32}\)" || fail "long partition wwid not hashed: $out"
  accepted "the partition" env CSNAP_SYSFS="$fs" "$C" check "$d/wwid-store.img" "$lb"
  echo 3 >"$fs/devices/host1/block/sdy/sdy2/partition"
  refused "another partition of the disk" "it has id wwid#[0-9a-f]{32}, the store was made for wwid#" \
    env CSNAP_SYSFS="$fs" "$C" check "$d/wwid-store.img" "$lb"
else
  part_missing "loop devices (losetup -f --show)"
fi

echo "== server and export on a real cluster"
# node1 points at the copy: its server exits before competing for the master lease.
spid=$(node_spawn 1 server "$C" server --origin "$d/copy.img" --grace-ms 300 s)
wait_for 30 bash -c "! kill -0 $spid 2>/dev/null" ||
  fail "server with the wrong origin still runs"
grep -q "not this store's origin: it has id none .*the store was made for mark:$uuid" "$(node_log 1 server)" ||
  fail "server: no clear reason: $(cat "$(node_log 1 server)")"
grep -q "master for store" "$(node_log 1 server)" && fail "server with the wrong origin became master"
echo "ok  refused by the server: $(grep -o "origin .*" "$(node_log 1 server)" | head -1)"
start_master 2 --grace-ms 300
echo "ok  accepted by the server"

sed -i "s|^origin = .*|origin = $d/blank.img|" "$(node_conf 1)"
out=$(node_run 1 timeout 30 "$C" export --socket "$d/e1.sock" s 2>&1) && fail "export with the wrong origin ran"
echo "$out" | grep -q "origin $d/blank.img is not this store's origin: it has id mark:$other" ||
  fail "export: no clear reason: $out"
echo "ok  refused by the export: $(echo "$out" | tail -1)"
start_export 2 "$d/e2.sock" --socket "$d/e2.sock" s
echo "ok  accepted by the export"
"$C" check "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || fail "check at the end"
echo "PASS"
