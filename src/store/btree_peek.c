/*
 * src/store/btree_peek.c - the b-tree's lookup fast path (btree_peek):
 * through cached blocks only, pinning nothing, with the misses of a
 * descent overlapped (prefetches aimed by interpolation) and, for most
 * lookups, no descent at all (fingers).
 *
 * Fingers: a direct-mapped table, sized from the block cache (one 64-byte
 * entry per cached block: 1/64 of the cache's memory; window W in entry
 * W mod size, so up to 64 origin chunks per cached block never collide),
 * remembers for a window of 2^FINGER_SHIFT origin chunks the leaves lookups last ended in:
 * two, since a window usually straddles two leaves (one covering its
 * start, one promised a range starting inside it).  Per leaf: its block
 * number, where its data was cached, the origin range its parent promised
 * (to aim the search) and its entry count (to aim the prefetch).  A finger
 * is only a guess and is trusted only as far as the leaf itself proves it:
 *  - the buffer must still hold that block (its header names it) and be a
 *    sane leaf, like any cached node btree_peek reads;
 *  - the block must still be a leaf of the tree: a node stops being one
 *    only when it is freed (t->gen moves) or when the cache takes content
 *    its owner did not write (rollback, replay: bm_epoch moves), and a
 *    finger taken before either moved is ignored;
 *  - the key must fall strictly inside the leaf: an entry below it and one
 *    at or above it both in this leaf.  Leaves hold disjoint, ordered key
 *    ranges, so then the key belongs in this leaf and nowhere else, which
 *    is exactly what a descent from the root would have found.
 * Otherwise the lookup descends from the root and updates the finger.
 */
#include "src/store/btree.h"
#include "src/store/btree_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define FINGER_SHIFT	6	/* origin chunks per window: 64 */
#define FINGER_HUGE	((size_t)2 << 20)
#define FINGER_HINT	((uintptr_t)META_BLOCK_SIZE - 1)

struct finger_leaf {
	uintptr_t data;		/* cached data (4096-aligned) | entry count */
	uint64_t range0;	/* the origin range its parent promised: */
	uint32_t span;		/* [range0, range0 + span); span 0: unknown */
	uint32_t blk;		/* block number - meta_start */
};

struct btree_finger {
	uint64_t win;		/* window + 1; 0 = empty */
	uint64_t stamp;		/* stamp() when taken */
	struct finger_leaf leaf[2];	/* [0] covers the window's start */
};

void btree_release(struct btree *t)
{
	free(t->fingers);
	t->fingers = NULL;
	t->finger_mask = 0;
}

/* Moves whenever a finger may have gone stale: both counts only grow, so
 * an equal sum means neither moved.  */
static inline uint64_t stamp(const struct btree *t)
{
	return t->gen + bm_epoch(t->bm);
}

static struct btree_finger *finger_of(struct btree *t, uint64_t o)
{
	/* consecutive windows in consecutive entries, no hashing: an origin
	 * of up to 64 chunks per cached block never has two windows meet in
	 * one entry */
	return &t->fingers[(size_t)(o >> FINGER_SHIFT) & t->finger_mask];
}

/* One entry per cached block (at least 1024), allocated on the first
 * lookup; no memory, no fingers.  */
static void fingers_alloc(struct btree *t)
{
	struct bm_stats st;
	size_t n = 1024;

	bm_get_stats(t->bm, &st);
	while (n * 2 <= st.capacity)
		n *= 2;
	size_t bytes = n * sizeof *t->fingers;
	void *p;
	/* probed at random: huge pages where the kernel gives them (a TLB
	 * miss costs as much as the cache miss) */
	if (posix_memalign(&p, bytes >= FINGER_HUGE ? FINGER_HUGE : 64, bytes))
		return;
	if (bytes >= FINGER_HUGE)
		madvise(p, bytes, MADV_HUGEPAGE);	/* a hint; failure is fine */
	memset(p, 0, bytes);
	t->fingers = p;
	t->finger_mask = n - 1;
}

static inline uint32_t bm_block_type_raw(const uint8_t *d) { return get_le32(d + META_TYPE); }

