#!/usr/bin/env bash
# tests/integration/send_receive.sh - `csnap send` / `csnap receive` between
# two simulated clusters (tests/cluster/lib.sh): node1 runs store s (its own
# store, origin and sanlock daemon), node2 store t (its own store, origin
# and sanlock daemon, another chunk size); each has its master and export.
#
# Checks: a full send of s1 and five incremental sends (writes, zeroes and
# a partial last chunk between them; compression on and off) each make a
# snapshot on t identical to its source (qemu-img compare through both
# NBD exports), and every older received snapshot stays identical; a
# stream with one flipped byte and a truncated stream are refused with the
# record and offset named, the snapshot is not created, and the same
# stream, complete, is then received; a send cut mid-stream and a receive
# killed (kill -9, and SIGTERM: then from its last record) mid-stream are resumed (`receive --token`, `send
# --resume`) with a shorter stream, a token for another stream refused;
# an incremental whose base t does not
# hold (or holds but not from this source), a snapshot that exists, and a
# target origin written outside the stream are refused; `csnap check` is
# clean on both stores.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires qemu-img qemu-io

CS=65536
OSIZE=$((16 * 1024 * 1024 - 12288))	# the last chunk partial
cluster_start 2 64M
d=$CLUSTER_DIR
origin_fill random "$OSIZE"
dd if=/dev/zero of="$CLUSTER_ORIGIN" bs=64K seek=40 count=24 conv=notrunc status=none	# zero chunks
store_init
start_master 1 --grace-ms 0
sock1=$(export_sock 1)
start_export 1 "$sock1" s

# node2: cluster t, its own store and origin (garbage that the full
# stream must overwrite).
TSTORE=$d/tstore.img TORIGIN=$d/torigin.img
truncate -s 64M "$TSTORE"
head -c "$OSIZE" /dev/urandom >"$TORIGIN"
own_cluster 2 t "$TSTORE" "$TORIGIN" 16K
sock2=$(node_dir 2)/run/t.sock

src() { echo "nbd+unix:///$1?socket=$sock1"; }
dst() { echo "nbd+unix:///$1?socket=$sock2"; }
listed() { cs 2 snapshot list t 2>/dev/null | awk '{print $2}' | grep -qx "$1"; }
same() {	# same SNAP: source and received snapshot byte for byte
  wait_for 10 qemu-img compare -q -f raw -F raw "$(src "$1")" "$(dst "$1")" ||
    fail "received $1 differs from its source: $(qemu-img compare -f raw -F raw "$(src "$1")" "$(dst "$1")" 2>&1 | tail -1)"
}
owrite() { qemu-io -f raw -c "$1" "$(src origin)" >/dev/null || fail "qemu-io $1"; }
send() {	# send STREAM SNAP [send options...]
  local out=$1 snap=$2; shift 2
  cs 1 send "$@" s "$snap" >"$out" 2>"$d/send.err" || fail "send $snap $*: $(cat "$d/send.err")"
}
receive() { cs 2 receive t <"$1" 2>"$d/recv.err"; }

echo "== full send of s1"
cs 1 snapshot create s s1 >/dev/null || fail "create s1"
send "$d/full.stream" s1
out=$(receive "$d/full.stream") || fail "receive s1: $(cat "$d/recv.err")"
echo "$out" | grep -q "^received snapshot s1 (id [0-9]*) from snapshot 1 of store" || fail "receive s1 said: $out"
same s1
grep -q "csnap send: .* in [0-9.]* s" "$d/send.err" || fail "no progress summary from send: $(cat "$d/send.err")"
echo "ok  s1 identical (stream $(stat -c %s "$d/full.stream") bytes)"

