#!/usr/bin/env bash
# tests/integration/store_upgrade.sh - format versions and `csnap upgrade`
# (issue 15), on real O_DIRECT files and real sanlock:
#  - a store written by csnap's version-1 code (tests/data/store-v1.img.xz:
#    mkstore --chunk-size 4K --max-snapshots 64 --name v1test, then
#    tests/tools/store_populate STORE 5 400 7, built from commit ed23ab8)
#    checks clean and dumps read-only; a write is refused with one line
#    naming `csnap upgrade` and changes nothing; upgrade moves it to the
#    current version with the same contents; it then takes writes and
#    checks clean; a second upgrade is a no-op that writes nothing;
#  - a store of a version newer than the code is refused by check,
#    upgrade and writers, with one line;
#  - with a cluster: a server refuses a version-1 store before competing
#    for the lease; upgrade is refused while a host holds its delta lease
#    (an old node still running); after it the server becomes master,
#    takes a snapshot and the store checks clean.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires xz

W=$(mktemp -d /var/tmp/store-upg-XXXXXX)
FAIL_LOGS+=("$W/err" "$W/out")
cleanup() { rm -rf "$W"; }
ok() { echo "ok   $*"; }

# refused NAME PATTERN CMD...: exit 1..125 and one line on stderr with PATTERN
refused() {
  local name=$1 pat=$2 rc; shift 2
  "$@" >"$W/out" 2>"$W/err"; rc=$?
  [ $rc -ne 0 ] || fail "$name: not refused"
  [ $rc -lt 126 ] || fail "$name: exit $rc (crash?)"
  [ "$(wc -l <"$W/err")" -eq 1 ] || fail "$name: not one line: $(cat "$W/err")"
  grep -q -- "$pat" "$W/err" || fail "$name: no '$pat' in: $(cat "$W/err")"
  ok "$name: $(cat "$W/err")"
}
run() { local name=$1; shift; "$@" >"$W/out" 2>"$W/err" || fail "$name: $(cat "$W/err")"; ok "$name"; }
sum() { sha256sum <"$1"; }

S=$W/store
xz -dc "$src/tests/data/store-v1.img.xz" >"$S" || fail "unpack the version-1 image"
run "check the version-1 store" "$C" check "$S"
grep -q "clean (290 exceptions, 4 snapshots" "$W/out" || fail "check v1: $(cat "$W/out")"
run "dump the version-1 store" "$C" dump "$S"
grep -q "format version    1 " "$W/out" || fail "dump v1: $(grep version "$W/out")"
before=$(sum "$S")
refused "write to a version-1 store" "csnap upgrade $S" "$T/store_populate" "$S" 1 10
[ "$(sum "$S")" = "$before" ] || fail "the refused write changed the store"

run "upgrade" "$C" upgrade "$S"
grep -q "upgraded from format version 1 to 2" "$W/out" || fail "upgrade said: $(cat "$W/out")"
run "dump after upgrade" "$C" dump "$S"
grep -q "format version    2 " "$W/out" || fail "dump v2: $(grep version "$W/out")"
run "check after upgrade" "$C" check "$S"
grep -q "clean (290 exceptions, 4 snapshots" "$W/out" || fail "contents changed: $(cat "$W/out")"
# origin writes only (its snapshot names would clash with the image's)
run "write after upgrade" "$T/store_populate" "$S" 0 300 3
run "check after writes" "$C" check "$S"
n=$(sed -n 's/.*clean (\([0-9]*\) exceptions.*/\1/p' "$W/out")
[ "${n:-0}" -gt 290 ] || fail "the writes made no exception: $(cat "$W/out")"
before=$(sum "$S")
run "upgrade again" "$C" upgrade "$S"
grep -q "already at format version 2" "$W/out" || fail "second upgrade said: $(cat "$W/out")"
[ "$(sum "$S")" = "$before" ] || fail "the second upgrade wrote to the store"

run "relabel as version 3" "$T/store_set_version" "$S" 3
refused "check a version-3 store" "newer than this csnap" "$C" check "$S"
refused "upgrade a version-3 store" "newer than this csnap" "$C" upgrade "$S"
refused "write to a version-3 store" "newer than this csnap" "$T/store_populate" "$S" 1 10

# ---- with a cluster -------------------------------------------------------
cluster_start 1 64M
trap 'cluster_stop; cleanup' EXIT
origin_fill zero 16M
store_init
"$T/store_set_version" "$CLUSTER_STORE" 1 || fail "relabel as version 1"
node_spawn 1 server "$C" server s >/dev/null
wait_log 1 server "csnap upgrade" 30 || fail "server did not refuse the version-1 store"
grep -q "master for store" "$(node_log 1 server)" && fail "server became master of a version-1 store"
ok "server refuses: $(grep -m1 "csnap upgrade" "$(node_log 1 server)")"
node_kill_procs 1 KILL
node_run 1 "$C" lease join -c "$(node_conf 1)" s >/dev/null || fail "lease join"
refused "upgrade with a host in the lockspace (the refusal names it and what to run there)" \
  "(node1) holds or did not release .* run \`csnap lease leave $CLUSTER_STORE\` there first" \
  "$C" upgrade "$CLUSTER_STORE"
node_run 1 "$C" lease leave -c "$(node_conf 1)" s >/dev/null || fail "lease leave"
run "upgrade with the cluster stopped" "$C" upgrade "$CLUSTER_STORE"
start_master 1
cs 1 snapshot create s after-upgrade >/dev/null || fail "snapshot after upgrade"
node_kill_procs 1 TERM
check_store	# (read-only: consistent even while the server stops)
ok "cluster: server masters the upgraded store, check clean"
no_sanitizer_reports
echo "PASS store_upgrade"
