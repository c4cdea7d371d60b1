/*
 * tests/fuzz/fuzz_server_conn.c - the master (src/server/) as a client on
 * the network sees it: accept, the challenge, authentication and identify
 * with their pre-authentication size limits, message framing, then every
 * request routed to its handler (data path, admin, barrier, invalidation,
 * grants), through the real connection code (conn.c), the real store
 * engine on a scratch file and real copy-outs on the async I/O engine.
 *
 * Only sanlock is left out: the master lease is taken as held and valid
 * and the loop's ticks skip the lease check; or, per input, valid only
 * until the first message of the stream has been taken: then grants are
 * held, and the next commit asks sanlock, finds no answer, and the
 * master stops at once with the connections open (srv_fatal; like
 * serve(), the harness then stops driving the loop).
 * To drive the loop turn the way serve() does, this file includes
 * src/server/server.c and calls its static steps (the archive's server.o
 * is then not linked); a change to those steps must be mirrored in
 * turn() below.
 *
 * Each input is one or two client connections on a unix socket, against
 * a fresh master on a fresh copy of the store image of tests/fuzz/store_image.h
 * (snapshots "a" and "b", a deleted one half cleaned up, a few hundred
 * exceptions, a journal to replay) and a 4 MiB origin.  Input:
 *   byte 0  mode: bits 0-2 the handshake the harness does for the client
 *           (0 none: the input's own AUTH, whose MAC cannot be right;
 *           1 AUTH; 2-7 AUTH and IDENTIFY as origin, snapshot "a",
 *           snapshot "b" passive, admin, origin reconnecting, snapshot
 *           "a" reconnecting); bit 3 set: do not answer the master's
 *           BARRIER / INVALIDATE / SNAP_ADDED; bit 4: send the whole
 *           stream at once (else one message, then the loop runs until
 *           the master is quiet); bit 5: lock re-upload window open;
 *           bit 6: store-full policy "fail"; bit 7: lease lost after the first message
 *   byte 1  bits 0-4: piece size for sending (0: whole messages);
 *           bits 5-7: a second client connection and its handshake (as
 *           bits 0-2 of byte 0; 0: none), for what one client's request
 *           does to another (barriers, invalidations, ghosts, locks)
 *   rest    the clients' messages; the harness writes the right crc32c
 *           into every whole message unless its crc field is 0xffffffff
 *           (as fuzz_proto does); the crc field's low bit picks the
 *           connection.
 * Checks: everything the master sends decodes; the connections end
 * within 10 s (of time this process ran) and all their state is freed
 * (LeakSanitizer); the store the master leaves passes store_check().
 *
 * CSNAP_FUZZ_SEEDS=DIR writes seed inputs and exits.
 */
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/store_image.h"

#include "src/server/server.c"

#include "utils/crc32c.h"
#include "utils/endian.h"

#include <fcntl.h>
#include <sys/un.h>

#define HANG_MS		10000
/* The hang limit counts time the harness ran, not time it waited to be
 * scheduled: a fuzzer at nice 19 on a loaded machine can be left without
 * the CPU for longer than HANG_MS (the master is not hung then).  Each
 * step of the loop counts at most STEP_MAX_MS.  */
#define STEP_MAX_MS	20
static uint64_t run_ms, run_last;
#define QUIET_MS	300	/* most a message may keep the master busy
				 * before the next is sent anyway */

static struct fimg img;
static char sock_path[108], origin_path[128];
/* kept across inputs: the listener, the I/O engine, the origin (each
 * master has its own event loop watching them) */
static int g_lfd = -1;
static struct io_engine *g_eng;
static struct io_dev *g_odev;

/* ---- the client ----------------------------------------------------- */

struct client {
	int fd;
	struct proto_buf in;		/* from the master */
	struct proto_buf out;		/* queued for the master */
	size_t piece;
	bool ack;			/* answer BARRIER etc. */
	bool got_challenge;
	uint8_t snonce[PROTO_NONCE_LEN];
	bool eof;
	unsigned msgs;
};

static void client_queue(struct client *c, const void *p, size_t n)
{
	if (proto_buf_reserve(&c->out, n) < 0)
		abort();
	memcpy(c->out.data + c->out.len, p, n);
	c->out.len += n;
}

static void client_queue_msg(struct client *c, const struct proto_msg *m)
{
	FUZZ_CHECK(proto_encode(m, &c->out) == 0, "harness cannot encode: %s", err_get());
}