RANDOM=1414
prev=s1
for k in 2 3 4 5 6; do
  for w in 1 2 3; do
    owrite "write -P $((RANDOM % 256)) $(((RANDOM % 250) * CS + RANDOM % 4096)) $((1 + RANDOM % 300000))"
  done
  owrite "write -z $(((RANDOM % 200) * CS)) $((CS * 3))"
  [ $k = 4 ] && owrite "write -P 0x77 $((OSIZE - 5000)) 5000"	# the partial last chunk
  cs 1 snapshot create s "s$k" >/dev/null || fail "create s$k"
  comp=; [ $((k % 2)) = 0 ] && comp=--compress
  send "$d/s$k.stream" "s$k" --from "$prev" $comp
  if [ $k = 3 ]; then
    echo "== a flipped byte and a truncated stream are refused; s3 is not created"
    size=$(stat -c %s "$d/s3.stream")
    cp "$d/s3.stream" "$d/bad.stream"
    at=$((size / 2))
    byte=$(od -An -tu1 -j "$at" -N1 "$d/bad.stream" | tr -d ' ')
    printf "$(printf '\\%03o' $(((byte + 1) % 256)))" |
      dd of="$d/bad.stream" bs=1 seek="$at" conv=notrunc status=none
    receive "$d/bad.stream" && fail "a stream with a flipped byte was received"
    grep -Eq "csnap: receive: record [0-9]+ \((data|zero|checkpoint|end)\) at stream offset [0-9]+: .*; snapshot s3 not created" "$d/recv.err" ||
      fail "flipped byte: $(cat "$d/recv.err")"
    [ "$(wc -l <"$d/recv.err")" = 1 ] || fail "more than one line: $(cat "$d/recv.err")"
    echo "ok  flipped byte: $(cat "$d/recv.err")"
    head -c $((size - 100)) "$d/s3.stream" >"$d/short.stream"
    receive "$d/short.stream" && fail "a truncated stream was received"
    grep -Eq "receive: record [0-9]+ \(.*\) at stream offset [0-9]+: truncated" "$d/recv.err" ||
      fail "truncated: $(cat "$d/recv.err")"
    echo "ok  truncated: $(cat "$d/recv.err")"
    listed s3 && fail "s3 created from a bad stream"
    same s2	# nothing received before was lost
  fi
  out=$(receive "$d/s$k.stream") || fail "receive s$k: $(cat "$d/recv.err")"
  same "s$k"
  for ((j = 1; j < k; j++)); do same "s$j"; done
  echo "ok  s$k identical ${comp:-(uncompressed)}, s1..s$((k - 1)) still identical (stream $(stat -c %s "$d/s$k.stream") bytes)"
  prev=s$k
done

echo "== a send and a receive cut mid-stream, then resumed"
state=$(node_dir 2)/run/receive-t.state
owrite "write -P 0x3c $((8 * CS)) $((10 * 1024 * 1024))"
cs 1 snapshot create s s7 >/dev/null || fail "create s7"
send "$d/s7.stream" s7 --from s6
# the sender dies after 6 MiB (the pipe closes under it)
cs 1 send --from s6 s s7 2>/dev/null | head -c $((6 * 1024 * 1024)) | cs 2 receive t 2>"$d/recv.err" &&
  fail "a cut stream was received"
grep -q "snapshot s7 not created (\`csnap receive --token\` gives a resume token)" "$d/recv.err" ||
  fail "cut send: $(cat "$d/recv.err")"
listed s7 && fail "s7 created from a cut stream"
tok=$(cs 2 receive --token t) || fail "receive --token"
out=$(cs 1 send --resume "$tok" --from s5 s s7 2>&1 >/dev/null) && fail "a token used for another stream"
echo "$out" | grep -q "the resume token is for another stream" || fail "token for another stream: $out"
out=$(cs 1 send --resume "1-00$tok" --from s6 s s7 2>&1 >/dev/null) && fail "a bad token accepted"
send "$d/s7r.stream" s7 --from s6 --resume "$tok"
[ "$(stat -c %s "$d/s7r.stream")" -lt $(($(stat -c %s "$d/s7.stream") - 4 * 1024 * 1024)) ] ||
  fail "the resumed stream ($(stat -c %s "$d/s7r.stream") bytes) does not skip what was received"
out=$(receive "$d/s7r.stream") || fail "receive resumed s7: $(cat "$d/recv.err")"
same s7
[ -e "$state" ] && fail "receive state left after a complete receive"
echo "ok  send cut at 6 MiB of $(stat -c %s "$d/s7.stream"), resumed with a $(stat -c %s "$d/s7r.stream")-byte stream: s7 identical"

