#!/usr/bin/env bash
# tests/integration/export_plain.sh - `csnap export --file`: the NBD server
# and its data path (no store) against NBD clients nobody here wrote:
# nbdinfo, nbdcopy, fio's nbd engine with verification, qemu-img, and
# libnbd from Python for concurrent unaligned I/O and hostile clients.
# san: yes
. "$(dirname "$0")/../functions.sh"
set -eo pipefail
here=$src/tests/integration
requires nbdinfo nbdcopy qemu-img
requires_libnbd
requires_fio_nbd

scratch_dir export-plain

# spawn_export LOG ARGS... : starts csnap export in the background (no
# cluster: a plain file), its stderr shown by fail.
spawn_export() {
  local log=$1; shift
  "$C" -v export "$@" >"$log.out" 2>"$log.err" &
  pids+=($!)
  FAIL_LOGS+=("$log.err")
}
wait_for_socket() { wait_for 10 test -S "$1" || fail "no socket at $1"; }

truncate -s 96M "$dir/origin.img"
head -c 96M /dev/urandom >"$dir/random.img"
sock=$dir/origin.sock
uri="nbd+unix:///origin?socket=$sock"
spawn_export "$dir/main" --file "$dir/origin.img" --socket "$sock"
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
FAIL_LOGS+=("$dir/fio.log")
fio "$dir/verify.fio" >"$dir/fio.log" 2>&1 || fail "fio with verification"
grep -E 'err= *0' "$dir/fio.log" | head -2
# (`! grep` would not stop a set -e script: test it explicitly)
if grep -qiE 'verify: bad|crc32c: verify failed|fio: pid=.*err=' "$dir/fio.log"; then fail "fio verify"; fi

echo "== qemu-img convert of the export equals the file"
qemu-img convert -f raw -O raw "$uri" "$dir/qemu.img"
cmp "$dir/qemu.img" "$dir/origin.img"

echo "== concurrent unaligned writes, zeroes and reads vs a model"
$py "$here/export_stress.py" "$uri" $((32 << 20)) 1 80

echo "== malformed and hostile clients"
spawn_export "$dir/ro" --file "$dir/random.img" --readonly --name snap-ro --socket "$dir/ro.sock"
wait_for_socket "$dir/ro.sock"
$py "$here/export_badclient.py" "$sock" origin "$dir/ro.sock" snap-ro

echo "== TCP listener"
spawn_export "$dir/tcp" --file "$dir/origin.img" --tcp 127.0.0.1:0
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
  [ $rc -eq 0 ] || fail "export exited with $rc"
done
pids=()
[ ! -e "$sock" ] || fail "socket left behind"
no_sanitizer_reports "$dir"/*.err
if grep -E 'ERROR' "$dir"/*.err; then fail "an export logged an error"; fi
echo "PASS"
