/*
 * tests/tools/wlog_replay.c - whole-cluster power cuts, replayed offline
 * from the write log every csnap process kept during a real cluster run
 * (ioengine/wlog.h; tests/integration/cluster_powercut.sh drives it).
 *
 *   wlog_replay [-n CUTS] [-s SEED] [-r RESTART_EVERY] [-k KEEPDIR] [-i CUT]
 *               LOGDIR WORKDIR ORIGIN ORIGIN_INIT STORE STORE_INIT
 *               BLOCKS SNAPS DELETES WRITELOG,FLUSHLOG...
 *
 * ORIGIN and STORE are the live files the cluster used (matched with the
 * log's DEV records by device and inode); *_INIT are copies taken before
 * the first logged write.  For each cut time T (random, ascending: near a
 * logged event, or for a quarter of them within a snapshot create or the
 * 200 ms after it) the images in WORKDIR are the initial copies plus
 *   - every write durable at T: completed (t1) before the start (t0) of a
 *     flush of the same file that completed before T, from any process;
 *   - a random subset of the other writes issued before T (none, all, or
 *     each with probability 1/2, some torn: only some of their 4 KiB
 *     sectors), in completion order; a write never completed (its
 *     process was killed) is applied only to the sectors no durable
 *     write issued after it overwrote (overwritten_later());
 * and on them:
 *   - the store engine opens them (read-only: journal replayed in memory)
 *     and its full consistency check finds nothing;
 *   - every origin block is an intact self-describing block
 *     (tests/integration/cluster_blocks.py) from a write issued before T,
 *     and not older than any write its writer had flushed (NBD FLUSH sent
 *     after the write's acknowledgement, flush acknowledged before T);
 *   - every snapshot whose create returned before T and whose delete had
 *     not begun is there; every snapshot there reads, block by block, what
 *     the origin held at its time (the last write acknowledged before its
 *     create began, or one started before it returned), and exactly what
 *     it reads once every logged write is applied (the run's end state);
 *   - every RESTART_EVERY-th cut also restarts: the images are copied, the
 *     engine opens the copy read-write (journal replay written home, as a
 *     new master does), closes it, and everything above is checked again.
 * With -i N, cut N is also installed into the live files (the store
 * outside its lease area, which the stopped cluster's sanlock daemons may
 * still hold), its origin image kept as WORKDIR/cut-origin.img and its
 * time written to WORKDIR/cut.time, so that the test can restart the real
 * cluster on it.
 * Before the cuts, every logged write applied must reproduce the live
 * origin exactly and the live store outside its sanlock lease area (which
 * sanlock writes itself, unlogged): a check of the log itself.
 *
 * SNAPS lines: "name t0 t1" (monotonic s, create began / returned);
 * DELETES lines: "name t" (delete began); WRITELOG lines "seq block ts ta";
 * FLUSHLOG lines "ts ta" (the writer's NBD FLUSHes).  Exit 0: all clean.
 */
#include "tests/tools/wlog_read.h"
#include "src/store/store.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS 4096
#define MAXSNAP 256

struct cw { uint64_t seq; int64_t ts, ta; };		/* a client write */
struct blk { struct cw *w; size_t n, cap; };		/* writes of a block, by seq */
struct snap { char name[64]; int64_t t0, t1, tdel; uint64_t *final; };
struct flog { int64_t *ts, *ta; size_t n; uint64_t writer; };

static size_t UNF0[2];			/* first unfinished write in W[i] */
static struct blk *B; static uint64_t NBLK;
static struct snap S[MAXSNAP]; static unsigned NS;
static struct flog FL[8]; static unsigned NFL;
static const char *IMG[2];
static long failures, checked_required, checked_snaps;

static int64_t secs_ns(double s) { return (int64_t)(s * 1e9 + (s < 0 ? -0.5 : 0.5)); }

static size_t count_unf(int i)
{
	size_t n = 0;
	for (size_t k = 0; k < NW[i]; k++)
		n += W[i][k].unfinished;
	return n;
}

/* ---- the client side: writers, flushes, snapshots ----------------------- */

