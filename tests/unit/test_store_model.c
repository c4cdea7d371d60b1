/*
 * tests/unit/test_store_model.c - randomized model-based test of the
 * exception engine: 100,000+ random origin writes, snapshot writes,
 * creates, deletes, cleanups, commits and reopens, checked against an
 * in-memory model of what the origin and every snapshot must read.
 * Snapshots of snapshots (clone.c) to depth 8: a clone starts from a
 * random live snapshot, its walk advances in random steps between the
 * other operations (origin writes, reopens, cleanups, deletes of other
 * snapshots); writes to and deletes of its parent must fail with EBUSY
 * meanwhile; once live it reads what its parent read when it started,
 * and is written, cloned and deleted (parents too) like any snapshot.
 *
 * Data is simulated by version numbers: the test keeps the version held by
 * every origin chunk and every store chunk and performs the copies the
 * engine asks for itself, exactly as the server would.  A read is correct
 * when the version found (through store_snapshot_read) equals the model's.
 *
 * Rollbacks run through it: a start makes the model's origin the
 * snapshot's content at once; background steps (a few chunks, sometimes
 * left half done - prepared, committed and moved but not finished - across
 * other operations and reopens, as a master that dies mid-step leaves
 * them), origin writes that meet a pending chunk and roll it first,
 * snapshot writes, creates, deletes (of the rolled-back snapshot: refused)
 * and cleanups all happen in the middle of one.  The origin is read
 * through store_origin_read() and the changed-chunk list is checked
 * against the model.
 * The store runs near full so the ENOSPC path and the victim policy are
 * exercised.  store_check must be clean at the end, and the usage
 * counters equal a walk of the tree after every batch of 250 operations.
 * The origin starts at 3/4 of ORIGIN_CHUNKS and is resized (grown) now
 * and then: each snapshot keeps the size it was taken at (its reads and
 * writes beyond it are refused), the new chunks belong only to the
 * origin and to later snapshots.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"

#include <errno.h>
#include <inttypes.h>

#define ORIGIN_CHUNKS	1024
#define MAXSNAP		64
#define CHUNK		4096
#define MAXRANGE	16

struct model {
	uint64_t origin[ORIGIN_CHUNKS];	/* what the origin must read */
	uint64_t phys[ORIGIN_CHUNKS];	/* what the origin device holds */
	uint32_t ids[MAXSNAP];		/* live snapshot ids, 0 = unused */
	char names[MAXSNAP][32];
	unsigned depth[MAXSNAP];	/* 0: of the origin; clone: parent's + 1 */
	bool cloning[MAXSNAP];		/* ids[i] is a clone whose walk runs */
	int clone_idx, clone_parent;	/* the running clone, -1: none */
	unsigned max_depth;
	uint64_t snap[MAXSNAP][ORIGIN_CHUNKS];
	uint64_t *storev;		/* version held by each store chunk */
	uint64_t nstore;
	uint64_t ver;
	unsigned nsnaps;
	uint64_t ochunks;		/* the origin's current size */
	uint64_t snapsize[MAXSNAP];	/* each snapshot's, at its creation */
	bool rolled;			/* a rollback has moved data (versions
					 * are no longer unique) */
};

static struct model M = { .clone_idx = -1, .clone_parent = -1 };
static unsigned long long stat_ops[20];
enum { ST_RB_START = 14, ST_RB_DONE, ST_RB_STEP, ST_RB_WSTEP, ST_RB_MIDOPS, ST_RB_REFUSED };
#define MAX_DEPTH	8

/* A background step prepared, committed and moved, not finished yet.  */
static struct {
	bool on;
	struct store_copy moves[8];
	uint32_t nm;
	chunk_t advance;
} inflight;

static int find_idx(uint32_t id)
{
	for (int i = 0; i < MAXSNAP; i++)
		if (M.ids[i] == id)
			return i;
	return -1;
}

/* Pipelined commits (store_commit_begin/end), as the master runs them:
 * the commit's I/O is done a few operations later, which meanwhile go
 * into the next transaction.  Its own random sequence, so the run's
 * operations are the same as without it.  */