owrite "write -P 0x4d $((80 * CS)) $((10 * 1024 * 1024))"
cs 1 snapshot create s s8 >/dev/null || fail "create s8"
send "$d/s8.stream" s8 --from s7
mkfifo "$d/fifo"
env $(_node_env 2) "$C" receive t <"$d/fifo" >/dev/null 2>"$d/r8.err" &
rpid=$!
exec 3>"$d/fifo"
head -c $((7 * 1024 * 1024)) "$d/s8.stream" >&3
wait_for 30 test -s "$state" || fail "the receive recorded no progress: $(cat "$d/r8.err")"
kill -9 "$rpid"
wait "$rpid" 2>/dev/null
exec 3>&-
listed s8 && fail "s8 created by a killed receive"
tok=$(cs 2 receive --token t) || fail "receive --token after kill"
send "$d/s8r.stream" s8 --from s7 --resume "$tok"
[ "$(stat -c %s "$d/s8r.stream")" -lt "$(stat -c %s "$d/s8.stream")" ] || fail "resumed s8 stream not shorter"
out=$(receive "$d/s8r.stream") || fail "receive resumed s8: $(cat "$d/recv.err")"
same s8
for j in 1 2 3 4 5 6 7; do same "s$j"; done
echo "ok  receive killed (kill -9) after 7 MiB of $(stat -c %s "$d/s8.stream"), resumed with $(stat -c %s "$d/s8r.stream") bytes: s8 identical, s1..s7 too"

owrite "write -P 0x5e $((40 * CS)) $((10 * 1024 * 1024))"
cs 1 snapshot create s s9 >/dev/null || fail "create s9"
send "$d/s9.stream" s9 --from s8
env $(_node_env 2) "$C" receive t <"$d/fifo" >/dev/null 2>"$d/r9.err" &
rpid=$!
exec 3>"$d/fifo"
# when head returns, the receive has read all but a pipe's 64 KiB of it:
# it applied the 6th data record and waits in the 7th
head -c $((7 * 1024 * 1024)) "$d/s9.stream" >&3
wait_for 30 test -s "$state" || fail "the receive recorded no progress: $(cat "$d/r9.err")"
kill -TERM "$rpid"
wait "$rpid" && fail "a receive stopped by SIGTERM succeeded"
exec 3>&-
grep -q "stopped by signal 15.*snapshot s9 not created" "$d/r9.err" || fail "SIGTERM: $(cat "$d/r9.err")"
tok=$(cs 2 receive --token t) || fail "receive --token after SIGTERM"
send "$d/s9r.stream" s9 --from s8 --resume "$tok"
# stopped cleanly: it recorded the last record it applied, past the 4 MiB checkpoint
[ "$(stat -c %s "$d/s9r.stream")" -lt $(($(stat -c %s "$d/s9.stream") - 5 * 1024 * 1024)) ] ||
  fail "SIGTERM: progress not recorded past the checkpoint ($(stat -c %s "$d/s9r.stream") bytes left)"
out=$(receive "$d/s9r.stream") || fail "receive resumed s9: $(cat "$d/recv.err")"
same s9
echo "ok  receive stopped by SIGTERM after 7 MiB, resumed with $(stat -c %s "$d/s9r.stream") bytes: s9 identical"

echo "== refusals"
out=$(receive "$d/s8.stream") && fail "a snapshot that exists was received again"
grep -q "already has a snapshot s8 (received from this source before)" "$d/recv.err" || fail "exists: $(cat "$d/recv.err")"
cs 1 snapshot create s s10 >/dev/null || fail "create s10"
send "$d/s10.stream" s10 --from s7
# (the export lets go of a snapshot a second after its last reader)
wait_for 10 cs 2 snapshot delete t s7 >/dev/null 2>&1 || fail "delete s7 on t"
out=$(receive "$d/s10.stream") && fail "an incremental without its base was received"
grep -q "has no snapshot s7" "$d/recv.err" || fail "no base: $(cat "$d/recv.err")"
cs 2 snapshot create t s7 >/dev/null || fail "create a local s7 on t"
out=$(receive "$d/s10.stream") && fail "an incremental onto a base of another source was received"
grep -q "snapshot s7 on store t was not received from source snapshot s7" "$d/recv.err" ||
  fail "other base: $(cat "$d/recv.err")"
send "$d/s10b.stream" s10 --from s8
qemu-io -f raw -c "write -P 0x11 $((250 * CS)) 4096" "$(dst origin)" >/dev/null || fail "write t's origin"
out=$(receive "$d/s10b.stream") && fail "received onto an origin written since the base"
grep -q "origin changed since snapshot s8 outside the stream" "$d/recv.err" || fail "touched: $(cat "$d/recv.err")"
listed s10 && fail "s10 created despite the refusals"
echo "ok  refusals"

"$C" check "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || fail "check s: $("$C" check "$CLUSTER_STORE" "$CLUSTER_ORIGIN" 2>&1 | tail -3)"
"$C" check "$TSTORE" "$TORIGIN" >/dev/null || fail "check t: $("$C" check "$TSTORE" "$TORIGIN" 2>&1 | tail -3)"
no_sanitizer_reports "$CLUSTER_DIR"/node*/*.log "$d"/*.err
echo PASS
