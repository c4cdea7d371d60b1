/*
 * src/store/bm.h - the block manager: a bounded LRU cache of 4 KiB
 * metadata blocks on an io_dev, with checksum/identity validation on read
 * and the bookkeeping the journal needs (dirty and committed-not-home
 * blocks).  Replacement is CLOCK (second chance), so a cache hit writes
 * only the block's own reference bit.
 *
 * Every metadata block starts with the meta header (META_*, format.h):
 * crc32c of bytes [4, 4096), a type, its own block number, the sequence of
 * the transaction that wrote it, and a tag derived from the store uuid
 * (csnap_sb_tag).  bm_seal() and bm_validate() are its encoder and decoder.  A block read from
 * disk is trusted only if all of them match (torn, stale, misdirected and
 * foreign writes are refused with -EIO / err_set).
 *
 * Block states: clean; DIRTY (changed in the open transaction: never
 * written home before it commits, "no steal"); HOME_PENDING (committed in
 * the journal, home copy not yet written).  If a HOME_PENDING block is
 * dirtied again, its committed image is kept aside (home_copy) so a
 * checkpoint always writes committed data home.  Only clean, unpinned
 * blocks are evicted (HOME_PENDING ones are first written home).
 *
 * Memory budget: at most cache_blocks blocks are cached, except blocks it
 * may not evict (dirty: bounded by the journal's transaction size;
 * pinned: a few per operation; installed by read-only replay), checked
 * with CSNAP_ASSERT at every insertion.  Per cached block bm also keeps
 * ~100 bytes of bookkeeping (entry, table slots; 1.4 KiB of child
 * pointers per cached interior node), and data buffers come in 2 MiB
 * arenas that are reused, never given back, so they stay within one
 * arena of the peak.
 */
#ifndef CSNAP_STORE_BM_H
#define CSNAP_STORE_BM_H

#include "src/store/format.h"
#include "utils/endian.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct io_dev;
struct bm;

#define META_BLOCK_SIZE ((unsigned)CSNAP_META_BLOCK_SIZE)

/* A pinned cached block as callers see it (bm.c keeps its state, pin
 * count and list links in a private struct around it).  */
struct bm_block {
	uint64_t blocknr;
	uint8_t *data;		/* META_BLOCK_SIZE bytes, 4096-aligned */
};

struct bm_stats {
	uint64_t hits, misses, reads, home_writes, evictions;
	size_t cached, capacity;
	size_t pinned, dirty;	/* blocks pinned now; changed in the open transaction */
	size_t arenas;		/* data buffer arenas (2 MiB each), never given back */
};

int bm_create(struct io_dev *dev, uint64_t tag, size_t cache_blocks,
	      bool readonly, struct bm **out);
/* Drops everything (dirty blocks are discarded; the caller checkpoints
 * first if it wants committed blocks written home).  */
void bm_destroy(struct bm *bm);
struct io_dev *bm_dev(const struct bm *bm);
uint64_t bm_tag(const struct bm *bm);

/* Highest committed sequence: blocks claiming a later one are refused.  */
void bm_set_committed_seq(struct bm *bm, uint64_t seq);

/* Pinned access to a validated block of TYPE (0: META_T_LEAF or
 * META_T_INTERNAL).  */
int bm_get(struct bm *bm, uint64_t blocknr, uint32_t type, struct bm_block **out);
/* Unpinned read access for hot lookups: the data of a cached block of
 * TYPE (0: leaf or internal), or NULL when it is not cached (use bm_get).
 * Valid only until the next call that may load or evict a block.  */
const uint8_t *bm_peek(struct bm *bm, uint64_t blocknr, uint32_t type);
/* The same without touching the data (the caller checks the type): lets a
 * caller prefetch several lines of the block at once.  */
const uint8_t *bm_peek_raw(struct bm *bm, uint64_t blocknr);
/* Lookups that reach a block's data without its slot mark it used for
 * the replacement policy with this.  */
void bm_touch(struct bm *bm, const uint8_t *data);
/* Child-pointer cache for hot lookups (the b-tree's interior nodes): the
 * cached data of a parent block can remember where each of its children's
 * data is cached, skipping the block table on the next descent.
 * bm_child_guess() returns the remembered pointer of child I (or NULL): it
 * always points at readable memory but may hold another block by now, so
 * a caller may prefetch through it and must bm_child_confirm() it (its
 * header names BLOCKNR; marks it used) before reading more.
 * bm_child_remember() records child I (of at most N) of PARENT;
 * bm_child_forget() drops PARENT's record: bm does so whenever the
 * parent's content is replaced or leaves the cache, the owner whenever it
 * changes the parent itself (its children move).  */
