#!/usr/bin/env bash
# Installs every Debian package csnap needs to build, test and demo.
# Idempotent and quiet when nothing is missing: both `make demo` and
# `make check` call it first, so a fresh Debian 12 machine needs nothing else.
#
#   scripts/install-deps.sh [bench]
# `bench` (what `make bench` runs) also installs the benchmarks' own tools,
# which neither the build nor `make check` needs.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config
  sanlock libsanlock-dev
  libdevmapper-dev libaio-dev libblkid-dev uuid-dev libsodium-dev
  # csnap send --compress (zstd per data record)
  libzstd-dev
  # TLS for TCP NBD exports (export_tls); certtool and psktool for its tests
  libgnutls28-dev gnutls-bin
  libcmocka-dev
  libnbd-bin python3-libnbd nbdkit fio qemu-utils
  util-linux e2fsprogs iproute2 procps psmisc
  # tests/integration/store_upgrade.sh: the version-1 store image (tests/data)
  xz-utils
  cppcheck
  # make fuzz / the fuzz targets in make check: clang and its libFuzzer
  clang libclang-rt-dev
  # make check-kernel: a Debian kernel (nbd, device-mapper) booted under qemu
  # with a busybox initramfs carrying csnap and its test tools
  linux-image-amd64 qemu-system-x86 busybox-static
  udev dmsetup kmod cpio mount
)
if [ "${1:-}" = bench ]; then
  PACKAGES+=(
    # make bench: the PNG plots of bench/results/ (pngcairo terminal)
    gnuplot-nox
  )
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing: ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
