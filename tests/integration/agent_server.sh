#!/usr/bin/env bash
# csnap agent supervising the real `csnap server` on two simulated nodes
# (tests/cluster/lib.sh, real sanlock, a store made by `csnap mkstore`).
# Checks: each agent starts its node's standby server; both nodes name the
# same validated master (its address and ephemeral port); SIGTERM to the
# master node's agent stops its server first (orderly hand-over), the
# other node's watcher is told the new master, and only then does the
# agent leave the lockspace; an agent killed with SIGKILL still has its
# server hand over (the server gets SIGTERM when its parent dies).
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 2 64M
store_init

A1=$(node_spawn 1 agent "$C" agent -c "$(node_conf 1)" --poll-ms 200)
wait_for 30 sh -c "grep -q 'master for store' $(node_log 1 agent)" || fail "node1's server did not become master"
A2=$(node_spawn 2 agent "$C" agent -c "$(node_conf 2)" --poll-ms 200)
wait_for 30 sh -c "grep -q 'standby for store' $(node_log 2 agent)" || fail "node2's server is not standby"

where() { node_run "$1" "$C" agent where s; }
valid() { where "$1" | grep -q "^MASTER .* host_id=1 address=$(node_addr 1) port=[1-9]"; }
wait_for 20 valid 1 || fail "node1: $(where 1)"
wait_for 20 valid 2 || fail "node2: $(where 2)"
[ "$(where 1)" = "$(where 2)" ] || fail "nodes disagree: $(where 1) / $(where 2)"
echo "master: $(where 1)"
node_run 2 "$C" agent status | grep -q "state=joined server=running" || fail "node2: $(node_run 2 "$C" agent status)"

node_spawn 2 watch "$C" agent where --watch s >/dev/null
wait_log 2 watch "^MASTER .* host_id=1 " 10 || fail "watcher: no initial state"
kill -TERM "$A1"
wait_log 2 watch "^MASTER .* host_id=2 address=$(node_addr 2) port=[1-9]" 30 ||
  fail "watcher was not told of the new master: $(cat "$(node_log 2 watch)")"
wait_for 30 sh -c "! kill -0 $A1 2>/dev/null" || fail "node1's agent did not stop"
log=$(node_log 1 agent)
s=$(grep -n "stopping server" "$log" | head -1 | cut -d: -f1)
x=$(grep -n "server (pid [0-9]*) exited with status 0" "$log" | head -1 | cut -d: -f1)
l=$(grep -n "left lockspace" "$log" | head -1 | cut -d: -f1)
[ -n "$s" ] && [ -n "$x" ] && [ -n "$l" ] && [ "$s" -lt "$x" ] && [ "$x" -lt "$l" ] ||
  fail "node1: not stopped in order (server stop, server exit 0, leave)"
where 2 | grep -q "^MASTER .* host_id=2 " || fail "node2 after hand-over: $(where 2)"
grep -q "agent: stopped" "$(node_log 1 agent)" || fail "node1: no orderly stop"

# An agent killed outright: its server still hands over (PDEATHSIG=SIGTERM).
A1=$(node_spawn 1 agent "$C" agent -c "$(node_conf 1)" --poll-ms 200)
wait_for 30 sh -c "grep -q 'standby for store' $(node_log 1 agent)" || fail "node1's new server is not standby"
kill -KILL "$A2"
wait_for 30 sh -c "grep -q 'master lease released: orderly hand-over done' $(node_log 2 agent)" ||
  fail "node2's server did not hand over when its agent was killed"
valid1() { where 1 | grep -q "^MASTER .* host_id=1 address=$(node_addr 1) port=[1-9]"; }
wait_for 30 valid1 || fail "node1 did not take over: $(where 1)"
kill -TERM "$A1"
wait_for 30 sh -c "! kill -0 $A1 2>/dev/null" || fail "node1's agent did not stop"
grep -q "agent: stopped" "$(node_log 1 agent)" || fail "node1: no orderly stop"
no_sanitizer_reports
echo ok
