#!/usr/bin/env bash
# bench/nbd_throughput.sh - csnap's NBD data path against nbdkit's file
# plugin, through the same client (fio's nbd engine), on the same file.
#
#   bench/nbd_throughput.sh [BUILD_DIR]
#   env: SIZE (default 1G), RUNTIME seconds per job (default 10),
#        DIR scratch directory on a file system with O_DIRECT (/var/tmp),
#        JOBS (default "randwrite4k randread4k write1m read1m"),
#        TARGETS (default: every target whose prerequisites exist)
#
# Targets:
#   nbdkit         nbdkit file plugin, default page cache (upper bound:
#                  writes land in RAM, reads may come from RAM)
#   nbdkit-nocache nbdkit file plugin, cache=none (writes go out to the
#                  device, like csnap's O_DIRECT)
#   csnap-file     csnap export --file (the NBD server and dio, no store)
#   csnap-origin   csnap export of a store's origin, no snapshot
#   csnap-cow      csnap origin export, first writes after a snapshot
#                  (a fresh snapshot before each job: every chunk a job
#                  touches first is copied out once)
# The csnap-origin and csnap-cow targets run a one-node cluster (real
# sanlock daemon, tests/cluster/lib.sh) with `csnap server`; they are
# skipped with a message if sanlock is missing.
#
# Output: one line per target and job (IOPS, MiB/s), then the ratio of
# each csnap target to both nbdkit baselines.  Absolute numbers depend on
# the machine; the ratios are what to compare.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
csnap=$build/csnap
size=${SIZE:-1G}
runtime=${RUNTIME:-10}
jobs=${JOBS:-"randwrite4k randread4k write1m read1m"}
cow_jobs=${COW_JOBS:-"randwrite4k write1m"}
export DIR=${DIR:-/var/tmp}
pids=()
have_cluster=0
if command -v sanlock >/dev/null 2>&1; then
  # A loaded machine delays sanlock's renewals; with the tests' 1 s
  # io_timeout the master would fence itself mid-run.
  export CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-10}
  # shellcheck source=../tests/cluster/lib.sh
  . "$src/tests/cluster/lib.sh"
  bytes=$(numfmt --from=iec "$size")
  cluster_start 1 $((bytes + bytes / 2 + (256 << 20)))
  have_cluster=1
  dir=$CLUSTER_DIR
  origin=$CLUSTER_ORIGIN
  truncate -s "$size" "$origin"
else
  dir=$(mktemp -d "$DIR/csnap-bench.XXXXXX")
  origin=$dir/origin.img
fi
cleanup_bench() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $have_cluster = 1 ]; then cluster_stop; else rm -rf "$dir"; fi
}
trap cleanup_bench EXIT
trap 'exit 130' INT TERM

command -v fio >/dev/null || { echo "fio is required"; exit 1; }
command -v nbdkit >/dev/null || { echo "nbdkit is required"; exit 1; }

wait_for_socket() {
  for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done
  echo "no socket at $1" >&2; return 1
}

stop_server() {
  local p=${pids[-1]}
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  unset 'pids[-1]'
}

# Fully written origin: no holes, so no target pays for block allocation.
fio --name=fill --filename="$origin" --size="$size" --rw=write --bs=1M \
    --ioengine=psync --direct=1 --refill_buffers=1 --output=/dev/null

# run_job TARGET URI JOB -> "iops mibps"
run_job() {
  local uri=$2 job=$3 rw bs depth
  case $job in
    randwrite4k) rw=randwrite bs=4k depth=32 ;;
    randread4k)  rw=randread  bs=4k depth=32 ;;
    write1m)     rw=write     bs=1M depth=8 ;;
    read1m)      rw=read      bs=1M depth=8 ;;
    *) echo "unknown job $job" >&2; return 1 ;;
  esac
  timeout $((runtime * 3 + 120)) fio --name="$job" --ioengine=nbd --uri="$uri" --rw=$rw --bs=$bs --iodepth=$depth \
      --size="$size" --time_based=1 --runtime="$runtime" --ramp_time=1 \
      --refill_buffers=1 --randrepeat=0 --output-format=json --output="$dir/$1-$job.json" \
      ${FIO_EXTRA:-} >/dev/null 2>&1 || { echo "fio $job on $1 failed or hung" >&2; return 1; }
  /usr/bin/python3 - "$dir/$1-$job.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
