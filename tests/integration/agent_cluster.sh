#!/usr/bin/env bash
# csnap agent on real sanlock daemons: three simulated nodes share one
# file-backed store (tests/cluster/lib.sh).  Nodes 1 and 2 serve the store
# (tests/tools/lease_holder stands in for `csnap server` via --server-cmd),
# node 3 only uses it (server = no); node 4 is misconfigured with node 1's
# host_id.  Checks: a second agent on a node is refused naming the first
# one's pid; all agents join; every node names the same validated master,
# by store name, uuid and device; the conflicting host_id is reported
# clearly; hostile clients get ERR lines while a watcher is unaffected; many
# clients at once; killing the master process pushes a notice naming the
# new master; an orderly stop hands over (server stopped before the
# lockspace is left, socket removed) and with no standby left watchers are
# told "NONE".
# san: yes
. "$(dirname "$0")/../functions.sh"
requires python3

cluster_start 4
U=$(new_uuid)
"$T/agent_fakestore" "$CLUSTER_STORE" "$U" "$CLUSTER_IO_TIMEOUT" || fail "making the store"
sed -i 's/^server = yes/server = no/' "$(node_conf 3)"
sed -i 's/^host_id = 4/host_id = 1/' "$(node_conf 4)"

start_agent() {
  local i=$1
  node_spawn "$i" agent "$C" agent -c "$(node_conf "$i")" --poll-ms 200 --stop-timeout-ms 10000 \
    --server-cmd "exec $T/lease_holder $i $(node_addr "$i") 700$i $CLUSTER_IO_TIMEOUT"
}
A1=$(start_agent 1); A2=$(start_agent 2); A3=$(start_agent 3)
sock() { echo "$(node_dir "$1")/run/agent.sock"; }
for i in 1 2 3; do wait_for 10 test -S "$(sock "$i")" || fail "node$i: no agent socket"; done

# --- one agent per node
out=$(node_run 1 "$C" agent -c "$(node_conf 1)" 2>&1) && fail "a second agent started on node1"
echo "$out" | grep -q "another csnap agent (pid $A1) is already running" ||
  fail "second agent: unclear refusal: $out"

# --- everyone joins (node 4 cannot: host_id 1 is node1's)
status() { node_run "$1" "$C" agent status; }
joined() { status "$1" | grep -q "^STORE name=s .*state=joined"; }
for i in 1 2 3; do wait_for 30 joined "$i" || fail "node$i did not join: $(status "$i")"; done
status 3 | grep -q "server=no" || fail "node3 should not run a server: $(status 3)"
# (node 4 only now: started together, it could win host_id 1 from node 1)
A4=$(start_agent 4)

# --- the same validated master everywhere, however the store is named
where() { node_run "$1" "$C" agent where --timeout-ms 5000 "$2"; }
valid() { where "$1" s | grep -q '^MASTER '; }
wait_for 30 valid 3 || fail "no master seen from node3: $(where 3 s)"
M1=$(where 3 s)
echo "master: $M1"
H1=$(echo "$M1" | sed -n 's/.* host_id=\([0-9]*\) .*/\1/p')
L1=$(echo "$M1" | sed -n 's/.* lver=\([0-9]*\) .*/\1/p')
[ "$H1" = 1 ] || [ "$H1" = 2 ] || fail "master host_id '$H1' is not a serving node"
echo "$M1" | grep -q "^MASTER $U host_id=$H1 address=$(node_addr "$H1") port=700$H1 " ||
  fail "master line does not name the holder: $M1"
agree() {
  local i
  for i in 1 2 3; do
    [ "$(where "$i" s)" = "$1" ] || return 1
    [ "$(where "$i" "$U")" = "$1" ] || return 1
    [ "$(where "$i" "$CLUSTER_STORE")" = "$1" ] || return 1
    [ "$(where "$i" "UUID=$U")" = "$1" ] || return 1
  done
}
wait_for 10 agree "$M1" || fail "nodes disagree: $(for i in 1 2 3; do where "$i" s; done)"
where 3 nosuch >/dev/null 2>&1; [ $? = 1 ] || fail "unknown store should fail"
where 3 nosuch 2>&1 | grep -q "unknown store 'nosuch'" || fail "unknown store: unclear error"

