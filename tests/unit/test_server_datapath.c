/*
 * tests/unit/test_server_datapath.c - the server's data path handlers
 * (src/server/datapath.c) driven through the real routing and group
 * commit, with fake connections (tests/unit/server_fake.h) and the real
 * store engine on a scratch file:
 *  - origin writes to a chunk a snapshot shares are answered only after
 *    the copy-out is on the store and committed, and a second writer of a
 *    busy chunk waits for that commit;
 *  - an origin write to a chunk a snapshot reader holds a read lock on
 *    waits until the lock is released;
 *  - a re-uploaded read lock on a chunk copied out since is refused as
 *    stale, one on a chunk still on the origin is taken and holds writers;
 *  - a snapshot write that moves a chunk other snapshots share is
 *    answered only after the snapshot's other client acknowledged the
 *    INVALIDATE of the old location, and the moved chunk holds the data;
 *  - store full: policy "fail" answers ENOSPC and keeps the snapshot,
 *    policy "release" drops the snapshot and answers the write;
 *  - pipelined commits: while one transaction's flush, journal write and
 *    flush are in flight, the next one's copy-outs run; an origin write
 *    is answered only once the journal flush of its copy-out's commit is
 *    done (checked on the store device's recorded writes), a writer of a
 *    chunk in the flight waits for it, and a failed flush answers nothing.
 */
#include "tests/unit/server_fake.h"

/* A snapshot created directly in the engine (the barrier is admin's,
 * tested in test_server_admin.c), committed.  */
static uint32_t mksnap(struct fake_srv *f, const char *name, int32_t prio)
{
	uint32_t id;

	TU_OK(store_snapshot_create(f->s.st, name, prio, &id));
	TU_OK(srv_commit_now(&f->s));
	return id;
}

static void test_origin_write_busy(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	uint32_t snap = mksnap(f, "s1", 0);
	struct conn *a = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	struct conn *b = fs_conn(f, PROTO_VOL_ORIGIN, 0);

	/* A's write needs a copy-out: no answer before the commit.  */
	fs_send_range(a, PROTO_ORIGIN_WRITE, 1, 10, 2);
	fs_expect_nothing(a);
	assert_true(chunkset_get(&f->s.busy, 10) && chunkset_get(&f->s.busy, 11));
	/* B writes a busy chunk: parked, not answered, no second copy.  */
	fs_send_range(b, PROTO_ORIGIN_WRITE, 7, 11, 1);
	fs_expect_nothing(b);
	assert_int_equal(f->s.waiting.n, 2);
	fs_settle(f);
	fs_expect(a, PROTO_ORIGIN_WRITE, 1, 0);
	fs_expect(b, PROTO_ORIGIN_WRITE, 7, 0);
	assert_int_equal(f->s.waiting.n, 0);
	assert_int_equal(f->s.busy.used, 0);
	/* The snapshot's copies hold the origin's old data.  */
	fs_check_copied(f, snap, 10);
	fs_check_copied(f, snap, 11);
	uint64_t copyouts, jobs;
	copy_stats(&f->s, &copyouts, &jobs);
	assert_int_equal(copyouts, 2);
	/* Unshared now: answered at once, nothing copied.  */
	fs_send_range(b, PROTO_ORIGIN_WRITE, 8, 10, 2);
	fs_expect(b, PROTO_ORIGIN_WRITE, 8, 0);
	copy_stats(&f->s, &copyouts, &jobs);
	assert_int_equal(copyouts, 2);
	fs_drop(a);
	fs_drop(b);
	fs_teardown(f);
}