io = j["write"] if j["write"]["io_bytes"] else j["read"]
print("%.0f %.1f" % (io["iops"], io["bw_bytes"] / 1048576))
EOF
}

declare -A result
bench_target() {
  local target=$1 uri=$2 job
  for job in $3; do
    local r
    r=$(run_job "$target" "$uri" "$job")
    result[$target,$job]=$r
    printf '%-15s %-12s %10s IOPS %9s MiB/s\n' "$target" "$job" $r
  done
}

targets=${TARGETS:-"nbdkit nbdkit-nocache csnap-file csnap-origin csnap-cow"}
store_up=0
start_store() {
  [ $store_up = 1 ] && return 0
  "$csnap" mkstore --chunk-size 64K "$CLUSTER_STORE" "$origin" >/dev/null
  "$build/tools/proto_client" "$CLUSTER_STORE" "$origin" leaseinit "$CLUSTER_IO_TIMEOUT" >/dev/null
  node_spawn 1 server "$csnap" server s >/dev/null
  wait_log 1 server 'master for store' 60 || { echo "no master" >&2; exit 1; }
  node_spawn 1 export "$csnap" export --socket "$dir/csnap.sock" s >/dev/null
  wait_for_socket "$dir/csnap.sock"
  sleep 1	# the server's lock re-upload window after takeover
  store_up=1
}

nsnap=0
for t in $targets; do
  sock=$dir/$t.sock
  case $t in
    nbdkit)
      nbdkit -f -U "$sock" file file="$origin" & pids+=($!)
      wait_for_socket "$sock"; bench_target $t "nbd+unix:///?socket=$sock" "$jobs"; stop_server ;;
    nbdkit-nocache)
      nbdkit -f -U "$sock" file file="$origin" cache=none & pids+=($!)
      wait_for_socket "$sock"; bench_target $t "nbd+unix:///?socket=$sock" "$jobs"; stop_server ;;
    csnap-file)
      "$csnap" export --file "$origin" --socket "$sock" >/dev/null & pids+=($!)
      wait_for_socket "$sock"; bench_target $t "nbd+unix:///origin?socket=$sock" "$jobs"; stop_server ;;
    csnap-origin)
      [ $have_cluster = 1 ] || { echo "$t: skipped (sanlock not installed)"; continue; }
      start_store
      bench_target $t "nbd+unix:///origin?socket=$dir/csnap.sock" "$jobs" ;;
    csnap-cow)
      [ $have_cluster = 1 ] || { echo "$t: skipped (sanlock not installed)"; continue; }
      start_store
      for job in $cow_jobs; do
        nsnap=$((nsnap + 1))
        node_run 1 "$csnap" snapshot create s "bench$nsnap" >/dev/null
        # One pass over the volume for sequential writes: all first writes.
        extra=""
        [ "$job" = write1m ] && extra="--time_based=0 --ramp_time=0 --io_size=$size"
        FIO_EXTRA=$extra bench_target $t "nbd+unix:///origin?socket=$dir/csnap.sock" "$job"
      done ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
done

echo
echo "ratios (csnap / nbdkit, same client, same file):"
for t in $targets; do
  case $t in csnap-*) ;; *) continue ;; esac
  for job in $jobs; do
    [ -n "${result[$t,$job]:-}" ] || continue
    line=$(printf '%-15s %-12s' "$t" "$job")
    for base in nbdkit nbdkit-nocache; do
      [ -n "${result[$base,$job]:-}" ] || continue
      line+=$(awk -v a="${result[$t,$job]%% *}" -v b="${result[$base,$job]%% *}" -v n="$base" \
              'BEGIN { printf "  vs %s %.2f", n, (b > 0 ? a / b : 0) }')
    done
    echo "$line"
  done
done
