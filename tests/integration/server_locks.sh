#!/usr/bin/env bash
# Read locks and failover, on real sanlock daemons (tests/cluster/lib.sh).
# Checks: a snapshot reader's read lock on a chunk still on the origin holds
# back a conflicting origin write (the copy-out happens, the reply waits)
# until the lock is released; a snapshot barrier with an origin client
# connected completes; after the master process is killed the standby takes
# over, the reader re-uploads its lock to it and the new master honours it
# (the origin write waits for the release again); `csnap check` is clean.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 2 64M
origin_fill A 64M
store_init

start_master 1 --grace-ms 1000
start_standby 2 --grace-ms 1000 --barrier-timeout-ms 1500
cs 1 snapshot create s s1 >/dev/null || fail "create s1"

# --- 1. a read lock holds back an origin write -----------------------------
T1=$CLUSTER_DIR/release1
pc_spawn 2 hold1 hold s1 20 2 "$T1"
wait_log 2 hold1 '^locked 2$' 30 || fail "reader did not lock chunks 20-21"
pc_spawn 1 write1 owrite 21 1 0x62
wait_log 1 write1 '^sent' 30 || fail "writer did not send"
# While the writer waits, a snapshot barrier with it connected completes.
cs 2 snapshot create s s2 >/dev/null || fail "create s2 while an origin write waits"
sleep 1
grep -q '^replied' "$(node_log 1 write1)" && fail "origin write answered while the chunk was read-locked"
# The reader still sees the old data on the origin.
cmp -s <(head -c 65536 /dev/zero | tr '\0' 'A') <(dd if="$CLUSTER_ORIGIN" bs=64K skip=21 count=1 2>/dev/null) ||
  fail "origin chunk 21 changed under a read lock"
touch "$T1"
wait_log 2 hold1 '^released' 30 || fail "reader did not release"
wait_log 1 write1 '^owrite done' 30 || fail "origin write not answered after the release"
[ "$(log_value 1 write1 replied)" -gt "$(log_value 2 hold1 released)" ] || fail "reply came before the release"
pc 2 sread s1 21 1 | grep -q '^chunk 21 0x41 at store$' || fail "s1 chunk 21 must be copied out"
pc 2 sread s2 21 1 | grep -q '^chunk 21 0x41 at store$' || fail "s2 chunk 21 must be copied out"
echo "read lock held the origin write back until release"

# --- 2. failover: the new master honours re-uploaded locks ------------------
T2=$CLUSTER_DIR/release2
pc_spawn 2 hold2 hold s1 30 1 "$T2"
wait_log 2 hold2 '^locked 1$' 30 || fail "reader did not lock chunk 30"
node_kill_procs 1 KILL          # the master process dies (its node stays up)
wait_log 2 server 'master for store' 60 || fail "node2 did not take over"
wait_log 2 hold2 '^reuploaded 1$' 60 || fail "reader did not re-upload its lock"
wait_log 2 server 're-uploaded 1 read locks' 10 || fail "new master did not log the upload"
pc_spawn 1 write2 owrite 30 1 0x63
wait_log 1 write2 '^sent' 60 || fail "writer did not send"
sleep 2   # past the grace period: only the lock holds the write back now
grep -q '^replied' "$(node_log 1 write2)" && fail "new master ignored the re-uploaded lock"
touch "$T2"
wait_log 2 hold2 '^released' 30 || fail "reader did not release"
wait_log 1 write2 '^owrite done' 30 || fail "origin write not answered after the release"
[ "$(log_value 1 write2 replied)" -gt "$(log_value 2 hold2 released)" ] || fail "reply came before the release"
pc 2 sread s1 30 1 | grep -q '^chunk 30 0x41 at store$' || fail "s1 chunk 30 must be copied out"
echo "re-uploaded lock honoured by the new master"

# --- 3. a client that never acks a barrier is cut off; the snapshot is made
pc_spawn 1 idle oidle "$CLUSTER_DIR/idle-stop"
wait_log 1 idle '^idle' 30 || fail "idle origin client did not connect"
cs 1 snapshot create s s3 >/dev/null || fail "create s3 with a silent origin client"
wait_log 1 idle '^barrier .* ignored' 10 || fail "idle client got no barrier"
wait_log 1 idle '^cut off' 10 || fail "silent client was not cut off"
wait_log 2 server 'did not acknowledge snapshot barrier' 10 || fail "cut-off not logged"
cs 1 snapshot list s | grep -q ' s3 ' || fail "s3 missing"
echo "silent origin client cut off, snapshot created"

# --- 4. fencing: sanlock's killpath signal stops the master at once ------
start_standby 1 --log server2 --grace-ms 500
pid2=$(sed -n 's/^csnap server\[\([0-9]*\)\]: info: master for store.*/\1/p' "$(node_log 2 server)" | tail -1)
[ -n "$pid2" ] || fail "no pid for node2's server"
kill -USR1 "$pid2"              # what sanlock's killpath does to a lease holder
wait_log 2 server 'stopping at once, no further writes: .*fenced' 10 || fail "node2 did not stop on the fence signal"
grep -q 'orderly hand-over done' "$(node_log 2 server)" && fail "a fenced server must not do the orderly hand-over"
wait_log 1 server2 'master for store' 60 || fail "node1 did not take over after the fence"
pc 1 sread s1 30 1 | grep -q '^chunk 30 0x41 at store$' || fail "s1 chunk 30 after the fence"
pc 1 sread s1 21 1 | grep -q '^chunk 21 0x41 at store$' || fail "s1 chunk 21 after the fence"
echo "fenced master stopped at once, node1 took over"

# A standby stops cleanly on SIGTERM.
start_standby 2 --log server3
node_kill_procs 2 TERM
wait_log 2 server3 'stopped while standby' 30 || fail "standby did not stop"

node_kill_procs 1 TERM
wait_log 1 server2 'orderly hand-over done' 30 || fail "node1 did not stop"
no_sanitizer_reports
check_store
echo "PASS"
