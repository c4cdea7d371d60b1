/*
 * src/store/counters.h - per-snapshot usage counters, kept up to date by
 * the engine in the same transaction as the exceptions they count, so
 * `csnap status` and `snapshot list` answer in O(snapshots), never by
 * walking the tree.
 *
 * Definitions (over the share masks as stored, docs/store.md):
 *   unique[b]  exceptions whose mask is exactly {b};
 *   shared[b]  exceptions whose mask holds b and at least one other bit;
 *   multi      exceptions whose mask holds two bits or more.
 * Invariants, checked on load (else the counters are not used):
 *   sum(unique) + multi == exceptions in the tree;
 *   sum(shared) >= 2 * multi;
 * the first is asserted at every commit (with the in-memory count of
 * exceptions that name no slot, which only a corrupt tree has).
 * Every mask change - insert, bit cleared, exception deleted - goes
 * through cnt_exception() (remove the old mask's contribution, add the new
 * one): O(bits in the mask), independent of the number of exceptions.
 *
 * States: valid (maintained), absent (a store made before counters
 * existed: header fields all zero; nothing maintained, usage "unknown"
 * until store_counters_rebuild()), damaged (the header lists counter
 * blocks that did not load or do not add up: treated like absent, the
 * header keeps its block list so a rebuild reuses the blocks).
 * Layout (HDR_CNT_*, CNT_*, CE_*) in format.h.
 */
#ifndef CSNAP_STORE_COUNTERS_H
#define CSNAP_STORE_COUNTERS_H

#include "src/store/format.h"

#include <stdbool.h>
#include <stdint.h>

struct store;
struct store_header;

struct store_counters {
	bool valid;		/* maintained and exact */
	bool damaged;		/* listed in the header but unusable */
	uint32_t nblocks;
	uint64_t block[CNT_BLOCKS_MAX];
	uint64_t multi;
	uint64_t uncounted;	/* in memory: exceptions changed since the load
				 * that count for no slot (cnt_account) */
	uint64_t *uniq, *shared;	/* [max_snapshots], by slot */
	uint32_t dirty;		/* bit i: block i changed in this transaction */
	char why[128];		/* why damaged */
};

static inline uint32_t cnt_blocks_for(uint32_t nslots)
{ return (nslots + CNT_PER_BLOCK - 1) / CNT_PER_BLOCK; }

/* Adds (SIGN +1) or removes (-1) the contribution of one exception with
 * MASK (MASK_WORDS le64 words) to UNIQ/SHARED/MULTI ([NSLOTS] arrays).
 * Bits >= NSLOTS count for nothing; an exception with no bit below NSLOTS
 * (only a corrupt tree has one: check says so) goes to *UNCOUNTED instead,
 * so that sum(unique) + multi + uncounted is always the exceptions seen.
 * Calls MARK(ARG, bit) for each bit whose counters change, if MARK is not
 * NULL.  The one definition of what counts where: the engine and check
 * both use it.  */
void cnt_account(uint64_t *uniq, uint64_t *shared, uint64_t *multi, uint64_t *uncounted,
		 const uint8_t *mask, uint32_t mask_words, uint32_t nslots, int64_t sign,
		 void (*mark)(void *arg, uint32_t bit), void *arg);

/* Engine side (struct store is store_int.h's).  */
void cnt_from_header(struct store *s, const struct store_header *h);
void cnt_to_header(const struct store *s, struct store_header *h);
/* Loads the counter blocks the header lists (after the header and the
 * snapshot table).  A block that fails validation or counts that do not
 * add up leave the counters damaged, not the open failed.  -ENOMEM only. */
int cnt_load(struct store *s);
void cnt_free(struct store *s);
/* N exceptions with MASK enter (N > 0) or leave (N < 0) the tree:
 * O(bits in the mask), once for a run of equal masks.  */
void cnt_exception(struct store *s, const uint8_t *mask, int64_t n);
/* BIT was just set (SET) in, or is about to be cleared from, the mask of
 * one exception: MASK is the mask with BIT set.  O(mask words): only BIT's
 * counters and, when the exception goes from one slot to two or back, the
 * other slot's change.  */
void cnt_bit(struct store *s, const uint8_t *mask, uint32_t bit, bool set);
/* Writes changed counter blocks into the open transaction (store_commit). */
int cnt_save(struct store *s);
/* Checks, before a commit saves them, that the counters add up to the
 * tree's exceptions; marks them damaged when not (a damaged tree).  */
void cnt_check_sum(struct store *s);

#endif
