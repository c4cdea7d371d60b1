# shellcheck shell=bash
# tests/cluster/blocks.sh - the verified multi-node block workload, shared by
# cluster_3node.sh, fault_sanlock_frozen.sh and tests/long/kill_soak.sh.
#
# Source it after tests/functions.sh.  Writers on node1 and node2 write
# self-describing blocks (tests/integration/cluster_blocks.py) to disjoint
# halves of the origin through their own exports; every acknowledged write
# is logged with its start and acknowledgement times, every snapshot with
# the monotonic window of its `create`, so that blocks_verify can check
# each snapshot and the origin block by block.
#
#   blocks_cluster [EXTRA_CONF_LINE...]  3 nodes, origin of $BLOCKS initial
#                                 blocks, store of $BLOCKS_STORE (default 256M;
#                                 16K chunks), an agent and an
#                                 export on every node; waits for a master
#   blocks_writers                start the two writers (BLOCKS_SPAN=1 exported:
#                                 one write in 4 spans two chunks; BLOCKS_FLUSH=1: each
#                                 also sends NBD FLUSHes, logged in
#                                 $CLUSTER_DIR/wN.flush)
#   progress                      acknowledged writes so far
#   wait_writes N [SECS]          wait until N more writes were acknowledged
#   snap NAME [NODE]              create snapshot NAME (on NODE, default 3),
#                                 record its window in $CLUSTER_DIR/snaps
#   master_host [NODE]            host_id of the current master, as NODE (default
#                                 3) reads the owner record ("" if none)
#   master_lver [NODE]            lver of the master lease
#   master_server_pid I           pid of node I's `csnap server`
#   blocks_writer_check SECS      fail if one writer alone has had no write
#                                 acknowledged for SECS (call it often), saying
#                                 where its writes are (blocks_where), or if
#                                 one has exited (blocks_writers_alive)
#   blocks_writers_alive          fail if a writer exited before blocks_stop_writers,
#                                 with its status and a kernel OOM kill if dmesg
#                                 shows one
#   blocks_where W                writer W's process, its own stall report
#                                 (cluster_blocks.py), and its node's export's
#                                 state dump (SIGUSR1: requests in flight,
#                                 replies queued, the origin's writes)
#   own_pids I REGEX              pids of this cluster's node I matching REGEX
#   blocks_stop_writers           stop the writers; fail if one saw an error
#   blocks_verify [NODE]          every snapshot still in $CLUSTER_DIR/snaps
#                                 and the origin, read on NODE (default 3)
# BLOCKS_WLOG=1: blocks_cluster calls wlog_start (tests/cluster/wlog.sh)
# after mkstore, before any csnap daemon starts: every daemon logs its
# writes for wlog_quiesce / wlog_stray_check / tests/tools/wlog_replay.
# Invariant: a write's log line is written only after its acknowledgement,
# so every line is a write the cluster promised to keep.

BLOCKS=${BLOCKS:-16384}          # 64 MiB origin of 4 KiB blocks
HALF=$((BLOCKS / 2))
blocks_py=$src/tests/integration/cluster_blocks.py
# shellcheck source=wlog.sh
. "$src/tests/cluster/wlog.sh"

mono() { $py -c 'import time; print(f"{time.monotonic():.6f}")'; }
uri() { echo "nbd+unix:///$2?socket=$(export_sock "$1")"; }
where() { node_run "${1:-3}" "$C" agent where s 2>/dev/null; }
field() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p"; }
master_host() { where "${1:-3}" | grep '^MASTER' | field host_id; }
master_lver() { where "${1:-3}" | grep '^MASTER' | field lver; }
master_server_pid() { pgrep -f "csnap server -c $(node_conf "$1")" | head -1; }

blocks_cluster() {
  local i l
  requires_run python3-libnbd "$py" -c 'import nbd'
  cluster_start 3 "${BLOCKS_STORE:-256M}"
  FAIL_LOGS=("$CLUSTER_DIR/writer1.out" "$CLUSTER_DIR/writer2.out")
  : >"$CLUSTER_DIR/snaps"
  $py "$blocks_py" init "$CLUSTER_ORIGIN" "$BLOCKS" || fail "init origin"
  node_run 1 "$C" mkstore --chunk-size 16K "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || fail "mkstore"
  for l in "$@"; do
    for i in 1 2 3; do echo "$l" >>"$(node_conf "$i")"; done
  done
  [ "${BLOCKS_WLOG:-0}" = 1 ] && wlog_start
  for i in 1 2 3; do node_spawn "$i" agent "$C" agent >/dev/null; done
  wait_for 60 _has_master || fail "no master"
  for i in 1 2 3; do start_export "$i" "$(export_sock "$i")" s; done
}
_has_master() { where | grep -q '^MASTER'; }

blocks_writers() {
  local d=$CLUSTER_DIR
  rm -f "$d/stop"
  local f1= f2=
  [ "${BLOCKS_FLUSH:-0}" = 1 ] && f1=$d/w1.flush f2=$d/w2.flush
  $py "$blocks_py" write "$(uri 1 origin)" 0 $HALF 1 "$d/stop" "$d/w1.log" $f1 >"$d/writer1.out" 2>&1 &
  BLOCKS_W1=$!
  $py "$blocks_py" write "$(uri 2 origin)" $HALF $HALF 2 "$d/stop" "$d/w2.log" $f2 >"$d/writer2.out" 2>&1 &
  BLOCKS_W2=$!
}

