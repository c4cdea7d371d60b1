/*
 * src/store/spacemap.c - bitmap allocator with deferred frees.
 *
 * Invariants: free[i] equals the number of clear bits of bitmap block i
 * within range; bits past nbits are always set; a queued free keeps its
 * bit set until sm_apply_frees().  CSNAP_ASSERT checks the counts against
 * each bit changed and that no unit past nbits is handed out.
 */
#include "src/store/spacemap.h"

#include "utils/assert.h"
#include "utils/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct spacemap {
	struct bm *bm;
	uint32_t type;
	uint64_t start, nbits, nblocks;
	uint32_t *free;		/* per bitmap block */
	uint64_t total_free;
	uint64_t hint;		/* unit to start searching from */
	uint64_t *pending;
	size_t npending, cap;
};

static inline uint8_t *bits(struct bm_block *b) { return b->data + SM_HDR_SIZE; }

int sm_format(struct bm *bm, uint32_t type, uint64_t start, uint64_t nbits,
	      int (*batch)(void *arg), void *arg)
{
	uint64_t nblocks = sm_blocks_for(nbits);

	for (uint64_t i = 0; i < nblocks; i++) {
		struct bm_block *b;
		int ret = bm_get_new(bm, start + i, type, &b);
		if (ret < 0)
			return ret;
		uint64_t first = i * SM_BITS_PER_BLOCK;
		for (uint64_t u = nbits; u < first + SM_BITS_PER_BLOCK; u++)
			if (u >= first)
				bits(b)[(u - first) / 8] |= (uint8_t)(1u << ((u - first) % 8));
		bm_put(bm, b);
		if (batch && (i + 1) % 512 == 0 && (ret = batch(arg)) < 0)
			return ret;
	}
	return 0;
}

int sm_open(struct bm *bm, uint32_t type, uint64_t start, uint64_t nbits,
	    struct spacemap **out)
{
	struct spacemap *sm = calloc(1, sizeof *sm);

	if (!sm)
		return err_set(ENOMEM, "out of memory");
	sm->bm = bm;
	sm->type = type;
	sm->start = start;
	sm->nbits = nbits;
	sm->nblocks = sm_blocks_for(nbits);
	sm->free = calloc(sm->nblocks ? sm->nblocks : 1, sizeof *sm->free);
	if (!sm->free) {
		free(sm);
		return err_set(ENOMEM, "out of memory");
	}
	for (uint64_t i = 0; i < sm->nblocks; i++) {
		struct bm_block *b;
		int ret = bm_get(bm, start + i, type, &b);
		if (ret < 0) {
			sm_close(sm);
			return ret;
		}
		uint32_t used = 0;
		const uint8_t *p = bits(b);
		for (size_t w = 0; w < SM_BITS_PER_BLOCK / 64; w++)
			used += (uint32_t)__builtin_popcountll(get_le64(p + 8 * w));
		bm_put(bm, b);
		sm->free[i] = SM_BITS_PER_BLOCK - used;
		sm->total_free += sm->free[i];
	}
	*out = sm;
	return 0;
}

void sm_close(struct spacemap *sm)
{
	if (!sm)
		return;
	free(sm->free);
	free(sm->pending);
	free(sm);
}

uint64_t sm_free_count(const struct spacemap *sm) { return sm->total_free; }
uint64_t sm_nbits(const struct spacemap *sm) { return sm->nbits; }
uint64_t sm_pending_frees(const struct spacemap *sm) { return sm->npending; }

static int set_bit(struct spacemap *sm, uint64_t unit, bool on)
{
	uint64_t blk = unit / SM_BITS_PER_BLOCK, bit = unit % SM_BITS_PER_BLOCK;
	struct bm_block *b;
	int ret = bm_get(sm->bm, sm->start + blk, sm->type, &b);

	if (ret < 0)
		return ret;
	uint8_t *byte = bits(b) + bit / 8, m = (uint8_t)(1u << (bit % 8));
	if (!!(*byte & m) == on) {
		bm_put(sm->bm, b);
		return err_set(EEXIST, "space map: unit %llu already %s",
			       (unsigned long long)unit, on ? "in use" : "free");
	}
	/* the counts match the bits: a set bit was counted free, a clear one used */
	CSNAP_ASSERT(on ? sm->free[blk] > 0 && sm->total_free > 0 : sm->free[blk] < SM_BITS_PER_BLOCK);
	bm_dirty(sm->bm, b);
	if (on)
		*byte |= m;
	else
		*byte &= (uint8_t)~m;
	bm_put(sm->bm, b);
	if (on) {
		sm->free[blk]--;
		sm->total_free--;
	} else {
		sm->free[blk]++;
		sm->total_free++;
	}
	return 0;
}

