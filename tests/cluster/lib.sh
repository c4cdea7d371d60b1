# shellcheck shell=bash
# tests/cluster/lib.sh - simulated csnap cluster on one machine, for tests.
#
# Source it from a bash test.  Each simulated node I (1..N) has:
#   - its own sanlock daemon: SANLOCK_PRIVILEGED=0, run dir $CLUSTER_DIR/nodeI/sanlock,
#     no watchdog (-w 0), name "nodeI"
#   - its own address 127.0.0.(10+I) and csnap.conf ($CLUSTER_DIR/nodeI/csnap.conf)
#   - its own process group for everything node_spawn starts
# and all nodes share one file-backed store ($CLUSTER_STORE) and origin
# ($CLUSTER_ORIGIN) on ext4 under /var/tmp (O_DIRECT works there).
# cluster_start installs an EXIT trap (and makes INT/TERM exit) that tears
# everything down, also when a test fails; call cluster_stop yourself to
# tear down early, and from your own EXIT trap if you replace it.
# CLUSTER_KEEP=1 keeps the directory (logs, store) for inspection.
#
#   cluster_start N [STORE_SIZE]  start N nodes (STORE_SIZE for truncate, default 64M)
#   node_run I CMD...             run CMD as node I (its SANLOCK_RUN_DIR, CSNAP_CONF, ...)
#   node_spawn I NAME CMD...      start CMD in the background as node I; output to
#                                 $(node_log I NAME); prints the pid
#   node_log I NAME               path of that output
#   node_kill_procs I [SIG]       signal (default KILL) the process groups node_spawn
#                                 started on node I (recorded as "pid starttime" in
#                                 $CLUSTER_DIR/nodeI/pids; a recycled pid is never hit)
#   node_kill_sanlock I           SIGKILL node I's sanlock daemon (its leases stop renewing)
#   node_kill I                   the whole node: its processes and its sanlock daemon
#   node_addr I                   127.0.0.(10+I)
#   node_conf I                   path of node I's csnap.conf
#   wait_for SECONDS CMD...       poll CMD every 0.1 s until it succeeds; 1 on timeout
#   wait_log I NAME REGEX SECONDS wait until node I's log NAME has a line matching REGEX
#   cluster_stop                  tear down (idempotent)
#   now_ms                        milliseconds (for measurements)
#   new_uuid                      a random uuid
#
# Variables: CLUSTER_DIR, CLUSTER_N, CLUSTER_STORE, CLUSTER_ORIGIN,
# CLUSTER_IO_TIMEOUT (default 1: hosts are dead ~68 s after they stop),
# CLUSTER_EXPORT_THREADS (the nodes' export_threads, default 4).
# Tests that need real sanlock call cluster_require first (cluster_start
# does): like `requires` below, a missing sanlock or root is a skip (exit
# 77) on a developer's machine and a failure where every dependency must be
# there (CI=true, or CSNAP_DEPS_INSTALLED=1 which `make check` sets after
# scripts/install-deps.sh ran).
#
#   requires TOOL...              each TOOL must be a command on PATH
#   requires_run WHAT CMD...      CMD must succeed (WHAT names the need in the message)
#   requires_root                 the test must run as root
#   part_missing WHAT             a part of a test cannot run here (WHAT is
#                                 missing): a line says so and the test goes on,
#                                 except where every dependency must be there
#                                 (then it fails, as `requires` does)

CLUSTER_IO_TIMEOUT=${CLUSTER_IO_TIMEOUT:-1}
CLUSTER_DIR=
CLUSTER_N=0

# A dependency is missing: skip, unless the environment promises every
# dependency (then the test must fail: a skip would hide that it never ran).
_missing() {
  if [ "${CI:-}" = true ] || [ "${CSNAP_DEPS_INSTALLED:-}" = 1 ]; then
    echo "FAIL: $* (scripts/install-deps.sh should have provided it)"; exit 1
  fi
  echo "SKIP: $*"; exit 77
}

part_missing() {
  if [ "${CI:-}" = true ] || [ "${CSNAP_DEPS_INSTALLED:-}" = 1 ]; then
    echo "FAIL: $* (scripts/install-deps.sh should have provided it)"; exit 1
  fi
  echo "(part left out: $* missing here)"
}

requires() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || _missing "$t is not installed"
  done
}

requires_run() {
  local what=$1; shift
  "$@" </dev/null >/dev/null 2>&1 || _missing "$what is not available ('$*' failed)"
}

requires_root() {
  [ "$(id -u)" = 0 ] || _missing "this test needs root (the simulated nodes' sanlock daemons)"
}

cluster_require() {
  requires sanlock
  requires_root
}