static struct { bool on; struct store_commit_io io; } pl;
static unsigned pl_seed = 4242;
static unsigned long pl_begun, pl_ops;

static void pl_end(struct store *s)
{
	if (!pl.on)
		return;
	struct io_dev *d = store_dev(s);
	TU_OK(io_dev_flush(d));
	for (unsigned i = 0; i < pl.io.n; i++)
		TU_OK(io_dev_pwrite(d, pl.io.buf[i], pl.io.len[i], pl.io.off[i]));
	TU_OK(io_dev_flush(d));
	TU_OK(store_commit_end(s, 0));
	pl.on = false;
}

/* Every plain commit ends the one in flight first (the master's order). */
static int commit(struct store *s)
{
	pl_end(s);
	return store_commit(s);
}

/* A commit, pipelined half of the time.  */
static void commit_maybe_pipelined(struct store *s)
{
	pl_end(s);
	int r = rand_r(&pl_seed) % 2 ? -EAGAIN : store_commit_begin(s, &pl.io);
	if (r == -EAGAIN) {	/* plain, or it frees data chunks */
		TU_OK(store_commit(s));
		return;
	}
	TU_OK(r);
	assert_false(store_txn_pending(s));
	pl.on = pl.io.n > 0;
	pl_begun += pl.on;
}

static void drain_cleanup(struct store *s)
{
	int r;
	while ((r = store_cleanup(s, 1000)) > 0)
		;
	TU_OK(r);
	TU_OK(commit(s));
}

/* Store-full policy as the server does it: release a victim, free, retry. */
static bool release_victim(struct store *s)
{
	uint32_t id;
	if (store_pick_victim(s, NULL, NULL, &id) < 0)
		return false;
	TU_OK(store_snapshot_delete(s, id));
	int i = find_idx(id);
	assert_true(i >= 0 && !M.cloning[i] && i != M.clone_parent);
	M.ids[i] = 0;
	M.nsnaps--;
	drain_cleanup(s);
	stat_ops[6]++;
	return true;
}

static int random_live(void)
{
	if (!M.nsnaps)
		return -1;
	for (;;) {
		int i = rand() % MAXSNAP;
		if (M.ids[i] && !M.cloning[i])
			return i;
	}
}

/* Copy-outs from the origin device, as the server does them.  */
static void do_copies(const struct store_copy *cp, uint32_t ncp)
{
	for (uint32_t i = 0; i < ncp; i++) {
		assert_int_equal(cp[i].src, STORE_ON_ORIGIN);
		assert_true(cp[i].dst < M.nstore);
		M.storev[cp[i].dst] = M.phys[cp[i].origin_chunk];
	}
}

/* One rollback step over CHUNKS, as the master runs it: prepare, copy,
 * commit, move onto the origin, then (unless LEAVE) finish and commit. */
static void rollback_step(struct store *s, const chunk_t *chunks, uint32_t n, chunk_t advance,
			  bool leave)
{
	struct store_copy cp[MAXRANGE], mv[MAXRANGE];
	uint32_t ncp, nmv;
	int r;

	assert_true(n <= MAXRANGE);
	while ((r = store_rollback_prepare(s, chunks, n, cp, &ncp, mv, &nmv)) == -ENOSPC)
		if (!release_victim(s))
			fail_msg("ENOSPC in a rollback step with no snapshot left to release");
	TU_OK(r);
	assert_true(nmv <= n && ncp <= nmv);
	do_copies(cp, ncp);
	TU_OK(commit(s));		/* copy-outs durable before the origin changes */
	M.rolled |= nmv > 0;
	for (uint32_t i = 0; i < nmv; i++) {
		assert_int_equal(mv[i].dst, STORE_ON_ORIGIN);
		assert_true(mv[i].src < M.nstore);
		M.phys[mv[i].origin_chunk] = M.storev[mv[i].src];
	}
	if (leave && nmv <= 8) {
		inflight.on = true;
		memcpy(inflight.moves, mv, nmv * sizeof *mv);
		inflight.nm = nmv;
		inflight.advance = advance;
		return;
	}
	TU_OK(store_rollback_finish(s, mv, nmv, advance));
	if (rand() % 2)
		TU_OK(commit(s));
}

