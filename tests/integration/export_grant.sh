#!/usr/bin/env bash
# tests/integration/export_grant.sh - a paused export must not write into a
# snapshot taken while it was paused (issue 9, defect 1; docs/RELIABILITY.md
# "A paused or partitioned export").
#
# node1 runs a standby server and the export the client writes through;
# node2 runs the master and an export that reads the snapshots back.  Each
# round: the client writes 1 MiB of new data at R through node1 and flushes
# (the export now remembers R's chunks as unique); node1's export is
# stopped (SIGSTOP); the client queues a small write elsewhere; snapshot X
# is created from node2 - round 1 directly (the master's barrier times out
# after 1 s and it cuts the silent export off), round 2 after the master
# was killed (node1's server takes over and commits X without any barrier
# to the stopped export); the client queues a 4 KiB write W at R; the
# export continues (SIGCONT).  X, read through node2, must hold the data
# from before W at R (W refused, or written only after a copy-out), the
# origin must hold W if W was acknowledged, and `csnap check` must be
# clean.  Before the fix the export wrote W straight to the origin from
# its unique-chunk memory and X held W.  Round 3 does the same to the
# snapshot-location cache: node2's export, stopped while it caches where
# X's chunk C3 is, must not read the old place after node1's write moved
# it (the master cut node2 off when it did not acknowledge the
# invalidation).  At the end the write log (tests/cluster/wlog.sh) must
# show no origin write into a chunk that X or Y still read from the origin
# (a check that catches a single stray write: wlog_stray.sh).
# san: yes
. "$(dirname "$0")/../functions.sh"
requires_libnbd


cluster_start 2 256M
origin_fill O 64M
store_init
. "$src/tests/cluster/wlog.sh"
wlog_start
d=$CLUSTER_DIR
srv2=$(node_spawn 2 server "$C" server --barrier-timeout-ms 1000 s)
wait_log 2 server 'master for store' 60 || fail "no master"
start_standby 1 --barrier-timeout-ms 1000
sock1=$d/node1.sock sock2=$d/node2.sock
exp1=$(node_spawn 1 export "$C" -v export --socket "$sock1" s)
exp2=$(node_spawn 2 export "$C" -v export --socket "$sock2" s)
wait_for 20 test -S "$sock1" || fail "node1 export socket"
wait_for 20 test -S "$sock2" || fail "node2 export socket"

# The client: one NBD connection to node1's origin, driven by files in $d.
cat >"$d/client.py" <<'PY'
import nbd, os, sys, time
uri, d = sys.argv[1], sys.argv[2]
MiB = 1 << 20
h = nbd.NBD(); h.connect_uri(uri)
def wait_file(f):
    while not os.path.exists(os.path.join(d, f)):
        time.sleep(0.02)
def queue(buf, off):
    c = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(buf)), off)
    for _ in range(5):
        h.poll(0)
    return c
for rnd, fill in ((1, b'P'), (2, b'Q')):
    R = rnd * 8 * MiB
    h.pwrite(fill * MiB, R)
    h.flush()
    print(f"round {rnd} written", flush=True)
    wait_file(f"stopped{rnd}")
    small = queue(b's' * 4096, R + 4 * MiB)
    print(f"round {rnd} small queued", flush=True)
    wait_file(f"created{rnd}")
    w = queue(b'W' * 4096, R)
    print(f"round {rnd} W queued", flush=True)
    wait_file(f"continued{rnd}")
    res = {}
    deadline = time.monotonic() + 40
    while len(res) < 2 and time.monotonic() < deadline:
        for name, c in (("small", small), ("W", w)):
            if name in res:
                continue
            try:
                if h.aio_command_completed(c):
                    res[name] = "ok"
            except nbd.Error as e:
                res[name] = "error " + str(e).replace("\n", " ")
        h.poll(100)
    print(f"round {rnd} W {res.get('W', 'pending')} small {res.get('small', 'pending')}", flush=True)
    if len(res) < 2:
        sys.exit(1)
    h.flush()
    wait_file(f"next{rnd}")
PY
node_spawn 1 client $py "$d/client.py" "nbd+unix:///origin?socket=$sock1" "$d" >/dev/null

# Reads LEN bytes at OFF of export URI and prints what they hold.
cat >"$d/peek.py" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
b = h.pread(int(sys.argv[3]), int(sys.argv[2]))
print("".join(sorted(set(b.decode()))))
PY
peek() { $py "$d/peek.py" "nbd+unix:///$1?socket=$sock2" "$2" "$3"; }

