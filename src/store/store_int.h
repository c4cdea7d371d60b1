/*
 * src/store/store_int.h - private state of the engine, shared by its
 * files (engine.c: open/commit/data path; snapshot.c: snapshots, cleanup,
 * reports; mkfs.c: format; check.c; dump.c).  Not for use outside
 * src/store/.
 * The engine header block's layout and codec are in header.h.
 */
#ifndef CSNAP_STORE_STORE_INT_H
#define CSNAP_STORE_STORE_INT_H

#include "src/store/bm.h"
#include "src/store/btree.h"
#include "src/store/counters.h"
#include "src/store/header.h"
#include "src/store/journal.h"
#include "src/store/snaptable.h"
#include "src/store/spacemap.h"
#include "src/store/store.h"

#define MASK_WORDS_MAX	(CSNAP_MAX_SNAPSHOTS_LIMIT / 64)

struct store {
	struct io_dev *dev;
	bool own_dev;
	bool readonly;
	unsigned bad_sb_copies;
	struct csnap_sb sb;
	struct bm *bm;
	struct journal *j;
	struct spacemap *dsm;	/* data chunks */
	struct spacemap *msm;	/* tree area */
	struct btree tree;
	struct snaptable st;
	uint32_t mask_words;
	uint64_t origin_chunks;
	uint64_t live[MASK_WORDS_MAX];	/* bits of live snapshots */
	uint64_t users[MASK_WORDS_MAX];	/* live | the cloning snapshot's bit:
					 * who an origin write copies out for */
	uint64_t keep[MASK_WORDS_MAX];	/* users | the rollback source's bit:
					 * whose exceptions must be kept */
	int clone_slot, clone_parent;	/* slots of the running clone and its
					 * parent (clone.c); -1: none */
	uint64_t short_min;	/* fewest chunks a snapshot in `users` covers
				 * (store_snap_chunks); < origin_chunks only
				 * after the origin grew (store_origin_resize) */
	struct { uint32_t id, slot; } idtab[4 * CSNAP_MAX_SNAPSHOTS_LIMIT];	/* id -> slot, open addressing */
	/* the running rollback (rollback.c), from the table by
	 * store_recompute_live(): rb_slot is the source slot (-1: none), its
	 * bit marks the chunks still to roll back (and is in keep); post =
	 * live snapshots that read the source's exception at a pending chunk
	 * (taken after the start) */
	int rb_slot;
	uint64_t post[MASK_WORDS_MAX];
	uint32_t next_id;
	bool cleanup_active;
	uint64_t cur_o, cur_s;
	bool header_dirty;
	struct store_counters cnt;	/* usage counters (counters.h) */
	enum store_short short_kind;	/* reason of the last -ENOSPC */
	/* scratch for range operations */
	uint64_t *scratch;
	size_t scratch_cap;
};

static inline uint64_t mask_word(const uint8_t *mask, uint32_t w) { return get_le64(mask + 8 * w); }
static inline bool mask_test(const uint8_t *mask, uint32_t bit)
{ return (get_le64(mask + 8 * (bit / 64)) >> (bit % 64)) & 1; }

/* Origin chunks snapshot SLOT covers: the origin's size when it was taken
 * (the chunks added by a resize belong to no older snapshot).  */
static inline uint64_t store_snap_chunks(const struct store *s, uint32_t slot)
{
	uint64_t n = s->st.slot[slot].origin_chunks;
	return n && n < s->origin_chunks ? n : s->origin_chunks;
}

/* engine.c */
int store_save_header(struct store *s);
int store_load_header(struct store *s);
int store_scratch(struct store *s, size_t words);
/* counters.c: counts every exception's mask into the zeroed arrays */
int store_counters_walk(struct store *s, uint64_t *uniq, uint64_t *shared, uint64_t *multi,
			uint64_t *uncounted);
/* clone.c: for the origin chunks [first, first+count) whose need masks
 * (mask_words words each) an origin write computed, the running clone
 * needs a copy exactly where its parent does until its walk got there. */
void store_clone_need(const struct store *s, uint64_t *need, chunk_t first, uint32_t count);
/* engine.c: calls FN(ARG, entry) on every exception of origin chunks
 * [first, first + count) in key order; LEAVES (may be NULL) gets the
 * number of leaves reached added.  */
int store_walk_range(struct store *s, chunk_t first, uint32_t count, uint64_t *leaves,
		     void (*fn)(void *arg, const uint8_t *e), void *arg);
/* engine.c: clears from need[] (mask_words words per chunk of [first,
 * first+count)) the snapshots that do not cover a chunk (the origin grew
 * after they were taken).  */
void store_drop_short(const struct store *s, uint64_t *need, chunk_t first, uint32_t count);
/* engine.c: pass 2 of an origin write, shared with the rollback step:
 * for out[k].origin_chunk (ascending), a new exception with share mask
 * need[k * mask_words ...] and its store chunk in out[k].dst (src
 * STORE_ON_ORIGIN); LEAVES bounds the leaves the inserts touch.  Checks
 * the room first: -ENOSPC changes nothing.  */
int store_copyout(struct store *s, struct store_copy *out, uint32_t n,
		  const uint64_t *need, uint64_t leaves);
/* snapshot.c */
void store_recompute_live(struct store *s);
int store_snap_slot(const struct store *s, uint32_t id, bool live_only);
bool store_name_taken(const struct store *s, const char *name, uint32_t except_id);
int store_snap_new(struct store *s, const char *name, int32_t priority,
		   const uint8_t *req_id, uint32_t *slot_out);
/* rollback.c */
/* True when exception mask M carries the rollback source's bit.  */
static inline bool rb_source(const struct store *s, const uint8_t *m)
{ return s->rb_slot >= 0 && mask_test(m, (uint32_t)s->rb_slot); }
/* True when live snapshot bit BIT reads the source's exception at a
 * pending chunk where it has none of its own.  */
static inline bool rb_post(const struct store *s, uint32_t bit)
{ return s->rb_slot >= 0 && ((s->post[bit / 64] >> (bit % 64)) & 1); }
/* -EAGAIN (nothing changed) when a chunk of [first, first+count) is still
 * to be rolled back.  */
int store_rollback_busy(struct store *s, chunk_t first, uint32_t count);

#endif
