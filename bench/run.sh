#!/usr/bin/env bash
# bench/run.sh - `make bench`: every data-path benchmark in one run, the
# peers measured in the same run, and the report.
#
#   bench/run.sh [BUILD_DIR]
#   env: BENCH_QUICK=1  the short mode (under 10 minutes on 2 cores):
#                       data path 3 interleaved rounds of 2 s jobs, first
#                       writes 1 round, 256 MiB volume, snapshot counts
#                       0 1 256, qcow2 with cache=none only, engine at 1 M
#                       exceptions; default: the full mode (3 rounds
#                       everywhere, 10 s jobs, 1 GiB, 0 1 16 64 256
#                       snapshots, qcow2 cache=none and writeback, nbdkit,
#                       engine at 10 M exceptions)
#        BENCH_OUT      results directory (default bench/results)
#        DIR            scratch directory on a file system with O_DIRECT
#
# Runs, in this order (each script's header says what it measures):
#   bench/nbd_throughput.sh  4K randwrite/randread qd32, 1M write/read qd8,
#                            4K randwrite/randread over 4 connections, on
#                            the limit (fio libaio direct=1 on the file),
#                            qemu-nbd --cache=none --aio=native and the
#                            csnap origin export (full mode: also nbdkit);
#   bench/first_writes.sh    first writes (4K one per chunk, 4K random, 1M
#                            sequential) with 0..256 snapshots, csnap and
#                            qemu-nbd on qcow2 with internal snapshots;
#   bench/profile_export.sh  CPU, run-queue wait, wakeups and syscalls per
#                            request of the export next to the limit;
#   build/bench/engine       exception lookups/s, several runs (median);
#   bench/server_rss.sh      the master's resident memory with a 64 MiB
#                            cache_size after a whole-tree walk and a
#                            lookup sweep (quick: 1 M exceptions, full: 10 M);
#   bench/send_receive.sh    csnap send --from A B | csnap receive of a
#                            10 %-changed incremental (plain and
#                            --compress) against raw copying of the same
#                            ranges between the two clusters' exports;
#   build/bench/rollback     rolling a 10 %-changed origin (quick: 256 MiB,
#                            full: 1 GiB) back to a snapshot, with one
#                            later snapshot, 128-chunk steps (the master's
#                            default), against merge-style copying;
#   bench/kernel_peers.sh    (full mode only) 4K random writes on the origin
#                            with 0..64 snapshots: csnap, dm-snapshot and
#                            dm-thin in the kernel VM of make check-kernel.
# Every measurement is appended to BENCH_OUT/raw.tsv; bench/report.py makes
# latest.md, latest.json and the PNG plots from it, and
# bench/update_readme.py rewrites the README's generated performance table.
# The machine is described (nproc, CPU model, kernel, load average at start
# and end) because the absolute figures move with whoever else shares it:
# compare the ratios, which come from one run.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
out=${BENCH_OUT:-$src/bench/results}
mkdir -p "$out"
raw=$out/raw.tsv
: >"$raw"
export DIR=${DIR:-/var/tmp}