static void test_origin_write_waits_for_read_lock(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	uint32_t snap = mksnap(f, "s1", 0);
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	struct conn *r = fs_conn(f, PROTO_VOL_SNAPSHOT, snap);
	struct proto_msg m;

	/* The reader learns chunk 5 is on the origin: a read lock.  */
	fs_send_range(r, PROTO_SNAP_READ, 1, 5, 1);
	fs_reply(r, PROTO_SNAP_READ, 1, 0, &m);
	assert_int_equal(m.u.extents.n, 1);
	assert_int_equal(m.u.extents.e[0].where, PROTO_AT_ORIGIN);
	proto_msg_free(&m);
	assert_int_equal(chunkset_get(&f->s.locks, 5), 1);

	/* The origin write copies chunk 5 out but may not be answered while
	 * the reader may still be reading it from the origin.  */
	fs_send_range(o, PROTO_ORIGIN_WRITE, 2, 5, 1);
	fs_settle(f);
	fs_expect_nothing(o);
	assert_int_equal(f->s.waiting.n, 1);
	fs_check_copied(f, snap, 5);

	fs_send_range(r, PROTO_SNAP_READ_DONE, 3, 5, 1);
	fs_expect(r, PROTO_SNAP_READ_DONE, 3, 0);
	fs_settle(f);
	fs_expect(o, PROTO_ORIGIN_WRITE, 2, 0);
	assert_int_equal(chunkset_get(&f->s.locks, 5), 0);
	fs_drop(o);
	fs_drop(r);
	fs_teardown(f);
}

static void test_lock_upload_stale(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	uint32_t snap = mksnap(f, "s1", 0);
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);

	/* Chunk 20 is copied out (as after a takeover, the lock's holder
	 * was away when the write was answered).  */
	fs_send_range(o, PROTO_ORIGIN_WRITE, 1, 20, 1);
	fs_settle(f);
	fs_expect(o, PROTO_ORIGIN_WRITE, 1, 0);

	struct conn *r = fs_conn(f, PROTO_VOL_SNAPSHOT, snap);
	/* 19..21 includes the copied chunk: refused whole, nothing taken. */
	fs_send_range(r, PROTO_LOCK_UPLOAD, 2, 19, 3);
	fs_expect(r, PROTO_LOCK_UPLOAD, 2, PROTO_STATUS_LOCK_STALE);
	assert_int_equal(f->s.locks.used, 0);
	assert_int_equal(dp_locks_refused(&f->s), 1);
	/* 30..31 are still on the origin: taken, and they hold writers.  */
	fs_send_range(r, PROTO_LOCK_UPLOAD, 3, 30, 2);
	fs_expect(r, PROTO_LOCK_UPLOAD, 3, 0);
	assert_int_equal(chunkset_get(&f->s.locks, 30), 1);
	assert_int_equal(chunkset_get(&f->s.locks, 31), 1);
	fs_send_range(o, PROTO_ORIGIN_WRITE, 4, 31, 1);
	fs_settle(f);
	fs_expect_nothing(o);
	/* The reader goes away (no grace period here): the locks go too. */
	fs_drop(r);
	fs_settle(f);
	fs_expect(o, PROTO_ORIGIN_WRITE, 4, 0);
	fs_check_copied(f, snap, 31);
	fs_drop(o);
	fs_teardown(f);
}

