/*
 * tests/unit/test_store_replay.c - crash consistency of the store.
 *
 * Records every write and flush the engine issues (io_dev_set_log) while
 * random operations run with frequent commits, then for hundreds of flush
 * boundaries rebuilds the device as it would be after a power cut there
 * (io_log_replay onto a copy of the freshly formatted store) and requires:
 * the store opens (read-only with in-memory replay, and read-write with
 * real replay), `check` finds nothing wrong (the usage counters equal to
 * a walk of the tree included), and its contents are exactly
 * those of the last transaction whose store_commit() had returned - or of
 * the one whose commit was in progress at the cut.  Contents are compared
 * through a digest of the snapshot table and every snapshot's mapping.
 * Snapshots of snapshots are made in small walk steps spread over many
 * commits, so many cuts fall in the middle of a walk: the digest includes
 * the walk's cursor, and after every cut the walk is resumed to its end,
 * where the clone must map exactly what its parent maps (the parent
 * cannot be written meanwhile).
 * The origin starts 32 chunks short of OCHUNKS and is resized (grown)
 * now and then, and the store device grows (`csnap grow`) between
 * commits: each is one superblock write, so a cut shows the old or the
 * new geometry, both consistent with the committed contents.
 *
 * Rollbacks too (clones and rollbacks exclude each other): the digest
 * includes the origin's mapping and the running rollback (snapshot,
 * cursor); rollbacks move a few chunks per step, with the two halves of a
 * step (prepare, finish) in different transactions as the master commits
 * them, so many cuts fall in the middle of a rollback and between the
 * halves of a step; the test counts them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "utils/crc32c.h"
#include "utils/log.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>

#define CHUNK		4096
#define OCHUNKS		256
#define STORE_SIZE	(8u << 20)

struct commit_rec { size_t before, after; uint32_t digest; };

static uint64_t ochunks = OCHUNKS - 32;		/* the origin's current size */
static unsigned resizes, grows;

/* Chunks snapshot ID covers (the origin grew after some were taken).  */
static uint32_t snap_chunks(struct store *s, uint32_t id)
{
	struct store_snapshot sn;

	TU_OK(store_snapshot_get(s, id, &sn));
	assert_true(sn.origin_chunks > 0 && sn.origin_chunks <= OCHUNKS);
	return (uint32_t)sn.origin_chunks;
}

static uint32_t digest(struct store *s)
{
	struct store_snapshot list[64];
	struct store_rollback rb;
	chunk_t map[OCHUNKS];
	uint32_t h = 0;
	int n = store_snapshot_list(s, list, 64);

	store_rollback_get(s, &rb);
	if (rb.active) {
		h = crc32c(h, &rb.snap_id, sizeof rb.snap_id);
		h = crc32c(h, &rb.cursor, sizeof rb.cursor);
	}
	/* the origin's chunks not read from the origin itself (a resize
	 * adds chunks that are, which changes no content) */
	struct store_info info;
	store_get_info(s, &info);
	TU_OK(store_origin_read(s, 0, (uint32_t)info.origin_chunks, map));
	for (uint32_t c = 0; c < info.origin_chunks; c++)
		if (map[c] != STORE_ON_ORIGIN) {
			h = crc32c(h, &c, sizeof c);
			h = crc32c(h, &map[c], sizeof map[c]);
		}

	assert_true(n >= 0 && n <= 64);
	for (int i = 0; i < n; i++) {
		if (list[i].flags & STORE_SNAP_CLONING) {
			/* a walk in progress: where it is is committed state */
			h = crc32c(h, &list[i].id, sizeof list[i].id);
			h = crc32c(h, &list[i].clone_next, sizeof list[i].clone_next);
			continue;
		}
		if (!(list[i].flags & STORE_SNAP_LIVE))
			continue;	/* cleanup progress is not content */
		h = crc32c(h, &list[i].id, sizeof list[i].id);
		h = crc32c(h, list[i].name, strlen(list[i].name));
		uint32_t len = snap_chunks(s, list[i].id);
		TU_OK(store_snapshot_read(s, list[i].id, 0, len, map));
		h = crc32c(h, map, len * sizeof map[0]);
	}
	return h;
}

static unsigned renames, clones_started, clone_steps, cuts_in_walk;
static unsigned rb_starts, rb_steps, rb_done;
/* Rollbacks and clones exclude each other: rollbacks start only in one
 * run of 25 commits out of three, so that both get their share of cuts.  */
