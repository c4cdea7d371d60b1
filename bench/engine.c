/*
 * bench/engine.c - throughput and memory of the exception engine.
 *
 *   build/bench/engine [DIR] [MAX_MILLIONS] [MIN_MILLIONS]
 *
 * For 1 M and 10 M exceptions (up to MAX_MILLIONS, default 10), each with
 * 1 and with 256 live snapshots (254 during the inserts and lookups, the
 * 255th is the timed create, the 256th the timed clone), on a sparse store file in DIR (default
 * /var/tmp; needs ~50 GB of sparse space, writes ~1-2 GB of metadata):
 *   inserts/s   origin writes of 64-chunk ranges that each record one new
 *               exception per chunk (the first-write path), with group
 *               commits as the server would do them, per wall second and
 *               per second of this thread's CPU time (ins/cpu-s);
 *   lookups/s   single-chunk snapshot-read lookups at random copied-out
 *               chunks, per second of this thread's CPU time, best of 5
 *               rounds of 1 M (the build machine is shared);
 *   create ms   time to create one more snapshot (in memory), and
 *   commit ms   the commit that makes it durable (journal write + flush);
 *   clone ms    a snapshot of a snapshot (`snapshot create NEW --from S`,
 *               src/store/clone.c) of the first snapshot, which shares
 *               every exception: its walk sets one bit in each, in steps
 *               of 65,536 exceptions committed one by one as the server
 *               does, wall time to the last commit, and its CPU time;
 *   RSS         resident memory of the process after the run (the
 *               metadata cache is 1 GiB).
 * Metadata only: no data chunk is copied (that is the server's I/O).
 * env: ENGINE_SNAPS=1 (or 256) runs only that snapshot count,
 *      ENGINE_ROUNDS=N lookup rounds (default 5; more for perf record),
 *      ENGINE_NO_COUNTERS=1 a store without usage counters (formatted as
 *      version 1, opened with old_format): what maintaining them costs.
 * A program, not a test: it prints figures and ratios, asserts nothing.
 */
#include "bench/bench.h"
#include "utils/err.h"
#include "utils/log.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 4096u

/* CPU time of this thread: lookups are CPU-bound, and the build machine
 * is shared, so per-core throughput is measured on CPU time.  */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static void die(const char *what) { bench_die("engine bench", what); }

struct result { double ins, ins_cpu, look, create_ms, commit_ms, clone_ms, clone_cpu_ms; unsigned clone_steps; long rss; };

static struct result run(const char *dir, uint64_t nexc, unsigned nsnap)
{
	char path[512];
	snprintf(path, sizeof path, "%s/csnap-bench-engine-%d", dir, (int)getpid());
	uint64_t origin_chunks = nexc + 1024;
	/* data + worst-case tree area + journal + lease area, sparse */
	uint64_t store_size = (origin_chunks + 4096) * CHUNK + origin_chunks / 20 * 4096 + (256ull << 20);
	bool no_counters = getenv("ENGINE_NO_COUNTERS") && atoi(getenv("ENGINE_NO_COUNTERS"));
	bench_mkstore("engine bench", path, store_size, CHUNK, origin_chunks * CHUNK, 256,
		      no_counters ? 1 : CSNAP_FORMAT_VERSION);

	struct store_open_opts o = { .cache_bytes = 1ull << 30, .old_format = no_counters };
	struct store *s;
	if (store_open(path, &o, &s) < 0)
		die("store_open");
	uint32_t ids[256];
	/* with a full table the last two snapshots are the ones whose
	 * creation and clone are timed below (each needs a free slot) */
	unsigned pre = nsnap == 256 ? 254 : nsnap;
	for (unsigned i = 0; i < pre; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%u", i);
		if (store_snapshot_create(s, name, 0, &ids[i]) < 0)
			die("create");
	}
	if (store_commit(s) < 0)
		die("commit");

	struct store_copy cp[64];
	uint32_t ncp;
	unsigned limit = store_txn_limit(s) / 2;
	double t0 = bench_now(), c0 = cpu_now();
	for (uint64_t c = 0; c < nexc; c += 64) {
		uint32_t n = nexc - c < 64 ? (uint32_t)(nexc - c) : 64;
		if (store_origin_write(s, c, n, cp, &ncp) < 0 || ncp != n)
			die("origin write");
		if (store_txn_blocks(s) > limit && store_commit(s) < 0)
			die("commit");
	}
	if (store_commit(s) < 0)
		die("commit");
	double t_ins = bench_now() - t0, c_ins = cpu_now() - c0;

