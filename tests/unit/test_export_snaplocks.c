/*
 * tests/unit/test_export_snaplocks.c - a snapshot volume's read locks
 * (src/export/volume_snap.c, snap_locks.c), driven through the real
 * volume, dio and async ioengine on temp origin/store files, with the
 * session to the master replaced at link level by
 * tests/unit/session_fake.h (so session.o is not linked), which records
 * what the volume sends and lets each test answer as a master would,
 * break the connection and make a new one.
 *
 * What it checks (the invariants at the top of volume_snap.c):
 *  - a chunk answered "on the origin" is given back exactly once
 *    (SNAP_READ_DONE) after the device read, and the request completes
 *    only after the master acknowledged that release;
 *  - after a master change the locks still held are re-uploaded
 *    (LOCK_UPLOAD) before any unanswered query is re-sent, and an
 *    accepted re-upload is confirmed on the new connection;
 *  - a re-upload refused as stale restarts the read, which then reads the
 *    store location, and the stale locks are never given back;
 *  - a session gone for good fails the request waiting for its verdict.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ioengine/ioengine.h"
#include "src/export/csvol.h"
#include "src/export/dio.h"
#include "src/export/loop.h"
#include "src/export/session.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CS		4096u
#define SHIFT		12u
#define ORIGIN_SIZE	(16u * CS)
#define DATA_OFF	(2u * CS)
#define STORE_CHUNKS	8u

#include "tests/unit/session_fake.h"

/* ---- master side, played by the tests ---------------------------------- */

static const struct proto_identify_ok ident = {
	.chunk_size = CS,
	.origin_size = ORIGIN_SIZE,
	.volume_size = ORIGIN_SIZE,
	.store_data_offset = DATA_OFF,
	.generation = 1,
};

/* Answers a SNAP_READ of one chunk: on the origin (locked) or at a store
 * chunk.  */
static void answer_read(struct sreq *rq, bool origin, uint64_t store_chunk)
{
	struct proto_msg r;
	struct proto_extent e = {
		.start = rq->msg.u.ranges.r[0].start,
		.count = rq->msg.u.ranges.r[0].count,
		.where = origin ? PROTO_AT_ORIGIN : PROTO_AT_STORE,
		.store_chunk = store_chunk,
	};

	assert_int_equal(rq->msg.u.ranges.n, 1);
	proto_msg_init(&r, PROTO_SNAP_READ | PROTO_REPLY, 0);
	r.u.extents.n = 1;
	r.u.extents.e = &e;
	rq->done(rq, &r, 0);
}

/* ---- environment ------------------------------------------------------- */

struct env {
	char opath[64], spath[64];
	struct io_dev *odev, *sdev;
	struct evloop *lp;
	struct dio *origin, *store;
	struct master_target tgt;
	struct volume *vol;
	struct session *s;
	int ready;
};

struct rd {
	struct vol_req req;
	int calls;
	int err;
};

static void rd_done(struct vol_req *req, int err)
{
	struct rd *r = (struct rd *)req;

	r->calls++;
	r->err = err;
}

static void on_ready(void *arg, struct volume *vol, int err, const char *why)
{
	struct env *e = arg;

	(void)vol;
	(void)why;
	assert_int_equal(err, 0);
	e->ready++;
}

static void mkfile(char *path, size_t pathlen, const char *name, size_t size, int fill)
{
	char *buf = malloc(size);
	int fd;

	snprintf(path, pathlen, "/var/tmp/%s.XXXXXX", name);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	memset(buf, fill, size);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	struct csvol_env ce = { 0 };

	mkfile(e->opath, sizeof e->opath, "snaplocks-origin", ORIGIN_SIZE, 'O');
	mkfile(e->spath, sizeof e->spath, "snaplocks-store", DATA_OFF + STORE_CHUNKS * CS, 'S');
	assert_int_equal(io_dev_open(e->opath, IO_DEV_RDWR, &e->odev), 0);
	assert_int_equal(io_dev_open(e->spath, IO_DEV_RDWR, &e->sdev), 0);
	assert_int_equal(loop_create(64, &e->lp), 0);
	assert_int_equal(dio_create(loop_io(e->lp), e->odev, &e->origin), 0);
	assert_int_equal(dio_create(loop_io(e->lp), e->sdev, &e->store), 0);
	ce.lp = e->lp;
	ce.tgt = &e->tgt;
	ce.origin = e->origin;
	ce.store = e->store;
	ce.chunk_size = CS;
	ce.chunk_shift = SHIFT;
	ce.origin_size = ORIGIN_SIZE;
	ce.data_offset = DATA_OFF;
	ce.store_chunks = STORE_CHUNKS;
	ce.cache_entries = 64;
	assert_int_equal(volume_snap_create(&ce, "s1", on_ready, NULL, e, &e->vol), 0);
	e->s = the_sess;
	assert_non_null(e->s);
	volume_attach(e->vol);
	fake_connect(e->s, &ident, false);
	assert_int_equal(e->ready, 1);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	volume_snap_shutdown(e->vol);
	volume_detach(e->vol);
	volume_put(e->vol);
	dio_destroy(e->origin);
	dio_destroy(e->store);
	loop_destroy(e->lp);
	io_dev_close(e->odev);
	io_dev_close(e->sdev);
	unlink(e->opath);
	unlink(e->spath);
	free(e);
	return 0;
}

