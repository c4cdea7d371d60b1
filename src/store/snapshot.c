/*
 * src/store/snapshot.c - snapshot table operations, incremental cleanup of
 * deleted snapshots, changed-chunk report.
 *
 * Create is O(1) in exceptions: a new snapshot gets a free mask bit, and
 * no exception carries a free bit, so it reads the origin everywhere.
 * (A snapshot of a snapshot also walks the exceptions: clone.c.)
 * Delete clears the live bit at once; store_cleanup() then walks the tree
 * from a persistent cursor, clearing bits of non-live snapshots and
 * dropping exceptions left with no live user (a running rollback's source
 * bit counts as live here: it is the origin's content, rollback.c).  Snapshots deleted before a
 * pass starts are in it (ST_CLEANING); their slots (bits) are freed when
 * the pass completes.  Every mask it changes or drops goes through the
 * usage counters (counters.h).
 */
#include "src/store/store_int.h"

#include "utils/err.h"
#include "utils/escape.h"
#include "utils/snapname.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDTAB_N (sizeof ((struct store *)0)->idtab / sizeof ((struct store *)0)->idtab[0])

static size_t id_hash(uint32_t id) { return (id * 2654435761u) & (IDTAB_N - 1); }

/* Rebuilds the live mask and the id -> slot table after any table change. */
void store_recompute_live(struct store *s)
{
	memset(s->live, 0, sizeof s->live);
	memset(s->idtab, 0, sizeof s->idtab);
	s->clone_slot = s->clone_parent = -1;
	memset(s->post, 0, sizeof s->post);
	s->rb_slot = -1;
	for (uint32_t i = 0; i < s->st.nslots; i++)
		if (s->st.slot[i].flags & ST_ROLLBACK)
			s->rb_slot = (int)i;
	const struct store_snapshot *rb = s->rb_slot >= 0 ? &s->st.slot[s->rb_slot] : NULL;
	for (uint32_t i = 0; i < s->st.nslots; i++) {
		if (s->st.slot[i].flags & STORE_SNAP_LIVE) {
			s->live[i / 64] |= 1ULL << (i % 64);
			/* the rolled-back snapshot keeps its id; ids grow, so a
			 * larger id than the source's was created after it */
			if (rb && (s->st.slot[i].id == rb->parent_id || s->st.slot[i].id > rb->id))
				s->post[i / 64] |= 1ULL << (i % 64);
		}
		if ((s->st.slot[i].flags & STORE_SNAP_CLONING) && s->clone_slot < 0)
			s->clone_slot = (int)i;
		if (s->st.slot[i].id && !(s->st.slot[i].flags & ST_ROLLBACK)) {
			size_t h = id_hash(s->st.slot[i].id);
			while (s->idtab[h].id)
				h = (h + 1) & (IDTAB_N - 1);
			s->idtab[h].id = s->st.slot[i].id;
			s->idtab[h].slot = i;
		}
	}
	memcpy(s->users, s->live, sizeof s->users);
	if (s->clone_slot >= 0) {
		s->users[s->clone_slot / 64] |= 1ULL << (s->clone_slot % 64);
		/* a cloning slot's parent is live (delete refuses it): check.c */
		int p = store_snap_slot(s, s->st.slot[s->clone_slot].parent_id, true);
		s->clone_parent = p >= 0 ? p : -1;
	}
	/* the rollback source's exceptions are the origin's content: kept,
	 * but the source is no user an origin write copies out for */
	memcpy(s->keep, s->users, sizeof s->keep);
	if (rb)
		s->keep[s->rb_slot / 64] |= 1ULL << (s->rb_slot % 64);
	s->short_min = s->origin_chunks;
	for (uint32_t i = 0; i < s->st.nslots; i++)
		if (((s->users[i / 64] >> (i % 64)) & 1) && store_snap_chunks(s, i) < s->short_min)
			s->short_min = store_snap_chunks(s, i);
}

/* Is NAME the name of a live snapshot or of one being cloned, other than
 * EXCEPT_ID?  */
bool store_name_taken(const struct store *s, const char *name, uint32_t except_id)
{
	for (uint32_t i = 0; i < s->st.nslots; i++) {
		const struct store_snapshot *sl = &s->st.slot[i];
		if ((sl->flags & (STORE_SNAP_LIVE | STORE_SNAP_CLONING)) && sl->id != except_id &&
		    strcmp(sl->name, name) == 0)
			return true;
	}
	return false;
}

int store_snap_slot(const struct store *s, uint32_t id, bool live_only)
{
	for (size_t h = id_hash(id); id && s->idtab[h].id; h = (h + 1) & (IDTAB_N - 1))
		if (s->idtab[h].id == id) {
			uint32_t i = s->idtab[h].slot;
			if (live_only && !(s->st.slot[i].flags & STORE_SNAP_LIVE))
				break;
			return (int)i;
		}
	return err_set(ENOENT, "no snapshot with id %u", id);
}