new_uuid() { cat /proc/sys/kernel/random/uuid; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

node_addr() { echo "127.0.0.$((10 + $1))"; }
node_dir() { echo "$CLUSTER_DIR/node$1"; }
node_conf() { echo "$CLUSTER_DIR/node$1/csnap.conf"; }
node_log() { echo "$CLUSTER_DIR/node$1/$2.log"; }

# Node I's csnap.conf: host_id I, its name and address, one store: "s"
# on the cluster's store and origin, or NAME on STORE and ORIGIN.
node_write_conf() {
  local i=$1 name=${2:-s} store=${3:-$CLUSTER_STORE} origin=${4:-$CLUSTER_ORIGIN} d
  d=$(node_dir "$i")
  cat >"$d/csnap.conf" <<CONF
[global]
host_id = $i
node_name = node$i
address = $(node_addr "$i")
io_timeout = $CLUSTER_IO_TIMEOUT
run_dir = $d/run
log_level = info

[store $name]
device = $store
origin = $origin
server = yes
server_port = 0
export = unix
export_threads = ${CLUSTER_EXPORT_THREADS:-4}
CONF
}

_node_env() {
  local i=$1 d
  d=$(node_dir "$i")
  echo SANLOCK_RUN_DIR="$d/sanlock" SANLOCK_PRIVILEGED=0 CSNAP_CONF="$d/csnap.conf" \
       CSNAP_NODE="$i" CSNAP_ADDRESS="$(node_addr "$i")"
}

node_run() {
  local i=$1; shift
  # shellcheck disable=SC2046
  env $(_node_env "$i") "$@"
}

node_spawn() {
  local i=$1 name=$2; shift 2
  local log
  log=$(node_log "$i" "$name")
  # setsid: own process group, so the node's processes can be killed together.
  # shellcheck disable=SC2046
  env $(_node_env "$i") setsid "$@" >"$log" 2>&1 </dev/null &
  local pid=$!
  disown "$pid"
  echo "$pid $(_starttime "$pid")" >>"$(node_dir "$i")/pids"
  echo "$pid"
}

_start_sanlock() {
  local i=$1 d
  d=$(node_dir "$i")
  mkdir -p "$d/sanlock"
  SANLOCK_PRIVILEGED=0 SANLOCK_RUN_DIR="$d/sanlock" setsid \
    sanlock daemon -D -w 0 -l 0 -h 0 -U root -G root -e "node$i" \
    >"$d/sanlock.log" 2>&1 </dev/null &
  echo "$! $(_starttime $!)" >"$d/sanlock.pid"
  disown $!
}

_sanlock_up() {
  SANLOCK_RUN_DIR="$(node_dir "$1")/sanlock" sanlock client status >/dev/null 2>&1
}

cluster_start() {
  local n=$1 size=${2:-64M} i
  cluster_require
  CLUSTER_DIR=$(mktemp -d /var/tmp/csnap-cluster.XXXXXX)
  CLUSTER_N=$n
  CLUSTER_STORE=$CLUSTER_DIR/store.img
  CLUSTER_ORIGIN=$CLUSTER_DIR/origin.img
  truncate -s "$size" "$CLUSTER_STORE"
  truncate -s "$size" "$CLUSTER_ORIGIN"
  export CLUSTER_DIR CLUSTER_N CLUSTER_STORE CLUSTER_ORIGIN CLUSTER_IO_TIMEOUT
  # Tear down on any exit; make INT/TERM exit (so the EXIT trap runs).
  trap cluster_stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  for i in $(seq 1 "$n"); do
    mkdir -p "$(node_dir "$i")/run"
    : >"$(node_dir "$i")/pids"
    node_write_conf "$i"
    _start_sanlock "$i"
  done
  for i in $(seq 1 "$n"); do
    if ! wait_for 10 _sanlock_up "$i"; then
      echo "cluster: sanlock daemon of node$i did not start:" >&2
      cat "$(node_dir "$i")/sanlock.log" >&2
      return 1
    fi
  done
}

# Start time of PID (field 22 of /proc/PID/stat), "" if it is gone.
_starttime() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  st=${st##*) }
  # shellcheck disable=SC2086
  set -- $st
  echo "${20}"
}

# Signals the process group that node_spawn/_start_sanlock made (every
# process we start is a group leader: setsid).  Pids wrap around quickly
# (pid_max is often 32768) and other tests run beside us, so a recorded pid
# may belong to someone else by now: signal the group only if its leader is
# still the process we started (same start time), or if the leader is gone
# (then the group id cannot have been reused while any member lives, and an
# empty group just gives ESRCH).  Never signal a bare pid.
_kill_group() {
  local pid=$1 start=$2 sig=${3:-KILL} now
  now=$(_starttime "$pid")
  if [ -n "$now" ] && [ "$now" != "$start" ]; then
    return 0
  fi
  kill -"$sig" -- "-$pid" 2>/dev/null || true   # already gone (errexit callers)
  return 0
}

node_kill_procs() {
  local i=$1 sig=${2:-KILL} pid
  [ -f "$(node_dir "$i")/pids" ] || return 0
  local start
  while read -r pid start; do
    [ -n "$pid" ] && _kill_group "$pid" "$start" "$sig"
  done <"$(node_dir "$i")/pids"
  [ "$sig" = KILL ] && : >"$(node_dir "$i")/pids"
  return 0
}

node_kill_sanlock() {
  local i=$1 f
  f="$(node_dir "$i")/sanlock.pid"
  # shellcheck disable=SC2046
  [ -f "$f" ] && _kill_group $(cat "$f") KILL
  rm -f "$f"
}

node_kill() {
  node_kill_sanlock "$1"
  node_kill_procs "$1" KILL
}

wait_for() {
  local secs=$1; shift
  local end=$(( $(now_ms) + secs * 1000 ))
  while ! "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -ge "$end" ] && return 1
    sleep 0.1
  done
}

_log_has() { grep -Eq "$3" "$(node_log "$1" "$2")" 2>/dev/null; }
wait_log() { wait_for "$4" _log_has "$1" "$2" "$3"; }

cluster_stop() {
  local i
  [ -n "$CLUSTER_DIR" ] && [ -d "$CLUSTER_DIR" ] || return 0
  # never fails: it also runs from EXIT traps of scripts under set -e
  for i in $(seq 1 "$CLUSTER_N"); do node_kill_procs "$i" KILL || true; done
  for i in $(seq 1 "$CLUSTER_N"); do node_kill_sanlock "$i" || true; done
  # Wait for the daemons to be gone before removing their run dirs.
  sleep 0.2
  if [ -n "${CLUSTER_KEEP:-}" ]; then
    echo "cluster: kept $CLUSTER_DIR"
  else
    rm -rf "$CLUSTER_DIR"
  fi
  CLUSTER_DIR=
}