/* Start loading the line the interpolated search (search_hint with RANGE)
 * will probe first in node D while its header line (entry count) loads:
 * two cache misses overlap instead of following one another.  The count
 * is not known yet: HINT is the one the parent's pointer cache remembered
 * (exact unless the node changed since), else the node is guessed full.
 * An internal node's search starts at entry 1.
 * always_inline: GCC 12 finds a function whose only effects are
 * prefetches "pure" and drops every call to it: as a separate function
 * this never prefetched anything (no prefetcht0 in the binary).  */
static inline __attribute__((always_inline)) void prefetch_guess(const uint8_t *d, bool internal, uint32_t es, uint32_t cap,
				  unsigned hint, uint64_t o, const uint64_t *range)
{
	uint32_t n = hint && hint <= cap ? hint : cap;

	if (internal) {
		d += es;
		n = n > 1 ? n - 1 : 1;
	}
	if (range[1] > range[0] && o >= range[0] && o < range[1]) {
		uint32_t g = (uint32_t)((unsigned __int128)(o - range[0]) * n / (range[1] - range[0]));
		const uint8_t *e = d + BTREE_NODE_HDR + (size_t)g * es;
		__builtin_prefetch(e);
		__builtin_prefetch(e + es - 1);	/* the entry may straddle a line */
		if (g)
			__builtin_prefetch(e - es);	/* the search checks the entry before */
	}
}

/* The same with the origin range [range[0], range[1]) of the node, and
 * narrowing RANGE to the chosen child's.  */
static uint32_t int_search_range(uint8_t *d, uint64_t o, uint64_t s, uint64_t *range)
{
	uint32_t nr = nnr(d), i;

	i = nr <= 1 ? 0 : btree_search_hint(ient(d, 1), BTREE_INT_ESIZE, nr - 1, o, s, true, range);
	if (i > 0)
		range[0] = be_origin(ient(d, i));
	if (i + 1 < nr)
		range[1] = be_origin(ient(d, i + 1));
	return i;
}

/* The descent from the root (btree_peek without a finger), which leaves
 * in RANGE the origin range the leaf's parent promised for it and in
 * *BLK the leaf's block number.  */
static const uint8_t *descend(struct btree *t, uint64_t o, uint64_t s,
			      uint32_t *idx, uint32_t *nr, uint64_t *range, uint64_t *blkp)
{
	uint64_t blk = t->root;

	range[0] = range[1] = 0;	/* unknown at the root */
	if (t->height < 1 || t->height > BTREE_MAX_DEPTH)
		return NULL;
	uint8_t *nd = (uint8_t *)bm_peek_raw(t->bm, blk);
	if (!nd)
		return NULL;
	for (uint32_t level = t->height - 1; level > 0; level--) {
		if (bm_block_type_raw(nd) != META_T_INTERNAL || nlevel(nd) != level ||
		    !nnr(nd) || nnr(nd) > BTREE_INT_CAP)
			return NULL;
		if (level == t->height - 1)
			range[1] = UINT64_MAX;	/* root: unbounded above */
		uint32_t i = int_search_range(nd, o, s, range);
		if (range[1] == UINT64_MAX)
			range[0] = range[1] = 0;	/* no usable bound yet */
		blk = be_child(ient(nd, i));
		bool cint = level > 1;
		uint32_t ces = cint ? BTREE_INT_ESIZE : t->esize;
		uint32_t ccap = cint ? BTREE_INT_CAP : t->leaf_cap;
		/* the child's data straight from this node's pointer cache,
		 * skipping the block table (bm_child_*): prefetch through the
		 * guess while its header, which confirms it, loads */
		unsigned hint;
		uint8_t *cd = (uint8_t *)bm_child_guess_hint(t->bm, nd, i, &hint);
		if (cd) {
			prefetch_guess(cd, cint, ces, ccap, hint, o, range);
			if (!bm_child_confirm(t->bm, cd, blk))
				cd = NULL;
		}
		if (!cd) {
			cd = (uint8_t *)bm_peek_raw(t->bm, blk);
			if (!cd)
				return NULL;
			hint = 0;
			prefetch_guess(cd, cint, ces, ccap, hint, o, range);
		}
		/* keep the child's entry count for the next descent's prefetch
		 * (a hint only: the checks and the search below use the node) */
		if (hint != nnr(cd) && nnr(cd) < BM_CHILD_HINT_MAX)
			bm_child_remember_hint(t->bm, nd, i, BTREE_INT_CAP, cd, nnr(cd));
		nd = cd;
	}
	uint8_t *lf = nd;
	if (bm_block_type_raw(lf) != META_T_LEAF || nlevel(lf) != 0 || nnr(lf) > t->leaf_cap)
		return NULL;
	*blkp = blk;
	*nr = nnr(lf);
	*idx = btree_search_hint(lent(t, lf, 0), t->esize, *nr, o, s, false, range);
	return lf;
}


