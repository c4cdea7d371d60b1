/*
 * tests/fuzz/fuzz_nbd.c - the NBD server (src/export/nbd_*.c) as a client
 * on the network sees it: the fixed newstyle handshake, option haggling
 * and transmission requests, through the real connection state machine,
 * socket I/O, flow control and event loop.
 *
 * One NBD server, created once, listens on a unix socket and exports four
 * in-memory volumes: "disk" (rw, DISK_SIZE, the default export; requests
 * touching its last 512 bytes fail with EIO), "ro" (read-only), "snap"
 * (a snapshot, so csnap:changed:snap can be negotiated) and "big" (over
 * 4 GiB and sparse: reads give zeroes, writes are dropped; it reaches
 * the trims and write zeroes of 4 GiB or more, which go to a volume in
 * pieces; it completes some requests inside submit(), as the volume
 * contract allows, alternating from one GiB to the next; its last 512
 * bytes fail with EIO too).  "disk" answers
 * csnap:changed queries with every odd 64 KiB chunk changed, a page of at
 * most max_ranges ranges at a time, and fails the ones asked in its last
 * chunk (the reply's error path).  Each
 * input is one client connection: the harness connects, sends the input
 * (in pieces of PIECE bytes, running the loop between pieces, when the
 * first byte is nonzero), half-closes, reads and drops all output, and
 * drives the loop until the server has closed the connection and freed
 * it.  A connection not over within 10 s (of time the harness ran) is a
 * hang.
 * The volumes check the contract every request must meet (volume.h):
 * within the volume, len > 0 except flush, no write to "ro", a request
 * not submitted again before it completed.
 *
 * Input: byte 0 = piece size / 8 (0: all at once), then the client's
 * bytes from the first one after the server's greeting (client flags).
 *
 * CSNAP_FUZZ_SEEDS=DIR writes seed inputs (GO + requests, EXPORT_NAME,
 * LIST/INFO/ABORT, structured replies with meta contexts and block status,
 * hostile meta context queries, extended headers) and exits.
 *
 * Loop threads: tests/fuzz/fuzz_nbd_threads.c builds this file with
 * NBD_LOOP_THREADS 2 (`export_threads`, src/export/loop.h).  A connection
 * enters transmission on the least used loop, the main loop on a tie, so
 * the harness first parks one connection of its own in transmission on
 * the main loop; each input's connection then shakes hands on the main
 * loop and is served on the loop thread, under the export lock, while
 * the main loop runs the client, the listener and the volumes'
 * completions (deferred to the main loop from the loop thread's submit,
 * so replies are queued from another loop, as a master session's are).
 * Which thread reads how much of the input when is the scheduler's
 * choice: this target's runs vary more than fuzz_nbd's (docs/fuzzing.md).
 */
#include "tests/fuzz/fuzz.h"

#include "src/export/loop.h"
#include "src/export/nbd.h"
#include "src/export/nbd_server.h"
#include "src/export/volume.h"
#include "utils/err.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef NBD_LOOP_THREADS
#define NBD_LOOP_THREADS	1
#define FUZZ_NAME		"fuzz_nbd"
#endif

#define DISK_SIZE	(1u << 20)
#define RO_SIZE		(64u * 1024)
#define BIG_SIZE	((5ull << 30) + (3u << 16))
#define HANG_MS		10000
/* The hang limit counts time the harness ran, not time it waited to be
 * scheduled (a fuzzer at nice 19 on a loaded machine can wait longer than
 * HANG_MS for the CPU): each loop step counts at most STEP_MAX_MS.  A
 * hang that sleeps in the loop is then caught by libFuzzer's -timeout.  */
#define STEP_MAX_MS	10

/* ---- in-memory volumes, completing at the end of the loop batch ---- */

#define CHUNK_SHIFT	16

struct memvol {
	struct volume vol;
	uint8_t *data;		/* NULL: sparse ("big") */
	struct vol_req *pending[1024];
	unsigned npending;
	struct vol_changed_req *changed[1024];
	unsigned nchanged;
	struct evloop_deferred done;
};

