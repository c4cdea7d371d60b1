/*
 * src/store/snaptable.h - the snapshot table: one 128-byte slot per share
 * mask bit, in checksummed metadata blocks changed through the journal.
 * Slot i describes the snapshot owning mask bit i (id 0 = free slot).
 * The whole table is mirrored in memory (max 1024 slots).
 * The slot layout (SL_*) is in format.h; encode/decode in snaptable.c.
 */
#ifndef CSNAP_STORE_SNAPTABLE_H
#define CSNAP_STORE_SNAPTABLE_H

#include "src/store/bm.h"
#include "src/store/store.h"

#include <stdint.h>

/* internal flag: deleted and part of the running cleanup pass */
#define ST_CLEANING		0x4
/* internal flag: the source of the running rollback (rollback.c): the
 * slot whose bit marks the origin chunks not yet rolled back; at most one */
#define ST_ROLLBACK		0x10
#define ST_KNOWN_FLAGS		(STORE_SNAP_LIVE | STORE_SNAP_DELETING | ST_CLEANING | STORE_SNAP_CLONING | \
				 ST_ROLLBACK)

struct snaptable {
	struct bm *bm;
	uint64_t start;
	uint32_t nslots;
	struct store_snapshot *slot;	/* [nslots], indexed by mask bit */
};

static inline uint64_t st_blocks_for(uint32_t nslots)
{ return (nslots + ST_SLOTS_PER_BLOCK - 1) / ST_SLOTS_PER_BLOCK; }

/* Empty table blocks, dirty in the open transaction.  */
int st_format(struct bm *bm, uint64_t start, uint32_t nslots);
/* Loads and validates every slot.  */
int st_load(struct snaptable *st, struct bm *bm, uint64_t start, uint32_t nslots);
void st_free(struct snaptable *st);
/* Writes slot I (the in-memory copy) into its block.  */
int st_save(struct snaptable *st, uint32_t i);

#endif
