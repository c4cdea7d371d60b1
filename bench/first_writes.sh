#!/usr/bin/env bash
# bench/first_writes.sh - first writes after snapshots: csnap against
# qemu-nbd serving a qcow2 with the same number of internal snapshots,
# through the same client (fio's nbd engine, one unix socket connection),
# and against the same writes with no snapshot at all.
#
#   bench/first_writes.sh [BUILD_DIR]
#   env: SIZE origin / qcow2 virtual size (default 512M)
#        SNAPS snapshot counts measured, ascending; 0 = no snapshot
#              (default "1 $NSNAP", NSNAP default 256)
#        KINDS write patterns (default "chunk4k"):
#          chunk4k  one 4 KiB write at a random offset in each 64 KiB
#                   chunk, chunks in random order, depth DEPTH: every
#                   write is a first write (WRITES of them, default one
#                   per chunk of SIZE)
#          rand4k   4 KiB random writes, depth DEPTH, RUNTIME seconds
#                   (default 10): first writes and rewrites mixed
#          seq1m    one sequential pass over SIZE, 1 MiB writes, depth 8
#        DEPTH fio queue depth of the 4 KiB kinds (default 32)
#        REPEAT rounds, each on fresh images, medians reported (default 1)
#        QCOW_CACHES qemu-nbd cache modes (default "none writeback";
#                    also "directsync" = O_DIRECT and a flush per write)
#        TARGETS (default "csnap qcow2"), DIR scratch dir (/var/tmp)
#        RESULTS append one tab-separated line per measurement:
#                "fw TARGET KIND SNAPS ROUND IOPS" (bench/run.sh reads it)
#
# chunk4k is a fio iolog (fio's blockalign turns its random map off, so
# duplicates would creep in).  After a snapshot every 64 KiB chunk (= the
# qcow2 cluster size) is fresh, so first writes pay the copy-out (csnap)
# or the cluster copy-on-write (qcow2).  Per round, target and count N of
# SNAPS: snapshots are created up to N (csnap: `csnap snapshot create`
# through the master; qcow2: `qemu-img snapshot -c` while qemu-nbd is
# stopped), then each kind runs; before every kind after the first one
# more snapshot is taken, so each kind starts on fresh chunks (N, N+1,
# ...: reported as N).  With N = 0 no snapshot exists: the plain write
# cost, which first writes are compared with.
# The csnap side is a one-node cluster (tests/cluster/lib.sh: its own
# sanlock daemon, `csnap server`, `csnap export` on a unix socket).
# Output: IOPS per target, kind and count, then the ratios csnap last /
# first count, csnap / no snapshot, csnap / qcow2.  Absolute numbers
# depend on the machine; compare the ratios of one run.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
csnap=$build/csnap
size=${SIZE:-512M}
nsnap=${NSNAP:-256}
read -r -a levels <<<"$(tr ' ' '\n' <<<"${SNAPS:-1 $nsnap}" | awk 'NF' | sort -n | uniq | tr '\n' ' ')"
read -r -a kinds <<<"${KINDS:-chunk4k}"
runtime=${RUNTIME:-10}
results=${RESULTS:-/dev/null}
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
maxsnap=$(( ${levels[-1]} + ${#kinds[@]} ))
# Store: at most one copy of the volume per kind and snapshot count, plus
# metadata (sparse).
copies=0
for l in "${levels[@]}"; do [ "$l" -gt 0 ] && copies=$((copies + ${#kinds[@]})); done
store_bytes=$(( (copies + 1) * bytes + (512 << 20) ))

# A loaded machine delays sanlock's renewals; with the tests' 1 s
# io_timeout the master would fence itself mid-run.
export CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-10}
# shellcheck source=../tests/cluster/lib.sh
. "$src/tests/cluster/lib.sh"
. "$src/bench/lib.sh"
cluster_start 1 "$store_bytes"
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

# iolog: WRITES distinct chunks in random order, one 4 KiB write at a
# random 4 KiB offset in each.  fio's iolog replay leaves the last
# DEPTH-1 writes uncounted (it ends with them in flight), so DEPTH-1
# rewrites of the first chunk pad the end; counted are the first WRITES
# completions.
python3 - "$dir/chunk4k.log" "$nchunks" "$writes" "$chunk" "$depth" 1 <<'PY'
import random, sys
path, n, w, chunk, depth, seed = sys.argv[1], *map(int, sys.argv[2:])
rng = random.Random(seed)
chunks = rng.sample(range(n), w)
with open(path, "w") as f:
    f.write("fio version 2 iolog\nnbd add\nnbd open\n")
    offs = [c * chunk + rng.randrange(chunk // 4096) * 4096 for c in chunks]
    for o in offs + [offs[0]] * (depth - 1):
        f.write("nbd write %d 4096\n" % o)
PY

# run_pass NAME URI KIND -> IOPS
run_pass() {
  local job min=1
  case $3 in
    chunk4k) job="--read_iolog=$dir/chunk4k.log --rw=randwrite --bs=4k --iodepth=$depth"; min=$writes ;;
    rand4k) job="--rw=randwrite --bs=4k --iodepth=$depth --time_based=1 --runtime=$runtime --randrepeat=0" ;;
    seq1m) job="--rw=write --bs=1M --iodepth=8"; min=$((bytes >> 20)) ;;
    *) echo "unknown kind $3" >&2; return 1 ;;
  esac
  # shellcheck disable=SC2086  # $job is an option list
  timeout 600 fio --name="$1" --ioengine=nbd --uri="$2" $job --size="$size" --refill_buffers=1 \
      --output-format=json --output="$dir/$1.json" >/dev/null 2>&1 ||
    { echo "fio $1 failed or hung" >&2; return 1; }
  python3 - "$dir/$1.json" "$min" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))["jobs"][0]["write"]
if w["total_ios"] < int(sys.argv[2]):
    sys.exit("fio: only %d of %s writes" % (w["total_ios"], sys.argv[2]))
print("%.0f" % w["iops"])
PY
}

declare -A result   # result[TARGET,KIND,NSNAP]: IOPS per round, ";"-separated
note() {
  printf 'round %d  %-16s %-8s %4d snapshot(s) %8s IOPS\n' "$round" "$1" "$2" "$3" "$4"
  result[$1,$2,$3]+="$4;"
  printf 'fw\t%s\t%s\t%d\t%d\t%s\n' "$1" "$2" "$3" "$round" "$4" >>"$results"
}
# snapshots wanted before kind number I (0-based) at count L
want_snaps() { if [ "$1" = 0 ]; then echo 0; else echo $(( $1 + $2 )); fi; }

cs() { node_run 1 "$csnap" "$@" >/dev/null; }
snap_ms=()
csnap_round() {
  local sock=$dir/csnap.sock uri t0 t1 cur=0 l k i
  uri="nbd+unix:///origin?socket=$sock"
  # A new store file per round: the previous round's lockspace may still
  # be registered with the node's sanlock daemon on the old path.
  rm -f "$CLUSTER_STORE" "$sock"
  CLUSTER_STORE=$dir/store-$round.img
  node_write_conf 1
  truncate -s "$store_bytes" "$CLUSTER_STORE"
  "$csnap" mkstore --chunk-size 64K --max-snapshots "$maxsnap" "$CLUSTER_STORE" "$origin" >/dev/null
  "$csnap" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null
  # --grace-ms 0: no previous master's clients to wait for.
  node_spawn 1 server "$csnap" server --grace-ms 0 s >/dev/null
  wait_log 1 server 'master for store' 120 || { echo "no master" >&2; exit 1; }
  node_spawn 1 export "$csnap" export --socket "$sock" s >/dev/null
  wait_for_socket "$sock"
  for l in "${levels[@]}"; do
    i=0
    for k in "${kinds[@]}"; do
      while [ $cur -lt "$(want_snaps "$l" $i)" ]; do
        cur=$((cur + 1))
        t0=$(date +%s%N); cs snapshot create s "b$cur"; t1=$(date +%s%N)
        [ $cur -lt 2 ] || snap_ms+=($(( (t1 - t0) / 1000 )))
      done
      note csnap "$k" "$l" "$(run_pass "csnap-$k-$l" "$uri" "$k")"
      i=$((i + 1))
    done
  done
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
  local mode=$1 img=$dir/q-$1.qcow2 sock=$dir/q-$1.sock cur=0 l k i
  cp --sparse=always "$dir/base.qcow2" "$img"
  for l in "${levels[@]}"; do
    i=0
    for k in "${kinds[@]}"; do
      while [ $cur -lt "$(want_snaps "$l" $i)" ]; do
        cur=$((cur + 1)); qemu-img snapshot -c "q$cur" "$img"
      done
      qcow_serve "$img" "$mode" "$sock"
      note "qcow2-$mode" "$k" "$l" "$(run_pass "qcow2-$mode-$k-$l" "nbd+unix:///?socket=$sock" "$k")"
      stop_last
      i=$((i + 1))
    done
  done
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
echo "first writes ($writes per chunk4k pass, depth $depth), SIZE=$size, medians of $repeat round(s):"
names=""
for t in $targets; do
  case $t in csnap) names+=" csnap" ;; qcow2) for m in $qcaches; do names+=" qcow2-$m"; done ;; esac