static void read_model(const char *snaps, const char *deletes, char **logs, int nlogs)
{
	char name[128];
	double a, b;
	FILE *f;

	B = calloc(NBLK, sizeof *B);
	if (!B)
		die("out of memory");
	for (int i = 0; i < nlogs; i++) {
		char *comma = strchr(logs[i], ',');
		unsigned long long seq, blk;
		struct flog *fl = &FL[NFL++];
		size_t cap = 0;

		if (!comma || NFL > 8)
			die("writer logs are WRITELOG,FLUSHLOG (at most 8)");
		*comma = 0;
		if (!(f = fopen(logs[i], "r")))
			die("cannot open a writer log");
		while (fscanf(f, "%llu %llu %lf %lf", &seq, &blk, &a, &b) == 4) {
			struct cw w = { seq, secs_ns(a), secs_ns(b) };
			if (blk >= NBLK)
				die("a writer log names a block past the origin");
			push((void **)&B[blk].w, &B[blk].n, &B[blk].cap, &w, sizeof w);
			fl->writer = seq >> 40;
		}
		fclose(f);
		if (!(f = fopen(comma + 1, "r")))
			die("cannot open a flush log");
		while (fscanf(f, "%lf %lf", &a, &b) == 2) {
			int64_t ts = secs_ns(a), ta = secs_ns(b);
			size_t n = fl->n, cap2 = cap;
			push((void **)&fl->ts, &n, &cap, &ts, sizeof ts);
			n = fl->n;
			push((void **)&fl->ta, &n, &cap2, &ta, sizeof ta);
			fl->n = n;
		}
		fclose(f);
	}
	for (uint64_t b2 = 0; b2 < NBLK; b2++)	/* by seq: each block has one writer */
		for (size_t i = 1; i < B[b2].n; i++)
			if (B[b2].w[i].seq < B[b2].w[i - 1].seq)
				die("a writer log is not in sequence order");
	if (!(f = fopen(snaps, "r")))
		die("cannot open the snapshot list");
	while (NS < MAXSNAP && fscanf(f, "%63s %lf %lf", name, &a, &b) == 3) {
		snprintf(S[NS].name, sizeof S[NS].name, "%s", name);
		S[NS].t0 = secs_ns(a);
		S[NS].t1 = secs_ns(b);
		S[NS++].tdel = INT64_MAX;
	}
	fclose(f);
	if ((f = fopen(deletes, "r"))) {
		while (fscanf(f, "%127s %lf", name, &a) == 2)
			for (unsigned i = 0; i < NS; i++)
				if (!strcmp(S[i].name, name))
					S[i].tdel = secs_ns(a);
		fclose(f);
	}
}

/* The seq a block holds, 0 for the initial content, UINT64_MAX if it is
 * not an intact block B.  Format: cluster_blocks.py make_block(). */
static uint64_t parse_block(const uint8_t *d, uint64_t b)
{
	uint8_t digest[64];
	uint64_t blk, seq;

	if (memcmp(d, "CSNPBLK1", 8))
		return UINT64_MAX;
	memcpy(&blk, d + 8, 8);
	memcpy(&seq, d + 16, 8);
	if (blk != b)
		return UINT64_MAX;
	crypto_generichash(digest, 64, d, 32, NULL, 0);
	for (size_t o = 32; o < BS; o += 64) {
		size_t n = BS - o < 64 ? BS - o : 64;
		if (memcmp(d + o, digest, n))
			return UINT64_MAX;
	}
	return seq;
}

static const struct cw *find_write(uint64_t b, uint64_t seq)
{
	size_t lo = 0, hi = B[b].n;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (B[b].w[m].seq < seq) lo = m + 1; else hi = m;
	}
	return lo < B[b].n && B[b].w[lo].seq == seq ? &B[b].w[lo] : NULL;
}

/* ---- checking one state ------------------------------------------------- */

#define BAD(...) do { if (nbad++ < 5) { fprintf(stderr, "  cut %s: ", tag); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* Check the images at PATHS as the state at cut T; FINAL: this is the end
 * state, remember what each snapshot reads.  Returns the problems found. */
