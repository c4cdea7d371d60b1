#!/usr/bin/env bash
# tests/integration/cluster_3node.sh - the whole system on 3 nodes.
#
# Every node runs `csnap agent` (lockspace, supervised standby server) and
# `csnap export`.  Writers on node1 and node2 write self-describing blocks
# (cluster_blocks.py, via tests/cluster/blocks.sh) to disjoint halves of
# the origin through their own exports while node3 takes snapshots; the
# master's server is killed in the middle of the workload and another
# snapshot is taken on the new master.  Then every snapshot is read on
# node3 and verified block by block against the writers' logs (each block
# must come from the last write acknowledged before the snapshot began, or
# from a write started before it ended), the origin must hold exactly the
# last acknowledged write of every block, and `csnap check` must be clean.
# san: yes
. "$(dirname "$0")/../functions.sh"
. "$src/tests/cluster/blocks.sh"

blocks_cluster
d=$CLUSTER_DIR
blocks_writers

wait_writes 1500 || fail "writers do not progress"
snap s1
wait_writes 1500 || fail "writers stalled after s1"
snap s2
wait_writes 500 || fail "writers stalled after s2"

m=$(master_host)
lver=$(master_lver)
spid=$(master_server_pid "$m")
[ -n "$spid" ] || fail "master server process on node$m not found"
echo "== kill -9 the master server on node$m (pid $spid) during the writes"
kill -9 "$spid"
newer() { [ "$(master_lver)" -gt "$lver" ] 2>/dev/null; }
wait_for 60 newer || fail "no new master after the kill"
echo "new master: $(where)"
wait_writes 1500 || fail "writers stalled after the failover"
snap s3
wait_writes 1000 || fail "writers stalled after s3"
blocks_stop_writers

blocks_verify
# negative control: the checker must reject s1 judged as if it had been
# taken before any write (it holds writes, so this has to fail)
read -r name t0 t1 <"$d/snaps"
$py "$blocks_py" verify "$(uri 3 "$name")" $BLOCKS 0 0 "$d/w1.log" "$d/w2.log" >/dev/null &&
  fail "the block checker accepted a wrong snapshot time"

for i in 1 2 3; do node_kill_procs "$i" TERM; done
sleep 2
no_sanitizer_reports
check_store
echo PASS