static bool rollback_active(struct store *s)
{
	struct store_rollback rb;
	store_rollback_get(s, &rb);
	return rb.active;
}

/* The background part: finish the step in flight, or run the next one. */
static void rollback_background(struct store *s)
{
	if (inflight.on) {
		inflight.on = false;
		TU_OK(store_rollback_finish(s, inflight.moves, inflight.nm, inflight.advance));
		if (inflight.advance == STORE_CHUNK_END)
			stat_ops[ST_RB_DONE]++;
		return;
	}
	chunk_t list[8], advance;
	uint32_t n;
	TU_OK(store_rollback_next(s, list, 1 + (uint32_t)(rand() % 8), &n, &advance));
	assert_true(advance == STORE_CHUNK_END || advance > 0);
	bool leave = rand() % 4 == 0;
	rollback_step(s, list, n, advance, leave);
	stat_ops[ST_RB_STEP]++;
	if (!inflight.on && advance == STORE_CHUNK_END) {
		stat_ops[ST_RB_DONE]++;
		assert_false(rollback_active(s));
	}
}

static void do_rollback_start(struct store *s)
{
	int i = random_live();
	if (i < 0)
		return;
	bool del = rand() % 3 == 0;
	int r = store_rollback_start(s, M.ids[i], del);
	if (r == -ENOSPC || r == -EBUSY) {
		assert_false(rollback_active(s));	/* no slot to keep it */
		drain_cleanup(s);
		return;
	}
	TU_OK(r);
	/* beyond its size the origin keeps what it has */
	memcpy(M.origin, M.snap[i], M.snapsize[i] * sizeof M.origin[0]);
	if (del) {
		M.ids[i] = 0;
		M.nsnaps--;
	}
	struct store_rollback rb;
	store_rollback_get(s, &rb);
	assert_true(rb.active && rb.cursor == 0);
	stat_ops[ST_RB_START]++;
	/* a second one is refused while this one runs */
	int j = random_live();
	if (j >= 0)
		assert_int_equal(store_rollback_start(s, M.ids[j], false), -EBUSY);
}

/* Which chunks of an origin write must be copied out: exactly those some
 * snapshot covering them still reads from the origin device.  Versions are
 * unique until a rollback moves a store chunk's version onto the origin;
 * a snapshot that still holds that store chunk does not read the origin
 * (its lookup says so; a clone whose walk runs reads as its parent).  */
static void origin_want(struct store *s, uint64_t first, uint32_t n, bool *want)
{
	for (uint32_t c = 0; c < n; c++) {
		want[c] = false;
		for (int i = 0; i < MAXSNAP && !want[c]; i++) {
			if (!M.ids[i] || first + c >= M.snapsize[i] ||
			    M.snap[i][first + c] != M.phys[first + c])
				continue;
			if (!M.rolled) {
				want[c] = true;
				continue;
			}
			int j = M.cloning[i] ? M.clone_parent : i;
			chunk_t loc;
			TU_OK(store_snapshot_read(s, M.ids[j], first + c, 1, &loc));
			want[c] = loc == STORE_ON_ORIGIN;
		}
	}
}

