#!/usr/bin/env bash
# tests/integration/admin_failover.sh - admin commands across master
# changes (issue 9, defect 6), with real agents, servers and sanlock on two
# simulated nodes.
#
#  1. `csnap snapshot create` on a node whose agent is still joining the
#     lockspace ("not joined on this node") waits, says so on stderr, and
#     succeeds once the node has joined.
#  2. `csnap snapshot create` in flight (its barrier held up by an origin
#     client that never acknowledges) when the master is SIGKILLed: the
#     command finds the new master, says what it waits for, and succeeds;
#     the snapshot exists exactly once.
#  3. Create by name with a request id is idempotent: the same request id
#     again gets the same snapshot (also from a new master after a kill,
#     from the store), another request id gets EEXIST.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 2 64M
store_init
d=$CLUSTER_DIR
FAIL_LOGS=("$d/create.*")

node_spawn 1 agent "$C" agent --poll-ms 100 >/dev/null
wait_log 1 agent 'master for store' 60 || fail "node1's server did not become master"

echo "== 1. create while this node's agent is still joining"
node_spawn 2 agent "$C" agent --poll-ms 100 >/dev/null
node_run 2 "$C" snapshot create s j1 >"$d/create.j1.out" 2>"$d/create.j1.err" ||
  fail "create while joining failed: $(cat "$d/create.j1.err")"
grep -q "created snapshot j1" "$d/create.j1.out" || fail "no confirmation for j1"
grep -q "waiting for the master of store" "$d/create.j1.err" ||
  fail "create did not say what it waited for: $(cat "$d/create.j1.err")"
head -1 "$d/create.j1.err"
wait_log 2 agent 'standby for store' 60 || fail "node2's server is not standby"

echo "== 2. create in flight when the master is killed"
node_spawn 2 oidle "$PC" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" oidle "$d/stop-oidle" >/dev/null
wait_log 2 oidle '^idle' 30 || fail "origin client did not connect"
node_run 2 "$C" snapshot create s c1 >"$d/create.c1.out" 2>"$d/create.c1.err" &
cpid=$!
wait_log 1 agent 'snapshot c1: barrier [0-9]* sent to 1 origin client' 30 ||
  fail "create c1 did not start its barrier"
mpid=$(node_run 1 "$C" agent status | sed -n 's/.* server=running server_pid=\([0-9]*\) .*/\1/p')
[ -n "$mpid" ] || fail "no server on node1"
kill -KILL "$mpid"
wait "$cpid"
rc=$?
[ $rc -eq 0 ] || fail "create c1 across the master kill: exit $rc: $(cat "$d/create.c1.err")"
grep -q "created snapshot c1" "$d/create.c1.out" || fail "no confirmation for c1"
grep -q "waiting for the master of store" "$d/create.c1.err" ||
  fail "create did not say what it waited for: $(cat "$d/create.c1.err")"
cat "$d/create.c1.err"
n=$(node_run 2 "$C" snapshot list s --json | grep -c '"name": "c1"')
[ "$n" -eq 1 ] || fail "c1 listed $n times"
touch "$d/stop-oidle"

echo "== 3. create with a request id is idempotent"
sc() { node_run 2 "$PC" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" screate "$@"; }
first=$(sc r1 777) || fail "screate r1: $first"
echo "$first"
echo "$first" | grep -q '^created r1 id [0-9]' || fail "screate r1: $first"
again=$(sc r1 777) || fail "retry of r1 with its request id: $again"
[ "$again" = "$first" ] || fail "retry of r1 got '$again', not '$first'"
other=$(sc r1 778)
[ $? -eq 3 ] && [ "$other" = "refused File exists" ] || fail "r1 with another request id: $other"
master_host() { node_run 2 "$C" agent where s | sed -n 's/^MASTER .* host_id=\([0-9]*\) .*/\1/p'; }
lver() { node_run 2 "$C" agent where s | sed -n 's/^MASTER .* lver=\([0-9]*\) .*/\1/p'; }
h=$(master_host)
l=$(lver)
[ -n "$h" ] && [ -n "$l" ] || fail "no master"
mpid=$(node_run "$h" "$C" agent status | sed -n 's/.* server=running server_pid=\([0-9]*\) .*/\1/p')
kill -KILL "$mpid"
newer() { local n; n=$(lver); [ -n "$n" ] && [ "$n" -gt "$l" ]; }
wait_for 30 newer || fail "no new master after the kill"
# The new master replays the journal: the request id is in the store.
after=$(sc r1 777) || fail "retry of r1 on the new master: $after"
[ "$after" = "$first" ] || fail "retry of r1 on the new master got '$after', not '$first'"
n=$(node_run 2 "$C" snapshot list s --json | grep -c '"name": "r1"')
[ "$n" -eq 1 ] || fail "r1 listed $n times"

no_sanitizer_reports "$d"/node*/*.log "$d"/create.*
echo "PASS"
