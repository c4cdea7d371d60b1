#!/usr/bin/env bash
# bench/failover.sh - how fast the master lease moves, on real sanlock
# daemons (three simulated nodes, tests/cluster/lib.sh, io_timeout 1):
#   join      lease_join() of one node (sanlock's delta lease acquisition)
#   kill      master process SIGKILLed -> a standby holds the lease and has
#             published its record
#   orderly   master SIGTERMed (clear record, release) -> same
#   crash     whole master node killed (sanlock daemon too) -> same; about
#             8 * io_timeout + 60 s by sanlock's design (only with --crash)
# Standbys retry acquiring every LEASE_POLL_MS (default here 50) ms.
#
#   bench/failover.sh [--rounds N] [--crash] [BUILD_DIR]
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
failover_args 5 "$@"
T=$build/tools
. "$src/tests/cluster/lib.sh"
export LEASE_POLL_MS=${LEASE_POLL_MS:-50}

minmax() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s..%s", lo, hi }'; }
report() {  # NAME FILE
  printf '%-10s median %6s ms  (range %s ms, %d runs)\n' "$1" "$(median <"$2")" \
    "$(minmax <"$2")" "$(wc -l <"$2")"
}

cluster_start 3
export LEASE_PATH=$CLUSTER_STORE LEASE_UUID
LEASE_UUID=$(new_uuid)
"$T/lease_tool" init 1 >/dev/null || exit 1
out=$CLUSTER_DIR/bench
mkdir -p "$out"

# join: each node joins once (three samples).
for i in 1 2 3; do
  node_run "$i" "$T/lease_tool" join "$i" 1 | awk '{ print $2 }' >>"$out/join"
done

gen=0
spawn_all() {   # a fresh holder on every node that has none
  local i
  gen=$((gen + 1))
  for i in 1 2 3; do
    node_spawn "$i" "h$gen" "$T/lease_holder" "$i" "$(node_addr "$i")" "700$i" 1 >/dev/null
  done
}
master_of() {   # node whose holder of generation G is master and still running
  local i
  for i in 1 2 3; do
    grep -q '^master' "$(node_log "$i" "h$1")" 2>/dev/null &&
      ! grep -Eq '^(released|fenced|killed)' "$(node_log "$i" "h$1")" && echo "$i"
  done
}
has_master() { [ -n "$(master_of "$gen")" ]; }
# Wall ms at which some holder other than node $1 became master.
taken_at() {
  local i
  for i in 1 2 3; do
    [ "$i" = "$1" ] && continue
    sed -n 's/^master.* at=\([0-9]*\)$/\1/p' "$(node_log "$i" "h$gen")"
  done | head -1
}
took_over() { [ -n "$(taken_at "$1")" ]; }

for kind in kill orderly; do
  for _ in $(seq 1 "$rounds"); do
    for i in 1 2 3; do node_kill_procs "$i" KILL; done
    spawn_all
    wait_for 30 has_master || { echo "no master" >&2; exit 1; }
    m=$(master_of "$gen")
    sleep 0.5   # standbys settled into their retry loop
    t0=$(( $(date +%s%N) / 1000000 ))
    if [ "$kind" = kill ]; then
      node_kill_procs "$m" KILL
      echo killed >>"$(node_log "$m" "h$gen")"
    else
      node_kill_procs "$m" TERM
    fi
    wait_for 30 took_over "$m" || { echo "no takeover ($kind)" >&2; exit 1; }
    echo $(( $(taken_at "$m") - t0 )) >>"$out/$kind"
  done
done

if [ "$crash" = 1 ]; then
  for i in 1 2 3; do node_kill_procs "$i" KILL; done
  spawn_all
  wait_for 30 has_master || exit 1
  m=$(master_of "$gen")
  sleep 0.5
  t0=$(( $(date +%s%N) / 1000000 ))
  node_kill "$m"
  echo killed >>"$(node_log "$m" "h$gen")"
  wait_for 200 took_over "$m" || { echo "no takeover (crash)" >&2; exit 1; }
  echo $(( $(taken_at "$m") - t0 )) >>"$out/crash"
fi

echo "csnap lease failover, sanlock $(sanlock version 2>/dev/null | head -1), io_timeout 1 s, standby retry ${LEASE_POLL_MS} ms"
report join "$out/join"
report kill "$out/kill"
report orderly "$out/orderly"
[ "$crash" = 1 ] && report crash "$out/crash"
exit 0
