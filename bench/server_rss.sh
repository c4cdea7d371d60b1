#!/usr/bin/env bash
# bench/server_rss.sh - resident memory of the master's server process
# against its metadata cache (cache_size), on a store holding many
# exceptions: the server must stay near cache_size however large the
# b-tree is.
#
#   bench/server_rss.sh [BUILD_DIR]
#   env: NEXC exceptions (default 10000000), CACHE cache_size (default 64M),
#        FILL_SNAPS snapshots spread over the fill (default 1), SWEEPS
#        lookup requests of the sweep (default 2000), DIR scratch dir
#        (/var/tmp), RESULTS=FILE (machine-readable lines for bench/run.sh)
#
# Steps: one-node cluster (tests/cluster/lib.sh); `csnap mkstore` (4 KiB
# chunks) on sparse files; build/bench/store_fill records NEXC exceptions
# (metadata only); `csnap server` with cache_size = CACHE; then, with the
# server's VmRSS and VmHWM (peak) from /proc after each step:
#   open     the master has opened the store and published itself;
#   walk     `csnap snapshot changed s fill0` (the chunks changed since
#            the first snapshot: the server reads every leaf of the tree
#            through its cache);
#   lookups  SWEEPS snapshot-read requests of 64 chunks at chunks spread
#            over the whole origin (tests/tools/proto_client sread, one
#            connection each), every one a tree descent through the cache.
# The b-tree is ~53 bytes per exception (530 MiB at 10 M), so a server
# whose memory grew with what it read would show it here.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
fill_tools
nexc=${NEXC:-10000000}
cache=${CACHE:-64M}
fillsnaps=${FILL_SNAPS:-1}
sweeps=${SWEEPS:-2000}
export DIR=${DIR:-/var/tmp}

export CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-10}
# shellcheck source=../tests/cluster/lib.sh
. "$src/tests/cluster/lib.sh"
fill_cluster_start "$nexc" 4096
printf 'cache_size = %s\n' "$cache" >>"$(node_conf 1)"	# ([store s] is the last section)

"$csnap" mkstore --chunk-size 4K --max-snapshots 256 "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null
"$csnap" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null
echo "filling the store with $nexc exceptions..."
"$fill" "$CLUSTER_STORE" "$nexc" "$fillsnaps" 0 >/dev/null

pid=$(node_spawn 1 server "$csnap" server --grace-ms 0 s)
wait_log 1 server 'master for store' 300 || { echo "server_rss: no master" >&2; exit 1; }
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status"; }
cache_kib=$(( $(numfmt --from=iec "$cache") / 1024 ))
report() {
  local rss hwm
  rss=$(kib VmRSS) hwm=$(kib VmHWM)
  printf '  %-8s RSS %7.1f MiB  peak %7.1f MiB  (cache_size %s: RSS / cache %.2f)\n' \
    "$1" "$(echo "$rss / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)" "$cache" \
    "$(echo "$rss / $cache_kib" | bc -l)"
  [ -z "${RESULTS:-}" ] || printf 'rss\t%s\t%s\t%s\t%s\t%s\n' "$1" "$nexc" "$cache_kib" "$rss" "$hwm" >>"$RESULTS"
}
echo "server pid $pid, $nexc exceptions, cache_size $cache:"
report open	# (store_fill names its snapshots fill0, fill1, ...)
node_run 1 "$csnap" snapshot changed s fill0 >/dev/null
report walk
step=$(( nexc / sweeps ))
for i in $(seq 0 $((sweeps - 1))); do
  node_run 1 "$pc" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" sread fill0 $(( i * step + (i * 7919) % step )) 64 >/dev/null
done
report lookups
node_kill_procs 1 TERM || true
wait_log 1 server 'orderly hand-over done' 60 || true
node_kill_procs 1 KILL || true
