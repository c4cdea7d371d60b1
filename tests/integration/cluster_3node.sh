#!/usr/bin/env bash
# tests/integration/cluster_3node.sh - the whole system on 3 nodes.
#
# Every node runs `csnap agent` (lockspace, supervised standby server) and
# `csnap export`.  Writers on node1 and node2 write self-describing blocks
# (cluster_blocks.py) to disjoint halves of the origin through their own
# exports while node3 takes snapshots; the master's server is killed in
# the middle of the workload and another snapshot is taken on the new
# master.  Then every snapshot is read on node3 and verified block by block
# against the writers' logs (each block must come from the last write
# acknowledged before the snapshot began, or from a write started before it
# ended), the origin must hold exactly the last acknowledged write of every
# block, and `csnap check` must be clean.
# san: yes
. "$(dirname "$0")/../functions.sh"
blocks_py=$src/tests/integration/cluster_blocks.py
requires_run python3-libnbd "$py" -c 'import nbd'

BLOCKS=16384          # 64 MiB origin of 4 KiB blocks
HALF=$((BLOCKS / 2))

mono() { $py -c 'import time; print(f"{time.monotonic():.6f}")'; }
uri() { echo "nbd+unix:///$2?socket=$(export_sock "$1")"; }
where() { node_run 3 "$C" agent where s 2>/dev/null; }
field() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p"; }

cluster_start 3 256M
d=$CLUSTER_DIR
FAIL_LOGS=("$d/writer1.out" "$d/writer2.out")
$py "$blocks_py" init "$CLUSTER_ORIGIN" $BLOCKS || fail "init origin"
node_run 1 "$C" mkstore --chunk-size 16K "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || fail "mkstore"

for i in 1 2 3; do node_spawn "$i" agent "$C" agent >/dev/null; done
has_master() { where | grep -q '^MASTER'; }
wait_for 60 has_master || fail "no master"
for i in 1 2 3; do start_export "$i" "$(export_sock "$i")" s; done

$py "$blocks_py" write "$(uri 1 origin)" 0 $HALF 1 "$d/stop" "$d/w1.log" >"$d/writer1.out" 2>&1 &
w1=$!
$py "$blocks_py" write "$(uri 2 origin)" $HALF $HALF 2 "$d/stop" "$d/w2.log" >"$d/writer2.out" 2>&1 &
w2=$!
progress() { cat "$d/w1.log" "$d/w2.log" 2>/dev/null | wc -l; }
wait_writes() {  # wait until N more writes were acknowledged
  local target=$(( $(progress) + $1 ))
  wait_for 60 bash -c "[ \$(cat '$d/w1.log' '$d/w2.log' 2>/dev/null | wc -l) -ge $target ]"
}

snap() {  # snap NAME: create on node3, remember its time window
  local t0 t1
  t0=$(mono)
  node_run 3 "$C" snapshot create s "$1" >/dev/null || fail "snapshot create $1"
  t1=$(mono)
  echo "$1 $t0 $t1" >>"$d/snaps"
}

wait_writes 1500 || fail "writers do not progress"
snap s1
wait_writes 1500 || fail "writers stalled after s1"
snap s2
wait_writes 500 || fail "writers stalled after s2"

m=$(where | field host_id)
lver=$(where | field lver)
spid=$(pgrep -f "csnap server -c $(node_conf "$m")" | head -1)
[ -n "$spid" ] || fail "master server process on node$m not found"
echo "== kill -9 the master server on node$m (pid $spid) during the writes"
kill -9 "$spid"
wait_for 60 bash -c "[ \"\$(env SANLOCK_RUN_DIR=$(node_dir 3)/sanlock CSNAP_CONF=$(node_conf 3) $C agent where s 2>/dev/null | sed -n 's/.* lver=\([0-9]*\).*/\1/p')\" -gt $lver ] 2>/dev/null" ||
  fail "no new master after the kill"
echo "new master: $(where)"
wait_writes 1500 || fail "writers stalled after the failover"
snap s3
wait_writes 1000 || fail "writers stalled after s3"
touch "$d/stop"
wait $w1 || fail "writer 1: $(tail -2 "$d/writer1.out")"
wait $w2 || fail "writer 2: $(tail -2 "$d/writer2.out")"
echo "writes: node1 $(wc -l <"$d/w1.log"), node2 $(wc -l <"$d/w2.log")"

while read -r name t0 t1; do
  wait_for 20 bash -c "nbdinfo --list 'nbd+unix://?socket=$(export_sock 3)' | grep -q 'export=\"$name\"'" ||
    fail "node3 does not export $name"
  out=$($py "$blocks_py" verify "$(uri 3 "$name")" $BLOCKS "$t0" "$t1" "$d/w1.log" "$d/w2.log") ||
    fail "snapshot $name: $out"
  echo "snapshot $name: $out"
done <"$d/snaps"
# negative control: the checker must reject s1 judged as if it had been
# taken before any write (it holds writes, so this has to fail)
read -r name t0 t1 <"$d/snaps"
$py "$blocks_py" verify "$(uri 3 "$name")" $BLOCKS 0 0 "$d/w1.log" "$d/w2.log" >/dev/null &&
  fail "the block checker accepted a wrong snapshot time"
out=$($py "$blocks_py" verify "$(uri 3 origin)" $BLOCKS inf inf "$d/w1.log" "$d/w2.log") ||
  fail "origin: $out"
echo "origin: $out"

for i in 1 2 3; do node_kill_procs "$i" TERM; done
sleep 2
no_sanitizer_reports
check_store
echo PASS