static void do_origin_write(struct store *s, uint64_t first, uint32_t n)
{
	struct store_copy cp[MAXRANGE];
	uint32_t ncp;
	int r;

	bool want[MAXRANGE];
	for (;;) {
		origin_want(s, first, n, want);
		r = store_origin_write(s, first, n, cp, &ncp);
		if (r == -ENOSPC) {
			if (!release_victim(s))
				fail_msg("ENOSPC with no snapshot left to release");
			continue;
		}
		if (r != -EAGAIN)
			break;
		/* chunks still to roll back: the master rolls them first */
		chunk_t loc[MAXRANGE], pend[MAXRANGE];
		uint32_t np = 0;
		assert_true(rollback_active(s));
		TU_OK(store_origin_read(s, first, n, loc));
		for (uint32_t i = 0; i < n; i++)
			if (loc[i] != STORE_ON_ORIGIN)
				pend[np++] = first + i;
		assert_true(np > 0);
		rollback_step(s, pend, np, 0, false);
		stat_ops[ST_RB_WSTEP]++;
	}
	TU_OK(r);
	bool copied[MAXRANGE] = { false };
	for (uint32_t i = 0; i < ncp; i++) {
		assert_true(cp[i].origin_chunk >= first && cp[i].origin_chunk < first + n);
		copied[cp[i].origin_chunk - first] = true;
	}
	for (uint32_t c = 0; c < n; c++)
		if (want[c] != copied[c])
			fail_msg("origin write of chunk %" PRIu64 ": copied %d, model says %d",
				 first + c, copied[c], want[c]);
	do_copies(cp, ncp);
	/* the copies must be durable before the exceptions commit; the
	 * simulated data needs no flush, the metadata commit is tested */
	if (ncp && rand() % 8 == 0)
		TU_OK(commit(s));
	for (uint32_t i = 0; i < n; i++)
		M.phys[first + i] = M.origin[first + i] = ++M.ver;
}

static void do_snapshot_write(struct store *s, int idx, uint64_t first, uint32_t n)
{
	struct store_copy cp[MAXRANGE];
	chunk_t dst[MAXRANGE];
	uint32_t ncp;
	int r;

	if (idx == M.clone_parent) {
		/* its content must stay put under the clone's walk */
		assert_int_equal(store_snapshot_write(s, M.ids[idx], first, n, dst, cp, &ncp), -EBUSY);
		stat_ops[10]++;
		return;
	}
	while ((r = store_snapshot_write(s, M.ids[idx], first, n, dst, cp, &ncp)) == -ENOSPC) {
		if (!release_victim(s))
			fail_msg("ENOSPC with no snapshot left to release");
		if (!M.ids[idx])
			return;	/* we released the snapshot being written */
	}
	TU_OK(r);
	for (uint32_t i = 0; i < ncp; i++)
		M.storev[cp[i].dst] = cp[i].src == STORE_ON_ORIGIN ? M.phys[cp[i].origin_chunk]
								   : M.storev[cp[i].src];
	for (uint32_t i = 0; i < n; i++) {
		assert_true(dst[i] < M.nstore);
		M.storev[dst[i]] = ++M.ver;
		M.snap[idx][first + i] = M.ver;
	}
}

static void verify_range(struct store *s, int idx, uint64_t first, uint32_t n)
{
	chunk_t loc[ORIGIN_CHUNKS];

	TU_OK(store_snapshot_read(s, M.ids[idx], first, n, loc));
	for (uint32_t i = 0; i < n; i++) {
		uint64_t got = loc[i] == STORE_ON_ORIGIN ? M.phys[first + i] : M.storev[loc[i]];
		if (got != M.snap[idx][first + i])
			fail_msg("snapshot %u chunk %" PRIu64 ": read version %" PRIu64 ", model %" PRIu64,
				 M.ids[idx], first + i, got, M.snap[idx][first + i]);
	}
}

/* Each live snapshot answers to its model name, and only to it.  */
static void verify_name(struct store *s, int idx)
{
	struct store_snapshot sn;
	if (store_snapshot_find(s, M.names[idx], &sn) < 0 || sn.id != M.ids[idx])
		fail_msg("snapshot %u: name %s not found or another snapshot's", M.ids[idx], M.names[idx]);
	TU_OK(store_snapshot_get(s, M.ids[idx], &sn));
	assert_string_equal(sn.name, M.names[idx]);
}

static void verify_origin(struct store *s, uint64_t first, uint32_t n)
{
	chunk_t loc[ORIGIN_CHUNKS];

	TU_OK(store_origin_read(s, first, n, loc));
	for (uint32_t i = 0; i < n; i++) {
		uint64_t got = loc[i] == STORE_ON_ORIGIN ? M.phys[first + i] : M.storev[loc[i]];
		if (got != M.origin[first + i])
			fail_msg("origin chunk %" PRIu64 ": read version %" PRIu64 ", model %" PRIu64,
				 first + i, got, M.origin[first + i]);
	}
}

