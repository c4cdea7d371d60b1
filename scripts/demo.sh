#!/usr/bin/env bash
# make demo: csnap's main job on an embedded default, shown step by step.
#
# Three simulated nodes on this machine (tests/cluster/lib.sh), each with
# its own sanlock daemon, address 127.0.0.1x and csnap.conf, share a
# file-backed origin and snapshot store under /var/tmp.  Every node runs
# `csnap agent` (joins the store's lockspace, supervises a standby server)
# and `csnap export` (the origin and snapshots over NBD on a unix socket).
# Then: one master is elected; the origin is written from node1; a
# snapshot is taken from node2; node3 reads the snapshot and it has the
# content of snapshot time; the master is killed in the middle of a
# checked write workload, which finishes without a lost or wrong block;
# `csnap status` and `csnap check` close.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
C=$build/csnap
py=/usr/bin/python3
. "$src/tests/cluster/lib.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }
die() {
  echo "demo: FAILED: $*" >&2
  for i in 1 2 3; do
    for n in agent export; do
      [ -f "$(node_log $i $n)" ] && { echo "--- node$i $n" >&2; tail -15 "$(node_log $i $n)" >&2; }
    done
  done
  exit 1
}
sock() { echo "$(node_dir "$1")/run/s.sock"; }
uri() { echo "nbd+unix:///$2?socket=$(sock "$1")"; }
master_node() {
  node_run 1 "$C" agent where s 2>/dev/null | sed -n 's/.*host_id=\([0-9]*\).*/\1/p'
}
master_lver() {
  node_run 1 "$C" agent where s 2>/dev/null | sed -n 's/.*lver=\([0-9]*\).*/\1/p'
}
# poll SECONDS CONDITION: evaluate CONDITION every 0.1 s until it holds
poll() {
  local n=$(($1 * 10))
  while [ $n -gt 0 ]; do eval "$2" && return 0; sleep 0.1; n=$((n - 1)); done
  return 1
}

step "3 simulated nodes: each its own sanlock daemon, name, address and csnap.conf"
cluster_start 3 512M
truncate -s 128M "$CLUSTER_ORIGIN"
for i in 1 2 3; do echo "node$i  $(node_addr $i)  SANLOCK_RUN_DIR=$(node_dir $i)/sanlock"; done
echo "shared origin: $CLUSTER_ORIGIN (128 MiB), shared store: $CLUSTER_STORE (512 MiB)"

step "format the snapshot store (superblock, journal, b-tree, sanlock lease area)"
show "csnap mkstore $CLUSTER_STORE $CLUSTER_ORIGIN"
node_run 1 "$C" mkstore "$CLUSTER_STORE" "$CLUSTER_ORIGIN"

step "start an agent on every node: join the lockspace, supervise a standby server"
for i in 1 2 3; do node_spawn "$i" agent "$C" agent >/dev/null; done
poll 60 '[ -n "$(master_node)" ]' || die "no master elected"
m=$(master_node)
show "csnap lease status $CLUSTER_STORE"
node_run 1 "$C" lease status "$CLUSTER_STORE"
echo "master elected: node$m"

step "start the NBD data path on every node"
for i in 1 2 3; do node_spawn "$i" export "$C" export s >/dev/null; done
for i in 1 2 3; do wait_for 30 test -S "$(sock $i)" || die "node$i export socket"; done
show "nbdinfo --list 'nbd+unix://?socket=$(sock 1)'"
nbdinfo --list "nbd+unix://?socket=$(sock 1)" | grep -E 'export=|export-size' || true

step "node1 writes the origin (128 MiB of random data through nbdcopy)"
d=$CLUSTER_DIR
head -c 128M /dev/urandom >"$d/v1.img"
show "nbdcopy v1.img $(uri 1 origin)"
nbdcopy "$d/v1.img" "$(uri 1 origin)"
echo "origin sha256 $(sha256sum <"$d/v1.img" | cut -c1-16)..."

step "node2 takes a snapshot (cluster-wide barrier: every export drains first)"
show "csnap snapshot create $CLUSTER_STORE monday"
node_run 2 "$C" snapshot create s monday

step "node1 overwrites half of the origin; node3 reads the snapshot"
head -c 64M /dev/urandom >"$d/half.img"
nbdcopy "$d/half.img" "$(uri 1 origin)"
wait_for 20 bash -c "nbdinfo --list 'nbd+unix://?socket=$(sock 3)' | grep -q 'export=\"monday\"'" ||
  die "node3 does not list the snapshot"
show "qemu-img convert -O raw '$(uri 3 monday)' monday.img"
qemu-img convert -f raw -O raw "$(uri 3 monday)" "$d/monday.img"
a=$(sha256sum <"$d/v1.img" | cut -c1-16); b=$(sha256sum <"$d/monday.img" | cut -c1-16)
echo "origin at snapshot time: $a...   snapshot read on node3: $b..."
[ "$a" = "$b" ] || die "snapshot content differs"
echo "identical: the snapshot kept the origin as it was, though half of it changed since"

step "a checked write workload on node3; the master (node$m) is killed in the middle"
$py "$src/tests/integration/export_workload.py" "$(uri 3 origin)" "$(uri 3 monday)" \
  "$d/monday.img" "$d/stop" 7 >"$d/workload.log" 2>&1 &
wl=$!
wait_for 60 grep -q 'batches 20' "$d/workload.log" || die "workload does not progress"
spid=$(pgrep -f "csnap server .*$(node_dir "$m")/csnap.conf" | head -1 || true)
[ -n "$spid" ] || die "master server process not found"
show "kill -9 <csnap server on node$m>"
t0=$(now_ms)
kill -9 "$spid"
# a new master holds the lease with a higher lease version
poll 30 '[ "$(master_lver)" -gt 1 ] 2>/dev/null' || die "no new master"
echo "new master: node$(master_node), found $(( $(now_ms) - t0 )) ms after the kill"
n0=$(grep -c '^batches' "$d/workload.log")
wait_for 60 bash -c "[ \$(grep -c '^batches' '$d/workload.log') -ge $((n0 + 5)) ]" ||
  die "workload stalled after the failover"
touch "$d/stop"
wait "$wl" || { tail "$d/workload.log"; die "workload found lost or wrong data"; }
tail -1 "$d/workload.log"
echo "every acknowledged write present, every read right, before and after the failover"

step "status, seen from node2"
show "csnap status $CLUSTER_STORE"
node_run 2 "$C" status s

step "orderly stop, then a full consistency check of the store"
for i in 1 2 3; do node_kill_procs "$i" TERM; done
sleep 2
show "csnap check $CLUSTER_STORE"
"$C" check "$CLUSTER_STORE"
echo
echo "demo finished: logs were in $CLUSTER_DIR (removed on exit)"