const uint8_t *bm_child_guess(struct bm *bm, const uint8_t *parent, unsigned i);
bool bm_child_confirm(struct bm *bm, const uint8_t *data, uint64_t blocknr);
void bm_child_remember(struct bm *bm, const uint8_t *parent, unsigned i, unsigned n,
		       const uint8_t *child);
/* The same with a hint (below BM_CHILD_HINT_MAX) kept next to each
 * remembered child, for the owner to aim prefetches with (the b-tree keeps
 * the child's entry count there).  Like the pointer it is only a guess:
 * it may be stale and must never decide a result.  *HINT is 0 when none
 * was recorded.  Data buffers are 4096-aligned, so the hint lives in the
 * low bits of the remembered pointer and costs no extra cache line.  */
#define BM_CHILD_HINT_MAX META_BLOCK_SIZE
const uint8_t *bm_child_guess_hint(struct bm *bm, const uint8_t *parent, unsigned i,
				   unsigned *hint);
void bm_child_remember_hint(struct bm *bm, const uint8_t *parent, unsigned i, unsigned n,
			    const uint8_t *child, unsigned hint);
void bm_child_forget(struct bm *bm, const uint8_t *parent);
/* A fresh zeroed block of TYPE at BLOCKNR, already dirty (content on disk
 * is ignored).  */
int bm_get_new(struct bm *bm, uint64_t blocknr, uint32_t type, struct bm_block **out);
void bm_put(struct bm *bm, struct bm_block *b);
/* Must be called before changing a block's data (the block is pinned).  */
void bm_dirty(struct bm *bm, struct bm_block *b);
/* Changed in the open transaction (bm_dirty since the last commit)?  */
bool bm_block_dirty(const struct bm_block *b);
static inline uint32_t bm_block_type(const struct bm_block *b)
{ return get_le32(b->data + META_TYPE); }

/* Validates a raw block image (used by bm_get, replay and check).  */
int bm_validate(const struct bm *bm, const void *data, uint64_t blocknr, uint32_t type);
/* Stamps header fields and checksum into DATA.  */
void bm_seal(const struct bm *bm, void *data, uint64_t blocknr, uint32_t type, uint64_t seq);

/* Counts the times cached blocks took content that their owners did not
 * write through bm_dirty (bm_abort's rollback, bm_install): an owner that
 * remembers what a block holds (the b-tree's fingers) forgets it when the
 * epoch moves.  Only grows; each cache starts 2^40 above the previous
 * one, so epochs of two caches never meet.  */
uint64_t bm_epoch(const struct bm *bm);

/* ---- for the journal ---------------------------------------------------- */
size_t bm_dirty_count(const struct bm *bm);
/* Seals every dirty block with SEQ and calls FN on each (in list order). */
int bm_for_each_dirty(struct bm *bm, uint64_t seq,
		      int (*fn)(void *arg, struct bm_block *b), void *arg);
/* The open transaction committed: DIRTY -> HOME_PENDING.  */
void bm_mark_committed(struct bm *bm);
/* Abandons the open transaction: dirty blocks go back to their committed
 * image (dropped, or restored from home_copy).  -EBUSY if one is pinned. */
int bm_abort(struct bm *bm);
/* While held, no HOME_PENDING block is written home (eviction skips them,
 * bm_write_home() fails with -EBUSY): the journal holds it from the moment
 * a transaction is marked committed until its journal write is durable
 * (journal_commit_begin/end), so the next transaction may change blocks
 * meanwhile without any of the first one reaching home too early.  */
void bm_hold_home(struct bm *bm, bool hold);
/* Writes every HOME_PENDING block home (no flush); they become clean.  */
int bm_write_home(struct bm *bm);
/* Without a journal (mkstore, tests): seals every dirty block with
 * sequence 0 and writes it home now (no flush).  ARG is the struct bm, so
 * it serves as sm_format()'s batch callback too.  */
int bm_flush_home(void *arg);
/* Read-only replay: install a committed image that overrides the home
 * block (kept in memory, never evicted).  */
int bm_install(struct bm *bm, uint64_t blocknr, const void *data);

void bm_get_stats(const struct bm *bm, struct bm_stats *out);

#endif
