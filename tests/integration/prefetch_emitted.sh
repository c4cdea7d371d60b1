#!/usr/bin/env bash
# tests/integration/prefetch_emitted.sh - the b-tree lookup's prefetches
# are really in the built object.  GCC 12 finds a static function whose
# only effects are __builtin_prefetch "pure" and drops every call to it:
# src/store/btree_peek.c's prefetch_guess() was compiled to nothing that
# way until 2026-12-01 (lookups then paid two cache misses in a row per
# leaf; bench/README.md).  Nothing else notices, so this looks for the
# prefetch instructions in btree_peek.o: at least one per call site of
# prefetch_guess (two in the descent, one in the finger path), and the
# finger prefetch at the top of store_snapshot_read (engine.o).
# san: yes
. "$(dirname "$0")/../functions.sh"

obj=$build/obj/src/store/btree_peek.o
[ -f "$obj" ] || fail "$obj not built"
requires objdump
case $(uname -m) in
  x86_64) insn='prefetch(t0|t1|t2|nta|w)?' ;;
  aarch64) insn='prfm' ;;
  *) echo "SKIP: no prefetch instruction known for $(uname -m)"; exit 77 ;;
esac
sites=$(grep -c 'prefetch_guess(' "$src/src/store/btree_peek.c")
sites=$((sites - 1))	# one of them is the definition
[ "$sites" -ge 3 ] || fail "expected 3 or more calls of prefetch_guess in btree_peek.c, found $sites"
n=$(objdump -d "$obj" | grep -E -c "[[:space:]]$insn[[:space:]]") || true
[ "$n" -ge "$sites" ] ||
  fail "btree_peek.o holds $n prefetch instructions for $sites prefetch_guess calls (the compiler dropped them?)"
# store_snapshot_read prefetches the finger before its checks
eobj=$build/obj/src/store/engine.o
[ -f "$eobj" ] || fail "$eobj not built"
m=$(objdump -d "$eobj" | awk '/<store_snapshot_read>:/,/^$/' | grep -E -c "[[:space:]]$insn[[:space:]]") || true
[ "$m" -ge 1 ] || fail "store_snapshot_read in engine.o holds no prefetch instruction"
echo "ok: $n prefetch instructions for $sites prefetch_guess calls, $m in store_snapshot_read"
