# shellcheck shell=bash
# tests/functions.sh - the one prelude of csnap's integration scripts (as
# nbdkit's tests/functions.sh is for its tests).  Every script starts with
#
#   . "$(dirname "$0")/../functions.sh"
#
# which sets `set -u`, finds the source and build trees, names the
# binaries, and sources tests/cluster/lib.sh (the simulated cluster,
# `requires`, `requires_run`, `requires_root`).  tests/run.sh passes
# CSNAP_SRC and CSNAP_BUILD; run by hand, the build is $src/build.
#
# Variables:  src build  C (csnap)  T (test tools)  PC (tests/tools/proto_client)  py
#
#   fail MSG...                   print "FAIL: MSG", the logs (dump_logs), exit 1
#   dump_logs                     the tail of every node's logs and of each file
#                                 in the array FAIL_LOGS (a script adds its own;
#                                 an entry may be a glob, expanded when dumping)
#   store_init [MKSTORE_OPT...]   csnap mkstore (default --chunk-size 64K) of
#                                 $CLUSTER_STORE for $CLUSTER_ORIGIN, its output
#                                 kept in $CLUSTER_DIR/mkstore.out, then
#                                 csnap lease init (io_timeout $CLUSTER_IO_TIMEOUT)
#   start_master I [--log NAME] [SERVER_OPT...]
#                                 start `csnap server SERVER_OPT... s` on node I
#                                 (log NAME, default server) and wait until it is
#                                 the master; fail if it does not become master
#   start_standby I [--log NAME] [SERVER_OPT...]   the same, waiting for standby
#   start_export I SOCKET [--log NAME] EXPORT_ARG...
#                                 start `csnap -v export EXPORT_ARG...` on node I
#                                 (log NAME, default export) and wait for SOCKET
#   export_sock I                 the socket of node I's export from csnap.conf
#   cs I ARG...                   csnap ARG... as node I
#   pc I ARG...                   proto_client STORE ORIGIN ARG... as node I
#   pc_spawn I NAME ARG...        the same in the background, log NAME
#   log_value I NAME KEY          the value after KEY in the last "KEY VALUE" line
#                                 of node I's log NAME (tools print timestamps so)
#   no_sanitizer_reports [FILE...]  fail if a sanitizer reported in FILEs
#                                 (default: every node's logs)
#   check_store [ORIGIN]          `csnap check` of $CLUSTER_STORE must be clean
#
# Invariant: a script fails (exit 1) or skips (exit 77, only for a missing
# dependency and never under CI/make check) with a one-line reason first.
set -u
src=${CSNAP_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
build=${CSNAP_BUILD:-$src/build}
C=$build/csnap
T=$build/tools
PC=$T/proto_client
py=/usr/bin/python3
FAIL_LOGS=()
FAIL_TAIL=${FAIL_TAIL:-30}
# shellcheck source=cluster/lib.sh
. "$src/tests/cluster/lib.sh"

[ -x "$C" ] || { echo "FAIL: $C is not built (make all)"; exit 1; }

dump_logs() {
  local f pat extra=()
  for pat in "${FAIL_LOGS[@]}"; do
    # shellcheck disable=SC2206
    extra+=($pat)
  done
  for f in ${CLUSTER_DIR:+"$CLUSTER_DIR"/node*/*.log} "${extra[@]}"; do
    [ -s "$f" ] || continue
    case $f in */sanlock.log) continue ;; esac
    echo "--- $f"
    tail -n "$FAIL_TAIL" "$f"
  done
}

fail() {
  echo "FAIL: $*"
  dump_logs
  exit 1
}

store_init() {
  [ $# -gt 0 ] || set -- --chunk-size 64K
  "$C" mkstore "$@" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >"$CLUSTER_DIR/mkstore.out" ||
    fail "mkstore $*: $(cat "$CLUSTER_DIR/mkstore.out")"
  "$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null ||
    fail "lease init"
}

# _start_server I WAIT_REGEX ROLE [--log NAME] SERVER_OPT...
_start_server() {
  local i=$1 re=$2 role=$3 log=server; shift 3
  if [ "${1:-}" = --log ]; then log=$2; shift 2; fi
  node_spawn "$i" "$log" "$C" server "$@" s >/dev/null
  wait_log "$i" "$log" "$re" 60 || fail "node$i's server ($log) did not become $role"
}
start_master() { local i=$1; shift; _start_server "$i" 'master for store' master "$@"; }
start_standby() { local i=$1; shift; _start_server "$i" 'standby' standby "$@"; }

start_export() {
  local i=$1 sock=$2 log=export; shift 2
  if [ "${1:-}" = --log ]; then log=$2; shift 2; fi
  node_spawn "$i" "$log" "$C" -v export "$@" >/dev/null
  wait_for 30 test -S "$sock" || fail "node$i's export ($log): no socket $sock"
}

export_sock() { echo "$(node_dir "$1")/run/s.sock"; }

cs() { local i=$1; shift; node_run "$i" "$C" "$@"; }
pc() { local i=$1; shift; node_run "$i" "$PC" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" "$@"; }
pc_spawn() {
  local i=$1 name=$2; shift 2
  node_spawn "$i" "$name" "$PC" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" "$@" >/dev/null
}

log_value() { awk -v k="$3" '$1 == k { print $2 }' "$(node_log "$1" "$2")" | tail -1; }

no_sanitizer_reports() {
  [ $# -gt 0 ] || set -- "$CLUSTER_DIR"/node*/*.log
  if grep -lE 'Sanitizer|runtime error' "$@" 2>/dev/null; then
    fail "sanitizer report in the file(s) above"
  fi
  return 0
}

check_store() {
  "$C" check "$CLUSTER_STORE" "$@" >/dev/null || fail "csnap check: $("$C" check "$CLUSTER_STORE" "$@" 2>&1 | tail -5)"
}
