/*
 * bench/rollback.c - time to roll an origin back to a snapshot, against
 * plain merge copying.
 *
 *   build/bench/rollback [DIR] [ORIGIN_MIB] [CHANGED_PCT] [LATER_SNAPSHOTS] [STEP]
 *
 * Defaults: /var/tmp, 1024 MiB origin, 10 % changed, 1 later snapshot,
 * steps of 64 chunks (at most 4096);
 * 64 KiB chunks; files DIR/csnap-rb-{origin,store}.<pid> (O_DIRECT),
 * removed at the end.  Setup (not timed): the origin is written whole;
 * snapshot S is taken; CHANGED_PCT % of the chunks, at random, are
 * overwritten through the engine's origin-write path (copy-out to the
 * store first, as the server does); then LATER_SNAPSHOTS snapshots are
 * taken of the changed origin (they share its chunks, so the rollback
 * must copy those out before overwriting them).
 *
 * Timed, both over the same chunks with the same 64 KiB synchronous
 * O_DIRECT I/O on the same files, page cache out of the way:
 *   merge copy   what `lvconvert --merge` of a dm-snapshot does at
 *                least: read every chunk S holds from the store and write
 *                it onto the origin, one flush at the end; no metadata,
 *                nobody else's content preserved (measured on a copy of
 *                the state, then the state is restored);
 *   rollback     csnap: store_rollback_start() + commit (from then on the
 *                origin reads S's content: its time is printed apart),
 *                then steps of STEP chunks as the master would run them:
 *                store_rollback_next/prepare, copy-outs for the later
 *                snapshots (origin -> store), flush store, commit, moves
 *                (store -> origin), flush origin, finish, commit.
 * The origin is then read back and compared with S's content (every
 * chunk carries its own stamp), and the store checked.  A program, not a
 * test: it prints figures and the ratio; it fails only if the content or
 * the check is wrong.
 */
#include "bench/bench.h"
#include "src/store/store.h"
#include "utils/err.h"
#include "utils/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	(64u << 10)
#define STEP_MAX	4096u

static void die(const char *what) { bench_die("rollback bench", what); }

#define OK(x) do { if ((x) < 0) die(#x); } while (0)

/* Chunk content: its number and a generation, at both ends.  */
static void stamp(uint8_t *buf, uint64_t chunk, uint64_t gen)
{
	memset(buf, (int)(gen & 0xff), CHUNK);
	memcpy(buf, &chunk, 8);
	memcpy(buf + 8, &gen, 8);
	memcpy(buf + CHUNK - 16, &chunk, 8);
	memcpy(buf + CHUNK - 8, &gen, 8);
}

static uint64_t stamp_gen(const uint8_t *buf, uint64_t chunk)
{
	uint64_t c, g, c2, g2;
	memcpy(&c, buf, 8);
	memcpy(&g, buf + 8, 8);
	memcpy(&c2, buf + CHUNK - 16, 8);
	memcpy(&g2, buf + CHUNK - 8, 8);
	return c == chunk && c2 == chunk && g == g2 ? g : UINT64_MAX;
}

static struct io_dev *origin, *sdev;
static struct store *st;
static uint8_t *buf;

static void copy_chunk(struct io_dev *from, uint64_t from_off, struct io_dev *to, uint64_t to_off)
{
	OK(io_dev_pread(from, buf, CHUNK, from_off));
	OK(io_dev_pwrite(to, buf, CHUNK, to_off));
}

