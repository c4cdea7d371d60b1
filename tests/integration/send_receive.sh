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
# stream, complete, is then received; an incremental whose base t does not
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
truncate -s "$OSIZE" "$CLUSTER_ORIGIN"
head -c "$OSIZE" /dev/urandom >"$CLUSTER_ORIGIN"
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
cat >"$(node_conf 2)" <<CONF
[global]
host_id = 2
node_name = node2
address = $(node_addr 2)
io_timeout = $CLUSTER_IO_TIMEOUT
run_dir = $(node_dir 2)/run
log_level = info

[store t]
device = $TSTORE
origin = $TORIGIN
server = yes
server_port = 0
export = unix
CONF
"$C" mkstore --chunk-size 16K "$TSTORE" "$TORIGIN" >/dev/null || fail "mkstore t"
"$C" lease init --io-timeout "$CLUSTER_IO_TIMEOUT" "$TSTORE" >/dev/null || fail "lease init t"
node_spawn 2 server "$C" server --grace-ms 0 t >/dev/null
wait_log 2 server 'master for store' 60 || fail "node2's server did not become master"
sock2=$(node_dir 2)/run/t.sock
start_export 2 "$sock2" t

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

echo "== refusals"
out=$(receive "$d/s6.stream") && fail "a snapshot that exists was received again"
grep -q "already has a snapshot s6 (received from this source before)" "$d/recv.err" || fail "exists: $(cat "$d/recv.err")"
cs 1 snapshot create s s7 >/dev/null || fail "create s7"
send "$d/s7.stream" s7 --from s5
# (the export lets go of a snapshot a second after its last reader)
wait_for 10 cs 2 snapshot delete t s5 >/dev/null 2>&1 || fail "delete s5 on t"
out=$(receive "$d/s7.stream") && fail "an incremental without its base was received"
grep -q "has no snapshot s5" "$d/recv.err" || fail "no base: $(cat "$d/recv.err")"
cs 2 snapshot create t s5 >/dev/null || fail "create a local s5 on t"
out=$(receive "$d/s7.stream") && fail "an incremental onto a base of another source was received"
grep -q "snapshot s5 on store t was not received from source snapshot s5" "$d/recv.err" ||
  fail "other base: $(cat "$d/recv.err")"
send "$d/s7b.stream" s7 --from s6
qemu-io -f raw -c "write -P 0x11 $((250 * CS)) 4096" "$(dst origin)" >/dev/null || fail "write t's origin"
out=$(receive "$d/s7b.stream") && fail "received onto an origin written since the base"
grep -q "origin changed since snapshot s6 outside the stream" "$d/recv.err" || fail "touched: $(cat "$d/recv.err")"
listed s7 && fail "s7 created despite the refusals"
echo "ok  refusals"

"$C" check "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || fail "check s: $("$C" check "$CLUSTER_STORE" "$CLUSTER_ORIGIN" 2>&1 | tail -3)"
"$C" check "$TSTORE" "$TORIGIN" >/dev/null || fail "check t: $("$C" check "$TSTORE" "$TORIGIN" 2>&1 | tail -3)"
no_sanitizer_reports "$CLUSTER_DIR"/node*/*.log "$d"/*.err
echo PASS
