# shellcheck shell=bash
# tests/cluster/wlog.sh - the cross-process write log (ioengine/wlog.h) in
# cluster tests: every write and flush that masters and exports send to the
# origin and the store, with its data and times, for offline checks by
# tests/tools/wlog_replay (power cuts; stray writes).  Source it after
# tests/functions.sh (tests/cluster/blocks.sh sources it).
#
#   wlog_start          keep copies of $CLUSTER_ORIGIN and $CLUSTER_STORE as
#                       they are now ($CLUSTER_DIR/{origin,store}.init) and
#                       export CSNAP_WRITELOG=$CLUSTER_DIR/wlog, so every
#                       csnap daemon started afterwards logs.  Call it after
#                       mkstore, before any daemon starts.
#   wlog_quiesce        SIGTERM every node's processes and wait until no
#                       process holds a log open (the files stop changing)
#   wlog_stray_check    fail unless every origin write was made when no live
#                       snapshot still read its chunk from the origin (in the
#                       store as every write completed before it left it):
#                       a single write into a snapshot is reported
# Invariant: the .init copies are taken before the first logged write, so
# the copies plus the log reproduce the live files (wlog_replay checks it).

wlog_start() {
  cp --sparse=always "$CLUSTER_ORIGIN" "$CLUSTER_DIR/origin.init"
  cp --sparse=always "$CLUSTER_STORE" "$CLUSTER_DIR/store.init"
  mkdir -p "$CLUSTER_DIR/wlog"
  export CSNAP_WRITELOG=$CLUSTER_DIR/wlog
}

_wlog_open() { ls -l /proc/[0-9]*/fd 2>/dev/null | grep -qF "$CLUSTER_DIR/wlog/"; }

wlog_quiesce() {
  local i
  for i in $(seq 1 "$CLUSTER_N"); do node_kill_procs "$i" TERM; done
  wait_for 30 eval '! _wlog_open' || fail "csnap processes still hold the write log 30 s after SIGTERM"
}

wlog_stray_check() {
  local out
  mkdir -p "$CLUSTER_DIR/stray"
  out=$("$T/wlog_stray" "$CLUSTER_DIR/wlog" "$CLUSTER_DIR/stray" "$CLUSTER_ORIGIN" \
        "$CLUSTER_STORE" "$CLUSTER_DIR/store.init" 2>&1) || fail "stray writes: $out"
  echo "$out"
}
