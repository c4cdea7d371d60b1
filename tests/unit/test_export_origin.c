/*
 * tests/unit/test_export_origin.c - the origin volume's unique-chunk memory
 * (src/export/volume_origin.c), driven through the real volume, dio and
 * async ioengine on a temp origin file, with the session to the master
 * replaced at link level by tests/unit/session_fake.h (the setting:
 * tests/unit/volume_env.h).  The tests play the
 * master: they answer ORIGIN_WRITE queries, send barriers, break and make
 * connections.
 *
 * What it checks (the invariants at the top of volume_origin.c):
 *  - a write to chunks the master said are unique goes to the disk without
 *    asking again;
 *  - a write that spans chunks, some remembered as unique and some not,
 *    asks only for the others, and if it must wait for that answer, what
 *    it remembered about the first ones is checked again before it writes:
 *    a snapshot barrier (the master took a snapshot sharing them) or a lost
 *    connection (a new master may have) in between makes it ask for them
 *    too.  Before the fix the write went out on the answer for the others
 *    and changed a chunk the new snapshot shared (docs/RELIABILITY.md,
 *    "Open defect").
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

#include "tests/unit/session_fake.h"
#include "tests/unit/volume_env.h"

static const struct proto_identify_ok ident = {
	.chunk_size = CS,
	.origin_size = ORIGIN_SIZE,
	.volume_size = ORIGIN_SIZE,
	.generation = 1,
};

/* ---- environment ------------------------------------------------------- */

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	struct csvol_env ce;

	env_open(e, "origin-vol", 0, &ce);
	env_origin_create(e, &ce);
	fake_connect(e->s, &ident, false);
	*state = e;
	return 0;
}

/* A write of chunks FIRST..LAST filled with C.  */
static struct vio *start_write(struct env *e, unsigned first, unsigned last, int c)
{
	return vio_start(e, VOL_WRITE, (uint64_t)first * CS, (size_t)(last - first + 1) * CS, c);
}

/* The byte every position of origin chunk CHUNK holds (fails if mixed). */
static int chunk_fill(const struct env *e, unsigned chunk)
{
	unsigned char buf[CS];
	int fd = open(e->opath, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, CS, (off_t)chunk * CS), (ssize_t)CS);
	close(fd);
	for (unsigned i = 1; i < CS; i++)
		if (buf[i] != buf[0])
			fail_msg("chunk %u: byte %u is %#x, byte 0 %#x", chunk, i, buf[i], buf[0]);
	return buf[0];
}

/* The ORIGIN_WRITE waiting for an answer, which must ask for exactly
 * START+COUNT; taken off the queue.  */
static struct sreq *take_query(struct env *e, uint64_t start, uint32_t count)
{
	struct sreq *rq = take(e->s, PROTO_ORIGIN_WRITE);

	assert_non_null(rq);
	assert_int_equal(rq->msg.u.ranges.n, 1);
	assert_int_equal(rq->msg.u.ranges.r[0].start, start);
	assert_int_equal(rq->msg.u.ranges.r[0].count, count);
	return rq;
}

/* Chunk 1 is written after asking, then remembered as unique.  */
static void make_chunk1_unique(struct env *e)
{
	struct vio *w = start_write(e, 1, 1, 'A');
	struct vio *again;

	answer_ok(take_query(e, 1, 1));
	RUN_UNTIL(e, w->calls);
	assert_int_equal(w->calls, 1);
	assert_int_equal(w->err, 0);
	assert_int_equal(chunk_fill(e, 1), 'A');
	/* remembered: the next write to it asks nobody */
	again = start_write(e, 1, 1, 'a');
	assert_false(waiting(e->s, PROTO_ORIGIN_WRITE));
	RUN_UNTIL(e, again->calls);
	assert_int_equal(again->err, 0);
	assert_int_equal(chunk_fill(e, 1), 'a');
	vio_free(w);
	vio_free(again);
}

