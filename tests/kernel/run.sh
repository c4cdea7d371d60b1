#!/usr/bin/env bash
# tests/kernel/run.sh BUILD - `make check-kernel`: boots the installed
# Debian kernel under qemu (TCG: /dev/kvm hangs guests on these machines)
# with the initramfs of vm-build.sh and runs tests/kernel/guest.sh in it:
# csnap activation on real nbd and device-mapper with a two-node cluster.
# Prints the guest's results and its closing "N passed, N failed,
# N skipped" line, writes it to BUILD/kernel-summary, and exits 1 if any
# check failed, the VM could not be built, or the guest did not finish.
set -u
build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /var/tmp/csnap-vm.XXXXXX)
trap 'rm -rf "$W"' EXIT
summary=$build/kernel-summary
echo "0 1 0" >"$summary"    # until the guest says otherwise: one failure

if ! bash "$src/tests/kernel/vm-build.sh" "$build" "$W"; then
  echo "FAIL  kernel VM could not be built (see above)"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
t0=$SECONDS
timeout "${VM_TIMEOUT:-900}" qemu-system-x86_64 -m 2048 -smp 2 -nographic -no-reboot \
  -kernel "$W/kernel" -initrd "$W/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 loglevel=4" >"$W/vm.log" 2>&1
rc=$?
tr -d '\r' <"$W/vm.log" >"$W/vm.txt"
grep -E '^(PASS|FAIL|SKIP|INFO|==) ' "$W/vm.txt"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$W/vm.txt" | tail -1)
if [ -z "$line" ] || ! grep -q '^VM-DONE' "$W/vm.txt"; then
  echo "FAIL  the guest did not finish (qemu exit $rc after $((SECONDS - t0)) s); console tail:"
  tail -60 "$W/vm.txt" | sed 's/^/    | /'
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
set -- $line
echo "$1 $3 $5" >"$summary"
echo "kernel VM: $((SECONDS - t0)) s"
echo "$line"
[ "$3" -eq 0 ]