/* A chunk of snapshot IDX missing from its changed-chunk list against the
 * origin must read the same in both.  */
static void verify_changed(struct store *s, int idx)
{
	static chunk_t list[ORIGIN_CHUNKS];
	bool listed[ORIGIN_CHUNKS] = { false };
	chunk_t cur = 0;

	while (cur != STORE_CHUNK_END) {
		int n = store_changed(s, M.ids[idx], STORE_ORIGIN_ID, &cur, list, ORIGIN_CHUNKS);
		TU_OK(n);
		for (int i = 0; i < n; i++)
			listed[list[i]] = true;
	}
	for (uint32_t c = 0; c < M.snapsize[idx]; c++)
		if (!listed[c] && M.snap[idx][c] != M.origin[c])
			fail_msg("snapshot %u chunk %u differs from the origin but is not listed as changed",
				 M.ids[idx], c);
}

static void verify_all(struct store *s)
{
	chunk_t loc[1];

	verify_origin(s, 0, M.ochunks);
	for (int i = 0; i < MAXSNAP; i++)
		if (M.ids[i] && !M.cloning[i]) {
			verify_range(s, i, 0, (uint32_t)M.snapsize[i]);
			verify_name(s, i);
			verify_changed(s, i);
			/* beyond its size: refused, not read from the origin */
			if (M.snapsize[i] < M.ochunks)
				assert_int_equal(store_snapshot_read(s, M.ids[i], M.snapsize[i], 1, loc),
						 -EINVAL);
		}
}

/* The store device grows by 1 MiB and csnap grow adds it: the new data
 * chunks are allocatable, everything else reads the same.  */
static void do_grow(struct store *s, const char *path)
{
	struct store_info info;
	uint64_t added;

	TU_OK(commit(s));
	store_get_info(s, &info);
	if (truncate(path, (off_t)(info.sb.store_size + (1u << 20))) < 0)
		fail_msg("truncate %s", path);
	TU_OK(store_grow(s, &added));
	assert_true(added > 0);
	store_get_info(s, &info);
	assert_int_equal(info.data_chunks, M.nstore + added);
	M.storev = realloc(M.storev, info.data_chunks * sizeof *M.storev);
	memset(M.storev + M.nstore, 0, added * sizeof *M.storev);
	M.nstore = info.data_chunks;
	TU_OK(store_grow(s, &added));	/* again: nothing to add */
	assert_int_equal(added, 0);
	stat_ops[12 + 1]++;
}

/* The origin grows by 1..4 chunks (up to ORIGIN_CHUNKS); a shrink is
 * refused and changes nothing.  */
static void do_resize(struct store *s)
{
	struct store_info info;

	if (M.ochunks == ORIGIN_CHUNKS)
		return;
	pl_end(s);
	assert_int_equal(store_origin_resize(s, (M.ochunks - 1) * CHUNK), -EINVAL);
	uint64_t n = M.ochunks + 1 + (uint64_t)(rand() % 4);
	M.ochunks = n < ORIGIN_CHUNKS ? n : ORIGIN_CHUNKS;
	TU_OK(store_origin_resize(s, M.ochunks * CHUNK));
	store_get_info(s, &info);
	assert_int_equal(info.origin_chunks, M.ochunks);
	stat_ops[12]++;
}

/* A new clone of a live snapshot (biased towards the deepest, so chains
 * reach MAX_DEPTH), or the next step of the running one.  */
