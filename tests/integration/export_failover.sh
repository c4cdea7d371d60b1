#!/usr/bin/env bash
# tests/integration/export_failover.sh - the data path across master
# changes, with real sanlock and real servers (tests/cluster/lib.sh).
#
# node1 and node2 run servers, node2 runs the export.  A libnbd workload
# writes the origin (copy-outs for snapshot s1) and reads s1 without
# pause while: the master process on node1 is killed (node2 takes over);
# a snapshot is created on the new master (barrier over the new
# connection); the master is handed back with SIGTERM.  Every
# acknowledged write must be there, every read must be right (origin
# against a model, s1 against its content at snapshot time), and the
# export must have reconnected and re-sent its queries.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires_run python3-libnbd "$py" -c 'import nbd'
requires qemu-img

cluster_start 2 256M
truncate -s 64M "$CLUSTER_ORIGIN"
head -c 64M /dev/urandom >"$CLUSTER_ORIGIN"
store_init
d=$CLUSTER_DIR
FAIL_LOGS=("$d/workload.log")

start_master 1 --grace-ms 0
start_standby 2 --grace-ms 0

sock=$d/node2.sock
start_export 2 "$sock" --socket "$sock" s
listed() { nbdinfo --list "nbd+unix://?socket=$sock" 2>/dev/null | grep -q "export=\"$1\""; }

node_run 1 "$C" snapshot create s s1 >/dev/null || fail "create s1"
wait_for 20 listed s1 || fail "s1 not exported"
qemu-img convert -f raw -O raw "nbd+unix:///origin?socket=$sock" "$d/s1.ref" || fail "reference"

$py "$src/tests/integration/export_workload.py" "nbd+unix:///origin?socket=$sock" \
  "nbd+unix:///s1?socket=$sock" "$d/s1.ref" "$d/stop" 11 >"$d/workload.log" 2>&1 &
wl=$!
wait_for 30 grep -q 'batches 50' "$d/workload.log" || fail "workload does not progress"

echo "== kill the master process on node1"
node_kill_procs 1 KILL
wait_log 2 server 'master for store' 60 || fail "node2 did not take over"
wait_log 2 export 'new master' 60 || fail "export did not reconnect to the new master"
n0=$(grep -c '^batches' "$d/workload.log")
wait_for 60 bash -c "[ \$(grep -c '^batches' '$d/workload.log') -ge $((n0 + 2)) ]" ||
  fail "workload stalled after the failover"

echo "== snapshot on the new master (barrier over the new connection)"
node_run 2 "$C" snapshot create s s2 >/dev/null || fail "create s2 on node2"
wait_for 20 listed s2 || fail "s2 not exported"

echo "== node1 back as standby; orderly hand-over from node2"
start_standby 1 --grace-ms 0
# Only node2's server: the export there must keep running.
for pid in $(cat "$(node_dir 2)/pids"); do
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q ' server '; then kill -TERM "$pid"; fi
done
wait_log 1 server 'master for store' 60 || fail "node1 did not take over again"
n1=$(grep -c '^batches' "$d/workload.log")
wait_for 60 bash -c "[ \$(grep -c '^batches' '$d/workload.log') -ge $((n1 + 2)) ]" ||
  fail "workload stalled after the hand-over"

touch "$d/stop"
wait "$wl" || fail "workload found wrong data"
tail -1 "$d/workload.log"
grep -E "re-sending|re-uploading|new master|lost the master" "$(node_log 2 export)"
grep -q 'lost the master' "$(node_log 2 export)" || fail "export never noticed the master change"

qemu-img convert -f raw -O raw "nbd+unix:///s1?socket=$sock" "$d/s1.after" || fail "read s1"
cmp "$d/s1.after" "$d/s1.ref" || fail "s1 changed"
node_kill_procs 2 TERM
node_kill_procs 1 TERM
sleep 1
no_sanitizer_reports "$(node_log 2 export)"
check_store
echo "PASS"