progress() { cat "$CLUSTER_DIR/w1.log" "$CLUSTER_DIR/w2.log" 2>/dev/null | wc -l; }
wait_writes() {
  local target=$(( $(progress) + $1 ))
  wait_for "${2:-60}" bash -c "[ \$(cat '$CLUSTER_DIR/w1.log' '$CLUSTER_DIR/w2.log' 2>/dev/null | wc -l) -ge $target ]"
}

snap() {
  local t0 t1
  t0=$(mono)
  node_run "${2:-3}" "$C" snapshot create s "$1" >/dev/null || fail "snapshot create $1"
  t1=$(mono)
  echo "$1 $t0 $t1" >>"$CLUSTER_DIR/snaps"
}

# own_pids I REGEX: pids of this cluster's node I whose command line matches
# REGEX.  By the node's csnap.conf (unique to this cluster), not by
# CSNAP_NODE: other clusters on the machine (concurrent tests) have a node
# 3 too, and killing their export left ours running (a second export, its
# socket removed: "connect: Connection refused" in a later verify).
own_pids() { pgrep -f "$2" | while read -r p; do
  grep -qz "^CSNAP_CONF=$(node_conf "$1")\$" "/proc/$p/environ" 2>/dev/null && echo "$p"; done; }

# Where writer W's unanswered writes are (issue 9's open defect: a writer
# stuck with writes on the origin, never acknowledged): is the writer
# alive (ps state T: stopped), does libnbd still await the replies or did
# they arrive unread (its own report), and does its export hold them (in
# the volume, or replies queued on the connection).
blocks_where() {
  local w=$1 wpid p
  [ "$w" = 1 ] && wpid=$BLOCKS_W1 || wpid=$BLOCKS_W2
  for p in $(own_pids "$w" "csnap -v export"); do kill -USR1 "$p"; done
  sleep 1
  echo "writer $w process: $(ps -o pid=,stat=,wchan:20= -p "$wpid" 2>&1 || echo gone)"
  echo "writer $w says: $(grep 'no reply' "$CLUSTER_DIR/writer$w.out" | tail -n 2)"
  echo "node$w export's dump:"
  grep -hE 'SIGUSR1|state on request|nbd unix|origin: (on request|grant)' \
    "$(node_dir "$w")"/export*.log | tail -n 8
}

# Each writer on its own must keep being acknowledged: wait_writes counts
# both together, and one writer stuck with its writes in flight (landed on
# the origin, never acknowledged) showed only as "wrong blocks" in a later
# snapshot's verify, which found the unacknowledged writes there.
declare -A _wlines _wsince
blocks_writer_check() {
  local w n now d=$CLUSTER_DIR
  now=$(now_ms)
  blocks_writers_alive
  for w in 1 2; do
    n=$(wc -l <"$d/w$w.log")
    if [ "$n" != "${_wlines[$w]:-}" ]; then
      _wlines[$w]=$n _wsince[$w]=$now
    elif [ $((now - _wsince[$w])) -gt $(($1 * 1000)) ]; then
      fail "writer $w: no write acknowledged for $(( (now - _wsince[$w]) / 1000 )) s" \
           "(last acknowledged: $(tail -n 1 "$d/w$w.log"); started since:" \
           "$(awk -v s="$(tail -n 1 "$d/w$w.log" | cut -d' ' -f1)" '$1 > s' "$d/w$w.log.start" | tail -n 8 | tr '\n' ';'))" \
           "$(blocks_where "$w")"
    fi
  done
}

# A writer that exited before it was told to: say how at once (issue 9's
# "stalled writer" was the kernel's OOM killer: SIGKILL, status 137, while
# the other writer kept the soak's progress going for minutes).
blocks_writers_alive() {
  local w pid rc
  for w in 1 2; do
    [ "$w" = 1 ] && pid=$BLOCKS_W1 || pid=$BLOCKS_W2
    kill -0 "$pid" 2>/dev/null && continue
    [ -e "$CLUSTER_DIR/stop" ] && continue
    rc=0
    wait "$pid" || rc=$?
    fail "writer $w (pid $pid) exited with status $rc$([ "$rc" = 137 ] && echo " (SIGKILL)"):" \
         "$(grep -v '^writes' "$CLUSTER_DIR/writer$w.out" | tail -n 3)" \
         "$(dmesg 2>/dev/null | grep -E "(Killed process|Out of memory).* $pid " | tail -n 1)"
  done
}

blocks_stop_writers() {
  local d=$CLUSTER_DIR
  touch "$d/stop"
  wait "$BLOCKS_W1" || fail "writer 1: $(tail -2 "$d/writer1.out")"
  wait "$BLOCKS_W2" || fail "writer 2: $(tail -2 "$d/writer2.out")"
  echo "writes: node1 $(wc -l <"$d/w1.log"), node2 $(wc -l <"$d/w2.log")"
  echo "writer 1: $(grep '^ok: ' "$d/writer1.out"); writer 2: $(grep '^ok: ' "$d/writer2.out")"
}

blocks_verify() {
  local n=${1:-3} d=$CLUSTER_DIR name t0 t1 out
  while read -r name t0 t1; do
    wait_for 20 bash -c "nbdinfo --list 'nbd+unix://?socket=$(export_sock "$n")' | grep -q 'export=\"$name\"'" ||
      fail "node$n does not export $name"
    out=$($py "$blocks_py" verify "$(uri "$n" "$name")" "$BLOCKS" "$t0" "$t1" "$d/w1.log" "$d/w2.log") ||
      fail "snapshot $name: $out"
    echo "snapshot $name: $out"
  done <"$d/snaps"
  out=$($py "$blocks_py" verify "$(uri "$n" origin)" "$BLOCKS" inf inf "$d/w1.log" "$d/w2.log") ||
    fail "origin: $out"
  echo "origin: $out"
}