static void public_view(const struct store_snapshot *in, struct store_snapshot *out)
{
	*out = *in;
	if (out->flags & ST_CLEANING)
		out->flags = STORE_SNAP_DELETING;
}

int store_snapshot_create(struct store *s, const char *name, int32_t priority,
			  uint32_t *id_out)
{
	return store_snapshot_create_req(s, name, priority, NULL, id_out);
}

/* Takes a free slot (= mask bit) for a new live snapshot NAME and fills
 * it in memory (not saved: the caller adjusts it, then st_save()).  */
int store_snap_new(struct store *s, const char *name, int32_t priority,
		   const uint8_t *req_id, uint32_t *slot_out)
{
	int free_slot = -1;
	bool deleting = false;

	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	/* The same rule as the CLI and the server (utils/snapname.h): no
	 * name that an export could not serve gets into the table.  */
	if (!name || snap_name_check(name) < 0)
		return name ? -EINVAL : err_set(EINVAL, "no snapshot name");
	if (store_name_taken(s, name, 0))
		return err_set(EEXIST, "snapshot \"%s\" exists", name);
	for (uint32_t i = 0; i < s->st.nslots; i++) {
		const struct store_snapshot *sl = &s->st.slot[i];
		if (!sl->id && free_slot < 0)
			free_slot = (int)i;
		deleting |= sl->id && (sl->flags & (STORE_SNAP_DELETING | ST_CLEANING));
	}
	if (free_slot < 0)
		return deleting ? err_set(EBUSY, "all %u snapshot slots in use; deleted snapshots are still being cleaned up",
					  s->st.nslots)
				: err_set(ENOSPC, "snapshot table full (%u snapshots)", s->st.nslots);
	struct store_snapshot *sl = &s->st.slot[free_slot];
	memset(sl, 0, sizeof *sl);
	sl->id = s->next_id++;
	sl->bit = (uint32_t)free_slot;
	sl->flags = STORE_SNAP_LIVE;
	sl->priority = priority;
	sl->ctime = (uint64_t)time(NULL);
	sl->origin_chunks = s->origin_chunks;
	memcpy(sl->name, name, strlen(name));	/* snap_name_check bounds it */
	if (req_id)
		memcpy(sl->req_id, req_id, STORE_REQ_ID_LEN);
	s->header_dirty = true;
	*slot_out = (uint32_t)free_slot;
	return 0;
}

int store_snapshot_create_req(struct store *s, const char *name, int32_t priority,
			      const uint8_t *req_id, uint32_t *id_out)
{
	uint32_t slot;
	int ret = store_snap_new(s, name, priority, req_id, &slot);

	if (ret < 0)
		return ret;
	ret = st_save(&s->st, slot);
	if (ret < 0)
		return ret;
	store_recompute_live(s);
	*id_out = s->st.slot[slot].id;
	return 0;
}

int store_snapshot_delete(struct store *s, uint32_t id)
{
	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	/* a snapshot being cloned may be deleted: that abandons the clone */
	int slot = store_snap_slot(s, id, false);
	if (slot < 0)
		return slot;
	if (!(s->st.slot[slot].flags & (STORE_SNAP_LIVE | STORE_SNAP_CLONING)))
		return err_set(ENOENT, "no snapshot with id %u", id);
	if (slot == s->clone_parent)
		return err_set(EBUSY, "snapshot \"%s\" is being cloned into \"%s\"; delete it when that is done",
			       s->st.slot[slot].name, s->st.slot[s->clone_slot].name);
	if (s->rb_slot >= 0 && s->st.slot[s->rb_slot].parent_id == id)
		return err_set(EBUSY, "snapshot \"%s\" is being rolled back onto the origin; "
			       "delete it when the rollback has finished", s->st.slot[slot].name);
	s->st.slot[slot].flags = STORE_SNAP_DELETING;
	s->st.slot[slot].clone_next = 0;
	store_recompute_live(s);
	return st_save(&s->st, (uint32_t)slot);
}

int store_snapshot_get(const struct store *s, uint32_t id, struct store_snapshot *out)
{
	int slot = store_snap_slot(s, id, false);

	if (slot < 0)
		return slot;
	public_view(&s->st.slot[slot], out);
	return 0;
}

int store_snapshot_find(const struct store *s, const char *name, struct store_snapshot *out)
{
	for (uint32_t i = 0; i < s->st.nslots; i++)
		if ((s->st.slot[i].flags & STORE_SNAP_LIVE) && strcmp(s->st.slot[i].name, name) == 0) {
			public_view(&s->st.slot[i], out);
			return 0;
		}
	return err_set(ENOENT, "no snapshot named \"%s\"", name);
}

