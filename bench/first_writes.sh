#!/usr/bin/env bash
# bench/first_writes.sh - first writes after snapshots: csnap with 1 and
# with 256 snapshots against qemu-nbd serving a qcow2 with 1 and 256
# internal snapshots, through the same client (fio's nbd engine, one unix
# socket connection, queue depth 32).
#
#   bench/first_writes.sh [BUILD_DIR]
#   env: SIZE origin / qcow2 virtual size (default 512M)
#        WRITES first writes per pass (default: one per chunk of SIZE)
#        NSNAP snapshots of the second pass (default 256)
#        DEPTH fio queue depth (default 32)
#        REPEAT rounds, each on fresh images, medians reported (default 1)
#        QCOW_CACHES qemu-nbd cache modes (default "none writeback";
#                    also "directsync" = O_DIRECT and a flush per write)
#        TARGETS (default "csnap qcow2"), DIR scratch dir (/var/tmp)
#
# Every measured write is a 4 KiB write at a random offset inside a chunk
# (64 KiB, = the qcow2 cluster size) that has not been written since the
# last snapshot, each chunk once, in random order (a fio iolog: fio's
# blockalign turns its random map off, so duplicates would creep in).  So
# every write pays the copy-out (csnap) or the cluster copy-on-write
# (qcow2).  Per round and target:
#   pass 1: 1 snapshot, then WRITES first writes;
#   pass 2: NSNAP-1 more snapshots (csnap: `csnap snapshot create` through
#           the master; qcow2: `qemu-img snapshot -c`), then WRITES first
#           writes after the last one.
# The csnap side is a one-node cluster (tests/cluster/lib.sh: its own
# sanlock daemon, `csnap server`, `csnap export` on a unix socket).
# Output: IOPS per target and pass, then the ratios csnap256/csnap1,
# csnap/qcow2 at 1 and at NSNAP snapshots.  Absolute numbers depend on
# the machine; compare the ratios of one run.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
csnap=$build/csnap
size=${SIZE:-512M}
nsnap=${NSNAP:-256}
depth=${DEPTH:-32}
repeat=${REPEAT:-1}
qcaches=${QCOW_CACHES:-"none writeback"}
targets=${TARGETS:-"csnap qcow2"}
export DIR=${DIR:-/var/tmp}
chunk=65536

for t in fio qemu-nbd qemu-img python3; do
  command -v $t >/dev/null || { echo "first_writes: $t is required" >&2; exit 1; }
done
bytes=$(numfmt --from=iec "$size")
nchunks=$((bytes / chunk))
writes=${WRITES:-$nchunks}
[ "$writes" -le "$nchunks" ] || { echo "first_writes: WRITES > chunks of SIZE ($nchunks)" >&2; exit 2; }

# A loaded machine delays sanlock's renewals; with the tests' 1 s
# io_timeout the master would fence itself mid-run.
export CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-10}
# shellcheck source=../tests/cluster/lib.sh
. "$src/tests/cluster/lib.sh"
# Store: two passes of copy-outs plus metadata (sparse).
cluster_start 1 $((3 * bytes + (512 << 20)))
dir=$CLUSTER_DIR
origin=$CLUSTER_ORIGIN
pids=()
cleanup_bench() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  cluster_stop
}
trap cleanup_bench EXIT

wait_for_socket() {
  for _ in $(seq 300); do [ -S "$1" ] && return 0; sleep 0.05; done
  echo "no socket at $1" >&2; return 1
}
stop_last() {
  local p=${pids[-1]}
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  unset 'pids[-1]'
}

# Fully written origin: no holes anywhere, every copy reads real data.
truncate -s "$size" "$origin"
fio --name=fill --filename="$origin" --size="$size" --rw=write --bs=1M \
    --ioengine=psync --direct=1 --refill_buffers=1 --output=/dev/null

