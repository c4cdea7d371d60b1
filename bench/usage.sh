#!/usr/bin/env bash
# bench/usage.sh - how long `csnap status` and `csnap snapshot list` take
# against a running master whose store holds NEXC exceptions: their
# per-snapshot unique/shared figures come from the usage counters the
# engine keeps (src/store/counters.h), so the answer must not grow with
# the number of exceptions (issue 13's target: under 20 ms at 10 M).
#
#   bench/usage.sh [BUILD_DIR]
#   env: NEXC ascending list of exception counts (default "1000000 10000000"),
#        FILL_SNAPS snapshots spread over the fill (default 16), N timed
#        calls each (default 21), DIR scratch dir (/var/tmp), CHUNK (4K)
#
# One-node cluster (tests/cluster/lib.sh), `csnap mkstore` on sparse
# files; per NEXC: build/bench/store_fill fills the metadata up to NEXC
# exceptions (no data copied) and prints the engine-level figure
# (store_usage() from the counters, median, and one walk of the whole
# tree for comparison, which also confirms the counters exact); `csnap
# server`; then N times `csnap status` and `csnap snapshot list` with
# --master ADDR:PORT (a new CLI process each: start, connect, request,
# reply, print; without --master the lookup of the master through the
# lease-owner record and sanlock is added, the same at any size).
# Also N times `csnap version` (a CLI process that asks nothing: what the
# machine's load adds to every figure above) and the master's own answer:
# tests/tools/proto_client `usage N`, N round trips of SNAP_LIST (with
# usage) and of STATUS on one admin connection.
# Reported: median and max wall time of each, per NEXC; the ratio of the
# medians between the largest and the smallest NEXC.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
fill_tools
nexcs=${NEXC:-"1000000 10000000"}
fillsnaps=${FILL_SNAPS:-16}
n=${N:-21}
chunk=${CHUNK:-4K}
export DIR=${DIR:-/var/tmp}

export CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-10}
# shellcheck source=../tests/cluster/lib.sh
. "$src/tests/cluster/lib.sh"
max=0
for x in $nexcs; do [ "$x" -gt "$max" ] && max=$x; done
fill_cluster_start "$max" "$(numfmt --from=iec "$chunk")"
dir=$CLUSTER_DIR

cs() { node_run 1 "$csnap" "$@"; }

report=()
prev=0
"$csnap" mkstore --chunk-size "$chunk" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null
"$csnap" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null
for nexc in $nexcs; do
  # (ascending) each fill adds to the last one: FILL_SNAPS new snapshots
  # over nexc - prev more exceptions
  echo "filling the store up to $nexc exceptions ($fillsnaps more snapshots)..."
  "$fill" "$CLUSTER_STORE" $((nexc - prev)) "$fillsnaps" 0 | tee "$dir/fill.$nexc"
  prev=$nexc
  node_spawn 1 server "$csnap" server --grace-ms 0 s >/dev/null
  wait_log 1 server 'master for store' 120 || { echo "no master" >&2; exit 1; }
  m=$(sed -n 's/.*master for store .* at \([^ ]*\) port \([0-9]*\) .*/\1:\2/p' "$(node_log 1 server)" | tail -1)
  # the figures are there and exact (the fill's walk said so): one line
  cs snapshot list s --master "$m" | awk 'NR == 2 { print "  first snapshot:", $0 }'
  cs snapshot list s --master "$m" --json | grep -q '"usage_known": true' ||
    { echo "usage unknown on a new store" >&2; exit 1; }
  rm -f "$dir/status.$nexc" "$dir/list.$nexc" "$dir/start.$nexc"
  for i in $(seq "$n"); do timed "$dir/status.$nexc" cs status s --master "$m"; done
  for i in $(seq "$n"); do timed "$dir/list.$nexc" cs snapshot list s --master "$m"; done
  # what a CLI process costs before it asks anything (machine load)
  for i in $(seq "$n"); do timed "$dir/start.$nexc" cs version; done
  # the master's answer alone: round trips on one admin connection
  node_run 1 "$pc" --master "$m" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" usage "$n" >"$dir/rt.$nexc"
  grep -q 'known 1' "$dir/rt.$nexc" || { echo "round trips: $(cat "$dir/rt.$nexc")" >&2; exit 1; }
  node_kill_procs 1 TERM || true
  wait_log 1 server 'orderly hand-over done' 60 || true
  node_kill_procs 1 KILL || true
  read -r sm sx <<<"$(stats "$dir/status.$nexc")"
  read -r lm lx <<<"$(stats "$dir/list.$nexc")"
  read -r vm vx <<<"$(stats "$dir/start.$nexc")"
  eng=$(sed -n 's/.*median of [0-9]*: \([0-9.]*\) ms; a walk of the tree: \([0-9.]*\) ms.*/\1 \2/p' "$dir/fill.$nexc")
  rtl=$(awk '$1 == "list" { printf "%.2f", $3 / 1000 }' "$dir/rt.$nexc")
  rts=$(awk '$1 == "status" { printf "%.2f", $3 / 1000 }' "$dir/rt.$nexc")
  report+=("$(printf '%-9s exceptions: status %6.1f ms (max %.1f), snapshot list %6.1f ms (max %.1f), csnap version %.1f ms; master round trip: list %s ms, status %s ms; engine report %s ms, tree walk %s ms' \
    "$nexc" "$sm" "$sx" "$lm" "$lx" "$vm" "$rtl" "$rts" "${eng%% *}" "${eng##* }")")
  echo "$sm $lm" >"$dir/med.$nexc"
done

echo
echo "csnap status / snapshot list with --master, end to end (new CLI process each), median of $n:"
printf '  %s\n' "${report[@]}"
first=${nexcs%% *}; last=${nexcs##* }
read -r s1 l1 <"$dir/med.$first"; read -r s2 l2 <"$dir/med.$last"
awk -v a="$s2" -v b="$s1" -v c="$l2" -v d="$l1" -v x="$last" -v y="$first" 'BEGIN {
  printf "  %s / %s exceptions: status %.2f, snapshot list %.2f\n", x, y, (b > 0 ? a / b : 0), (d > 0 ? c / d : 0) }'
