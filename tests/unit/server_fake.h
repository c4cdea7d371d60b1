/*
 * tests/unit/server_fake.h - drives the metadata server's request handlers
 * without sockets, for tests/unit/test_server_*.c.
 *
 * Only the socket side of a connection (src/server/conn.c) is replaced:
 * conn_queue() encodes a message into the connection's output buffer as
 * the real one does (the test decodes what was "sent" from it), and
 * conn_close() unlinks the connection and runs the real srv_conn_gone().
 * Everything else is the product code: routing (route.c), the handlers,
 * group commit (commit.c), copy-outs on the real async ioengine, the real
 * store engine on a scratch file under /var/tmp, and an origin file filled
 * with a known pattern.  The master lease is marked held and valid (no
 * sanlock): these tests are about the handlers, the lease has its own.
 *
 * One fake server per test: fs_setup() / fs_teardown().
 */
#ifndef CSNAP_TESTS_SERVER_FAKE_H
#define CSNAP_TESTS_SERVER_FAKE_H

#include "tests/unit/store_testutil.h"

#include "ioengine/ioengine.h"
#include "src/server/srv.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#define FS_CHUNK	4096u

struct fake_srv {
	struct srv s;
	char *store_path;
	char *origin_path;
	unsigned fails;			/* conn_fail() calls */
	/* the next message of this type queued on this connection closes
	 * it, as the real conn_queue() does when a client stops reading */
	struct conn *close_on;
	uint16_t close_on_type;
};

static struct fake_srv *fs_cur;

/* ---- the socket boundary (conn.c), faked ---------------------------------- */

void conn_queue(struct conn *c, const struct proto_msg *m)
{
	if (c->dead)
		return;
	if (proto_encode(m, &c->out) < 0)
		fail_msg("server sent a message it cannot encode: %s", err_get());
	if (c == fs_cur->close_on && m->type == fs_cur->close_on_type) {
		fs_cur->close_on = NULL;
		conn_close(c);
	}
}

void conn_put(struct conn *c)
{
	assert_true(c->refs > 0);
	if (--c->refs == 0 && c->dead) {
		proto_buf_free(&c->in);
		proto_buf_free(&c->out);
		chunkset_free(&c->locks);
		free(c);
	}
}

void conn_close(struct conn *c)
{
	struct srv *s = c->s;

	if (c->dead)
		return;
	c->dead = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	srv_conn_gone(s, c);
}

void conn_fail(struct conn *c, const char *why)
{
	(void)why;
	fs_cur->fails++;
	conn_close(c);
}

/* ---- set-up ---------------------------------------------------------------- */

/* A server on a new store of STORE_MB MiB over an origin of ORIGIN_CHUNKS
 * chunks whose chunk i is filled with byte (i & 0xff) ^ 0x5a.  */
static inline struct fake_srv *fs_setup(unsigned store_mb, uint64_t origin_chunks,
					enum store_full_policy full)
{
	struct fake_srv *f = calloc(1, sizeof *f);
	struct server_opts o;

	assert_non_null(f);
	fs_cur = f;
	f->store_path = tu_mkstore("srv", (uint64_t)store_mb << 20, FS_CHUNK,
				   origin_chunks * FS_CHUNK, 16);
	f->origin_path = tu_tmpfile("origin", origin_chunks * FS_CHUNK);
	int fd = open(f->origin_path, O_WRONLY);
	assert_true(fd >= 0);
	uint8_t buf[FS_CHUNK];
	for (uint64_t i = 0; i < origin_chunks; i++) {
		memset(buf, (int)((i & 0xff) ^ 0x5a), sizeof buf);
		assert_int_equal(pwrite(fd, buf, sizeof buf, (off_t)(i * FS_CHUNK)), (ssize_t)sizeof buf);
	}
	close(fd);

	memset(&o, 0, sizeof o);
	o.store_path = f->store_path;
	o.origin_path = f->origin_path;
	o.store_full = full;
	o.barrier_timeout_ms = 30000;
	o.copy_depth = 64;
	struct srv *s = &f->s;
	TU_OK(srv_init(s, &o));
	TU_OK(store_open(f->store_path, NULL, &s->st));
	s->sdev = store_dev(s->st);
	store_get_info(s->st, &s->info);
	s->chunk_size = s->info.chunk_size;
	s->origin_size = s->info.sb.origin_size;
	memcpy(s->uuid.b, s->info.sb.uuid, 16);
	TU_OK(io_dev_open(f->origin_path, IO_DEV_RDONLY, &s->odev));
	TU_OK(io_engine_create(64, &s->eng));
	s->lm.held = true;
	s->lm.valid_until_ns = INT64_MAX;
	s->epoch = 1;
	return f;
}

