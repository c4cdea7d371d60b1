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
#   origin_fill KIND SIZE         $CLUSTER_ORIGIN becomes SIZE bytes (head -c
#                                 syntax): zero (sparse), random, or a single
#                                 character that every byte is
#   master_standby [SERVER_OPT...]  start_master 1 and start_standby 2, both
#                                 with SERVER_OPT
#   start_master I [--log NAME] [SERVER_OPT...]
#                                 start `csnap server SERVER_OPT... s` on node I
#                                 (log NAME, default server) and wait until it is
#                                 the master; fail if it does not become master
#   start_standby I [--log NAME] [SERVER_OPT...]   the same, waiting for standby
#   start_export I SOCKET [--log NAME] EXPORT_ARG...
#                                 start `csnap -v export EXPORT_ARG...` on node I
#                                 (log NAME, default export) and wait for SOCKET
#   start_export_each             nodes 1 and 2 each export store s, on $sock1
#                                 and $sock2 ($CLUSTER_DIR/nodeI.sock)
#   requires_libnbd               python3-libnbd must be there (as `requires`)
#   requires_fio_nbd              fio with its nbd engine must be there
#   scratch_dir NAME              a new directory $dir (/var/tmp/csnap-NAME.*) and
#                                 an empty array pids; on exit the processes in
#                                 pids are killed and waited for, $dir removed
#   export_sock I                 the socket of node I's export from csnap.conf
#   export_listed SOCKET NAME     the export on SOCKET lists NAME (nbdinfo)
#   wait_exported SOCKET NAME     wait up to 20 s for export_listed; fail if not
#   workload_start SOCKET SEED    node 1 creates snapshot s1 and SOCKET's export
#                                 lists it; its image is kept ($CLUSTER_DIR/s1.ref);
#                                 then export_workload.py writes the origin and
#                                 checks s1 through SOCKET in the background (log
#                                 $CLUSTER_DIR/workload.log, pid $wl); returns once
#                                 50 batches ran
#   workload_progress WHEN        wait up to 60 s for 2 more batches, else fail
#                                 "workload stalled WHEN"
#   workload_stop                 stop it; fail if it found wrong data or s1 no
#                                 longer equals its reference image
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
  # Again after the dumps: tests/run.sh shows only the last lines of a log.
  echo "FAIL: $*"
  exit 1
}

store_init() {
  [ $# -gt 0 ] || set -- --chunk-size 64K
  "$C" mkstore "$@" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >"$CLUSTER_DIR/mkstore.out" ||
    fail "mkstore $*: $(cat "$CLUSTER_DIR/mkstore.out")"
  "$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$CLUSTER_STORE" >/dev/null ||
    fail "lease init"
}

# own_cluster I NAME STORE ORIGIN CHUNK: node I leaves store s and runs a
# cluster of its own (send/receive's target): store NAME made on STORE
# over ORIGIN (both files made by the caller) with CHUNK-sized chunks, its
# master, and its export on $(node_dir I)/run/NAME.sock.
own_cluster() {
  local i=$1 name=$2 store=$3 origin=$4 chunk=$5
  node_write_conf "$i" "$name" "$store" "$origin"
  "$C" mkstore --chunk-size "$chunk" "$store" "$origin" >/dev/null || fail "mkstore $name"
  "$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$store" >/dev/null || fail "lease init $name"
  node_spawn "$i" server "$C" server --grace-ms 0 "$name" >/dev/null
  wait_log "$i" server 'master for store' 60 || fail "node$i's server did not become master of $name"
  start_export "$i" "$(node_dir "$i")/run/$name.sock" "$name"
}

origin_fill() {
  case $1 in
    zero) rm -f "$CLUSTER_ORIGIN" && truncate -s "$2" "$CLUSTER_ORIGIN" ;;
    random) head -c "$2" /dev/urandom >"$CLUSTER_ORIGIN" ;;
    ?) tr '\0' "$1" </dev/zero | head -c "$2" >"$CLUSTER_ORIGIN" ;;
    *) fail "origin_fill: unknown kind $1" ;;
  esac || fail "origin_fill $*"
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
master_standby() { start_master 1 "$@"; start_standby 2 "$@"; }

