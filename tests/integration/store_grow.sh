#!/usr/bin/env bash
# tests/integration/store_grow.sh - `csnap resize` and `csnap grow` with
# the cluster up (issue 15; real sanlock, servers and exports on two
# nodes, libnbd, nbdinfo and qemu-img clients).
#
# A writer checks the origin and snapshot s1 through node 1's export the
# whole time.  The origin file is extended (truncate) and `csnap resize`
# runs on node 2 (the standby's node: the request goes to the master).
# Then: both exports serve the origin at the new size (new NBD
# connections), status reports it, data written into the new range
# through node 2 reads back through node 1; s1 keeps its old size and
# content; a snapshot taken after the resize has the new size and keeps
# the new range's content when the origin is written there again; a
# second resize is a no-op; shrinking is refused with one line and
# changes nothing.
# The store (44 MiB: about 600 data chunks, enough for s1 and s2 whatever
# the writer does) is then extended by 64 MiB and `csnap grow` runs on
# node 1 with the writer still going: the data area grows and the
# writer goes on; then, the writer stopped, snapshots s3
# and s4, each followed by a rewrite of the whole 24 MiB origin, need 768
# chunks of their own, more than the old data area held, so the new chunks
# are used; s2, s3 and s4 read their reference images through the other
# node's export (which learns the larger data area from the superblock),
# s1 is kept; a second grow adds nothing; `csnap check` is clean.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires_libnbd
requires nbdinfo
requires qemu-img

cluster_start 2 128M
origin_fill zero 16M
truncate -s 0 "$CLUSTER_STORE" && truncate -s 44M "$CLUSTER_STORE"
store_init
d=$CLUSTER_DIR
master_standby
start_export_each

size_of() { nbdinfo --size "nbd+unix:///$2?socket=$1" 2>/dev/null; }
size_is() { [ "$(size_of "$1" "$2")" = "$3" ]; }
# pat SOCK EXPORT OFFSET: the first 8 bytes at OFFSET
peek() {
  $py - "nbd+unix:///$2?socket=$1" "$3" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); sys.stdout.write(h.pread(8, int(sys.argv[2])).decode('latin1'))
PY
}
poke() {	# poke SOCK OFFSET MARKER: 64 KiB of MARKER at OFFSET of the origin
  $py - "nbd+unix:///origin?socket=$1" "$2" "$3" <<'PY' || fail "origin write $3"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(sys.argv[3].encode() * (65536 // 8), int(sys.argv[2])); h.flush()
PY
}

workload_start "$sock1" 15	# snapshot s1 of the 16 MiB origin, checked throughout
OLD=$((16 << 20)) NEW=$((24 << 20))
truncate -s $NEW "$CLUSTER_ORIGIN" || fail "extend the origin"
size_is "$sock2" origin $OLD || fail "the origin grew before resize: $(size_of "$sock2" origin)"

out=$(cs 2 resize s) || fail "resize: $out"
echo "$out"
[ "$out" = "origin resized from $OLD to $NEW bytes" ] || fail "resize said: $out"
wait_for 20 size_is "$sock1" origin $NEW || fail "node1 serves origin at $(size_of "$sock1" origin)"
wait_for 20 size_is "$sock2" origin $NEW || fail "node2 serves origin at $(size_of "$sock2" origin)"
cs 1 status s | grep -q "^origin size  $NEW bytes" || fail "status: $(cs 1 status s | grep origin)"
workload_progress "after the resize"

# the new range: written through node 2, read through node 1
poke "$sock2" $((20 << 20)) newrange
[ "$(peek "$sock1" origin $((20 << 20)))" = newrange ] || fail "node1 does not read the new range"
size_is "$sock1" s1 $OLD || fail "s1 grew: $(size_of "$sock1" s1)"

cs 1 snapshot create s s2 >/dev/null || fail "create s2"
wait_exported "$sock2" s2
size_is "$sock2" s2 $NEW || fail "s2 is $(size_of "$sock2" s2) bytes"
poke "$sock1" $((20 << 20)) changed_
[ "$(peek "$sock2" s2 $((20 << 20)))" = newrange ] || fail "s2 lost the new range's content"
[ "$(peek "$sock2" origin $((20 << 20)))" = changed_ ] || fail "origin write to the new range lost"

out=$(cs 1 resize s) || fail "second resize: $out"
[ "$out" = "origin size unchanged: $NEW bytes" ] || fail "second resize said: $out"
# shrinking: the device smaller than recorded is refused, nothing changes
cp --sparse=always "$CLUSTER_ORIGIN" "$d/origin.keep"
truncate -s $((22 << 20)) "$CLUSTER_ORIGIN"
if out=$(cs 2 resize s 2>&1); then fail "shrink accepted: $out"; fi
[ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "cannot shrink" || fail "shrink refusal: $out"
echo "refused: $out"
truncate -s $NEW "$CLUSTER_ORIGIN"
dd if="$d/origin.keep" of="$CLUSTER_ORIGIN" bs=1M skip=22 seek=22 conv=notrunc status=none
size_is "$sock1" origin $NEW || fail "the refused shrink changed the export"

# ---- grow the store device
chunks() { cs 1 status s --json | $py -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
n0=$(chunks store_chunks)
truncate -s $((108 << 20)) "$CLUSTER_STORE" || fail "extend the store"
out=$(cs 1 grow s) || fail "grow: $out"
echo "$out"
echo "$out" | grep -q "^data area grown from $((n0 * 65536)) to " || fail "grow said: $out"
n1=$(chunks store_chunks)
[ "$n1" -ge $((n0 + 1000)) ] || fail "data area $n0 -> $n1 chunks"
workload_progress "after the grow"
workload_stop	# (the rewrites below would overwrite what it checks)
qemu-img convert -f raw -O raw "nbd+unix:///s2?socket=$sock2" "$d/s2.ref" || fail "read s2"
# s3 and s4: every chunk of the 24 MiB origin copied out for each
for v in s3 s4; do
  cs 2 snapshot create s $v >/dev/null || fail "create $v"
  wait_exported "$sock1" $v
  qemu-img convert -f raw -O raw "nbd+unix:///$v?socket=$sock2" "$d/$v.ref" || fail "read $v"
  head -c $NEW /dev/urandom >"$d/fresh"
  qemu-img convert -n -f raw -O raw "$d/fresh" "nbd+unix:///origin?socket=$sock2" ||
    fail "rewrite the origin after $v"
done
used=$(( n1 - $(chunks free_chunks) ))
echo "data chunks in use: $used of $n1 (the old data area had $n0)"
[ "$used" -gt "$n0" ] || fail "the new chunks were not used ($used in use)"
for v in s2 s3 s4; do
  qemu-img convert -f raw -O raw "nbd+unix:///$v?socket=$sock1" "$d/$v.now" || fail "read $v"
  cmp -s "$d/$v.now" "$d/$v.ref" || fail "$v changed"
done
cs 1 snapshot list s | grep -qw s1 || fail "s1 was released to make room"
out=$(cs 2 grow s) || fail "second grow: $out"
echo "$out" | grep -q "unchanged" || fail "second grow said: $out"

node_kill_procs 1 TERM
node_kill_procs 2 TERM
sleep 1
no_sanitizer_reports
check_store "$CLUSTER_ORIGIN"
"$C" dump "$CLUSTER_STORE" | grep -q "origin size       $NEW " || fail "dump: $("$C" dump "$CLUSTER_STORE" | grep origin)"
echo "PASS store_grow"
