#!/usr/bin/env bash
# bench/snapshot_create.sh - how long `csnap snapshot create` takes against
# a running master whose store holds ~1 M exceptions, and the engine-level
# figure (store_snapshot_create + its commit) on the same store.
#
#   bench/snapshot_create.sh [BUILD_DIR]
#   env: NEXC exceptions to fill (default 1000000), FILL_SNAPS snapshots
#        spread over the fill (default 16), N timed creates (default 21),
#        DIR scratch dir (/var/tmp), CHUNK store chunk size (default 4K)
#
# Steps: one-node cluster (tests/cluster/lib.sh: its own sanlock daemon);
# `csnap mkstore` on sparse files; build/bench/store_fill fills the
# metadata (NEXC exceptions, no data copied) and times the engine-level
# create; `csnap lease init`; `csnap server`; then N times `csnap snapshot
# create` (end to end: a new CLI process finds the master through the
# lease-owner record validated against sanlock, connects, the master runs
# the snapshot barrier with its clients - here one `csnap export` of the
# origin - creates, commits and replies).  Reported: median and max of
# the N creates, the same for `csnap snapshot list` (CLI start, master
# lookup, the usage counters, one round trip), the create on
# an empty store for comparison (ratio full / empty), and the create on
# the full store with no export attached (the export polls the snapshot
# list every second, without usage), and three `snapshot create --from`
# of a snapshot that shares nearly every exception (the master's walk,
# src/store/clone.c, end to end; no export).
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
csnap=$build/csnap
fill=$build/bench/store_fill
nexc=${NEXC:-1000000}
fillsnaps=${FILL_SNAPS:-16}
n=${N:-21}
chunk=${CHUNK:-4K}
export DIR=${DIR:-/var/tmp}
[ -x "$fill" ] || { echo "snapshot_create: $fill missing (make)" >&2; exit 1; }
[ $((fillsnaps + 5 * n + 10)) -le 1024 ] || { echo "snapshot_create: too many snapshots" >&2; exit 2; }

export CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-10}
# shellcheck source=../tests/cluster/lib.sh
. "$src/tests/cluster/lib.sh"
. "$src/bench/lib.sh"
cb=$(numfmt --from=iec "$chunk")
origin_bytes=$(( (nexc + 4096) * cb ))
store_bytes=$(( (nexc + 8192) * cb + nexc / 20 * 4096 + (512 << 20) ))
cluster_start 1 "$store_bytes"
truncate -s "$origin_bytes" "$CLUSTER_ORIGIN"
dir=$CLUSTER_DIR

cs() { node_run 1 "$csnap" "$@"; }

# run_creates TAG EXPORT(0|1): server (+ one origin export), N creates,
# then N lists, server down.
run_creates() {
  local tag=$1 sock=$dir/csnap.sock i
  rm -f "$sock" "$dir/$tag".*
  node_spawn 1 server "$csnap" server --grace-ms 0 s >/dev/null
  wait_log 1 server 'master for store' 120 || { echo "no master" >&2; exit 1; }
  if [ "$2" = 1 ]; then
    # One origin client: every create runs the barrier with a client (and
    # the export polls the snapshot list once a second, as it does).
    node_spawn 1 export "$csnap" export --socket "$sock" s >/dev/null
    wait_for 30 test -S "$sock" || { echo "no export socket" >&2; exit 1; }
  fi
  cs snapshot create s "warmup-$tag" >/dev/null	# first connection, caches
  for i in $(seq "$n"); do timed "$dir/$tag.create" cs snapshot create s "$tag$i"; done
  # --master skips finding the master (lease-owner record + sanlock)
  local m
  m=$(sed -n 's/.*master for store .* at \([^ ]*\) port \([0-9]*\) .*/\1:\2/p' "$(node_log 1 server)" | tail -1)
  for i in $(seq "$n"); do timed "$dir/$tag.direct" cs snapshot create s "$tag-d$i" --master "$m"; done
  for i in $(seq "$n"); do timed "$dir/$tag.status" cs status s; done
  for i in 1 2 3; do timed "$dir/$tag.list" cs snapshot list s; done
  # snapshots of a snapshot (--from): of PARENT, which shares nearly
  # every exception (taken before the fill); the walk visits them all
  if [ -n "${3:-}" ]; then
    for i in 1 2 3; do timed "$dir/$tag.clone" cs snapshot create s "$tag-c$i" --from "$3"; done
  fi
  node_kill_procs 1 TERM || true	# (|| : lib.sh's kill may hit a gone group)
  wait_log 1 server 'orderly hand-over done' 60 || true
  node_kill_procs 1 KILL || true
}

"$csnap" mkstore --chunk-size "$chunk" --max-snapshots 1024 "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null
"$csnap" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null
run_creates empty 1
echo "filling the store with $nexc exceptions over $fillsnaps snapshots..."
"$fill" "$CLUSTER_STORE" "$nexc" "$fillsnaps" "$n"
run_creates fullsrv 0 warmup-empty
run_creates full 1

read -r em ex <<<"$(stats "$dir/empty.create")"
read -r sm sx <<<"$(stats "$dir/fullsrv.create")"
read -r fm fx <<<"$(stats "$dir/full.create")"
read -r lm lx <<<"$(stats "$dir/fullsrv.list")"
read -r dm dx <<<"$(stats "$dir/fullsrv.direct")"
read -r tm tx <<<"$(stats "$dir/fullsrv.status")"
read -r cm cx <<<"$(stats "$dir/fullsrv.clone")"
echo
echo "csnap snapshot create, end to end (new CLI process each), median of $n (max):"
printf '  0 exceptions, 1 origin export:        %8.1f ms (%.1f)\n' "$em" "$ex"
printf '  %-8s exceptions, no export:       %8.1f ms (%.1f)\n' "$nexc" "$sm" "$sx"
printf '  %-8s exceptions, 1 origin export: %8.1f ms (%.1f)\n' "$nexc" "$fm" "$fx"
printf '  %-8s exceptions, no export, --master: %8.1f ms (%.1f)\n' "$nexc" "$dm" "$dx"
printf '  csnap status (no export):             %8.1f ms (%.1f)\n' "$tm" "$tx"
printf '  csnap snapshot list (no export, 3x):  %8.1f ms (%.1f)\n' "$lm" "$lx"
printf '  snapshot create --from (a snapshot sharing ~all %s exceptions, no export, 3x): %8.1f ms (%.1f)\n' \
  "$nexc" "$cm" "$cx"
awk -v a="$fm" -v b="$em" -v c="$sm" 'BEGIN {
  printf "  full / empty (with export): %.2f; full no export / empty: %.2f\n", (b > 0 ? a / b : 0), (b > 0 ? c / b : 0) }'
node_run 1 "$csnap" check "$CLUSTER_STORE" >/dev/null && echo "csnap check: clean"