int sm_take(struct spacemap *sm, uint64_t unit)
{
	if (unit >= sm->nbits)
		return err_set(EINVAL, "space map: unit %llu out of range", (unsigned long long)unit);
	return set_bit(sm, unit, true);
}

int sm_test(struct spacemap *sm, uint64_t unit, bool *used)
{
	struct bm_block *b;
	uint64_t bit = unit % SM_BITS_PER_BLOCK;
	int ret;

	if (unit >= sm->nbits)
		return err_set(EINVAL, "space map: unit %llu out of range", (unsigned long long)unit);
	ret = bm_get(sm->bm, sm->start + unit / SM_BITS_PER_BLOCK, sm->type, &b);
	if (ret < 0)
		return ret;
	*used = bits(b)[bit / 8] & (1u << (bit % 8));
	bm_put(sm->bm, b);
	return 0;
}

/* First clear bit at or after FROM in block BLK, or -1.  */
static int64_t find_clear(struct bm_block *b, uint64_t from)
{
	const uint8_t *p = bits(b);

	for (uint64_t w = from / 64; w < SM_BITS_PER_BLOCK / 64; w++) {
		uint64_t v = ~get_le64(p + 8 * w);
		if (w == from / 64)
			v &= ~0ULL << (from % 64);
		if (v)
			return (int64_t)(w * 64 + (uint64_t)__builtin_ctzll(v));
	}
	return -1;
}

int sm_alloc(struct spacemap *sm, uint64_t *out)
{
	if (sm->total_free == 0)
		return err_set(ENOSPC, "no free space");
	uint64_t hb = sm->hint / SM_BITS_PER_BLOCK;
	for (uint64_t k = 0; k <= sm->nblocks; k++) {
		uint64_t blk = (hb + k) % sm->nblocks;
		if (!sm->free[blk])
			continue;
		uint64_t from = (k == 0) ? sm->hint % SM_BITS_PER_BLOCK : 0;
		struct bm_block *b;
		int ret = bm_get(sm->bm, sm->start + blk, sm->type, &b);
		if (ret < 0)
			return ret;
		int64_t bit = find_clear(b, from);
		bm_put(sm->bm, b);
		if (bit < 0)
			continue;	/* free ones are before the hint: next round */
		uint64_t unit = blk * SM_BITS_PER_BLOCK + (uint64_t)bit;
		/* bits past nbits are always set: a clear one is a damaged
		 * bitmap block (its checksum can be right), not ours to hand out */
		if (unit >= sm->nbits)
			return err_set(EIO, "space map: block %llu marks unit %llu free, past the "
				       "last unit %llu (damaged bitmap)",
				       (unsigned long long)(sm->start + blk), (unsigned long long)unit,
				       (unsigned long long)sm->nbits - 1);
		ret = set_bit(sm, unit, true);
		if (ret < 0)
			return ret;
		sm->hint = unit + 1 < sm->nbits ? unit + 1 : 0;
		*out = unit;
		return 0;
	}
	return err_set(EIO, "space map: free count says %llu free but no clear bit found",
		       (unsigned long long)sm->total_free);
}

int sm_free(struct spacemap *sm, uint64_t unit)
{
	if (unit >= sm->nbits)
		return err_set(EINVAL, "space map: freeing unit %llu out of range",
			       (unsigned long long)unit);
	if (sm->npending == sm->cap) {
		size_t nc = sm->cap ? sm->cap * 2 : 256;
		uint64_t *np = realloc(sm->pending, nc * sizeof *np);
		if (!np)
			return err_set(ENOMEM, "out of memory");
		sm->pending = np;
		sm->cap = nc;
	}
	sm->pending[sm->npending++] = unit;
	return 0;
}

int sm_apply_frees(struct spacemap *sm)
{
	while (sm->npending) {
		int ret = set_bit(sm, sm->pending[sm->npending - 1], false);
		if (ret < 0)
			return ret;
		sm->npending--;
	}
	return 0;
}
