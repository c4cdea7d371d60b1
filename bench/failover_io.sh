#!/usr/bin/env bash
# bench/failover_io.sh - the I/O stall a client sees when the master
# changes, on real sanlock daemons and the production setup
# (tests/cluster/lib.sh): three nodes, each with `csnap agent` (joins the
# lockspace, supervises the node's server); `csnap export` on node 3; a
# libnbd client (bench/failover_io_workload.py) writes the first 4 KiB of
# one origin chunk after another after a snapshot (every write a first
# write: the master must copy the chunk out before answering), a write
# every 2 ms, 4 in flight.  Then, ROUNDS times each:
#   orderly   SIGTERM to the master's server (drain, clear the record,
#             release: a standby takes over)
#   kill      SIGKILL to the master's server process (its node stays up)
#   crash     (--crash, once) the master's whole node dies: sanlock
#             daemon, agent, server.  The lease frees ~8 * io_timeout + 60 s
#             later (sanlock's host-dead time); reported as the stall and
#             as the time from the next master acquiring the lease (its
#             log line) to the next completed write.
# The stall is the longest gap between completed writes from 0.5 s
# before the event to 10 s after it (the client's view: NBD writes
# waiting).  Steady-state gaps are printed for comparison.
#
#   bench/failover_io.sh [--rounds N] [--crash] [BUILD_DIR]
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
failover_args 3 "$@"
C=$build/csnap
py=/usr/bin/python3
$py -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd not installed"; exit 77; }
. "$src/tests/cluster/lib.sh"
cluster_require

die() { echo "failover_io: $*" >&2; for f in "$CLUSTER_DIR"/node*/*.log; do echo "--- $f"; tail -15 "$f"; done >&2; exit 1; }

export CSNAP_LOG_TIME=1
cluster_start 3 1G
truncate -s 512M "$CLUSTER_ORIGIN"
"$C" mkstore --chunk-size 16K "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || die "mkstore"
"$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null || die "lease init"
d=$CLUSTER_DIR
for i in 1 2 3; do
  node_spawn "$i" agent "$C" agent -c "$(node_conf "$i")" >/dev/null
done
wait_for 90 node_run 3 "$C" status "$CLUSTER_STORE" >/dev/null 2>&1 || die "no master"
sock=$d/node3/run/s.sock
node_spawn 3 export "$C" -v export -c "$(node_conf 3)" s >/dev/null
wait_for 30 test -S "$sock" || die "no export socket"
node_run 3 "$C" snapshot create "$CLUSTER_STORE" s1 >/dev/null || die "snapshot"

out=$d/done.txt
$py "$src/bench/failover_io_workload.py" "nbd+unix:///origin?socket=$sock" 16384 2 "$d/stop" "$out" \
  >"$d/workload.log" 2>&1 &
wl=$!
wait_for 30 grep -q running "$d/workload.log" || die "workload did not start"
sleep 3

master_host() { node_run 3 "$C" status "$CLUSTER_STORE" --json 2>/dev/null |
  sed -n 's/.*"master": {"host_id": \([0-9]*\).*/\1/p'; }
master_epoch() { node_run 3 "$C" status "$CLUSTER_STORE" --json 2>/dev/null |
  sed -n 's/.*"master": {"host_id": .*"epoch": \([0-9]*\)}.*/\1/p'; }
# The server the agent of node I runs (a child of that agent).
server_pid() {
  local i=$1 apid
  apid=$(awk 'NR == 1 { print $1 }' "$(node_dir "$i")/pids")
  for p in $(cat "/proc/$apid/task/$apid/children" 2>/dev/null); do
    tr '\0' ' ' <"/proc/$p/cmdline" | grep -q ' server ' && { echo "$p"; return; }
  done
}
# A new master (epoch other than $1; on any node: the agent restarts a
# killed server at once, and that one may win the lease) with a valid
# record; prints its host.
wait_master() {
  local t e
  for t in $(seq 1 1500); do
    e=$(master_epoch)
    [ -n "$e" ] && [ "$e" != "$1" ] && { master_host; return 0; }
    sleep 0.1
  done
  return 1
}

events=$d/events
: >"$events"
for r in $(seq 1 "$rounds"); do
  for kind in orderly kill; do
    m=$(master_host); [ -n "$m" ] || die "no master"
    ep=$(master_epoch)
    pid=$(server_pid "$m"); [ -n "$pid" ] || die "no server pid on node $m"
    t=$(date +%s.%N)
    if [ $kind = orderly ]; then kill -TERM "$pid"; else kill -KILL "$pid"; fi
    nm=$(wait_master "$ep") || die "no new master after $kind"
    echo "$kind $t $m $nm" >>"$events"
    sleep 4      # the agent restarts the old server as a standby meanwhile
  done
done
if [ $crash = 1 ]; then
  m=$(master_host)
  ep=$(master_epoch)
  t=$(date +%s.%N)
  node_kill "$m"
  nm=$(wait_master "$ep") || die "no new master after the crash"
  # When the next master got the lease (its log line, CSNAP_LOG_TIME).
  acq=$(grep -h 'master lease acquired' "$(node_log "$nm" agent)" | tail -1 | awk '{ print $1 }')
  ta=$(date -d "$acq" +%s.%N 2>/dev/null) || ta=$(date +%s.%N)
  echo "crash $t $m $nm $ta" >>"$events"
  sleep 4
fi
touch "$d/stop"
wait "$wl"

$py - "$out" "$events" <<'PY'
import sys
times = sorted(float(l) for l in open(sys.argv[1]) if l.strip())
evs = [l.split() for l in open(sys.argv[2]) if l.strip()]
def maxgap(lo, hi):
    g, at = 0.0, lo
    prev = None
    for t in times:
        if t < lo: prev = t; continue
        if t > hi: break
        if prev is not None and t - prev > g: g, at = t - prev, prev
        prev = t
    return g, at
first_ev = float(evs[0][1])
steady, _ = maxgap(times[0] + 0.5, first_ev - 0.5)
n_steady = sum(1 for t in times if times[0] + 0.5 <= t < first_ev - 0.5)
print("writes completed: %d; steady state: %.0f writes/s, longest gap %.0f ms" %
      (len(times), n_steady / max(0.001, first_ev - 1 - times[0]), steady * 1000))
res = {}
for i, e in enumerate(evs):
    kind, t = e[0], float(e[1])
    hi = t + (10 if kind != "crash" else 120)
    if i + 1 < len(evs):
        hi = min(hi, float(evs[i + 1][1]) - 0.01)
    g, at = maxgap(t - 0.5, hi)
    res.setdefault(kind, []).append(g * 1000)
    extra = ""
    if kind == "crash":
        ta = float(e[4])
        after = [x for x in times if x > ta]
        extra = "; lease acquired by node %s %.1f s after the crash, first write %.0f ms after that" % (
            e[3], ta - t, (after[0] - ta) * 1000 if after else -1)
    print("%-8s master node %s -> node %s: stall %5.0f ms (gap starts %+.0f ms from the signal)%s" %
          (kind, e[2], e[3], g * 1000, (at - t) * 1000, extra))
for kind, v in res.items():
    v.sort()
    print("%-8s median stall %5.0f ms (range %.0f..%.0f ms, %d runs)" %
          (kind, v[len(v) // 2], v[0], v[-1], len(v)))
PY