/* csnap:changed answer: odd chunks from the one holding Q->off on.  */
static void memvol_changed_answer(struct memvol *m, struct vol_changed_req *q)
{
	uint64_t nchunks = (m->vol.size + (1u << CHUNK_SHIFT) - 1) >> CHUNK_SHIFT;
	uint64_t c = (q->off >> CHUNK_SHIFT) | 1;
	struct vol_range r[64];
	uint32_t n = 0;

	if (q->off >> CHUNK_SHIFT == nchunks - 1) {
		q->done(q, -EIO, "fuzz: the last chunk's changes are unknown");
		return;
	}
	while (c < nchunks && n < q->max_ranges && n < 64) {
		r[n++] = (struct vol_range){ c, 1 };
		c += 2;
	}
	q->chunk_shift = CHUNK_SHIFT;
	q->r = r;
	q->n = n;
	q->next = c >= nchunks ? UINT64_MAX : c;
	q->done(q, 0, NULL);
}

static void memvol_finish(struct memvol *m, struct vol_req *req)
{
	int err = 0;

	if (req->op != VOL_FLUSH && !(m->vol.flags & VOL_READONLY) &&
	    req->off + req->len > m->vol.size - 512)
		err = -EIO;
	else if (req->op == VOL_READ && !m->data)
		memset(req->buf, 0, req->len);
	else if (!m->data)
		;	/* sparse: writes, trims and zeroes are dropped */
	else if (req->op == VOL_READ)
		memcpy(req->buf, m->data + req->off, req->len);
	else if (req->op == VOL_WRITE)
		memcpy(m->data + req->off, req->buf, req->len);
	else if (req->op == VOL_ZEROES || req->op == VOL_TRIM)
		memset(m->data + req->off, 0, req->len);
	req->done(req, err);
}

static void memvol_complete(void *arg)
{
	struct memvol *m = arg;

	while (m->nchanged) {
		struct vol_changed_req *q = m->changed[0];

		memmove(m->changed, m->changed + 1, --m->nchanged * sizeof *m->changed);
		memvol_changed_answer(m, q);
	}

	while (m->npending) {
		struct vol_req *req = m->pending[0];

		memmove(m->pending, m->pending + 1, --m->npending * sizeof *m->pending);
		memvol_finish(m, req);
	}
}

static struct evloop *lp;

static void memvol_submit(struct volume *vol, struct vol_req *req)
{
	struct memvol *m = (struct memvol *)vol;

	FUZZ_CHECK(req->op == VOL_FLUSH || req->len > 0, "empty request op %d", req->op);
	FUZZ_CHECK(req->off <= vol->size && req->len <= vol->size - req->off,
		   "request beyond the volume: %llu+%u", (unsigned long long)req->off, req->len);
	FUZZ_CHECK(!(vol->flags & VOL_READONLY) || req->op == VOL_READ || req->op == VOL_FLUSH,
		   "write-like op %d on a read-only volume", req->op);
	FUZZ_CHECK(req->op == VOL_FLUSH || req->op == VOL_TRIM || req->op == VOL_ZEROES ||
		   req->buf, "no buffer");
	FUZZ_CHECK(m->npending < 1024, "more requests in flight than flow control allows");
	for (unsigned i = 0; i < m->npending; i++)
		FUZZ_CHECK(m->pending[i] != req, "a request submitted again before it completed");
	if (!m->data && ((req->off >> 16) ^ (req->off >> 30)) & 1) {
		memvol_finish(m, req);	/* at once, inside submit() */
		return;
	}
	m->pending[m->npending++] = req;
	evloop_defer(lp, &m->done);
}

static void memvol_destroy(struct volume *vol)
{
	struct memvol *m = (struct memvol *)vol;

	free(m->data);
	free(m);
}

static void memvol_changed(struct volume *vol, struct vol_changed_req *q)
{
	struct memvol *m = (struct memvol *)vol;

	FUZZ_CHECK(q->off < vol->size, "block status at %llu, beyond the volume",
		   (unsigned long long)q->off);
	FUZZ_CHECK(q->from && !strcmp(q->from, "snap"), "csnap:changed of an unknown snapshot");
	FUZZ_CHECK(m->nchanged < 1024, "more queries in flight than flow control allows");
	m->changed[m->nchanged++] = q;
	evloop_defer(lp, &m->done);
}

static const struct volume_ops memvol_ops = { .submit = memvol_submit, .destroy = memvol_destroy };
static const struct volume_ops csvol_ops = { .submit = memvol_submit, .destroy = memvol_destroy,
					     .changed = memvol_changed };

