/*
 * src/store/engine.c - the exception engine: open/close and the
 * data-path operations (origin write, snapshot write, snapshot read);
 * transactions (commit, abort, checkpoint) are txn.c.
 *
 * Invariants kept by every operation (verified by store_check):
 *  - every exception owns a distinct allocated store chunk; the data space
 *    map's set bits are exactly the exceptions' chunks (plus queued frees
 *    until the commit that applies them);
 *  - for each origin chunk, each live snapshot's bit is set in at most one
 *    exception; no exception has an empty mask;
 *  - a mask bit is set only for live snapshots, ones awaiting cleanup,
 *    the snapshot being cloned (clone.c) and the source of a running
 *    rollback (rollback.c, which no operation here ever adds); at origin
 *    chunks its walk has not reached, the clone's bit is only ever set
 *    together with its parent's (origin writes give it the parent's
 *    copy-outs);
 *  - the usage counters (counters.h) count exactly the masks in the tree:
 *    every mask inserted or changed goes through cnt_exception().
 * A failed operation other than -ENOSPC/-EINVAL/-ENOENT/-EROFS may leave
 * the open transaction half done: the caller then calls store_abort().
 */
#include "src/store/store_int.h"

#include "ioengine/ioengine.h"
#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CACHE (64u << 20)

int store_scratch(struct store *s, size_t words)
{
	if (words <= s->scratch_cap)
		return 0;
	uint64_t *n = realloc(s->scratch, words * sizeof *n);
	if (!n)
		return err_set(ENOMEM, "out of memory");
	s->scratch = n;
	s->scratch_cap = words;
	return 0;
}

/* The engine header's fields live in struct store and its tree; the block
 * itself goes through the one codec in header.c.  */
int store_load_header(struct store *s)
{
	struct store_header h;
	struct bm_block *b;
	int ret = bm_get(s->bm, s->sb.engine.header_block, META_T_HEADER, &b);

	if (ret < 0)
		return err_prefix(-ret, "engine header");
	store_header_decode(b->data, &h);
	bm_put(s->bm, b);
	ret = store_header_check(&h, &s->sb.engine);
	if (ret < 0)
		return ret;
	s->tree.root = h.root;
	s->tree.height = h.height;
	s->tree.count = h.count;
	s->tree.nodes = h.nodes;
	s->next_id = h.next_id;
	s->cleanup_active = h.cleanup_active;
	s->cur_o = h.cur_o;
	s->cur_s = h.cur_s;
	cnt_from_header(s, &h);
	return 0;
}

int store_save_header(struct store *s)
{
	struct store_header h = {
		.root = s->tree.root, .height = s->tree.height,
		.count = s->tree.count, .nodes = s->tree.nodes,
		.next_id = s->next_id, .cleanup_active = s->cleanup_active,
		.cur_o = s->cur_o, .cur_s = s->cur_s,
	};
	cnt_to_header(s, &h);
	struct bm_block *b;
	int ret = bm_get(s->bm, s->sb.engine.header_block, META_T_HEADER, &b);

	if (ret < 0)
		return ret;
	bm_dirty(s->bm, b);
	store_header_encode(b->data, &h);
	bm_put(s->bm, b);
	s->tree.changed = false;
	s->header_dirty = false;
	return 0;
}

int store_open_dev(struct io_dev *dev, const struct store_open_opts *opts,
		   struct store **out)
{
	struct store_open_opts defaults = { 0 };
	struct store *s;
	int ret;

