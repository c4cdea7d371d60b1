/*
 * tests/unit/test_server_rollback.c - the server's part of a rollback
 * (src/server/rollback.c) driven through the real routing and group commit
 * with fake connections (tests/unit/server_fake.h) and the real engine:
 *  - SNAP_ROLLBACK is answered once the start is committed; the
 *    background steps then make the origin S's content, a snapshot T taken
 *    after the change keeps its content (its chunks were copied out before
 *    being overwritten), S is kept and shares the origin again, and the
 *    check is clean (teardown);
 *  - with --delete S is gone from the start and the origin still ends as
 *    its content;
 *  - refused with a clear reason: a second rollback while one runs, a
 *    delete of S while it runs, a rollback while an origin client of an
 *    older csnap is connected or while S has a client that used it, data requests on S
 *    while it runs; a query reports the progress;
 *  - an origin write over a chunk still to move parks, the chunk is moved
 *    first (out of cursor order), and the write is answered only after
 *    that, with S's content copied out for S;
 *  - with an origin client that follows rollbacks: the start waits for
 *    its acknowledgement of the barrier (flag RB_START); its ORIGIN_READ
 *    of a chunk still to move is answered with S's store chunk, locked,
 *    and the steps wait for that lock before freeing it; the end is
 *    announced to it (BARRIER with RB_END);
 *  - a master change in the middle (engine closed and reopened: journal
 *    replay, the server's step state lost) resumes from the cursor.
 */
#include "tests/unit/server_fake.h"

#include "utils/clock.h"

#include <unistd.h>

/* Origin chunks 10..29 change after S: pattern NEW.  */
#define CH_FIRST	10
#define CH_N		20
#define NEW		0xc3

static uint8_t old_byte(uint64_t chunk)
{
	return (uint8_t)((chunk & 0xff) ^ 0x5a);	/* fs_setup's pattern */
}

static void origin_fill(struct fake_srv *f, uint64_t chunk, uint8_t byte)
{
	uint8_t buf[FS_CHUNK];
	int fd = open(f->origin_path, O_WRONLY);

	assert_true(fd >= 0);
	memset(buf, byte, sizeof buf);
	assert_int_equal(pwrite(fd, buf, sizeof buf, (off_t)(chunk * FS_CHUNK)), (ssize_t)sizeof buf);
	close(fd);
}

/* Every byte of origin chunk CHUNK is BYTE.  */
static void origin_is(struct fake_srv *f, uint64_t chunk, uint8_t byte)
{
	char what[64];

	snprintf(what, sizeof what, "origin chunk %llu", (unsigned long long)chunk);
	fs_file_chunk_is(f->origin_path, chunk * FS_CHUNK, byte, what);
}

/* Snapshot SNAP reads BYTE at CHUNK (wherever it lives).  */
static void snap_is(struct fake_srv *f, uint32_t snap, uint64_t chunk, uint8_t byte)
{
	chunk_t where;
	char what[96];

	TU_OK(store_snapshot_read(f->s.st, snap, chunk, 1, &where));
	if (where == STORE_ON_ORIGIN) {
		origin_is(f, chunk, byte);
		return;
	}
	snprintf(what, sizeof what, "snapshot %u chunk %llu (store chunk %llu)", snap,
		 (unsigned long long)chunk, (unsigned long long)where);
	fs_file_chunk_is(f->store_path, store_chunk_offset(f->s.st, where), byte, what);
}

static uint32_t mksnap(struct fake_srv *f, const char *name)
{
	uint32_t id;

	TU_OK(store_snapshot_create(f->s.st, name, 0, &id));
	TU_OK(srv_commit_now(&f->s));
	return id;
}

/* A fake server with S of the original origin; chunks CH_FIRST.. written
 * through an origin client (copied out for S) to NEW; T taken after that.
 * The origin client is gone again; an admin client is there (*ADM).  */
static struct fake_srv *setup_changed(uint32_t *s_id, uint32_t *t_id, struct conn **adm)
{
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);

	*s_id = mksnap(f, "S");
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	fs_send_range(o, PROTO_ORIGIN_WRITE, 1, CH_FIRST, CH_N);
	fs_settle(f);
	fs_expect(o, PROTO_ORIGIN_WRITE, 1, 0);
	for (uint64_t c = CH_FIRST; c < CH_FIRST + CH_N; c++)
		origin_fill(f, c, NEW);
	/* long gone: its grant ran out (a rollback waits for the grants of
	 * departed origin clients, see test_rollback_refused) */
	o->granted_ms = 0;
	fs_drop(o);
	*t_id = mksnap(f, "T");
	*adm = fs_conn(f, PROTO_VOL_ADMIN, 0);
	return f;
}

