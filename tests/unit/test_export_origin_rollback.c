/*
 * tests/unit/test_export_origin_rollback.c - origin reads while a
 * rollback runs (src/export/origin_read.c), through the real origin
 * volume, dio and async ioengine on temp origin and store files, with the
 * session to the master replaced at link level by
 * tests/unit/session_fake.h (the setting: tests/unit/volume_env.h).  The
 * tests play the master.
 *
 * What it checks (the invariants at the top of origin_read.c):
 *  - before the first IDENTIFY answer a read waits and asks nobody; the
 *    answer "a rollback runs" makes it ask (ORIGIN_READ);
 *  - an answer "at store chunk X" is read from the store, "on the
 *    origin" from the origin, both in one request; the store chunks are
 *    released (ORIGIN_READ_DONE) after the read;
 *  - an answer that does not cover the asked chunks fails the read (EIO);
 *  - a read from the store whose connection was lost before it finished
 *    is read again from the start, after asking the new master;
 *  - a master without rollbacks, or one that refuses the session for
 *    good, lets the waiting reads go straight to the origin;
 *  - a BARRIER with PROTO_F_RB_END makes reads go straight to the origin,
 *    one with PROTO_F_RB_START makes them ask again (and is acknowledged
 *    like any barrier).
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
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CS		4096u
#define SHIFT		12u
#define NCHUNKS		16u
#define ORIGIN_SIZE	(NCHUNKS * CS)
#define STORE_CHUNKS	16u

#include "tests/unit/session_fake.h"
#include "tests/unit/volume_env.h"

static const struct proto_identify_ok ident_rb = {
	.chunk_size = CS,
	.origin_size = ORIGIN_SIZE,
	.volume_size = ORIGIN_SIZE,
	.generation = 1,
	.has_state = true,
	.state = PROTO_STATE_ROLLBACK,
};

/* Store chunk 7 holds 'T' (origin 'O', the rest of the store 'S').  */
static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	struct csvol_env ce;

	env_open(e, "origin-rb", (size_t)STORE_CHUNKS * CS, &ce);
	ce.data_offset = 0;
	ce.store_chunks = STORE_CHUNKS;
	unsigned char buf[CS];
	memset(buf, 'T', sizeof buf);
	int fd = open(e->spath, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, CS, 7 * CS), (ssize_t)CS);
	close(fd);
	env_origin_create(e, &ce);
	*state = e;
	return 0;
}

static struct vio *start_read(struct env *e, unsigned first, unsigned last)
{
	return vio_start(e, VOL_READ, (uint64_t)first * CS, (size_t)(last - first + 1) * CS, 0);
}

/* Answers the ORIGIN_READ waiting for FIRST..LAST with N extents.  */
static void answer_extents(struct env *e, unsigned first, unsigned last, const struct proto_extent *x,
			   uint32_t n)
{
	struct sreq *rq = take(e->s, PROTO_ORIGIN_READ);
	struct proto_msg r;

	assert_non_null(rq);
	assert_int_equal(rq->msg.u.ranges.n, 1);
	assert_int_equal(rq->msg.u.ranges.r[0].start, first);
	assert_int_equal(rq->msg.u.ranges.r[0].count, last - first + 1);
	proto_msg_init(&r, PROTO_ORIGIN_READ | PROTO_REPLY, 0);
	r.u.extents.n = n;
	r.u.extents.e = (struct proto_extent *)x;
	rq->done(rq, &r, 0);
}

/* Chunk K of the read V holds byte C throughout.  */
static void read_is(const struct vio *v, unsigned k, int c)
{
	const unsigned char *b = (const unsigned char *)v->req.buf + (size_t)k * CS;

	for (unsigned i = 0; i < CS; i++)
		if (b[i] != c)
			fail_msg("chunk %u of the read: byte %u is %#x, not %#x", k, i, b[i], c);
}

static void barrier(struct env *e, uint16_t flags, uint64_t id)
{
	struct proto_msg m;

	proto_msg_init(&m, PROTO_BARRIER, id);
	m.flags = flags;
	m.u.barrier.seq = id;
	e->s->ops->server_request(e->s->arg, &m);
}

