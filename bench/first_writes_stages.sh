#!/usr/bin/env bash
# bench/first_writes_stages.sh - where one first write's time goes in the
# master: runs bench/first_writes.sh for one kind at SNAPS="0 1", attaches
# `perf trace` (syscalls with durations, far lighter than strace) to the
# csnap server once the no-snapshot pass is over, so only the first-write
# pass is traced, and splits the trace into group-commit cycles.
#
#   bench/first_writes_stages.sh [BUILD_DIR]
#   env: KIND (chunk4k, default; or seq1m), SIZE (default 256M), STAGES_KEEP=1
#        (keep the trace and print where), and any
#        other first_writes.sh variable except SNAPS/KINDS/TARGETS.
#
# A cycle runs from the first query received after a commit's replies to
# the next replies: queries in -> copy reads submitted (one io_submit for
# the batch) -> last read done (the last one-write io_submit: each copy
# job submits its store write when its read completes) -> last write done
# (the data fdatasync starts once nothing is in flight) -> data fdatasync,
# journal write, journal fdatasync (src/server/commit.c: pipelined, on the
# ioengine, the flushes on its worker thread) -> replies.
# Medians and 90th percentiles per stage.  The traced pass runs slower
# than an untraced one; compare stages with each other, not the IOPS.
# Needs perf with tracepoint access (root or perf_event_paranoid <= 1).
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
kind=${KIND:-chunk4k}
command -v perf >/dev/null || { echo "first_writes_stages: perf is required" >&2; exit 1; }
tmp=$(mktemp -d /var/tmp/csnap-stages.XXXXXX)
bench_pid=''
perf_pid=''
cleanup() {
  [ -z "$perf_pid" ] || kill "$perf_pid" 2>/dev/null || true
  [ -z "$bench_pid" ] || kill "$bench_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${STAGES_KEEP:-}" ] && echo "trace kept in $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT

touch "$tmp/start"
SIZE=${SIZE:-256M} SNAPS="0 1" KINDS=$kind TARGETS=csnap \
  bash "$src/bench/first_writes.sh" "$build" >"$tmp/bench.txt" 2>&1 &
bench_pid=$!
json=
for _ in $(seq 3000); do
  json=$(find /var/tmp -maxdepth 2 -name "csnap-$kind-0.json" -newer "$tmp/start" 2>/dev/null | head -1)
  [ -n "$json" ] && break
  kill -0 "$bench_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$json" ] || { cat "$tmp/bench.txt" >&2; echo "first_writes_stages: no-snapshot pass not seen" >&2; exit 1; }
server=$(pgrep -n -f "^$build/csnap server") ||
  { echo "first_writes_stages: no csnap server of $build running" >&2; exit 1; }
# A pipelined commit's fdatasyncs run on the ioengine's flush worker,
# which starts at the first one: attach once it exists (perf follows the
# threads present at attach), or after 2 s (plain commits have none).
ntask=$(ls "/proc/$server/task" 2>/dev/null | wc -l)
for _ in $(seq 100); do
  [ "$(ls "/proc/$server/task" 2>/dev/null | wc -l)" -gt "$ntask" ] && break
  sleep 0.02
done
perf trace -p "$server" -o "$tmp/trace.txt" \
  -e fdatasync,pwrite64,io_submit,epoll_wait,sendto,recvfrom >/dev/null 2>&1 &
perf_pid=$!
wait "$bench_pid" || { cat "$tmp/bench.txt" >&2; exit 1; }
bench_pid=''
sleep 0.5
kill -INT "$perf_pid" 2>/dev/null || true
wait "$perf_pid" 2>/dev/null || true
perf_pid=''
grep "snapshot(s)" "$tmp/bench.txt" | head -2

python3 - "$tmp/trace.txt" <<'PY'
import re, statistics, sys
ev = []
for line in open(sys.argv[1]):
    # "TIME (DUR ms): [COMM/TID ]NAME(ARGS) = RET" (the thread is named
    # when the process has several: the ioengine's flush worker runs the
    # fdatasyncs of a pipelined commit)
    m = re.match(r'\s*([\d.]+) \(\s*([\d.]+) ms\):\s+(?:\S+/\d+\s+)?(\w+)\(.*\)\s+= (-?\d+)', line)
    if m:
        ev.append((float(m[1]), float(m[2]), m[3], int(m[4])))
cycles, cur, state = [], None, 'idle'
for t, d, name, ret in ev:
    if state == 'idle' and name == 'recvfrom' and ret > 0:
        cur, state = {'recv': t}, 'query'
    elif state == 'query' and name == 'io_submit':
        cur.update(sub=t, last_single=None, batch=ret)
        state = 'copy'
    elif state == 'copy' and name == 'io_submit' and ret == 1:
        cur['last_single'] = t
    elif state == 'copy' and name == 'fdatasync':
        cur.update(sync1=t, s1=d)
        state = 'data'
    elif state == 'data' and name in ('pwrite64', 'io_submit') and 'jw' not in cur:
        # the journal write: a pwrite on the loop (plain commit) or an
        # io_submit (pipelined commit, src/server/commit.c)
        cur['jw'] = d
    elif state == 'data' and name == 'fdatasync':
        cur.update(s2=d, s2start=t, s2end=t + d)
        state = 'journal'
    elif state == 'journal' and name == 'sendto':
        cur['send'] = t
        cycles.append(cur)
        state = 'idle'
cycles = [c for c in cycles if 'jw' in c and c['last_single']]
if len(cycles) < 3:
    sys.exit("first_writes_stages: only %d commit cycles in the trace" % len(cycles))
pairs = list(zip(cycles, cycles[1:]))
rows = [
    ("copy reads submitted per cycle (one io_submit)", [c['batch'] for c in cycles], ""),
    ("queries in -> copy reads submitted", [c['sub'] - c['recv'] for c in cycles], "ms"),
    ("reads submitted -> last read done", [c['last_single'] - c['sub'] for c in cycles], "ms"),
    ("last read done -> last store write done", [c['sync1'] - c['last_single'] for c in cycles], "ms"),
    ("fdatasync (copied data)", [c['s1'] for c in cycles], "ms"),
    ("data flush done -> journal flush starts (journal write)",
     [c['s2start'] - c['sync1'] - c['s1'] for c in cycles], "ms"),
    ("fdatasync (journal)", [c['s2'] for c in cycles], "ms"),
    ("commit done -> replies sent", [c['send'] - c['s2end'] for c in cycles], "ms"),
    ("replies sent -> next queries in", [b['recv'] - a['send'] for a, b in pairs], "ms"),
    ("whole cycle", [b['send'] - a['send'] for a, b in pairs], "ms"),
]
print("%d commit cycles traced" % len(cycles))
for name, v, unit in rows:
    v = sorted(v)
    print("%-48s median %7.2f %-2s  p90 %7.2f" % (name, statistics.median(v), unit, v[int(len(v) * 0.9)]))
PY
