#!/usr/bin/env bash
# Master election on real sanlock daemons, three simulated nodes sharing one
# file-backed store (tests/cluster/lib.sh), with tests/tools/lease_holder
# standing in for the server.  Checks: exactly one master and its record
# validates on every node; lease init refuses while hosts are live; a node
# cannot take a second host_id; killing the master process hands over;
# stale or mismatching records are never trusted; an orderly release hands
# over; a master that sanlock tells to go (killpath) stops and hands over.
# The crash (whole node) case is in lease_crash.sh.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 3
export LEASE_PATH=$CLUSTER_STORE LEASE_UUID
LEASE_UUID=$(new_uuid)
LS=csnap-$(echo "$LEASE_UUID" | tr -d -)
"$T/lease_tool" init 1 || fail "lease init"

for i in 1 2 3; do
  node_spawn "$i" holder "$T/lease_holder" "$i" "$(node_addr "$i")" "700$i" 1 >/dev/null
done
for i in 1 2 3; do wait_log "$i" holder '^joined' 30 || fail "node$i did not join"; done

# Who is master, by the holders' own logs; "" if none yet.
masters() {
  local i
  for i in 1 2 3; do   # (the test appends "killed" to a holder it kills)
    if grep -q '^master' "$(node_log "$i" holder)" 2>/dev/null &&
       ! grep -Eq '^(released|fenced|killed)' "$(node_log "$i" holder)"; then echo "$i"; fi
  done
}
one_master() { [ "$(masters | wc -l)" -eq 1 ]; }
find_on() { node_run "$1" "$T/lease_tool" find; }
# HOST: every node validates a record naming HOST, which sanlock (reading
# the paxos lease from disk) reports as the one owner.
valid_everywhere() {
  local i
  for i in 1 2 3; do
    find_on "$i" | grep -q "^valid $1 $(node_addr "$1") 700$1 " || return 1
  done
}
lver_of() { find_on 1 | awk '$1 == "valid" { print $5 }'; }

wait_for 15 one_master || fail "no single master: [$(masters | tr '\n' ' ')]"
M=$(masters)
wait_for 20 valid_everywhere "$M" || {
  for i in 1 2 3; do echo "node$i: $(find_on "$i")"; done; fail "record of node$M not valid everywhere"; }
echo "master: node$M, record valid on every node"

# Hosts as every node sees them: names from the delta leases, all live.
all_live() { [ "$(node_run "$1" "$T/lease_tool" hosts | grep -c ' live ')" -eq 3 ]; }
for i in 1 2 3; do wait_for 20 all_live "$i" || fail "node$i does not see 3 live hosts"; done
node_run 1 "$T/lease_tool" hosts | grep -q '^2 node2 live' || fail "host names"

# Re-initialising leases under live hosts is refused.
out=$("$T/lease_tool" init 1 2>&1) && fail "lease init succeeded under live hosts"
echo "$out" | grep -q "holds a delta lease" || fail "lease init refusal message: $out"

# One host_id per node and lockspace.
out=$(node_run "$M" "$T/lease_tool" join 9 1 2>&1) && fail "second host_id on node$M joined"
echo "$out" | grep -q "already joined lockspace $LS as host_id $M" || fail "second host_id message: $out"
echo "second host_id refused: $out"

# Killing the master process: the lease is free at once, a standby takes it.
L1=$(lver_of)
t0=$(now_ms)
node_kill_procs "$M" KILL
echo killed >>"$(node_log "$M" holder)"
new_master() { local m; m=$(masters | grep -vx "$M"); [ -n "$m" ] && [ "$(echo "$m" | wc -l)" -eq 1 ]; }
wait_for 20 new_master || fail "no new master after the master process was killed"
echo "process kill handover: $(( $(now_ms) - t0 )) ms"
N=$(masters | grep -vx "$M")
wait_for 20 valid_everywhere "$N" || fail "record of new master node$N not valid everywhere"
L2=$(lver_of)
[ "$L2" -gt "$L1" ] || fail "lver did not advance ($L1 -> $L2)"
one_master || fail "not exactly one master after handover: [$(masters | tr '\n' ' ')]"

