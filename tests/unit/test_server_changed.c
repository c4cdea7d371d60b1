/*
 * tests/unit/test_server_changed.c - CHANGED (src/server/admin.c, the query
 * behind `csnap snapshot changed`, `csnap send` and the csnap:changed NBD
 * context) with fake connections (tests/unit/server_fake.h) against the
 * real store engine:
 *  - a walk over more exceptions than one slice of it covers, none of
 *    them changed, is answered part way with an empty list and a cursor
 *    past the asked chunk instead of walking to the end of the store (the
 *    master answers nobody else meanwhile);
 *  - asking again from each cursor lists exactly the changed chunks and
 *    ends at the end of the store.
 */
#include "tests/unit/server_fake.h"

/* Several times what store_changed() examines per call (8 K entries). */
#define NCHUNKS		70000u

static void send_changed(struct conn *c, uint64_t id, const char *from, const char *to,
			 uint64_t start)
{
	struct proto_msg m;

	proto_msg_init(&m, PROTO_CHANGED, id);
	snprintf(m.u.changed.from, sizeof m.u.changed.from, "%s", from);
	snprintf(m.u.changed.to, sizeof m.u.changed.to, "%s", to);
	m.u.changed.start = start;
	m.u.changed.max_ranges = PROTO_MAX_RANGES;
	fs_send(c, &m);
}

static struct proto_msg expect_changed(struct conn *c, uint64_t id)
{
	struct proto_msg m;

	if (!fs_recv(c, &m))
		fail_msg("no CHANGED reply");
	assert_int_equal(m.type, PROTO_CHANGED | PROTO_REPLY);
	assert_int_equal(m.id, id);
	assert_int_equal(m.status, 0);
	return m;
}

/* Snapshots a and b with nothing between them, then every origin chunk
 * written: NCHUNKS exceptions, each shared by a and b.  Then chunks 5 and
 * 69990 written in b only (its own exceptions).  */
static void shared_exceptions(struct fake_srv *f)
{
	struct store *st = f->s.st;
	static struct store_copy cp[4096];
	uint32_t a, b, n;

	TU_OK(store_snapshot_create(st, "a", 0, &a));
	TU_OK(store_snapshot_create(st, "b", 0, &b));
	for (chunk_t c = 0; c < NCHUNKS; c += 4096) {
		uint32_t count = NCHUNKS - c < 4096 ? (uint32_t)(NCHUNKS - c) : 4096;
		TU_OK(store_origin_write(st, c, count, cp, &n));
		assert_int_equal(n, count);
		TU_OK(store_commit(st));
	}
	chunk_t dst;
	struct store_copy sc;
	uint32_t ncopies;
	TU_OK(store_snapshot_write(st, b, 5, 1, &dst, &sc, &ncopies));
	TU_OK(store_snapshot_write(st, b, 69990, 1, &dst, &sc, &ncopies));
	TU_OK(store_commit(st));
}

static void test_changed_walk_bounded(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(320, NCHUNKS, STORE_FULL_FAIL);
	f->s.o.changed_walk_ns = 1;	/* one slice of the walk per request */
	shared_exceptions(f);
	struct conn *adm = fs_conn(f, PROTO_VOL_ADMIN, 0);

	/* a and b differ only where b wrote: the first answer stops after
	 * the first slice, past chunk 5, before 69990 */
	send_changed(adm, 1, "a", "b", 0);
	fs_settle(f);
	struct proto_msg m = expect_changed(adm, 1);
	uint64_t next = m.u.changed_reply.next;
	assert_int_equal(m.u.changed_reply.ranges.n, 1);
	assert_int_equal(m.u.changed_reply.ranges.r[0].start, 5);
	assert_int_equal(m.u.changed_reply.ranges.r[0].count, 1);
	assert_true(next > 5 && next <= 69990);
	proto_msg_free(&m);

	/* from there on: chunk 69990, then the end, a slice at a time */
	uint64_t seen = 0;
	for (uint64_t id = 2; next != STORE_CHUNK_END; id++) {
		assert_true(id < 20);
		send_changed(adm, id, "a", "b", next);
		fs_settle(f);
		m = expect_changed(adm, id);
		for (uint32_t i = 0; i < m.u.changed_reply.ranges.n; i++) {
			assert_int_equal(m.u.changed_reply.ranges.r[i].start, 69990);
			assert_int_equal(m.u.changed_reply.ranges.r[i].count, 1);
			seen++;
		}
		assert_true(m.u.changed_reply.next > next);
		next = m.u.changed_reply.next;
		proto_msg_free(&m);
	}
	assert_int_equal(seen, 1);

	fs_drop(adm);
	fs_teardown(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_changed_walk_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
