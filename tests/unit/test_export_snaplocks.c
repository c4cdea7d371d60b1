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
#include "tests/unit/volume_env.h"

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

static void on_ready(void *arg, struct volume *vol, int err, const char *why)
{
	struct env *e = arg;

	(void)vol;
	(void)why;
	assert_int_equal(err, 0);
	e->ready++;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	struct csvol_env ce;

	env_open(e, "snaplocks", DATA_OFF + STORE_CHUNKS * CS, &ce);
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
	env_close(e);
	return 0;
}

static struct vio *start_read(struct env *e, uint64_t chunk)
{
	return vio_start(e, VOL_READ, chunk * CS, CS, 0);
}

static void assert_filled(const struct vio *r, int c)
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
	struct vio *r = start_read(e, 3);
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
	vio_free(r);
}

/* A chunk answered with a store location holds no lock: nothing to give
 * back, the request completes after the device read.  */
static void test_store_read_needs_no_release(void **state)
{
	struct env *e = *state;
	struct vio *r = start_read(e, 4);

	answer_read(take(e->s, PROTO_SNAP_READ), false, 2);
	RUN_UNTIL(e, r->calls);
	assert_int_equal(r->calls, 1);
	assert_int_equal(r->err, 0);
	assert_filled(r, 'S');
	assert_int_equal(count_log(e->s, PROTO_SNAP_READ_DONE, ONCE) +
			 count_log(e->s, PROTO_SNAP_READ_DONE, ONEWAY), 0);
	vio_free(r);
}

/* Read A holds a lock whose release got no ack; read B's query is
 * unanswered.  The master changes: A's lock is re-uploaded before B's
 * query goes out again; accepted, A's release is confirmed on the new
 * connection and only then does A complete.  */
static void test_reupload_before_resend(void **state)
{
	struct env *e = *state;
	struct vio *a = start_read(e, 1), *b;
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
	vio_free(a);
	vio_free(b);
}

/* The new master refuses the re-upload as stale: the read starts again,
 * is answered with a store location and returns the store's data; the
 * refused locks are never given back.  */
static void test_stale_restarts(void **state)
{
	struct env *e = *state;
	struct vio *r = start_read(e, 2);
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
	vio_free(r);
}

/* The session goes for good while a read waits for its locks' verdict:
 * the read fails, it does not hang nor return unconfirmed origin data. */
static void test_session_gone_fails(void **state)
{
	struct env *e = *state;
	struct vio *r = start_read(e, 5);

	answer_read(take(e->s, PROTO_SNAP_READ), true, 0);
	RUN_UNTIL(e, waiting(e->s, PROTO_SNAP_READ_DONE));
	settle(e);
	fake_disconnect(e->s);
	assert_int_equal(r->calls, 0);
	volume_snap_shutdown(e->vol);
	assert_int_equal(r->calls, 1);
	assert_int_equal(r->err, -EIO);
	vio_free(r);
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
