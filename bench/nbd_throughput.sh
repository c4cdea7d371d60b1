#!/usr/bin/env bash
# bench/nbd_throughput.sh - csnap's NBD data path against the device's own
# limit (fio libaio direct=1 on the file), qemu-nbd (O_DIRECT) and nbdkit's
# file plugin, through the same client (fio's nbd engine), on the same file.
#
#   bench/nbd_throughput.sh [BUILD_DIR]
#   env: SIZE (default 1G), RUNTIME seconds per job (default 10),
#        REPEAT rounds, targets interleaved, medians reported (default 1),
#        DIR scratch directory on a file system with O_DIRECT (/var/tmp),
#        JOBS (default "randwrite4k randread4k write1m read1m"; also
#        randwrite4k-mc4 and randread4k-mc4: 4 connections at depth 8 each),
#        TARGETS (default "nbdkit nbdkit-nocache csnap-file csnap-origin
#        csnap-cow"), RESULTS (append one tab-separated line per target, job
#        and round: "nbd TARGET JOB ROUND IOPS MiB/s"; bench/run.sh reads it)
#
# Targets:
#   limit          no NBD: fio's libaio engine, direct=1, on the file itself
#                  (same job, same depth: what the device gives)
#   qemu-nbd       qemu-nbd -f raw --cache=none --aio=native (O_DIRECT NBD
#                  server, like csnap)
#   nbdkit         nbdkit file plugin, default page cache (upper bound:
#                  writes land in RAM, reads may come from RAM)
#   nbdkit-nocache nbdkit file plugin, cache=none (writes go out to the
#                  device, like csnap's O_DIRECT)
#   csnap-file     csnap export --file (the NBD server and dio, no store)
#   csnap-origin   csnap export of a store's origin, no snapshot
#   csnap-file-t1, csnap-origin-t1
#                  the same with one loop thread (--threads 1; csnap-file
#                  and csnap-origin run --threads 4): what the loop
#                  threads (export_threads) bring
#   csnap-cow      csnap origin export, first writes after a snapshot
#                  (a fresh snapshot before each job: every chunk a job
#                  touches first is copied out once; csnap-origin jobs
#                  that run after it then see snapshots too: list it last
#                  or alone)
# The csnap-origin and csnap-cow targets run a one-node cluster (real
# sanlock daemon, tests/cluster/lib.sh) with `csnap server`; they are
# skipped with a message if sanlock is missing.
#
# Between targets the origin's page cache is written back and dropped: a
# page-cached target (nbdkit) leaves dirty pages behind, and every
# O_DIRECT writer after it would pay for their writeback.
# Output: one line per target and job (IOPS, MiB/s), then the ratio of
# each csnap target to every baseline measured.  Absolute numbers depend
# on the machine; the ratios are what to compare.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
csnap=$build/csnap
size=${SIZE:-1G}
runtime=${RUNTIME:-10}
repeat=${REPEAT:-1}
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
results=${RESULTS:-/dev/null}

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

# Write back and drop the origin's cached pages (see the header).
drop_cache() {
  dd if=/dev/null of="$origin" oflag=nocache conv=notrunc,fdatasync count=0 status=none
}

# run_job TARGET URI JOB -> "iops mibps"; URI "file" = the limit target
# (libaio, direct=1, on the origin file).
run_job() {
  local uri=$2 job=$3 rw bs depth conns=1 engine
  case $job in
    randwrite4k) rw=randwrite bs=4k depth=32 ;;
    randread4k)  rw=randread  bs=4k depth=32 ;;
    write1m)     rw=write     bs=1M depth=8 ;;
    read1m)      rw=read      bs=1M depth=8 ;;
    randwrite4k-mc4) rw=randwrite bs=4k depth=8 conns=4 ;;
    randread4k-mc4)  rw=randread  bs=4k depth=8 conns=4 ;;
    *) echo "unknown job $job" >&2; return 1 ;;
  esac
  if [ "$uri" = file ]; then
    engine="--ioengine=libaio --direct=1 --filename=$origin"
  else
    engine="--ioengine=nbd --uri=$uri"
  fi
  # shellcheck disable=SC2086  # $engine and FIO_EXTRA are option lists
  timeout $((runtime * 3 + 120)) fio --name="$job" $engine --rw=$rw --bs=$bs --iodepth=$depth \
      --numjobs=$conns --group_reporting=1 \
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

# result[TARGET,JOB]: "iops mibps" per round, rounds separated by ";".
declare -A result
bench_target() {
  local target=$1 uri=$2 job
  for job in $3; do
    local r
    r=$(run_job "$target" "$uri" "$job")
    result[$target,$job]+="$r;"
    printf 'nbd\t%s\t%s\t%d\t%s\t%s\n' "$target" "$job" "$round" $r >>"$results"
    printf 'round %d  %-15s %-12s %10s IOPS %9s MiB/s\n' "$round" "$target" "$job" $r
  done
}
# median_field ENTRY FIELD(1 iops, 2 MiB/s): the median of a result entry
median_field() { tr ';' '\n' <<<"$1" | awk -v f="$2" 'NF { print $f }' | median; }

