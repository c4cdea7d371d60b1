/*
 * src/store/counters.c - the per-snapshot usage counters (counters.h):
 * accounting of one exception, load/save of the counter blocks, the
 * rebuild from a walk, and the O(snapshots) usage report.
 *
 * Counters change only through cnt_account(); they reach disk in the same
 * transaction as the tree changes they count (cnt_save() from
 * store_commit()), so a power cut recovers both to the same transaction.
 */
#include "src/store/store_int.h"

#include "utils/assert.h"
#include "utils/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LE48_MAX	((1ULL << 48) - 1)

static uint64_t get_le48(const uint8_t *p) { return get_le32(p) | (uint64_t)get_le16(p + 4) << 32; }
static void put_le48(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le16(p + 4, (uint16_t)(v >> 32));
}

void cnt_account(uint64_t *uniq, uint64_t *shared, uint64_t *multi, uint64_t *uncounted,
		 const uint8_t *mask, uint32_t mask_words, uint32_t nslots, int64_t sign,
		 void (*mark)(void *arg, uint32_t bit), void *arg)
{
	uint64_t m[MASK_WORDS_MAX];
	uint32_t users = 0;

	for (uint32_t w = 0; w < mask_words && w < MASK_WORDS_MAX; w++) {
		uint64_t in = nslots >= (w + 1) * 64 ? ~0ULL :
			      nslots > w * 64 ? (1ULL << (nslots - w * 64)) - 1 : 0;
		m[w] = mask_word(mask, w) & in;
		users += (uint32_t)__builtin_popcountll(m[w]);
	}
	if (users == 0) {
		*uncounted += (uint64_t)sign;
		return;
	}
	uint64_t *ctr = users == 1 ? uniq : shared;
	if (users > 1)
		*multi += (uint64_t)sign;
	for (uint32_t w = 0; w < mask_words && w < MASK_WORDS_MAX; w++) {
		while (m[w]) {
			uint32_t b = w * 64 + (uint32_t)__builtin_ctzll(m[w]);
			m[w] &= m[w] - 1;
			ctr[b] += (uint64_t)sign;
			if (mark)
				mark(arg, b);
		}
	}
}

void cnt_from_header(struct store *s, const struct store_header *h)
{
	struct store_counters *c = &s->cnt;

	c->valid = h->cnt_valid;
	c->damaged = false;
	c->nblocks = h->cnt_nblocks;
	c->multi = h->cnt_multi;
	c->uncounted = 0;
	memcpy(c->block, h->cnt_block, sizeof c->block);
	c->dirty = 0;
}

void cnt_to_header(const struct store *s, struct store_header *h)
{
	const struct store_counters *c = &s->cnt;

	/* damaged: keep listing the blocks (a rebuild reuses them) */
	h->cnt_valid = c->valid || c->damaged;
	h->cnt_nblocks = h->cnt_valid ? c->nblocks : 0;
	h->cnt_multi = h->cnt_valid ? c->multi : 0;
	memcpy(h->cnt_block, c->block, sizeof h->cnt_block);
	if (!h->cnt_valid)
		memset(h->cnt_block, 0, sizeof h->cnt_block);
}

static void damaged(struct store *s, const char *why)
{
	s->cnt.valid = false;
	s->cnt.damaged = true;
	snprintf(s->cnt.why, sizeof s->cnt.why, "%s", why);
}

