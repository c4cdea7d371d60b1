/*
 * tests/tools/proto_client.c - a test client of the csnap server that does
 * what a real export does on the data path: asks before origin writes and
 * then writes the origin itself, reads snapshot chunks from the store or
 * (read-locked) from the origin, writes snapshot chunks into the store
 * chunks the server hands out, holds read locks and re-uploads them to a
 * new master after failover.
 *
 *   proto_client [--master ADDR:PORT] STORE ORIGIN CMD ARGS...
 *     owrite CHUNK COUNT BYTE      query, then fill the origin chunks with BYTE
 *     oquery CHUNK COUNT           query only; prints "replied <realtime ns>"
 *     sread SNAP CHUNK COUNT       prints "chunk N BYTE at store|origin" per chunk
 *     swrite SNAP CHUNK COUNT BYTE snapshot write of whole chunks
 *     hold SNAP CHUNK COUNT FILE   read-lock the chunks; when FILE exists,
 *                                  release and print "released <ns>".  If the
 *                                  master goes away meanwhile: reconnect to
 *                                  the new one and re-upload the locks.
 *     hold SNAP CHUNK COUNT FILE GATE  the same, but after losing the master
 *                                  reconnect only once GATE exists.  A
 *                                  re-upload refused as stale prints
 *                                  "refused stale: REASON", then restarts the
 *                                  read: "restarted" + the sread lines, exit 0
 *     badkey                       connect with a wrong secret: exit 0 if refused
 *     raw HEXFILE                  send raw bytes after auth (malformed input)
 *     swpart SNAP CHUNK BYTE       snapshot write of the first 4 KiB of a chunk
 *                                  (the server fills the rest with old data)
 *     oidle FILE                   origin client that never acks barriers;
 *                                  prints "cut off" if the server drops it
 *     changed FROM TO              changed-chunk list: "range START COUNT" lines
 *     screate NAME REQID           SNAP_CREATE as admin with request id REQID
 *                                  (a decimal number, not 0, put in the 16
 *                                  bytes); prints "created NAME id N", or
 *                                  "refused ERRNO-TEXT" and exits 3
 *     leaseinit IO_TIMEOUT         write the store's lease area (kept for
 *                                  other tests; same as `csnap lease init`)
 *     usage N                      on one admin connection, N times SNAP_LIST
 *                                  with usage and N times STATUS: prints
 *                                  "list|status median US max US snapshots K
 *                                  known 0|1" (round trips, microseconds)
 * Without --master the master is found through the lease-owner record.
 */
#include "ioengine/ioengine.h"
#include "src/proto/client.h"
#include "src/locate/locate.h"
#include "utils/clock.h"
#include "utils/err.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *master_addr;
static uint16_t master_port;
static const char *store_path, *origin_path;
static struct locate_result loc;
static struct proto_identify_ok ident;

