/*
 * bench/store_fill.c - fill a formatted store with exceptions quickly and
 * time snapshot creation at the engine level (for bench/snapshot_create.sh).
 *
 *   build/bench/store_fill STORE NEXC [NSNAP [TIMED]]
 *
 * On a store made by `csnap mkstore` (not in use by a server): creates
 * NSNAP snapshots (default 1) spread over origin writes of 64-chunk ranges
 * from chunk 0 upwards until the tree holds NEXC exceptions (each first
 * write after a snapshot records one exception per chunk; metadata only,
 * no data is copied), with group commits as a server would make them.
 * Then, with the store full of exceptions, creates TIMED (default 9) more
 * snapshots one by one and times store_snapshot_create() (in memory) and
 * the store_commit() that makes it durable; prints the medians; deletes
 * those snapshots again (cleanup run, committed), so the store is left
 * with NSNAP snapshots and NEXC exceptions for the end-to-end test.
 * Also times the usage report (store_usage(), what `csnap status` and
 * `snapshot list` ask the master for: read from the usage counters) and,
 * once, the walk of the whole tree it needed before the counters
 * (store_counters_verify(), which also confirms the counters are exact).
 * A program, not a test: it prints figures and asserts nothing.
 */
#include "src/store/store.h"
#include "utils/err.h"
#include "utils/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TIMED_MAX 64

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "store_fill: %s: %s\n", what, err_get());
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: store_fill STORE NEXC [NSNAP [TIMED]]\n");
		return 2;
	}
	uint64_t nexc = strtoull(argv[2], NULL, 10);
	unsigned nsnap = argc > 3 ? (unsigned)atoi(argv[3]) : 1;
	unsigned timed = argc > 4 ? (unsigned)atoi(argv[4]) : 9;
	if (nsnap < 1 || timed > TIMED_MAX) {
		fprintf(stderr, "store_fill: NSNAP must be >= 1, TIMED <= %d\n", TIMED_MAX);
		return 2;
	}
	log_init("store_fill", LOG_LEVEL_WARN);

	struct store_open_opts o = { .cache_bytes = 256u << 20 };
	struct store *s;
	if (store_open(argv[1], &o, &s) < 0)
		die("open");
	struct store_info info;
	store_get_info(s, &info);
	if (nexc > info.origin_chunks || nexc > info.data_free) {
		fprintf(stderr, "store_fill: %" PRIu64 " exceptions need as many origin chunks (%" PRIu64
			") and free store chunks (%" PRIu64 ")\n", nexc, info.origin_chunks, info.data_free);
		return 1;
	}
	if (nsnap + timed > info.sb.max_snapshots - info.snapshots) {
		fprintf(stderr, "store_fill: no room for %u snapshots\n", nsnap + timed);
		return 1;
	}

	/* Fill: snapshot k is taken when k/NSNAP of the chunks are written.  */
	double t0 = now_ms();
	unsigned made = 0, limit = store_txn_limit(s) / 2, base = info.snapshots;
	struct store_copy cp[64];
	uint32_t ncp, id;
	for (uint64_t c = 0; c < nexc; c += 64) {
		while (made < nsnap && c >= nexc * made / nsnap) {
			char name[32];
			/* (numbered after the snapshots already there: a
			 * second fill of the same store adds to it) */
			snprintf(name, sizeof name, "fill%u", base + made);
			if (store_snapshot_create(s, name, 0, &id) < 0)
				die("snapshot create");
			made++;
		}
		uint32_t n = nexc - c < 64 ? (uint32_t)(nexc - c) : 64;
		if (store_origin_write(s, c, n, cp, &ncp) < 0)
			die("origin write");
		if (store_txn_blocks(s) > limit && store_commit(s) < 0)
			die("commit");
	}
	if (store_commit(s) < 0 || store_checkpoint(s) < 0)
		die("commit");
	double t_fill = now_ms() - t0;
	store_get_info(s, &info);
	printf("filled: %" PRIu64 " exceptions, %u snapshots, tree height %u, in %.1f s\n",
	       info.exceptions, info.snapshots, info.tree_height, t_fill / 1e3);

	/* the usage report: O(snapshots), whatever the number of exceptions */
	static struct store_usage usage[1024];
	double rep[TIMED_MAX + 9];
	unsigned nrep = timed > 9 ? timed : 9;
	for (unsigned i = 0; i < nrep; i++) {
		t0 = now_ms();
		if (store_usage(s, usage, 1024) < 0)
			die("usage");
		rep[i] = now_ms() - t0;
	}
	t0 = now_ms();
	long wrong = store_counters_verify(s, stderr);
	double t_walk = now_ms() - t0;
	if (wrong < 0)
		die("walk");
	printf("engine usage report (%u snapshots, counters %s) with %" PRIu64 " exceptions, median of %u: "
	       "%.4f ms; a walk of the tree: %.1f ms (counters %s)\n", info.snapshots,
	       store_counters_state(s), info.exceptions, nrep, median(rep, nrep), t_walk,
	       wrong ? "WRONG" : "exact");

	double create[TIMED_MAX], commit[TIMED_MAX];
	uint32_t ids[TIMED_MAX];
	for (unsigned i = 0; i < timed; i++) {
		char name[32];
		snprintf(name, sizeof name, "timed%u", i);
		t0 = now_ms();
		if (store_snapshot_create(s, name, 0, &ids[i]) < 0)
			die("snapshot create");
		double t1 = now_ms();
		if (store_commit(s) < 0)
			die("commit");
		create[i] = t1 - t0;
		commit[i] = now_ms() - t1;
	}
	if (timed) {
		double tot[TIMED_MAX];
		for (unsigned i = 0; i < timed; i++)
			tot[i] = create[i] + commit[i];
		printf("engine snapshot create with %" PRIu64 " exceptions, median of %u: "
		       "create %.3f ms, commit %.3f ms, both %.3f ms\n",
		       info.exceptions, timed, median(create, timed), median(commit, timed), median(tot, timed));
	}
	for (unsigned i = 0; i < timed; i++)
		if (store_snapshot_delete(s, ids[i]) < 0)
			die("snapshot delete");
	int r;
	while ((r = store_cleanup(s, 1000)) > 0)
		if (store_txn_blocks(s) > limit && store_commit(s) < 0)
			die("commit");
	if (r < 0)
		die("cleanup");
	if (store_commit(s) < 0 || store_checkpoint(s) < 0)
		die("commit");
	store_close(s);
	return 0;
}
