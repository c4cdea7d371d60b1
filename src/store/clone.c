/*
 * src/store/clone.c - snapshots of snapshots (`snapshot create NEW --from
 * SNAP`): NEW gets a free mask bit, and a walk over the exception tree
 * sets NEW's bit in every exception that carries SNAP's bit.  Where SNAP
 * still reads the origin, NEW does too, and the origin write's copy-out
 * covers every snapshot that needs it, NEW included.  So after the walk
 * NEW is an ordinary snapshot: a lookup is one descent whatever the depth
 * of clones, and writes to SNAP or NEW unshare like any shared exception.
 *
 * The walk runs in bounded steps (store_clone_step), each inside the
 * caller's transaction; the cursor (the first origin chunk not done) is
 * saved in NEW's table slot in the same transaction as the bits it
 * covers, so a crash resumes the walk at the last commit.  Until the walk
 * is done NEW's slot is STORE_SNAP_CLONING: its name is taken, it is not
 * readable, and at most one clone runs at a time.
 *
 * Invariants while a clone N of parent P runs (cursor K), checked by
 * store_check:
 *  - P is live; its writes and its delete are refused (EBUSY), so P's
 *    content does not change under the walk;
 *  - at origin chunks < K, N's bits are exactly where P's were at the
 *    start, plus the copy-outs of later origin writes (N counts as a
 *    user: s->users);
 *  - at origin chunks >= K, N's bit is set only in exceptions that also
 *    carry P's: an origin write there gives N a copy-out exactly when P
 *    gets one (store_clone_need), so setting N's bit on P's exception when
 *    the walk arrives is right whether or not that already happened.
 */
#include "src/store/store_int.h"

#include "utils/assert.h"
#include "utils/err.h"

#include <errno.h>
#include <string.h>

static inline void mask_set(uint64_t *m, uint32_t bit) { m[bit / 64] |= 1ULL << (bit % 64); }
static inline void mask_clear(uint64_t *m, uint32_t bit) { m[bit / 64] &= ~(1ULL << (bit % 64)); }
static inline bool mask_has(const uint64_t *m, uint32_t bit) { return (m[bit / 64] >> (bit % 64)) & 1; }

uint32_t store_clone_pending(const struct store *s, uint32_t *parent_id)
{
	if (s->clone_slot < 0) {
		if (parent_id)
			*parent_id = 0;
		return 0;
	}
	if (parent_id)
		*parent_id = s->st.slot[s->clone_slot].parent_id;
	return s->st.slot[s->clone_slot].id;
}

void store_clone_need(const struct store *s, uint64_t *need, chunk_t first, uint32_t count)
{
	if (s->clone_slot < 0 || s->clone_parent < 0)
		return;
	uint32_t nb = (uint32_t)s->clone_slot, pb = (uint32_t)s->clone_parent;
	chunk_t k = s->st.slot[nb].clone_next;
	for (uint32_t i = 0; i < count; i++) {
		if (first + i < k)
			continue;	/* walked: N is a user of its own */
		uint64_t *nm = need + (size_t)i * s->mask_words;
		if (mask_has(nm, pb))
			mask_set(nm, nb);
		else
			mask_clear(nm, nb);
	}
}

int store_snapshot_clone(struct store *s, const char *name, uint32_t parent_id,
			 int32_t priority, const uint8_t *req_id, uint32_t *id_out)
{
	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	int p = store_snap_slot(s, parent_id, true);
	if (p < 0)
		return p;
	/* a rollback moves the bits snapshots read through (rollback.c) */
	if (s->rb_slot >= 0)
		return err_set(EBUSY, "a rollback to snapshot \"%s\" is running; make the snapshot "
			       "of a snapshot when it has finished", s->st.slot[s->rb_slot].name);
	if (s->clone_slot >= 0)
		return err_set(EBUSY, "snapshot \"%s\" is still being made from \"%s\"; one at a time",
			       s->st.slot[s->clone_slot].name,
			       s->clone_parent >= 0 ? s->st.slot[s->clone_parent].name : "?");
	uint32_t slot;
	int ret = store_snap_new(s, name, priority, req_id, &slot);
	if (ret < 0)
		return ret;
	struct store_snapshot *sl = &s->st.slot[slot];
	/* a free bit is in no exception (its cleanup pass finished), so the
	 * walk starts from nothing */
	sl->flags = STORE_SNAP_CLONING;
	sl->parent_id = parent_id;
	sl->origin_chunks = s->st.slot[p].origin_chunks;
	sl->clone_next = 0;
	ret = st_save(&s->st, slot);
	if (ret < 0)
		return ret;
	store_recompute_live(s);
	CSNAP_ASSERT(s->clone_slot == (int)slot && s->clone_parent == p);
	*id_out = sl->id;
	return 0;
}

int store_clone_step(struct store *s, unsigned budget)
{
	struct btree_cursor c;

	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (s->clone_slot < 0)
		return 0;
	if (s->clone_parent < 0)
		return err_set(EIO, "snapshot \"%s\" is being cloned from snapshot %u, which is not live",
			       s->st.slot[s->clone_slot].name, s->st.slot[s->clone_slot].parent_id);
	if (budget == 0)
		budget = 1;
	uint32_t nb = (uint32_t)s->clone_slot, pb = (uint32_t)s->clone_parent;
	struct store_snapshot *sl = &s->st.slot[nb];
	/* the table block and the blocks of the chunk in hand stay below the
	 * journal's room: commit at half of it, as the server does */
	unsigned room = store_txn_limit(s) / 2;
	uint32_t seen = 0;
	bool started = false, end = false;
	chunk_t cur = sl->clone_next, next = sl->clone_next;
	int ret = btree_seek(&s->tree, sl->clone_next, 0, &c);

	while (ret >= 0) {
		if (!c.valid) {
			end = true;
			break;
		}
		uint8_t *e = btree_entry(&s->tree, &c);
		chunk_t o = be_origin(e);
		if (!started || o != cur) {
			/* whole origin chunks only: the cursor is a chunk */
			if (started && (seen >= budget || store_txn_blocks(s) + 2 >= room)) {
				next = o;
				break;
			}
			started = true;
			cur = o;
		}
		if (mask_test(e + BE_MASK, pb) && !mask_test(e + BE_MASK, nb)) {
			btree_cursor_dirty(&s->tree, &c);
			e[BE_MASK + nb / 8] |= (uint8_t)(1u << (nb % 8));
			cnt_bit(s, e + BE_MASK, nb, true);	/* usage counters */
		}
		seen++;
		ret = btree_next(&s->tree, &c);
	}
	btree_cursor_put(&s->tree, &c);
	if (ret < 0)
		return err_prefix(-ret, "snapshot clone");
	if (end) {
		sl->flags = STORE_SNAP_LIVE;
		sl->clone_next = 0;
	} else {
		CSNAP_ASSERT(next > sl->clone_next);	/* at least one chunk done */
		sl->clone_next = next;
	}
	ret = st_save(&s->st, nb);
	if (ret < 0)
		return ret;
	if (end)
		store_recompute_live(s);
	return end ? 0 : 1;
}