static void send_rollback(struct conn *c, uint64_t id, const char *name, uint16_t flags)
{
	struct proto_msg m;

	proto_msg_init(&m, PROTO_SNAP_ROLLBACK, id);
	m.flags = flags;
	if (name)
		snprintf(m.u.snap_name.name, sizeof m.u.snap_name.name, "%s", name);
	fs_send(c, &m);
}

/* Starts a rollback to NAME with no step run yet (the lock re-upload
 * window holds them: the caller ends it with f->s.grace_until_ms = 0).
 * With no origin client the barrier is down at the end of the turn.  */
static void start_rollback(struct fake_srv *f, struct conn *adm, uint64_t id, const char *name,
			   uint16_t flags)
{
	f->s.grace_until_ms = INT64_MAX;
	send_rollback(adm, id, name, flags);
	srv_turn_end(&f->s);
	fs_expect(adm, PROTO_SNAP_ROLLBACK, id, 0);
}

static bool running(struct fake_srv *f)
{
	struct store_rollback rb;

	store_rollback_get(f->s.st, &rb);
	return rb.active;
}

/* Loop turns until the rollback has ended.  */
static void run_to_end(struct fake_srv *f)
{
	for (int i = 0; i < 1000 && running(f); i++)
		fs_settle(f);
	assert_false(running(f));
	fs_settle(f);
}

/* After a rollback to S (id S_ID unless deleted): the origin is S's
 * content, T kept the changed content.  */
static void check_after(struct fake_srv *f, uint32_t s_id, uint32_t t_id)
{
	for (uint64_t c = 0; c < 64; c++) {
		origin_is(f, c, old_byte(c));
		if (s_id)
			snap_is(f, s_id, c, old_byte(c));
		snap_is(f, t_id, c, c >= CH_FIRST && c < CH_FIRST + CH_N ? NEW : old_byte(c));
	}
}

static void test_rollback(void **state)
{
	(void)state;
	uint32_t s_id, t_id;
	struct conn *adm;
	struct fake_srv *f = setup_changed(&s_id, &t_id, &adm);
	struct proto_msg m;

	f->s.grace_until_ms = INT64_MAX;	/* no step yet */
	send_rollback(adm, 1, "S", 0);
	srv_turn_end(&f->s);	/* the barrier (no origin client) */
	fs_reply(adm, PROTO_SNAP_ROLLBACK, 1, 0, &m);
	assert_true(m.u.rollback.flags & PROTO_RB_ACTIVE);
	assert_string_equal(m.u.rollback.name, "S");
	proto_msg_free(&m);
	/* answered after the commit: durable */
	assert_false(store_txn_pending(f->s.st));
	assert_true(running(f));
	/* the origin reads S's content at once (the engine's answer) */
	chunk_t where;
	TU_OK(store_origin_read(f->s.st, CH_FIRST, 1, &where));
	assert_true(where != STORE_ON_ORIGIN);
	origin_is(f, CH_FIRST, NEW);

	f->s.grace_until_ms = 0;
	run_to_end(f);
	check_after(f, s_id, t_id);
	struct store_snapshot sn;
	TU_OK(store_snapshot_find(f->s.st, "S", &sn));
	assert_int_equal(sn.id, s_id);
	/* S shares the origin everywhere again */
	for (uint64_t c = CH_FIRST; c < CH_FIRST + CH_N; c++) {
		TU_OK(store_snapshot_read(f->s.st, s_id, c, 1, &where));
		assert_true(where == STORE_ON_ORIGIN);
	}
	/* a query now: none runs */
	send_rollback(adm, 2, NULL, PROTO_F_QUERY);
	fs_reply(adm, PROTO_SNAP_ROLLBACK, 2, 0, &m);
	assert_int_equal(m.u.rollback.flags, 0);
	proto_msg_free(&m);
	fs_drop(adm);
	fs_teardown(f);
}

