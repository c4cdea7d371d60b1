#!/usr/bin/env bash
# tests/integration/fault_sanlock_frozen.sh - a frozen sanlock daemon on the
# master's node (issue 9, "Proof": fencing), under the verified workload.
#
# Three nodes run agents and exports; writers on node1 and node2 write
# self-describing blocks through their exports (tests/cluster/blocks.sh)
# and snapshots are taken from a node that is not the master.  Then the
# master node's sanlock daemon is SIGSTOPped for FREEZE seconds (default
# 12): its delta lease stops being renewed, so after renewal + 7 x
# io_timeout (7 s here) the master's lease_may_commit() refuses and the
# master must commit nothing; no other node may take over before that host
# is dead (8 x io_timeout + 60 s = 68 s), so the freeze is shorter than
# that, and a snapshot create is started during the freeze.  After SIGCONT
# service must resume (on this or another master) within a bound.  Checks:
# every snapshot (including the one asked for during the freeze) and the
# origin are verified block by block against the writers' logs (no
# acknowledged write lost, no stray write into a snapshot or onto an
# origin block), `csnap check` is clean, and the write log
# (tests/cluster/wlog.sh) shows no origin write into a chunk a committed
# snapshot still read from the origin.  Prints what the master did and
# the longest client-visible stall.
# san: yes
. "$(dirname "$0")/../functions.sh"
BLOCKS_WLOG=1
. "$src/tests/cluster/blocks.sh"
FREEZE=${FREEZE:-12}

blocks_cluster
d=$CLUSTER_DIR
blocks_writers
wait_writes 1000 || fail "writers do not progress"
m=$(master_host)
[ -n "$m" ] || fail "no master"
other=$(( m % 3 + 1 ))
snap s1 "$other"
wait_writes 500 || fail "writers stalled after s1"

spid=$(master_server_pid "$m")
sl=$(cut -d' ' -f1 "$(node_dir "$m")/sanlock.pid")
echo "== SIGSTOP node$m's sanlock daemon (pid $sl) for $FREEZE s; master server pid $spid"
t_stop=$(now_ms)
kill -STOP -- "-$sl"
frozen=$sl
sleep 2
# A snapshot asked for while the master's lease is running out: it may be
# committed only while the lease is surely valid, or later by a master
# whose lease is.
t0=$(mono)
( node_run "$other" "$C" snapshot create s s2 >"$d/s2.out" 2>&1; echo $? >"$d/s2.rc"; mono >"$d/s2.t1" ) &
create=$!
# No other node may become master while node$m's host may still be alive.
end=$(( t_stop + FREEZE * 1000 ))
while [ "$(now_ms)" -lt "$end" ]; do
  h=$(master_host "$other")
  [ -z "$h" ] || [ "$h" = "$m" ] || fail "node$h became master while node$m's sanlock was frozen"
  sleep 0.5
done
n_frozen=$(progress)
kill -CONT -- "-$sl"
frozen=
t_cont=$(now_ms)
echo "== SIGCONT after $(( t_cont - t_stop )) ms"
wait_writes 500 90 || fail "writers do not resume after SIGCONT"
t_resumed=$(now_ms)
wait "$create"
[ "$(cat "$d/s2.rc")" = 0 ] || fail "snapshot create during the freeze: $(cat "$d/s2.out")"
echo "s2 $t0 $(cat "$d/s2.t1")" >>"$d/snaps"
echo "master after: $(where "$other")"
snap s3 "$other"
wait_writes 500 || fail "writers stalled after s3"
blocks_stop_writers
echo "writes acknowledged during the freeze window: up to $n_frozen; writes resumed $(( t_resumed - t_cont )) ms after SIGCONT"

blocks_verify "$other"
# The longest gap between two acknowledgements seen by any writer.
stall=$(cat "$d/w1.log" "$d/w2.log" | awk '{print $4}' | sort -n |
  awk 'NR > 1 && $1 - p > m {m = $1 - p} {p = $1} END {printf "%.2f", m}')
echo "longest client-visible stall: $stall s (freeze $FREEZE s)"
grep -hE 'may have expired|renewal is late|fenced|lost|killing' "$(node_dir "$m")"/*.log | head -5

wlog_quiesce
wlog_stray_check
no_sanitizer_reports
check_store
echo PASS
