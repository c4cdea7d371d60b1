#!/usr/bin/env bash
# bench/kernel_peers.sh - csnap against the kernel's own snapshot targets,
# dm-snapshot and dm-thin: 4 KiB random writes on the origin with 0, 1, 4,
# 16 and 64 snapshots, in the Debian kernel booted under qemu that `make
# check-kernel` uses (tests/kernel/vm-build.sh builds its initramfs; this
# script adds the dm-snapshot and dm-thin-pool modules and runs
# bench/kernel_guest.sh instead of the tests).
#
#   bench/kernel_peers.sh [BUILD_DIR]
#   env: RESULTS append "kp SYSTEM SNAPSHOTS 1 IOPS" lines (bench/run.sh)
#        KP_WRITES, KP_SIZE_MB, KP_COUNTS, KP_SYSTEMS (bench/kernel_guest.sh)
#        VM_TIMEOUT seconds (default 1500), KP_LOG file for the VM console
# The VM runs under TCG emulation on a shared machine: only each system's
# ratio to itself at 1 snapshot means anything.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
results=${RESULTS:-/dev/null}
W=$(mktemp -d /var/tmp/csnap-kp.XXXXXX)
trap 'rm -rf "$W"' EXIT

bash "$src/tests/kernel/vm-build.sh" "$build" "$W" >/dev/null
R=$W/root
K=$(ls /lib/modules | sort -V | tail -1)
for m in dm-snapshot dm-thin-pool; do
  modprobe -S "$K" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}' |
  while read -r ko; do
    dst=$R/lib/modules/$(basename "$ko" | sed 's/\.xz$//; s/\.zst$//')
    [ -f "$dst" ] && continue
    case "$ko" in
      *.xz) xz -dc "$ko" >"$dst" ;;
      *.zst) zstd -qdc "$ko" >"$dst" ;;
      *) cp "$ko" "$dst" ;;
    esac
    basename "$dst" >>"$R/modules.load"
  done
done
grep -q '^dm-snapshot.ko$' "$R/modules.load" && grep -q '^dm-thin-pool.ko$' "$R/modules.load" ||
  { echo "kernel_peers: kernel $K lacks dm-snapshot or dm-thin-pool" >&2; exit 1; }
cp "$src/bench/kernel_guest.sh" "$R/csnap/src/kernel_guest.sh"
envs=""
for v in KP_WRITES KP_SIZE_MB KP_COUNTS KP_SYSTEMS; do
  [ -z "${!v:-}" ] || envs+="$v='${!v}' "
done
cat >"$R/init" <<EOS
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs -o size=5g tmp /tmp; mount -t tmpfs -o size=5g tmp /var/tmp; mount -t tmpfs run /run
mkdir -p /dev/shm /dev/pts; mount -t tmpfs shm /dev/shm
while read -r m; do insmod /lib/modules/\$m 2>/dev/null || echo "insmod \$m failed"; done </modules.load
ip link set lo up
echo "VM-UP kernel \$(uname -r)"
cd /tmp && $envs CSNAP_SRC=/csnap/src CSNAP_BUILD=/csnap/build bash /csnap/src/kernel_guest.sh 2>&1
echo "VM-DONE"
poweroff -f
EOS
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$W/initrd-kp.gz")

rc=0
timeout "${VM_TIMEOUT:-1500}" qemu-system-x86_64 -m 6144 -smp 2 -nographic -no-reboot \
  -kernel "$W/kernel" -initrd "$W/initrd-kp.gz" \
  -append "console=ttyS0 quiet panic=-1 loglevel=4" >"$W/vm.log" 2>&1 || rc=$?
tr -d '\r' <"$W/vm.log" >"$W/vm.txt"
[ -z "${KP_LOG:-}" ] || cp "$W/vm.txt" "$KP_LOG"
# (a KP line may follow other console output on the same line)
grep -oE 'KP(-ERR)? .*' "$W/vm.txt" || true
grep -oE 'KP [a-z-]+ [0-9]+ [0-9]+' "$W/vm.txt" | awk '{ printf "kp\t%s\t%s\t1\t%s\n", $2, $3, $4 }' >>"$results"
if ! grep -q '^KP-DONE' "$W/vm.txt"; then
  echo "kernel_peers: the guest did not finish (qemu exit $rc); console tail:" >&2
  tail -30 "$W/vm.txt" | sed 's/^/    | /' >&2
  exit 1
fi