# Records that disagree with sanlock are never trusted.
read -r _ _ _ GEN < <(node_run "$N" "$T/lease_tool" record | awk '{print $1, $2, $4, $3}')
GEN=$(node_run "$N" "$T/lease_tool" record | awk '{print $3}')
never_valid() {
  local i out
  for i in 1 2 3; do
    out=$(find_on "$i")
    case "$out" in valid*) fail "$1 record trusted on node$i: $out";; esac
    echo "$out" | grep -q "$2" || fail "$1 record on node$i: unexpected '$out'"
  done
}
# Pause the master (it would repair its record) while forging records.
node_kill_procs "$N" STOP
"$T/lease_tool" write-record "$M" "$L1" "$GEN" "$(node_addr "$M")" "700$M"
never_valid stale "stale lease-owner record (lver $L1"
"$T/lease_tool" write-record "$M" "$L2" "$GEN" "$(node_addr "$M")" "700$M"
never_valid "wrong-host" "names host_id $M"
"$T/lease_tool" write-record "$N" "$L2" $((GEN + 1)) "$(node_addr "$N")" "700$N"
never_valid "wrong-generation" "generation $((GEN + 1))"
"$T/lease_tool" write-record "$N" $((L2 + 1)) "$GEN" "$(node_addr "$N")" "700$N"
never_valid "future-lver" "unconfirmed"
# Resumed, the master notices its record is not its own and writes it
# again; then it is trusted (the checks above are not "never valid").
node_kill_procs "$N" CONT
wait_for 20 valid_everywhere "$N" || fail "master did not repair its record"
grep -q "not ours" "$(node_log "$N" holder)" || fail "master did not say it repaired its record"
echo "stale and mismatching records rejected; the master repaired its record"

# Orderly release: the standby takes over.
K=$(for i in 1 2 3; do [ "$i" != "$M" ] && [ "$i" != "$N" ] && echo "$i"; done)
t0=$(now_ms)
node_kill_procs "$N" TERM
wait_log "$N" holder '^released' 10 || fail "node$N did not release"
wait_log "$K" holder '^master' 10 || fail "node$K did not take over after the orderly release"
echo "orderly handover: $(( $(now_ms) - t0 )) ms"
wait_for 20 valid_everywhere "$K" || fail "record of node$K not valid everywhere"

# Fencing: another host requests the lease; sanlock runs the master's
# killpath, the master stops without writing, a standby takes over.
node_spawn "$M" holder2 "$T/lease_holder" "$M" "$(node_addr "$M")" "700$M" 1 >/dev/null
wait_log "$M" holder2 '^joined' 30 || fail "node$M standby did not start"
L3=$(lver_of)
node_run "$N" sanlock client request -r "$LS:master:$CLUSTER_STORE:$((2 * 1048576)):$((L3 + 1))" -f 2 \
  >/dev/null || fail "sanlock request"
wait_log "$K" holder '^fenced' 30 || fail "node$K was not fenced"
wait_log "$M" holder2 '^master' 30 || fail "node$M did not take over after fencing"
grep -q '^released' "$(node_log "$K" holder)" && fail "fenced master released in an orderly way"
wait_for 20 valid_everywhere "$M" || fail "record of node$M not valid after fencing"
echo "fenced master stopped; node$M took over"

# The master's own sanlock daemon dies: the master notices at once that it
# lost the connection that holds its lease, and stops.
node_kill_sanlock "$M"
wait_log "$M" holder2 '^fenced: lost the sanlock connection' 10 ||
  fail "master did not notice its sanlock daemon died: $(cat "$(node_log "$M" holder2)")"
echo "master noticed the loss of its sanlock daemon"
echo "PASS"