static void do_copyouts(const struct store_copy *cp, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		copy_chunk(origin, cp[i].origin_chunk * (uint64_t)CHUNK, sdev,
			   store_chunk_offset(st, cp[i].dst));
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 1024;
	unsigned pct = argc > 3 ? (unsigned)atoi(argv[3]) : 10;
	unsigned later = argc > 4 ? (unsigned)atoi(argv[4]) : 1;
	uint32_t step = argc > 5 ? (uint32_t)atoi(argv[5]) : 64;
	uint64_t nch = mib * (1 << 20) / CHUNK, nchanged = nch * pct / 100;
	char opath[512], spath[512];

	log_set_level(LOG_LEVEL_WARN);
	if (!nch || pct == 0 || pct > 100 || later > 100 || step == 0 || step > STEP_MAX) {
		fprintf(stderr, "usage: rollback [DIR] [ORIGIN_MIB] [CHANGED_PCT 1-100] "
			"[LATER_SNAPSHOTS 0-100] [STEP 1-4096]\n");
		return 2;
	}
	snprintf(opath, sizeof opath, "%s/csnap-rb-origin.%d", dir, (int)getpid());
	snprintf(spath, sizeof spath, "%s/csnap-rb-store.%d", dir, (int)getpid());
	buf = io_buf_alloc(CHUNK);
	if (!buf)
		return 1;

	/* the origin, written whole (generation 1) */
	OK(io_dev_open(opath, IO_DEV_RDWR | IO_DEV_CREATE, &origin));
	for (uint64_t c = 0; c < nch; c++) {
		stamp(buf, c, 1);
		OK(io_dev_pwrite(origin, buf, CHUNK, c * CHUNK));
	}
	OK(io_dev_flush(origin));

	/* the store: room for S's copies and the later snapshots' */
	uint64_t ssize = (4ull << 20) * 4 + 64 * (1ull << 20) + 3 * nchanged * CHUNK;
	struct csnap_sb sb;
	memset(&sb, 0, sizeof sb);
	for (int i = 0; i < 16; i++)
		sb.uuid[i] = (uint8_t)rand();
	sb.chunk_size = CHUNK;
	sb.store_size = ssize;
	sb.origin_size = nch * CHUNK;
	strcpy(sb.origin_id, "size:bench");
	sb.max_snapshots = 256;
	sb.ctime = (uint64_t)time(NULL);
	csnap_sb_lease_layout(&sb, 512);
	sb.meta_offset = sb.lease_offset + csnap_lease_area_size(sb.lease_align);
	OK(io_dev_open(spath, IO_DEV_RDWR | IO_DEV_CREATE, &sdev));
	if (ftruncate(io_dev_fd(sdev), (off_t)ssize) < 0)
		die("truncate store");
	OK(io_dev_refresh_size(sdev));
	OK(store_format(sdev, &sb));
	struct store_open_opts oo = { .cache_bytes = 256u << 20 };
	OK(store_open_dev(sdev, &oo, &st));

	/* S, then CHANGED_PCT % of the chunks rewritten (generation 2) */
	uint32_t s_id;
	OK(store_snapshot_create(st, "S", 0, &s_id));
	uint8_t *changed = calloc(nch, 1);
	srand(42);
	for (uint64_t k = 0; k < nchanged;) {
		uint64_t c = ((uint64_t)rand() << 16 ^ (uint64_t)rand()) % nch;
		if (changed[c])
			continue;
		changed[c] = 1;
		k++;
	}
	static struct store_copy cp[STEP_MAX], mv[STEP_MAX];
	uint32_t n, nm;
	for (uint64_t c = 0; c < nch; c++) {
		if (!changed[c])
			continue;
		OK(store_origin_write(st, c, 1, cp, &n));
		do_copyouts(cp, n);
		OK(io_dev_flush(sdev));
		OK(store_commit(st));
		stamp(buf, c, 2);
		OK(io_dev_pwrite(origin, buf, CHUNK, c * CHUNK));
	}
	OK(io_dev_flush(origin));
	for (unsigned i = 0; i < later; i++) {
		char name[32];
		uint32_t id;
		snprintf(name, sizeof name, "later%u", i);
		OK(store_snapshot_create(st, name, 0, &id));
	}
	OK(store_commit(st));
	OK(store_checkpoint(st));

	/* the chunks S holds, where */
	chunk_t *loc = malloc(nch * sizeof *loc);
	for (uint64_t c = 0; c < nch; c += 4096) {
		uint32_t k = nch - c < 4096 ? (uint32_t)(nch - c) : 4096;
		OK(store_snapshot_read(st, s_id, c, k, loc + c));
	}

	/* merge copy: S's chunks onto the origin, one flush; then restore */
	double t0 = bench_now();
	uint64_t merged = 0;
	for (uint64_t c = 0; c < nch; c++)
		if (loc[c] != STORE_ON_ORIGIN) {
			copy_chunk(sdev, store_chunk_offset(st, loc[c]), origin, c * CHUNK);
			merged++;
		}
	OK(io_dev_flush(origin));
	double t_merge = bench_now() - t0;
	for (uint64_t c = 0; c < nch; c++)
		if (changed[c]) {
			stamp(buf, c, 2);
			OK(io_dev_pwrite(origin, buf, CHUNK, c * CHUNK));
		}
	OK(io_dev_flush(origin));

	/* rollback */
	t0 = bench_now();
	OK(store_rollback_start(st, s_id, false));
	OK(store_commit(st));
	double t_start = bench_now() - t0;
	uint64_t steps = 0, moved = 0, copied = 0;
	for (;;) {
		static chunk_t list[STEP_MAX];
		chunk_t advance;
		OK(store_rollback_next(st, list, step, &n, &advance));
		OK(store_rollback_prepare(st, list, n, cp, &n, mv, &nm));
		do_copyouts(cp, n);
		copied += n;
		if (n) {
			OK(io_dev_flush(sdev));
			OK(store_commit(st));
		}
		for (uint32_t i = 0; i < nm; i++)
			copy_chunk(sdev, store_chunk_offset(st, mv[i].src), origin,
				   mv[i].origin_chunk * (uint64_t)CHUNK);
		moved += nm;
		if (nm)
			OK(io_dev_flush(origin));
		OK(store_rollback_finish(st, mv, nm, advance));
		OK(store_commit(st));
		steps++;
		if (advance == STORE_CHUNK_END)
			break;
	}
	double t_rb = bench_now() - t0;
	struct store_rollback rb;
	store_rollback_get(st, &rb);
	if (rb.active) {
		fprintf(stderr, "rollback bench: still running after the last step\n");
		return 1;
	}

	/* the origin holds S's content (generation 1 everywhere) */
	for (uint64_t c = 0; c < nch; c++) {
		OK(io_dev_pread(origin, buf, CHUNK, c * CHUNK));
		if (stamp_gen(buf, c) != 1) {
			fprintf(stderr, "rollback bench: origin chunk %" PRIu64 " is not S's\n", c);
			return 1;
		}
	}
	long problems = store_check_open(st, stderr);
	store_close(st);
	io_dev_close(sdev);
	io_dev_close(origin);
	unlink(opath);
	unlink(spath);
	free(loc);
	free(changed);
	if (problems) {
		fprintf(stderr, "rollback bench: check found %ld problems\n", problems);
		return 1;
	}
	printf("origin %" PRIu64 " MiB, 64 KiB chunks, %u %% changed (%" PRIu64 " chunks), "
	       "%u later snapshot(s), steps of %u chunks\n", mib, pct, nchanged, later, step);
	printf("merge copy   %8.2f s  (%" PRIu64 " chunks store -> origin, no metadata)\n",
	       t_merge, merged);
	printf("rollback     %8.2f s  (%" PRIu64 " chunks moved, %" PRIu64 " copied out for later "
	       "snapshots, %" PRIu64 " steps)\n", t_rb, moved, copied, steps);
	printf("  origin reads S from %.1f ms after the start (start + commit)\n", t_start * 1e3);
	printf("ratio rollback / merge copy: %.2f\n", t_merge > 0 ? t_rb / t_merge : 0.0);
	return 0;
}
