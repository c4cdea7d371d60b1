#!/usr/bin/env bash
# tests/integration/export_agent.sh - `csnap export` on nodes run the
# production way: a `csnap agent` per node (joins the lockspace,
# supervises the node's server, answers "where is the master?" on its
# socket), the store named by UUID=... in csnap.conf, exports on the
# configured sockets, and no --master anywhere.
#
# (The admin commands get the store's path: they do not resolve UUID=.)
# Checks: both exports find the master through their agent and serve the
# origin; a snapshot's content is the origin's at snapshot time; when the
# master's node stops its agent (orderly hand-over), the other node's
# export follows the master and keeps every acknowledged write.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires nbdinfo nbdcopy qemu-img


cluster_start 2 256M
origin_fill random 64M
store_init
uuid=$("$C" dump "$CLUSTER_STORE" | awk '/uuid/ {print $2; exit}')
[ -n "$uuid" ] || fail "no uuid in csnap dump"
d=$CLUSTER_DIR
for i in 1 2; do
  sed -i "s|^device = .*|device = UUID=$uuid|" "$(node_conf $i)"
done
export CSNAP_SCAN=$d

node_spawn 1 agent "$C" agent -c "$(node_conf 1)" --poll-ms 200 >/dev/null
wait_for 60 node_run 1 "$C" status "$CLUSTER_STORE" >/dev/null 2>&1 || fail "no master via node1's agent"
node_spawn 2 agent "$C" agent -c "$(node_conf 2)" --poll-ms 200 >/dev/null
sock1=$(export_sock 1) sock2=$(export_sock 2)
start_export 1 "$sock1" -c "$(node_conf 1)" s
start_export 2 "$sock2" -c "$(node_conf 2)" s
wait_log 2 export 'origin: connected to master .*told by the agent' 60 || fail "node2 export found no master through its agent"

o1="nbd+unix:///origin?socket=$sock1" o2="nbd+unix:///origin?socket=$sock2"
head -c 64M /dev/urandom >"$d/r1"
nbdcopy "$d/r1" "$o1" || fail "write through node1"
nbdcopy "$o2" "$d/b1" || fail "read through node2"
cmp "$d/r1" "$d/b1" || fail "origin differs between nodes"

node_run 2 "$C" snapshot create "$CLUSTER_STORE" s1 >/dev/null || fail "create s1"
wait_for 20 bash -c "nbdinfo --list 'nbd+unix://?socket=$sock2' | grep -q 'export=\"s1\"'" ||
  fail "s1 not exported on node2"
head -c 64M /dev/urandom >"$d/r2"
nbdcopy "$d/r2" "$o2" || fail "overwrite through node2"
qemu-img convert -f raw -O raw "nbd+unix:///s1?socket=$sock2" "$d/s1.img" || fail "read s1"
cmp "$d/s1.img" "$d/r1" || fail "s1 is not the origin at snapshot time"

echo "== node1's agent stops (its server hands over)"
master=$(node_run 2 "$C" status "$CLUSTER_STORE" --json | grep -o '"host_id": [0-9]*' | head -1 | awk '{print $2}')
[ "$master" = 1 ] || [ "$master" = 2 ] || fail "status names no master"
other=$((3 - master))
node_kill_procs "$master" TERM
wait_log "$other" export 'new master' 60 || fail "node$other export did not follow the master"
oo="nbd+unix:///origin?socket=$d/node$other/run/s.sock"
head -c 64M /dev/urandom >"$d/r3"
nbdcopy "$d/r3" "$oo" || fail "write after the hand-over"
nbdcopy "$oo" "$d/b3" || fail "read after the hand-over"
cmp "$d/r3" "$d/b3" || fail "origin after the hand-over"
qemu-img convert -f raw -O raw "nbd+unix:///s1?socket=$d/node$other/run/s.sock" "$d/s1b.img" ||
  fail "read s1 after the hand-over"
cmp "$d/s1b.img" "$d/r1" || fail "s1 changed"
node_kill_procs "$other" TERM
sleep 1
no_sanitizer_reports "$(node_log 1 export)" "$(node_log 2 export)"
echo "PASS"