static bool rb_phase;
static uint32_t last_clone;

/* Runs the walk of a pending clone to its end: the clone must then map
 * exactly what its parent maps.  Returns the clone's id (0: none).  */
static uint32_t finish_clone(struct store *s)
{
	uint32_t parent, id = store_clone_pending(s, &parent);
	chunk_t a[OCHUNKS], b[OCHUNKS];
	int r;

	if (!id)
		return 0;
	while ((r = store_clone_step(s, 7)) > 0)
		TU_OK(store_commit(s));
	TU_OK(r);
	TU_OK(store_commit(s));
	uint32_t n = snap_chunks(s, parent);
	assert_int_equal(snap_chunks(s, id), n);
	TU_OK(store_snapshot_read(s, id, 0, n, a));
	TU_OK(store_snapshot_read(s, parent, 0, n, b));
	assert_memory_equal(a, b, n * sizeof a[0]);
	return id;
}

/* A rollback step whose first half (prepare) is committed and whose
 * second half (finish) comes in a later transaction.  */
static struct { bool on; struct store_copy mv[8]; uint32_t nm; chunk_t advance; } step;

static bool rollback_active(struct store *s)
{
	struct store_rollback rb;
	store_rollback_get(s, &rb);
	return rb.active;
}

/* Rolls back the pending chunks of [first, first+cnt) at once (what the
 * master does before an origin write over them).  */
static void roll_range(struct store *s, uint64_t first, uint32_t cnt)
{
	struct store_copy cp[8], mv[8];
	chunk_t loc[8], pend[8];
	uint32_t np = 0, ncp, nmv;

	TU_OK(store_origin_read(s, first, cnt, loc));
	for (uint32_t i = 0; i < cnt; i++)
		if (loc[i] != STORE_ON_ORIGIN)
			pend[np++] = first + i;
	int e = store_rollback_prepare(s, pend, np, cp, &ncp, mv, &nmv);
	if (e == -ENOSPC)
		return;
	TU_OK(e);
	TU_OK(store_rollback_finish(s, mv, nmv, 0));
}

/* One half of a background step per call.  */
static void rollback_half_step(struct store *s)
{
	if (step.on) {
		TU_OK(store_rollback_finish(s, step.mv, step.nm, step.advance));
		step.on = false;
		rb_done += step.advance == STORE_CHUNK_END;
		return;
	}
	chunk_t list[8];
	struct store_copy cp[8];
	uint32_t n, ncp;
	TU_OK(store_rollback_next(s, list, 1 + (uint32_t)(rand() % 8), &n, &step.advance));
	int e = store_rollback_prepare(s, list, n, cp, &ncp, step.mv, &step.nm);
	if (e == -ENOSPC)
		return;
	TU_OK(e);
	step.on = true;
	rb_steps++;
}

