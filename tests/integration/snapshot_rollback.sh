#!/usr/bin/env bash
# tests/integration/snapshot_rollback.sh - `csnap snapshot rollback STORE
# NAME` (issue 15) online, on a 2-node cluster whose exports stay up, the
# master killed in the middle.
#
# Origin (1024 chunks of 64 KiB) all 'a'; snapshot S; origin chunks
# 0..699 written 'B' (copied out for S); snapshot T (shares them); chunks
# 100..149 written 'C' (copied out for T).  A reader of T holds a read
# lock on origin chunk 600; the rollback to S, 16 chunks per step
# (CSNAP_ROLLBACK_STEP), copies chunk 600 out for T and then waits for
# that lock before it overwrites the origin: `csnap status` shows it at
# chunk 592 of 1024, deterministically.  Meanwhile, through real NBD
# clients on both nodes' exports, the origin reads S's content (chunks
# 608..699 from S's store chunks, the export asking the master), an origin
# write to a chunk S shares is copied out for S, and one to a chunk still
# to move (650) waits; a second rollback, a delete of S, reads of S and an
# origin client of an older csnap are refused with their reason; node 2
# reads T through the protocol and gets T's content.  The master is killed
# (kill -9) there; the standby replays the journal and resumes at the
# cursor, the reader's re-uploaded lock is refused as stale (T's copy was
# committed) and its read restarted from T's copy, the waiting write is
# re-sent and answered once its chunk has moved.  At the end, on both
# nodes: the origin is S's content plus the two writes, T is unchanged,
# S is kept; `csnap check` is clean.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires_libnbd
requires nbdinfo

cluster_start 2 256M
origin_fill a 64M
store_init
d=$CLUSTER_DIR
export CSNAP_ROLLBACK_STEP=16
master_standby
start_export_each

cs 2 snapshot create s S >/dev/null || fail "create S"
pc 2 owrite 0 700 0x42 >/dev/null || fail "write 0..699"	# 'B'
cs 2 snapshot create s T >/dev/null || fail "create T"
pc 2 owrite 100 50 0x43 >/dev/null || fail "write 100..149"	# 'C'

# rep S N: S N times
rep() { local i s=; for ((i = 0; i < $2; i++)); do s+=$1; done; printf '%s' "$s"; }
# sread SNAP: its first 720 chunks as node 2's protocol client reads them
# (read-locked where on the origin), one letter per chunk
sread() {
  local w n b rest
  pc 2 sread "$1" 0 720 | while read -r w n b rest; do
    [ "$w" = chunk ] || continue
    case $b in 0x00) printf 0 ;; 0x??) printf "\\x${b#0x}" ;; *) printf '?' ;; esac
  done
  echo
}
want_t="$(rep B 700)$(rep a 20)"
[ "$(sread T)" = "$want_t" ] || fail "T before the rollback: $(sread T)"

# check SOCKET EXPORT FIRST LAST BYTES: chunks FIRST..LAST of the export
# hold BYTES (one letter per chunk; 'a' past its end)
check() {
  local got
  got=$($py - "nbd+unix:///$2?socket=$1" "$3" "$4" "$5" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
first, last, want = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
C = 1 << 16
for i in range(first, last + 1):
    w = want[i] if i < len(want) else ord("a")
    buf = h.pread(C, i * C)
    if buf != bytes([w]) * C:
        print("chunk %d: %r, want %r" % (i, buf[:4], chr(w))); sys.exit(0)
print("ok")
PY
) || fail "read $2 on $1"
  [ "$got" = ok ] || fail "$2 on $(basename "$1"): $got"
}
# wr SOCKET CHUNK LETTER: one chunk of the origin through NBD
wr() {
  $py - "nbd+unix:///origin?socket=$1" "$2" "$3" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(sys.argv[3].encode() * (1 << 16), int(sys.argv[2]) << 16); h.flush()
PY
}

# A reader of T holds a read lock on origin chunk 600 (T still shares
# it): the step moving chunk 600 (chunks 592..607, 16 per step) copies it
# out for T, then waits for the lock before it overwrites the origin.
# That keeps the rollback in the middle, whatever the machine's speed.
pc_spawn 2 hold hold T 600 1 "$d/release"
wait_log 2 hold '^locked 1$' 30 || fail "the reader did not lock chunk 600"