static long check_state(const char *paths[2], int64_t T, bool final, const char *tag)
{
	struct store_open_opts o = { .readonly = true, .cache_bytes = 16u << 20 };
	struct store_snapshot list[MAXSNAP];
	struct store_info info;
	struct store *st;
	long nbad = 0, n;
	uint64_t *req = calloc(NBLK, sizeof *req);
	uint8_t *buf;
	int ofd = open(paths[0], O_RDONLY), sfd = open(paths[1], O_RDONLY);
	int nlist;

	if (!req || ofd < 0 || sfd < 0)
		die("cannot open the images");
	if (store_open(paths[1], &o, &st) < 0) {
		BAD("store does not open: %s", err_get());
		goto out;
	}
	n = store_check_open(st, stderr);
	if (n != 0)
		BAD("store check: %ld problems (listed above)", n);
	store_get_info(st, &info);
	buf = malloc(info.chunk_size);
	if (!buf || info.chunk_size % BS)
		die("bad chunk size");

	/* What each writer had flushed by T.  */
	for (unsigned i = 0; i < NFL; i++) {
		int64_t sent = INT64_MIN;
		for (size_t k = 0; k < FL[i].n; k++)
			if (FL[i].ta[k] < T && FL[i].ts[k] > sent)
				sent = FL[i].ts[k];
		for (uint64_t b = 0; b < NBLK; b++)
			for (size_t k = 0; k < B[b].n; k++)
				if (B[b].w[k].seq >> 40 == FL[i].writer && B[b].w[k].ta < sent &&
				    B[b].w[k].seq > req[b])
					req[b] = B[b].w[k].seq;
	}
	/* The origin.  */
	for (uint64_t b = 0; b < NBLK; b++) {
		uint8_t d[BS];
		const struct cw *w;
		uint64_t seq;

		if (pread(ofd, d, BS, (off_t)(b * BS)) != BS)
			die("origin image read");
		seq = parse_block(d, b);
		if (seq == UINT64_MAX) {
			BAD("origin block %" PRIu64 " is not an intact block %" PRIu64, b, b);
			continue;
		}
		w = seq ? find_write(b, seq) : NULL;
		if (seq && (!w || w->ts >= T))
			BAD("origin block %" PRIu64 " holds seq %" PRIu64 ", a write %s", b, seq,
			    w ? "started after the cut" : "no writer logged");
		else if (seq < req[b])
			BAD("origin block %" PRIu64 " holds seq %" PRIu64 " but seq %" PRIu64
			    " was flushed before the cut (lost)", b, seq, req[b]);
		if (req[b])
			checked_required++;
	}
	/* The snapshots.  */
	nlist = store_snapshot_list(st, list, MAXSNAP);
	if (nlist < 0 || nlist > MAXSNAP)
		die("snapshot list");
	for (unsigned i = 0; i < NS; i++) {
		bool there = false;
		for (int k = 0; k < nlist; k++)
			there |= (list[k].flags & STORE_SNAP_LIVE) && !strcmp(list[k].name, S[i].name);
		if (!there && S[i].t1 < T && S[i].tdel >= T)
			BAD("snapshot %s (created before the cut) is missing", S[i].name);
	}
	for (int k = 0; k < nlist; k++) {
		struct snap *sn = NULL;
		uint64_t ocs = info.chunk_size / BS;

		if (!(list[k].flags & STORE_SNAP_LIVE))
			continue;
		for (unsigned i = 0; i < NS; i++)
			if (!strcmp(S[i].name, list[k].name))
				sn = &S[i];
		if (!sn) {
			BAD("unknown snapshot %s", list[k].name);
			continue;
		}
		if (sn->t0 >= T)
			BAD("snapshot %s exists, but its create began after the cut", sn->name);
		if (final && !(sn->final = calloc(NBLK, sizeof *sn->final)))
			die("out of memory");
		checked_snaps++;
		for (uint64_t c = 0; c * ocs < NBLK; c++) {
			chunk_t loc;
			int fd = ofd;
			uint64_t off = c * info.chunk_size;

			if (store_snapshot_read(st, list[k].id, c, 1, &loc) < 0) {
				BAD("snapshot %s chunk %" PRIu64 ": %s", sn->name, c, err_get());
				continue;
			}
			if (loc != STORE_ON_ORIGIN) {
				fd = sfd;
				off = store_chunk_offset(st, loc);
			}
			if (pread(fd, buf, info.chunk_size, (off_t)off) != (ssize_t)info.chunk_size)
				die("image read");
			for (uint64_t j = 0; j < ocs && c * ocs + j < NBLK; j++) {
				uint64_t b = c * ocs + j, lower = 0;
				uint64_t seq = parse_block(buf + j * BS, b);
				const struct cw *w;

				if (seq == UINT64_MAX) {
					BAD("snapshot %s block %" PRIu64 " is not an intact block", sn->name, b);
					continue;
				}
				/* A committed snapshot never changes, power cut or
				 * not: the chunks it still shares with the origin
				 * were flushed before its barrier was answered
				 * (src/export/volume_origin.c).  */
				if (final)
					sn->final[b] = seq;
				else if (sn->final && sn->final[b] != seq)
					BAD("snapshot %s block %" PRIu64 " holds seq %" PRIu64 ", at the end %"
					    PRIu64 "%s", sn->name, b, seq, sn->final[b],
					    loc == STORE_ON_ORIGIN ? " (on the origin)" : "");
				for (size_t m = 0; m < B[b].n; m++)
					if (B[b].w[m].ta < sn->t0)
						lower = B[b].w[m].seq;
				w = seq ? find_write(b, seq) : NULL;
				if (seq != lower && !(seq > lower && w && w->ts < sn->t1))
					BAD("snapshot %s block %" PRIu64 " holds seq %" PRIu64 ", expected %"
					    PRIu64 " or a write started before the create returned",
					    sn->name, b, seq, lower);
			}
		}
	}
	free(buf);
	store_close(st);
out:
	close(ofd);
	close(sfd);
	free(req);
	return nbad;
}

