#!/usr/bin/env bash
# One origin write larger than a transaction may be (issue 9, defect 2):
# a 16 MiB store with 4 KiB chunks and room for 1024 snapshots (28
# exceptions per tree leaf) and one snapshot; a single query for ~3,000
# chunks.  Its worst case does not fit the store's journal (~240 blocks),
# so the master must split it into transactions that fit (commit, retry in
# halves) - not release the snapshot (what the old room estimate did) nor
# fail the commit (EFBIG).  Then every chunk is copied, nothing was
# released, `csnap check` is clean.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 1 16M
store_init --chunk-size 4K --max-snapshots 1024
D=$(sed -n 's/.*, \([0-9]*\) data chunks.*/\1/p' "$CLUSTER_DIR/mkstore.out")
[ -n "$D" ] && [ "$D" -gt 2000 ] && [ "$D" -le 4096 ] || fail "mkstore: unexpected data chunk count [$D]"
N=$((D - 64))
echo "store of $D data chunks; one write of $N chunks"
start_master 1 --grace-ms 0
cs 1 snapshot create s a >/dev/null || fail "create a"
out=$(pc 1 owrite 0 "$N" 0x61 2>&1) || fail "one write of $N chunks: $out"
grep -q "$N chunks in one transaction: transaction too large for the journal.*splitting" "$CLUSTER_DIR"/node1/server.log ||
  fail "the request was not split (it should not fit one transaction)"
grep -q 'releasing snapshot' "$CLUSTER_DIR"/node1/server*.log && fail "a snapshot was released"
grep -q 'stopping at once' "$CLUSTER_DIR"/node1/server*.log && fail "the master stopped"
[ "$(cs 1 snapshot list s --json | grep -c '"name": "a"')" = 1 ] || fail "snapshot a is gone"
free=$(cs 1 status s --json | sed -n 's/.*"free_chunks": \([0-9]*\),.*/\1/p')
[ "$free" = $((D - N)) ] || fail "free chunks $free, expected $((D - N))"
pc 1 sread a $((N - 1)) 1 | grep -q "^chunk $((N - 1)) 0x00 at store$" || fail "a lost chunk $((N - 1))"
node_kill_procs 1 TERM
wait_log 1 server 'orderly hand-over done' 30 || fail "no orderly stop"
no_sanitizer_reports
check_store
echo "PASS"