static void do_clone(struct store *s, unsigned long op)
{
	if (M.clone_idx >= 0) {
		int r = store_clone_step(s, 1 + (unsigned)(rand() % 1000));
		TU_OK(r);
		stat_ops[8]++;
		if (r == 0) {
			int i = M.clone_idx;
			uint32_t parent;
			assert_int_equal(store_clone_pending(s, &parent), 0);
			M.cloning[i] = false;
			M.clone_idx = M.clone_parent = -1;
			M.nsnaps++;
			if (M.depth[i] > M.max_depth)
				M.max_depth = M.depth[i];
			stat_ops[7]++;
			verify_range(s, i, 0, (uint32_t)M.snapsize[i]);
		}
		return;
	}
	int p = -1;
	if (rand() % 5) {
		for (int i = 0; i < MAXSNAP; i++)
			if (M.ids[i] && !M.cloning[i] && M.depth[i] < MAX_DEPTH &&
			    (p < 0 || M.depth[i] > M.depth[p]))
				p = i;
	} else {
		p = random_live();
	}
	if (p < 0 || M.depth[p] >= MAX_DEPTH)
		return;
	char name[32];
	uint32_t id, parent;
	snprintf(name, sizeof name, "c%lu", op);
	int r = store_snapshot_clone(s, name, M.ids[p], rand() % 4, NULL, &id);
	if (r == -ENOSPC || r == -EBUSY) {
		drain_cleanup(s);
		return;
	}
	TU_OK(r);
	assert_int_equal(store_clone_pending(s, &parent), id);
	assert_int_equal(parent, M.ids[p]);
	/* not readable while its walk runs; its name is taken */
	chunk_t loc;
	assert_int_equal(store_snapshot_read(s, id, 0, 1, &loc), -ENOENT);
	assert_int_equal(store_snapshot_create(s, name, 0, &parent), -EEXIST);
	int i = find_idx(0);
	assert_true(i >= 0);
	M.ids[i] = id;
	snprintf(M.names[i], sizeof M.names[i], "%s", name);
	M.cloning[i] = true;
	M.depth[i] = M.depth[p] + 1;
	M.clone_idx = i;
	M.clone_parent = p;
	memcpy(M.snap[i], M.snap[p], sizeof M.snap[p]);
	M.snapsize[i] = M.snapsize[p];
	stat_ops[9]++;
}

