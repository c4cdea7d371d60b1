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
requires_libnbd
requires qemu-img

cluster_start 2 256M
origin_fill random 64M
store_init
d=$CLUSTER_DIR

master_standby --grace-ms 0

sock=$d/node2.sock
start_export 2 "$sock" --socket "$sock" s

workload_start "$sock" 11

echo "== kill the master process on node1"
node_kill_procs 1 KILL
wait_log 2 server 'master for store' 60 || fail "node2 did not take over"
wait_log 2 export 'new master' 60 || fail "export did not reconnect to the new master"
workload_progress "after the failover"

echo "== snapshot on the new master (barrier over the new connection)"
node_run 2 "$C" snapshot create s s2 >/dev/null || fail "create s2 on node2"
wait_exported "$sock" s2

echo "== node1 back as standby; orderly hand-over from node2"
start_standby 1 --grace-ms 0
# Only node2's server: the export there must keep running.
for pid in $(cat "$(node_dir 2)/pids"); do
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q ' server '; then kill -TERM "$pid"; fi
done
wait_log 1 server 'master for store' 60 || fail "node1 did not take over again"
workload_progress "after the hand-over"

workload_stop
grep -E "re-sending|re-uploading|new master|lost the master" "$(node_log 2 export)"
grep -q 'lost the master' "$(node_log 2 export)" || fail "export never noticed the master change"

node_kill_procs 2 TERM
node_kill_procs 1 TERM
sleep 1
no_sanitizer_reports "$(node_log 2 export)"
check_store
echo "PASS"