/* The leaf of finger F for key (O, S) if it proves the key belongs in it
 * (see the top of the file), else NULL.  */
static const uint8_t *finger_try(struct btree *t, const struct btree_finger *f,
				 uint64_t o, uint64_t s, uint32_t *idx, uint32_t *nr)
{
	const struct finger_leaf *fl = &f->leaf[f->leaf[1].data && o >= f->leaf[1].range0];

	if (!fl->data)
		return NULL;
	const uint8_t *lf = (const uint8_t *)(fl->data & ~FINGER_HINT);
	uint64_t range[2] = { fl->range0, fl->range0 + fl->span };
	prefetch_guess(lf, false, t->esize, t->leaf_cap, (unsigned)(fl->data & FINGER_HINT), o, range);
	if (!bm_child_confirm(t->bm, lf, t->meta_start + fl->blk) ||
	    bm_block_type_raw(lf) != META_T_LEAF || nlevel(lf) != 0 || nnr(lf) > t->leaf_cap)
		return NULL;
	uint32_t n = nnr(lf);
	uint32_t i = btree_search_hint(lf + BTREE_NODE_HDR, t->esize, n, o, s, false,
				       fl->span ? range : NULL);
	if (i == 0 || i >= n)
		return NULL;	/* not strictly inside: the key may belong elsewhere */
	*idx = i;
	*nr = n;
	return lf;
}

/* Remember leaf LF (block BLK, promised RANGE, NR entries) for O's window. */
static void finger_fill(struct btree *t, struct btree_finger *f, uint64_t o,
			const uint8_t *lf, uint64_t blk, const uint64_t *range, uint32_t nr)
{
	uint64_t win = (o >> FINGER_SHIFT) + 1;

	if (blk - t->meta_start > UINT32_MAX || nr > FINGER_HINT)
		return;
	if (f->win != win || f->stamp != stamp(t))
		*f = (struct btree_finger){ .win = win, .stamp = stamp(t) };
	bool known = range[1] > range[0] && range[1] - range[0] <= UINT32_MAX;
	/* a leaf promised keys from inside the window is the window's upper
	 * leaf; one from below its start (or unknown) covers the start */
	bool upper = known && range[0] > (o >> FINGER_SHIFT) << FINGER_SHIFT;
	f->leaf[upper] = (struct finger_leaf){ (uintptr_t)lf | nr, known ? range[0] : 0,
					       known ? (uint32_t)(range[1] - range[0]) : 0,
					       (uint32_t)(blk - t->meta_start) };
}

const void *btree_peek_first_line(const struct btree *t, uint64_t o)
{
	return t->fingers ? &t->fingers[(size_t)(o >> FINGER_SHIFT) & t->finger_mask] : NULL;
}

const uint8_t *btree_peek(struct btree *t, uint64_t o, uint64_t s,
			  uint32_t *idx, uint32_t *nr)
{
	uint64_t range[2], blk;
	struct btree_finger *f = NULL;

	if (!t->fingers)
		fingers_alloc(t);
	if (t->fingers) {
		f = finger_of(t, o);
		if (f->win == (o >> FINGER_SHIFT) + 1 && f->stamp == stamp(t)) {
			const uint8_t *lf = finger_try(t, f, o, s, idx, nr);
			if (lf)
				return lf;
		}
	}
	const uint8_t *lf = descend(t, o, s, idx, nr, range, &blk);
	if (lf && f)
		finger_fill(t, f, o, lf, blk, range, *nr);
	return lf;
}