# --- host_id in use by another host: clear, and that agent keeps running
conflict() { status 4 | grep -Eq "state=failed .*host_id 1 is in use by (live )?host 'node1'"; }
wait_for 20 conflict || fail "host_id conflict not reported: $(status 4)"
kill -0 "$A4" || fail "agent of node4 died on the conflict"

# --- watchers (node 3 uses the store; the standby node serves it)
S=$((3 - H1))   # the standby
node_spawn 3 watch "$C" agent where --watch s >/dev/null
node_spawn "$S" watch "$C" agent where --watch s >/dev/null
wait_log 3 watch "^MASTER $U host_id=$H1 " 10 || fail "watcher on node3: no initial state"
wait_log "$S" watch "^MASTER $U host_id=$H1 " 10 || fail "watcher on node$S: no initial state"

# --- hostile input and many clients; the watcher must not notice
python3 "$src/tests/integration/agent_client.py" "$(sock 3)" hostile s || fail "hostile client"
python3 "$src/tests/integration/agent_client.py" "$(sock 3)" many 50 s || fail "many clients"
kill -0 "$A3" || fail "agent of node3 died"
[ "$(grep -c . "$(node_log 3 watch)")" = 1 ] || fail "watcher got notices without a change: $(cat "$(node_log 3 watch)")"

# --- kill the master process: a notice names the new master (higher lver)
mpid=$(status "$H1" | sed -n 's/.*server_pid=\([0-9]*\).*/\1/p')
[ -n "$mpid" ] && [ "$mpid" != 0 ] || fail "no server pid on the master node: $(status "$H1")"
kill -9 "$mpid"
new_master() { grep '^MASTER ' "$(node_log 3 watch)" | sed -n 's/.* lver=\([0-9]*\) .*/\1/p' | tail -1 | grep -qv "^$L1\$"; }
wait_for 30 new_master || fail "no notice of a new master: $(cat "$(node_log 3 watch)")"
M2=$(grep '^MASTER ' "$(node_log 3 watch)" | tail -1)
echo "new master: $M2"
H2=$(echo "$M2" | sed -n 's/.* host_id=\([0-9]*\) .*/\1/p')
wait_for 10 agree "$M2" || fail "nodes disagree after takeover: $(for i in 1 2 3; do where "$i" s; done)"
wait_log "$S" watch "lver=$(echo "$M2" | sed -n 's/.* lver=\([0-9]*\) .*/\1/p') " 10 ||
  fail "watcher on node$S missed the change"
wait_log "$H1" agent "server \(pid $mpid\) killed by signal 9.*restarting" 5 ||
  fail "node$H1 did not report its dead server"
restarted() { status "$H1" | grep -q "server=running server_pid=[0-9]* restarts=1 "; }
wait_for 10 restarted || fail "node$H1 did not restart its server: $(status "$H1")"

# --- orderly stop: first the other server node, then the master's node.
# The master hands over to nobody: watchers on node 3 hear NONE.
other=$((3 - H2))
apid() { eval echo "\$A$1"; }
gone() { ! kill -0 "$1" 2>/dev/null; }
kill -TERM "$(apid "$other")"
wait_for 20 gone "$(apid "$other")" || fail "node$other agent did not stop"
kill -TERM "$(apid "$H2")"
wait_for 20 gone "$(apid "$H2")" || fail "node$H2 agent did not stop"
wait_log 3 watch "^NONE $U " 10 || fail "no NONE notice after the last master stopped: $(cat "$(node_log 3 watch)")"
for i in $other $H2; do
  log=$(node_log "$i" agent)
  s=$(grep -n "stopping server" "$log" | head -1 | cut -d: -f1)
  l=$(grep -n "left lockspace" "$log" | head -1 | cut -d: -f1)
  [ -n "$s" ] && [ -n "$l" ] && [ "$s" -lt "$l" ] || fail "node$i: server not stopped before leaving"
  grep -q "agent: stopped" "$log" || fail "node$i: no orderly stop"
  [ ! -e "$(sock "$i")" ] || fail "node$i: socket left behind"
done
grep -q "^released" "$(node_log "$H2" agent)" || fail "the master did not release orderly"
kill -TERM "$A3" "$A4"
wait_for 20 gone "$A3" || fail "node3 agent did not stop"
wait_for 20 gone "$A4" || fail "node4 agent did not stop"
grep -q "agent: stopped" "$(node_log 4 agent)" || fail "node4: no orderly stop"
# (under build-san: every agent and client must have been clean)
no_sanitizer_reports
echo "ok"