	/* best of 5 rounds of 1 M lookups: the build machine is shared and
	 * other processes' bursts only ever slow a round down */
	uint64_t nlook = 1000000, x = 88172645463325252ull, hits = 0;
	double best = 1e9;
	chunk_t out;
	const char *rs = getenv("ENGINE_ROUNDS");
	int rounds = rs && atoi(rs) > 0 ? atoi(rs) : 5;
	for (int round = 0; round < rounds; round++) {
		t0 = cpu_now();
		for (uint64_t i = 0; i < nlook; i++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			if (store_snapshot_read(s, ids[i % pre], x % nexc, 1, &out) < 0)
				die("lookup");
			hits += out != STORE_ON_ORIGIN;
		}
		double t = cpu_now() - t0;
		if (t < best)
			best = t;
	}
	double t_look = best;
	if (hits < nlook * (uint64_t)rounds * 9 / 10)
		fprintf(stderr, "engine bench: only %" PRIu64 " of %" PRIu64 " lookups hit\n", hits,
			nlook * (uint64_t)rounds);

	/* one more snapshot while the store holds nexc exceptions */
	uint32_t id;
	t0 = bench_now();
	if (store_snapshot_create(s, "extra", 0, &id) < 0)
		die("create");
	double t_create = bench_now() - t0;
	t0 = bench_now();
	if (store_commit(s) < 0)
		die("commit");
	double t_commit = bench_now() - t0;

	/* a snapshot of a snapshot: the walk over every exception */
	unsigned steps = 1;
	int cr;
	t0 = bench_now();
	c0 = cpu_now();
	if (store_snapshot_clone(s, "clone", ids[0], 0, NULL, &id) < 0)
		die("clone");
	while ((cr = store_clone_step(s, 65536)) > 0) {
		steps++;
		if (store_commit(s) < 0)
			die("commit");
	}
	if (cr < 0 || store_commit(s) < 0)
		die("clone step");
	double t_clone = bench_now() - t0, c_clone = cpu_now() - c0;

	struct result r = { (double)nexc / t_ins, (double)nexc / c_ins, (double)nlook / t_look, t_create * 1e3,
			    t_commit * 1e3, t_clone * 1e3, c_clone * 1e3, steps, rss_kib() };
	store_close(s);
	unlink(path);
	return r;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	int maxm = argc > 2 ? atoi(argv[2]) : 10;
	int minm = argc > 3 ? atoi(argv[3]) : 1;	/* e.g. 10: skip the 1 M runs */

	log_init("engine-bench", LOG_LEVEL_WARN);
	printf("%-12s %-9s %12s %12s %12s %10s %10s %10s %12s %6s %8s\n", "exceptions", "snapshots", "inserts/s",
	       "ins/cpu-s", "lookups/s", "create ms", "commit ms", "clone ms", "clone cpu ms", "steps", "RSS MiB");
	const char *only = getenv("ENGINE_SNAPS");
	int want = only ? atoi(only) : 0;	/* 0: both */
	for (int m = minm; m <= maxm; m *= 10) {
		struct result r[2];
		for (int k = 0; k < 2; k++) {
			unsigned nsnap = k ? 256 : 1;
			if (want && (unsigned)want != nsnap)
				continue;
			r[k] = run(dir, (uint64_t)m * 1000000, nsnap);
			printf("%-12d %-9u %12.0f %12.0f %12.0f %10.3f %10.2f %10.0f %12.0f %6u %8.1f\n", m * 1000000,
			       nsnap, r[k].ins, r[k].ins_cpu, r[k].look, r[k].create_ms, r[k].commit_ms,
			       r[k].clone_ms, r[k].clone_cpu_ms, r[k].clone_steps, (double)r[k].rss / 1024);
			fflush(stdout);
		}
		if (!want)
			printf("  first-write (insert) rate with 256 snapshots / with 1: %.2f wall, %.2f cpu\n",
			       r[1].ins / r[0].ins, r[1].ins_cpu / r[0].ins_cpu);
		fflush(stdout);
	}
	return 0;
}
