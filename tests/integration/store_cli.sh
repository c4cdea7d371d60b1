#!/usr/bin/env bash
# tests/integration/store_cli.sh - csnap mkstore / check / dump on real
# O_DIRECT files: creation, refusals, and corrupt stores refused with a
# one-line reason and a non-zero exit (never a crash).
# san: yes
. "$(dirname "$0")/../functions.sh"
POP=$T/store_populate
W=$(mktemp -d /var/tmp/store-it-XXXXXX)
LOOP=
trap '[ -n "$LOOP" ] && losetup -d "$LOOP"; rm -rf "$W"' EXIT
fails=0
pass() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# expect_fail NAME PATTERN CMD...: non-zero exit below 128, a one-line
# message on stderr matching PATTERN
expect_fail() {
  local name=$1 pat=$2; shift 2
  "$@" >"$W/out" 2>"$W/err"; local rc=$?
  if [ $rc -eq 0 ]; then bad "$name: succeeded"; return; fi
  if [ $rc -ge 126 ]; then bad "$name: exit $rc (crash?)"; cat "$W/err"; return; fi
  # usage errors (exit 2) add the usage line
  if [ "$(wc -l <"$W/err")" -ne 1 ] && ! [ $rc -eq 2 ] ; then bad "$name: expected one line on stderr"; cat "$W/err"; return; fi
  if ! grep -qi -- "$pat" "$W/err"; then bad "$name: message does not mention '$pat'"; cat "$W/err"; return; fi
  pass "$name: $(head -1 "$W/err")"
}
expect_ok() {
  local name=$1; shift
  if "$@" >"$W/out" 2>"$W/err"; then pass "$name"; else bad "$name: exit $?"; cat "$W/err" "$W/out"; fi
}

truncate -s 64M "$W/origin"
truncate -s 96M "$W/store"
expect_ok "mkstore" "$C" mkstore --chunk-size 4K "$W/store" "$W/origin"
expect_ok "check fresh store" "$C" check "$W/store"
expect_ok "dump fresh store" "$C" dump "$W/store"
grep -q "chunk size        4096" "$W/out" || bad "dump shows the chunk size"
expect_fail "mkstore over a store" "already holds a csnap store" "$C" mkstore "$W/store" "$W/origin"
expect_ok "mkstore --force" "$C" mkstore --force --chunk-size 4K --max-snapshots 300 "$W/store" "$W/origin"
expect_ok "dump" "$C" dump "$W/store"
grep -q "max snapshots     300 (mask 320 bits)" "$W/out" || bad "max snapshots recorded"
expect_fail "mkstore bad chunk size" "chunk-size" "$C" mkstore --chunk-size 3K "$W/store" "$W/origin"
truncate -s 1K "$W/tiny"
expect_fail "origin too small" "too small" "$C" mkstore --force "$W/store" "$W/tiny"
expect_fail "origin missing" "origin" "$C" mkstore --force "$W/store" "$W/nonexistent"
# a file origin ending inside a sector: O_DIRECT could not serve its
# last bytes (nbdcopy of such an export failed with EIO on the last read)
truncate -s 6000000 "$W/odd"
expect_fail "origin not whole sectors" "not a multiple of 512; pad a file origin first: truncate -s 6000128" \
  "$C" mkstore --force "$W/store" "$W/odd"
if command -v mkfs.ext4 >/dev/null; then
  truncate -s 32M "$W/fs"
  mkfs.ext4 -q -F "$W/fs" >/dev/null 2>&1
  expect_fail "store with ext4 signature" "ext4" "$C" mkstore "$W/fs" "$W/origin"
else
  part_missing "mkfs.ext4 (ext4 signature test)"
fi
expect_fail "check of a non-store" "not a csnap store" "$C" check "$W/origin"
truncate -s 3M "$W/small"
# --force: $W/origin is marked as the origin of $W/store by now
expect_fail "store too small" "too small" "$C" mkstore --force "$W/small" "$W/origin"

# A STORE that is its own ORIGIN under another name is refused, even with
# --force, and the origin is left untouched; check refuses the pair too.
head -c 8M /dev/urandom >"$W/o8"
sum8=$(sha256sum <"$W/o8")
ln -s "$W/o8" "$W/o8-symlink"
ln "$W/o8" "$W/o8-hardlink"
expect_fail "mkstore: store is the origin" "same file" "$C" mkstore --force "$W/o8" "$W/o8"
expect_fail "mkstore: store is a symlink to the origin" "same file" "$C" mkstore --force "$W/o8-symlink" "$W/o8"
expect_fail "mkstore: store is a hard link to the origin" "same file" "$C" mkstore --force "$W/o8-hardlink" "$W/o8"
expect_fail "mkstore: relative store, absolute origin" "same file" \
  sh -c 'cd "$1" && "$2" mkstore --force o8 "$1/o8"' sh "$W" "$(realpath "$C")"