targets=${TARGETS:-"nbdkit nbdkit-nocache csnap-file csnap-origin csnap-cow"}
store_up=0
start_store() {
  [ $store_up = 1 ] && return 0
  "$csnap" mkstore --chunk-size 64K "$CLUSTER_STORE" "$origin" >/dev/null
  "$csnap" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null
  node_spawn 1 server "$csnap" server s >/dev/null
  wait_log 1 server 'master for store' 60 || { echo "no master" >&2; exit 1; }
  node_spawn 1 export "$csnap" export --threads 4 --socket "$dir/csnap.sock" s >/dev/null
  wait_for_socket "$dir/csnap.sock"
  case " $targets " in *" csnap-origin-t1 "*)
    # a second export of the same store, one loop thread
    node_spawn 1 export-t1 "$csnap" export --threads 1 --socket "$dir/csnap-t1.sock" s >/dev/null
    wait_for_socket "$dir/csnap-t1.sock" ;;
  esac
  sleep 1	# the server's lock re-upload window after takeover
  store_up=1
}

nsnap=0
# Job-major order: every target runs a job within seconds of the others,
# so a ratio compares measurements under the same machine load.
for round in $(seq "$repeat"); do
for j in $jobs; do
for t in $targets; do
  sock=$dir/$t.sock
  rm -f "$sock"	# nbdkit leaves its socket behind
  drop_cache
  case $t in
    limit)
      bench_target $t file "$j" ;;
    qemu-nbd)
      # -e 4: up to 4 clients (the multi-connection jobs); -t: stay up
      qemu-nbd -k "$sock" -f raw -t -e 4 --cache=none --aio=native "$origin" 2>>"$dir/qemu-nbd.log" & pids+=($!)
      wait_for_socket "$sock"; bench_target $t "nbd+unix:///?socket=$sock" "$j"; stop_server ;;
    nbdkit)
      command -v nbdkit >/dev/null || { echo "nbdkit is required" >&2; exit 1; }
      nbdkit -f -U "$sock" file file="$origin" & pids+=($!)
      wait_for_socket "$sock"; bench_target $t "nbd+unix:///?socket=$sock" "$j"; stop_server ;;
    nbdkit-nocache)
      command -v nbdkit >/dev/null || { echo "nbdkit is required" >&2; exit 1; }
      nbdkit -f -U "$sock" file file="$origin" cache=none & pids+=($!)
      wait_for_socket "$sock"; bench_target $t "nbd+unix:///?socket=$sock" "$j"; stop_server ;;
    csnap-file|csnap-file-t1)
      th="--threads 4"; [ $t = csnap-file-t1 ] && th="--threads 1"
      # shellcheck disable=SC2086
      "$csnap" export --file "$origin" --socket "$sock" $th >/dev/null & pids+=($!)
      wait_for_socket "$sock"; bench_target $t "nbd+unix:///origin?socket=$sock" "$j"; stop_server ;;
    csnap-origin|csnap-origin-t1)
      [ $have_cluster = 1 ] || { echo "$t: skipped (sanlock not installed)"; continue; }
      start_store
      s=csnap.sock; [ $t = csnap-origin-t1 ] && s=csnap-t1.sock
      bench_target $t "nbd+unix:///origin?socket=$dir/$s" "$j" ;;
    csnap-cow)
      [ $have_cluster = 1 ] || { echo "$t: skipped (sanlock not installed)"; continue; }
      case " $cow_jobs " in *" $j "*) ;; *) continue ;; esac
      start_store
      nsnap=$((nsnap + 1))
      node_run 1 "$csnap" snapshot create s "bench$nsnap" >/dev/null
      # One pass over the volume for sequential writes: all first writes.
      extra=""
      [ "$j" = write1m ] && extra="--time_based=0 --ramp_time=0 --io_size=$size"
      FIO_EXTRA=$extra bench_target $t "nbd+unix:///origin?socket=$dir/csnap.sock" "$j" ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
done
done
done

echo
echo "medians over $repeat round(s):"
for t in $targets; do
  for job in $jobs; do
    [ -n "${result[$t,$job]:-}" ] || continue
    printf '%-15s %-12s %10.0f IOPS %9.1f MiB/s\n' "$t" "$job" \
      "$(median_field "${result[$t,$job]}" 1)" "$(median_field "${result[$t,$job]}" 2)"
  done
done

echo
echo "ratios (csnap / baseline, same client, same file; limit: fio libaio on the file):"
for t in $targets; do
  case $t in csnap-*) ;; *) continue ;; esac
  for job in $jobs; do
    [ -n "${result[$t,$job]:-}" ] || continue
    line=$(printf '%-15s %-12s' "$t" "$job")
    for base in limit qemu-nbd nbdkit nbdkit-nocache; do
      [ -n "${result[$base,$job]:-}" ] || continue
      line+=$(awk -v a="$(median_field "${result[$t,$job]}" 1)" -v b="$(median_field "${result[$base,$job]}" 1)" -v n="$base" \
              'BEGIN { printf "  vs %s %.2f", n, (b > 0 ? a / b : 0) }')
    done
    echo "$line"
  done
done
