#!/usr/bin/env bash
# tests/integration/store_cli.sh - csnap mkstore / check / dump on real
# O_DIRECT files: creation, refusals, and corrupt stores refused with a
# one-line reason and a non-zero exit (never a crash).
# san: yes
set -u
B=${CSNAP_BUILD:-build}
CSNAP=$B/csnap
POP=$B/tools/store_populate
T=$(mktemp -d /var/tmp/store-it-XXXXXX)
LOOP=
trap '[ -n "$LOOP" ] && losetup -d "$LOOP"; rm -rf "$T"' EXIT
fails=0
pass() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# expect_fail NAME PATTERN CMD...: non-zero exit below 128, a one-line
# message on stderr matching PATTERN
expect_fail() {
  local name=$1 pat=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -eq 0 ]; then bad "$name: succeeded"; return; fi
  if [ $rc -ge 126 ]; then bad "$name: exit $rc (crash?)"; cat "$T/err"; return; fi
  # usage errors (exit 2) add the usage line
  if [ "$(wc -l <"$T/err")" -ne 1 ] && ! [ $rc -eq 2 ] ; then bad "$name: expected one line on stderr"; cat "$T/err"; return; fi
  if ! grep -qi -- "$pat" "$T/err"; then bad "$name: message does not mention '$pat'"; cat "$T/err"; return; fi
  pass "$name: $(head -1 "$T/err")"
}
expect_ok() {
  local name=$1; shift
  if "$@" >"$T/out" 2>"$T/err"; then pass "$name"; else bad "$name: exit $?"; cat "$T/err" "$T/out"; fi
}

truncate -s 64M "$T/origin"
truncate -s 96M "$T/store"
expect_ok "mkstore" "$CSNAP" mkstore --chunk-size 4K "$T/store" "$T/origin"
expect_ok "check fresh store" "$CSNAP" check "$T/store"
expect_ok "dump fresh store" "$CSNAP" dump "$T/store"
grep -q "chunk size        4096" "$T/out" || bad "dump shows the chunk size"
expect_fail "mkstore over a store" "already holds a csnap store" "$CSNAP" mkstore "$T/store" "$T/origin"
expect_ok "mkstore --force" "$CSNAP" mkstore --force --chunk-size 4K --max-snapshots 300 "$T/store" "$T/origin"
expect_ok "dump" "$CSNAP" dump "$T/store"
grep -q "max snapshots     300 (mask 320 bits)" "$T/out" || bad "max snapshots recorded"
expect_fail "mkstore bad chunk size" "chunk-size" "$CSNAP" mkstore --chunk-size 3K "$T/store" "$T/origin"
truncate -s 1K "$T/tiny"
expect_fail "origin too small" "too small" "$CSNAP" mkstore --force "$T/store" "$T/tiny"
expect_fail "origin missing" "origin" "$CSNAP" mkstore --force "$T/store" "$T/nonexistent"
if command -v mkfs.ext4 >/dev/null; then
  truncate -s 32M "$T/fs"
  mkfs.ext4 -q -F "$T/fs" >/dev/null 2>&1
  expect_fail "store with ext4 signature" "ext4" "$CSNAP" mkstore "$T/fs" "$T/origin"
else
  echo "skip ext4 signature test: no mkfs.ext4"
fi
expect_fail "check of a non-store" "not a csnap store" "$CSNAP" check "$T/origin"
truncate -s 3M "$T/small"
# --force: $T/origin is marked as the origin of $T/store by now
expect_fail "store too small" "too small" "$CSNAP" mkstore --force "$T/small" "$T/origin"

# A STORE that is its own ORIGIN under another name is refused, even with
# --force, and the origin is left untouched; check refuses the pair too.
head -c 8M /dev/urandom >"$T/o8"
sum8=$(sha256sum <"$T/o8")
ln -s "$T/o8" "$T/o8-symlink"
ln "$T/o8" "$T/o8-hardlink"
expect_fail "mkstore: store is the origin" "same file" "$CSNAP" mkstore --force "$T/o8" "$T/o8"
expect_fail "mkstore: store is a symlink to the origin" "same file" "$CSNAP" mkstore --force "$T/o8-symlink" "$T/o8"
expect_fail "mkstore: store is a hard link to the origin" "same file" "$CSNAP" mkstore --force "$T/o8-hardlink" "$T/o8"
expect_fail "mkstore: relative store, absolute origin" "same file" \
  sh -c 'cd "$1" && "$2" mkstore --force o8 "$1/o8"' sh "$T" "$(realpath "$CSNAP")"
