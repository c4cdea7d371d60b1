/*
 * src/store/rollback.c - rolling the origin back to a snapshot's content
 * (docs/store.md, "Rollback").
 *
 * The start turns the snapshot's table slot into the rollback *source*
 * (ST_ROLLBACK) and, unless the snapshot is deleted with it, moves the
 * snapshot to a free slot: the source keeps the old bit and so every
 * exception the snapshot used.  An exception carrying the source's bit is
 * the origin's content at its chunk ("pending") until a step has copied it
 * onto the origin and cleared the bit.
 *
 * Invariants (store_check verifies the last two):
 *  - nothing ever sets the source's bit, so a chunk stops being pending
 *    exactly once and needs no other record (steps out of cursor order,
 *    for writes, are fine);
 *  - at most one source slot; its parent id names the snapshot rolled
 *    back to, and snapshots with that id or an id above the source's read
 *    the source's exception at a pending chunk where they have none;
 *  - no exception below the cursor carries the source's bit, so the
 *    source slot (and its bit) can be freed when the cursor reaches the
 *    end.
 */
#include "src/store/store_int.h"
#include "src/store/counters.h"

#include "utils/assert.h"
#include "utils/err.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static struct store_snapshot *source(struct store *s)
{
	return s->rb_slot >= 0 ? &s->st.slot[s->rb_slot] : NULL;
}

static int no_rollback(void)
{
	return err_set(ENOENT, "no rollback is running");
}

int store_rollback_start(struct store *s, uint32_t id, bool delete_snap)
{
	const struct store_snapshot *rb = source(s);
	int free_slot = -1, ret;
	bool deleting = false;

	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (rb)
		return err_set(EBUSY, "a rollback to snapshot \"%s\" is running (chunk %llu of %llu); "
			       "wait for it to finish", rb->name, (unsigned long long)rb->rb_cursor,
			       (unsigned long long)s->origin_chunks);
	/* the walk of a snapshot of a snapshot follows its parent's bit,
	 * which a rollback would hand to the source (clone.c) */
	if (s->clone_slot >= 0)
		return err_set(EBUSY, "snapshot \"%s\" is being made from \"%s\"; roll back when that "
			       "is done", s->st.slot[s->clone_slot].name,
			       s->clone_parent >= 0 ? s->st.slot[s->clone_parent].name : "?");
	int slot = store_snap_slot(s, id, true);
	if (slot < 0)
		return slot;
	struct store_snapshot *src = &s->st.slot[slot];
	if (!delete_snap) {
		for (uint32_t i = 0; i < s->st.nslots; i++) {
			if (!s->st.slot[i].id && free_slot < 0)
				free_slot = (int)i;
			deleting |= s->st.slot[i].id && !(s->st.slot[i].flags & STORE_SNAP_LIVE);
		}
		if (free_slot < 0)
			return deleting ?
				err_set(EBUSY, "no free snapshot slot to keep \"%s\" through the rollback "
					"(deleted snapshots are still being cleaned up); retry, or roll back "
					"with --delete", src->name) :
				err_set(ENOSPC, "no free snapshot slot to keep \"%s\" through the rollback "
					"(table full, %u snapshots); delete one, or roll back with --delete",
					src->name, s->st.nslots);
		struct store_snapshot *keep = &s->st.slot[free_slot];
		*keep = *src;
		keep->bit = (uint32_t)free_slot;
		if ((ret = st_save(&s->st, (uint32_t)free_slot)) < 0)
			return ret;
	}
	uint32_t target = src->id;
	src->id = s->next_id++;
	src->flags = ST_ROLLBACK;
	src->parent_id = target;
	src->usecount = 0;
	src->priority = 0;
	src->ctime = (uint64_t)time(NULL);
	src->origin_chunks = s->origin_chunks;
	memset(src->req_id, 0, sizeof src->req_id);
	src->rb_cursor = 0;
	s->header_dirty = true;		/* next_id */
	ret = st_save(&s->st, (uint32_t)slot);
	store_recompute_live(s);
	return ret;
}

void store_rollback_get(const struct store *s, struct store_rollback *out)
{
	memset(out, 0, sizeof *out);
	if (s->rb_slot < 0)
		return;
	const struct store_snapshot *rb = &s->st.slot[s->rb_slot];
	out->active = true;
	out->snap_id = rb->parent_id;
	out->source_id = rb->id;
	memcpy(out->name, rb->name, sizeof out->name);
	out->started = rb->ctime;
	out->cursor = rb->rb_cursor;
	out->origin_chunks = s->origin_chunks;
}

/* The source's exception per chunk of a range (STORE_ON_ORIGIN: none).  */
struct src_walk { const struct store *s; chunk_t *out; chunk_t first; bool any; };
static void src_visit(void *arg, const uint8_t *e)
{
	struct src_walk *w = arg;

	if (rb_source(w->s, e + BE_MASK)) {
		w->out[be_origin(e) - w->first] = be_store(e);
		w->any = true;
	}
}