static void test_snap_write_invalidates(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	uint32_t s1 = mksnap(f, "s1", 0);
	uint32_t s2 = mksnap(f, "s2", 0);
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	struct conn *w = fs_conn(f, PROTO_VOL_SNAPSHOT, s1);
	struct conn *rd = fs_conn(f, PROTO_VOL_SNAPSHOT, s1);
	struct proto_msg m;

	/* One copy-out of chunk 4, shared by s1 and s2.  */
	fs_send_range(o, PROTO_ORIGIN_WRITE, 1, 4, 1);
	fs_settle(f);
	fs_expect(o, PROTO_ORIGIN_WRITE, 1, 0);
	chunk_t shared, c2;
	TU_OK(store_snapshot_read(f->s.st, s1, 4, 1, &shared));
	TU_OK(store_snapshot_read(f->s.st, s2, 4, 1, &c2));
	assert_true(shared != STORE_ON_ORIGIN && shared == c2);
	/* The reader caches where chunk 4 of s1 lives.  */
	fs_send_range(rd, PROTO_SNAP_READ, 2, 4, 1);
	fs_reply(rd, PROTO_SNAP_READ, 2, 0, &m);
	assert_int_equal(m.u.extents.e[0].where, PROTO_AT_STORE);
	assert_int_equal(m.u.extents.e[0].store_chunk, shared);
	proto_msg_free(&m);
	/* The writer gets a chunk of its own (copied from the shared one);
	 * the reader is told to forget the old place first.  */
	fs_send_range(w, PROTO_SNAP_WRITE, 3, 4, 1);
	fs_settle(f);
	fs_expect_nothing(w);
	uint64_t inv = 0;
	assert_true(fs_recv(rd, &m));
	assert_int_equal(m.type, PROTO_INVALIDATE);
	assert_int_equal(m.u.ranges.n, 1);
	assert_int_equal(m.u.ranges.r[0].start, 4);
	inv = m.id;
	proto_msg_free(&m);
	fs_settle(f);
	fs_expect_nothing(w);
	proto_msg_init(&m, PROTO_INVALIDATE | PROTO_REPLY, inv);
	fs_send(rd, &m);
	fs_settle(f);
	fs_reply(w, PROTO_SNAP_WRITE, 3, 0, &m);
	assert_int_equal(m.u.extents.e[0].where, PROTO_AT_STORE);
	chunk_t own = m.u.extents.e[0].store_chunk;
	proto_msg_free(&m);
	assert_true(own != shared);
	TU_OK(store_snapshot_read(f->s.st, s1, 4, 1, &c2));
	assert_true(c2 == own);
	TU_OK(store_snapshot_read(f->s.st, s2, 4, 1, &c2));
	assert_true(c2 == shared);
	fs_check_copied(f, s1, 4);	/* the old data came along */
	fs_check_copied(f, s2, 4);
	fs_drop(o);
	fs_drop(w);
	fs_drop(rd);
	fs_teardown(f);
}

/* Origin writes of WANT chunks from chunk 0, one message each, until one
 * is refused; returns its status, *done the chunks answered.  */
static uint32_t fill(struct fake_srv *f, struct conn *o, uint64_t want, uint64_t *done)
{
	struct proto_msg m;

	for (uint64_t i = 0; i < want; i++) {
		fs_send_range(o, PROTO_ORIGIN_WRITE, 100 + i, i, 1);
		fs_settle(f);
		if (!fs_recv(o, &m))
			fail_msg("origin write of chunk %llu not answered", (unsigned long long)i);
		assert_int_equal(m.type, PROTO_ORIGIN_WRITE | PROTO_REPLY);
		uint32_t st = m.status;
		proto_msg_free(&m);
		if (st) {
			*done = i;
			return st;
		}
	}
	*done = want;
	return 0;
}

static void test_store_full_fail(void **state)
{
	(void)state;
	/* 6 MiB of store (4 for leases) for a 16 MiB origin: it runs out.  */
	struct fake_srv *f = fs_setup(6, 4096, STORE_FULL_FAIL);
	uint32_t snap = mksnap(f, "s1", 0);
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	uint64_t done;

	assert_int_equal(fill(f, o, 4096, &done), ENOSPC);
	assert_true(done > 0 && done < 4096);
	/* Policy fail: the snapshot is kept, whole.  */
	struct store_snapshot sn;
	TU_OK(store_snapshot_get(f->s.st, snap, &sn));
	assert_true(sn.flags & STORE_SNAP_LIVE);
	fs_check_copied(f, snap, done - 1);
	fs_drop(o);
	fs_teardown(f);
}

static void test_store_full_release(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(6, 4096, STORE_FULL_RELEASE);
	uint32_t keep = mksnap(f, "keep", 9);
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	/* A client on "keep": it is never the victim... */
	struct conn *r = fs_conn(f, PROTO_VOL_SNAPSHOT, keep);
	uint64_t done;

	/* ...so with it the only snapshot the writes fail.  */
	assert_int_equal(fill(f, o, 4096, &done), ENOSPC);
	fs_drop(r);
	/* Now "keep" may go: the policy releases it and writes succeed.  */
	fs_send_range(o, PROTO_ORIGIN_WRITE, 9000, done, 1);
	fs_settle(f);
	fs_expect(o, PROTO_ORIGIN_WRITE, 9000, 0);
	struct store_snapshot sn;
	assert_true(store_snapshot_get(f->s.st, keep, &sn) < 0 || !(sn.flags & STORE_SNAP_LIVE));
	fs_drop(o);
	fs_teardown(f);
}