	if (!opts)
		opts = &defaults;
	s = calloc(1, sizeof *s);
	if (!s)
		return err_set(ENOMEM, "out of memory");
	s->dev = dev;
	s->readonly = opts->readonly;
	ret = csnap_sb_read(dev, &s->sb, &s->bad_sb_copies);
	if (ret < 0)
		goto fail;
	if (s->bad_sb_copies && !s->readonly)	/* check/dump report it themselves */
		log_warn("%s: %s superblock copy is invalid; using the other one",
			 io_dev_path(dev), s->bad_sb_copies & 1 ? "primary" : "backup");
	if (!s->readonly && !opts->old_format &&
	    (ret = csnap_sb_writable(&s->sb, io_dev_path(dev))) < 0)
		goto fail;
	const struct csnap_sb_engine *e = &s->sb.engine;
	if (e->version == 0) {
		ret = err_set(EINVAL, "store was never completely formatted (run mkstore again)");
		goto fail;
	}
	if (io_dev_size(dev) < s->sb.store_size) {
		ret = err_set(EINVAL, "store is truncated: %llu bytes, superblock says %llu",
			      (unsigned long long)io_dev_size(dev),
			      (unsigned long long)s->sb.store_size);
		goto fail;
	}
	s->mask_words = s->sb.mask_bits / 64;
	s->origin_chunks = (s->sb.origin_size + s->sb.chunk_size - 1) / s->sb.chunk_size;
	size_t cache = opts->cache_bytes ? opts->cache_bytes : DEFAULT_CACHE;
	ret = bm_create(dev, csnap_sb_tag(&s->sb), cache / META_BLOCK_SIZE, s->readonly, &s->bm);
	if (ret < 0)
		goto fail;
	ret = journal_open(s->bm, &s->sb, s->readonly, &s->j);
	if (ret < 0)
		goto fail;
	btree_init(&s->tree, s->bm, NULL, e->meta_start, s->sb.mask_bits / 8);
	ret = store_load_header(s);
	if (ret < 0)
		goto fail;
	ret = sm_open(s->bm, META_T_DBITMAP, e->dbitmap_start, e->data_chunks, &s->dsm);
	if (ret < 0)
		goto fail;
	ret = sm_open(s->bm, META_T_MBITMAP, e->mbitmap_start, e->meta_blocks, &s->msm);
	if (ret < 0)
		goto fail;
	s->tree.sm = s->msm;
	ret = st_load(&s->st, s->bm, e->table_start, s->sb.max_snapshots);
	if (ret < 0)
		goto fail;
	ret = cnt_load(s);
	if (ret < 0)
		goto fail;
	store_recompute_live(s);
	*out = s;
	return 0;
fail:
	if (!strstr(err_get(), io_dev_path(dev)))
		err_prefix(-ret, "%s", io_dev_path(dev));
	store_close(s);
	return ret;
}

int store_open(const char *path, const struct store_open_opts *opts, struct store **out)
{
	struct io_dev *dev;
	bool ro = opts && opts->readonly;
	int ret = io_dev_open(path, ro ? IO_DEV_RDONLY : IO_DEV_RDWR, &dev);

	if (ret < 0)
		return ret;
	ret = store_open_dev(dev, opts, out);
	if (ret < 0) {
		io_dev_close(dev);
		return ret;
	}
	(*out)->own_dev = true;
	return 0;
}

static void close_store(struct store *s, bool checkpoint)
{
	if (!s)
		return;
	if (checkpoint && store_commit_inflight(s)) {
		/* Home writes would run ahead of the journal: the next
		 * opener replays what became durable.  */
		log_warn("store: closed with a commit in flight: no checkpoint");
		checkpoint = false;
	}
	if (checkpoint && s->j && !s->readonly && journal_checkpoint(s->j) < 0)
		log_error("store: checkpoint at close failed: %s (the journal will be replayed)",
			  err_get());
	journal_close(s->j);
	sm_close(s->dsm);
	sm_close(s->msm);
	st_free(&s->st);
	cnt_free(s);
	btree_release(&s->tree);
	bm_destroy(s->bm);
	free(s->scratch);
	if (s->own_dev)
		io_dev_close(s->dev);
	free(s);
}

void store_close(struct store *s)
{
	close_store(s, true);
}

void store_close_nockpt(struct store *s)
{
	close_store(s, false);
}

struct io_dev *store_dev(const struct store *s) { return s->dev; }

uint64_t store_chunk_offset(const struct store *s, chunk_t c)
{
	return s->sb.engine.data_offset + c * (uint64_t)s->sb.chunk_size;
}

