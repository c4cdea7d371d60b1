#!/usr/bin/env bash
# tests/integration/export_plain.sh - `csnap export --file`: the NBD server
# and its data path (no store) against NBD clients nobody here wrote:
# nbdinfo, nbdcopy, fio's nbd engine with verification, qemu-img, and
# libnbd from Python for concurrent unaligned I/O and hostile clients.
# san: yes
set -euo pipefail

csnap=$CSNAP_BUILD/csnap
here=$CSNAP_SRC/tests/integration
py=/usr/bin/python3
for t in nbdinfo nbdcopy fio qemu-img; do
  command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
$py -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd not installed"; exit 77; }
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "SKIP: fio has no nbd engine"; exit 77; }

dir=$(mktemp -d /var/tmp/csnap-export-plain.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# start_export LOG ARGS... : starts csnap export in the background.
start_export() {
  local log=$1; shift
  "$csnap" -v export "$@" >"$log.out" 2>"$log.err" &
  pids+=($!)
}

wait_for_socket() {
  for _ in $(seq 100); do
    [ -S "$1" ] && return 0
    sleep 0.1
  done
  echo "FAIL: no socket at $1"; cat "$dir"/*.err; exit 1
}

truncate -s 96M "$dir/origin.img"
head -c 96M /dev/urandom >"$dir/random.img"
sock=$dir/origin.sock
uri="nbd+unix:///origin?socket=$sock"
start_export "$dir/main" --file "$dir/origin.img" --socket "$sock"
wait_for_socket "$sock"

echo "== nbdinfo --list"
nbdinfo --list "nbd+unix://?socket=$sock" | tee "$dir/list"
grep -q 'export="origin"' "$dir/list"
grep -q 'export-size: 100663296' "$dir/list"

echo "== nbdcopy: random data in, read back identical"
nbdcopy "$dir/random.img" "$uri"
nbdcopy "$uri" "$dir/back.img"
cmp "$dir/random.img" "$dir/back.img"
cmp "$dir/random.img" "$dir/origin.img"	# really on the file

echo "== fio nbd engine with verification"
cat >"$dir/verify.fio" <<EOF
[global]
ioengine=nbd
uri=$uri
size=48M
iodepth=32
verify=crc32c
verify_fatal=1
do_verify=1
[rand4k]
rw=randwrite
bs=4k
[mixed]
offset=48M
rw=randwrite
bsrange=512-256k
blockalign=512
EOF
fio "$dir/verify.fio" >"$dir/fio.log" 2>&1 || { cat "$dir/fio.log"; exit 1; }
grep -E 'err= *0' "$dir/fio.log" | head -2
! grep -qiE 'verify: bad|crc32c: verify failed|fio: pid=.*err=' "$dir/fio.log"

echo "== qemu-img convert of the export equals the file"
qemu-img convert -f raw -O raw "$uri" "$dir/qemu.img"
cmp "$dir/qemu.img" "$dir/origin.img"

echo "== concurrent unaligned writes, zeroes and reads vs a model"
$py "$here/export_stress.py" "$uri" $((32 << 20)) 1 80

echo "== malformed and hostile clients"
start_export "$dir/ro" --file "$dir/random.img" --readonly --name snap-ro --socket "$dir/ro.sock"
wait_for_socket "$dir/ro.sock"
$py "$here/export_badclient.py" "$sock" origin "$dir/ro.sock" snap-ro

echo "== TCP listener"
start_export "$dir/tcp" --file "$dir/origin.img" --tcp 127.0.0.1:0
for _ in $(seq 100); do grep -q 'tcp port' "$dir/tcp.out" && break; sleep 0.1; done
port=$(awk '/tcp port/ {print $3}' "$dir/tcp.out")
[ -n "$port" ]
nbdinfo "nbd://127.0.0.1:$port/origin" | grep -q 'export-size: 100663296'
nbdcopy "nbd://127.0.0.1:$port/origin" "$dir/tcp.img"
cmp "$dir/tcp.img" "$dir/origin.img"

echo "== orderly shutdown on SIGTERM"
for i in "${!pids[@]}"; do
  kill -TERM "${pids[$i]}"
  rc=0; wait "${pids[$i]}" || rc=$?
  [ $rc -eq 0 ] || { echo "FAIL: export exited with $rc"; cat "$dir"/*.err; exit 1; }
done
pids=()
[ ! -e "$sock" ] || { echo "FAIL: socket left behind"; exit 1; }
if grep -E 'ERROR|AddressSanitizer|runtime error' "$dir"/*.err; then exit 1; fi
echo "PASS"