static void test_rollback_delete(void **state)
{
	(void)state;
	uint32_t s_id, t_id;
	struct conn *adm;
	struct fake_srv *f = setup_changed(&s_id, &t_id, &adm);
	struct store_snapshot sn;

	start_rollback(f, adm, 1, "S", PROTO_F_DELETE);
	assert_true(store_snapshot_find(f->s.st, "S", &sn) < 0);
	f->s.grace_until_ms = 0;
	run_to_end(f);
	check_after(f, 0, t_id);
	assert_true(store_snapshot_find(f->s.st, "S", &sn) < 0);
	fs_drop(adm);
	fs_teardown(f);
}

static void test_rollback_refused(void **state)
{
	(void)state;
	uint32_t s_id, t_id;
	struct conn *adm;
	struct fake_srv *f = setup_changed(&s_id, &t_id, &adm);
	struct proto_msg m;

	/* no such snapshot */
	send_rollback(adm, 1, "nope", 0);
	fs_expect(adm, PROTO_SNAP_ROLLBACK, 1, ENOENT);
	/* an origin client of an older csnap (it would read the origin
	 * device directly) */
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	send_rollback(adm, 2, "S", 0);
	fs_expect_refused(adm, PROTO_SNAP_ROLLBACK, 2, EBUSY, "cannot follow a rollback");
	fs_drop(o);
	/* S in use by a client */
	struct conn *sc = fs_conn(f, PROTO_VOL_SNAPSHOT, s_id);
	fs_send_range(sc, PROTO_SNAP_READ, 3, 0, 1);
	fs_expect(sc, PROTO_SNAP_READ, 3, 0);
	fs_send_range(sc, PROTO_SNAP_READ_DONE, 4, 0, 1);
	fs_expect(sc, PROTO_SNAP_READ_DONE, 4, 0);
	send_rollback(adm, 5, "S", 0);
	fs_expect(adm, PROTO_SNAP_ROLLBACK, 5, EBUSY);
	sc->eof = true;		/* it closed it itself: no grant left */
	fs_drop(sc);
	assert_false(running(f));
	/* a departed origin client's grant may still run: the start waits
	 * for it (it could still write chunks it was told are unique) */
	o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	proto_msg_init(&m, PROTO_PING, 50);
	fs_send(o, &m);
	fs_expect(o, PROTO_PING, 50, 0);
	int64_t t0 = csnap_now_ms();
	fs_drop(o);
	f->s.grace_until_ms = INT64_MAX;	/* no step until the checks below */
	send_rollback(adm, 6, "S", 0);
	fs_expect_nothing(adm);
	assert_false(running(f));
	while (!fs_recv(adm, &m)) {
		assert_true(csnap_now_ms() - t0 < 10000);
		usleep(20000);
		grants_tick(&f->s);
		fs_settle(f);
	}
	assert_true(csnap_now_ms() - t0 >= PROTO_GRANT_WAIT_MS);
	assert_int_equal(m.type, PROTO_SNAP_ROLLBACK | PROTO_REPLY);
	assert_int_equal(m.id, 6);
	assert_int_equal(m.status, 0);
	proto_msg_free(&m);
	assert_true(running(f));
	/* a second one, to S or to T */
	send_rollback(adm, 7, "T", 0);
	fs_expect_refused(adm, PROTO_SNAP_ROLLBACK, 7, EBUSY, "rollback to snapshot \"S\" is running");
	/* deleting S */
	proto_msg_init(&m, PROTO_SNAP_DELETE, 8);
	snprintf(m.u.snap_name.name, sizeof m.u.snap_name.name, "S");
	fs_send(adm, &m);
	fs_expect_refused(adm, PROTO_SNAP_DELETE, 8, EBUSY, "rolled back");
	/* S's data while it runs (S reads the source's chunks, which the
	 * steps free); T (older than the start) is served */
	sc = fs_conn(f, PROTO_VOL_SNAPSHOT, s_id);
	fs_send_range(sc, PROTO_SNAP_READ, 9, CH_FIRST, 1);
	fs_expect_refused(sc, PROTO_SNAP_READ, 9, EBUSY, "usable when the rollback ends");
	struct conn *tc = fs_conn(f, PROTO_VOL_SNAPSHOT, t_id);
	fs_send_range(tc, PROTO_SNAP_READ, 10, CH_FIRST, 1);
	fs_expect(tc, PROTO_SNAP_READ, 10, 0);
	fs_send_range(tc, PROTO_SNAP_READ_DONE, 11, CH_FIRST, 1);
	fs_expect(tc, PROTO_SNAP_READ_DONE, 11, 0);
	/* progress */
	send_rollback(adm, 12, NULL, PROTO_F_QUERY);
	fs_reply(adm, PROTO_SNAP_ROLLBACK, 12, 0, &m);
	assert_true(m.u.rollback.flags & PROTO_RB_ACTIVE);
	assert_string_equal(m.u.rollback.name, "S");
	assert_int_equal(m.u.rollback.origin_chunks, 256);
	proto_msg_free(&m);

	f->s.grace_until_ms = 0;
	run_to_end(f);
	check_after(f, s_id, t_id);
	/* served again */
	fs_send_range(sc, PROTO_SNAP_READ, 13, CH_FIRST, 1);
	fs_expect(sc, PROTO_SNAP_READ, 13, 0);
	fs_drop(sc);
	fs_drop(tc);
	fs_drop(adm);
	fs_teardown(f);
}

