#!/usr/bin/env bash
# tests/integration/hostile_conns.sh - connection floods against the master
# and an export running with a low descriptor limit (256), as anyone who
# reaches their ports could do (issue 10, defects 2, 3 and 5):
#  - 2,000 idle TCP connections to the master: it stays master (no
#    failover, no "stopping"), a real client (csnap status, a snapshot
#    create) is still served, the master does not spin, and its log grows
#    by a bounded amount (it used to log thousands of EMFILE lines a
#    second, then take its own EMFILE on the sanlock socket for a lost
#    lease and stop);
#  - 100 unauthenticated connections each announcing and sending a 1 MiB
#    message: the master's memory stays bounded (it buffered them whole);
#  - snapshot names: "origin" (the origin's export name) is refused at
#    create, and a name with control characters is shown escaped, the
#    error on one line (defects 6 and 8); an "origin" snapshot of an older
#    store (planted with tools/store_legacy_name) is reported once by the
#    export (it warned every second forever) and can be deleted;
#  - 2,000 idle connections to an export's TCP port: it does not spin
#    (it burnt 100% CPU on a listener that stayed readable), its log stays
#    bounded, and nbdinfo still gets an answer;
#  - 2,000 idle clients on the agent's unix socket (the same mistake: its
#    1,024-client cap was above a 256 limit): no spin, bounded log, and
#    the agent answers once they are gone.
# san: yes
. "$(dirname "$0")/../functions.sh"
H=$src/tests/integration/hostile_conns.py
requires prlimit nbdinfo
# The attacking client needs descriptors of its own.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
size() { stat -c %s "$1"; }
HOLD=3

cluster_start 1 64M
FAIL_LOGS=("$CLUSTER_DIR/export.err")
store_init
# A snapshot named "origin", as a store made before the name was reserved
# may hold: the export must report it once, not every second.
"$T/store_legacy_name" "$CLUSTER_STORE" origin >/dev/null || fail "planting a legacy name"

pid=$(node_spawn 1 server prlimit --nofile=256:256 "$C" server --grace-ms 300 s)
wait_log 1 server 'master for store' 60 || fail "no master"
port=$(cs 1 status s --json | sed -n 's/.*"port": \([0-9]*\).*/\1/p' | head -1)
[ -n "$port" ] || fail "no master port in status"
log=$(node_log 1 server)

echo "== master: 2000 idle connections with a 256-descriptor limit"
before=$(size "$log")
$py "$H" idle "$(node_addr 1)" "$port" 2000 $HOLD "$pid" >"$CLUSTER_DIR/idle.out" &
hp=$!
wait_for 30 grep -q opened "$CLUSTER_DIR/idle.out" || fail "attacker did not start"
out=$(cs 1 status s 2>&1) || fail "status during the flood: $out"
cs 1 snapshot create s during-flood >/dev/null 2>&1 || fail "snapshot create during the flood"
wait $hp || fail "attacker failed"
cat "$CLUSTER_DIR/idle.out"
cpu=$(sed -n 's/^cpu_ms //p' "$CLUSTER_DIR/idle.out")
[ "$cpu" -lt $((HOLD * 400)) ] || fail "master used ${cpu} ms of CPU in ${HOLD} s of idle connections (spinning?)"
sleep 6	# past the handshake deadline: the idle ones are closed
kill -0 "$pid" 2>/dev/null || fail "master exited"
grep -q 'stopping at once' "$log" && fail "master stopped"
cs 1 status s --json | grep -q '"host_id": 1,' || fail "node1 is no longer master"
cs 1 snapshot list s | grep -q during-flood || fail "snapshot made during the flood is missing"
grew=$(( $(size "$log") - before ))
echo "master log grew by $grew bytes"
[ "$grew" -lt 65536 ] || fail "master log grew by $grew bytes"
# A real client queued among connections whose peers are gone (the master
# stopped meanwhile) is not shed for them (proto_client does not retry).
node_run 1 $py "$H" burst "$(node_addr 1)" "$port" 120 "$pid" \
  "$PC" --master "$(node_addr 1):$port" "$CLUSTER_STORE" "$CLUSTER_ORIGIN" usage 1 \
  >"$CLUSTER_DIR/mburst.out" 2>&1 || { cat "$CLUSTER_DIR/mburst.out"; fail "admin client among gone peers"; }

echo "== reserved and unprintable snapshot names"
out=$(cs 1 snapshot create s origin 2>&1) && fail "a snapshot named origin was created"
echo "$out" | grep -q 'reserved' || fail "origin refused without the reason: $out"
out=$(cs 1 snapshot create s $'a\nb' 2>&1) && fail "a name with a newline was accepted"
echo "$out"
[ "$(echo "$out" | grep -c '')" -eq 2 ] || fail "the error is not one line (+ usage): $out"
echo "$out" | grep -qF 'a\nb' || fail "the name is not shown escaped: $out"
out=$(cs 1 snapshot delete s $'x\ry\x1b' 2>&1) && fail "delete of an invalid name"
echo "$out" | grep -qF 'x\ry\x1b' || fail "the name is not shown escaped: $out"