/* Turns the loop until COND holds or the device is idle for a while. */
#define RUN_UNTIL(e, cond)                                                     \
	do {                                                                   \
		for (int i_ = 0; i_ < 500 && !(cond); i_++)                    \
			assert_true(evloop_run_once((e)->lp, 10) >= 0);        \
	} while (0)

/* Lets the device I/O in flight finish.  */
static void settle(struct env *e)
{
	for (int i = 0; i < 500 && (dio_inflight(e->origin) || dio_inflight(e->store)); i++)
		assert_true(evloop_run_once(e->lp, 10) >= 0);
	for (int i = 0; i < 3; i++)
		assert_true(evloop_run_once(e->lp, 0) >= 0);
	assert_int_equal(dio_inflight(e->origin) + dio_inflight(e->store), 0);
}

static struct rd *start_read(struct env *e, uint64_t chunk)
{
	struct rd *r = calloc(1, sizeof *r);

	r->req.op = VOL_READ;
	r->req.off = chunk * CS;
	r->req.len = CS;
	r->req.buf = io_buf_alloc(CS);
	memset(r->req.buf, 0, CS);
	r->req.done = rd_done;
	volume_submit(e->vol, &r->req);
	return r;
}

static void free_read(struct rd *r)
{
	io_buf_free(r->req.buf);
	free(r);
}

static void assert_filled(const struct rd *r, int c)
{
	const unsigned char *b = r->req.buf;

	for (unsigned i = 0; i < CS; i++)
		if (b[i] != c)
			fail_msg("byte %u is %#x, expected %#x", i, b[i], c);
}

/* A read answered "on the origin": the device read, then exactly one
 * SNAP_READ_DONE, and the request completes only on its ack.  */
static void test_release_after_read(void **state)
{
	struct env *e = *state;
	struct rd *r = start_read(e, 3);
	struct sreq *rq = take(e->s, PROTO_SNAP_READ);

	assert_non_null(rq);
	assert_int_equal(e->s->log[e->s->nlog - 1].start, 3);
	answer_read(rq, true, 0);
	RUN_UNTIL(e, waiting(e->s, PROTO_SNAP_READ_DONE));
	settle(e);
	/* the data is read, the release sent, the request still waits */
	assert_filled(r, 'O');
	assert_int_equal(r->calls, 0);
	assert_int_equal(count_log(e->s, PROTO_SNAP_READ_DONE, ONCE), 1);
	assert_int_equal(count_log(e->s, PROTO_SNAP_READ_DONE, ONEWAY), 0);
	assert_int_equal(e->s->log[e->s->nlog - 1].start, 3);
	assert_int_equal(e->s->log[e->s->nlog - 1].count, 1);

	answer_ok(take(e->s, PROTO_SNAP_READ_DONE));
	assert_int_equal(r->calls, 1);
	assert_int_equal(r->err, 0);
	/* given back once: no second READ_DONE of any kind */
	assert_int_equal(count_log(e->s, PROTO_SNAP_READ_DONE, ONCE), 1);
	assert_int_equal(count_log(e->s, PROTO_SNAP_READ_DONE, ONEWAY), 0);
	assert_int_equal(session_pending(e->s), 0);
	free_read(r);
}

/* A chunk answered with a store location holds no lock: nothing to give
 * back, the request completes after the device read.  */
static void test_store_read_needs_no_release(void **state)
{
	struct env *e = *state;
	struct rd *r = start_read(e, 4);

	answer_read(take(e->s, PROTO_SNAP_READ), false, 2);
	RUN_UNTIL(e, r->calls);
	assert_int_equal(r->calls, 1);
	assert_int_equal(r->err, 0);
	assert_filled(r, 'S');
	assert_int_equal(count_log(e->s, PROTO_SNAP_READ_DONE, ONCE) +
			 count_log(e->s, PROTO_SNAP_READ_DONE, ONEWAY), 0);
	free_read(r);
}