# iolog PASS: WRITES distinct chunks in random order, one 4 KiB write at a
# random 4 KiB offset in each.  fio's iolog replay leaves the last
# DEPTH-1 writes uncounted (it ends with them in flight), so DEPTH-1
# rewrites of the pass's first chunk pad the end; counted are the first
# WRITES completions.
make_iolog() {
  python3 - "$1" "$nchunks" "$writes" "$chunk" "$depth" "$2" <<'EOF'
import random, sys
path, n, w, chunk, depth, seed = sys.argv[1], *map(int, sys.argv[2:])
rng = random.Random(seed)
chunks = rng.sample(range(n), w)
with open(path, "w") as f:
    f.write("fio version 2 iolog\nnbd add\nnbd open\n")
    offs = [c * chunk + rng.randrange(chunk // 4096) * 4096 for c in chunks]
    for o in offs + [offs[0]] * (depth - 1):
        f.write("nbd write %d 4096\n" % o)
EOF
}
make_iolog "$dir/pass1.log" 1
make_iolog "$dir/pass2.log" 2

# run_pass NAME URI LOG -> IOPS
run_pass() {
  timeout 600 fio --name="$1" --ioengine=nbd --uri="$2" --read_iolog="$3" \
      --rw=randwrite --bs=4k --iodepth="$depth" --size="$size" --refill_buffers=1 \
      --output-format=json --output="$dir/$1.json" >/dev/null 2>&1 ||
    { echo "fio $1 failed or hung" >&2; return 1; }
  python3 - "$dir/$1.json" "$writes" <<'EOF'
import json, sys
w = json.load(open(sys.argv[1]))["jobs"][0]["write"]
if w["total_ios"] < int(sys.argv[2]):
    sys.exit("fio: only %d of %s writes" % (w["total_ios"], sys.argv[2]))
print("%.0f" % w["iops"])
EOF
}

declare -A result   # result[TARGET,NSNAP]: IOPS per round, ";"-separated
note() { printf 'round %d  %-14s %4d snapshot(s) %8s IOPS\n' "$round" "$1" "$2" "$3"; result[$1,$2]+="$3;"; }
median() {
  tr ';' '\n' <<<"$1" | awk 'NF' | sort -n |
    awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

cs() { node_run 1 "$csnap" "$@" >/dev/null; }
snap_ms=()
csnap_round() {
  local sock=$dir/csnap.sock uri i t0 t1
  uri="nbd+unix:///origin?socket=$sock"
  # A new store file per round: the previous round's lockspace may still
  # be registered with the node's sanlock daemon on the old path.
  rm -f "$CLUSTER_STORE" "$sock"
  CLUSTER_STORE=$dir/store-$round.img
  node_write_conf 1
  truncate -s $((3 * bytes + (512 << 20))) "$CLUSTER_STORE"
  "$csnap" mkstore --chunk-size 64K --max-snapshots "$nsnap" "$CLUSTER_STORE" "$origin" >/dev/null
  "$csnap" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null
  # --grace-ms 0: no previous master's clients to wait for.
  node_spawn 1 server "$csnap" server --grace-ms 0 s >/dev/null
  wait_log 1 server 'master for store' 120 || { echo "no master" >&2; exit 1; }
  node_spawn 1 export "$csnap" export --socket "$sock" s >/dev/null
  wait_for_socket "$sock"
  cs snapshot create s b1
  note csnap 1 "$(run_pass csnap1 "$uri" "$dir/pass1.log")"
  for i in $(seq 2 "$nsnap"); do
    t0=$(date +%s%N); cs snapshot create s "b$i"; t1=$(date +%s%N)
    snap_ms+=($(( (t1 - t0) / 1000 )))
  done
  note csnap "$nsnap" "$(run_pass "csnap$nsnap" "$uri" "$dir/pass2.log")"
  # Orderly stop (the server drains, commits and releases its lease).
  node_kill_procs 1 TERM || true	# (|| : lib.sh's kill may hit a gone group)
  wait_log 1 server 'orderly hand-over done' 60 || true
  node_kill_procs 1 KILL || true
}

# qemu-nbd on a copy of the fully allocated qcow2, cache mode $1.
qcow_serve() {
  local img=$1 mode=$2 sock=$3
  rm -f "$sock"
  case $mode in
    none|directsync) qemu-nbd -k "$sock" -f qcow2 -t --cache="$mode" --aio=native "$img" 2>>"$dir/qemu-nbd.log" & ;;
    *) qemu-nbd -k "$sock" -f qcow2 -t --cache="$mode" "$img" 2>>"$dir/qemu-nbd.log" & ;;
  esac
  pids+=($!)
  wait_for_socket "$sock"
}
qcow_round() {
  local mode=$1 img=$dir/q-$1.qcow2 sock=$dir/q-$1.sock i
  cp --sparse=always "$dir/base.qcow2" "$img"
  qemu-img snapshot -c q1 "$img"
  qcow_serve "$img" "$mode" "$sock"
  note "qcow2-$mode" 1 "$(run_pass "qcow2-$mode-1" "nbd+unix:///?socket=$sock" "$dir/pass1.log")"
  stop_last
  for i in $(seq 2 "$nsnap"); do qemu-img snapshot -c "q$i" "$img"; done
  qcow_serve "$img" "$mode" "$sock"
  note "qcow2-$mode" "$nsnap" "$(run_pass "qcow2-$mode-$nsnap" "nbd+unix:///?socket=$sock" "$dir/pass2.log")"
  stop_last
  rm -f "$img"
}

case " $targets " in *" qcow2 "*)
  # Same size, same 64 KiB clusters, every cluster allocated (random data).
  qemu-img convert -f raw -O qcow2 -o cluster_size=64k "$origin" "$dir/base.qcow2" ;;