void store_get_info(const struct store *s, struct store_info *out)
{
	memset(out, 0, sizeof *out);
	out->sb = s->sb;
	out->chunk_size = s->sb.chunk_size;
	out->origin_chunks = s->origin_chunks;
	out->data_chunks = s->sb.engine.data_chunks;
	out->data_free = sm_free_count(s->dsm);
	out->meta_blocks = s->sb.engine.meta_blocks;
	out->meta_free = sm_free_count(s->msm);
	out->exceptions = s->tree.count;
	out->tree_height = s->tree.height;
	for (uint32_t i = 0; i < s->st.nslots; i++) {
		if (s->st.slot[i].flags & STORE_SNAP_LIVE)
			out->snapshots++;
		else if (s->st.slot[i].flags & STORE_SNAP_CLONING)
			out->snapshots_cloning++;
		else if (s->st.slot[i].id && !(s->st.slot[i].flags & ST_ROLLBACK))
			out->snapshots_deleting++;
	}
	out->txn_seq = journal_last_seq(s->j);
}

static int check_range(const struct store *s, chunk_t first, uint32_t count)
{
	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (first >= s->origin_chunks || count > s->origin_chunks - first)
		return err_set(EINVAL, "chunks %llu+%u beyond the origin (%llu chunks)",
			       (unsigned long long)first, count,
			       (unsigned long long)s->origin_chunks);
	return 0;
}

/* A snapshot covers the origin as it was when taken.  */
static int check_snap_range(const struct store *s, uint32_t slot, chunk_t first, uint32_t count)
{
	uint64_t n = store_snap_chunks(s, slot);

	if (first >= n || count > n - first)
		return err_set(EINVAL, "chunks %llu+%u beyond snapshot %u (%llu chunks)",
			       (unsigned long long)first, count, s->st.slot[slot].id,
			       (unsigned long long)n);
	return 0;
}

enum store_short store_enospc_kind(const struct store *s) { return s->short_kind; }

/*
 * Worst-case tree blocks for COUNT inserts in ascending key order (both
 * data-path operations insert in origin-chunk order) that land in at most
 * TOUCHED existing leaves.  Per level: each touched existing node may
 * split on its first insert (it may be full); after a split both halves
 * hold at most ceil(cap/2)+1 entries (an append split leaves a one-entry
 * right node and a full left one that later, larger keys never reach), so
 * any further split of the nodes this batch fills takes at least
 * cap/2 - 1 more inserts.  Each split inserts one entry one level up,
 * into at most as many existing parents as there were touched children;
 * above the root, each level costs a new root.
 */
uint64_t store_tree_need(const struct store *s, uint64_t count, uint64_t touched)
{
	uint64_t need = 0, ins = count, t = touched;
	uint32_t cap = s->tree.leaf_cap;

	for (uint32_t lvl = 0; ins && lvl < BTREE_MAX_DEPTH; lvl++) {
		uint64_t q = cap / 2 - 1, splits;
		if (lvl < s->tree.height) {
			splits = (t < ins ? t : ins) + ins / q;
			if (splits > ins)
				splits = ins;
		} else {
			need++;			/* new root, starts with 2 entries */
			splits = ins / q;
		}
		need += splits;
		t = t < splits ? t : splits;
		ins = splits;
		cap = BTREE_INT_CAP;
	}
	return need;
}

/* Room for N new exceptions whose inserts touch at most LEAVES existing
 * leaves: data chunks, tree blocks (worst case, store_tree_need) and the
 * journal room of the open transaction (every block this may dirty).
 * Sets *TREE_NEED for the caller's assertion.  */