/* Read A holds a lock whose release got no ack; read B's query is
 * unanswered.  The master changes: A's lock is re-uploaded before B's
 * query goes out again; accepted, A's release is confirmed on the new
 * connection and only then does A complete.  */
static void test_reupload_before_resend(void **state)
{
	struct env *e = *state;
	struct rd *a = start_read(e, 1), *b;
	unsigned mark;
	int up, again;

	answer_read(take(e->s, PROTO_SNAP_READ), true, 0);
	RUN_UNTIL(e, waiting(e->s, PROTO_SNAP_READ_DONE));
	settle(e);
	assert_true(waiting(e->s, PROTO_SNAP_READ_DONE));
	b = start_read(e, 6);
	assert_true(waiting(e->s, PROTO_SNAP_READ));

	fake_disconnect(e->s);
	assert_int_equal(a->calls, 0);
	mark = e->s->nlog;
	fake_connect(e->s, &ident, true);
	up = find_log(e->s, mark, PROTO_LOCK_UPLOAD, ONCE);
	again = find_log(e->s, mark, PROTO_SNAP_READ, RESENT);
	assert_true(up >= 0);
	assert_true(again >= 0);
	assert_true(up < again);
	assert_int_equal(e->s->log[up].start, 1);
	assert_int_equal(e->s->log[up].count, 1);
	assert_int_equal(e->s->log[again].start, 6);
	assert_int_equal(a->calls, 0);

	answer_ok(take(e->s, PROTO_LOCK_UPLOAD));
	/* accepted: the release is asked again, on this connection */
	assert_int_equal(a->calls, 0);
	assert_int_equal(count_log(e->s, PROTO_SNAP_READ_DONE, ONCE), 2);
	answer_ok(take(e->s, PROTO_SNAP_READ_DONE));
	assert_int_equal(a->calls, 1);
	assert_int_equal(a->err, 0);
	assert_filled(a, 'O');

	answer_read(take(e->s, PROTO_SNAP_READ), false, 5);
	RUN_UNTIL(e, b->calls);
	assert_int_equal(b->calls, 1);
	assert_int_equal(b->err, 0);
	assert_filled(b, 'S');
	assert_int_equal(count_log(e->s, PROTO_SNAP_READ_DONE, ONEWAY), 0);
	free_read(a);
	free_read(b);
}

/* The new master refuses the re-upload as stale: the read starts again,
 * is answered with a store location and returns the store's data; the
 * refused locks are never given back.  */
static void test_stale_restarts(void **state)
{
	struct env *e = *state;
	struct rd *r = start_read(e, 2);
	struct sreq *rq;
	unsigned mark;

	answer_read(take(e->s, PROTO_SNAP_READ), true, 0);
	RUN_UNTIL(e, waiting(e->s, PROTO_SNAP_READ_DONE));
	settle(e);
	assert_filled(r, 'O');
	fake_disconnect(e->s);
	fake_connect(e->s, &ident, true);
	rq = take(e->s, PROTO_LOCK_UPLOAD);
	assert_non_null(rq);
	mark = e->s->nlog;
	answer_status(rq, PROTO_STATUS_LOCK_STALE, "chunk 2 was copied out");
	assert_int_equal(r->calls, 0);
	/* restarted from scratch: a new query for the same chunk */
	assert_true(find_log(e->s, mark, PROTO_SNAP_READ, SENT) >= 0);
	answer_read(take(e->s, PROTO_SNAP_READ), false, 7);
	RUN_UNTIL(e, r->calls);
	assert_int_equal(r->calls, 1);
	assert_int_equal(r->err, 0);
	assert_filled(r, 'S');
	assert_int_equal(find_log(e->s, mark, PROTO_SNAP_READ_DONE, ONCE), -1);
	assert_int_equal(count_log(e->s, PROTO_SNAP_READ_DONE, ONEWAY), 0);
	free_read(r);
}

/* The session goes for good while a read waits for its locks' verdict:
 * the read fails, it does not hang nor return unconfirmed origin data. */
static void test_session_gone_fails(void **state)
{
	struct env *e = *state;
	struct rd *r = start_read(e, 5);

	answer_read(take(e->s, PROTO_SNAP_READ), true, 0);
	RUN_UNTIL(e, waiting(e->s, PROTO_SNAP_READ_DONE));
	settle(e);
	fake_disconnect(e->s);
	assert_int_equal(r->calls, 0);
	volume_snap_shutdown(e->vol);
	assert_int_equal(r->calls, 1);
	assert_int_equal(r->err, -EIO);
	free_read(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_release_after_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_read_needs_no_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reupload_before_resend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_gone_fails, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