round() {   # round N: snapshot name, how it is created
  local n=$1 snap=$2 how=$3 R=$(( $1 * 8 * 1048576 )) t0 t1
  wait_log 1 client "^round $n written" 30 || fail "round $n: client write"
  kill -STOP "$exp1"
  touch "$d/stopped$n"
  wait_log 1 client "^round $n small queued" 30 || fail "round $n: small write not queued"
  t0=$(now_ms)
  if [ "$how" = killmaster ]; then
    kill -KILL -- "-$srv2"
    wait_log 1 server 'master for store' 60 || fail "round $n: node1 did not take over"
  fi
  node_run 2 "$C" snapshot create s "$snap" >/dev/null || fail "round $n: create $snap"
  t1=$(now_ms)
  echo "round $n ($how): $snap created $((t1 - t0)) ms after the export stopped"
  touch "$d/created$n"
  wait_log 1 client "^round $n W queued" 30 || fail "round $n: W not queued"
  kill -CONT "$exp1"
  touch "$d/continued$n"
  wait_log 1 client "^round $n W (ok|error|pending)" 60 || fail "round $n: W never finished"
  local res
  res=$(grep -E "^round $n W (ok|error|pending)" "$(node_log 1 client)")
  echo "$res"
  wait_for 20 export_listed "$sock2" "$snap" || fail "round $n: $snap not exported on node2"
  local x o
  x=$(peek "$snap" "$R" 1048576)
  [ "$x" = "$([ "$n" = 1 ] && echo P || echo Q)" ] ||
    fail "round $n: snapshot $snap changed at R after it was taken (holds '$x'): the paused export wrote into it"
  o=$(peek origin "$R" 4096)
  case "$res" in
    *"W ok"*) [ "$o" = W ] || fail "round $n: W was acknowledged but the origin holds '$o'" ;;
    *) [ "$o" = "$([ "$n" = 1 ] && echo P || echo Q)" ] || fail "round $n: W failed but the origin changed to '$o'" ;;
  esac
  echo "round $n: $snap holds the data of before W; the origin holds '$o'"
  touch "$d/next$n"
}

round 1 X barriertimeout
grep -q 'did not acknowledge snapshot barrier' "$(node_log 2 server)" ||
  fail "round 1: the barrier did not time out (the export was not stopped?)"
round 2 Y killmaster
wait_log 1 client "^round 2 W (ok|error)" 5 || fail "client"

# Round 3: the snapshot-location cache.  Chunk C3 is copied out once for
# X and Y (shared store chunk).  node2's export reads X at C3 (caches the
# shared location) and is stopped; its reader queues another read; node1
# writes into X at C3, which moves X's chunk: the master's invalidation to
# node2 times out after 1 s and cuts it off.  When node2 continues, the
# queued read must see node1's write, not the old location.
C3=$((40 * 1048576))
$py - "nbd+unix:///origin?socket=$sock1" $C3 <<'PY' || fail "round 3: origin write"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pwrite(b'T' * 65536, int(sys.argv[2])); h.flush()
PY
cat >"$d/reader.py" <<'PY'
import nbd, os, sys, time
uri, off, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
h = nbd.NBD(); h.connect_uri(uri)
print("first", "".join(sorted(set(h.pread(65536, off).decode()))), flush=True)
while not os.path.exists(os.path.join(d, "stopped3")):
    time.sleep(0.02)
buf = nbd.Buffer(4096)
c = h.aio_pread(buf, off)
for _ in range(5):
    h.poll(0)
print("queued", flush=True)
deadline = time.monotonic() + 40
try:
    while not h.aio_command_completed(c) and time.monotonic() < deadline:
        h.poll(100)
    print("second", "".join(sorted(set(buf.to_bytearray().decode()))), flush=True)
except nbd.Error as e:
    print("second error", e, flush=True)
PY
node_spawn 2 reader $py "$d/reader.py" "nbd+unix:///X?socket=$sock2" $C3 "$d" >/dev/null
wait_log 2 reader '^first' 30 || fail "round 3: node2 did not read X"
grep -q '^first O$' "$(node_log 2 reader)" || fail "round 3: X at C3 is not the old data: $(cat "$(node_log 2 reader)")"
kill -STOP "$exp2"
touch "$d/stopped3"
wait_log 2 reader '^queued' 30 || fail "round 3: read not queued"
t0=$(now_ms)
$py - "nbd+unix:///X?socket=$sock1" $C3 <<'PY' || fail "round 3: snapshot write on node1"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pwrite(b'N' * 4096, int(sys.argv[2])); h.flush()
PY
echo "round 3: the write into X that moved the chunk took $(( $(now_ms) - t0 )) ms (node2 stopped)"
kill -CONT "$exp2"
wait_log 2 reader '^second' 60 || fail "round 3: node2's read never finished"
grep -q '^second N$' "$(node_log 2 reader)" ||
  fail "round 3: node2 read X at C3 from a location it cached before it was stopped: $(grep '^second' "$(node_log 2 reader)")"
echo "round 3: node2 read node1's write after it continued (its cached location was not used)"
wlog_quiesce
wlog_stray_check
no_sanitizer_reports
check_store
echo "PASS"