static void test_reads_during_rollback(void **state)
{
	struct env *e = *state;

	/* not connected yet: the read waits, asking nobody */
	struct vio *v = start_read(e, 2, 3);
	settle(e);
	assert_int_equal(v->calls, 0);
	assert_int_equal(e->s->nlog, 0);
	fake_connect(e->s, &ident_rb, false);
	/* 2 on the origin, 3 at store chunk 7 */
	struct proto_extent x[2] = {
		{ .start = 2, .count = 1, .where = PROTO_AT_ORIGIN },
		{ .start = 3, .count = 1, .where = PROTO_AT_STORE, .store_chunk = 7 },
	};
	answer_extents(e, 2, 3, x, 2);
	RUN_UNTIL(e, v->calls);
	assert_int_equal(v->calls, 1);
	assert_int_equal(v->err, 0);
	read_is(v, 0, 'O');
	read_is(v, 1, 'T');
	int d = find_log(e->s, 0, PROTO_ORIGIN_READ_DONE, ONEWAY);
	assert_true(d >= 0);
	assert_int_equal(e->s->log[d].start, 3);
	assert_int_equal(e->s->log[d].count, 1);
	vio_free(v);

	/* an answer that does not cover the chunks: EIO */
	v = start_read(e, 5, 5);
	struct proto_extent bad = { .start = 6, .count = 1, .where = PROTO_AT_ORIGIN };
	answer_extents(e, 5, 5, &bad, 1);
	RUN_UNTIL(e, v->calls);
	assert_int_equal(v->err, -EIO);
	vio_free(v);
	/* nor a store chunk past the data area */
	v = start_read(e, 5, 5);
	struct proto_extent far = { .start = 5, .count = 1, .where = PROTO_AT_STORE,
				    .store_chunk = STORE_CHUNKS };
	answer_extents(e, 5, 5, &far, 1);
	RUN_UNTIL(e, v->calls);
	assert_int_equal(v->err, -EIO);
	vio_free(v);

	/* the connection is lost while reading the store chunk: read again
	 * after asking the new master, which says it has moved */
	v = start_read(e, 4, 4);
	struct proto_extent s7 = { .start = 4, .count = 1, .where = PROTO_AT_STORE, .store_chunk = 7 };
	answer_extents(e, 4, 4, &s7, 1);
	unsigned mark = e->s->nlog;
	fake_disconnect(e->s);
	settle(e);
	assert_int_equal(v->calls, 0);
	/* the lost connection's locks went with it: no release sent */
	assert_true(find_log(e->s, mark, PROTO_ORIGIN_READ_DONE, ONEWAY) < 0);
	fake_connect(e->s, &ident_rb, true);
	struct proto_extent o4 = { .start = 4, .count = 1, .where = PROTO_AT_ORIGIN };
	answer_extents(e, 4, 4, &o4, 1);
	RUN_UNTIL(e, v->calls);
	assert_int_equal(v->err, 0);
	read_is(v, 0, 'O');
	vio_free(v);

	/* the end: straight to the origin, asking nobody */
	barrier(e, PROTO_F_RB_END, 0);
	assert_true(find_log(e->s, 0, PROTO_BARRIER | PROTO_REPLY, REPLIED) >= 0);
	mark = e->s->nlog;
	v = start_read(e, 3, 3);
	RUN_UNTIL(e, v->calls);
	assert_int_equal(v->err, 0);
	read_is(v, 0, 'O');
	assert_true(find_log(e->s, mark, PROTO_ORIGIN_READ, SENT) < 0);
	vio_free(v);

	/* a new rollback: the barrier (acknowledged), then reads ask */
	barrier(e, PROTO_F_RB_START, 9);
	RUN_UNTIL(e, find_log(e->s, mark, PROTO_BARRIER | PROTO_REPLY, REPLIED) >= 0);
	assert_true(find_log(e->s, mark, PROTO_BARRIER | PROTO_REPLY, REPLIED) >= 0);
	v = start_read(e, 3, 3);
	settle(e);
	assert_int_equal(v->calls, 0);
	struct proto_extent s3 = { .start = 3, .count = 1, .where = PROTO_AT_STORE, .store_chunk = 7 };
	answer_extents(e, 3, 3, &s3, 1);
	RUN_UNTIL(e, v->calls);
	assert_int_equal(v->err, 0);
	read_is(v, 0, 'T');
	vio_free(v);
}

/* A master that says nothing about rollbacks (older): reads go straight
 * to the origin once it answered.  */
static void test_older_master(void **state)
{
	struct env *e = *state;
	struct proto_identify_ok old = ident_rb;

	old.has_state = false;
	old.state = 0;
	struct vio *v = start_read(e, 1, 1);
	settle(e);
	assert_int_equal(v->calls, 0);
	fake_connect(e->s, &old, false);
	RUN_UNTIL(e, v->calls);
	assert_int_equal(v->err, 0);
	read_is(v, 0, 'O');
	assert_int_equal(count_log(e->s, PROTO_ORIGIN_READ, SENT), 0);
	vio_free(v);
}

/* A master that refuses the session for good (another store): reads
 * waiting for its answer go to the origin, as before rollbacks.  */
static void test_refused(void **state)
{
	struct env *e = *state;
	struct vio *v = start_read(e, 1, 1);

	settle(e);
	assert_int_equal(v->calls, 0);
	e->s->ops->refused(e->s->arg, -ESTALE, "this server serves another store");
	RUN_UNTIL(e, v->calls);
	assert_int_equal(v->calls, 1);
	assert_int_equal(v->err, 0);
	read_is(v, 0, 'O');
	assert_int_equal(count_log(e->s, PROTO_ORIGIN_READ, SENT), 0);
	vio_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_during_rollback, setup, env_origin_teardown),
		cmocka_unit_test_setup_teardown(test_older_master, setup, env_origin_teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, env_origin_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