static void test_model(void **state)
{
	(void)state;
	unsigned long nops = getenv("STORE_MODEL_OPS") ? strtoul(getenv("STORE_MODEL_OPS"), NULL, 0) : 100000;
	unsigned long check_every = getenv("STORE_MODEL_CHECK_EVERY") ? strtoul(getenv("STORE_MODEL_CHECK_EVERY"), NULL, 0) : 0;
	srand(getenv("STORE_MODEL_SEED") ? (unsigned)atoi(getenv("STORE_MODEL_SEED")) : 12345);
	M.ochunks = ORIGIN_CHUNKS * 3 / 4;
	char *path = tu_mkstore("model", 24 << 20, CHUNK, M.ochunks * CHUNK, MAXSNAP);
	struct store_open_opts o = { .cache_bytes = 256 * 4096 };	/* small: evictions happen */
	struct store *s;
	struct store_info info;

	TU_OK(store_open(path, &o, &s));
	store_get_info(s, &info);
	M.nstore = info.data_chunks;
	M.storev = calloc(M.nstore, sizeof *M.storev);
	print_message("store: %" PRIu64 " data chunks, %" PRIu64 " tree blocks\n",
		      info.data_chunks, info.meta_blocks);

	for (unsigned long op = 0; op < nops; op++) {
		if (pl.on) {
			pl_ops++;
			if (rand_r(&pl_seed) % 4 == 0)
				pl_end(s);
		}
		int k = rand() % 100;
		uint32_t n = 1 + (uint32_t)(rand() % MAXRANGE);
		uint64_t first = (uint64_t)(rand() % (M.ochunks - n + 1));
		int i = k >= 40 && k < 80 ? random_live() : -1;
		if (i >= 0 && first + n > M.snapsize[i]) {
			/* this snapshot is smaller than the origin: stay inside
			 * it, and see that beyond it is refused */
			chunk_t dst[MAXRANGE];
			struct store_copy cp[MAXRANGE];
			uint32_t ncp;
			assert_int_equal(store_snapshot_write(s, M.ids[i], first, n, dst, cp, &ncp), -EINVAL);
			assert_int_equal(store_snapshot_read(s, M.ids[i], first, n, dst), -EINVAL);
			first = (uint64_t)(rand() % (M.snapsize[i] - n + 1));
		}
		bool active = rollback_active(s);
		if (active)
			stat_ops[ST_RB_MIDOPS]++;
		if (!active && rand() % 50 == 0) {
			do_rollback_start(s);
			continue;
		}
		if (active && rand() % 6 == 0) {
			rollback_background(s);
			continue;
		}
		if (k < 40) {
			do_origin_write(s, first, n);
			stat_ops[0]++;
		} else if (k < 60) {
			if (i >= 0) {
				do_snapshot_write(s, i, first, n);
				stat_ops[1]++;
			}
		} else if (k < 80) {
			if (i >= 0)
				verify_range(s, i, first, n);
			verify_origin(s, first, n);
		} else if (k < 83) {
			do_clone(s, op);
		} else if (k < 86) {
			uint32_t id;
			char name[32];
			snprintf(name, sizeof name, "s%lu", op);
			int r = store_snapshot_create(s, name, rand() % 4, &id);
			if (r == -ENOSPC || r == -EBUSY) {
				drain_cleanup(s);
				continue;
			}
			TU_OK(r);
			i = find_idx(0);
			assert_true(i >= 0);
			M.ids[i] = id;
			M.depth[i] = 0;
			snprintf(M.names[i], sizeof M.names[i], "%s", name);
			memcpy(M.snap[i], M.origin, sizeof M.origin);
			M.snapsize[i] = M.ochunks;
			M.nsnaps++;
			stat_ops[2]++;
		} else if (k < 90) {
			if (M.clone_idx >= 0 && rand() % 400 == 0) {
				/* abandon the running clone */
				TU_OK(store_snapshot_delete(s, M.ids[M.clone_idx]));
				M.ids[M.clone_idx] = 0;
				M.cloning[M.clone_idx] = false;
				M.clone_idx = M.clone_parent = -1;
				assert_int_equal(store_clone_pending(s, NULL), 0);
				stat_ops[11]++;
				continue;
			}
			i = random_live();
			if (i >= 0 && i == M.clone_parent) {
				assert_int_equal(store_snapshot_delete(s, M.ids[i]), -EBUSY);
			} else if (i >= 0) {
				int r = store_snapshot_delete(s, M.ids[i]);
				if (r == -EBUSY) {
					/* only the snapshot being rolled back to */
					struct store_rollback rb;
					store_rollback_get(s, &rb);
					assert_true(rb.active && rb.snap_id == M.ids[i]);
					stat_ops[ST_RB_REFUSED]++;
					continue;
				}
				TU_OK(r);
				M.ids[i] = 0;
				M.nsnaps--;
				stat_ops[3]++;
			}
		} else if (k < 91) {
			/* rename; the old name must be free afterwards */
			i = random_live();
			if (i >= 0) {
				char name[32], old[32];
				struct store_snapshot sn;
				snprintf(name, sizeof name, "r%lu", op);
				snprintf(old, sizeof old, "%s", M.names[i]);
				TU_OK(store_snapshot_rename(s, M.ids[i], name));
				snprintf(M.names[i], sizeof M.names[i], "%s", name);
				assert_true(store_snapshot_find(s, old, &sn) < 0);
				verify_name(s, i);
				stat_ops[5]++;
			}
		} else if (k < 95) {
			int r = store_cleanup(s, 1 + (unsigned)(rand() % 200));
			TU_OK(r);
		} else if (k < 99) {
			if (rand() % 32 == 0)
				do_resize(s);
			if (rand() % 400 == 0)
				do_grow(s, path);
			commit_maybe_pipelined(s);
		} else {
			/* commit, close and reopen: everything must persist */
			TU_OK(commit(s));
			store_close(s);
			TU_OK(store_open(path, &o, &s));
			stat_ops[4]++;
			/* a new master knows nothing of the step in flight: it
			 * redoes it from the cursor (the moves again) */
			if (rand() % 2)
				inflight.on = false;
		}
		if (op % 20000 == 19999)
			verify_all(s);
		/* the usage counters, kept by every operation, against a walk
		 * of the tree after every batch of operations */
		if (op % 250 == 249) {
			assert_true(store_counters_valid(s));
			if (store_counters_verify(s, stderr) != 0)
				fail_msg("usage counters differ from the tree after op %lu", op);
		}
		if (check_every && op % check_every == 0) {
			/* the in-memory state, without a commit that would change
			 * what the run does next */
			char *buf = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&buf, &len);
			long p = store_check_open(s, f);
			fclose(f);
			/* queued frees make the bitmaps differ until the commit */
			if (p > 0 && (strstr(buf, "b-tree") || strstr(buf, "twice") || strstr(buf, "mask")))
				fail_msg("inconsistent after op %lu (kind %d, %ld problems, pending %d): %s", op, k, p, store_txn_pending(s), buf);
			free(buf);
		}
	}
	while (M.clone_idx >= 0)
		do_clone(s, nops);
	TU_OK(commit(s));
	verify_all(s);
	print_message("origin writes %llu, snapshot writes %llu, creates %llu, deletes %llu, "
		      "renames %llu, reopens %llu, victims released %llu, resizes %llu (origin %" PRIu64
		      " chunks)\n", stat_ops[0], stat_ops[1], stat_ops[2], stat_ops[3], stat_ops[5],
		      stat_ops[4], stat_ops[6], stat_ops[12], M.ochunks);
	print_message("store grown %llu times to %" PRIu64 " data chunks\n", stat_ops[13], M.nstore);
	print_message("clones started %llu, done %llu, abandoned %llu, walk steps %llu, "
		      "parent writes refused %llu, deepest clone %u\n", stat_ops[9], stat_ops[7],
		      stat_ops[11], stat_ops[8], stat_ops[10], M.max_depth);
	/* the runs must have reached what they are meant to cover */
	if (nops >= 100000)
		assert_true(M.max_depth >= MAX_DEPTH && stat_ops[7] >= 50 && stat_ops[10] > 0 &&
			    stat_ops[12] >= 50 && stat_ops[13] >= 3);
	print_message("pipelined commits %lu, operations while one was in flight %lu\n",
		      pl_begun, pl_ops);
	if (nops >= 100000)
		assert_true(pl_begun >= 500 && pl_ops >= 1000);
	print_message("rollbacks started %llu, finished %llu; steps %llu, steps for writes %llu; "
		      "%llu operations during one; deletes refused %llu\n", stat_ops[ST_RB_START],
		      stat_ops[ST_RB_DONE], stat_ops[ST_RB_STEP], stat_ops[ST_RB_WSTEP],
		      stat_ops[ST_RB_MIDOPS], stat_ops[ST_RB_REFUSED]);
	if (nops >= 100000) {
		/* the run really went through rollbacks and their races */
		assert_true(stat_ops[ST_RB_DONE] >= 20);
		assert_true(stat_ops[ST_RB_WSTEP] >= 100);
		assert_true(stat_ops[ST_RB_MIDOPS] >= nops / 4);
	}
	/* a store in the middle of a rollback checks clean; then finish it */
	if (rollback_active(s)) {
		TU_OK(commit(s));
		assert_int_equal(store_check_open(s, stderr), 0);
		while (rollback_active(s))
			rollback_background(s);
		TU_OK(commit(s));
		verify_all(s);
	}
	store_get_info(s, &info);
	print_message("final: %" PRIu64 " exceptions, tree height %u, %u snapshots\n",
		      info.exceptions, info.tree_height, info.snapshots);
	long problems = store_check_open(s, stderr);
	assert_int_equal(problems, 0);
	store_close(s);
	/* and from scratch, read-only, as `csnap check` does */
	assert_int_equal(store_check(path, stderr), 0);
	unlink(path);
	free(path);
	free(M.storev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