static struct volume *memvol_new(const char *name, uint64_t size, unsigned flags)
{
	struct memvol *m = calloc(1, sizeof *m);

	if (!m || (size <= DISK_SIZE && !(m->data = calloc(1, size))))
		abort();
	m->vol.ops = strcmp(name, "ro") && strcmp(name, "big") ? &csvol_ops : &memvol_ops;
	snprintf(m->vol.name, sizeof m->vol.name, "%s", name);
	snprintf(m->vol.description, sizeof m->vol.description, "fuzz volume %s", name);
	m->vol.size = size;
	m->vol.flags = flags;
	m->vol.refs = 1;
	m->done.fn = memvol_complete;
	m->done.arg = m;
	return &m->vol;
}

/* ---- the client side ------------------------------------------------ */

static struct nbd_server *srv;
static char sock_path[108];

struct client {
	struct evloop_watch w;
	int fd;
	const uint8_t *out;	/* still to send */
	size_t out_len;
	size_t piece;		/* 0: everything we have */
	bool sent_all;		/* and half-closed */
	bool eof;		/* the server closed */
	size_t received;
};

static void client_event(void *arg, uint32_t events)
{
	struct client *c = arg;
	uint8_t buf[65536];

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);

			if (n > 0) {
				c->received += (size_t)n;
				continue;
			}
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				c->eof = true;
			break;
		}
	}
	if (c->eof) {
		evloop_watch_del(lp, &c->w);
		return;
	}
	if (!c->sent_all && events & EPOLLOUT) {
		size_t k = c->piece && c->piece < c->out_len ? c->piece : c->out_len;
		ssize_t n = k ? send(c->fd, c->out, k, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;

		if (n > 0) {
			c->out += n;
			c->out_len -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			c->out_len = 0;		/* the server is gone: stop sending */
		}
		if (!c->out_len) {
			shutdown(c->fd, SHUT_WR);
			c->sent_all = true;
			evloop_watch_mod(lp, &c->w, EPOLLIN);
		}
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void cleanup(void)
{
	unlink(sock_path);
}

/* ---- seeds ------------------------------------------------------------ */

struct seed {
	uint8_t b[4096];
	size_t n;
};

static void put(struct seed *s, const void *p, size_t n)
{
	if (n)
		memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void put32(struct seed *s, uint32_t v)
{
	uint8_t b[4];

	nbd_put32(b, v);
	put(s, b, 4);
}

static void option(struct seed *s, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t h[16];

	nbd_put64(h, NBD_IHAVEOPT);
	nbd_put32(h + 8, opt);
	nbd_put32(h + 12, len);
	put(s, h, 16);
	put(s, data, len);
}

static void go(struct seed *s, uint32_t opt, const char *name)
{
	uint8_t d[64];
	uint32_t nl = (uint32_t)strlen(name);

	nbd_put32(d, nl);
	memcpy(d + 4, name, nl);
	nbd_put16(d + 4 + nl, 2);
	nbd_put16(d + 6 + nl, NBD_INFO_NAME);
	nbd_put16(d + 8 + nl, NBD_INFO_DESCRIPTION);
	option(s, opt, d, nl + 10);
}

/* LIST/SET_META_CONTEXT on EXPORT with N queries from Q.  */
static void meta(struct seed *s, uint32_t opt, const char *export, const char *const *q, unsigned n)
{
	uint8_t d[1024];
	size_t len = 0, el = strlen(export);

	nbd_put32(d, (uint32_t)el);
	memcpy(d + 4, export, el);
	nbd_put32(d + 4 + el, n);
	len = 8 + el;
	for (unsigned i = 0; i < n; i++) {
		size_t ql = strlen(q[i]);

		nbd_put32(d + len, (uint32_t)ql);
		memcpy(d + len + 4, q[i], ql);
		len += 4 + ql;
	}
	option(s, opt, d, (uint32_t)len);
}

/* A request header, compact or (EXT) extended, its cookie from where it
 * starts in the seed.  */
static void request_header(struct seed *s, bool ext, uint16_t flags, uint16_t cmd, uint64_t off,
			   uint64_t len)
{
	uint8_t r[NBD_EXT_REQUEST_SIZE];

	nbd_put32(r, ext ? NBD_EXTENDED_REQUEST_MAGIC : NBD_REQUEST_MAGIC);
	nbd_put16(r + 4, flags);
	nbd_put16(r + 6, cmd);
	nbd_put64(r + 8, 0x1122334455667788ULL + s->n);
	nbd_put64(r + 16, off);
	if (ext)
		nbd_put64(r + 24, len);
	else
		nbd_put32(r + 24, (uint32_t)len);
	put(s, r, ext ? NBD_EXT_REQUEST_SIZE : NBD_REQUEST_SIZE);
}

static void request(struct seed *s, uint16_t flags, uint16_t cmd, uint64_t off, uint32_t len)
{
	request_header(s, false, flags, cmd, off, len);
	if (cmd == NBD_CMD_WRITE) {
		memset(s->b + s->n, 0xab, len);
		s->n += len;
	}
}

/* An extended-header request; PAY bytes of payload follow (with
 * NBD_CMD_FLAG_PAYLOAD_LEN, LEN should equal PAY).  */
static void ext_request(struct seed *s, uint16_t flags, uint16_t cmd, uint64_t off, uint64_t len,
			uint32_t pay)
{
	request_header(s, true, flags, cmd, off, len);
	memset(s->b + s->n, 0xcd, pay);
	s->n += pay;
}

static void save(const char *dir, int i, const struct seed *s)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/seed-%02d", dir, i);
	f = fopen(path, "w");
	if (!f || fwrite(s->b, 1, s->n, f) != s->n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static void make_seeds(const char *dir)
{
	struct seed s;
	int i = 0;

	/* GO on the default export, then one request of each kind */
	memset(&s, 0, sizeof s);
	put(&s, "\0", 1);
	put32(&s, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	go(&s, NBD_OPT_GO, "");
	request(&s, 0, NBD_CMD_WRITE, 4096, 512);
	request(&s, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 8192, 100);
	request(&s, 0, NBD_CMD_READ, 4000, 200);
	request(&s, 0, NBD_CMD_FLUSH, 0, 0);
	request(&s, 0, NBD_CMD_TRIM, 0, 65536);
	request(&s, 0, NBD_CMD_WRITE_ZEROES, 1000, 3000);
	request(&s, 0, NBD_CMD_DISC, 0, 0);
	save(dir, i++, &s);
	/* the same, sent in 8-byte pieces, on the read-only export */
	memset(&s, 0, sizeof s);
	put(&s, "\1", 1);
	put32(&s, NBD_FLAG_C_FIXED_NEWSTYLE);
	go(&s, NBD_OPT_INFO, "ro");
	go(&s, NBD_OPT_GO, "ro");
	request(&s, 0, NBD_CMD_READ, 0, 4096);
	request(&s, 0, NBD_CMD_WRITE, 0, 16);
	request(&s, 0, NBD_CMD_READ, RO_SIZE - 1, 2);
	save(dir, i++, &s);
	/* old-style EXPORT_NAME */
	memset(&s, 0, sizeof s);
	put(&s, "\0", 1);
	put32(&s, 0);
	option(&s, NBD_OPT_EXPORT_NAME, "disk", 4);
	request(&s, 0, NBD_CMD_READ, DISK_SIZE - 4096, 4096);
	save(dir, i++, &s);
	/* LIST, an unsupported option, an unknown name, ABORT */
	memset(&s, 0, sizeof s);
	put(&s, "\0", 1);
	put32(&s, NBD_FLAG_C_FIXED_NEWSTYLE);
	option(&s, NBD_OPT_LIST, NULL, 0);
	option(&s, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	go(&s, NBD_OPT_INFO, "nosuch");
	option(&s, NBD_OPT_ABORT, NULL, 0);
	save(dir, i++, &s);
	/* structured replies, both contexts, reads and block status */
	static const char *const both[] = { "base:allocation", "csnap:changed:snap" };
	memset(&s, 0, sizeof s);
	put(&s, "\0", 1);
	put32(&s, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	option(&s, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	meta(&s, NBD_OPT_SET_META_CONTEXT, "disk", both, 2);
	go(&s, NBD_OPT_GO, "disk");
	request(&s, 0, NBD_CMD_READ, 4000, 200);
	request(&s, NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 4096);
	request(&s, 0, NBD_CMD_READ, DISK_SIZE - 100, 100);
	request(&s, 0, NBD_CMD_BLOCK_STATUS, 1000, 300000);
	request(&s, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 65536, 4096);
	request(&s, 0, NBD_CMD_BLOCK_STATUS, DISK_SIZE - 4096, 4096);
	request(&s, 0, NBD_CMD_BLOCK_STATUS, DISK_SIZE - 4096, 8192);
	request(&s, 0, NBD_CMD_DISC, 0, 0);
	save(dir, i++, &s);
	/* listing, wildcards, bad and unknown queries, contexts for another
	 * export, in 8-byte pieces */
	static const char *const list[] = { "base:", "csnap:changed:", "x-other:y" };
	static const char *const bad[] = { "nocolon", "csnap:changed:nosuch" };
	static const char *const two[] = { "csnap:changed:snap", "csnap:changed:disk" };
	memset(&s, 0, sizeof s);
	put(&s, "\1", 1);
	put32(&s, NBD_FLAG_C_FIXED_NEWSTYLE);
	meta(&s, NBD_OPT_SET_META_CONTEXT, "disk", both, 1);
	option(&s, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	meta(&s, NBD_OPT_LIST_META_CONTEXT, "disk", NULL, 0);
	meta(&s, NBD_OPT_LIST_META_CONTEXT, "disk", list, 3);
	meta(&s, NBD_OPT_SET_META_CONTEXT, "disk", bad, 2);
	meta(&s, NBD_OPT_SET_META_CONTEXT, "disk", two, 2);
	meta(&s, NBD_OPT_SET_META_CONTEXT, "ro", both + 1, 1);
	meta(&s, NBD_OPT_SET_META_CONTEXT, "snap", both, 2);
	go(&s, NBD_OPT_GO, "disk");
	request(&s, 0, NBD_CMD_BLOCK_STATUS, 0, 4096);
	save(dir, i++, &s);
	/* extended headers: 64-bit lengths, payload flag, BLOCK_STATUS_EXT */
	memset(&s, 0, sizeof s);
	put(&s, "\0", 1);
	put32(&s, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	option(&s, NBD_OPT_EXTENDED_HEADERS, NULL, 0);
	option(&s, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	meta(&s, NBD_OPT_SET_META_CONTEXT, "disk", both, 2);
	go(&s, NBD_OPT_GO, "disk");
	ext_request(&s, 0, NBD_CMD_READ, 4000, 200, 0);
	ext_request(&s, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_WRITE, 8192, 100, 100);
	ext_request(&s, 0, NBD_CMD_WRITE, 8192, 100, 0);
	ext_request(&s, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_READ, 0, 16, 16);
	ext_request(&s, 0, NBD_CMD_FLUSH, 0, 0, 0);
	ext_request(&s, 0, NBD_CMD_WRITE_ZEROES, 0, 1ULL << 33, 0);
	ext_request(&s, 0, NBD_CMD_BLOCK_STATUS, 1000, 1ULL << 40, 0);
	ext_request(&s, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 65536, 4096, 0);
	ext_request(&s, 0, NBD_CMD_DISC, 0, 0, 0);
	save(dir, i++, &s);
	/* extended headers on "big": trims and write zeroes of 4 GiB or
	 * more, in pieces (the last one failing), and around them */
	memset(&s, 0, sizeof s);
	put(&s, "\0", 1);
	put32(&s, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	option(&s, NBD_OPT_EXTENDED_HEADERS, NULL, 0);
	go(&s, NBD_OPT_GO, "big");
	ext_request(&s, 0, NBD_CMD_TRIM, 0, 1ULL << 32, 0);
	ext_request(&s, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE_ZEROES, 4096, (1ULL << 32) + 1, 0);
	ext_request(&s, 0, NBD_CMD_TRIM, 1ULL << 16, BIG_SIZE - (1ULL << 16), 0);
	ext_request(&s, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 0, BIG_SIZE - 512, 0);
	ext_request(&s, 0, NBD_CMD_TRIM, 512, BIG_SIZE, 0);
	ext_request(&s, 0, NBD_CMD_READ, BIG_SIZE - 4096, 4096, 0);
	ext_request(&s, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_WRITE, 3ULL << 30, 100, 100);
	ext_request(&s, 0, NBD_CMD_FLUSH, 0, 0, 0);
	ext_request(&s, 0, NBD_CMD_DISC, 0, 0, 0);
	save(dir, i++, &s);
	exit(0);
}

/* ---- the parked connection (loop threads) ----------------------------- */

static int parked_fd = -1;
static unsigned parked;		/* connections of the harness's own */

/* Connects, asks for "disk" with NBD_OPT_GO and turns the main loop until
 * the server's NBD_REP_ACK: the connection is in transmission, counted on
 * the main loop, and stays so (it sends nothing more).  */
static void park_connection(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct seed s = { .n = 0 };
	uint8_t in[1024];
	size_t have = 0, at = 18;	/* after the greeting */

	put32(&s, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	go(&s, NBD_OPT_GO, "disk");
	strcpy(sa.sun_path, sock_path);
	parked_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (parked_fd < 0 || connect(parked_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    send(parked_fd, s.b, s.n, MSG_NOSIGNAL) != (ssize_t)s.n) {
		perror("fuzz_nbd: parked connection");
		abort();
	}
	for (int turn = 0; turn < 1000; turn++) {
		ssize_t n;

		if (evloop_run_once(lp, 10) < 0)
			abort();
		n = recv(parked_fd, in + have, sizeof in - have, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (n > 0)
			have += (size_t)n;
		/* option replies: magic 8, option 4, type 4, length 4, data */
		while (have >= at + 20 && have >= at + 20 + nbd_get32(in + at + 16)) {
			uint32_t type = nbd_get32(in + at + 12);

			if (type == NBD_REP_ACK) {
				parked = 1;
				return;
			}
			if (type & NBD_REP_FLAG_ERROR)
				break;
			at += 20 + nbd_get32(in + at + 16);
		}
	}
	fprintf(stderr, "fuzz_nbd: the parked connection did not enter transmission\n");
	abort();
}

/* ---- libFuzzer ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct volume *disk, *ro, *snap, *big;

	(void)argc;
	(void)argv;
	fuzz_log_setup(FUZZ_NAME);
	if (getenv("CSNAP_FUZZ_SEEDS"))
		make_seeds(getenv("CSNAP_FUZZ_SEEDS"));
	fuzz_scratch_path(sock_path, sizeof sock_path, "/tmp", "csnap-" FUZZ_NAME);
	/* with loop threads, this thread holds the export lock from
	 * nbd_server_set_threads() on, but in its loop's waits */
	if (loop_create(64, &lp) < 0 || nbd_server_create(lp, &srv) < 0 ||
	    nbd_server_set_threads(srv, NBD_LOOP_THREADS, 64) < 0 ||
	    nbd_server_listen_unix(srv, sock_path) < 0) {
		fprintf(stderr, "fuzz_nbd: %s\n", err_get());
		abort();
	}
	atexit(cleanup);
	disk = memvol_new("disk", DISK_SIZE, 0);
	ro = memvol_new("ro", RO_SIZE, VOL_READONLY);
	snap = memvol_new("snap", RO_SIZE, VOL_SNAPSHOT);
	big = memvol_new("big", BIG_SIZE, 0);
	if (nbd_server_add(srv, disk) < 0 || nbd_server_add(srv, ro) < 0 ||
	    nbd_server_add(srv, snap) < 0 || nbd_server_add(srv, big) < 0)
		abort();
	volume_put(disk);
	volume_put(ro);
	volume_put(snap);
	volume_put(big);
	if (NBD_LOOP_THREADS > 1)
		park_connection();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct client c = { .fd = -1 };
	uint64_t ran = 0, last;

	if (size < 1)
		return 0;
	c.piece = (size_t)data[0] * 8;
	c.out = data + 1;
	c.out_len = size - 1;
	strcpy(sa.sun_path, sock_path);
	c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("fuzz_nbd: connect");
		abort();
	}
	if (evloop_watch_add(lp, &c.w, c.fd, EPOLLIN | EPOLLOUT, client_event, &c) < 0)
		abort();
	last = now_ms();
	while (!c.eof || nbd_server_connections(srv) > parked) {
		if (evloop_run_once(lp, 100) < 0)
			abort();
		uint64_t now = now_ms();

		ran += now - last < STEP_MAX_MS ? now - last : STEP_MAX_MS;
		last = now;
		FUZZ_CHECK(ran < HANG_MS,
			   "connection not over after %d ms (%zu bytes unsent, "
			   "%u connections)", HANG_MS, c.out_len,
			   nbd_server_connections(srv) - parked);
	}
	evloop_watch_del(lp, &c.w);
	close(c.fd);
	return 0;
}
