#!/usr/bin/env bash
# tests/integration/cluster_powercut.sh - power cuts of the whole cluster
# (issue 9, "Proof"): every write and flush that masters and exports send to
# the origin and the store is logged (CSNAP_WRITELOG, ioengine/wlog.h) during
# one real 3-node run, then CUTS power cuts are replayed offline from that
# log by tests/tools/wlog_replay (what it builds and checks: its header).
#
# The run: agents and exports on three nodes (real sanlock); writers on
# node1 and node2 write self-describing blocks through their exports and
# send an NBD FLUSH every ~50 writes (tests/cluster/blocks.sh, BLOCKS_FLUSH);
# snapshots are created from every node, one is deleted, the master is
# SIGKILLed once, and the master's store writes, the exports' copy-outs and
# origin writes all land in the log.  Then the live run is verified as
# usual (blocks_verify, `csnap check`), the daemons stop, and the replay
# must reproduce the live files from the log and find every cut clean:
# `csnap check`-clean store (also after a restart's journal replay), every
# flushed write present, every snapshot exactly what the origin held at its
# time.  Last, the real cluster restarts on one of the cuts and the origin
# and every snapshot are read back through the exports.  CUTS (default 300)
# and SEED set the replay; `make check-long` runs it with CUTS=3000.
. "$(dirname "$0")/../functions.sh"
requires nbdcopy nbdinfo
BLOCKS=${BLOCKS:-2048}              # an 8 MiB origin keeps the log small
BLOCKS_STORE=${BLOCKS_STORE:-64M}
BLOCKS_FLUSH=1
CUTS=${CUTS:-300}
SEED=${SEED:-$((RANDOM * 32768 + RANDOM))}
. "$src/tests/cluster/blocks.sh"
echo "cluster_powercut: CUTS=$CUTS SEED=$SEED"

BLOCKS_WLOG=1
blocks_cluster
d=$CLUSTER_DIR
: >"$d/deletes"
blocks_writers
wait_writes 300 || fail "writers do not progress"
snap k1 1
wait_writes 300 || fail "writers stalled"
snap k2 2
wait_writes 300 || fail "writers stalled"
m=$(master_host)
lver=$(master_lver)
spid=$(master_server_pid "$m")
[ -n "$spid" ] || fail "no server process on master node$m"
kill -9 "$spid"
newer() { [ "$(master_lver)" -gt "$lver" ] 2>/dev/null; }
wait_for 60 newer || fail "no new master after killing node$m's"
snap k3 3
wait_writes 300 || fail "writers stalled after the master kill"
echo "k1 $(mono)" >>"$d/deletes"
wait_for 20 node_run 3 "$C" snapshot delete s k1 || fail "delete k1"
wait_writes 300 || fail "writers stalled"
snap k4 1
wait_writes 300 || fail "writers stalled"
blocks_stop_writers
cp "$d/snaps" "$d/allsnaps"
sed -i '/^k1 /d' "$d/snaps"
blocks_verify
echo "flushes: node1 $(wc -l <"$d/w1.flush"), node2 $(wc -l <"$d/w2.flush")"
wlog_quiesce
no_sanitizer_reports
check_store "$CLUSTER_ORIGIN"
echo "write log: $(du -sh "$d/wlog" | cut -f1) in $(ls "$d/wlog" | wc -l) process logs"
wlog_stray_check

t0=$(now_ms)
mkdir "$d/replay" "$d/badcuts"
"$T/wlog_replay" -n "$CUTS" -s "$SEED" -k "$d/badcuts" -i $((CUTS / 2)) "$d/wlog" "$d/replay" \
  "$CLUSTER_ORIGIN" "$d/origin.init" "$CLUSTER_STORE" "$d/store.init" "$BLOCKS" \
  "$d/allsnaps" "$d/deletes" "$d/w1.log,$d/w1.flush" "$d/w2.log,$d/w2.flush" ||
  fail "power-cut replay found damage (SEED=$SEED; images of bad cuts kept with CLUSTER_KEEP=1)"
echo "replay: $(( $(now_ms) - t0 )) ms"

# The real cluster restarted on one cut (wlog_replay -i put it into the
# live files, the lease area excepted): a new master replays the journal;
# every snapshot the exports list reads what the origin held at its time,
# the origin reads exactly the cut's origin, and the store checks clean.
export -n CSNAP_WRITELOG
[ -f "$d/replay/cut.time" ] || fail "the cut to restart on was not installed"
echo "restarting the cluster on the cut at t=$(cat "$d/replay/cut.time")"
for i in 1 2 3; do node_spawn "$i" agent.cut "$C" agent >/dev/null; done
wait_for 60 _has_master || fail "no master on the cut"
for i in 1 2 3; do rm -f "$(export_sock "$i")"; start_export "$i" "$(export_sock "$i")" --log export.cut s; done
nbdcopy "$(uri 3 origin)" "$d/cut-origin.read" || fail "read the origin after the restart"
cmp "$d/cut-origin.read" "$d/replay/cut-origin.img" || fail "the restarted origin is not the cut's origin"
n=0
while read -r name t0 t1; do
  nbdinfo --list "nbd+unix://?socket=$(export_sock 3)" | grep -q "export=\"$name\"" || continue
  out=$($py "$blocks_py" verify "$(uri 3 "$name")" "$BLOCKS" "$t0" "$t1" "$d/w1.log" "$d/w2.log") ||
    fail "after the restart on the cut, snapshot $name: $out"
  n=$((n + 1))
done <"$d/allsnaps"
echo "restarted on the cut: the origin is the cut's, $n snapshots verified"
wlog_quiesce
check_store "$CLUSTER_ORIGIN"
no_sanitizer_reports
echo PASS