/* W (chunks 1-2, filled with C) got its answer for chunk 2 after its
 * memory of chunk 1 went stale: chunk 1 still holds the snapshot's data
 * and W asked for it again (after log entry MARK); answered, W writes
 * both chunks.  */
static void asked_again(struct env *e, struct vio *w, unsigned mark, int c)
{
	assert_int_equal(chunk_fill(e, 1), 'a');
	assert_int_equal(w->calls, 0);
	assert_true(find_log(e->s, mark, PROTO_ORIGIN_WRITE, SENT) >= 0);
	answer_ok(take_query(e, 1, 1));
	RUN_UNTIL(e, w->calls);
	assert_int_equal(w->calls, 1);
	assert_int_equal(w->err, 0);
	assert_int_equal(chunk_fill(e, 1), c);
	assert_int_equal(chunk_fill(e, 2), c);
	vio_free(w);
}

/* W spans chunks 1 (remembered unique) and 2 (not): it asks for chunk 2
 * only, and the answer comes after a snapshot barrier.  The snapshot
 * shares chunk 1 now: W must ask for it before writing it.  */
static void test_span_after_barrier(void **state)
{
	struct env *e = *state;
	struct vio *w;
	struct sreq *q2;
	struct proto_msg barrier;
	unsigned mark;

	make_chunk1_unique(e);
	w = start_write(e, 1, 2, 'B');
	q2 = take_query(e, 2, 1);
	volume_log_state(e->vol);	/* SIGUSR1's dump: its counts agree */

	/* The master starts a snapshot: W was not admitted, the barrier is
	 * acknowledged at once (after a flush), and the master commits. */
	proto_msg_init(&barrier, PROTO_BARRIER, 77);
	mark = e->s->nlog;
	e->s->ops->server_request(e->s->arg, &barrier);
	RUN_UNTIL(e, find_log(e->s, mark, PROTO_BARRIER | PROTO_REPLY, REPLIED) >= 0);
	assert_true(find_log(e->s, mark, PROTO_BARRIER | PROTO_REPLY, REPLIED) >= 0);

	/* It answers for chunk 2 (copied out for the snapshot).  */
	mark = e->s->nlog;
	answer_ok(q2);
	settle(e);
	asked_again(e, w, mark, 'B');
}

/* The same with a lost connection instead of the barrier: the question
 * for chunk 2 is asked again of the new master, whose answer says nothing
 * about chunk 1 (it may have taken a snapshot since).  */
static void test_span_after_master_change(void **state)
{
	struct env *e = *state;
	struct vio *w;
	unsigned mark;

	make_chunk1_unique(e);
	w = start_write(e, 1, 2, 'C');
	assert_true(waiting(e->s, PROTO_ORIGIN_WRITE));

	fake_disconnect(e->s);
	fake_connect(e->s, &ident, true);
	mark = e->s->nlog;
	answer_ok(take_query(e, 2, 1));
	settle(e);
	asked_again(e, w, mark, 'C');
}

/* Nothing happened while W waited: the answer for chunk 2 is enough, W
 * writes both chunks without another question.  */
static void test_span_unchanged(void **state)
{
	struct env *e = *state;
	struct vio *w;

	make_chunk1_unique(e);
	w = start_write(e, 1, 2, 'D');
	answer_ok(take_query(e, 2, 1));
	RUN_UNTIL(e, w->calls);
	assert_int_equal(w->calls, 1);
	assert_int_equal(w->err, 0);
	assert_false(waiting(e->s, PROTO_ORIGIN_WRITE));
	assert_int_equal(chunk_fill(e, 1), 'D');
	assert_int_equal(chunk_fill(e, 2), 'D');
	vio_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_span_unchanged, setup, env_origin_teardown),
		cmocka_unit_test_setup_teardown(test_span_after_barrier, setup, env_origin_teardown),
		cmocka_unit_test_setup_teardown(test_span_after_master_change, setup, env_origin_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