static void test_rollback_write_parks(void **state)
{
	(void)state;
	uint32_t s_id, t_id;
	struct conn *adm;
	struct fake_srv *f = setup_changed(&s_id, &t_id, &adm);
	const uint64_t c = CH_FIRST + CH_N - 1;	/* the last changed chunk */

	start_rollback(f, adm, 1, "S", 0);
	f->s.grace_until_ms = 0;
	/* an origin client (an export that asks before reading) writes a
	 * chunk still to move: parked, nothing answered */
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	fs_send_range(o, PROTO_ORIGIN_WRITE, 2, c, 1);
	fs_expect_nothing(o);
	assert_int_equal(f->s.waiting.n, 1);
	origin_is(f, c, NEW);
	/* one turn: that chunk's step, then the write (S's copy-out) */
	fs_settle(f);
	fs_expect(o, PROTO_ORIGIN_WRITE, 2, 0);
	/* moved before the answer, and S keeps its content when the client
	 * now writes */
	origin_is(f, c, old_byte(c));
	snap_is(f, s_id, c, old_byte(c));
	snap_is(f, t_id, c, NEW);
	origin_fill(f, c, 0x11);
	snap_is(f, s_id, c, old_byte(c));
	snap_is(f, t_id, c, NEW);

	fs_drop(o);
	run_to_end(f);
	for (uint64_t k = 0; k < 64; k++) {
		origin_is(f, k, k == c ? 0x11 : old_byte(k));
		snap_is(f, s_id, k, old_byte(k));
		snap_is(f, t_id, k, k >= CH_FIRST && k < CH_FIRST + CH_N ? NEW : old_byte(k));
	}
	fs_drop(adm);
	fs_teardown(f);
}

/* The next message on C must be a BARRIER with FLAGS; returns its id.  */
static uint64_t expect_barrier(struct conn *c, uint16_t flags)
{
	struct proto_msg m;

	if (!fs_recv(c, &m))
		fail_msg("no barrier sent");
	if (m.type != PROTO_BARRIER || m.flags != flags)
		fail_msg("expected a barrier with flags 0x%x, got type 0x%x flags 0x%x", flags, m.type,
			 m.flags);
	uint64_t id = m.id;
	proto_msg_free(&m);
	return id;
}

/* Where origin client C is told chunk CHUNK is (PROTO_AT_*, *SC: the
 * store chunk).  */
static uint8_t origin_where(struct conn *c, uint64_t id, uint64_t chunk, uint64_t *sc)
{
	struct proto_msg m;

	fs_send_range(c, PROTO_ORIGIN_READ, id, chunk, 1);
	fs_reply(c, PROTO_ORIGIN_READ, id, 0, &m);
	assert_int_equal(m.u.extents.n, 1);
	uint8_t where = m.u.extents.e[0].where;
	*sc = m.u.extents.e[0].store_chunk;
	proto_msg_free(&m);
	return where;
}