static int room(struct store *s, uint64_t n, uint64_t leaves, uint64_t *tree_need)
{
	const struct csnap_sb_engine *e = &s->sb.engine;
	uint64_t dfree = sm_free_count(s->dsm), mfree = sm_free_count(s->msm);

	if (dfree < n) {
		s->short_kind = STORE_SHORT_DATA;
		return err_set(ENOSPC, "snapshot store full: data area has %llu free chunks, %llu needed",
			       (unsigned long long)dfree, (unsigned long long)n);
	}
	uint64_t need = store_tree_need(s, n, leaves);
	*tree_need = need;
	if (mfree < need) {
		s->short_kind = STORE_SHORT_META;
		return err_set(ENOSPC, "snapshot store metadata area full: %llu free tree blocks, "
			       "up to %llu needed for %llu chunks", (unsigned long long)mfree,
			       (unsigned long long)need, (unsigned long long)n);
	}
	uint64_t touched = leaves * s->tree.height;
	if (touched > s->tree.nodes)
		touched = s->tree.nodes;
	uint64_t dirty = bm_dirty_count(s->bm) + need + touched + 1 /* header */ +
		(n < e->dbitmap_blocks ? n : e->dbitmap_blocks) +
		(need < e->mbitmap_blocks ? need : e->mbitmap_blocks);
	if (dirty > store_txn_limit(s)) {
		s->short_kind = STORE_SHORT_TXN;
		return err_set(ENOSPC, "transaction too large for the journal: up to %llu blocks, "
			       "limit %u", (unsigned long long)dirty, store_txn_limit(s));
	}
	return 0;
}

/* Calls FN(ARG, entry) on every exception of origin chunks [first,
 * first + count), in key order; if LEAVES is not NULL, adds the number of
 * leaves the walk reaches to it (for the commit's room check).  A walk
 * from `first` must never return an earlier chunk: only a forged or
 * corrupt tree (every block checksummed and sorted, but a leaf outside its
 * parent's key range) can, and it is refused instead of letting FN index
 * in front of the caller's array.  */
int store_walk_range(struct store *s, chunk_t first, uint32_t count, uint64_t *leaves,
		      void (*fn)(void *arg, const uint8_t *e), void *arg)
{
	struct btree_cursor c;
	uint64_t last_leaf = 0;
	int ret = btree_seek(&s->tree, first, 0, &c);

	while (ret >= 0 && c.valid) {
		const uint8_t *e = btree_entry(&s->tree, &c);
		if (leaves && c.leaf->blocknr != last_leaf) {
			(*leaves)++;
			last_leaf = c.leaf->blocknr;
		}
		uint64_t o = be_origin(e);
		if (o >= first + count)
			break;
		if (o < first) {
			ret = err_set(EIO, "corrupt b-tree: exception for chunk %llu met while walking from chunk %llu",
				      (unsigned long long)o, (unsigned long long)first);
			break;
		}
		fn(arg, e);
		ret = btree_next(&s->tree, &c);
	}
	btree_cursor_put(&s->tree, &c);
	return ret < 0 ? ret : 0;
}

/* N new exceptions whose mask is the need mask NM (host words).  */
static void count_run(struct store *s, const uint64_t *nm, int64_t n)
{
	uint8_t mask[CSNAP_MAX_MASK_BYTES];

	for (uint32_t w = 0; w < s->mask_words; w++)
		put_le64(mask + 8 * w, nm[w]);
	cnt_exception(s, mask, n);
}

/* Pass 1 of an origin write: drop from need[] the snapshots an exception
 * already serves.  */
struct ow_walk { uint64_t *need; chunk_t first; uint32_t mw; };
static void ow_visit(void *arg, const uint8_t *e)
{
	const struct ow_walk *w = arg;
	uint64_t *nm = w->need + (be_origin(e) - w->first) * w->mw;

	for (uint32_t k = 0; k < w->mw; k++)
		nm[k] &= ~mask_word(e + BE_MASK, k);
}

/* Origin chunks a snapshot does not cover (the origin grew after it was
 * taken) are no part of it: no copy-out for it there.  */
void store_drop_short(const struct store *s, uint64_t *need, chunk_t first, uint32_t count)
{
	uint32_t mw = s->mask_words;

	for (uint32_t i = 0; i < s->st.nslots; i++) {
		if (!((s->users[i / 64] >> (i % 64)) & 1))
			continue;
		uint64_t end = store_snap_chunks(s, i);
		for (uint64_t c = end > first ? end : first; c < first + count; c++)
			need[(c - first) * mw + i / 64] &= ~(1ULL << (i % 64));
	}
}

