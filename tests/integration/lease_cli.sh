#!/usr/bin/env bash
# `csnap lease init/status/join/leave` on stores with a real superblock
# (512 B and 4 KiB lease geometry; and one made by `csnap mkstore`), against
# real sanlock daemons; and their one-line errors on bad input.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 2 64M
# Bad input: clear one-line errors, right exit codes.
out=$("$C" lease init "$CLUSTER_DIR/missing.img" 2>&1); rc=$?
[ $rc -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "missing store: rc=$rc '$out'"
out=$("$C" lease init "$CLUSTER_ORIGIN" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "superblock" || fail "no superblock: rc=$rc '$out'"
"$C" lease init --io-timeout 0 "$CLUSTER_STORE" 2>/dev/null; [ $? -eq 2 ] || fail "bad --io-timeout accepted"
"$C" lease status 2>/dev/null; [ $? -eq 2 ] || fail "status without STORE accepted"

for sector in 512 4096; do
  LEASE_UUID=$("$T/lease_mksb" "$CLUSTER_STORE" "$sector") || fail "mksb $sector"
  if [ "$sector" = 512 ]; then align=1048576; else align=8388608; fi
  export LEASE_PATH=$CLUSTER_STORE LEASE_UUID LEASE_OFFSET=$align LEASE_ALIGN=$align LEASE_SECTOR=$sector
  "$C" lease init --force --io-timeout 1 "$CLUSTER_STORE" >/dev/null || fail "lease init ($sector)"
  out=$("$C" lease status "$CLUSTER_STORE") || fail "status before join"
  echo "$out" | grep -q "none has joined" || fail "status before join: $out"
  node_spawn 1 "holder$sector" "$T/lease_holder" 1 "$(node_addr 1)" 7001 1 >/dev/null
  out=$(node_run 2 "$T/lease_tool" acquire 2 2>&1) && fail "acquired without joining"
  echo "$out" | grep -q "has not joined lockspace" || fail "acquire before join: $out"
  node_run 2 "$T/lease_tool" join 2 1 >/dev/null || fail "node2 join ($sector)"
  wait_log 1 "holder$sector" '^master' 30 || fail "no master ($sector)"
  st() { node_run 2 "$C" lease status "$CLUSTER_STORE"; }
  valid() { st | grep -q "^master: *host_id 1 (node1) at 127.0.0.11 port 7001"; }
  wait_for 20 valid || fail "status ($sector): $(st)"
  st | grep -q "record: .*(valid)" || fail "record not valid in status: $(st)"
  js=$(node_run 2 "$C" lease status --json "$CLUSTER_STORE") || fail "status --json"
  echo "$js" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["master"]["state"] == "valid", d
assert d["master"]["address"] == "127.0.0.11" and d["master"]["port"] == 7001, d
assert sorted(h["name"] for h in d["hosts"]) == ["node1", "node2"], d
assert all(h["state"] == "live" for h in d["hosts"]), d
assert d["sector_size"] == int(sys.argv[1]), d
' "$sector" || fail "status --json ($sector): $js"
  # Live hosts: init refuses without --force.
  out=$("$C" lease init "$CLUSTER_STORE" 2>&1) && fail "init under live hosts ($sector)"
  echo "$out" | grep -q "use --force" || fail "init refusal: $out"
  echo "sector $sector: $(st | grep '^master')"
  node_kill_procs 1 KILL
  node_run 1 "$T/lease_tool" leave 1 || fail "leave node1"
  node_run 2 "$T/lease_tool" leave 2 || fail "leave node2"
done
# join/leave with host_id and io_timeout from the node's csnap.conf (the
# harness writes one per node; the store is named by its section "s").
# The store comes from `csnap mkstore`, which writes the lease area too.
out=$(CSNAP_CONF=$(node_conf 1) "$C" mkstore --force "$CLUSTER_STORE" "$CLUSTER_ORIGIN") ||
  fail "mkstore: $out"
LEASE_UUID=$(echo "$out" | awk '$1 == "uuid" { print $2 }')
export LEASE_UUID LEASE_OFFSET=1048576 LEASE_ALIGN=1048576 LEASE_SECTOR=512
"$C" lease status "$CLUSTER_STORE" | grep -q "^lockspace: csnap-$(echo "$LEASE_UUID" | tr -d -) " ||
  fail "mkstore did not write the lockspace: $("$C" lease status "$CLUSTER_STORE")"
out=$(node_run 2 "$C" lease join -c "$(node_conf 2)" s) || fail "lease join: $out"
echo "$out" | grep -q "as host_id 2" || fail "lease join: $out"
node_run 2 "$T/lease_tool" hosts | grep -q '^2 node2 ' || fail "node2 not in the lockspace"
hpid=$(node_spawn 2 holdcfg "$T/lease_holder" 2 "$(node_addr 2)" 7002 1)
wait_log 2 holdcfg '^master' 30 || fail "no master on node2"
out=$(node_run 2 "$C" lease leave -c "$(node_conf 2)" s 2>&1) && fail "left while holding a lease"
echo "$out" | grep -q -- "--force" || fail "leave refusal: $out"
node_run 2 "$C" lease leave --force -c "$(node_conf 2)" s >/dev/null || fail "leave --force"
wait_for 10 sh -c "! kill -0 $hpid 2>/dev/null" ||
  fail "holder survived leaving the lockspace"
grep -q '^released' "$(node_log 2 holdcfg)" && fail "holder released after the lockspace was removed"

# Liveness from any node that can read the store (issue 9, defect 10): a
# process outside every node (no sanlock daemon of its own) sees which
# hosts renew their delta leases, who holds the master lease and since
# when, and that the master serves; a host whose sanlock stops is "not
# renewing".
node_run 1 "$C" lease join -c "$(node_conf 1)" s >/dev/null & j1=$!
node_run 2 "$C" lease join -c "$(node_conf 2)" s >/dev/null || fail "node2 join"
wait $j1 || fail "node1 join"
node_spawn 1 holdlive "$T/lease_holder" 1 "$(node_addr 1)" 7001 1 >/dev/null
wait_log 1 holdlive '^master' 30 || fail "no master on node1"
out=$(SANLOCK_RUN_DIR=$CLUSTER_DIR/nosanlock "$C" lease status "$CLUSTER_STORE" 2>&1) || fail "status from outside: $out"
echo "$out"
echo "$out" | grep -Eq '^ +1 +node1 +renewing .*master, serving' || fail "node1 not seen renewing as the master"
echo "$out" | grep -Eq '^ +2 +node2 +renewing .*not master' || fail "node2 not seen renewing"
echo "$out" | grep -Eq '^master lease: held by host_id 1 \(node1\) generation [0-9]+, lver [0-9]+, for about [0-9]+ s' ||
  fail "master lease holder not shown"
echo "$out" | grep -q '^master: *host_id 1 (node1) at 127.0.0.11 port 7001, .*(from disk' || fail "master not shown"
js=$(SANLOCK_RUN_DIR=$CLUSTER_DIR/nosanlock "$C" lease status --json "$CLUSTER_STORE" 2>/dev/null) || fail "status --json from outside"
echo "$js" | python3 -c '
import json, sys
d = json.load(sys.stdin)
st = {h["name"]: h["state"] for h in d["hosts"]}
assert st == {"node1": "renewing", "node2": "renewing"}, d
assert d["master_lease"]["held"] and d["master_lease"]["host_id"] == 1, d
assert d["master"]["state"] == "valid" and d["master"]["verified_by"] == "disk", d
' || fail "status --json from outside: $js"
node_kill_sanlock 2
out=$(SANLOCK_RUN_DIR=$CLUSTER_DIR/nosanlock "$C" lease status "$CLUSTER_STORE" 2>&1) || fail "status from outside: $out"
echo "$out" | grep -Eq '^ +2 +node2 +not-renewing .*node down' || fail "node2 still renewing after its sanlock died: $out"
echo "$out" | grep -Eq '^ +1 +node1 +renewing ' || fail "node1 not renewing: $out"
node_kill_procs 1 KILL
node_run 1 "$T/lease_tool" leave 1 || fail "leave node1"

# Damage to the lease area is reported (issue 9, defect 9): before it, the
# area written by sanlock (delta leases, the master lease with host 2's
# block from its acquisition) verifies.
base=1048576
[ "$(dd if="$CLUSTER_STORE" bs=512 skip=$((2 * base / 512 + 3)) count=1 status=none | tr -d '\0' | wc -c)" -gt 0 ] ||
  fail "host 2's block of the master lease was never written (nothing to verify)"
out=$("$C" check "$CLUSTER_STORE") || fail "check of an intact lease area: $out"
out=$("$C" lease status --watch 0 "$CLUSTER_STORE") || fail "lease status of an intact area: $out"
echo "$out" | grep -q '^lease area: intact' || fail "lease status: $out"
poke() { printf '\377' | dd of="$CLUSTER_STORE" bs=1 seek="$1" conv=notrunc status=none; }
# expect_damage WHAT PATTERN: check and lease status both exit 1 naming it
expect_damage() {
  local out rc
  out=$("$C" check "$CLUSTER_STORE" 2>&1); rc=$?
  [ $rc -eq 1 ] && echo "$out" | grep -q "$2" || fail "check after $1: rc=$rc '$out'"
  out=$("$C" lease status --watch 0 "$CLUSTER_STORE" 2>&1); rc=$?
  [ $rc -eq 1 ] && echo "$out" | grep -q "$2" && echo "$out" | grep -q "lease area damaged" ||
    fail "lease status after $1: rc=$rc '$out'"
  echo "$1: $(echo "$out" | grep -m1 "$2")"
}
poke $((base + 512 + 100))	# host_id 2's delta lease
expect_damage "a corrupted delta lease" "delta lease of host_id 2 (offset $((base + 512))): sanlock checksum mismatch"
dd if=/dev/zero of="$CLUSTER_STORE" bs=512 seek=$((base / 512 + 9)) count=4 conv=notrunc status=none
expect_damage "zeroed delta leases" "delta leases of host_ids 10-13 .*zeroed"
poke $((2 * base + 100))	# the master lease's leader record
expect_damage "a corrupted master lease" "master lease leader record (offset $((2 * base))): sanlock checksum mismatch"
poke $((2 * base + 3 * 512 + 8))	# host_id 2's block of the master lease
expect_damage "a corrupted master lease block" "master lease block of host_id 2 "
echo "PASS"
