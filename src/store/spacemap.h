/*
 * src/store/spacemap.h - bitmap allocator over a range of units (store data
 * chunks, or blocks of the b-tree node area), kept in checksummed bitmap
 * blocks that change through the journal like any other metadata.
 *
 * A set bit means "in use".  Frees are deferred: sm_free() only queues the
 * unit, and sm_apply_frees() (called just before each commit) clears the
 * bits inside the transaction that commits them.  So a unit freed in the
 * open transaction is never handed out again before that transaction is
 * durable - a crash cannot leave a committed reference to a unit that was
 * already reused and overwritten.
 *
 * Memory: one counter per bitmap block (each covers SM_BITS_PER_BLOCK
 * units) plus the queued frees; the bitmap blocks live in the bm cache.
 */
#ifndef CSNAP_STORE_SPACEMAP_H
#define CSNAP_STORE_SPACEMAP_H

#include "src/store/bm.h"

#include <stdbool.h>
#include <stdint.h>

struct spacemap;

static inline uint64_t sm_blocks_for(uint64_t nbits)
{ return (nbits + SM_BITS_PER_BLOCK - 1) / SM_BITS_PER_BLOCK; }

/* Writes empty bitmap blocks (dirty in BM's open transaction: the caller
 * commits).  Bits past NBITS in the last block are set, so never handed
 * out.  */
int sm_format(struct bm *bm, uint32_t type, uint64_t start, uint64_t nbits,
	      int (*batch)(void *arg), void *arg);
/* Loads the free counts (reads every bitmap block once).  */
int sm_open(struct bm *bm, uint32_t type, uint64_t start, uint64_t nbits,
	    struct spacemap **out);
void sm_close(struct spacemap *sm);

/* -ENOSPC when full.  */
int sm_alloc(struct spacemap *sm, uint64_t *out);
/* Queue UNIT to be freed at the next sm_apply_frees().  */
int sm_free(struct spacemap *sm, uint64_t unit);
int sm_apply_frees(struct spacemap *sm);
/* Allocate a specific unit (tests, check repair).  -EEXIST if in use.  */
int sm_take(struct spacemap *sm, uint64_t unit);

int sm_test(struct spacemap *sm, uint64_t unit, bool *used);
uint64_t sm_free_count(const struct spacemap *sm);	/* not counting queued frees */
uint64_t sm_nbits(const struct spacemap *sm);
uint64_t sm_pending_frees(const struct spacemap *sm);

#endif