int store_origin_write(struct store *s, chunk_t first, uint32_t count,
		       struct store_copy *out, uint32_t *nout)
{
	uint32_t mw = s->mask_words, n = 0;
	int ret;

	*nout = 0;
	ret = check_range(s, first, count);
	if (ret < 0 || count == 0)
		return ret;
	if (s->rb_slot >= 0 && (ret = store_rollback_busy(s, first, count)) < 0)
		return ret;
	bool any = false;
	for (uint32_t w = 0; w < mw; w++)
		any |= s->users[w] != 0;
	if (!any)
		return 0;
	/* pass 1: which chunks still serve some live snapshot from the origin */
	ret = store_scratch(s, (size_t)count * mw);
	if (ret < 0)
		return ret;
	uint64_t *need = s->scratch, leaves = 1;	/* + the leaves this range spans */
	for (uint32_t i = 0; i < count; i++)
		memcpy(need + (size_t)i * mw, s->users, mw * 8);
	if (first + count > s->short_min)	/* chunks added by a resize */
		store_drop_short(s, need, first, count);
	struct ow_walk ow = { need, first, mw };
	ret = store_walk_range(s, first, count, &leaves, ow_visit, &ow);
	if (ret < 0)
		return ret;
	store_clone_need(s, need, first, count);
	for (uint32_t i = 0; i < count; i++) {
		const uint64_t *nm = need + (size_t)i * mw;
		bool set = false;
		for (uint32_t w = 0; w < mw; w++)
			set |= nm[w] != 0;
		if (set) {
			/* compacted in place: n <= i */
			memmove(need + (size_t)n * mw, nm, mw * 8);
			out[n++].origin_chunk = first + i;
		}
	}
	ret = store_copyout(s, out, n, need, leaves);
	if (ret >= 0)
		*nout = n;
	return ret;
}

int store_copyout(struct store *s, struct store_copy *out, uint32_t n,
		  const uint64_t *need, uint64_t leaves)
{
	uint32_t mw = s->mask_words;
	int ret;

	if (n == 0)
		return 0;
	uint64_t tree_need = 0;
	ret = room(s, n, leaves, &tree_need);
	if (ret < 0)
		return ret;
	uint64_t mfree0 = sm_free_count(s->msm);	/* for the assertion below */
	(void)mfree0;
	/* pass 2: allocate and record; the usage counters once per run of
	 * equal masks (usually the whole request: every live snapshot), so
	 * their cost does not grow with chunks x snapshots.  A failure
	 * returns without them: the caller aborts the transaction. */
	uint8_t mask[CSNAP_MAX_MASK_BYTES];
	const uint64_t *run = NULL;
	int64_t run_n = 0;
	for (uint32_t k = 0; k < n; k++) {
		const uint64_t *nm = need + (size_t)k * mw;
		for (uint32_t w = 0; w < mw; w++)
			put_le64(mask + 8 * w, nm[w]);
		uint64_t d;
		ret = sm_alloc(s->dsm, &d);
		if (ret >= 0)
			ret = btree_insert(&s->tree, out[k].origin_chunk, d, mask);
		if (ret < 0)
			return err_prefix(-ret, "origin write");
		if (run && memcmp(run, nm, mw * 8) == 0) {
			run_n++;
		} else {
			if (run)
				count_run(s, run, run_n);
			run = nm;
			run_n = 1;
		}
		out[k].dst = d;
		out[k].src = STORE_ON_ORIGIN;
	}
	if (run)
		count_run(s, run, run_n);
	/* store_tree_need() is a true bound: no request runs out half done */
	CSNAP_ASSERT(mfree0 - sm_free_count(s->msm) <= tree_need);
	return 0;
}