int cnt_load(struct store *s)
{
	struct store_counters *c = &s->cnt;
	uint32_t n = s->st.nslots;

	free(c->uniq);
	free(c->shared);
	c->uniq = calloc(n, sizeof *c->uniq);
	c->shared = calloc(n, sizeof *c->shared);
	if (!c->uniq || !c->shared)
		return err_set(ENOMEM, "out of memory");
	if (!c->valid)
		return 0;
	if (c->nblocks != cnt_blocks_for(n)) {
		damaged(s, "wrong number of counter blocks for the snapshot table");
		return 0;
	}
	for (uint32_t bi = 0; bi < c->nblocks; bi++) {
		struct bm_block *b;
		if (bm_get(s->bm, c->block[bi], META_T_COUNTERS, &b) < 0) {
			char why[128];
			snprintf(why, sizeof why, "counter block %u: %s", bi, err_get());
			damaged(s, why);
			return 0;
		}
		for (uint32_t k = bi * CNT_PER_BLOCK; k < n && k < (bi + 1) * CNT_PER_BLOCK; k++) {
			const uint8_t *p = b->data + CNT_HDR_SIZE + (k % CNT_PER_BLOCK) * CNT_ESIZE;
			c->uniq[k] = get_le48(p + CE_UNIQUE);
			c->shared[k] = get_le48(p + CE_SHARED);
		}
		bm_put(s->bm, b);
	}
	/* the invariants the engine asserts must hold of what it loads, or
	 * a damaged store could trip them: refuse to use such counters */
	uint64_t su = 0, ss = 0;
	bool slot_ok = true;
	for (uint32_t i = 0; i < n; i++) {
		su += c->uniq[i];
		ss += c->shared[i];
		slot_ok &= s->st.slot[i].id || (c->uniq[i] == 0 && c->shared[i] == 0);
		slot_ok &= c->uniq[i] <= s->tree.count && c->shared[i] <= s->tree.count;
	}
	if (!slot_ok || su + c->multi != s->tree.count || ss < 2 * c->multi) {
		char why[128];
		snprintf(why, sizeof why, "counters do not add up (unique %llu + shared exceptions %llu, tree %llu)",
			 (unsigned long long)su, (unsigned long long)c->multi,
			 (unsigned long long)s->tree.count);
		damaged(s, why);
	}
	return 0;
}

void cnt_free(struct store *s)
{
	free(s->cnt.uniq);
	free(s->cnt.shared);
	s->cnt.uniq = s->cnt.shared = NULL;
}

static void mark_dirty(void *arg, uint32_t bit)
{
	struct store_counters *c = arg;
	c->dirty |= 1u << (bit / CNT_PER_BLOCK);
}

void cnt_exception(struct store *s, const uint8_t *mask, int64_t n)
{
	struct store_counters *c = &s->cnt;

	if (!c->valid)
		return;
	uint64_t multi0 = c->multi;
	cnt_account(c->uniq, c->shared, &c->multi, &c->uncounted, mask, s->mask_words, s->st.nslots,
		    n, mark_dirty, c);
	if (c->multi != multi0)
		s->header_dirty = true;
}

/* The one bit of MASK (le64 words) other than BIT, below NSLOTS.  */
static uint32_t other_bit(const uint8_t *mask, uint32_t mask_words, uint32_t nslots, uint32_t bit)
{
	for (uint32_t w = 0; w < mask_words; w++) {
		uint64_t m = mask_word(mask, w);
		if (w == bit / 64)
			m &= ~(1ULL << (bit % 64));
		if (m)
			return w * 64 + (uint32_t)__builtin_ctzll(m);
	}
	return nslots;
}

void cnt_bit(struct store *s, const uint8_t *mask, uint32_t bit, bool set)
{
	struct store_counters *c = &s->cnt;
	uint32_t nslots = s->st.nslots, users = 0;

	if (!c->valid)
		return;
	for (uint32_t w = 0; w < s->mask_words; w++) {
		uint64_t in = nslots >= (w + 1) * 64 ? ~0ULL :
			      nslots > w * 64 ? (1ULL << (nslots - w * 64)) - 1 : 0;
		users += (uint32_t)__builtin_popcountll(mask_word(mask, w) & in);
	}
	/* USERS: slots in the mask with BIT set; the general path for what
	 * the shortcut below does not cover (an exception going between no
	 * slot and {BIT}, a bit past the table: corrupt trees only) */
	if (bit >= nslots || !mask_test(mask, bit) || users < 2) {
		uint8_t without[CSNAP_MAX_MASK_BYTES];
		memcpy(without, mask, s->mask_words * 8);
		without[bit / 8] &= (uint8_t)~(1u << (bit % 8));
		cnt_exception(s, set ? without : mask, -1);
		cnt_exception(s, set ? mask : without, +1);
		return;
	}
	/* the other slots: small >= 1 of them, before and after */
	uint32_t small = users - 1;
	int64_t d = set ? 1 : -1;
	mark_dirty(c, bit);
	c->shared[bit] += (uint64_t)d;
	if (small == 1) {
		/* the other slot goes from unique to shared (or back) */
		uint32_t o = other_bit(mask, s->mask_words, nslots, bit);
		CSNAP_ASSERT(o < nslots);	/* users counted it */
		c->uniq[o] -= (uint64_t)d;
		c->shared[o] += (uint64_t)d;
		c->multi += (uint64_t)d;
		mark_dirty(c, o);
		s->header_dirty = true;
	}
}