done
for n in $names; do
  for k in "${kinds[@]}"; do
    for l in "${levels[@]}"; do
      printf '%-16s %-8s %4d snapshot(s) %8.0f IOPS\n' "$n" "$k" "$l" "$(median_list "${result[$n,$k,$l]}")"
    done
  done
done
if [ ${#snap_ms[@]} -gt 0 ]; then
  printf '%s\n' "${snap_ms[@]}" | sort -n | awk '{ v[NR] = $1 } END {
    printf "csnap snapshot create (2nd and later, end to end, CLI process included): median %.1f ms, max %.1f ms\n",
           v[int((NR + 1) / 2)] / 1000, v[NR] / 1000 }'
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
case " $targets " in *" csnap "*)
  first=${levels[0]} last=${levels[-1]}
  for k in "${kinds[@]}"; do
    c() { median_list "${result[csnap,$k,$1]}"; }
    [ "$first" = "$last" ] || echo "csnap $k $last/$first snapshots: $(ratio "$(c "$last")" "$(c "$first")")"
    if [ "$first" = 0 ]; then
      for l in "${levels[@]:1}"; do echo "csnap $k $l snapshot(s) / none: $(ratio "$(c "$l")" "$(c 0)")"; done
    fi
    for n in $names; do
      [ "$n" = csnap ] && continue
      for l in "${levels[@]}"; do
        printf 'csnap / %-16s %-8s at %4d snapshot(s): %s\n' "$n" "$k" "$l" \
          "$(ratio "$(c "$l")" "$(median_list "${result[$n,$k,$l]}")")"
      done
    done
  done ;;
esac