/* An identified connection of VOLUME (snapshot SNAP_ID for snapshots).
 * The test holds one reference: fs_drop() it.  */
static inline struct conn *fs_conn(struct fake_srv *f, uint8_t volume, uint32_t snap_id)
{
	struct srv *s = &f->s;
	struct conn *c = calloc(1, sizeof *c);

	assert_non_null(c);
	c->s = s;
	c->fd = -1;
	c->state = CONN_READY;
	c->volume = volume;
	c->snap_id = snap_id;
	c->snap_chunks = s->info.origin_chunks;
	c->refs = 1;
	snprintf(c->peer, sizeof c->peer, "fake:%p", (void *)c);
	snprintf(c->name, sizeof c->name, "test");
	proto_buf_init(&c->in);
	proto_buf_init(&c->out);
	chunkset_init(&c->locks);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	return c;
}

static inline void fs_drop(struct conn *c)
{
	conn_close(c);
	conn_put(c);
}

/* ---- messages ------------------------------------------------------------- */

/* Delivers M (encoded and decoded as on the wire) as if C had sent it. */
static inline void fs_send(struct conn *c, const struct proto_msg *m)
{
	struct proto_buf b;
	struct proto_msg d;

	proto_buf_init(&b);
	TU_OK(proto_encode(m, &b));
	assert_int_equal(proto_take(&b, &d), 1);
	proto_buf_free(&b);
	route_message(c, &d);
}

/* A request of TYPE with one range [start, +count).  */
static inline void fs_send_range(struct conn *c, uint16_t type, uint64_t id, uint64_t start,
				 uint32_t count)
{
	struct proto_msg m;
	struct proto_range r = { .start = start, .count = count };

	proto_msg_init(&m, type, id);
	m.u.ranges.n = 1;
	m.u.ranges.r = &r;
	fs_send(c, &m);
}

/* The next message the server sent C, or false if none.  Free it with
 * proto_msg_free().  */
static inline bool fs_recv(struct conn *c, struct proto_msg *m)
{
	if (c->out.off == c->out.len)
		return false;
	int r = proto_take(&c->out, m);
	if (r < 0)
		fail_msg("server sent an undecodable message: %s", err_get());
	return r == 1;
}

/* The next message must be the answer to request ID of TYPE with STATUS;
 * it is left in M for the caller's checks (free it with proto_msg_free()). */
static inline void fs_reply(struct conn *c, uint16_t type, uint64_t id, uint32_t status,
			    struct proto_msg *m)
{
	if (!fs_recv(c, m))
		fail_msg("no answer to %s id %llu", proto_type_name(type), (unsigned long long)id);
	if (m->type != (type | PROTO_REPLY) || m->id != id || m->status != status)
		fail_msg("expected %s reply id %llu status %u, got type 0x%x id %llu status %u (%s)",
			 proto_type_name(type), (unsigned long long)id, status, m->type,
			 (unsigned long long)m->id, m->status, m->error);
}

/* The same, checked and freed. */
static inline void fs_expect(struct conn *c, uint16_t type, uint64_t id, uint32_t status)
{
	struct proto_msg m;

	fs_reply(c, type, id, status, &m);
	proto_msg_free(&m);
}

/* The next message must refuse request ID of TYPE with STATUS, saying
 * WHY (its error text contains it).  */
static inline void fs_expect_refused(struct conn *c, uint16_t type, uint64_t id, uint32_t status,
				     const char *why)
{
	struct proto_msg m;

	fs_reply(c, type, id, status, &m);
	if (!strstr(m.error, why))
		fail_msg("%s id %llu refused with \"%s\", not saying \"%s\"", proto_type_name(type),
			 (unsigned long long)id, m.error, why);
	proto_msg_free(&m);
}