static void random_ops(struct store *s, unsigned n, uint32_t *ids, unsigned *nids)
{
	struct store_copy cp[8];
	chunk_t dst[8];
	uint32_t ncp;
	bool stepped = false;

	for (unsigned k = 0; k < n; k++) {
		int r = rand() % 100;
		uint32_t cnt = 1 + (uint32_t)(rand() % 8);
		/* inside every snapshot; origin writes anywhere in the origin */
		uint64_t first = (uint64_t)(rand() % (OCHUNKS - 32 - 8));
		bool active = rollback_active(s);
		if (active && !stepped && rand() % 2) {
			/* the halves of a step in different transactions */
			rollback_half_step(s);
			stepped = true;
			continue;
		}
		if (!active && rb_phase && *nids && rand() % 2 == 0) {
			unsigned i = (unsigned)rand() % *nids;
			bool del = rand() % 3 == 0;
			int e = store_rollback_start(s, ids[i], del);
			if (e == -ENOSPC || e == -EBUSY)
				continue;
			TU_OK(e);
			if (del)
				ids[i] = ids[--*nids];
			rb_starts++;
			continue;
		}
		if (r < 45) {
			first = (uint64_t)rand() % (ochunks - cnt + 1);
			int e = store_origin_write(s, first, cnt, cp, &ncp);
			if (e == -EAGAIN) {
				roll_range(s, first, cnt);
				e = store_origin_write(s, first, cnt, cp, &ncp);
				if (e == -EAGAIN)
					continue;	/* the step found no room */
			}
			if (e != -ENOSPC)
				TU_OK(e);
		} else if (r < 70 && *nids) {
			uint32_t id = ids[rand() % *nids], parent;
			int e = store_snapshot_write(s, id, first, cnt, dst, cp, &ncp);
			if (e == -EBUSY && store_clone_pending(s, &parent) && parent == id)
				continue;	/* its clone's walk runs */
			if (e != -ENOSPC)
				TU_OK(e);
		} else if (r < 80 && *nids < 12) {
			char name[32];
			snprintf(name, sizeof name, "snap%d", rand());
			int e = store_snapshot_create(s, name, 0, &ids[*nids]);
			if (e == 0)
				(*nids)++;
			else if (e != -EBUSY && e != -ENOSPC)
				TU_OK(e);
		} else if (r < 80 + (*nids ? 3 : 0)) {
			/* a rename: names are in the digest, so a cut must show
			 * the old name or the new one, as committed */
			char name[32];
			snprintf(name, sizeof name, "ren%d", rand());
			int e = store_snapshot_rename(s, ids[rand() % *nids], name);
			if (e != -EEXIST) {	/* -EEXIST: rand() repeated a live name */
				TU_OK(e);
				renames++;
			}
		} else if (r < 88 && *nids) {
			unsigned i = (unsigned)rand() % *nids;
			uint32_t parent;
			if (store_clone_pending(s, &parent) && parent == ids[i]) {
				assert_int_equal(store_snapshot_delete(s, ids[i]), -EBUSY);
				continue;
			}
			int e = store_snapshot_delete(s, ids[i]);
			if (e == -EBUSY)
				continue;	/* the snapshot being rolled back to */
			TU_OK(e);
			ids[i] = ids[--*nids];
		} else if (r < 94 && *nids) {
			/* a snapshot of a snapshot, walked a few exceptions at a
			 * time so that commits (and cuts) fall inside the walk */
			uint32_t id, parent = 0;
			if (store_clone_pending(s, &parent)) {
				int e = store_clone_step(s, 1 + (unsigned)(rand() % 48));
				TU_OK(e);
				clone_steps++;
				if (e == 0)
					ids[(*nids)++] = last_clone;	/* now live */
			} else if (*nids < 12) {
				char name[32];
				snprintf(name, sizeof name, "clone%d", rand());
				int e = store_snapshot_clone(s, name, ids[rand() % *nids], 0, NULL, &id);
				if (e == 0) {
					last_clone = id;
					clones_started++;
				} else if (e != -EBUSY && e != -ENOSPC) {
					TU_OK(e);
				}
			}
		} else {
			int e = store_cleanup(s, 1 + (unsigned)(rand() % 64));
			TU_OK(e);
		}
	}
}

static void copy_file(const char *from, const char *to)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "cp --sparse=always %s %s", from, to);
	assert_int_equal(system(cmd), 0);
}

/* The pipelined commit (store_commit_begin/end) as the master runs it:
 * while transaction I's journal write and flushes are in flight, the
 * next transaction's changes go on (and now and then are aborted, as a
 * failed copy-out makes the master do).  Counts for the summary.  */
static unsigned pl_begun, pl_ops, pl_aborts, pl_fallbacks;
static bool pl_quiet;	/* no changes while this commit is in flight */

static void commit_pipelined(struct store *s, struct io_dev *dev, uint32_t *ids, unsigned *nids,
			     uint32_t *digest_out)
{
	struct store_commit_io io;
	int e = store_commit_begin(s, &io);
	if (e == -EAGAIN) {	/* frees data chunks: the plain commit */
		pl_fallbacks++;
		TU_OK(store_commit(s));
		*digest_out = digest(s);
		return;
	}
	TU_OK(e);
	assert_false(store_txn_pending(s));
	*digest_out = digest(s);	/* what this commit makes durable */
	if (io.n == 0)
		return;
	assert_true(store_commit_inflight(s));
	pl_begun++;
	assert_int_equal(store_commit(s), -EBUSY);
	assert_int_equal(store_checkpoint(s), -EBUSY);
	/* the next transaction, while this one is in flight */
	uint32_t ids0[16];
	unsigned nids0 = *nids;
	uint32_t last_clone0 = last_clone;
	__typeof__(step) step0 = step;
	memcpy(ids0, ids, sizeof ids0);
	unsigned k = pl_quiet ? 0 : (unsigned)(rand() % 8);
	random_ops(s, k, ids, nids);
	pl_ops += k;
	/* a lookup-heavy moment: evictions must not write the in-flight
	 * transaction's blocks home */
	digest(s);
	if (k && rand() % 6 == 0) {
		TU_OK(store_abort(s));
		assert_false(store_txn_pending(s));
		assert_int_equal(digest(s), *digest_out);
		memcpy(ids, ids0, sizeof ids0);
		*nids = nids0;
		last_clone = last_clone0;
		step = step0;
		pl_aborts++;
	}
	/* the master: data flush, journal write, flush */
	TU_OK(io_dev_flush(dev));
	for (unsigned i = 0; i < io.n; i++)
		TU_OK(io_dev_pwrite(dev, io.buf[i], io.len[i], io.off[i]));
	TU_OK(io_dev_flush(dev));
	TU_OK(store_commit_end(s, 0));
	assert_false(store_commit_inflight(s));
}