static void client_io(struct client *c)
{
	uint8_t buf[65536];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n > 0) {
			if (proto_buf_reserve(&c->in, (size_t)n) < 0)
				abort();
			memcpy(c->in.data + c->in.len, buf, (size_t)n);
			c->in.len += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			c->eof = true;
		break;
	}
	for (;;) {
		struct proto_msg m;
		int r = proto_take(&c->in, &m);

		FUZZ_CHECK(r >= 0, "the master sent what does not decode: %s", err_get());
		if (r == 0)
			break;
		c->msgs++;
		log_debug("fuzz client: got %s%s id %llu status %u %s", proto_type_name(m.type & 0x7fff),
			  m.type & PROTO_REPLY ? " reply" : "", (unsigned long long)m.id, m.status,
			  m.status ? m.error : "");
		if (m.type == PROTO_CHALLENGE) {
			FUZZ_CHECK(c->msgs == 1, "a second challenge");
			memcpy(c->snonce, m.u.challenge.nonce, PROTO_NONCE_LEN);
			c->got_challenge = true;
		} else if (c->ack && !c->eof && (m.type == PROTO_BARRIER || m.type == PROTO_INVALIDATE ||
						 m.type == PROTO_SNAP_ADDED)) {
			struct proto_msg a;

			proto_msg_init(&a, m.type | PROTO_REPLY, m.id);
			client_queue_msg(c, &a);
		}
		proto_msg_free(&m);
	}
	proto_buf_compact(&c->in);
	if (c->eof)
		c->out.off = c->out.len;	/* the master is gone */
	while (c->out.off < c->out.len) {
		size_t k = c->out.len - c->out.off;
		ssize_t n;

		if (c->piece && k > c->piece)
			k = c->piece;
		n = send(c->fd, c->out.data + c->out.off, k, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		c->out.off += (size_t)n;
		if (c->piece)
			break;	/* one piece per loop turn */
	}
	if (c->out.off == c->out.len)
		c->out.off = c->out.len = 0;
}

/* ---- the master ------------------------------------------------------- */

static uint64_t now_ms(void)
{
	return (uint64_t)csnap_now_ms();
}

/* One loop turn, as serve() does it; the tick's work (minus the lease
 * check) every 20 ms.  Returns the number of events.  */
static int turn(struct srv *s, int timeout_ms, uint64_t *last_tick)
{
	/* srv_fatal stops the loop: no further event of the turn */
	int n = evloop_run_once(s->lp, timeout_ms);
	uint64_t now = now_ms();

	run_ms += now - run_last < STEP_MAX_MS ? now - run_last : STEP_MAX_MS;
	run_last = now;

	if (now_ms() - *last_tick >= 20) {
		*last_tick = now_ms();
		tick(s, 1);	/* n % 4 != 0: no lease check */
	}
	if (!s->fatal)
		srv_turn_end(s);
	conn_flush_all(s);
	return n < 0 ? 0 : n;
}

static bool busy(const struct srv *s)
{
	if (s->fatal)
		return false;
	return copy_pending(s) || s->after_commit.n ||
	       (store_txn_pending(s->st) && !s->lease_late);
}

static struct srv *master_start(uint8_t mode)
{
	struct srv *s = malloc(sizeof *s);
	struct store_open_opts so = { .cache_bytes = 1 << 20 };
	struct server_opts o;

	if (!s)
		abort();
	server_opts_defaults(&o);
	o.store_path = img.path;
	o.origin_path = origin_path;
	o.host_id = 1;
	o.node_name = "fuzz";
	o.barrier_timeout_ms = 100;
	o.store_full = mode & 0x40 ? STORE_FULL_FAIL : STORE_FULL_RELEASE;
	o.cache_bytes = so.cache_bytes;
	if (srv_init(s, &o) < 0)
		fi_die("srv_init");
	if (evloop_create(&s->lp) < 0)
		fi_die("evloop_create");
	s->lfd = g_lfd;
	s->eng = g_eng;
	s->iofd = io_engine_eventfd(g_eng);
	if (evloop_watch_add(s->lp, &s->io_watch, s->iofd, EPOLLIN, io_ready, s) < 0)
		fi_die("watch the I/O engine");
	s->odev = g_odev;
	snprintf(s->address, sizeof s->address, "fuzz");
	s->epoch = 2;
	fi_reset(&img);
	fi_write(&img);
	if (store_open(img.path, &so, &s->st) < 0)
		fi_die("open store");
	s->sdev = store_dev(s->st);
	store_get_info(s->st, &s->info);
	s->chunk_size = s->info.chunk_size;
	s->origin_size = s->info.sb.origin_size;
	memcpy(s->uuid.b, s->info.sb.uuid, 16);
	memcpy(s->secret, s->info.sb.secret, PROTO_SECRET_LEN);
	s->lm.held = true;
	s->lm.valid_until_ns = INT64_MAX;
	if (mode & 0x20)
		s->grace_until_ms = csnap_now_ms() + 30;
	if (conn_listen_init(s) < 0)
		fi_die("watch the listener");
	return s;
}