int store_origin_read(struct store *s, chunk_t first, uint32_t count, chunk_t *out)
{
	if (first >= s->origin_chunks || count > s->origin_chunks - first)
		return err_set(EINVAL, "chunks %llu+%u beyond the origin (%llu chunks)",
			       (unsigned long long)first, count,
			       (unsigned long long)s->origin_chunks);
	for (uint32_t i = 0; i < count; i++)
		out[i] = STORE_ON_ORIGIN;
	if (s->rb_slot < 0)
		return 0;
	struct src_walk w = { s, out, first, false };
	return store_walk_range(s, first, count, NULL, src_visit, &w);
}

/* Existence only: the first pending chunk of a range.  */
struct busy_walk { const struct store *s; chunk_t found; };
static void busy_visit(void *arg, const uint8_t *e)
{
	struct busy_walk *w = arg;

	if (w->found == STORE_CHUNK_END && rb_source(w->s, e + BE_MASK))
		w->found = be_origin(e);
}

int store_rollback_busy(struct store *s, chunk_t first, uint32_t count)
{
	struct busy_walk w = { s, STORE_CHUNK_END };
	int ret = store_walk_range(s, first, count, NULL, busy_visit, &w);

	if (ret < 0)
		return ret;
	if (w.found != STORE_CHUNK_END)
		return err_set(EAGAIN, "origin chunk %llu is still to be rolled back (roll it back first)",
			       (unsigned long long)w.found);
	return 0;
}

int store_rollback_next(struct store *s, chunk_t *out, uint32_t max, uint32_t *n,
			chunk_t *advance)
{
	const struct store_snapshot *rb = source(s);
	struct btree_cursor c;
	uint32_t k = 0, examined = 0;
	chunk_t prev = STORE_CHUNK_END;

	*n = 0;
	*advance = 0;
	if (!rb)
		return no_rollback();
	if (max == 0)
		return err_set(EINVAL, "rollback step of no chunk");
	int ret = btree_seek(&s->tree, rb->rb_cursor, 0, &c);
	while (ret >= 0) {
		if (!c.valid) {
			*advance = STORE_CHUNK_END;
			break;
		}
		const uint8_t *e = btree_entry(&s->tree, &c);
		uint64_t o = be_origin(e);
		/* stop only between chunks, so everything below *advance has
		 * been looked at: what is pending there is in out[] */
		if (o != prev && (k == max || examined >= 4096)) {
			*advance = o;
			break;
		}
		/* the source's bit is on at most one exception per chunk */
		if (rb_source(s, e + BE_MASK))
			out[k++] = o;
		prev = o;
		examined++;
		ret = btree_next(&s->tree, &c);
	}
	btree_cursor_put(&s->tree, &c);
	if (ret < 0)
		return ret;
	*n = k;
	return 0;
}

/* Per chunk of a step (found by binary search in the step's sorted list):
 * the masks of all its exceptions ORed, and the source's exception.  One
 * walk over the step's span, so the leaves it touches are counted once
 * for the room check.  */
struct step_walk {
	const struct store *s;
	const chunk_t *chunks;
	uint32_t n;
	uint64_t *served;	/* [n * mask_words] */
	chunk_t *src;		/* [n] */
};
static void step_visit(void *arg, const uint8_t *e)
{
	struct step_walk *w = arg;
	uint64_t o = be_origin(e);
	uint32_t lo = 0, hi = w->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (w->chunks[mid] < o)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == w->n || w->chunks[lo] != o)
		return;
	uint32_t mw = w->s->mask_words;
	for (uint32_t k = 0; k < mw; k++)
		w->served[(size_t)lo * mw + k] |= mask_word(e + BE_MASK, k);
	if (rb_source(w->s, e + BE_MASK))
		w->src[lo] = be_store(e);
}

int store_rollback_prepare(struct store *s, const chunk_t *chunks, uint32_t n,
			   struct store_copy *copies, uint32_t *ncopies,
			   struct store_copy *moves, uint32_t *nmoves)
{
	uint32_t mw = s->mask_words, nc = 0, nm = 0;
	uint64_t leaves = 1;
	int ret;

