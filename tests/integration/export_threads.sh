#!/usr/bin/env bash
# tests/integration/export_threads.sh - `csnap export` with several loop
# threads (--threads, export_threads; src/export/loop.h): connections in
# transmission are spread over the threads, which share every lock of the
# data path under the export lock.  Checks, with real NBD clients on
# `csnap export --file --threads 4`:
#  - four connections land on four different loop threads;
#  - concurrent unaligned writes from those connections that share device
#    sectors but never bytes (read-modify-write on different threads: a
#    sector lock not shared between them would lose bytes), zeroes, FUA
#    and flushes, checked byte for byte against a model;
#  - fio, four connections with flushes (fsync=) and verification;
#  - SIGTERM while four connections write: the export stops at once with
#    status 0, no connection left behind, no error logged.
# san: yes
. "$(dirname "$0")/../functions.sh"
set -eo pipefail
here=$src/tests/integration
requires_libnbd
requires_fio_nbd

scratch_dir export-threads

truncate -s 64M "$dir/origin.img"
sock=$dir/origin.sock
uri="nbd+unix:///origin?socket=$sock"
"$C" -v -v export --file "$dir/origin.img" --socket "$sock" --threads 4 \
  >"$dir/export.out" 2>"$dir/export.err" &
pid=$!
pids+=($pid)
FAIL_LOGS+=("$dir/export.err")
wait_for 10 test -S "$sock" || fail "no socket at $sock"
grep -q 'export: 4 loop threads' "$dir/export.err" || fail "the export did not start 4 loop threads"

echo "== 4 connections: concurrent unaligned writes sharing sectors, zeroes, flushes vs a model"
$py "$here/export_stress.py" "$uri" $((32 << 20)) 3 80 4
# The stress script's 4 connections (and the final reader) went round
# robin over the threads: every thread served one.
for t in 0 1 2 3; do
  grep -q "on loop thread $t\$" "$dir/export.err" || fail "no connection on loop thread $t"
done
# the three extra loops started with their first connections
threads=$(find /proc/$pid/task -mindepth 1 -maxdepth 1 | wc -l)
[ "$threads" -ge 4 ] || fail "$threads threads in the export, expected at least 4"
if grep -q 'cannot start loop thread' "$dir/export.err"; then fail "a loop thread did not start"; fi

echo "== fio: 4 connections, flushes, verification"
cat >"$dir/verify.fio" <<EOF2
[global]
ioengine=nbd
uri=$uri
size=8M
iodepth=8
numjobs=4
offset_increment=8M
rw=randwrite
bsrange=512-64k
blockalign=512
fsync=16
verify=crc32c
verify_fatal=1
do_verify=1
[mc4]
EOF2
FAIL_LOGS+=("$dir/fio.log")
fio "$dir/verify.fio" >"$dir/fio.log" 2>&1 || fail "fio with verification"
if grep -qiE 'verify: bad|crc32c: verify failed|fio: pid=.*err=' "$dir/fio.log"; then fail "fio verify"; fi
grep -E 'err= *0' "$dir/fio.log" | head -1

echo "== SIGTERM while 4 connections write"
before=$(grep -c 'on loop thread' "$dir/export.err")
fio --name=load --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k --iodepth=16 --numjobs=4 \
  --size=16M --time_based --runtime=30 >"$dir/load.log" 2>&1 &
fio_pid=$!
pids+=($fio_pid)
wait_for 10 sh -c "[ \$(grep -c 'on loop thread' '$dir/export.err') -ge $((before + 4)) ]" ||
  fail "the load's connections did not arrive"
sleep 1
kill -TERM "$pid"
# bounded: the export must not wait for the clients to go away
wait_for 20 sh -c "! kill -0 $pid 2>/dev/null" || fail "export still running 20 s after SIGTERM"
rc=0; wait "$pid" || rc=$?
[ $rc -eq 0 ] || fail "export exited with $rc"
wait "$fio_pid" 2>/dev/null || true	# its connections were closed under it
pids=()
[ ! -e "$sock" ] || fail "socket left behind"
no_sanitizer_reports "$dir"/*.err
if grep -E 'ERROR|still open at shutdown' "$dir/export.err"; then fail "the export logged an error"; fi
echo "PASS"