/* Ends loop turns (reaping copy-outs) until a pipelined commit is in
 * flight.  */
static void until_flight(struct fake_srv *f)
{
	struct srv *s = &f->s;
	for (int i = 0; i < 1000 && !srv_commit_inflight(s); i++) {
		srv_turn_end(s);
		if (!srv_commit_inflight(s) && copy_pending(s) && io_engine_reap(s->eng, 1000) < 0)
			fail_msg("ioengine: %s", err_get());
	}
	assert_true(srv_commit_inflight(s));
}

/* Index of the first recorded entry from FROM that is OP (within the
 * journal area when JOURNAL), or the count if none.  */
static size_t log_find(struct io_log *log, size_t from, enum io_log_op op, const struct srv *s,
		       bool journal)
{
	const struct csnap_sb_engine *e = &s->info.sb.engine;
	uint64_t js = e->journal_start * 4096, je = (e->journal_start + e->journal_blocks) * 4096;
	size_t n = io_log_count(log);
	for (size_t i = from; i < n; i++) {
		const struct io_log_entry *x = io_log_get(log, i);
		if (x->op == op && (op == IO_LOG_FLUSH || journal == (x->off >= js && x->off < je)))
			return i;
	}
	return n;
}

static void test_origin_write_pipelined(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	struct srv *s = &f->s;
	uint32_t snap = mksnap(f, "s1", 0);
	struct conn *a = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	struct conn *b = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	struct io_log *log = io_log_new();

	s->pipeline = true;
	io_dev_set_log(s->sdev, log);
	fs_send_range(a, PROTO_ORIGIN_WRITE, 1, 10, 2);
	until_flight(f);
	/* A's copy-outs are on the store, its commit in flight: no answer */
	fs_expect_nothing(a);
	assert_true(store_commit_inflight(s->st) && !store_txn_pending(s->st));
	assert_true(chunkset_get(&s->busy, 10) && chunkset_get(&s->busy, 11));
	/* B: a fresh chunk, copied out into the next transaction at once
	 * (the overlap), and a chunk of the flight, which waits for it */
	fs_send_range(b, PROTO_ORIGIN_WRITE, 2, 40, 1);
	fs_send_range(b, PROTO_ORIGIN_WRITE, 3, 11, 1);
	srv_turn_end(s);
	/* (the flight's completions run only when the test reaps them) */
	assert_true(srv_commit_inflight(s));
	assert_true(store_txn_pending(s->st));	/* chunk 40's exception */
	assert_true(chunkset_get(&s->busy, 40) && copy_pending(s));
	fs_expect_nothing(b);
	/* Every reply to A comes after its commit's journal flush, which
	 * comes after the flush of its copied data.  */
	size_t at_reply = 0;
	for (int i = 0; i < 1000 && !at_reply; i++) {
		if (srv_commit_inflight(s) || copy_pending(s))
			if (io_engine_reap(s->eng, 1000) < 0)
				fail_msg("ioengine: %s", err_get());
		srv_turn_end(s);
		if (a->out.off != a->out.len)
			at_reply = io_log_count(log);
	}
	assert_true(at_reply > 0);
	size_t copyw = log_find(log, 0, IO_LOG_WRITE, s, false);
	size_t f1 = log_find(log, copyw, IO_LOG_FLUSH, s, false);
	size_t jw = log_find(log, f1, IO_LOG_WRITE, s, true);
	size_t f2 = log_find(log, jw, IO_LOG_FLUSH, s, false);
	assert_true(copyw < f1 && f1 < jw && jw < f2 && f2 < at_reply);
	fs_expect(a, PROTO_ORIGIN_WRITE, 1, 0);
	fs_settle(f);
	/* chunk 11 with the flight, chunk 40 with the next commit */
	fs_expect(b, PROTO_ORIGIN_WRITE, 3, 0);
	fs_expect(b, PROTO_ORIGIN_WRITE, 2, 0);
	assert_int_equal(s->busy.used, 0);
	assert_true(s->stat_pipelined >= 2);
	fs_check_copied(f, snap, 10);
	fs_check_copied(f, snap, 11);
	fs_check_copied(f, snap, 40);
	/* A plain commit (an admin change) waits for a flight in progress */
	fs_send_range(a, PROTO_ORIGIN_WRITE, 4, 50, 1);
	until_flight(f);
	TU_OK(srv_commit_now(s));
	assert_false(srv_commit_inflight(s) || store_commit_inflight(s->st));
	fs_settle(f);
	fs_expect(a, PROTO_ORIGIN_WRITE, 4, 0);
	/* So does `csnap resize` (a superblock write; it was refused with
	 * "a commit is in flight" in a loaded make check) */
	fs_send_range(a, PROTO_ORIGIN_WRITE, 5, 60, 1);
	until_flight(f);
	struct conn *adm = fs_conn(f, PROTO_VOL_ADMIN, 0);
	struct proto_msg rm;
	proto_msg_init(&rm, PROTO_ORIGIN_RESIZE, 6);
	fs_send(adm, &rm);
	fs_expect(adm, PROTO_ORIGIN_RESIZE, 6, 0);
	fs_settle(f);
	fs_expect(a, PROTO_ORIGIN_WRITE, 5, 0);
	fs_drop(adm);
	io_dev_set_log(s->sdev, NULL);
	io_log_free(log);
	fs_drop(a);
	fs_drop(b);
	fs_teardown(f);
}