static void die(const char *what)
{
	fprintf(stderr, "proto_client: %s: %s\n", what, err_get());
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct proto_client *connect_as(uint8_t volume, const char *snap, uint16_t flags, int timeout_ms)
{
	struct locate_opts lo = { .store_path = store_path, .address = master_addr,
				  .port = master_port, .timeout_ms = timeout_ms };
	struct proto_client *c;
	if (locate_connect(&lo, &loc, &c) < 0)
		return NULL;
	if (proto_client_identify(c, volume, snap, 0, "proto_client", flags, &ident) < 0) {
		proto_client_close(c);
		return NULL;
	}
	return c;
}

static struct proto_client *connect_or_die(uint8_t volume, const char *snap)
{
	struct proto_client *c = connect_as(volume, snap, 0, 30000);

	if (!c)
		die("connect");
	return c;
}

static struct io_dev *open_or_die(const char *path, int flags, const char *what)
{
	struct io_dev *d;

	if (io_dev_open(path, flags, &d) < 0)
		die(what);
	return d;
}

static void call(struct proto_client *c, struct proto_msg *m, struct proto_msg *rep, const char *what)
{
	if (proto_client_call(c, m, rep) < 0)
		die(what);
	if (rep->status) {
		fprintf(stderr, "proto_client: %s: server says: %s (%s)\n", what, rep->error,
			strerror((int)rep->status));
		exit(2);
	}
}

static uint64_t store_off(uint64_t chunk)
{
	return ident.store_data_offset + chunk * ident.chunk_size;
}

static void fill(struct io_dev *d, uint64_t off, size_t len, int byte)
{
	void *buf = io_buf_alloc(len);
	if (!buf)
		die("alloc");
	memset(buf, byte, len);
	if (io_dev_pwrite(d, buf, len, off) < 0 || io_dev_flush(d) < 0)
		die("write");
	io_buf_free(buf);
}

/* "0x41" if every byte of the chunk is the same, else "mixed".  */
static void describe(struct io_dev *d, uint64_t off, char *out, size_t n)
{
	size_t len = ident.chunk_size;
	uint8_t *buf = io_buf_alloc(len);
	if (!buf || io_dev_pread(d, buf, len, off) < 0)
		die("read");
	size_t i;
	for (i = 1; i < len && buf[i] == buf[0]; i++)
		;
	if (i == len)
		snprintf(out, n, "0x%02x", buf[0]);
	else
		snprintf(out, n, "mixed");
	io_buf_free(buf);
}

/* A request of TYPE (and FLAGS) for the one range CHUNK, COUNT; its reply
 * in REP (exits as call() does on an error).  */
static void query(struct proto_client *c, uint16_t type, uint16_t flags, uint64_t chunk,
		  uint32_t count, struct proto_msg *rep, const char *what)
{
	struct proto_msg m;
	struct proto_range r = { .start = chunk, .count = count };
	proto_msg_init(&m, type, 0);
	m.flags = flags;
	m.u.ranges.n = 1;
	m.u.ranges.r = &r;
	call(c, &m, rep, what);
}

/* Waits for the next request from the server (a barrier, an INVALIDATE)
 * until STOP_FILE exists: 1 with it in REQ (the caller frees it), 0 once
 * STOP_FILE exists, -1 if the connection is lost.  Stray replies are
 * dropped.  */
static int next_request(struct proto_client *c, const char *stop_file, struct proto_msg *req)
{
	while (access(stop_file, F_OK) != 0) {
		struct pollfd p = { .fd = proto_client_fd(c), .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		int e = proto_client_recv(c, req, false);
		if (e < 0)
			return -1;
		if (e == 1 && !(req->type & PROTO_REPLY))
			return 1;
		if (e == 1)
			proto_msg_free(req);
	}
	return 0;
}

static int do_owrite(int argc, char **argv, bool write_data)
{
	if (argc != (write_data ? 3 : 2))
		return 2;
	uint64_t chunk = strtoull(argv[0], NULL, 0);
	uint32_t count = (uint32_t)strtoul(argv[1], NULL, 0);
	struct proto_client *c = connect_or_die(PROTO_VOL_ORIGIN, NULL);
	struct proto_msg rep;
	printf("sent %llu\n", (unsigned long long)now_ns());
	fflush(stdout);
	query(c, PROTO_ORIGIN_WRITE, 0, chunk, count, &rep, "origin write query");
	printf("replied %llu\n", (unsigned long long)now_ns());
	if (write_data) {
		struct io_dev *o = open_or_die(origin_path, IO_DEV_RDWR, "open origin");
		fill(o, chunk * ident.chunk_size, (size_t)count * ident.chunk_size,
		     (int)strtol(argv[2], NULL, 0));
		io_dev_close(o);
		printf("owrite done\n");
	}
	proto_client_close(c);
	return 0;
}

static int do_sread(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	uint64_t chunk = strtoull(argv[1], NULL, 0);
	uint32_t count = (uint32_t)strtoul(argv[2], NULL, 0);
	struct proto_client *c = connect_or_die(PROTO_VOL_SNAPSHOT, argv[0]);
	struct io_dev *o = open_or_die(origin_path, IO_DEV_RDONLY, "open origin");
	struct io_dev *s = open_or_die(store_path, IO_DEV_RDONLY, "open store");
	struct proto_msg rep, drep;
	query(c, PROTO_SNAP_READ, 0, chunk, count, &rep, "snapshot read query");
	for (uint32_t i = 0; i < rep.u.extents.n; i++) {
		const struct proto_extent *e = &rep.u.extents.e[i];
		for (uint32_t k = 0; k < e->count; k++) {
			char what[16];
			bool st = e->where == PROTO_AT_STORE;
			describe(st ? s : o, st ? store_off(e->store_chunk + k)
					       : (e->start + k) * ident.chunk_size, what, sizeof what);
			printf("chunk %llu %s at %s\n", (unsigned long long)(e->start + k), what,
			       st ? "store" : "origin");
		}
	}
	query(c, PROTO_SNAP_READ_DONE, 0, chunk, count, &drep, "release");
	proto_msg_free(&rep);
	io_dev_close(o);
	io_dev_close(s);
	proto_client_close(c);
	return 0;
}

/* A snapshot write of COUNT chunks from CHUNK of SNAP, as an export does
 * it: asks the master for store chunks, then writes them.  PART: only the
 * first 4 KiB of one chunk (the master fills the rest with the old data);
 * else whole chunks (PROTO_F_FULL_CHUNKS).  */
static void snap_write(const char *snap, uint64_t chunk, uint32_t count, int byte, bool part)
{
	struct proto_client *c = connect_or_die(PROTO_VOL_SNAPSHOT, snap);
	struct io_dev *s = open_or_die(store_path, IO_DEV_RDWR, "open store");
	struct proto_msg rep;
	query(c, PROTO_SNAP_WRITE, part ? 0 : PROTO_F_FULL_CHUNKS, chunk, count, &rep,
	      "snapshot write query");
	if (part && (rep.u.extents.n != 1 || rep.u.extents.e[0].where != PROTO_AT_STORE))
		die("unexpected snapshot write reply");
	for (uint32_t i = 0; i < rep.u.extents.n; i++) {
		const struct proto_extent *e = &rep.u.extents.e[i];
		fill(s, store_off(e->store_chunk), part ? 4096 : (size_t)e->count * ident.chunk_size,
		     byte);
	}
	proto_msg_free(&rep);
	io_dev_close(s);
	proto_client_close(c);
}

static int do_swrite(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	snap_write(argv[0], strtoull(argv[1], NULL, 0), (uint32_t)strtoul(argv[2], NULL, 0),
		   (int)strtol(argv[3], NULL, 0), false);
	printf("swrite done\n");
	return 0;
}

static int do_swpart(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	snap_write(argv[0], strtoull(argv[1], NULL, 0), 1, (int)strtol(argv[2], NULL, 0), true);
	printf("swpart done\n");
	return 0;
}

static void ignore_barrier(void *arg, struct proto_client *c, const struct proto_msg *req)
{
	(void)arg; (void)c;
	printf("barrier %llu ignored\n", (unsigned long long)req->id);
}

static int do_oidle(int argc, char **argv)
{
	if (argc != 1)
		return 2;
	struct proto_client *c = connect_or_die(PROTO_VOL_ORIGIN, NULL);
	proto_client_set_handler(c, ignore_barrier, NULL);
	printf("idle\n");
	struct proto_msg req;
	int e;
	while ((e = next_request(c, argv[0], &req)) == 1) {
		ignore_barrier(NULL, c, &req);
		proto_msg_free(&req);
	}
	if (e < 0)
		printf("cut off\n");
	proto_client_close(c);
	return 0;
}

static int do_screate(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	unsigned long long rid = strtoull(argv[1], NULL, 10);
	if (!rid || !proto_name_valid(argv[0]))
		return 2;
	struct proto_client *c = connect_or_die(PROTO_VOL_ADMIN, NULL);
	struct proto_msg m, rep;
	proto_msg_init(&m, PROTO_SNAP_CREATE, 0);
	m.flags = PROTO_F_REQ_ID;
	snprintf(m.u.snap_create.name, sizeof m.u.snap_create.name, "%s", argv[0]);
	for (int i = 0; i < 8; i++)
		m.u.snap_create.req_id[i] = (uint8_t)(rid >> (8 * i));
	if (proto_client_call(c, &m, &rep) < 0)
		die("snapshot create");
	if (rep.status) {
		printf("refused %s\n", strerror((int)rep.status));
		proto_msg_free(&rep);
		proto_client_close(c);
		return 3;
	}
	printf("created %s id %u\n", rep.u.snapinfo.name, rep.u.snapinfo.id);
	proto_msg_free(&rep);
	proto_client_close(c);
	return 0;
}

/* Locks on chunks the server said are on the origin.  */
static struct proto_range held[4096];
static uint32_t nheld;

static int do_hold(int argc, char **argv)
{
	if (argc != 4 && argc != 5)
		return 2;
	const char *snap = argv[0], *trigger = argv[3], *gate = argc == 5 ? argv[4] : NULL;
	uint64_t chunk = strtoull(argv[1], NULL, 0);
	uint32_t count = (uint32_t)strtoul(argv[2], NULL, 0);
	struct proto_client *c = connect_or_die(PROTO_VOL_SNAPSHOT, snap);
	struct proto_msg m, rep;
	query(c, PROTO_SNAP_READ, 0, chunk, count, &rep, "snapshot read query");
	uint64_t nlocked = 0;
	for (uint32_t i = 0; i < rep.u.extents.n && nheld < 4096; i++)
		if (rep.u.extents.e[i].where == PROTO_AT_ORIGIN) {
			held[nheld].start = rep.u.extents.e[i].start;
			held[nheld++].count = rep.u.extents.e[i].count;
			nlocked += rep.u.extents.e[i].count;
		}
	proto_msg_free(&rep);
	printf("locked %llu\n", (unsigned long long)nlocked);
	fflush(stdout);
	for (;;) {
		struct proto_msg req;
		int e = next_request(c, trigger, &req);
		if (e == 0)
			break;
		if (e == 1) {
			/* INVALIDATE: no cache here, acknowledge.  */
			struct proto_msg ack;
			proto_msg_init(&ack, (uint16_t)(req.type | PROTO_REPLY), req.id);
			if (proto_client_reply(c, &ack) < 0 || proto_client_flush(c, true) < 0)
				die("acknowledge");
			proto_msg_free(&req);
			continue;
		}
		/* Master gone: find the new one, re-identify, re-upload.  */
		printf("disconnected\n");
		fflush(stdout);
		proto_client_close(c);
		while (gate && access(gate, F_OK) != 0)
			usleep(20000);
		for (;;) {
			c = connect_as(PROTO_VOL_SNAPSHOT, snap, PROTO_F_RECONNECT, 120000);
			if (c)
				break;
			fprintf(stderr, "proto_client: reconnect: %s\n", err_get());
			sleep(1);
		}
		proto_msg_init(&m, PROTO_LOCK_UPLOAD, 0);
		m.u.ranges.n = nheld;
		m.u.ranges.r = held;
		if (proto_client_call(c, &m, &rep) < 0)
			die("lock upload");
		if (rep.status == PROTO_STATUS_LOCK_STALE) {
			/* None of the locks is held: what was read from the
			 * origin may be new data.  Read again from scratch. */
			printf("refused stale: %s\n", rep.error);
			proto_msg_free(&rep);
			proto_client_close(c);
			printf("restarted\n");
			fflush(stdout);
			char a0[32], a1[32], a2[32];
			snprintf(a0, sizeof a0, "%s", snap);
			snprintf(a1, sizeof a1, "%llu", (unsigned long long)chunk);
			snprintf(a2, sizeof a2, "%u", count);
			char *av[] = { a0, a1, a2 };
			return do_sread(3, av);
		}
		if (rep.status) {
			fprintf(stderr, "proto_client: lock upload: refused: %s\n", rep.error);
			exit(1);
		}
		proto_msg_free(&rep);
		printf("reuploaded %llu\n", (unsigned long long)nlocked);
		fflush(stdout);
	}
	proto_msg_init(&m, PROTO_SNAP_READ_DONE, 0);
	m.u.ranges.n = nheld;
	m.u.ranges.r = held;
	uint64_t t = now_ns();
	if (proto_client_send(c, &m) < 0 || proto_client_flush(c, true) < 0)
		die("release");
	printf("released %llu\n", (unsigned long long)t);
	fflush(stdout);
	call_wait:;
	struct proto_msg drep;
	int e = proto_client_recv(c, &drep, true);
	if (e == 1) {
		if (drep.id != m.id) {
			proto_msg_free(&drep);
			goto call_wait;
		}
		proto_msg_free(&drep);
	}
	proto_client_close(c);
	return 0;
}

static int do_badkey(void)
{
	if (locate_read_store(store_path, &loc) < 0)
		die("read store");
	struct locate_opts lo = { .store_path = store_path, .address = master_addr,
				  .port = master_port, .timeout_ms = 30000 };
	struct proto_client *c;
	/* Find the master the normal way, then connect again with a bad key. */
	if (locate_connect(&lo, &loc, &c) < 0)
		die("connect with the right key");
	proto_client_close(c);
	loc.secret[0] ^= 0x5a;
	int r = proto_client_connect(loc.address, loc.port, &loc.uuid, loc.secret, 10000, &c);
	if (r == 0) {
		printf("accepted\n");
		proto_client_close(c);
		return 1;
	}
	printf("refused: %s\n", err_get());
	return 0;
}

/* Authenticates properly, then sends the bytes of HEXFILE (whitespace
 * separated hex) and reports whether the server closed the connection.  */
static int do_raw(int argc, char **argv)
{
	if (argc != 1)
		return 2;
	struct proto_client *c = connect_or_die(PROTO_VOL_ORIGIN, NULL);
	FILE *f = fopen(argv[0], "r");
	if (!f)
		die("open hex file");
	uint8_t buf[4096];
	size_t n = 0;
	unsigned v;
	while (n < sizeof buf && fscanf(f, "%2x", &v) == 1)
		buf[n++] = (uint8_t)v;
	fclose(f);
	if (send(proto_client_fd(c), buf, n, MSG_NOSIGNAL) != (ssize_t)n)
		die("send");
	struct proto_msg m;
	int r = proto_client_recv(c, &m, true);
	if (r == 1) {
		printf("reply status %u\n", m.status);
		proto_msg_free(&m);
	} else {
		printf("closed: %s\n", err_get());
	}
	proto_client_close(c);
	return 0;
}

static int do_changed(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	struct proto_client *c = connect_or_die(PROTO_VOL_ADMIN, NULL);
	uint64_t start = 0;
	while (start != UINT64_MAX) {
		struct proto_msg m, rep;
		proto_msg_init(&m, PROTO_CHANGED, 0);
		snprintf(m.u.changed.from, sizeof m.u.changed.from, "%s", argv[0]);
		snprintf(m.u.changed.to, sizeof m.u.changed.to, "%s", argv[1]);
		m.u.changed.start = start;
		m.u.changed.max_ranges = 1;	/* exercise the continuation */
		call(c, &m, &rep, "changed");
		for (uint32_t i = 0; i < rep.u.changed_reply.ranges.n; i++)
			printf("range %llu %u\n", (unsigned long long)rep.u.changed_reply.ranges.r[i].start,
			       rep.u.changed_reply.ranges.r[i].count);
		start = rep.u.changed_reply.next;
		proto_msg_free(&rep);
	}
	proto_client_close(c);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The master's answer time for the usage figures, without a CLI process
 * start: round trips on one connection (bench/usage.sh).  */
static int do_usage(int argc, char **argv)
{
	int n = argc == 1 ? atoi(argv[0]) : 0;
	if (n < 1 || n > 10000)
		return 2;
	struct proto_client *c = connect_as(PROTO_VOL_ADMIN, NULL, 0, 30000);
	uint64_t *t = calloc((size_t)n, sizeof *t);
	if (!c || !t)
		die("connect");
	for (int kind = 0; kind < 2; kind++) {
		uint32_t nsnap = 0;
		bool known = true;
		for (int i = 0; i < n; i++) {
			struct proto_msg m, rep;
			proto_msg_init(&m, kind ? PROTO_STATUS : PROTO_SNAP_LIST, 0);
			uint64_t t0 = csnap_now_ns();
			call(c, &m, &rep, kind ? "status" : "snapshot list");
			t[i] = csnap_now_ns() - t0;
			if (!kind) {
				nsnap = rep.u.snap_list.n;
				for (uint32_t k = 0; k < nsnap; k++)
					known &= !(rep.u.snap_list.s[k].flags & PROTO_SNAP_USAGE_UNKNOWN);
			}
			proto_msg_free(&rep);
		}
		qsort(t, (size_t)n, sizeof *t, cmp_u64);
		printf("%s median %.1f max %.1f", kind ? "status" : "list", (double)t[n / 2] / 1e3,
		       (double)t[n - 1] / 1e3);
		if (!kind)
			printf(" snapshots %u known %d", nsnap, known);
		printf("\n");
	}
	free(t);
	proto_client_close(c);
	return 0;
}

static int do_leaseinit(int argc, char **argv)
{
	if (argc != 1)
		return 2;
	if (locate_read_store(store_path, &loc) < 0)
		die("read store");
	if (lease_init(&loc.area, (uint32_t)atoi(argv[0]), false) < 0)
		die("lease init");
	printf("lease area initialised\n");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	int i = 1;
	if (argc > 2 && !strcmp(argv[1], "--master")) {
		char *colon = strrchr(argv[2], ':');
		if (!colon)
			return 2;
		*colon = '\0';
		master_addr = argv[2];
		master_port = (uint16_t)atoi(colon + 1);
		i = 3;
	}
	if (argc - i < 3) {
		fprintf(stderr, "usage: proto_client [--master ADDR:PORT] STORE ORIGIN CMD ARGS...\n");
		return 2;
	}
	store_path = argv[i];
	origin_path = argv[i + 1];
	const char *cmd = argv[i + 2];
	int n = argc - i - 3;
	char **a = argv + i + 3;
	int r = 2;
	if (!strcmp(cmd, "owrite"))
		r = do_owrite(n, a, true);
	else if (!strcmp(cmd, "oquery"))
		r = do_owrite(n, a, false);
	else if (!strcmp(cmd, "sread"))
		r = do_sread(n, a);
	else if (!strcmp(cmd, "swrite"))
		r = do_swrite(n, a);
	else if (!strcmp(cmd, "hold"))
		r = do_hold(n, a);
	else if (!strcmp(cmd, "badkey"))
		r = do_badkey();
	else if (!strcmp(cmd, "swpart"))
		r = do_swpart(n, a);
	else if (!strcmp(cmd, "oidle"))
		r = do_oidle(n, a);
	else if (!strcmp(cmd, "changed"))
		r = do_changed(n, a);
	else if (!strcmp(cmd, "screate"))
		r = do_screate(n, a);
	else if (!strcmp(cmd, "usage"))
		r = do_usage(n, a);
	else if (!strcmp(cmd, "leaseinit"))
		r = do_leaseinit(n, a);
	else if (!strcmp(cmd, "raw"))
		r = do_raw(n, a);
	if (r == 2)
		fprintf(stderr, "proto_client: bad command or arguments\n");
	return r;
}