/* The orderly end of server_run(): finish the copies, commit, close. */
static void master_stop(struct srv *s)
{
	copy_flush(s);
	copy_drain(s);
	if (!copy_failed(s) && !s->fatal)
		srv_commit_now(s);
	conn_flush_all(s);
	close_all_conns(s);
	FUZZ_CHECK(s->nconns == 0 && s->nunident == 0 && !s->conns,
		   "connection counts left: %u, %u unidentified", s->nconns, s->nunident);
	store_close(s->st);
	conn_listen_done(s);
	evloop_watch_del(s->lp, &s->io_watch);
	evloop_destroy(s->lp);
	srv_free(s);
	free(s);
}

/* ---- the input stream ------------------------------------------------- */

/* Length of the message starting at P (the rest when it is not whole),
 * its crc made right unless it is 0xffffffff; *TO: the connection it
 * goes to (the crc field's low bit before).  */
static size_t next_msg(uint8_t *p, size_t n, unsigned *to)
{
	uint32_t len;

	if (n < PROTO_HDR_SIZE)
		return n;
	len = get_le32(p + 4);
	if (len > n - PROTO_HDR_SIZE)
		return n;
	if (get_le32(p + 16) != 0xffffffffu) {
		*to = get_le32(p + 16) & 1;
		uint8_t hdr[PROTO_HDR_SIZE];

		memcpy(hdr, p, sizeof hdr);
		put_le32(hdr + 16, 0);
		put_le32(p + 16, crc32c(crc32c(0, hdr, sizeof hdr), p + PROTO_HDR_SIZE, len));
	}
	return PROTO_HDR_SIZE + len;
}

static void handshake(struct client *c, struct srv *s, uint8_t kind)
{
	static const struct { uint8_t vol; const char *snap; uint16_t flags; } ids[] = {
		{ 0, "", 0 }, { 0, "", 0 },
		{ PROTO_VOL_ORIGIN, "", 0 },
		{ PROTO_VOL_SNAPSHOT, "a", 0 },
		{ PROTO_VOL_SNAPSHOT, "b", PROTO_F_PASSIVE },
		{ PROTO_VOL_ADMIN, "", 0 },
		{ PROTO_VOL_ORIGIN, "", PROTO_F_RECONNECT },
		{ PROTO_VOL_SNAPSHOT, "a", PROTO_F_RECONNECT },
	};
	struct proto_msg m;

	if (kind == 0)
		return;
	proto_msg_init(&m, PROTO_AUTH, 1);
	m.u.auth.version = PROTO_VERSION;
	memset(m.u.auth.nonce, 0x5a, PROTO_NONCE_LEN);
	proto_auth_mac(s->secret, 'C', PROTO_VERSION, c->snonce, m.u.auth.nonce, m.u.auth.mac);
	client_queue_msg(c, &m);
	if (kind < 2)
		return;
	proto_msg_init(&m, PROTO_IDENTIFY, 2);
	m.flags = ids[kind].flags;
	m.u.identify.store = s->uuid;
	m.u.identify.volume = ids[kind].vol;
	m.u.identify.host_id = 2;
	snprintf(m.u.identify.snapshot, sizeof m.u.identify.snapshot, "%s", ids[kind].snap);
	snprintf(m.u.identify.client, sizeof m.u.identify.client, "fuzz/%u", kind);
	client_queue_msg(c, &m);
}

static void cleanup(void)
{
	unlink(sock_path);
	unlink(origin_path);
	fi_cleanup(&img);
}