start_export() {
  local i=$1 sock=$2 log=export; shift 2
  if [ "${1:-}" = --log ]; then log=$2; shift 2; fi
  node_spawn "$i" "$log" "$C" -v export "$@" >/dev/null
  wait_for 30 test -S "$sock" || fail "node$i's export ($log): no socket $sock"
}

start_export_each() {
  sock1=$CLUSTER_DIR/node1.sock sock2=$CLUSTER_DIR/node2.sock
  start_export 1 "$sock1" --socket "$sock1" s
  start_export 2 "$sock2" --socket "$sock2" s
}

# cluster_2node [FILL]: the usual two-node cluster: a 128 MiB store, a
# 32 MiB origin of FILL (origin_fill; default zero), a master and a
# standby, an export on each node ($sock1, $sock2); d=$CLUSTER_DIR.
cluster_2node() {
  cluster_start 2 128M
  origin_fill "${1:-zero}" 32M
  store_init
  d=$CLUSTER_DIR
  master_standby
  start_export_each
}
# file_export NAME SIZE: `csnap export --file` (no cluster) of a sparse
# SIZE-byte file in a new directory $dir (/var/tmp/csnap-NAME.*), socket
# $dir/s, pid $pid, stderr $dir/export.err (shown by fail); both go on
# exit.  A script that stops the export itself clears pid.
file_export() {
  dir=$(mktemp -d "/var/tmp/csnap-$1.XXXXXX")
  pid=
  trap _file_export_cleanup EXIT
  truncate -s "$2" "$dir/origin.img"
  "$C" -v export --file "$dir/origin.img" --socket "$dir/s" >"$dir/export.out" 2>"$dir/export.err" &
  pid=$!
  FAIL_LOGS+=("$dir/export.err")
  wait_for 10 test -S "$dir/s" || fail "no socket at $dir/s"
}
_file_export_cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}

requires_libnbd() { requires_run python3-libnbd "$py" -c 'import nbd'; }
requires_fio_nbd() { requires fio; requires_run "fio's nbd engine" sh -c 'fio --enghelp | grep -qw nbd'; }

scratch_dir() {
  dir=$(mktemp -d "/var/tmp/csnap-$1.XXXXXX")
  pids=()
  trap _scratch_cleanup EXIT
}
_scratch_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}

export_sock() { echo "$(node_dir "$1")/run/s.sock"; }
export_listed() { nbdinfo --list "nbd+unix://?socket=$1" 2>/dev/null | grep -q "export=\"$2\""; }
wait_exported() { wait_for 20 export_listed "$1" "$2" || fail "$2 not exported on $1"; }

workload_start() {
  local sock=$1 seed=$2 d=$CLUSTER_DIR
  node_run 1 "$C" snapshot create s s1 >/dev/null || fail "create s1"
  wait_exported "$sock" s1
  qemu-img convert -f raw -O raw "nbd+unix:///s1?socket=$sock" "$d/s1.ref" || fail "reference image of s1"
  rm -f "$d/stop"
  FAIL_LOGS+=("$d/workload.log")
  WL_SOCK=$sock
  $py "$src/tests/integration/export_workload.py" "nbd+unix:///origin?socket=$sock" \
    "nbd+unix:///s1?socket=$sock" "$d/s1.ref" "$d/stop" "$seed" >"$d/workload.log" 2>&1 &
  wl=$!
  wait_for 60 grep -q 'batches 50' "$d/workload.log" || fail "workload does not progress"
}

workload_progress() {
  local log=$CLUSTER_DIR/workload.log n0
  n0=$(grep -c '^batches' "$log")
  wait_for 60 bash -c "[ \$(grep -c '^batches' '$log') -ge $((n0 + 2)) ]" || fail "workload stalled $*"
}

workload_stop() {
  local d=$CLUSTER_DIR
  touch "$d/stop"
  wait "$wl" || fail "workload found wrong data"
  tail -1 "$d/workload.log"
  qemu-img convert -f raw -O raw "nbd+unix:///s1?socket=$WL_SOCK" "$d/s1.after" || fail "read s1"
  cmp -s "$d/s1.after" "$d/s1.ref" || fail "s1 changed"
}

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