static int by_id(const void *a, const void *b)
{
	const struct store_snapshot *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

int store_snapshot_list(const struct store *s, struct store_snapshot *out, unsigned max)
{
	struct store_snapshot *all = calloc(s->st.nslots, sizeof *all);
	unsigned n = 0;

	if (!all)
		return err_set(ENOMEM, "out of memory");
	for (uint32_t i = 0; i < s->st.nslots; i++)
		if (s->st.slot[i].id && !(s->st.slot[i].flags & ST_ROLLBACK))
			public_view(&s->st.slot[i], &all[n++]);
	qsort(all, n, sizeof *all, by_id);
	if (out && max && n)
		memcpy(out, all, (n < max ? n : max) * sizeof *all);
	free(all);
	return (int)n;
}

static int set_field(struct store *s, uint32_t id, bool prio, uint32_t v)
{
	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	int slot = store_snap_slot(s, id, true);
	if (slot < 0)
		return slot;
	if (prio)
		s->st.slot[slot].priority = (int32_t)v;
	else
		s->st.slot[slot].usecount = v;
	return st_save(&s->st, (uint32_t)slot);
}

int store_snapshot_rename(struct store *s, uint32_t id, const char *new_name)
{
	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (!new_name)
		return err_set(EINVAL, "no snapshot name");
	if (snap_name_check(new_name) < 0)
		return -EINVAL;
	int slot = store_snap_slot(s, id, true);
	if (slot < 0)
		return slot;
	struct store_snapshot *sl = &s->st.slot[slot];
	if (strcmp(sl->name, new_name) == 0)
		return 0;
	if (store_name_taken(s, new_name, id))
		return err_set(EEXIST, "snapshot \"%s\" exists", new_name);
	/* snap_name_check() bounds the length to STORE_SNAP_NAME_MAX */
	memset(sl->name, 0, sizeof sl->name);
	memcpy(sl->name, new_name, strlen(new_name));
	return st_save(&s->st, (uint32_t)slot);
}

int store_snapshot_set_priority(struct store *s, uint32_t id, int32_t prio)
{ return set_field(s, id, true, (uint32_t)prio); }
int store_snapshot_set_usecount(struct store *s, uint32_t id, uint32_t n)
{ return set_field(s, id, false, n); }

int store_pick_victim(const struct store *s, bool (*in_use)(void *arg, uint32_t id),
		      void *arg, uint32_t *id_out)
{
	const struct store_snapshot *best = NULL;

	for (uint32_t i = 0; i < s->st.nslots; i++) {
		const struct store_snapshot *sl = &s->st.slot[i];
		if (!(sl->flags & STORE_SNAP_LIVE) || sl->usecount || (in_use && in_use(arg, sl->id)) ||
		    (int)i == s->clone_parent)
			continue;
		if (s->rb_slot >= 0 && s->st.slot[s->rb_slot].parent_id == sl->id)
			continue;	/* being rolled back: cannot be deleted */
		if (!best || sl->priority < best->priority ||
		    (sl->priority == best->priority &&
		     (sl->ctime < best->ctime || (sl->ctime == best->ctime && sl->id < best->id))))
			best = sl;
	}
	if (!best)
		return err_set(ENOENT, "no unused snapshot to release");
	*id_out = best->id;
	return 0;
}

int store_cleanup(struct store *s, unsigned budget)
{
	struct btree_cursor c;
	uint32_t mw = s->mask_words;
	int ret;

	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (!s->cleanup_active) {
		bool any = false;
		for (uint32_t i = 0; i < s->st.nslots; i++)
			if (s->st.slot[i].flags & STORE_SNAP_DELETING) {
				s->st.slot[i].flags = ST_CLEANING;
				if ((ret = st_save(&s->st, i)) < 0)
					return ret;
				any = true;
			}
		if (!any)
			return 0;
		s->cleanup_active = true;
		s->cur_o = s->cur_s = 0;
		s->header_dirty = true;
	}
	if (budget == 0)
		budget = 1;
	ret = store_scratch(s, (size_t)budget * 2);
	if (ret < 0)
		return ret;
	uint64_t *drop = s->scratch;	/* (origin, store) pairs to delete */
	uint32_t ndrop = 0, seen = 0;
	bool end = false;
	ret = btree_seek(&s->tree, s->cur_o, s->cur_s, &c);
	while (ret >= 0) {
		if (!c.valid) {
			end = true;
			break;
		}
		if (seen == budget)
			break;
		uint8_t *e = btree_entry(&s->tree, &c);
		bool dead = false, alive = false;
		/* users: a running clone's bits are kept like a live one's */
		for (uint32_t w = 0; w < mw; w++) {
			uint64_t m = mask_word(e + BE_MASK, w);
			dead |= (m & ~s->keep[w]) != 0;
			alive |= (m & s->keep[w]) != 0;
		}
		if (dead && alive) {
			btree_cursor_dirty(&s->tree, &c);
			cnt_exception(s, e + BE_MASK, -1);
			for (uint32_t w = 0; w < mw; w++)
				put_le64(e + BE_MASK + 8 * w, mask_word(e + BE_MASK, w) & s->keep[w]);
			cnt_exception(s, e + BE_MASK, +1);
		} else if (dead) {
			/* deleted just below (or the failed call is aborted) */
			cnt_exception(s, e + BE_MASK, -1);
			drop[2 * ndrop] = be_origin(e);
			drop[2 * ndrop + 1] = be_store(e);
			ndrop++;
		}
		seen++;
		s->cur_o = be_origin(e);
		s->cur_s = be_store(e) + 1;
		ret = btree_next(&s->tree, &c);
	}
	btree_cursor_put(&s->tree, &c);
	for (uint32_t i = 0; ret >= 0 && i < ndrop; i++) {
		ret = btree_delete(&s->tree, drop[2 * i], drop[2 * i + 1]);
		if (ret >= 0)
			ret = sm_free(s->dsm, drop[2 * i + 1]);
	}
	if (ret < 0)
		return err_prefix(-ret, "snapshot cleanup");
	s->header_dirty = true;
	if (!end)
		return 1;
	/* pass complete: the bits it covered are free for new snapshots */
	bool more = false;
	for (uint32_t i = 0; i < s->st.nslots; i++) {
		if (s->st.slot[i].flags & ST_CLEANING) {
			memset(&s->st.slot[i], 0, sizeof s->st.slot[i]);
			if ((ret = st_save(&s->st, i)) < 0)
				return ret;
		}
		more |= (s->st.slot[i].flags & STORE_SNAP_DELETING) != 0;
	}
	s->cleanup_active = false;
	s->cur_o = s->cur_s = 0;
	store_recompute_live(s);
	return more ? 1 : 0;
}

/* Entries one store_changed() call examines at most: about 40 leaves, so
 * a caller that bounds its time (the master's CHANGED) gets control back
 * within milliseconds even when those leaves must be read from disk.  */
#define CHANGED_SLICE	8192u

int store_changed(struct store *s, uint32_t a, uint32_t b, chunk_t *cursor,
		  chunk_t *out, unsigned max)
{
	struct btree_cursor c;
	int sa = store_snap_slot(s, a, true), sb = -1;
	unsigned n = 0, examined = 0;
	int ret;

	if (sa < 0)
		return sa;
	if (b != STORE_ORIGIN_ID && (sb = store_snap_slot(s, b, true)) < 0)
		return sb;
	if (*cursor == STORE_CHUNK_END || max == 0)
		return 0;
	ret = btree_seek(&s->tree, *cursor, 0, &c);
	/* per chunk: A's and B's own exceptions, and the rollback source's,
	 * which is the origin's content and that of snapshots taken after the
	 * rollback started where they have none of their own */
	chunk_t cur = STORE_CHUNK_END, la = STORE_ON_ORIGIN, lb = STORE_ON_ORIGIN,
		lr = STORE_ON_ORIGIN;
	bool pa = rb_post(s, (uint32_t)sa), pb = sb < 0 || rb_post(s, (uint32_t)sb);
	for (;;) {
		bool valid = ret >= 0 && c.valid;
		const uint8_t *e = valid ? btree_entry(&s->tree, &c) : NULL;
		uint64_t o = valid ? be_origin(e) : STORE_CHUNK_END;
		/* !valid also when the very first seek finds nothing (cursor
		 * past the last exception): then cur == o == END */
		if (o != cur || !valid) {
			/* finished chunk `cur` */
			if (la == STORE_ON_ORIGIN && pa)
				la = lr;
			if (lb == STORE_ON_ORIGIN && pb)
				lb = lr;
			if (cur != STORE_CHUNK_END && la != lb)
				out[n++] = cur;
			if (!valid) {
				*cursor = STORE_CHUNK_END;
				break;
			}
			if (n == max || examined >= CHANGED_SLICE) {
				*cursor = o;
				break;
			}
			cur = o;
			la = lb = lr = STORE_ON_ORIGIN;
		}
		if (mask_test(e + BE_MASK, (uint32_t)sa))
			la = be_store(e);
		if (sb >= 0 && mask_test(e + BE_MASK, (uint32_t)sb))
			lb = be_store(e);
		if (rb_source(s, e + BE_MASK))
			lr = be_store(e);
		examined++;
		ret = btree_next(&s->tree, &c);
	}
	btree_cursor_put(&s->tree, &c);
	return ret < 0 ? ret : (int)n;
}