int cnt_save(struct store *s)
{
	struct store_counters *c = &s->cnt;

	bool below_zero = false;
	for (uint32_t i = 0; c->valid && i < c->nblocks; i++) {
		if (!(c->dirty & (1u << i)))
			continue;
		struct bm_block *b;
		int ret = bm_get(s->bm, c->block[i], META_T_COUNTERS, &b);
		if (ret < 0)
			return err_prefix(-ret, "usage counters");
		bm_dirty(s->bm, b);
		uint8_t *p = b->data + CNT_HDR_SIZE;
		memset(p, 0, CSNAP_META_BLOCK_SIZE - CNT_HDR_SIZE);
		for (uint32_t k = i * CNT_PER_BLOCK; k < s->st.nslots && k < (i + 1) * CNT_PER_BLOCK; k++) {
			/* A counter counts exceptions, each its own data chunk:
			 * far below 2^48.  One above it went below zero: the
			 * loaded counters added up but were not the tree's (a
			 * damaged store).  Saved as 2^48 - 1, more than any tree
			 * holds, so the next load refuses them too.  */
			uint64_t u = c->uniq[k], sh = c->shared[k];
			below_zero |= u > LE48_MAX || sh > LE48_MAX;
			put_le48(p + (k % CNT_PER_BLOCK) * CNT_ESIZE + CE_UNIQUE, u > LE48_MAX ? LE48_MAX : u);
			put_le48(p + (k % CNT_PER_BLOCK) * CNT_ESIZE + CE_SHARED, sh > LE48_MAX ? LE48_MAX : sh);
		}
		bm_put(s->bm, b);
	}
	c->dirty = 0;
	if (below_zero)
		damaged(s, "a counter went below zero: the counters did not match the tree");
	return 0;
}

void cnt_assert(const struct store *s)
{
#ifdef CSNAP_DEBUG
	const struct store_counters *c = &s->cnt;
	if (!c->valid)
		return;
	uint64_t su = 0;
	for (uint32_t i = 0; i < s->st.nslots; i++)
		su += c->uniq[i];
	/* every exception is counted once: unique to one slot, shared, or
	 * (corrupt tree only) uncounted; the load refused counters that did
	 * not add up, and every tree insert and delete goes through
	 * cnt_exception() with the same mask (arithmetic modulo 2^64) */
	CSNAP_ASSERT(su + c->multi + c->uncounted == s->tree.count);
#else
	(void)s;
#endif
}

/* ---- rebuild and report ------------------------------------------------- */

/* Counts every exception's mask into UNIQ/SHARED/MULTI/UNCOUNTED (arrays
 * of max_snapshots, all zeroed by the caller): rebuild and verify use it. */
int store_counters_walk(struct store *s, uint64_t *uniq, uint64_t *shared, uint64_t *multi,
			uint64_t *uncounted)
{
	struct btree_cursor c;
	int ret = btree_seek(&s->tree, 0, 0, &c);

	while (ret >= 0 && c.valid) {
		cnt_account(uniq, shared, multi, uncounted, btree_entry(&s->tree, &c) + BE_MASK,
			    s->mask_words, s->st.nslots, +1, NULL, NULL);
		ret = btree_next(&s->tree, &c);
	}
	btree_cursor_put(&s->tree, &c);
	return ret < 0 ? ret : 0;
}

