#!/usr/bin/env bash
# tests/integration/agent_frozen.sh - a frozen master is replaced (issue 9,
# defect 4), with real agents, servers, sanlock and a libnbd client.
#
# Two nodes run `csnap agent` (heartbeat_timeout = 2); node1's server is
# master, node2 runs the export and a checked libnbd workload (origin
# writes needing copy-outs for snapshot s1, snapshot reads).  SIGSTOP of
# node1's server: sanlock keeps its lease alive, so only node1's agent can
# notice (the stopped loop answers no heartbeat) and SIGKILL it.  Checks:
# node2 becomes master within a bound, node1's agent says why it killed
# its server and starts a new standby, the workload goes on and finds every
# acknowledged write and the snapshot intact; the busy but healthy node2
# master is never killed; and the write log (tests/cluster/wlog.sh) shows
# no origin write into a chunk s1 still read from the origin.  Prints the
# takeover time and longest stall.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires_libnbd
requires qemu-img

cluster_start 2 256M
origin_fill random 64M
store_init
. "$src/tests/cluster/wlog.sh"
wlog_start
d=$CLUSTER_DIR
for i in 1 2; do echo "heartbeat_timeout = 2" >>"$(node_conf $i)"; done

node_spawn 1 agent "$C" agent --poll-ms 100 >/dev/null
wait_log 1 agent 'master for store' 60 || fail "node1's server did not become master"
node_spawn 2 agent "$C" agent --poll-ms 100 >/dev/null
wait_log 2 agent 'standby for store' 60 || fail "node2's server is not standby"
wait_log 1 agent 'is master.*heartbeat every' 20 || fail "node1's agent does not heartbeat its master"

sock=$d/node2.sock
start_export 2 "$sock" --socket "$sock" s
workload_start "$sock" 7

frozen=$(node_run 1 "$C" agent status | sed -n 's/.* server_pid=\([0-9]*\) .*/\1/p')
[ -n "$frozen" ] && [ "$frozen" -gt 0 ] || fail "no server pid on node1: $(node_run 1 "$C" agent status)"
echo "== SIGSTOP node1's master server (pid $frozen)"
t0=$(now_ms)
kill -STOP "$frozen"
master2() { node_run 2 "$C" agent where s | grep -q "^MASTER .* host_id=2 "; }
wait_for 30 master2 || fail "node2 did not take over from the frozen master"
t1=$(now_ms)
echo "takeover $((t1 - t0)) ms after SIGSTOP (heartbeat_timeout 2 s)"
grep -q "server (pid $frozen) is master but its main loop has not answered" "$(node_log 1 agent)" ||
  fail "node1's agent did not say why it killed its server"
wait_for 10 sh -c "! kill -0 $frozen 2>/dev/null" || fail "the frozen server is still there"
wait_log 1 agent 'killed by signal 9.*restarting it in 2000 ms' 10 || fail "node1 does not restart its server"
newpid() { node_run 1 "$C" agent status | grep -Eq "server=running server_pid=[1-9][0-9]* " &&
  ! node_run 1 "$C" agent status | grep -q "server_pid=$1 "; }
wait_for 20 newpid "$frozen" || fail "node1 has no standby again: $(node_run 1 "$C" agent status)"
node_run 1 "$C" agent status | grep -q " master=no frozen_kills=1 " ||
  fail "node1's agent status does not count the kill: $(node_run 1 "$C" agent status)"
hb2() { node_run 2 "$C" agent status | grep -q " master=yes frozen_kills=0 "; }
wait_for 10 hb2 || fail "node2's agent does not heartbeat its master: $(node_run 2 "$C" agent status)"
frozen=

workload_progress "after the takeover"
workload_stop
grep -q "killing it" "$(node_log 2 agent)" && fail "node2's healthy master was killed"
wlog_quiesce
wlog_stray_check
no_sanitizer_reports
echo "PASS"