static void make_seeds(const char *dir);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t pattern[4096];
	int fd;

	(void)argc;
	(void)argv;
	fuzz_log_setup("fuzz_server_conn");
	signal(SIGPIPE, SIG_IGN);
	if (getenv("CSNAP_FUZZ_SEEDS"))
		make_seeds(getenv("CSNAP_FUZZ_SEEDS"));
	fi_build(&img);
	atexit(cleanup);
	/* the origin: every 4 KiB block says which it is */
	fuzz_scratch_path(origin_path, sizeof origin_path,
			  access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", "csnap-fuzz-origin");
	fd = open(origin_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	for (uint32_t i = 0; i < FI_OCHUNKS; i++) {
		memset(pattern, (int)(i & 0xff), sizeof pattern);
		if (pwrite(fd, pattern, sizeof pattern, (off_t)i * FI_CHUNK) != (ssize_t)sizeof pattern)
			abort();
	}
	close(fd);
	if (io_dev_open(origin_path, IO_DEV_RDONLY, &g_odev) < 0 ||
	    io_engine_create(64, &g_eng) < 0)
		fi_die("origin / engine");
	fuzz_scratch_path(sock_path, sizeof sock_path, "/tmp", "csnap-fuzz-conn");
	strcpy(sa.sun_path, sock_path);
	g_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (g_lfd < 0 || bind(g_lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(g_lfd, 16) < 0) {
		perror("fuzz_server_conn: listen");
		abort();
	}
	return 0;
}

static void client_connect(struct client *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	strcpy(sa.sun_path, sock_path);
	proto_buf_init(&c->in);
	proto_buf_init(&c->out);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("fuzz_server_conn: connect");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client c[2] = { { .fd = -1 }, { .fd = -1 } };
	uint8_t mode, kind2, *stream;
	size_t n, pos = 0;
	uint64_t last_tick = now_ms();
	unsigned nc;
	struct srv *s;
	long problems;

	if (size < 2)
		return 0;
	mode = data[0];
	kind2 = data[1] >> 5;
	nc = kind2 ? 2 : 1;
	n = size - 2;
	stream = malloc(n + 1);
	if (!stream)
		abort();
	memcpy(stream, data + 2, n);
	s = master_start(mode);
	run_ms = 0;
	run_last = now_ms();
	for (unsigned i = 0; i < nc; i++) {
		c[i].piece = data[1] & 0x1f;
		c[i].ack = !(mode & 0x08);
		client_connect(&c[i]);
		while (!c[i].got_challenge && !c[i].eof && !s->fatal) {
			turn(s, 10, &last_tick);
			client_io(&c[i]);
			FUZZ_CHECK(run_ms < HANG_MS, "no challenge");
		}
	}
	handshake(&c[0], s, mode & 7);
	if (nc > 1)
		handshake(&c[1], s, kind2);
	/* the stream, message by message; each waits for the master to be
	 * quiet unless the whole stream goes at once */
	while (pos < n && !s->fatal) {
		unsigned to = 0;
		size_t len = next_msg(stream + pos, n - pos, &to);
		uint64_t since = now_ms();
		struct client *cl = &c[to < nc ? to : 0];

		if (!cl->eof)
			client_queue(cl, stream + pos, len);
		pos += len;
		if (mode & 0x10 && pos < n)
			continue;
		for (;;) {
			bool out = c[0].out.len || c[1].out.len;
			int ev = turn(s, out ? 0 : 1, &last_tick);

			for (unsigned i = 0; i < nc; i++)
				client_io(&c[i]);
			if ((!out && !ev && !busy(s)) || now_ms() - since > QUIET_MS || s->fatal)
				break;
		}
		FUZZ_CHECK(run_ms < HANG_MS, "stream not taken in %d ms", HANG_MS);
		if (mode & 0x80)
			s->lm.valid_until_ns = 0;	/* lost: see the top */
	}
	/* what is still queued (acks), then the clients hang up */
	while ((c[0].out.len || c[1].out.len) && run_ms < HANG_MS && !s->fatal) {
		turn(s, 0, &last_tick);
		for (unsigned i = 0; i < nc; i++)
			client_io(&c[i]);
	}
	for (unsigned i = 0; i < nc; i++)
		shutdown(c[i].fd, SHUT_WR);
	while ((s->nconns || busy(s)) && !s->fatal) {
		turn(s, 1, &last_tick);
		for (unsigned i = 0; i < nc; i++)
			client_io(&c[i]);
		FUZZ_CHECK(run_ms < HANG_MS,
			   "connections not over after %d ms (%u open, copies pending: %d)",
			   HANG_MS, s->nconns, copy_pending(s));
	}
	master_stop(s);
	for (unsigned i = 0; i < nc; i++) {
		close(c[i].fd);
		proto_buf_free(&c[i].in);
		proto_buf_free(&c[i].out);
	}
	free(stream);
	problems = store_check(img.path, stderr);
	FUZZ_CHECK(problems == 0, "the store fails its check after the connection (%ld)", problems);
	return 0;
}

/* ---- seeds -------------------------------------------------------------- */

static struct proto_range rg[3] = { { 0, 1 }, { 100, 8 }, { 600, 20 } };

static void seed_save(const char *dir, int i, uint8_t mode, uint8_t piece, const struct proto_buf *b)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/seed-%02d", dir, i);
	f = fopen(path, "w");
	if (!f || fputc(mode, f) == EOF || fputc(piece, f) == EOF ||
	    (b->len && fwrite(b->data, 1, b->len, f) != b->len) || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static unsigned seed_to;	/* the connection the next messages go to */

static void enc(struct proto_buf *b, struct proto_msg *m)
{
	size_t at = b->len;

	if (proto_encode(m, b) < 0) {
		fprintf(stderr, "seed: %s\n", err_get());
		exit(1);
	}
	put_le32(b->data + at + 16, seed_to);
}

static void ranges(struct proto_buf *b, uint16_t type, uint16_t flags, uint64_t id, uint32_t k)
{
	struct proto_msg m;

	proto_msg_init(&m, type, id);
	m.flags = flags;
	m.u.ranges.n = k;
	m.u.ranges.r = rg;
	enc(b, &m);
}

/* ranges() sent on connection TO (the messages around it go to 0).  */
static void ranges_on(struct proto_buf *b, unsigned to, uint16_t type, uint16_t flags, uint64_t id,
		      uint32_t k)
{
	seed_to = to;
	ranges(b, type, flags, id, k);
	seed_to = 0;
}

/* A request of TYPE with no body, or (NAME) a snapshot's name.  */
static void req(struct proto_buf *b, uint16_t type, uint16_t flags, uint64_t id, const char *name)
{
	struct proto_msg m;

	proto_msg_init(&m, type, id);
	m.flags = flags;
	if (name)
		snprintf(m.u.snap_name.name, sizeof m.u.snap_name.name, "%s", name);
	enc(b, &m);
}

static void make_seeds(const char *dir)
{
	struct proto_buf b;
	struct proto_msg m;
	int i = 0;

	/* origin: writes (copy-outs), a ping */
	proto_buf_init(&b);
	ranges(&b, PROTO_ORIGIN_WRITE, 0, 10, 3);
	ranges(&b, PROTO_ORIGIN_WRITE, 0, 11, 1);
	req(&b, PROTO_PING, 0, 12, NULL);
	seed_save(dir, i++, 2, 0, &b);
	/* origin, pipelined, in 7-byte pieces, then a snapshot create: the
	 * barrier and SNAP_ADDED come back to this connection */
	b.len = 0;
	ranges(&b, PROTO_ORIGIN_WRITE, 0, 10, 2);
	proto_msg_init(&m, PROTO_SNAP_CREATE, 11);
	snprintf(m.u.snap_create.name, sizeof m.u.snap_create.name, "new");
	m.u.snap_create.priority = 3;
	enc(&b, &m);
	ranges(&b, PROTO_ORIGIN_WRITE, 0, 12, 3);
	seed_save(dir, i++, 2 | 0x10, 7, &b);
	/* snapshot a: read (locks), done, write, lock upload */
	b.len = 0;
	ranges(&b, PROTO_SNAP_READ, 0, 10, 3);
	ranges(&b, PROTO_SNAP_READ_DONE, 0, 11, 2);
	ranges(&b, PROTO_SNAP_WRITE, 0, 12, 2);
	ranges(&b, PROTO_SNAP_WRITE, PROTO_F_FULL_CHUNKS, 13, 1);
	ranges(&b, PROTO_LOCK_UPLOAD, 0, 14, 3);
	seed_save(dir, i++, 3, 0, &b);
	/* snapshot a reconnecting, in the re-upload window */
	b.len = 0;
	ranges(&b, PROTO_LOCK_UPLOAD, 0, 10, 3);
	ranges(&b, PROTO_SNAP_READ, 0, 11, 2);
	seed_save(dir, i++, 7 | 0x20, 0, &b);
	/* admin: every request */
	b.len = 0;
	proto_msg_init(&m, PROTO_SNAP_CREATE, 10);
	m.flags = PROTO_F_REQ_ID;
	snprintf(m.u.snap_create.name, sizeof m.u.snap_create.name, "daily");
	memset(m.u.snap_create.req_id, 7, PROTO_REQ_ID_LEN);
	enc(&b, &m);
	req(&b, PROTO_SNAP_LIST, 0, 11, NULL);
	proto_msg_init(&m, PROTO_SNAP_SET, 12);
	snprintf(m.u.snap_set.name, sizeof m.u.snap_set.name, "b");
	m.u.snap_set.mask = PROTO_SET_PRIORITY | PROTO_SET_USECOUNT;
	m.u.snap_set.priority = -1;
	m.u.snap_set.usecount_delta = 1;
	enc(&b, &m);
	req(&b, PROTO_STATUS, 0, 13, NULL);
	proto_msg_init(&m, PROTO_CHANGED, 14);
	snprintf(m.u.changed.from, sizeof m.u.changed.from, "a");
	m.u.changed.max_ranges = 100;
	enc(&b, &m);
	req(&b, PROTO_SNAP_DELETE, 0, 15, "b");
	req(&b, PROTO_SNAP_LIST, PROTO_F_NO_USAGE, 16, NULL);
	seed_save(dir, i++, 5, 0, &b);
	/* no help: the input's own AUTH (wrong MAC) */
	b.len = 0;
	proto_msg_init(&m, PROTO_AUTH, 1);
	m.u.auth.version = 1;
	enc(&b, &m);
	seed_save(dir, i++, 0, 0, &b);
	/* authenticated, then an IDENTIFY of its own (snapshot "nosuch") */
	b.len = 0;
	proto_msg_init(&m, PROTO_IDENTIFY, 2);
	m.u.identify.volume = PROTO_VOL_SNAPSHOT;
	snprintf(m.u.identify.snapshot, sizeof m.u.identify.snapshot, "nosuch");
	enc(&b, &m);
	seed_save(dir, i++, 1, 3, &b);
	/* origin with the lease late: grants held, commits wait */
	b.len = 0;
	ranges(&b, PROTO_ORIGIN_WRITE, 0, 10, 3);
	req(&b, PROTO_PING, 0, 11, NULL);
	seed_save(dir, i++, 2 | 0x80, 0, &b);
	/* two clients of snapshot a: a write that moves chunks makes the
	 * master invalidate them at the other, which then reads */
	b.len = 0;
	ranges(&b, PROTO_SNAP_READ, 0, 10, 2);
	ranges_on(&b, 1, PROTO_SNAP_READ, 0, 10, 3);
	ranges(&b, PROTO_SNAP_WRITE, 0, 11, 3);
	ranges_on(&b, 1, PROTO_SNAP_READ, 0, 11, 3);
	ranges_on(&b, 1, PROTO_SNAP_READ_DONE, 0, 12, 3);
	seed_save(dir, i++, 3, 3 << 5, &b);
	/* admin creates a snapshot while an origin client writes: the
	 * barrier and SNAP_ADDED go to the origin client */
	b.len = 0;
	ranges_on(&b, 1, PROTO_ORIGIN_WRITE, 0, 10, 2);
	proto_msg_init(&m, PROTO_SNAP_CREATE, 10);
	snprintf(m.u.snap_create.name, sizeof m.u.snap_create.name, "hourly");
	enc(&b, &m);
	ranges_on(&b, 1, PROTO_ORIGIN_WRITE, 0, 11, 3);
	req(&b, PROTO_SNAP_DELETE, 0, 11, "a");
	seed_save(dir, i++, 5, 2 << 5, &b);
	/* the same, the origin client never acks: cut off at the timeout */
	seed_save(dir, i++, 5 | 0x08, 2 << 5, &b);
	/* admin rolls the origin back to snapshot a while an origin client
	 * writes; progress queries; a second rollback is refused */
	b.len = 0;
	req(&b, PROTO_SNAP_ROLLBACK, 0, 10, "a");
	ranges_on(&b, 1, PROTO_ORIGIN_WRITE, 0, 10, 3);
	req(&b, PROTO_SNAP_ROLLBACK, PROTO_F_QUERY, 11, NULL);
	req(&b, PROTO_SNAP_ROLLBACK, PROTO_F_DELETE, 12, "b");
	ranges_on(&b, 1, PROTO_ORIGIN_WRITE, 0, 11, 2);
	req(&b, PROTO_SNAP_ROLLBACK, PROTO_F_QUERY, 13, NULL);
	seed_save(dir, i++, 5, 2 << 5, &b);
	proto_buf_free(&b);
	exit(0);
}