int store_counters_rebuild(struct store *s)
{
	struct store_counters *c = &s->cnt;
	uint32_t n = s->st.nslots, nb = cnt_blocks_for(n);
	int ret;

	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	memset(c->uniq, 0, n * sizeof *c->uniq);
	memset(c->shared, 0, n * sizeof *c->shared);
	c->multi = c->uncounted = 0;
	ret = store_counters_walk(s, c->uniq, c->shared, &c->multi, &c->uncounted);
	if (ret < 0)
		return err_prefix(-ret, "rebuilding usage counters");
	/* blocks: the ones the header lists (valid or damaged counters: a
	 * rebuild runs again after a cut), else new ones from the tree area */
	bool listed = c->valid || c->damaged, reuse = listed && c->nblocks == nb;
	if (!reuse && listed) {
		for (uint32_t i = 0; i < c->nblocks && i < CNT_BLOCKS_MAX; i++)
			if ((ret = sm_free(s->msm, c->block[i] - s->sb.engine.meta_start)) < 0)
				return ret;
		memset(c->block, 0, sizeof c->block);
	}
	for (uint32_t i = 0; i < nb; i++) {
		uint64_t u = 0;
		if (!reuse && (ret = sm_alloc(s->msm, &u)) < 0)
			return err_prefix(-ret, "usage counters: no free block in the tree area");
		if (!reuse)
			c->block[i] = s->sb.engine.meta_start + u;
		struct bm_block *b;
		if ((ret = bm_get_new(s->bm, c->block[i], META_T_COUNTERS, &b)) < 0)
			return ret;
		bm_put(s->bm, b);
	}
	c->nblocks = nb;
	c->valid = true;
	c->damaged = false;
	c->dirty = (1u << nb) - 1;
	s->header_dirty = true;
	return 0;
}

long store_counters_verify(struct store *s, FILE *report)
{
	uint32_t n = s->st.nslots;
	uint64_t *u = calloc(n, sizeof *u), *sh = calloc(n, sizeof *sh), multi = 0, uncounted = 0;
	long bad = 0;
	int ret = u && sh ? store_counters_walk(s, u, sh, &multi, &uncounted)
			  : err_set(ENOMEM, "out of memory");

	for (uint32_t i = 0; ret >= 0 && s->cnt.valid && i < n; i++)
		if (u[i] != s->cnt.uniq[i] || sh[i] != s->cnt.shared[i]) {
			bad++;
			if (report)
				fprintf(report, "usage counters: slot %u records %llu unique, %llu shared; the tree holds %llu, %llu\n",
					i, (unsigned long long)s->cnt.uniq[i], (unsigned long long)s->cnt.shared[i],
					(unsigned long long)u[i], (unsigned long long)sh[i]);
		}
	if (ret >= 0 && s->cnt.valid && multi != s->cnt.multi) {
		bad++;
		if (report)
			fprintf(report, "usage counters: %llu shared exceptions recorded, the tree holds %llu\n",
				(unsigned long long)s->cnt.multi, (unsigned long long)multi);
	}
	free(u);
	free(sh);
	return ret < 0 ? ret : bad;
}

bool store_counters_valid(const struct store *s) { return s->cnt.valid; }

const char *store_counters_state(const struct store *s)
{
	if (s->cnt.valid)
		return "valid";
	return s->cnt.damaged ? s->cnt.why : "absent";
}

int store_usage(struct store *s, struct store_usage *out, unsigned max)
{
	struct store_snapshot *list = calloc(s->st.nslots, sizeof *list);
	int n = list ? store_snapshot_list(s, list, s->st.nslots) : err_set(ENOMEM, "out of memory");
	unsigned k = 0;

	for (int i = 0; i < n; i++) {
		if (!(list[i].flags & STORE_SNAP_LIVE))
			continue;
		if (k < max)
			out[k] = (struct store_usage){
				.id = list[i].id, .known = s->cnt.valid,
				.unique = s->cnt.valid ? s->cnt.uniq[list[i].bit] : 0,
				.shared = s->cnt.valid ? s->cnt.shared[list[i].bit] : 0,
			};
		k++;
	}
	free(list);
	return n < 0 ? n : (int)k;
}