/* ---- building the images ------------------------------------------------ */

struct undo { int fd; uint64_t off, len; uint8_t *old; };

/* Copy [off, off + len) of file FROM into file TO (same offsets).  */
static void copy_range(const char *from, const char *to, uint64_t off, uint64_t len)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY);
	static uint8_t buf[1 << 20];

	if (in < 0 || out < 0)
		die("cannot install a cut");
	while (len) {
		size_t n = len < sizeof buf ? len : sizeof buf;
		ssize_t r = pread(in, buf, n, (off_t)off);
		if (r <= 0)
			break;
		if (pwrite(out, buf, (size_t)r, (off_t)off) != r)
			die("cannot install a cut");
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	close(in);
	close(out);
}

/* Live files against the images with every write applied.  */
static long compare_live(uint64_t lease_lo, uint64_t lease_hi)
{
	long diff = 0;
	for (int i = 0; i < 2; i++) {
		int a = open(LIVE[i], O_RDONLY), b = open(IMG[i], O_RDONLY);
		uint8_t x[BS], y[BS];
		for (uint64_t off = 0;; off += BS) {
			ssize_t n = pread(a, x, BS, (off_t)off), m = pread(b, y, BS, (off_t)off);
			if (n <= 0 && m <= 0)
				break;
			if (n != m || memcmp(x, y, (size_t)n)) {
				if (i == 1 && off >= lease_lo && off < lease_hi)
					continue;
				if (diff++ < 5)
					fprintf(stderr, "  replay of the whole log differs from live %s at %"
						PRIu64 "\n", LIVE[i], off);
			}
		}
		close(a);
		close(b);
	}
	return diff;
}


/* Whether the 4 KiB sector at off of file i was overwritten, in the
 * durable prefix W[i][0..dp), by a completed write issued after t0.  An
 * unfinished write (its process was killed) can land only before that
 * process is gone: the kernel completes a dying process's in-flight aio
 * (exit_aio, from exit_mm) before it closes its descriptors (exit_files),
 * so before sanlock sees it die and frees the lease a new master needs.
 * Any write issued after it to the same sector (here: the new master
 * reusing a store chunk the dead master's uncommitted copy-out had
 * written) therefore lands on top of it, never under it.  */
