#!/usr/bin/env bash
# tests/kernel/vm-build.sh BUILD WORKDIR - builds the initramfs of the
# kernel test VM: the installed Debian kernel's modules for nbd,
# device-mapper, loop and ext4; busybox; bash, sanlock, fio, mke2fs,
# util-linux tools, udevd with the dm rules and csnap's, and csnap itself,
# each with its shared libraries (from ldd).  The guest runs
# tests/kernel/guest.sh.  Writes WORKDIR/initrd.gz and WORKDIR/kernel;
# exits non-zero (saying why) when something it needs is missing.
set -euo pipefail
build=$(cd "$1" && pwd)
W=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "vm-build: $*" >&2; exit 1; }

K=$(ls /lib/modules 2>/dev/null | sort -V | tail -1)
[ -n "$K" ] && [ -f "/boot/vmlinuz-$K" ] || die "no kernel in /lib/modules and /boot (linux-image-amd64 is in scripts/install-deps.sh)"
[ -x /bin/busybox ] || die "no /bin/busybox (busybox-static)"
command -v qemu-system-x86_64 >/dev/null || die "no qemu-system-x86_64 (qemu-system-x86)"
[ -x "$build/csnap" ] || die "no $build/csnap (make all first)"

R=$W/root
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,run,etc,mnt,var/tmp,lib/modules,csnap/build,csnap/src/tests}
cp /bin/busybox "$R/bin/"
for a in $(/bin/busybox --list); do
  [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"
done

copy_bin() {   # copy_bin PATH [NAME]: a binary into /bin with its libraries
  local f=$1 name=${2:-$(basename "$1")} l
  rm -f "$R/bin/$name"
  cp -L "$f" "$R/bin/$name"
  for l in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
    [ -e "$R$l" ] && continue
    mkdir -p "$R$(dirname "$l")"
    cp -L "$l" "$R$l"
  done
}
export PATH=$PATH:/usr/sbin:/sbin
for n in bash sanlock fio mke2fs fsfreeze blkid losetup setsid dmsetup udevadm \
         timeout stat mktemp date sleep blockdev; do
  b=$(command -v "$n") || die "missing $n (scripts/install-deps.sh installs it)"
  copy_bin "$b"
done
copy_bin "$build/csnap"
cp "$build/csnap" "$R/csnap/build/csnap"
ln -sf /bin/mke2fs "$R/bin/mkfs.ext4"
ln -sf /bin/udevadm "$R/bin/systemd-udevd"
cp /etc/mke2fs.conf "$R/etc/" 2>/dev/null || true
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"

# udev: the device-mapper rules, persistent storage links, csnap's rules
mkdir -p "$R/lib/udev/rules.d" "$R/etc/udev"
for r in 50-udev-default 55-dm 60-block 60-persistent-storage 60-persistent-storage-dm 95-dm-notify; do
  [ -f "/lib/udev/rules.d/$r.rules" ] && cp "/lib/udev/rules.d/$r.rules" "$R/lib/udev/rules.d/"
done
for r in "$src"/contrib/*.rules; do
  sed 's|/usr/sbin/csnap|/bin/csnap|g' "$r" >"$R/lib/udev/rules.d/$(basename "$r")"
done
ln -s /bin/dmsetup "$R/sbin/dmsetup"
for h in /lib/udev/ata_id /lib/udev/scsi_id; do [ -x "$h" ] && cp "$h" "$R/lib/udev/"; done

# kernel modules, in dependency order (modprobe --show-depends on the host)
: >"$R/modules.load"
for m in loop nbd dm-mod ext4; do
  modprobe -S "$K" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}' |
  while read -r ko; do
    dst=$R/lib/modules/$(basename "$ko" | sed 's/\.xz$//; s/\.zst$//')
    [ -f "$dst" ] && continue
    case "$ko" in
      *.xz) xz -dc "$ko" >"$dst" ;;
      *.zst) zstd -qdc "$ko" >"$dst" ;;
      *) cp "$ko" "$dst" ;;
    esac
    echo "$(basename "$dst")" >>"$R/modules.load"
  done
done
grep -q '^nbd.ko$' "$R/modules.load" || die "kernel $K has no nbd module"
grep -q '^dm-mod.ko$' "$R/modules.load" || die "kernel $K has no dm-mod module"

cp "$src/tests/cluster/lib.sh" "$R/csnap/src/tests/lib.sh"
mkdir -p "$R/csnap/src/tests/cluster" "$R/csnap/src/tests/kernel"
cp "$src/tests/cluster/lib.sh" "$R/csnap/src/tests/cluster/"
cp "$src/tests/kernel/guest.sh" "$R/csnap/src/tests/kernel/"

cat >"$R/init" <<'EOS'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs -o size=1200m tmp /tmp; mount -t tmpfs tmp /var/tmp; mount -t tmpfs run /run
mkdir -p /dev/shm /dev/pts; mount -t tmpfs shm /dev/shm
while read -r m; do insmod /lib/modules/$m 2>/dev/null || echo "insmod $m failed"; done </modules.load
ip link set lo up
echo "VM-UP kernel $(uname -r)"
cd /tmp && CSNAP_SRC=/csnap/src CSNAP_BUILD=/csnap/build bash /csnap/src/tests/kernel/guest.sh 2>&1
echo "VM-DONE"
poweroff -f
EOS
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$W/initrd.gz")
ln -sf "/boot/vmlinuz-$K" "$W/kernel"
echo "vm-build: $W/initrd.gz ($(du -h "$W/initrd.gz" | cut -f1)), kernel $K"