meta() { printf 'meta\t%s\t%s\n' "$1" "$2" >>"$raw"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  mode=quick repeat=3 fw_repeat=1 runtime=2 fw_runtime=4 size=256M snaps="0 1 256" qcaches=none
  nbd_targets="limit qemu-nbd csnap-origin" eng_max=1 eng_min=1 eng_runs=3 rss_nexc=1000000 sr_size=64M sr_rounds=1
  rb_mib=256
else
  mode=full repeat=3 fw_repeat=3 runtime=10 fw_runtime=10 size=1G snaps="0 1 16 64 256" qcaches="none writeback"
  nbd_targets="limit qemu-nbd nbdkit nbdkit-nocache csnap-origin" eng_max=10 eng_min=10 eng_runs=3 rss_nexc=10000000
  sr_size=512M sr_rounds=3 rb_mib=1024
fi
jobs="randwrite4k randread4k write1m read1m randwrite4k-mc4 randread4k-mc4"
kinds="chunk4k rand4k seq1m"

meta mode "$mode"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta nproc "$(nproc)"
meta cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
meta kernel "$(uname -sr)"
meta mem "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
meta fs "$(df -T "$DIR" | awk 'NR == 2 { print $2 " on " $1 }')"
meta commit "$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)"
meta fio "$(fio --version)"
meta qemu "$(qemu-nbd --version | head -1)"
meta size "$size"
meta repeat "$repeat"
meta runtime "$runtime"
meta fw_repeat "$fw_repeat"
meta fw_runtime "$fw_runtime"
meta load_start "$(loadavg)"
t0=$(date +%s)

echo "== bench ($mode): NBD data path ($nbd_targets)"
SIZE=$size RUNTIME=$runtime REPEAT=$repeat JOBS=$jobs TARGETS=$nbd_targets RESULTS=$raw \
  bash "$src/bench/nbd_throughput.sh" "$build"

echo "== bench ($mode): first writes after snapshots ($snaps)"
SIZE=$size RUNTIME=$fw_runtime REPEAT=$fw_repeat SNAPS=$snaps KINDS=$kinds QCOW_CACHES=$qcaches \
  RESULTS=$raw bash "$src/bench/first_writes.sh" "$build"

echo "== bench ($mode): where the export's time goes (CPU and scheduler per request)"
SIZE=$size RUNTIME=$fw_runtime RESULTS=$raw bash "$src/bench/profile_export.sh" "$build"

echo "== bench ($mode): engine lookups ($eng_runs runs)"
for r in $(seq "$eng_runs"); do
  "$build/bench/engine" "$DIR" "$eng_max" "$eng_min" | tee "$out/engine-$r.txt" |
    awk -v r="$r" '$1 ~ /^[0-9]+$/ { printf "eng\t%s\t%s\t%d\t%s\t%s\t%s\n", $1, $2, r, $5, $3, $NF }' >>"$raw"
  cat "$out/engine-$r.txt"
done
rm -f "$out"/engine-*.txt

echo "== bench ($mode): server memory against cache_size ($rss_nexc exceptions, 64 MiB cache)"
NEXC=$rss_nexc CACHE=64M RESULTS=$raw bash "$src/bench/server_rss.sh" "$build" ||
  echo "bench: server_rss failed (latest.md reports it as not measured)"

echo "== bench ($mode): send | receive of a 10 % incremental ($sr_size origin)"
SIZE=$sr_size PCT=10 ROUNDS=$sr_rounds RESULTS=$raw bash "$src/bench/send_receive.sh" "$build"

echo "== bench ($mode): rollback of a 10 % changed ${rb_mib} MiB origin against merge copying"
if "$build/bench/rollback" "$DIR" "$rb_mib" 10 1 128 >"$out/rollback.txt"; then
  cat "$out/rollback.txt"
  awk -v mib="$rb_mib" '
    $1 == "merge" { printf "rb\tmerge\t%s\t%s\n", mib, $3 }
    $1 == "rollback" && $3 == "s" { printf "rb\trollback\t%s\t%s\n", mib, $2 }
    $1 == "origin" && $2 == "reads" { printf "rb\tstart_ms\t%s\t%s\n", mib, $5 }
  ' "$out/rollback.txt" >>"$raw"
else
  echo "bench: rollback failed (latest.md reports it as not measured)"
fi
rm -f "$out/rollback.txt"

if [ $mode = full ]; then
  echo "== bench ($mode): kernel peers (dm-snapshot, dm-thin, csnap on nbd) in the qemu VM"
  RESULTS=$raw bash "$src/bench/kernel_peers.sh" "$build" ||
    echo "bench: kernel peers failed (latest.md reports them as not measured)"
fi

meta load_end "$(loadavg)"
meta duration_s "$(( $(date +%s) - t0 ))"

python3 "$src/bench/report.py" "$raw" "$out"
python3 "$src/bench/update_readme.py" "$out/latest.md" "$src/README.md"
echo "== bench: $out/latest.md, latest.json, *.png; README.md performance table updated"
