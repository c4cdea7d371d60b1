#!/usr/bin/env bash
# Read locks re-uploaded too late are refused, precisely (real sanlock
# daemons, tests/tools/proto_client as the client).  Two readers hold read
# locks on snapshot chunks 40 and 41 (still on the origin); the master
# process is killed; the readers stay away until the new master's grace
# period is over and it has answered an origin write to chunk 40.  Then:
#  - the lock on chunk 40 is refused with PROTO_STATUS_LOCK_STALE (the
#    chunk was copied out for the snapshot since the lock was granted), the
#    reader restarts its read and gets the store chunk with the old data;
#  - the lock on chunk 41 (no copy-out since) is accepted and holds back a
#    later origin write to chunk 41 until it is released.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 2 64M
origin_fill A 64M
store_init

master_standby --grace-ms 300
node_run 1 "$C" snapshot create s s1 >/dev/null || fail "create s1"

D=$CLUSTER_DIR
pc_spawn 2 holdA hold s1 40 1 "$D/releaseA" "$D/gate"
pc_spawn 2 holdB hold s1 41 1 "$D/releaseB" "$D/gate"
wait_log 2 holdA '^locked 1$' 30 || fail "reader A did not lock chunk 40"
wait_log 2 holdB '^locked 1$' 30 || fail "reader B did not lock chunk 41"

node_kill_procs 1 KILL          # the master process dies (its node stays up)
wait_log 2 server 'master for store' 60 || fail "node2 did not take over"
wait_log 2 holdA '^disconnected' 30 || fail "reader A did not notice"
wait_log 2 holdB '^disconnected' 30 || fail "reader B did not notice"
# The grace period ends without the readers: the origin write to chunk 40
# is copied out and answered.
pc 1 owrite 40 1 0x64 | grep -q '^owrite done' || fail "origin write to chunk 40 not answered"
cmp -s <(head -c 65536 /dev/zero | tr '\0' 'd') <(dd if="$CLUSTER_ORIGIN" bs=64K skip=40 count=1 2>/dev/null) ||
  fail "origin chunk 40 was not written"

touch "$D/gate"                  # now the readers come back and re-upload
wait_log 2 holdA '^refused stale: ' 60 || fail "stale lock on chunk 40 was not refused"
wait_log 2 holdA '^chunk 40 0x41 at store$' 30 || fail "restarted read of chunk 40 must get the old data from the store"
wait_log 2 server 'refused 1 re-uploaded read locks' 10 || fail "refusal not logged"
wait_log 2 holdB '^reuploaded 1$' 30 || fail "lock on chunk 41 (not copied out) must be accepted"
echo "stale lock refused, read restarted from the store; fresh lock accepted"

# The accepted lock holds origin writes to chunk 41 back until released.
pc_spawn 1 write41 owrite 41 1 0x65
wait_log 1 write41 '^sent' 30 || fail "writer did not send"
sleep 1
grep -q '^replied' "$(node_log 1 write41)" && fail "origin write answered while chunk 41 was read-locked"
touch "$D/releaseB"
wait_log 2 holdB '^released' 30 || fail "reader B did not release"
wait_log 1 write41 '^owrite done' 30 || fail "origin write to 41 not answered after the release"
[ "$(log_value 1 write41 replied)" -gt "$(log_value 2 holdB released)" ] || fail "reply came before the release"
pc 2 sread s1 40 2 >"$D/final" || fail "sread"
grep -q '^chunk 40 0x41 at store$' "$D/final" && grep -q '^chunk 41 0x41 at store$' "$D/final" ||
  { cat "$D/final"; fail "snapshot s1 lost its old data"; }
echo "re-uploaded lock honoured"

node_kill_procs 2 TERM
wait_log 2 server 'orderly hand-over done' 30 || fail "node2 did not stop"
no_sanitizer_reports
check_store
echo "PASS"