echo "== an old snapshot named origin: reported once by the export, deletable"
cs 1 snapshot list s | grep -qw origin || fail "the legacy snapshot is not listed"
esock=$CLUSTER_DIR/store-export.sock
node_spawn 1 export "$C" -v export -c "$(node_conf 1)" --socket "$esock" s >/dev/null
xlog=$(node_log 1 export)
wait_log 1 export 'snapshot during-flood exported' 30 || fail "store export did not start"
sleep 4	# the export lists the snapshots every second
n=$(grep -c 'its name is reserved' "$xlog")
[ "$n" -eq 1 ] || fail "the reserved name was reported $n times in 4 s (want once)"
nbdinfo --list "nbd+unix://?socket=$esock" >"$CLUSTER_DIR/list" 2>&1 || fail "nbdinfo --list"
[ "$(grep -c 'export="origin"' "$CLUSTER_DIR/list")" -eq 1 ] || fail "origin exported twice"
cs 1 snapshot delete s origin | grep -q 'deleted snapshot origin' || fail "the legacy snapshot cannot be deleted"

echo "== master: 100 unauthenticated 1 MiB messages"
out=$($py "$H" bigmsg "$(node_addr 1)" "$port" 100 "$pid") || fail "bigmsg: $out"
echo "$out"
kib=$(echo "$out" | sed -n 's/^rss_growth_kib //p')
[ "$kib" -lt 32768 ] || fail "master grew by $kib KiB for unauthenticated messages"
echo "$out" | grep -qx 'closed 100' || fail "oversized handshake messages not refused at once"
cs 1 status s >/dev/null 2>&1 || fail "status after the big messages"

echo "== export: 2000 idle connections with a 256-descriptor limit"
truncate -s 16M "$CLUSTER_DIR/vol.img"
prlimit --nofile=256:256 "$C" export --file "$CLUSTER_DIR/vol.img" --tcp 127.0.0.1:0 \
  >"$CLUSTER_DIR/export.out" 2>"$CLUSTER_DIR/export.err" </dev/null &
epid=$!
trap 'kill $epid 2>/dev/null; cluster_stop' EXIT
wait_for 30 grep -q 'tcp port' "$CLUSTER_DIR/export.out" || fail "export did not start"
eport=$(awk '/tcp port/ {print $3}' "$CLUSTER_DIR/export.out")
before=$(size "$CLUSTER_DIR/export.err")
$py "$H" idle 127.0.0.1 "$eport" 2000 $HOLD "$epid" >"$CLUSTER_DIR/eidle.out" &
hp=$!
wait_for 30 grep -q opened "$CLUSTER_DIR/eidle.out" || fail "attacker did not start"
nbdinfo --size "nbd://127.0.0.1:$eport/origin" | grep -qx 16777216 || fail "nbdinfo during the flood"
wait $hp || fail "attacker failed"
cat "$CLUSTER_DIR/eidle.out"
cpu=$(sed -n 's/^cpu_ms //p' "$CLUSTER_DIR/eidle.out")
[ "$cpu" -lt $((HOLD * 400)) ] || fail "export used ${cpu} ms of CPU in ${HOLD} s of idle connections (spinning?)"
kill -0 $epid 2>/dev/null || fail "export exited"
nbdinfo --size "nbd://127.0.0.1:$eport/origin" | grep -qx 16777216 || fail "nbdinfo after the flood"
# The accept queue full of connections whose peers are gone, a real client
# among them (the export stopped meanwhile): accepting them must not shed
# the real one (under load the flood's leftovers did this after it ended).
$py "$H" burst 127.0.0.1 "$eport" 120 "$epid" nbdinfo --size "nbd://127.0.0.1:$eport/origin" \
  >"$CLUSTER_DIR/burst.out" 2>&1 || { cat "$CLUSTER_DIR/burst.out"; fail "nbdinfo among gone peers"; }
grep -qx 16777216 "$CLUSTER_DIR/burst.out" || fail "nbdinfo among gone peers: $(cat "$CLUSTER_DIR/burst.out")"
grew=$(( $(size "$CLUSTER_DIR/export.err") - before ))
echo "export log grew by $grew bytes"
[ "$grew" -lt 65536 ] || fail "export log grew by $grew bytes"
kill -TERM $epid; wait $epid || fail "export exit status"

node_kill_procs 1 TERM
wait_log 1 server 'orderly hand-over done' 30 || fail "master did not stop cleanly"

echo "== agent: 2000 idle clients on its socket with a 256-descriptor limit"
conf=$(node_conf 1)
apid=$(node_spawn 1 agent prlimit --nofile=256:256 "$C" agent -c "$conf" --poll-ms 200)
alog=$(node_log 1 agent)
wait_for 60 node_run 1 "$C" agent status -c "$conf" || fail "agent did not start"
before=$(size "$alog")
$py "$H" idle "$(node_dir 1)/run/agent.sock" 0 2000 $HOLD "$apid" >"$CLUSTER_DIR/aidle.out" ||
  fail "attacker failed"
cat "$CLUSTER_DIR/aidle.out"
cpu=$(sed -n 's/^cpu_ms //p' "$CLUSTER_DIR/aidle.out")
[ "$cpu" -lt $((HOLD * 400)) ] || fail "agent used ${cpu} ms of CPU in ${HOLD} s of idle clients (spinning?)"
kill -0 "$apid" 2>/dev/null || fail "agent exited"
wait_for 10 node_run 1 "$C" agent status -c "$conf" || fail "agent status after the flood"
grew=$(( $(size "$alog") - before ))
echo "agent log grew by $grew bytes"
[ "$grew" -lt 65536 ] || fail "agent log grew by $grew bytes"
node_kill_procs 1 TERM
wait_log 1 agent 'agent: stopped' 60 || fail "agent did not stop"
no_sanitizer_reports "$log" "$alog" "$xlog" "$CLUSTER_DIR/export.err"
echo "PASS"
