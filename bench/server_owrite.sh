#!/usr/bin/env bash
# bench/server_owrite.sh - the metadata server's origin-write path on one
# simulated node (real sanlock, file-backed store and origin on ext4):
#   1. first writes after 1 snapshot (every chunk copied out)
#   2. first writes after 64 snapshots (still one copy per chunk: should be
#      flat, the point of shared exceptions)
#   3. rewrites (no copy: the cheap path)
# Results as chunks/s and the ratio 64-snapshot / 1-snapshot.
#   bench/server_owrite.sh [BUILD]
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
. "$src/tests/cluster/lib.sh"
C=$build/csnap
B=$build/bench/server_owrite
N=${N:-3000}   # 2N copy-outs must fit the store (7599 chunks)
cluster_start 1 512M
"$C" mkstore --chunk-size 64K "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null
"$build/tools/proto_client" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" leaseinit 1 >/dev/null
node_spawn 1 server "$C" server --grace-ms 0 s >/dev/null
wait_log 1 server 'master for store' 60
cs() { node_run 1 "$C" "$@" >/dev/null; }
run() { node_run 1 "$B" "$CLUSTER_STORE" "$@"; }

cs snapshot create s one
r1=$(run 0 "$N" 1 64 | awk '{print $6}')
echo "copy-out, 1 snapshot:    $r1 chunks/s (64 KiB chunks, 64 queries in flight)"
for i in $(seq 2 64); do cs snapshot create s "snap$i"; done
r64=$(run "$N" "$N" 1 64 | awk '{print $6}')
echo "copy-out, 64 snapshots:  $r64 chunks/s"
echo "ratio 64/1:              $(awk -v a="$r64" -v b="$r1" 'BEGIN { printf "%.2f", a / b }')"
rn=$(run "$N" "$N" 1 64 | awk '{print $6}')
echo "no copy (rewrite):       $rn chunks/s"
rr=$(run "$N" "$N" 16 64 | awk '{print $6}')
echo "no copy, 16-chunk ranges: $rr chunks/s"
node_kill_procs 1 TERM
wait_log 1 server "orderly hand-over done" 30
grep -o "served.*" "$(node_log 1 server)"
"$C" check "$CLUSTER_STORE"