esac
for round in $(seq "$repeat"); do
  for t in $targets; do
    case $t in
      csnap) csnap_round ;;
      qcow2) for m in $qcaches; do qcow_round "$m"; done ;;
      *) echo "unknown target $t" >&2; exit 2 ;;
    esac
  done
done

echo
echo "first writes, 4 KiB random, one per fresh 64 KiB chunk, $writes per pass, depth $depth," \
     "SIZE=$size, medians of $repeat round(s):"
names=""
for t in $targets; do
  case $t in csnap) names+=" csnap" ;; qcow2) for m in $qcaches; do names+=" qcow2-$m"; done ;; esac
done
for n in $names; do
  for k in 1 "$nsnap"; do
    printf '%-16s %4d snapshot(s) %8.0f IOPS\n' "$n" "$k" "$(median "${result[$n,$k]}")"
  done
done
if [ ${#snap_ms[@]} -gt 0 ]; then
  printf '%s\n' "${snap_ms[@]}" | sort -n | awk -v n="$nsnap" '{ v[NR] = $1 } END {
    printf "csnap snapshot create (2..%d, end to end, CLI process included): median %.1f ms, max %.1f ms\n",
           n, v[int((NR + 1) / 2)] / 1000, v[NR] / 1000 }'
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
case " $targets " in *" csnap "*)
  echo "csnap $nsnap/1 snapshots:           $(ratio "$(median "${result[csnap,$nsnap]}")" "$(median "${result[csnap,1]}")")"
  for n in $names; do
    [ "$n" = csnap ] && continue
    echo "$n $nsnap/1 snapshots: $(ratio "$(median "${result[$n,$nsnap]}")" "$(median "${result[$n,1]}")")"
    for k in 1 "$nsnap"; do
      printf 'csnap / %-16s at %4d snapshot(s): %s\n' "$n" "$k" \
        "$(ratio "$(median "${result[csnap,$k]}")" "$(median "${result[$n,$k]}")")"
    done
  done ;;
esac