	*ncopies = *nmoves = 0;
	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (s->rb_slot < 0)
		return no_rollback();
	if (n == 0)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		if (chunks[i] >= s->origin_chunks || (i && chunks[i] <= chunks[i - 1]))
			return err_set(EINVAL, "rollback step: chunk %llu out of order or beyond the origin",
				       (unsigned long long)chunks[i]);
	if (chunks[n - 1] - chunks[0] >= UINT32_MAX)
		return err_set(EINVAL, "rollback step: chunks %llu..%llu too far apart",
			       (unsigned long long)chunks[0], (unsigned long long)chunks[n - 1]);
	/* scratch: served masks, source chunks, need masks */
	ret = store_scratch(s, (size_t)n * (2 * mw + 1));
	if (ret < 0)
		return ret;
	uint64_t *served = s->scratch, *need = served + (size_t)n * mw;
	chunk_t *src = need + (size_t)n * mw;
	memset(served, 0, (size_t)n * mw * 8);
	for (uint32_t i = 0; i < n; i++)
		src[i] = STORE_ON_ORIGIN;
	struct step_walk w = { s, chunks, n, served, src };
	ret = store_walk_range(s, chunks[0], (uint32_t)(chunks[n - 1] - chunks[0] + 1), &leaves,
			       step_visit, &w);
	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < n; i++) {
		if (src[i] == STORE_ON_ORIGIN)
			continue;	/* rolled back meanwhile */
		moves[nm++] = (struct store_copy){ chunks[i], STORE_ON_ORIGIN, src[i] };
		/* snapshots taken before the start that read the physical
		 * origin here keep it: a copy-out shared by all of them.  The
		 * others read the source's exception now and the origin, with
		 * the same data, once the bit is gone. */
		bool any = false;
		for (uint32_t k = 0; k < mw; k++) {
			uint64_t m = s->live[k] & ~s->post[k] & ~served[(size_t)i * mw + k];
			need[(size_t)nc * mw + k] = m;
		}
		if (chunks[i] >= s->short_min)	/* beyond some snapshot's size */
			store_drop_short(s, need + (size_t)nc * mw, chunks[i], 1);
		for (uint32_t k = 0; k < mw; k++)
			any |= need[(size_t)nc * mw + k] != 0;
		if (any)
			copies[nc++].origin_chunk = chunks[i];
	}
	ret = store_copyout(s, copies, nc, need, leaves);
	if (ret < 0)
		return ret;
	*ncopies = nc;
	*nmoves = nm;
	return 0;
}

/* Clears the source's bit from exception (c, src); drops it if nobody
 * else uses it.  0 also when the chunk was already finished.  */
static int finish_one(struct store *s, chunk_t c, chunk_t src)
{
	chunk_t cur[1];
	struct src_walk w = { s, cur, c, false };
	struct btree_cursor bc;
	bool empty = true;
	uint32_t bit = (uint32_t)s->rb_slot;

	cur[0] = STORE_ON_ORIGIN;
	int ret = store_walk_range(s, c, 1, NULL, src_visit, &w);
	if (ret < 0)
		return ret;
	if (cur[0] == STORE_ON_ORIGIN)
		return 0;
	if (cur[0] != src)
		return err_set(EINVAL, "rollback finish: chunk %llu's source is store chunk %llu, not %llu",
			       (unsigned long long)c, (unsigned long long)cur[0],
			       (unsigned long long)src);
	ret = btree_seek(&s->tree, c, src, &bc);
	if (ret >= 0 && (!bc.valid || be_origin(btree_entry(&s->tree, &bc)) != c ||
			 be_store(btree_entry(&s->tree, &bc)) != src))
		ret = err_set(EIO, "exception %llu/%llu vanished", (unsigned long long)c,
			      (unsigned long long)src);
	if (ret >= 0) {
		btree_cursor_dirty(&s->tree, &bc);
		uint8_t *m = be_mask(btree_entry(&s->tree, &bc));
		cnt_exception(s, m, -1);	/* usage counters: the new mask */
		m[bit / 8] &= (uint8_t)~(1u << (bit % 8));
		for (uint32_t k = 0; k < s->mask_words; k++)
			empty &= mask_word(m, k) == 0;
		if (!empty)
			cnt_exception(s, m, +1);
	}
	btree_cursor_put(&s->tree, &bc);
	if (ret >= 0 && empty) {
		ret = btree_delete(&s->tree, c, src);
		if (ret >= 0)
			ret = sm_free(s->dsm, src);
	}
	return ret;
}

int store_rollback_finish(struct store *s, const struct store_copy *moves, uint32_t n,
			  chunk_t advance)
{
	struct store_snapshot *rb = source(s);
	int ret;

	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (!rb)
		return no_rollback();
	for (uint32_t i = 0; i < n; i++) {
		if (moves[i].origin_chunk >= s->origin_chunks)
			return err_set(EINVAL, "rollback finish: chunk %llu beyond the origin",
				       (unsigned long long)moves[i].origin_chunk);
		ret = finish_one(s, moves[i].origin_chunk, moves[i].src);
		if (ret < 0)
			return err_prefix(-ret, "rollback finish");
	}
	if (advance <= rb->rb_cursor)
		return 0;
	if (advance < s->origin_chunks) {
		rb->rb_cursor = advance;
		return st_save(&s->st, (uint32_t)s->rb_slot);
	}
	/* done: no exception carries the bit any more (the cursor's promise
	 * over the whole origin), so the slot and its bit are free */
#ifdef CSNAP_DEBUG
	struct busy_walk bw = { s, STORE_CHUNK_END };
	uint32_t all = (uint32_t)(s->origin_chunks < UINT32_MAX ? s->origin_chunks : UINT32_MAX);
	CSNAP_ASSERT(store_walk_range(s, 0, all, NULL, busy_visit, &bw) < 0 ||
		     bw.found == STORE_CHUNK_END);
#endif
	uint32_t slot = (uint32_t)s->rb_slot;
	memset(rb, 0, sizeof *rb);
	ret = st_save(&s->st, slot);
	store_recompute_live(s);
	return ret;
}
