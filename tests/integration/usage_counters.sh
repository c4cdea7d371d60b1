#!/usr/bin/env bash
# tests/integration/usage_counters.sh - per-snapshot usage from the
# engine's counters (issue 13), on real sanlock and O_DIRECT files, with
# tests/tools/proto_client doing an export's writes:
#  - `snapshot list` (text and JSON) and `status` give each snapshot's
#    exact unique and shared chunks through copy-outs, a second snapshot
#    and a snapshot write that unshares a chunk;
#  - `check --repair-counters` is refused while the master runs (it holds
#    its lease); with the cluster stopped it recounts (nothing differed)
#    and the store checks clean;
#  - a counter block damaged on disk: check reports it (exit 1), the
#    master serves the store and shows the usage as unknown (never a wrong
#    number); --repair-counters rewrites it and the figures are back.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 1 64M
origin_fill A 16M
store_init
start_master 1 --grace-ms 0
ok() { echo "ok   $*"; }

# usage NAME -> "unique shared" chunks, from the JSON list
usage() {
  cs 1 snapshot list s --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["name"] == sys.argv[1]:
        print(s["unique_chunks"], s["shared_chunks"], s["usage_known"])' "$1"
}
expect() {
  local got; got=$(usage "$1")
  [ "$got" = "$2 $3 True" ] || fail "$1: unique shared known = $got, expected $2 $3 True"
}

cs 1 snapshot create s s1 >/dev/null || fail "create s1"
pc 1 owrite 3 2 0x42 | grep -q 'owrite done' || fail "origin write"	# {s1} x 2
expect s1 2 0
cs 1 snapshot create s s2 >/dev/null || fail "create s2"
pc 1 owrite 3 3 0x43 | grep -q 'owrite done' || fail "origin write 2"	# {s2} x 2, {s1,s2} chunk 5
expect s1 2 1
expect s2 2 1
pc 1 swrite s2 5 1 0x55 | grep -q 'swrite done' || fail "snapshot write"	# unshare chunk 5
expect s1 3 0
expect s2 3 0
# the text list: exact counts in the added columns, sizes in the old ones
cs 1 snapshot list s | head -1 | grep -q 'UNIQUE  *SHARED  *UNIQUE_CHUNKS  *SHARED_CHUNKS  *FROM$' ||
  fail "list header: $(cs 1 snapshot list s | head -1)"
cs 1 snapshot list s | grep -q '^1 .*s1 .* 192.0 KiB .* 0 B  *3  *0  *origin$' ||
  fail "list s1: $(cs 1 snapshot list s)"
cs 1 status s | grep -q ' s2 .* 3  *0  *origin$' || fail "status: $(cs 1 status s)"
ok "exact figures through copy-out, sharing and unsharing"

"$C" check --repair-counters "$CLUSTER_STORE" >"$CLUSTER_DIR/rc.out" 2>&1 &&
  fail "repair-counters ran beside a running master: $(cat "$CLUSTER_DIR/rc.out")"
# the refusal names the host and the command to run there
grep -qF "(node1) holds or did not release" "$CLUSTER_DIR/rc.out" &&
  grep -qF "run \`csnap lease leave $CLUSTER_STORE\` there first" "$CLUSTER_DIR/rc.out" ||
  fail "repair refused how? $(cat "$CLUSTER_DIR/rc.out")"
ok "repair refused while the master runs: $(cat "$CLUSTER_DIR/rc.out")"

# the master stops in order (TERM), the node leaves the lockspace (as
# before `csnap upgrade`); then the repair, retried while the lease still
# shows (it refuses and changes nothing until then)
node_gone() { local pid start; while read -r pid start; do kill -0 "$pid" 2>/dev/null && return 1; done <"$(node_dir 1)/pids"; return 0; }
stop_cluster_node() {
  node_kill_procs 1 TERM
  wait_for 60 node_gone || fail "the master did not stop"
  node_kill_procs 1 KILL
  node_run 1 "$C" lease leave -c "$(node_conf 1)" s >/dev/null 2>&1 || true
}
repair() { "$C" check --repair-counters "$CLUSTER_STORE" >"$CLUSTER_DIR/rc.out" 2>&1; }
stop_cluster_node
wait_for 30 repair || fail "repair-counters: $(cat "$CLUSTER_DIR/rc.out")"
grep -q "usage counters recounted from 6 exceptions (0 figures differed)" "$CLUSTER_DIR/rc.out" ||
  fail "repair said: $(cat "$CLUSTER_DIR/rc.out")"
grep -q "clean (6 exceptions" "$CLUSTER_DIR/rc.out" || fail "check after repair: $(cat "$CLUSTER_DIR/rc.out")"
ok "repair with the cluster stopped: nothing differed, clean"

# damage the counter block (it is checksummed: one flipped byte)
blk=$("$C" dump "$CLUSTER_STORE" | sed -n 's/.*usage counters *valid, blocks \([0-9]*\).*/\1/p')
[ -n "$blk" ] || fail "dump shows no counter block: $("$C" dump "$CLUSTER_STORE" | grep usage)"
printf '\x7f' | dd of="$CLUSTER_STORE" bs=1 seek=$((blk * 4096 + 40)) conv=notrunc status=none
"$C" check "$CLUSTER_STORE" >"$CLUSTER_DIR/ck.out" 2>&1 && fail "check passed a damaged counter block"
grep -q "usage counters: counter block 0" "$CLUSTER_DIR/ck.out" || fail "check said: $(cat "$CLUSTER_DIR/ck.out")"
ok "check reports the damage: $(grep 'usage counters' "$CLUSTER_DIR/ck.out")"
start_master 1 --grace-ms 0
[ "$(usage s1)" = "None None False" ] || fail "damaged counters shown as $(usage s1)"
cs 1 snapshot list s | grep -q '^1 .*s1 .* unknown  *unknown  *unknown  *unknown  *origin$' ||
  fail "list with damaged counters: $(cs 1 snapshot list s)"
ok "the master serves the store, usage unknown"
stop_cluster_node
wait_for 30 repair || fail "repair-counters after damage: $(cat "$CLUSTER_DIR/rc.out")"
grep -q "clean (6 exceptions" "$CLUSTER_DIR/rc.out" || fail "after repair: $(cat "$CLUSTER_DIR/rc.out")"
start_master 1 --grace-ms 0
expect s1 3 0
expect s2 3 0
ok "repaired: $(head -1 "$CLUSTER_DIR/rc.out")"
node_kill_procs 1 TERM
check_store
no_sanitizer_reports
echo "PASS usage_counters"
