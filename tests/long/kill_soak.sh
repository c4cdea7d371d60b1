#!/usr/bin/env bash
# tests/long/kill_soak.sh - kill -9 of the master, again and again, under the
# verified multi-node workload (issue 9, "Proof"; `make check-long`, and a
# short run in `make check` through tests/integration/kill_soak_short.sh).
#
#   KILLS=N (default 200)   master kills
#   STALL_MAX=S (default 2) the longest client-visible stall allowed, seconds
#   SEED=N                  the random choices (printed; default random)
#
# Three nodes run agents and exports; writers on node1 and node2 write
# self-describing blocks through their exports (tests/cluster/blocks.sh).
# Each round waits for the writers to progress, sleeps a random 0-1 s and
# SIGKILLs the master's server, then waits for a new master (a higher lver).
# Between kills, at random: a snapshot is created (from a random node), the
# oldest live snapshot is verified block by block and deleted (also
# whenever more than 3 are live), node3's export is SIGKILLed and restarted, or a non-master node's
# agent is SIGKILLed and restarted.  At the end every live snapshot and the
# origin are verified block by block against the writers' logs and
# `csnap check` must be clean.  The longest gap between two acknowledged
# writes of one writer is the client-visible stall: it must not exceed
# STALL_MAX (no fault here waits for a host to be declared dead).
. "$(dirname "$0")/../functions.sh"
BLOCKS_STORE=${BLOCKS_STORE:-512M}   # 4 snapshots of the whole origin, and metadata
. "$src/tests/cluster/blocks.sh"
KILLS=${KILLS:-200}
# One write in 4 spans two chunks (cluster_blocks.py): they race the
# barriers and master changes too.
export BLOCKS_SPAN=${BLOCKS_SPAN:-1}
STALL_MAX=${STALL_MAX:-2}
SEED=${SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
echo "kill_soak: KILLS=$KILLS STALL_MAX=$STALL_MAX SEED=$SEED"

blocks_cluster
d=$CLUSTER_DIR
blocks_writers
wait_writes 500 || fail "writers do not progress"

agent_pid() { own_pids "$1" "^$C agent\$" | head -1; }
# node3's export process (pid, state) and its socket, for a failed verify
export3_state() {
  local q
  for q in $(own_pids 3 "csnap -v export"); do
    echo -n "pid $q $(awk '{print $3}' "/proc/$q/stat") "
  done
  ls -l "$(export_sock 3)" 2>&1
}
# where the master says the chunks of the wrong blocks are now
where_chunks() {
  local c
  for c in $(echo "$2" | sed -n 's/.*(chunk16K \([0-9]*\)).*/\1/p' | sort -un | head -6); do
    echo "[$(pc 3 sread "$1" "$c" 1 2>&1 | tr '\n' ' ')]"
  done
}
ev() { echo "$(mono) $*" >>"$d/events"; }  # what happened when (for the stall report)
live=()  # snapshots not yet deleted, oldest first
nsnap=0 ndel=0 nexp=0 nagent=0 longest_fo=0 longest_del=0 t_start=$(now_ms)

# retire: verify the oldest live snapshot block by block, then delete it
# (the live ones stay few: each can come to hold the whole origin).
retire() {
  local name t0 t1 out dl
  name=${live[0]}; live=("${live[@]:1}")
  read -r _ t0 t1 < <(grep "^$name " "$d/snaps")
  out=$($py "$blocks_py" verify "$(uri 3 "$name")" "$BLOCKS" "$t0" "$t1" "$d/w1.log" "$d/w2.log") ||
    fail "snapshot $name: $out; node3's export: $(export3_state); master says: $(where_chunks "$name" "$out")"
  ev "delete $name"
  # The verifier's NBD client has just left node3's export; the
  # master may still count it as a user for a moment: retry, bounded.
  t0=$(now_ms)
  wait_for 20 node_run 3 "$C" snapshot delete s "$name" ||
    fail "delete $name: $(node_run 3 "$C" snapshot delete s "$name" 2>&1)"
  dl=$(( $(now_ms) - t0 )); [ "$dl" -gt "$longest_del" ] && longest_del=$dl
  sed -i "/^$name /d" "$d/snaps"
  ndel=$((ndel + 1))
}

for k in $(seq 1 "$KILLS"); do
  wait_writes 100 || fail "round $k: writers stalled"
  blocks_writer_check 60
  case $((RANDOM % 8)) in
    0|1|2)
      nsnap=$((nsnap + 1)); ev "create k$nsnap"; snap "k$nsnap" $((RANDOM % 3 + 1)); live+=("k$nsnap")
      ev "created k$nsnap"
      [ ${#live[@]} -gt 3 ] && retire ;;
    3)
      [ ${#live[@]} -gt 1 ] && retire ;;
    4)
      p=$(own_pids 3 "csnap -v export" | head -1)
      if [ -n "$p" ]; then
        ev "kill export node3"; kill -9 "$p"; wait_for 10 sh -c "! kill -0 $p 2>/dev/null"
        rm -f "$(export_sock 3)"
        start_export 3 "$(export_sock 3)" --log "export.$k" s
        nexp=$((nexp + 1))
      fi ;;
    5)
      m=$(master_host)
      n=$(( (m + RANDOM % 2) % 3 + 1 ))
      p=$(agent_pid "$n")
      if [ -n "$p" ]; then
        ev "kill agent node$n"; kill -9 "$p"; wait_for 10 sh -c "! kill -0 $p 2>/dev/null"
        node_spawn "$n" "agent.$k" "$C" agent >/dev/null
        wait_for 30 where "$n" || fail "node$n's restarted agent does not answer"
        nagent=$((nagent + 1))
      fi ;;
  esac
  sleep "0.$((RANDOM % 10))"
  m=$(master_host)
  lver=$(master_lver)
  spid=$(master_server_pid "$m")
  [ -n "$spid" ] || fail "round $k: no server process on master node$m"
  ev "kill master node$m"
  t0=$(now_ms)
  kill -9 "$spid"
  newer() { [ "$(master_lver)" -gt "$lver" ] 2>/dev/null; }
  wait_for 60 newer || fail "round $k: no new master after killing node$m's"
  fo=$(( $(now_ms) - t0 ))
  ev "new master, $fo ms after the kill"
  [ "$fo" -gt 2000 ] && echo "round $k: the master change took $fo ms (at $(mono), $(date +%T.%N))"
  [ "$fo" -gt "$longest_fo" ] && longest_fo=$fo
  [ $((k % 10)) = 0 ] && echo "round $k: $(progress) writes, $nsnap creates, $ndel deletes, $nexp export kills, $nagent agent kills, longest master change $longest_fo ms"
done
wait_writes 200 || fail "writers stalled after the last kill"
ev "create final"
snap final
blocks_stop_writers
t_end=$(now_ms)

blocks_verify
# stall LOG: the longest gap between two acknowledgements, and the faults
# from 1 s before it began to its end (what the client was waiting for)
stall() { awk '{print $4}' "$1" | sort -n |
  awk 'NR > 1 && $1 - p > m {m = $1 - p; e = $1} {p = $1} END {printf "%.3f %.6f", m, e}'; }
read -r s1 e1 < <(stall "$d/w1.log"); read -r s2 e2 < <(stall "$d/w2.log")
for se in "$s1 $e1" "$s2 $e2"; do
  read -r s e <<<"$se"
  echo "faults from 1 s before the longest stall of a writer ($s s) to its end ($e):"
  awk -v e="$e" -v s="$s" '$1 <= e && $1 > e - s - 1 {printf "  %.3f s before its end: %s\n", e - $1, substr($0, index($0, " ") + 1)}' "$d/events"
done
echo "SUMMARY kills=$KILLS creates=$((nsnap + 1)) deletes=$ndel export_kills=$nexp agent_kills=$nagent" \
     "writes=$(progress) wrong_blocks=0 longest_master_change_ms=$longest_fo longest_delete_ms=$longest_del" \
     "longest_stall_s=node1:$s1,node2:$s2 duration_s=$(( (t_end - t_start) / 1000 )) seed=$SEED"
awk -v a="$s1" -v b="$s2" -v m="$STALL_MAX" 'BEGIN {exit !(a <= m && b <= m)}' ||
  fail "a client stalled longer than $STALL_MAX s (node1 $s1 s, node2 $s2 s)"
for i in 1 2 3; do node_kill_procs "$i" TERM; done
sleep 2
no_sanitizer_reports
check_store
echo PASS