if LOOP=$(losetup -f --show "$W/o8"); then
  expect_fail "mkstore: store is a loop device over the origin" "backing file" "$C" mkstore --force "$LOOP" "$W/o8"
  expect_fail "mkstore: origin is a loop device over the store" "backing file" "$C" mkstore --force "$W/o8" "$LOOP"
  expect_fail "check: store is a loop device over the origin" "overlap" "$C" check "$LOOP" "$W/o8"
  losetup -d "$LOOP"; LOOP=
else
  bad "losetup -f --show (needed for the loop-device case)"
fi
expect_fail "check: store is the origin" "overlap" "$C" check "$W/o8" "$W/o8"
expect_fail "check: store is a symlink to the origin" "overlap" "$C" check "$W/o8-symlink" "$W/o8"
[ "$(sha256sum <"$W/o8")" = "$sum8" ] && pass "origin untouched by the refused mkstores" || bad "origin changed"

# a store with some metadata in it
expect_ok "mkstore for corruption tests" "$C" mkstore --force --chunk-size 4K "$W/store" "$W/origin"
"$POP" "$W/store" 20 30000 || { bad "populate"; exit 1; }
expect_ok "check populated store" "$C" check "$W/store"
"$C" dump "$W/store" >"$W/dump"
blk() { awk -v k="$1" '$0 ~ "^  "k {print $(NF-0 > 0 ? 0 : 0)}' "$W/dump" >/dev/null; sed -n "s/^  $1 *\([0-9]*\).*/\1/p" "$W/dump"; }
JOURNAL=$(blk journal); HEADER=$(blk "engine header"); TABLE=$(blk "snapshot table")
DBM=$(blk "data bitmap"); MBM=$(blk "tree bitmap"); TREE=$(blk "tree area")
echo "layout: journal $JOURNAL header $HEADER table $TABLE dbitmap $DBM tbitmap $MBM tree $TREE"
cp --sparse=always "$W/store" "$W/pristine"

# flip one bit at byte OFF of block BLK (4 KiB units) of a fresh copy
corrupt() {
  cp --sparse=always "$W/pristine" "$W/c"
  python3 - "$W/c" "$1" "$2" <<'PY'
import sys
path, blk, off = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, 'r+b') as f:
    f.seek(blk * 4096 + off); b = f.read(1)[0]
    f.seek(blk * 4096 + off); f.write(bytes([b ^ 0x10]))
PY
}
corrupt 0 200;            expect_fail "flipped bit in primary superblock" "problem" "$C" check "$W/c"
grep -q "primary copy is invalid" "$W/out" || bad "check names the invalid primary superblock"
corrupt 16 200;           expect_fail "flipped bit in backup superblock" "problem" "$C" check "$W/c"
grep -q "backup copy is invalid" "$W/out" || bad "check names the invalid backup superblock"
corrupt "$HEADER" 40;     expect_fail "flipped bit in engine header" "checksum" "$C" check "$W/c"
expect_fail "dump of a corrupt header" "checksum" "$C" dump "$W/c"
corrupt "$TABLE" 100;     expect_fail "flipped bit in snapshot table" "checksum" "$C" check "$W/c"
corrupt "$DBM" 300;       expect_fail "flipped bit in data bitmap" "checksum" "$C" check "$W/c"
corrupt "$MBM" 70;        expect_fail "flipped bit in tree bitmap" "checksum" "$C" check "$W/c"
corrupt "$TREE" 1000;     expect_fail "flipped bit in a tree node" "problem" "$C" check "$W/c"
grep -q "checksum mismatch" "$W/out" || bad "check names the tree node checksum"
corrupt "$((TREE + 1))" 20; expect_fail "flipped bit in a tree node header" "problem" "$C" check "$W/c"
# both superblocks: wrong magic
cp --sparse=always "$W/pristine" "$W/c"
printf 'XXXXXXXX' | dd of="$W/c" bs=1 seek=0 conv=notrunc status=none
printf 'XXXXXXXX' | dd of="$W/c" bs=1 seek=65536 conv=notrunc status=none
expect_fail "wrong magic" "not a csnap store" "$C" check "$W/c"
expect_fail "dump wrong magic" "not a csnap store" "$C" dump "$W/c"
# truncated
cp --sparse=always "$W/pristine" "$W/c"
truncate -s 48M "$W/c"
expect_fail "truncated store" "truncated" "$C" check "$W/c"
truncate -s 8K "$W/c"
expect_fail "store truncated to 8K" "small" "$C" check "$W/c"
expect_ok "pristine copy still clean" "$C" check "$W/pristine"

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all store CLI checks passed"
