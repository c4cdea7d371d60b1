/*
 * tests/tools/wlog_stray.c - stray origin writes, from the write log
 * (ioengine/wlog.h; tests/cluster/wlog.sh wlog_stray_check):
 *
 *   wlog_stray LOGDIR WORKDIR ORIGIN STORE STORE_INIT
 *
 * Every origin write in the log is checked against the store as every
 * write completed before it was issued left it (WORKDIR/store.img is
 * built from STORE_INIT, the store before the first logged write): a
 * chunk that a live snapshot still reads from the origin must not be
 * written.  The master answers an origin-write query only after the
 * commit that copied the chunk out has completed, so that commit is in
 * the state an answered write is checked against; a write that went to
 * the origin without asking (a paused export with an expired grant, a bug)
 * is reported with the snapshot it changed.  Exit 0: none.
 */
#include "tests/tools/wlog_read.h"
#include "src/store/store.h"
#include "utils/err.h"
#include "utils/log.h"

#include <inttypes.h>

#define MAXSNAP 256

static const char *IMG[2];
static int by_t0_idx(const void *a, const void *b)
{
	const struct wr *x = &W[0][*(const size_t *)a], *y = &W[0][*(const size_t *)b];
	return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

/* Every origin write, against the store as every write completed before
 * it was issued left it (the master answers a query only after its commit
 * completed, so that commit is in that state): a chunk some live snapshot
 * still reads from the origin must not be written.  */
static int stray_check(const char *store_init)
{
	struct store_open_opts o = { .readonly = true, .cache_bytes = 16u << 20 };
	struct store_snapshot list[MAXSNAP];
	struct store_info info;
	struct store *st = NULL;
	size_t *idx = malloc(sizeof *idx * (NW[0] ? NW[0] : 1)), sp = 0;
	uint64_t dlo, dhi;
	long states = 0, stray = 0;
	int fd, nlist = 0;
	bool dirty = true;

	copy_file(store_init, IMG[1]);
	if (!idx || (fd = open(IMG[1], O_RDWR)) < 0)
		die("stray check setup");
	if (store_open(IMG[1], &o, &st) < 0)
		die("the initial store does not open");
	store_get_info(st, &info);
	dlo = store_chunk_offset(st, 0);
	dhi = store_chunk_offset(st, info.data_chunks - 1) + info.chunk_size;
	store_close(st);
	st = NULL;
	for (size_t k = 0; k < NW[0]; k++)
		idx[k] = k;
	qsort(idx, NW[0], sizeof *idx, by_t0_idx);
	for (size_t k = 0; k < NW[0]; k++) {
		const struct wr *w = &W[0][idx[k]];
		uint64_t c0 = w->off / info.chunk_size, c1 = (w->off + w->len - 1) / info.chunk_size;

		for (; sp < NW[1] && W[1][sp].t1 < w->t0; sp++) {
			put(fd, W[1][sp].data, W[1][sp].len, W[1][sp].off);
			dirty |= W[1][sp].off < dlo || W[1][sp].off >= dhi;
		}
		if (dirty) {
			store_close(st);
			if (store_open(IMG[1], &o, &st) < 0)
				die("the store does not open at an origin write");
			nlist = store_snapshot_list(st, list, MAXSNAP);
			if (nlist < 0 || nlist > MAXSNAP)
				die("snapshot list");
			dirty = false;
			states++;
		}
		for (int i = 0; i < nlist; i++) {
			if (!(list[i].flags & STORE_SNAP_LIVE))
				continue;
			for (uint64_t c = c0; c <= c1 && c < list[i].origin_chunks; c++) {
				chunk_t loc;

				if (store_snapshot_read(st, list[i].id, c, 1, &loc) < 0)
					die("snapshot lookup");
				if (loc == STORE_ON_ORIGIN && stray++ < 10)
					fprintf(stderr, "  stray write: origin write of %" PRIu64 " bytes at %"
						PRIu64 " (pid %u, t=%.6f) into chunk %" PRIu64 " of snapshot %s,"
						" which still reads it from the origin\n", w->len, w->off,
						w->pid, (double)w->t0 / 1e9, c, list[i].name);
			}
		}
	}
	store_close(st);
	close(fd);
	free(idx);
	printf("stray check: %zu origin writes against %ld store states: %ld stray\n",
	       NW[0], states, stray);
	return stray ? 1 : 0;
}

int main(int argc, char **argv)
{
	char path[4096];

	wlog_prog = "wlog_stray";
	if (argc != 6)
		die("usage: wlog_stray LOGDIR WORKDIR ORIGIN STORE STORE_INIT");
	log_set_level(LOG_LEVEL_WARN);
	LIVE[0] = argv[3];
	LIVE[1] = argv[4];
	snprintf(path, sizeof path, "%s/store.img", argv[2]);
	IMG[1] = path;
	read_logs(argv[1]);
	qsort(W[1], NW[1], sizeof *W[1], by_t1_w);
	return stray_check(argv[5]);
}