static void test_rollback_online(void **state)
{
	(void)state;
	uint32_t s_id, t_id;
	struct conn *adm;
	struct fake_srv *f = setup_changed(&s_id, &t_id, &adm);
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	const uint64_t c = CH_FIRST + 3;
	uint64_t sc;

	o->rb_ok = true;	/* identified with PROTO_F_ROLLBACK_OK */
	assert_int_equal(rb_origin_state(&f->s), 0);
	assert_int_equal(origin_where(o, 1, c, &sc), PROTO_AT_ORIGIN);
	/* the barrier tells the export to ask before reading; the start
	 * waits for its acknowledgement */
	f->s.grace_until_ms = INT64_MAX;
	send_rollback(adm, 2, "S", 0);
	uint64_t bid = expect_barrier(o, PROTO_F_RB_START);
	fs_settle(f);
	fs_expect_nothing(adm);
	assert_false(running(f));
	fs_ack(o, PROTO_BARRIER, bid);
	fs_settle(f);
	fs_expect(adm, PROTO_SNAP_ROLLBACK, 2, 0);
	assert_int_equal(rb_origin_state(&f->s), PROTO_STATE_ROLLBACK);
	/* a chunk still to move reads from S's store chunk, locked */
	assert_int_equal(origin_where(o, 3, c, &sc), PROTO_AT_STORE);
	assert_int_equal(chunkset_get(&f->s.olocks, c), 1);
	assert_int_equal(origin_where(o, 4, 0, &sc), PROTO_AT_ORIGIN);
	assert_int_equal(chunkset_get(&f->s.olocks, 0), 0);
	/* the steps stop before freeing that store chunk */
	f->s.grace_until_ms = 0;
	for (int i = 0; i < 20; i++)
		fs_settle(f);
	assert_true(running(f));
	struct store_rollback rb;
	store_rollback_get(f->s.st, &rb);
	assert_true(rb.cursor <= c);
	origin_is(f, CH_FIRST + CH_N - 1, NEW);
	fs_expect_nothing(o);
	/* released: the rollback ends, and the export hears it */
	fs_send_range(o, PROTO_ORIGIN_READ_DONE, 5, c, 1);
	fs_expect(o, PROTO_ORIGIN_READ_DONE, 5, 0);
	assert_int_equal(f->s.olocks.used, 0);
	run_to_end(f);
	check_after(f, s_id, t_id);
	expect_barrier(o, PROTO_F_RB_END);
	assert_int_equal(rb_origin_state(&f->s), 0);
	assert_int_equal(origin_where(o, 6, c, &sc), PROTO_AT_ORIGIN);
	fs_drop(o);
	fs_drop(adm);
	fs_teardown(f);
}

static void test_rollback_resume(void **state)
{
	(void)state;
	/* one chunk per step, so the rollback is in the middle after a few
	 * turns */
	setenv("CSNAP_ROLLBACK_STEP", "1", 1);
	uint32_t s_id, t_id;
	struct conn *adm;
	struct fake_srv *f = setup_changed(&s_id, &t_id, &adm);
	unsetenv("CSNAP_ROLLBACK_STEP");
	struct srv *s = &f->s;

	start_rollback(f, adm, 1, "S", 0);
	f->s.grace_until_ms = 0;
	fs_drop(adm);
	for (int i = 0; i < 5; i++)
		srv_turn_end(s);
	struct store_rollback rb;
	store_rollback_get(s->st, &rb);
	assert_true(rb.active);
	assert_true(rb.cursor > CH_FIRST && rb.cursor < CH_FIRST + CH_N);
	/* the master goes (its open transaction, if any, is lost) and a new
	 * one opens the store: journal replay, fresh step state */
	assert_false(copy_pending(s));
	store_close_nockpt(s->st);
	rb_free(s);
	TU_OK(store_open(f->store_path, NULL, &s->st));
	s->sdev = store_dev(s->st);
	store_get_info(s->st, &s->info);
	TU_OK(rb_init(s));
	struct store_rollback rb2;
	store_rollback_get(s->st, &rb2);
	assert_true(rb2.active);
	assert_true(rb2.cursor >= rb.cursor - 1 && rb2.cursor <= rb.cursor);
	run_to_end(f);
	check_after(f, s_id, t_id);
	fs_teardown(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_rollback_delete),
		cmocka_unit_test(test_rollback_refused),
		cmocka_unit_test(test_rollback_write_parks),
		cmocka_unit_test(test_rollback_online),
		cmocka_unit_test(test_rollback_resume),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