/* The flush of a pipelined commit fails: nothing is answered, the server
 * stops, and the store opens again at the last durable transaction. */
static void test_pipelined_flush_fails(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	struct srv *s = &f->s;
	uint32_t snap = mksnap(f, "s1", 0);
	struct conn *a = fs_conn(f, PROTO_VOL_ORIGIN, 0);

	s->pipeline = true;
	/* the copy-out's own write goes through; the data flush fails */
	io_dev_inject_fault(s->sdev, IO_FAULT_FLUSH, 0, 0, EIO);
	fs_send_range(a, PROTO_ORIGIN_WRITE, 1, 10, 1);
	for (int i = 0; i < 100 && !s->fatal; i++) {
		srv_turn_end(s);
		if ((copy_pending(s) || srv_commit_inflight(s)) && io_engine_reap(s->eng, 1000) < 0)
			fail_msg("ioengine: %s", err_get());
	}
	assert_true(s->fatal);
	assert_false(srv_commit_inflight(s));
	fs_expect_nothing(a);
	io_dev_clear_faults(s->sdev);
	/* the fatal stop: no checkpoint, the next opener replays */
	fs_drop(a);
	struct req *r;
	while ((r = req_list_pop(&s->waiting)))
		srv_req_done(s, r);
	admin_shutdown(s);
	store_close_nockpt(s->st);
	s->st = NULL;
	struct store *st;
	TU_OK(store_open(f->store_path, NULL, &st));
	chunk_t where;
	TU_OK(store_snapshot_read(st, snap, 10, 1, &where));
	assert_true(where == STORE_ON_ORIGIN);	/* the exception was never durable */
	store_close(st);
	fs_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_origin_write_busy),
		cmocka_unit_test(test_origin_write_waits_for_read_lock),
		cmocka_unit_test(test_lock_upload_stale),
		cmocka_unit_test(test_snap_write_invalidates),
		cmocka_unit_test(test_store_full_fail),
		cmocka_unit_test(test_store_full_release),
		cmocka_unit_test(test_origin_write_pipelined),
		cmocka_unit_test(test_pipelined_flush_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