/* C must have been sent a server request of TYPE; returns its id.  */
static inline uint64_t fs_expect_request(struct conn *c, uint16_t type)
{
	struct proto_msg m;

	if (!fs_recv(c, &m))
		fail_msg("no %s sent", proto_type_name(type));
	if (m.type != type)
		fail_msg("expected %s, got type 0x%x", proto_type_name(type), m.type);
	uint64_t id = m.id;
	proto_msg_free(&m);
	return id;
}

/* C acknowledges the server's request ID of TYPE.  */
static inline void fs_ack(struct conn *c, uint16_t type, uint64_t id)
{
	struct proto_msg m;

	proto_msg_init(&m, (uint16_t)(type | PROTO_REPLY), id);
	fs_send(c, &m);
}

static inline void fs_expect_nothing(struct conn *c)
{
	struct proto_msg m;

	if (fs_recv(c, &m))
		fail_msg("unexpected message type 0x%x id %llu status %u", m.type,
			 (unsigned long long)m.id, m.status);
}

/* ---- the loop ---------------------------------------------------------------- */

/* Ends loop turns as the server's loop does, waiting for copy-outs on the
 * engine, until nothing is in flight, no parked request was kicked and no
 * snapshot-of-a-snapshot walk is left. */
static inline void fs_settle(struct fake_srv *f)
{
	struct srv *s = &f->s;

	for (int i = 0; i < 1000; i++) {
		srv_turn_end(s);
		/* a clone's walk goes on by itself (admin_due_ms: no sleep) */
		if (!copy_pending(s) && !srv_commit_inflight(s) && !s->kick &&
		    !store_txn_pending(s->st) && !s->busy.used && !store_clone_pending(s->st, NULL))
			return;
		if ((copy_pending(s) || srv_commit_inflight(s)) && io_engine_reap(s->eng, 1000) < 0)
			fail_msg("ioengine: %s", err_get());
	}
	fail_msg("the server did not settle");
}

/* Every byte of the chunk at OFF in file PATH is BYTE; WHAT names that
 * chunk in the failure.  */
static inline void fs_file_chunk_is(const char *path, uint64_t off, uint8_t byte, const char *what)
{
	uint8_t buf[FS_CHUNK];
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, sizeof buf, (off_t)off), (ssize_t)sizeof buf);
	close(fd);
	for (size_t i = 0; i < sizeof buf; i++)
		if (buf[i] != byte)
			fail_msg("%s byte %zu is 0x%02x, not 0x%02x", what, i, buf[i], byte);
}

/* The store chunk holding snapshot SNAP's copy of origin chunk CHUNK has
 * the origin's pattern for it.  */
static inline void fs_check_copied(struct fake_srv *f, uint32_t snap, uint64_t chunk)
{
	chunk_t where;
	char what[80];

	TU_OK(store_snapshot_read(f->s.st, snap, chunk, 1, &where));
	assert_true(where != STORE_ON_ORIGIN);
	snprintf(what, sizeof what, "store chunk %llu (origin chunk %llu)", (unsigned long long)where,
		 (unsigned long long)chunk);
	fs_file_chunk_is(f->store_path, store_chunk_offset(f->s.st, where),
			 (uint8_t)((chunk & 0xff) ^ 0x5a), what);
}

/* After the store was closed: it must check clean; frees F.  */
static inline void fs_free(struct fake_srv *f)
{
	struct srv *s = &f->s;

	assert_int_equal(store_check(f->store_path, stderr), 0);
	io_engine_destroy(s->eng);
	io_dev_close(s->odev);
	srv_free(s);
	unlink(f->store_path);
	unlink(f->origin_path);
	free(f->store_path);
	free(f->origin_path);
	free(f);
	fs_cur = NULL;
}

static inline void fs_teardown(struct fake_srv *f)
{
	struct srv *s = &f->s;

	while (s->conns)
		fs_drop(s->conns);
	s->stopping = true;
	dp_tick(s);
	struct req *r;
	while ((r = req_list_pop(&s->waiting)))
		srv_req_done(s, r);
	while ((r = req_list_pop(&s->after_commit)))
		srv_req_done(s, r);
	admin_shutdown(s);
	copy_drain(s);
	if (!copy_failed(s))
		TU_OK(srv_commit_now(s));
	store_close(s->st);
	fs_free(f);
}

#endif