/* Per chunk of a snapshot write, found in pass 1.  */
struct sw_plan {
	chunk_t cur;		/* exception holding the bit, or STORE_ON_ORIGIN */
	bool exclusive;		/* only live user of `cur` */
	bool source;		/* `cur` is the rollback source's exception, which
				 * the snapshot reads without its bit being there */
};

struct sw_walk { const struct store *s; struct sw_plan *plan; chunk_t first; uint32_t bit; };
static void sw_visit(void *arg, const uint8_t *e)
{
	const struct sw_walk *w = arg;
	uint32_t bit = w->bit;

	if (!mask_test(e + BE_MASK, bit)) {
		/* a snapshot taken after a rollback started reads the source's
		 * exception at a pending chunk unless it has its own */
		struct sw_plan *p = &w->plan[be_origin(e) - w->first];
		if (p->cur == STORE_ON_ORIGIN && rb_post(w->s, bit) && rb_source(w->s, e + BE_MASK))
			*p = (struct sw_plan){ be_store(e), false, true };
		return;
	}
	/* a rollback source sharing it counts as another user: the origin
	 * reads this chunk until the rollback has moved it */
	bool others = false;
	for (uint32_t k = 0; k < w->s->mask_words; k++) {
		uint64_t m = mask_word(e + BE_MASK, k) & w->s->keep[k];
		if (k == bit / 64)
			m &= ~(1ULL << (bit % 64));
		others |= m != 0;
	}
	w->plan[be_origin(e) - w->first] = (struct sw_plan){ be_store(e), !others, false };
}

int store_snapshot_write(struct store *s, uint32_t snap_id, chunk_t first,
			 uint32_t count, chunk_t *dst,
			 struct store_copy *copies, uint32_t *ncopies)
{
	struct btree_cursor c;
	uint32_t mw = s->mask_words, nalloc = 0, nc = 0;
	int slot, ret;

	*ncopies = 0;
	ret = check_range(s, first, count);
	if (ret < 0 || count == 0)
		return ret;
	slot = store_snap_slot(s, snap_id, true);
	if (slot < 0)
		return slot;
	if ((ret = check_snap_range(s, (uint32_t)slot, first, count)) < 0)
		return ret;
	if (slot == s->clone_parent)
		return err_set(EBUSY, "snapshot \"%s\" is being cloned into \"%s\": writes wait until that is done",
			       s->st.slot[slot].name, s->st.slot[s->clone_slot].name);
	uint32_t bit = (uint32_t)slot;
	ret = store_scratch(s, (size_t)count * 2);
	if (ret < 0)
		return ret;
	struct sw_plan *plan = (struct sw_plan *)s->scratch;
	uint64_t leaves = 1;
	_Static_assert(sizeof *plan <= 2 * sizeof *s->scratch, "plan fits the scratch");
	for (uint32_t i = 0; i < count; i++)
		plan[i] = (struct sw_plan){ STORE_ON_ORIGIN, false, false };
	struct sw_walk sw = { s, plan, first, bit };
	ret = store_walk_range(s, first, count, &leaves, sw_visit, &sw);
	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < count; i++)
		nalloc += !plan[i].exclusive;
	uint64_t tree_need = 0;
	if (nalloc && (ret = room(s, nalloc, leaves, &tree_need)) < 0)
		return ret;
	uint64_t mfree0 = sm_free_count(s->msm);	/* for the assertion below */
	(void)mfree0;
	uint8_t mask[CSNAP_MAX_MASK_BYTES];
	memset(mask, 0, mw * 8);
	mask[bit / 8] = (uint8_t)(1u << (bit % 8));
	for (uint32_t i = 0; i < count; i++) {
		chunk_t oc = first + i;
		if (plan[i].exclusive) {
			dst[i] = plan[i].cur;
			continue;
		}
		if (plan[i].cur != STORE_ON_ORIGIN && !plan[i].source) {
			/* take our bit off the shared exception */
			ret = btree_seek(&s->tree, oc, plan[i].cur, &c);
			if (ret >= 0 && (!c.valid || be_origin(btree_entry(&s->tree, &c)) != oc ||
					 be_store(btree_entry(&s->tree, &c)) != plan[i].cur))
				ret = err_set(EIO, "exception %llu/%llu vanished",
					      (unsigned long long)oc, (unsigned long long)plan[i].cur);
			if (ret >= 0) {
				btree_cursor_dirty(&s->tree, &c);
				uint8_t *m = be_mask(btree_entry(&s->tree, &c));
				cnt_bit(s, m, bit, false);	/* usage counters */
				m[bit / 8] &= (uint8_t)~(1u << (bit % 8));
			}
			btree_cursor_put(&s->tree, &c);
			if (ret < 0)
				return err_prefix(-ret, "snapshot write");
		}
		uint64_t d;
		ret = sm_alloc(s->dsm, &d);
		if (ret >= 0)
			ret = btree_insert(&s->tree, oc, d, mask);
		if (ret < 0)
			return err_prefix(-ret, "snapshot write");
		cnt_exception(s, mask, +1);
		dst[i] = d;
		copies[nc++] = (struct store_copy){ oc, d, plan[i].cur };
	}
	CSNAP_ASSERT(mfree0 - sm_free_count(s->msm) <= tree_need);
	*ncopies = nc;
	return 0;
}

