#!/usr/bin/env bash
# bench/changed_walk.sh - what a whole-store CHANGED walk (the master query
# behind `csnap snapshot changed`, `csnap send` and each csnap:changed NBD
# BLOCK_STATUS) costs the master's other clients when nothing changed
# after the asked chunk.  The master walks at most about 10 ms per request
# (admin.c, CHANGED_WALK_NS) and answers with a cursor; the client asks
# again from there.  Before that bound one query walked every exception
# to the end of the store while the master answered nobody else.
#
#   bench/changed_walk.sh [BUILD_DIR]     (NEXC=1000000 by default)
#
# One-node cluster (tests/cluster/lib.sh), a 4 KiB-chunk store filled with
# NEXC exceptions by bench/store_fill (4 snapshots), the master, snapshot
# z taken after the fill (nothing changed since); then 3 times: CHANGED(z,
# origin) from chunk 0 to the end (tools/proto_client changed, following
# the cursor), a `csnap status` started 0.5 s into it, and one started
# after it, alone.  Prints the wall time of each.  Not in `make bench`.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
csnap=$build/csnap fill=$build/bench/store_fill pc=$build/tools/proto_client
nexc=${NEXC:-1000000} cb=4096
export DIR=${DIR:-/var/tmp} CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-10}
# shellcheck source=../tests/cluster/lib.sh
. "$src/tests/cluster/lib.sh"
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

store_bytes=$(( (nexc + 8192) * cb + nexc / 20 * 4096 + (512 << 20) ))
cluster_start 1 "$store_bytes"
trap cluster_stop EXIT
truncate -s $(( (nexc + 4096) * cb )) "$CLUSTER_ORIGIN"
"$csnap" mkstore --chunk-size 4K "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null
"$csnap" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null
"$fill" "$CLUSTER_STORE" "$nexc" 4 0 | head -1
node_spawn 1 server "$csnap" server --grace-ms 0 s >/dev/null
wait_log 1 server 'master for store' 120 || { echo "no master" >&2; exit 1; }
m=$(sed -n 's/.*master for store .* at \([^ ]*\) port \([0-9]*\) .*/\1:\2/p' "$(node_log 1 server)" | tail -1)
node_run 1 "$csnap" snapshot create s z --master "$m" >/dev/null
for i in 1 2 3; do
  t0=$(date +%s%N)
  node_run 1 "$pc" --master "$m" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" changed z "" >"$CLUSTER_DIR/changed.out" &
  q=$!
  sleep 0.5
  t1=$(date +%s%N)
  node_run 1 "$csnap" status s --master "$m" >/dev/null
  st=$(ms "$t1")
  wait "$q"
  total=$(ms "$t0")
  t2=$(date +%s%N)
  node_run 1 "$csnap" status s --master "$m" >/dev/null
  echo "round $i, $nexc exceptions: CHANGED(z, origin) from chunk 0 took $total ms" \
       "($(wc -l <"$CLUSTER_DIR/changed.out") ranges); csnap status started 0.5 s in took $st ms," \
       "alone $(ms "$t2") ms"
done