static void replay_cuts(bool pipelined)
{
	log_set_level(LOG_LEVEL_WARN);
	srand(pipelined ? 778 : 777);
	ochunks = OCHUNKS - 32;
	resizes = grows = renames = clones_started = clone_steps = cuts_in_walk = 0;
	rb_starts = rb_steps = rb_done = 0;
	last_clone = 0;
	memset(&step, 0, sizeof step);
	char *path = tu_mkstore("replay", STORE_SIZE, CHUNK, ochunks * CHUNK, 64);
	char base[256], target[256];
	snprintf(base, sizeof base, "%s.base", path);
	snprintf(target, sizeof target, "%s.cut", path);
	copy_file(path, base);

	struct io_dev *dev;
	struct io_log *log = io_log_new();
	struct store *s;
	/* pipelined: a cache small enough that lookups during a flight
	 * evict (the in-flight transaction's blocks must stay)  */
	struct store_open_opts o = { .cache_bytes = (pipelined ? 12 : 64) * 4096 };
	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	io_dev_set_log(dev, log);
	TU_OK(store_open_dev(dev, &o, &s));

	enum { NCOMMITS = 400 };
	struct commit_rec *rec = calloc(NCOMMITS + 1, sizeof *rec);
	uint32_t ids[16];
	unsigned nids = 0;
	rec[0] = (struct commit_rec){ 0, 0, digest(s) };
	for (int i = 1; i <= NCOMMITS; i++) {
		rb_phase = (i / 25) % 3 == 0;
		random_ops(s, 1 + (unsigned)(rand() % 10), ids, &nids);
		/* pipelined: the origin or store device grows only after a
		 * commit that left the next transaction empty */
		bool resize_now = pipelined && rand() % 25 == 0, grow_now = pipelined && rand() % 60 == 0;
		pl_quiet = resize_now || grow_now;
		rec[i].before = io_log_count(log);
		if (pipelined) {
			commit_pipelined(s, dev, ids, &nids, &rec[i].digest);
		} else {
			TU_OK(store_commit(s));
			rec[i].digest = digest(s);
		}
		rec[i].after = io_log_count(log);
		/* between commits: the origin grows, the store device grows */
		if ((pipelined ? resize_now : rand() % 25 == 0) && ochunks < OCHUNKS) {
			ochunks += 1 + (uint64_t)(rand() % 8);
			if (ochunks > OCHUNKS)
				ochunks = OCHUNKS;
			TU_OK(store_origin_resize(s, ochunks * CHUNK));
			resizes++;
		}
		if (pipelined ? grow_now : rand() % 60 == 0) {
			struct stat st;
			uint64_t added;
			assert_int_equal(stat(path, &st), 0);
			assert_int_equal(truncate(path, st.st_size + (256 << 10)), 0);
			TU_OK(store_grow(s, &added));
			assert_true(added > 0);
			grows++;
		}
	}
	/* an uncommitted tail: must never show up */
	random_ops(s, 20, ids, &nids);
	store_close(s);	/* discards it, checkpoints the rest */
	io_dev_set_log(dev, NULL);
	io_dev_close(dev);

	struct stat fst;
	assert_int_equal(stat(path, &fst), 0);	/* the device's final size */
	print_message("%u resizes (origin %" PRIu64 " chunks), %u grows\n", resizes, ochunks, grows);
	assert_true(resizes >= 3 && grows >= 3);
	size_t nflush = io_log_flushes(log);
	print_message("%zu log entries, %zu flushes, %d commits\n", io_log_count(log), nflush, NCOMMITS);
	assert_true(nflush > 300);
	assert_true(renames > 50);
	print_message("%u rollbacks started, %u finished, %u steps\n", rb_starts, rb_done, rb_steps);
	assert_true(rb_starts >= 5 && rb_done >= 4 && rb_steps >= 40);
	unsigned cuts = 0, mid_rollback = 0, mid_step = 0;
	for (size_t k = 1; k <= nflush; k++) {
		/* every flush early on, then a random sample: hundreds of cuts
		 * (the pipelined run has more flushes: a sparser sample) */
		if (k > 60 && rand() % (pipelined ? 5 : 3))
			continue;
		size_t end = io_log_flush_end(log, k);
		copy_file(base, target);
		struct io_dev *t;
		TU_OK(io_dev_open(target, IO_DEV_RDWR, &t));
		TU_OK(io_log_replay(log, t, end));
		io_dev_close(t);
		assert_int_equal(truncate(target, fst.st_size), 0);	/* grown device */

		/* expected: last commit complete at `end`, or the one in flight */
		uint32_t want = rec[0].digest, alt = rec[0].digest;
		for (int i = 1; i <= NCOMMITS; i++) {
			if (rec[i].after <= end)
				want = alt = rec[i].digest;
			else if (rec[i].before < end)
				alt = rec[i].digest;
		}
		struct store_open_opts ro = { .readonly = true, .cache_bytes = 1 << 20 };
		TU_OK(store_open(target, &ro, &s));
		long p = store_check_open(s, stderr);
		if (p)
			fail_msg("cut at flush %zu (entry %zu): check found %ld problems (read-only)", k, end, p);
		/* the usage counters recovered with the exceptions they count
		 * (check compares them too; this also refuses them absent) */
		if (!store_counters_valid(s) || store_counters_verify(s, stderr) != 0)
			fail_msg("cut at flush %zu (entry %zu): usage counters %s or wrong", k, end,
				 store_counters_state(s));
		uint32_t got = digest(s);
		struct store_rollback rb;
		store_rollback_get(s, &rb);
		mid_rollback += rb.active;
		mid_step += rb.active && rb.cursor > 0;
		store_close(s);
		if (got != want && got != alt)
			fail_msg("cut at flush %zu (entry %zu): contents %08x match no committed transaction (want %08x or %08x; c1 %zu..%zu %08x)", k, end, got, want, alt, rec[1].before, rec[1].after, rec[1].digest);
		TU_OK(store_open(target, &o, &s));	/* real replay */
		assert_int_equal(digest(s), got);
		assert_int_equal(store_check_open(s, stderr), 0);
		/* a walk cut short resumes where its last commit left it */
		cuts_in_walk += finish_clone(s) != 0;
		assert_int_equal(store_check_open(s, stderr), 0);
		store_close(s);
		assert_int_equal(store_check(target, stderr), 0);
		cuts++;
	}
	print_message("%u cuts recovered consistently, %u in the middle of a clone's walk "
		      "(%u clones, %u walk steps), %u in the middle of a rollback (%u after its "
		      "first step)\n", cuts, cuts_in_walk, clones_started, clone_steps, mid_rollback,
		      mid_step);
	assert_true(cuts >= 200);
	assert_true(cuts_in_walk >= 50);
	assert_true(mid_rollback >= 50 && mid_step >= 20);
	if (pipelined) {
		print_message("pipelined: %u commits begun, %u operations while one was in flight, "
			      "%u of those aborted, %u commits freeing data (plain)\n",
			      pl_begun, pl_ops, pl_aborts, pl_fallbacks);
		assert_true(pl_begun >= 200 && pl_ops >= 500 && pl_aborts >= 20);
	}
	io_log_free(log);
	free(rec);
	unlink(base);
	unlink(target);
	unlink(path);
	free(path);
}

static void test_replay_cuts(void **state)
{
	(void)state;
	replay_cuts(false);
}

/* The same with every commit pipelined: a cut anywhere shows the last
 * durable transaction or the one in flight, never a change of the
 * transaction that was being built meanwhile.  */
static void test_replay_cuts_pipelined(void **state)
{
	(void)state;
	replay_cuts(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_cuts),
		cmocka_unit_test(test_replay_cuts_pipelined),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