if LOOP=$(losetup -f --show "$T/o8"); then
  expect_fail "mkstore: store is a loop device over the origin" "backing file" "$CSNAP" mkstore --force "$LOOP" "$T/o8"
  expect_fail "mkstore: origin is a loop device over the store" "backing file" "$CSNAP" mkstore --force "$T/o8" "$LOOP"
  expect_fail "check: store is a loop device over the origin" "overlap" "$CSNAP" check "$LOOP" "$T/o8"
  losetup -d "$LOOP"; LOOP=
else
  bad "losetup -f --show (needed for the loop-device case)"
fi
expect_fail "check: store is the origin" "overlap" "$CSNAP" check "$T/o8" "$T/o8"
expect_fail "check: store is a symlink to the origin" "overlap" "$CSNAP" check "$T/o8-symlink" "$T/o8"
[ "$(sha256sum <"$T/o8")" = "$sum8" ] && pass "origin untouched by the refused mkstores" || bad "origin changed"

# a store with some metadata in it
expect_ok "mkstore for corruption tests" "$CSNAP" mkstore --force --chunk-size 4K "$T/store" "$T/origin"
"$POP" "$T/store" 20 30000 || { bad "populate"; exit 1; }
expect_ok "check populated store" "$CSNAP" check "$T/store"
"$CSNAP" dump "$T/store" >"$T/dump"
blk() { awk -v k="$1" '$0 ~ "^  "k {print $(NF-0 > 0 ? 0 : 0)}' "$T/dump" >/dev/null; sed -n "s/^  $1 *\([0-9]*\).*/\1/p" "$T/dump"; }
JOURNAL=$(blk journal); HEADER=$(blk "engine header"); TABLE=$(blk "snapshot table")
DBM=$(blk "data bitmap"); MBM=$(blk "tree bitmap"); TREE=$(blk "tree area")
echo "layout: journal $JOURNAL header $HEADER table $TABLE dbitmap $DBM tbitmap $MBM tree $TREE"
cp --sparse=always "$T/store" "$T/pristine"

# flip one bit at byte OFF of block BLK (4 KiB units) of a fresh copy
corrupt() {
  cp --sparse=always "$T/pristine" "$T/c"
  python3 - "$T/c" "$1" "$2" <<'PY'
import sys
path, blk, off = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, 'r+b') as f:
    f.seek(blk * 4096 + off); b = f.read(1)[0]
    f.seek(blk * 4096 + off); f.write(bytes([b ^ 0x10]))
PY
}
corrupt 0 200;            expect_fail "flipped bit in primary superblock" "problem" "$CSNAP" check "$T/c"
grep -q "primary copy is invalid" "$T/out" || bad "check names the invalid primary superblock"
corrupt 16 200;           expect_fail "flipped bit in backup superblock" "problem" "$CSNAP" check "$T/c"
grep -q "backup copy is invalid" "$T/out" || bad "check names the invalid backup superblock"
corrupt "$HEADER" 40;     expect_fail "flipped bit in engine header" "checksum" "$CSNAP" check "$T/c"
expect_fail "dump of a corrupt header" "checksum" "$CSNAP" dump "$T/c"
corrupt "$TABLE" 100;     expect_fail "flipped bit in snapshot table" "checksum" "$CSNAP" check "$T/c"
corrupt "$DBM" 300;       expect_fail "flipped bit in data bitmap" "checksum" "$CSNAP" check "$T/c"
corrupt "$MBM" 70;        expect_fail "flipped bit in tree bitmap" "checksum" "$CSNAP" check "$T/c"
corrupt "$TREE" 1000;     expect_fail "flipped bit in a tree node" "problem" "$CSNAP" check "$T/c"
grep -q "checksum mismatch" "$T/out" || bad "check names the tree node checksum"
corrupt "$((TREE + 1))" 20; expect_fail "flipped bit in a tree node header" "problem" "$CSNAP" check "$T/c"
# both superblocks: wrong magic
cp --sparse=always "$T/pristine" "$T/c"
printf 'XXXXXXXX' | dd of="$T/c" bs=1 seek=0 conv=notrunc status=none
printf 'XXXXXXXX' | dd of="$T/c" bs=1 seek=65536 conv=notrunc status=none
expect_fail "wrong magic" "not a csnap store" "$CSNAP" check "$T/c"
expect_fail "dump wrong magic" "not a csnap store" "$CSNAP" dump "$T/c"
# truncated
cp --sparse=always "$T/pristine" "$T/c"
truncate -s 48M "$T/c"
expect_fail "truncated store" "truncated" "$CSNAP" check "$T/c"
truncate -s 8K "$T/c"
expect_fail "store truncated to 8K" "small" "$CSNAP" check "$T/c"
expect_ok "pristine copy still clean" "$CSNAP" check "$T/pristine"

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all store CLI checks passed"
