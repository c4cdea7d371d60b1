#!/usr/bin/env bash
# bench/profile_export.sh - where the time of the export's data path goes:
# CPU and scheduler figures per request of `csnap export --file` under
# fio's nbd engine, next to the same job through fio's libaio engine on the
# same file (the limit).
#
#   bench/profile_export.sh [BUILD_DIR]
#   env: SIZE (default 512M), RUNTIME seconds per job (default 8),
#        JOBS (default "randwrite4k write1m"), DIR scratch dir (/var/tmp),
#        RESULTS append "prof TARGET JOB KEY VALUE" lines (bench/run.sh)
#
# Per job it reports, from the kernel's own accounting over the run:
#   iops, lat_ms           fio's figures
#   client_us              fio's CPU (user + system) per request: for the
#                          limit this is all the CPU the I/O costs; for NBD
#                          the client half (libnbd, socket, wakeups)
#   export_us              the export process's CPU per request
#                          (/proc/PID/schedstat run time: user + kernel,
#                          including io_submit's block mapping)
#   export_wait_us         time the export was runnable but waiting for a
#                          CPU, per request (schedstat run-queue time): on a
#                          shared machine this is what each wakeup costs
#   export_wakeups         context switches of the export per request
#                          (/proc/PID/status, voluntary + involuntary)
#   export_syscalls        system calls of the export per request (perf
#                          stat raw_syscalls:sys_enter; "-" without perf)
# The export serves a plain file (--file: the NBD server and O_DIRECT
# async I/O, no store), which bench/nbd_throughput.sh shows to be within
# noise of the origin export with no snapshot.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
size=${SIZE:-512M}
runtime=${RUNTIME:-8}
jobs=${JOBS:-"randwrite4k write1m"}
results=${RESULTS:-/dev/null}
dir=$(mktemp -d "${DIR:-/var/tmp}/csnap-prof.XXXXXX")
file=$dir/file.img
sock=$dir/s.sock
epid=
cleanup() {
  [ -z "$epid" ] || { kill "$epid" 2>/dev/null || true; wait "$epid" 2>/dev/null || true; }
  rm -rf "$dir"
}
trap cleanup EXIT

fio --name=fill --filename="$file" --size="$size" --rw=write --bs=1M \
    --ioengine=psync --direct=1 --refill_buffers=1 --output=/dev/null
"$build/csnap" export --file "$file" --socket "$sock" >"$dir/export.log" 2>&1 &
epid=$!
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "profile_export: no socket" >&2; exit 1; }

# export's counters: "run_ns wait_ns switches", summed over its threads
# (the loop threads; /proc/PID/schedstat alone is the main thread's)
ecounters() {
  echo "$(cat /proc/"$epid"/task/*/schedstat | awk '{ r += $1; w += $2 } END { printf "%d %d", r, w }') \
$(cat /proc/"$epid"/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }')"
}
have_perf=0
command -v perf >/dev/null 2>&1 && perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 && have_perf=1

# run TARGET JOB
run() {
  local target=$1 job=$2 rw bs depth engine before after sys=- ppid=
  case $job in
    randwrite4k) rw=randwrite bs=4k depth=32 ;;
    randread4k)  rw=randread  bs=4k depth=32 ;;
    write1m)     rw=write     bs=1M depth=8 ;;
    read1m)      rw=read      bs=1M depth=8 ;;
    *) echo "unknown job $job" >&2; return 1 ;;
  esac
  if [ "$target" = limit ]; then
    engine="--ioengine=libaio --direct=1 --filename=$file"
  else
    engine="--ioengine=nbd --uri=nbd+unix:///?socket=$sock"
  fi
  dd if=/dev/null of="$file" oflag=nocache conv=notrunc,fdatasync count=0 status=none
  before=$(ecounters)
  if [ $have_perf = 1 ] && [ "$target" != limit ]; then
    perf stat -x, -e raw_syscalls:sys_enter -p "$epid" -o "$dir/perf.txt" -- sleep $((runtime + 1)) &
    ppid=$!
  fi
  # shellcheck disable=SC2086  # $engine is an option list
  fio --name="$job" $engine --rw=$rw --bs=$bs --iodepth=$depth --size="$size" \
      --time_based=1 --runtime="$runtime" --refill_buffers=1 --randrepeat=0 \
      --output-format=json --output="$dir/$target-$job.json" >/dev/null 2>&1 ||
    { echo "profile_export: fio $job on $target failed" >&2; return 1; }
  after=$(ecounters)
  [ -z "$ppid" ] || wait "$ppid" 2>/dev/null || true
  [ "$target" = limit ] || [ $have_perf = 0 ] || sys=$(awk -F, '/raw_syscalls/ { print $1 }' "$dir/perf.txt")
  python3 - "$dir/$target-$job.json" "$target" "$job" "$runtime" "$before" "$after" "$sys" <<'PY' | tee -a "$results" | cut -f2- | tr '\t' ' '
import json, sys
path, target, job, runtime = sys.argv[1:5]
b, a, sysc = [int(x) for x in sys.argv[5].split()], [int(x) for x in sys.argv[6].split()], sys.argv[7]
j = json.load(open(path))["jobs"][0]
io = j["write"] if j["write"]["io_bytes"] else j["read"]
n = io["total_ios"] or 1
out = {"iops": "%.0f" % io["iops"], "lat_ms": "%.2f" % (io["clat_ns"]["mean"] / 1e6),
       "client_us": "%.1f" % ((j["usr_cpu"] + j["sys_cpu"]) / 100 * float(runtime) * 1e6 / n)}
if target != "limit":
    out["export_us"] = "%.1f" % ((a[0] - b[0]) / 1e3 / n)
    out["export_wait_us"] = "%.1f" % ((a[1] - b[1]) / 1e3 / n)
    out["export_wakeups"] = "%.2f" % ((a[2] - b[2]) / n)
    out["export_syscalls"] = "%.2f" % (int(sysc) / n) if sysc not in ("-", "", "<not counted>") else "-"
for k, v in out.items():
    print("prof\t%s\t%s\t%s\t%s" % (target, job, k, v))
PY
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for job in $jobs; do
  run limit "$job"
  run csnap-file "$job"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