out=$(cs 2 snapshot rollback s S 2>&1) || fail "rollback: $out"
echo "$out"
at_592() { cs 2 status s 2>/dev/null | grep -q '^rollback to S: chunk 592 of 1024$'; }
wait_for 30 at_592 || fail "the rollback does not stop at the held chunk: $(cs 2 status s 2>&1 | grep rollback)"
echo "status: rollback to S: chunk 592 of 1024"

# The origin is S's content at once, on both nodes: moved chunks from the
# origin, chunks still to move (608..699) from S's store chunks.  (The
# step's own chunks, 592..607, wait for it.)
for s in "$sock1" "$sock2"; do
  check "$s" origin 0 591 ""
  check "$s" origin 608 1023 ""
done
grep -q 'a rollback starts: reads ask the master' "$(node_log 1 export)" ||
  fail "node 1's export did not switch to asking"
# A chunk S shares with the origin: copied out for S, answered now.
wr "$sock1" 800 W || fail "origin write to chunk 800 during the rollback"
check "$sock2" origin 800 800 "$(rep a 800)W"
# A chunk still to move: waits (for the held step, then its own).
$py - "nbd+unix:///origin?socket=$sock2" >"$d/w650.out" 2>&1 <<'PY' &
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"X" * (1 << 16), 650 << 16); h.flush()
print("written")
PY
w650=$!

refused() {	# refused WHAT RE CMD...: must fail with an error matching RE
  local what=$1 re=$2 out; shift 2
  if out=$("$@" 2>&1); then
    fail "$what: not refused: $out"
  fi
  printf '%s\n' "$out" | grep -q "$re" || fail "$what: unexpected error: $out"
  echo "refused ($what): $(printf '%s\n' "$out" | tail -1)"
}
refused "second rollback" 'rollback to snapshot "S" is running' cs 2 snapshot rollback s T
refused "delete S" 'rolled back' cs 2 snapshot delete s S
refused "read S" 'usable when the rollback ends' pc 2 sread S 0 1
$py - "nbd+unix:///S?socket=$sock2" 2>/dev/null <<'PY' && fail "S read through NBD during the rollback"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pread(4096, 0)
PY
refused "older origin client" 'is running' pc 2 oquery 900 1
# T through the protocol while its chunks are copied out under it
got=$(sread T)
[ "$got" = "$want_t" ] || fail "T during the rollback: $got"
kill -0 "$w650" 2>/dev/null || fail "the write to chunk 650 was answered before its chunk moved: $(cat "$d/w650.out")"

# The master dies with the step in the middle: the new one replays the
# journal; the reader's re-uploaded lock is stale (T's copy of chunk 600
# was committed), so it reads again, from T's copy.
node_kill_procs 1 KILL
wait_log 2 server 'master for store' 60 || fail "node 2 did not take over"
wait_log 2 server 'rollback to snapshot S: at chunk 592 of 1024' 30 ||
  fail "node 2 did not resume the rollback at the cursor"
wait_log 2 hold '^chunk 600 0x42 at store$' 30 || fail "T's chunk 600: $(tail -2 "$(node_log 2 hold)")"
touch "$d/release"
rb_over() { cs 2 status s >"$d/status.out" 2>&1 && ! grep -q '^rollback to ' "$d/status.out"; }
wait_for 60 rb_over || fail "the rollback did not finish: $(grep rollback "$d/status.out")"
wait_log 2 server 'rollback to snapshot S done' 10 || fail "no end of the rollback in the log"
grep 'rollback to snapshot S done' "$(node_log 2 server)"
wait "$w650" || fail "the write to chunk 650: $(cat "$d/w650.out")"
wait_log 2 export 'the rollback has ended: reads go to the origin directly' 10 ||
  fail "node 2's export was not told the end"
got=$(sread T)
[ "$got" = "$want_t" ] || fail "T after the rollback: $got"

start_standby 1
start_export 1 "$sock1" --log export2 --socket "$sock1" s
wait_exported "$sock1" T
want_o="$(rep a 650)X$(rep a 149)W"
for s in "$sock1" "$sock2"; do
  check "$s" origin 0 1023 "$want_o"
  check "$s" S 0 1023 ""
  check "$s" T 0 1023 "$want_t"
done
echo "origin = S + the writes made during the rollback, T unchanged, S kept, on both nodes"

node_kill_procs 1 TERM
node_kill_procs 2 TERM
sleep 1
no_sanitizer_reports
check_store
echo "PASS"
