/*
 * bench/replay.c - how long a new master takes to replay the journal a
 * killed master left behind.
 *
 *   build/bench/replay [DIR] [TRANSACTIONS] [CHUNKS_PER_TXN] [ROUNDS]
 *
 * Defaults: /var/tmp, 400 transactions (what the 3-node kill soak left at
 * a takeover), 8 random first writes each (one commit of the server's
 * group commit under random 4 KiB writes after a snapshot), 3 rounds.
 * Each round, on a fresh store file (64 KiB chunks, 4 GiB origin, one
 * snapshot) in DIR: the transactions are committed one by one and the
 * store is closed without a checkpoint, as a killed master leaves it; then
 * store_open() is timed (its journal replay is the takeover's cost).
 * O_DIRECT, so the page cache plays no part.  A program, not a test: it
 * prints figures and asserts nothing; tests/unit/test_store_replay checks
 * what a replay produces.
 */
#include "bench/bench.h"
#include "utils/log.h"

#define CHUNK (64u << 10)
#define ORIGIN_CHUNKS 65536ull

static void die(const char *what) { bench_die("replay bench", what); }

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	unsigned ntxn = argc > 2 ? (unsigned)atoi(argv[2]) : 400;
	unsigned per = argc > 3 ? (unsigned)atoi(argv[3]) : 8;
	int rounds = argc > 4 ? atoi(argv[4]) : 3;
	struct store_open_opts o = { .cache_bytes = 64u << 20 };
	uint64_t x = 88172645463325252ull;

	log_set_level(LOG_LEVEL_WARN);
	printf("replay bench: %u transactions of %u random first writes, %d rounds\n",
	       ntxn, per, rounds);
	for (int r = 0; r < rounds; r++) {
		char path[512];
		snprintf(path, sizeof path, "%s/csnap-bench-replay-%d", dir, (int)getpid());
		bench_mkstore("replay bench", path, ORIGIN_CHUNKS * CHUNK / 2, CHUNK,
			      ORIGIN_CHUNKS * CHUNK, 64, CSNAP_FORMAT_VERSION);
		struct store *s;
		uint32_t id;
		if (store_open(path, &o, &s) < 0)
			die("store_open");
		if (store_snapshot_create(s, "s", 0, &id) < 0 || store_commit(s) < 0)
			die("snapshot");
		for (unsigned t = 0; t < ntxn; t++) {
			for (unsigned i = 0; i < per; i++) {
				struct store_copy cp[1];
				uint32_t ncp;
				x ^= x << 13; x ^= x >> 7; x ^= x << 17;
				if (store_origin_write(s, x % ORIGIN_CHUNKS, 1, cp, &ncp) < 0)
					die("origin write");
			}
			if (store_commit(s) < 0)
				die("commit");
		}
		store_close_nockpt(s);
		double t0 = bench_now();
		if (store_open(path, &o, &s) < 0)
			die("store_open (replay)");
		double t = bench_now() - t0;
		store_close(s);
		unlink(path);
		printf("round %d: store_open with replay %.1f ms\n", r + 1, t * 1e3);
	}
	return 0;
}