/* The snapshot's own exception wins; a snapshot taken after a running
 * rollback started (POST) reads the source's exception where it has none
 * (entries of a chunk come in any order, so the source's only fills a
 * chunk still on the origin).  */
struct sr_walk { const struct store *s; chunk_t *out; chunk_t first; uint32_t w; uint64_t bitm; bool post; };
static inline void sr_entry(const struct sr_walk *r, const uint8_t *e, uint64_t o)
{
	if (mask_word(e + BE_MASK, r->w) & r->bitm)
		r->out[o - r->first] = be_store(e);
	else if (r->post && r->out[o - r->first] == STORE_ON_ORIGIN && rb_source(r->s, e + BE_MASK))
		r->out[o - r->first] = be_store(e);
}
static void sr_visit(void *arg, const uint8_t *e)
{
	sr_entry(arg, e, be_origin(e));
}

int store_snapshot_read(struct store *s, uint32_t snap_id, chunk_t first,
			uint32_t count, chunk_t *out)
{
	int slot;
	/* the lookup's first cache miss (its finger) overlaps the checks */
	const void *line = btree_peek_first_line(&s->tree, first);

	if (line)
		__builtin_prefetch(line);
	if (first >= s->origin_chunks || count > s->origin_chunks - first)
		return err_set(EINVAL, "chunks %llu+%u beyond the origin (%llu chunks)",
			       (unsigned long long)first, count,
			       (unsigned long long)s->origin_chunks);
	slot = store_snap_slot(s, snap_id, true);
	if (slot < 0)
		return slot;
	int ret = check_snap_range(s, (uint32_t)slot, first, count);
	if (ret < 0)
		return ret;
	struct sr_walk sr = { s, out, first, (uint32_t)slot / 64, 1ULL << (slot % 64),
			      rb_post(s, (uint32_t)slot) };
	for (uint32_t i = 0; i < count; i++)
		out[i] = STORE_ON_ORIGIN;
	/* fast path: cached blocks, no pins, as long as the range stays in
	 * one leaf (the common case) */
	uint32_t idx, nr;
	const uint8_t *leaf = btree_peek(&s->tree, first, 0, &idx, &nr);
	if (leaf) {
		const uint8_t *e = leaf + BTREE_NODE_HDR + (size_t)idx * s->tree.esize;
		for (; idx < nr; idx++, e += s->tree.esize) {
			uint64_t o = be_origin(e);
			if (o >= first + count)
				return 0;
			if (o < first)
				break;	/* corrupt: the slow path says so */
			sr_entry(&sr, e, o);
		}
		/* ran off the leaf: the slow path redoes the range */
		for (uint32_t i = 0; i < count; i++)
			out[i] = STORE_ON_ORIGIN;
	}
	return store_walk_range(s, first, count, NULL, sr_visit, &sr);
}
