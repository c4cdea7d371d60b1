#!/usr/bin/env bash
# The metadata server on real sanlock daemons (tests/cluster/lib.sh), two
# nodes, with tests/tools/proto_client doing what an export does.
# Checks: election (one master, one standby); copy-out before an origin
# write keeps the snapshot's content; a second write to the chunk needs no
# copy; snapshot write allocates a chunk of its own; create/delete/list/
# status work from both nodes; a client with the wrong key is refused;
# malformed input closes only that connection; SIGTERM hands over to the
# standby in an orderly way; `csnap check` is clean at the end.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 2 64M
origin_fill A 64M
store_init

master_standby --grace-ms 300
echo "node1 master, node2 standby"

# Status from both nodes names node1 as master.
for i in 1 2; do
  wait_for 30 cs "$i" status s || fail "status on node$i: $(cs $i status s 2>&1)"
  cs "$i" status s --json | grep -q '"host_id": 1, "node": "node1", "address": "127.0.0.11"' ||
    fail "status on node$i: $(cs $i status s --json)"
done

# Snapshot, then an origin write: the chunk is copied out first.
cs 2 snapshot create s s1 --priority 3 | grep -q 'created snapshot s1' || fail "create s1"
pc 1 owrite 3 2 0x42 | grep -q 'owrite done' || fail "origin write"
out=$(pc 2 sread s1 2 4)
echo "$out"
echo "$out" | grep -q '^chunk 2 0x41 at origin$' || fail "chunk 2 should still be on the origin"
echo "$out" | grep -q '^chunk 3 0x41 at store$' || fail "chunk 3 of s1 must be the old data, from the store"
echo "$out" | grep -q '^chunk 4 0x41 at store$' || fail "chunk 4 of s1 must be the old data, from the store"
cmp -s <(head -c 65536 /dev/zero | tr '\0' 'B') <(dd if="$CLUSTER_ORIGIN" bs=64K skip=3 count=1 2>/dev/null) ||
  fail "origin chunk 3 does not hold the new data"

# A second write to the same chunks needs no copy; usage stays 2 chunks.
pc 1 owrite 3 2 0x43 | grep -q 'owrite done' || fail "second origin write"
cs 1 snapshot list s --json | grep -q '"name": "s1", .*"unique_chunks": 2,' ||
  fail "s1 should own 2 chunks: $(cs 1 snapshot list s --json)"

# A second snapshot shares nothing yet; a write now copies once for it.
cs 1 snapshot create s s2 >/dev/null || fail "create s2"
pc 1 owrite 3 1 0x44 >/dev/null || fail "origin write after s2"
pc 2 sread s2 3 1 | grep -q '^chunk 3 0x43 at store$' || fail "s2 chunk 3 must be 0x43"
pc 2 sread s1 3 1 | grep -q '^chunk 3 0x41 at store$' || fail "s1 chunk 3 changed"

# Snapshot write: a chunk of its own, other snapshots unchanged.
pc 2 swrite s2 10 1 0x55 | grep -q 'swrite done' || fail "snapshot write"
pc 2 sread s2 10 1 | grep -q '^chunk 10 0x55 at store$' || fail "s2 chunk 10 after write"
pc 2 sread s1 10 1 | grep -q '^chunk 10 0x41 at origin$' || fail "s1 chunk 10 must be untouched"

# Changed-chunk list between s1 and s2 (paged one range at a time):
# chunks 3-4 (old data in s1, newer in s2) and 10 (written in s2).
ch=$(pc 1 changed s1 s2 | tr '\n' ' ')
[ "$ch" = "range 3 2 range 10 1 " ] || fail "changed s1 s2: [$ch]"

# List and status.
cs 2 snapshot list s | grep -q '^2 .*s2' || fail "list: $(cs 2 snapshot list s)"
cs 1 status s | grep -q '^snapshots    2 of' || fail "status: $(cs 1 status s)"

# Wrong key: refused, logged.
pc 2 badkey | grep -q '^refused' || fail "a client with the wrong key was accepted"
wait_log 1 server 'authentication failed' 10 || fail "refusal not logged"

# Malformed input (a header announcing a 2 GiB payload): that connection is
# closed with a reason, the server keeps serving.
hex=$CLUSTER_DIR/bad.hex
echo "04 00 00 00 00 00 00 80 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00" >"$hex"
pc 1 raw "$hex" | grep -q '^closed' || fail "malformed message was not refused"
wait_log 1 server 'protocol error: .*exceeds the limit' 10 || fail "protocol error not logged"
cs 2 status s >/dev/null || fail "server unusable after a bad client"

# Delete.
cs 1 snapshot delete s s1 | grep -q 'deleted snapshot s1' || fail "delete"
cs 2 snapshot list s | grep -q ' s1 ' && fail "s1 still listed"
cs 2 snapshot delete s nosuch 2>&1 | grep -q 'no such snapshot' || fail "delete of a missing snapshot"
cs 2 snapshot create s s2 2>&1 | grep -q 'exists' || fail "duplicate name accepted"

# Orderly hand-over on SIGTERM.
node_kill_procs 1 TERM
wait_log 1 server 'orderly hand-over done' 30 || fail "node1 did not hand over"
wait_log 2 server 'master for store' 30 || fail "node2 did not take over"
cs 1 status s --json | grep -q '"host_id": 2,' || fail "status does not name node2"
pc 1 sread s2 3 1 | grep -q '^chunk 3 0x43 at store$' || fail "s2 chunk 3 after hand-over"

node_kill_procs 2 TERM
wait_log 2 server 'orderly hand-over done' 30 || fail "node2 did not stop"
no_sanitizer_reports
check_store
echo "PASS"
