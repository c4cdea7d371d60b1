#!/usr/bin/env bash
# tests/integration/wlog_stray.sh - the fencing tests' stray-write check
# (tests/cluster/wlog.sh wlog_stray_check) catches a single stray write.
#
# The verified 3-node block workload runs with the write log on; after
# snapshot k1 an injected fault (CSNAP_TEST_STRAY_FILE, in
# src/export/volume_origin.c) makes one export write one 4 KiB block
# without asking the master - as a paused export with an expired grant
# would have before issue 9's fix.  Both checks must see exactly that
# write: the stray check of the log reports one stray write, into k1; the
# block-by-block verify of k1 finds one wrong block.  Then the same checks
# on a run without the fault are clean (export_grant.sh, agent_frozen.sh,
# fault_sanlock_frozen.sh and cluster_powercut.sh run them).
. "$(dirname "$0")/../functions.sh"
BLOCKS=${BLOCKS:-1024}
BLOCKS_STORE=${BLOCKS_STORE:-64M}
BLOCKS_WLOG=1
. "$src/tests/cluster/blocks.sh"

stray=$(mktemp -u /var/tmp/csnap-stray.XXXXXX)
export CSNAP_TEST_STRAY_FILE=$stray
blocks_cluster
d=$CLUSTER_DIR
blocks_writers
wait_writes 300 || fail "writers do not progress"
snap k1 1
# At once: the fault fires on a write that must ask the master, and after
# a hundred or so writes every chunk of this small origin is unique to
# its export again (no write asks, the fault never fires).
touch "$stray"
wait_for 20 eval '! test -e "$stray"' || fail "no export took the injected fault"
wait_writes 100 || fail "writers stalled after the fault"
blocks_stop_writers
grep -h "TEST FAULT" "$d"/node*/export*.log || fail "no export logged the fault"
read -r _ t0 t1 <"$d/snaps"
if out=$($py "$blocks_py" verify "$(uri 3 k1)" "$BLOCKS" "$t0" "$t1" "$d/w1.log" "$d/w2.log"); then
  fail "the verify of k1 did not see the stray write: $out"
fi
echo "verify of k1: $out"
echo "$out" | grep -q "FAIL: 1 wrong blocks" || fail "expected exactly one wrong block in k1"
wlog_quiesce
mkdir "$d/stray"
if out=$("$T/wlog_stray" "$d/wlog" "$d/stray" "$CLUSTER_ORIGIN" "$CLUSTER_STORE" "$d/store.init" 2>&1); then
  fail "the stray check missed the stray write: $out"
fi
echo "$out"
echo "$out" | grep -q ": 1 stray$" || fail "expected exactly one stray write"
echo "$out" | grep -q "of snapshot k1, which still reads it from the origin" || fail "the stray write is not reported in k1"
no_sanitizer_reports
echo PASS