static bool overwritten_later(int i, size_t dp, uint64_t off, int64_t t0)
{
	for (size_t k = 0; k < dp; k++) {
		const struct wr *w = &W[i][k];

		if (!w->unfinished && w->t0 > t0 && w->off < off + BS && off < w->off + w->len)
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	unsigned cuts = 200, seed = 1, restart_every = 10;
	long install = -1;
	const char *keep = NULL;
	int opt, fd[2];
	size_t dp[2] = { 0, 0 }, fp[2] = { 0, 0 };
	int64_t dur[2] = { INT64_MIN, INT64_MIN }, *times;
	size_t nt = 0;
	long vol = 0, torn = 0, restarts = 0, badcuts = 0;
	char scratch[4096], path[2][4096];
	struct store_info info;

	wlog_prog = "wlog_replay";
	while ((opt = getopt(argc, argv, "i:n:s:r:k:")) != -1) {
		if (opt == 'i') install = atol(optarg);
		else if (opt == 'n') cuts = (unsigned)atoi(optarg);
		else if (opt == 's') seed = (unsigned)strtoul(optarg, NULL, 0);
		else if (opt == 'r') restart_every = (unsigned)atoi(optarg);
		else if (opt == 'k') keep = optarg;
		else die("bad option");
	}
	argv += optind;
	argc -= optind;
	log_set_level(LOG_LEVEL_WARN);
	if (argc < 10 || sodium_init() < 0)
		die("usage: wlog_replay [-n CUTS] [-s SEED] [-r RESTART_EVERY] [-k KEEPDIR] [-i CUT] LOGDIR "
		    "WORKDIR ORIGIN ORIGIN_INIT STORE STORE_INIT BLOCKS SNAPS DELETES "
		    "WRITELOG,FLUSHLOG...");
	srand(seed);
	LIVE[0] = argv[2];
	LIVE[1] = argv[4];
	NBLK = strtoull(argv[6], NULL, 0);
	read_logs(argv[0]);
	read_model(argv[7], argv[8], argv + 9, argc - 9);
	for (int i = 0; i < 2; i++) {
		qsort(W[i], NW[i], sizeof *W[i], by_t1_w);
		qsort(F[i], NF[i], sizeof *F[i], by_t1_f);
		for (UNF0[i] = 0; UNF0[i] < NW[i] && !W[i][UNF0[i]].unfinished; UNF0[i]++)
			;
		snprintf(path[i], sizeof path[i], "%s/%s.img", argv[1], i ? "store" : "origin");
		IMG[i] = path[i];
	}
	snprintf(scratch, sizeof scratch, "%s/store.restart.img", argv[1]);
	printf("log: origin %zu writes %zu flushes, store %zu writes %zu flushes, %zu + %zu writes"
	       " unfinished; %u snapshots\n", NW[0], NF[0], NW[1], NF[1], count_unf(0),
	       count_unf(1), NS);
	if (!NW[0] || !NW[1])
		die("the log holds no writes of the origin or of the store");

	/* The end state: every write, checked against the live files.  */
	for (int i = 0; i < 2; i++) {
		copy_file(argv[i ? 5 : 3], IMG[i]);
		if ((fd[i] = open(IMG[i], O_RDWR)) < 0)
			die("image open");
		for (size_t k = 0; k < NW[i]; k++)
			put(fd[i], W[i][k].data, W[i][k].len, W[i][k].off);
	}
	{
		struct store *st;
		struct store_open_opts o = { .readonly = true };
		if (store_open(IMG[1], &o, &st) < 0)
			die("the end state's store does not open");
		store_get_info(st, &info);
		store_close(st);
	}
	if (compare_live(info.sb.lease_offset,
			 info.sb.lease_offset + 3ull * info.sb.lease_align))
		die("the write log does not reproduce the live files (see above)");
	if (check_state(IMG, INT64_MAX, true, "end"))
		die("the end state itself fails the checks");
	printf("end state: reproduces the live origin and store, checks clean\n");

	/* Cut times: just before, at or after a logged event.  */
	times = malloc(sizeof *times * 2 * (NW[0] + NW[1] + NF[0] + NF[1]));
	if (!times)
		die("out of memory");
	for (int i = 0; i < 2; i++) {
		for (size_t k = 0; k < NW[i]; k++) { times[nt++] = W[i][k].t0; times[nt++] = W[i][k].t1; }
		for (size_t k = 0; k < NF[i]; k++) { times[nt++] = F[i][k].t0; times[nt++] = F[i][k].t1; }
	}
	int64_t *cut = malloc(sizeof *cut * (cuts ? cuts : 1));
	for (unsigned c = 0; c < cuts; c++) {
		/* A quarter of the cuts fall in a snapshot create or the
		 * 200 ms after it returned: where a snapshot is committed.  */
		if (NS && rand() % 4 == 0) {
			const struct snap *sn = &S[(unsigned)rand() % NS];
			uint64_t span = (uint64_t)(sn->t1 - sn->t0) + 200000000ull;

			cut[c] = sn->t0 + (int64_t)(((uint64_t)rand() << 31 ^ (uint64_t)rand()) % span);
		} else {
			cut[c] = times[(size_t)rand() % nt] + rand() % 3 - 1;
		}
	}
	for (unsigned c = 1; c < cuts; c++)	/* insertion sort: few hundred */
		for (unsigned k = c; k > 0 && cut[k] < cut[k - 1]; k--) {
			int64_t t = cut[k]; cut[k] = cut[k - 1]; cut[k - 1] = t;
		}

	for (int i = 0; i < 2; i++) {
		close(fd[i]);
		copy_file(argv[i ? 5 : 3], IMG[i]);
		if ((fd[i] = open(IMG[i], O_RDWR)) < 0)
			die("image open");
	}
	for (unsigned c = 0; c < cuts; c++) {
		int64_t T = cut[c];
		struct undo *u = NULL;
		size_t nu = 0, ucap = 0;
		int mode = rand() % 4;	/* 0 none, 1 all, else each 1/2 */
		char tag[64];
		long bad;

		snprintf(tag, sizeof tag, "%u (t=%.6f)", c, (double)T / 1e9);
		for (int i = 0; i < 2; i++) {
			while (fp[i] < NF[i] && F[i][fp[i]].t1 <= T) {
				if (F[i][fp[i]].t0 > dur[i])
					dur[i] = F[i][fp[i]].t0;
				fp[i]++;
			}
			while (dp[i] < NW[i] && W[i][dp[i]].t1 < dur[i]) {
				if (!W[i][dp[i]].unfinished)
					put(fd[i], W[i][dp[i]].data, W[i][dp[i]].len, W[i][dp[i]].off);
				dp[i]++;
			}
		}
		/* The unflushed writes issued before T, in completion order
		 * (and the unfinished ones among the durable prefix).  */
		for (int i = 0; i < 2; i++)
			for (size_t k = UNF0[i] < dp[i] ? UNF0[i] : dp[i]; k < NW[i]; k++) {
				const struct wr *w = &W[i][k];
				bool tear;

				if (k < dp[i] && !w->unfinished)
					continue;
				tear = mode >= 2 && w->len > BS && rand() % 4 == 0;
				if (w->t0 >= T || mode == 0 || (mode >= 2 && rand() % 2))
					continue;
				vol++;
				torn += tear;
				for (uint64_t o = 0; o < w->len; o += BS) {
					uint64_t n = w->len - o < BS ? w->len - o : BS;
					struct undo e = { fd[i], w->off + o, n, malloc(n) };

					if (tear && rand() % 2)
						continue;
					if (w->unfinished && k < dp[i] &&
					    overwritten_later(i, dp[i], w->off + o, w->t0))
						continue;
					if (!e.old || pread(fd[i], e.old, n, (off_t)e.off) != (ssize_t)n)
						die("undo read");
					push((void **)&u, &nu, &ucap, &e, sizeof e);
					put(fd[i], w->data + o, n, w->off + o);
				}
			}
		bad = check_state(IMG, T, false, tag);
		if (!bad && restart_every && c % restart_every == 0) {
			/* A restart writes only the store (journal replay, then
			 * the metadata home): on a copy of it.  */
			struct store *st;
			const char *sp[2] = { IMG[0], scratch };

			copy_file(IMG[1], scratch);
			if (store_open(scratch, NULL, &st) < 0) {
				fprintf(stderr, "  cut %s: store does not open read-write: %s\n", tag, err_get());
				bad++;
			} else {
				store_close(st);
				strcat(tag, " restarted");
				bad = check_state(sp, T, false, tag);
			}
			restarts++;
		}
		if (!bad && c == install) {
			uint64_t lo = info.sb.lease_offset, hi = lo + 3ull * info.sb.lease_align;
			char kp[4096];
			FILE *tf;

			snprintf(kp, sizeof kp, "%s/cut-origin.img", argv[1]);
			copy_file(IMG[0], kp);
			copy_file(IMG[0], LIVE[0]);
			copy_range(IMG[1], LIVE[1], 0, lo);
			copy_range(IMG[1], LIVE[1], hi, UINT64_MAX - hi);
			snprintf(kp, sizeof kp, "%s/cut.time", argv[1]);
			if (!(tf = fopen(kp, "w")))
				die("cut.time");
			fprintf(tf, "%.6f\n", (double)T / 1e9);
			fclose(tf);
			printf("cut %u (t=%.6f) installed into the live files\n", c, (double)T / 1e9);
		}
		if (bad) {
			badcuts++;
			failures += bad;
			if (keep) {
				char kp[4096];
				snprintf(kp, sizeof kp, "%s/cut%u-origin.img", keep, c);
				copy_file(IMG[0], kp);
				snprintf(kp, sizeof kp, "%s/cut%u-store.img", keep, c);
				copy_file(IMG[1], kp);
			}
		}
		while (nu--) {
			put(u[nu].fd, u[nu].old, u[nu].len, u[nu].off);
			free(u[nu].old);
		}
		free(u);
		if (badcuts >= 5)
			break;
	}
	printf("%u cuts (%ld with a restart): %ld unflushed writes applied (%ld torn), "
	       "%ld flushed blocks and %ld snapshots checked, %ld bad cuts, %ld problems\n",
	       cuts, restarts, vol, torn, checked_required, checked_snaps, badcuts, failures);
	return badcuts ? 1 : 0;
}
