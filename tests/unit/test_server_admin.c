/*
 * tests/unit/test_server_admin.c - the snapshot barrier (src/server/admin.c)
 * and the routing table (src/server/route.c), driven with fake connections
 * (tests/unit/server_fake.h) against the real store engine:
 *  - SNAP_CREATE sends BARRIER to every origin client, holds origin
 *    writes until all acked, commits, sends SNAP_ADDED, answers the
 *    creator only once every origin client acked that, and the held
 *    write is then answered with the new snapshot copied out;
 *  - an origin client that goes away during the barrier while its grant
 *    may still run delays the snapshot until that grant has expired;
 *  - an origin client closed while SNAP_ADDED is being sent (its output
 *    over the limit) does not make the creator's answer skip the others;
 *  - what a volume may not send is refused (EPERM), what no client may
 *    send closes the connection, admin requests come from any volume;
 *  - a create answered only after a late commit (lease renewal late) is
 *    refused, not confirmed, when a copy-out failure throws its
 *    transaction away;
 *  - a snapshot of a snapshot (SNAP_CREATE --from): refused while the
 *    parent has a client that used it, then walked without a barrier; a
 *    write to the parent arriving before the walk is done waits and is
 *    answered after it, unsharing the chunk, while the clone keeps the
 *    old content; a walk left by a previous master is resumed and a retry
 *    of its create (same request id) is answered when it is done;
 *  - the orderly stop's close writes nothing to the store once the lease
 *    may no longer allow commits (the journal keeps every commit), and
 *    checkpoints while it does.
 */
#include "tests/unit/server_fake.h"

#include "utils/clock.h"

#include <sanlock.h>
#include <sanlock_admin.h>
#include <sanlock_resource.h>

/* sanlock as the lease check sees it while renewal is late: the lease is
 * still ours, but our host status cannot be read right now (a shortage,
 * which srv_lease_check() does not take for a lost lease).  The lease is
 * asked about only once lease_may_commit() refused (the test made the
 * lease's validity run out).  */
int sanlock_inquire(int sock, int pid, uint32_t flags, int *res_count, char **res_state)
{
	(void)sock;
	(void)pid;
	(void)flags;
	*res_count = 1;
	*res_state = NULL;
	return 0;
}

int sanlock_get_hosts(const char *ls_name, uint64_t host_id, struct sanlk_host **hss,
		      int *hss_count, uint32_t flags)
{
	(void)ls_name;
	(void)host_id;
	(void)flags;
	*hss = NULL;
	*hss_count = 0;
	return -EMFILE;
}

static void send_create(struct conn *c, uint64_t id, const char *name)
{
	struct proto_msg m;

	proto_msg_init(&m, PROTO_SNAP_CREATE, id);
	snprintf(m.u.snap_create.name, sizeof m.u.snap_create.name, "%s", name);
	fs_send(c, &m);
}

static bool has_snapshot(struct fake_srv *f, const char *name, uint32_t *id)
{
	struct store_snapshot sn;

	if (store_snapshot_find(f->s.st, name, &sn) < 0 || !(sn.flags & STORE_SNAP_LIVE))
		return false;
	*id = sn.id;
	return true;
}

static void send_clone(struct conn *c, uint64_t id, const char *name, const char *from,
		       uint8_t req)
{
	struct proto_msg m;

	proto_msg_init(&m, PROTO_SNAP_CREATE, id);
	m.flags = PROTO_F_FROM | PROTO_F_REQ_ID;
	snprintf(m.u.snap_create.name, sizeof m.u.snap_create.name, "%s", name);
	snprintf(m.u.snap_create.from, sizeof m.u.snap_create.from, "%s", from);
	memset(m.u.snap_create.req_id, req, PROTO_REQ_ID_LEN);
	fs_send(c, &m);
}

/* A fake server with an admin client and two origin clients (O2 first
 * in the server's list: connections are added at its head).  */
static struct fake_srv *setup_two_origins(struct conn **adm, struct conn **o1, struct conn **o2)
{
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);

	*adm = fs_conn(f, PROTO_VOL_ADMIN, 0);
	*o1 = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	*o2 = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	return f;
}

/* A snapshot s1 of the origin with chunks 0..9 copied out; returns its id. */
static uint32_t snapshot_with_copies(struct fake_srv *f, struct conn *adm, struct conn *o1)
{
	uint32_t snap = 0;

	send_create(adm, 1, "s1");
	fs_ack(o1, PROTO_BARRIER, fs_expect_request(o1, PROTO_BARRIER));
	fs_settle(f);
	fs_ack(o1, PROTO_SNAP_ADDED, fs_expect_request(o1, PROTO_SNAP_ADDED));
	fs_settle(f);
	fs_expect(adm, PROTO_SNAP_CREATE, 1, 0);
	assert_true(has_snapshot(f, "s1", &snap));
	fs_send_range(o1, PROTO_ORIGIN_WRITE, 2, 0, 10);
	fs_settle(f);
	fs_expect(o1, PROTO_ORIGIN_WRITE, 2, 0);
	return snap;
}

static void test_clone(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	struct conn *adm = fs_conn(f, PROTO_VOL_ADMIN, 0);
	struct conn *o1 = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	uint32_t s1 = snapshot_with_copies(f, adm, o1), c1 = 0;
	struct conn *w = fs_conn(f, PROTO_VOL_SNAPSHOT, s1);	/* used: not passive */
	chunk_t before, after;

	/* Refused while a client uses the parent (it may cache s1's own
	 * chunks and write them in place), one line, nothing changed.  */
	send_clone(adm, 3, "c1", "s1", 0x11);
	fs_expect(adm, PROTO_SNAP_CREATE, 3, EBUSY);
	assert_int_equal(store_clone_pending(f->s.st, NULL), 0);
	send_clone(adm, 4, "c1", "nosuch", 0x12);
	fs_expect(adm, PROTO_SNAP_CREATE, 4, ENOENT);
	w->passive = true;	/* as a fresh export connection is */
	TU_OK(store_snapshot_read(f->s.st, s1, 3, 1, &before));

	/* Started at once, no barrier; the walk runs in the loop's turns. */
	send_clone(adm, 5, "c1", "s1", 0x13);
	uint32_t parent;
	c1 = store_clone_pending(f->s.st, &parent);
	assert_true(c1 != 0 && parent == s1);
	fs_expect_nothing(o1);
	/* A write to s1 meanwhile waits (its content must stay put).  */
	fs_send_range(w, PROTO_SNAP_WRITE, 6, 3, 1);
	fs_expect_nothing(w);
	fs_settle(f);
	assert_int_equal(store_clone_pending(f->s.st, NULL), 0);
	/* Every export is told, the creator answered once they acked.  */
	fs_expect_nothing(adm);
	fs_ack(o1, PROTO_SNAP_ADDED, fs_expect_request(o1, PROTO_SNAP_ADDED));
	fs_settle(f);
	fs_expect(adm, PROTO_SNAP_CREATE, 5, 0);
	fs_expect(w, PROTO_SNAP_WRITE, 6, 0);
	/* The write moved s1's chunk 3; c1 keeps the old one.  */
	TU_OK(store_snapshot_read(f->s.st, s1, 3, 1, &after));
	assert_true(after != before);
	TU_OK(store_snapshot_read(f->s.st, c1, 3, 1, &after));
	assert_true(after == before);
	fs_check_copied(f, c1, 3);
	fs_check_copied(f, c1, 7);

	/* A walk left by a previous master (begun, committed, not stepped)
	 * is resumed, and a retry of its create is answered when done.  */
	uint8_t req[PROTO_REQ_ID_LEN];
	uint32_t c2;
	memset(req, 0x21, sizeof req);
	TU_OK(store_snapshot_clone(f->s.st, "c2", c1, 0, req, &c2));
	TU_OK(store_commit(f->s.st));
	send_clone(adm, 7, "c3", "c1", 0x22);	/* another: waits its turn */
	send_clone(adm, 8, "c2", "c1", 0x21);	/* the retry: adopted */
	fs_settle(f);
	assert_int_equal(store_clone_pending(f->s.st, NULL), 0);
	fs_ack(o1, PROTO_SNAP_ADDED, fs_expect_request(o1, PROTO_SNAP_ADDED));
	fs_settle(f);
	fs_expect(adm, PROTO_SNAP_CREATE, 8, 0);
	/* then c3 ran */
	fs_ack(o1, PROTO_SNAP_ADDED, fs_expect_request(o1, PROTO_SNAP_ADDED));
	fs_settle(f);
	fs_expect(adm, PROTO_SNAP_CREATE, 7, 0);
	uint32_t c3 = 0;
	assert_true(has_snapshot(f, "c2", &c2) && has_snapshot(f, "c3", &c3));
	fs_check_copied(f, c2, 7);
	fs_check_copied(f, c3, 7);
	fs_drop(w);
	fs_drop(o1);
	fs_drop(adm);
	fs_teardown(f);
}

static void test_barrier(void **state)
{
	(void)state;
	struct conn *adm, *o1, *o2;
	struct fake_srv *f = setup_two_origins(&adm, &o1, &o2);
	uint32_t snap = 0;

	send_create(adm, 1, "s1");
	uint64_t b1 = fs_expect_request(o1, PROTO_BARRIER);
	uint64_t b2 = fs_expect_request(o2, PROTO_BARRIER);
	assert_true(admin_barrier_active(&f->s));
	/* An origin write during the barrier is held.  */
	fs_send_range(o1, PROTO_ORIGIN_WRITE, 5, 3, 1);
	fs_settle(f);
	fs_expect_nothing(o1);
	/* One ack is not enough.  */
	fs_ack(o1, PROTO_BARRIER, b1);
	fs_settle(f);
	assert_false(has_snapshot(f, "s1", &snap));
	fs_expect_nothing(o1);
	/* A stale ack (wrong barrier) counts for nothing.  */
	fs_ack(o2, PROTO_BARRIER, b2 + 100);
	fs_settle(f);
	assert_false(has_snapshot(f, "s1", &snap));
	fs_ack(o2, PROTO_BARRIER, b2);
	fs_settle(f);
	assert_true(has_snapshot(f, "s1", &snap));
	assert_false(admin_barrier_active(&f->s));
	/* Every export is told, and the creator waits for them.  */
	uint64_t a1 = fs_expect_request(o1, PROTO_SNAP_ADDED);
	uint64_t a2 = fs_expect_request(o2, PROTO_SNAP_ADDED);
	fs_expect_nothing(adm);
	/* The held write saw the new snapshot: its chunk was copied.  */
	fs_expect(o1, PROTO_ORIGIN_WRITE, 5, 0);
	fs_check_copied(f, snap, 3);
	fs_ack(o1, PROTO_SNAP_ADDED, a1);
	fs_settle(f);
	fs_expect_nothing(adm);
	fs_ack(o2, PROTO_SNAP_ADDED, a2);
	fs_settle(f);
	struct proto_msg m;
	fs_reply(adm, PROTO_SNAP_CREATE, 1, 0, &m);
	assert_string_equal(m.u.snapinfo.name, "s1");
	assert_int_equal(m.u.snapinfo.id, snap);
	proto_msg_free(&m);
	fs_drop(adm);
	fs_drop(o1);
	fs_drop(o2);
	fs_teardown(f);
}

static void test_barrier_departed_client_grant(void **state)
{
	(void)state;
	struct conn *adm, *o1, *o2;
	struct fake_srv *f = setup_two_origins(&adm, &o1, &o2);
	uint32_t snap = 0;

	/* O2 holds a grant: it was told chunk 9 is unique to write.  */
	int64_t before = csnap_now_ms();
	fs_send_range(o2, PROTO_ORIGIN_WRITE, 1, 9, 1);
	fs_expect(o2, PROTO_ORIGIN_WRITE, 1, 0);
	send_create(adm, 2, "s1");
	uint64_t b1 = fs_expect_request(o1, PROTO_BARRIER);
	(void)fs_expect_request(o2, PROTO_BARRIER);
	fs_ack(o1, PROTO_BARRIER, b1);
	/* O2 goes away without acking; it may still write chunk 9 until
	 * its grant runs out, so no snapshot before then.  */
	fs_drop(o2);
	fs_settle(f);
	assert_false(has_snapshot(f, "s1", &snap));
	int64_t due = admin_due_ms(&f->s);
	assert_true(due >= before + PROTO_GRANT_WAIT_MS);
	assert_true(due <= csnap_now_ms() + PROTO_GRANT_WAIT_MS);
	/* Created by the first loop turn at or after DUE, not before.  */
	for (;;) {
		fs_settle(f);
		if (has_snapshot(f, "s1", &snap)) {
			assert_true(csnap_now_ms() >= due);
			break;
		}
		assert_true(csnap_now_ms() < due + 10000);	/* bounded */
		usleep(20000);
	}
	(void)fs_expect_request(o1, PROTO_SNAP_ADDED);
	fs_drop(o1);	/* not waited for once gone */
	fs_settle(f);
	fs_expect(adm, PROTO_SNAP_CREATE, 2, 0);
	fs_drop(adm);
	fs_teardown(f);
}

static void test_added_close_while_sending(void **state)
{
	(void)state;
	struct conn *adm, *o1, *o2;	/* o2 first in the list */
	struct fake_srv *f = setup_two_origins(&adm, &o1, &o2);
	uint32_t snap = 0;

	send_create(adm, 1, "s1");
	fs_ack(o1, PROTO_BARRIER, fs_expect_request(o1, PROTO_BARRIER));
	fs_ack(o2, PROTO_BARRIER, fs_expect_request(o2, PROTO_BARRIER));
	f->close_on = o2;
	f->close_on_type = PROTO_SNAP_ADDED;
	fs_settle(f);
	assert_true(has_snapshot(f, "s1", &snap));
	assert_true(o2->dead);
	/* O1 was told too, and the creator waits for it.  */
	uint64_t a1 = fs_expect_request(o1, PROTO_SNAP_ADDED);
	fs_expect_nothing(adm);
	fs_ack(o1, PROTO_SNAP_ADDED, a1);
	fs_settle(f);
	fs_expect(adm, PROTO_SNAP_CREATE, 1, 0);
	conn_put(o2);
	fs_drop(o1);
	fs_drop(adm);
	fs_teardown(f);
}

static void test_routing(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	struct conn *o = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	struct conn *adm = fs_conn(f, PROTO_VOL_ADMIN, 0);
	struct proto_msg m;

	/* Known requests from the wrong volume: EPERM, connection kept. */
	fs_send_range(o, PROTO_SNAP_READ, 1, 0, 1);
	fs_expect(o, PROTO_SNAP_READ, 1, EPERM);
	fs_send_range(adm, PROTO_ORIGIN_WRITE, 2, 0, 1);
	fs_expect(adm, PROTO_ORIGIN_WRITE, 2, EPERM);
	proto_msg_init(&m, PROTO_PING, 3);
	fs_send(adm, &m);
	fs_expect(adm, PROTO_PING, 3, EPERM);
	assert_int_equal(f->s.locks.used, 0);
	assert_int_equal(f->fails, 0);
	/* Admin requests from a data volume are allowed.  */
	proto_msg_init(&m, PROTO_STATUS, 4);
	fs_send(o, &m);
	fs_expect(o, PROTO_STATUS, 4, 0);
	proto_msg_init(&m, PROTO_PING, 5);
	fs_send(o, &m);
	fs_expect(o, PROTO_PING, 5, 0);
	/* An ack nobody waits for from the wrong volume, a server-to-client
	 * message, a handshake message: protocol errors, connection closed. */
	fs_ack(adm, PROTO_BARRIER, 1);
	assert_true(adm->dead);
	assert_int_equal(f->fails, 1);
	conn_put(adm);
	proto_msg_init(&m, PROTO_INVALIDATE, 6);
	struct proto_range r = { 0, 1 };
	m.u.ranges.n = 1;
	m.u.ranges.r = &r;
	fs_send(o, &m);
	assert_true(o->dead);
	assert_int_equal(f->fails, 2);
	conn_put(o);
	struct conn *o3 = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	proto_msg_init(&m, PROTO_AUTH, 7);	/* not decodable empty: handed over directly */
	route_message(o3, &m);
	assert_true(o3->dead);
	assert_int_equal(f->fails, 3);
	conn_put(o3);
	fs_teardown(f);
}

/* STATUS lists at most PROTO_MAX_CLIENTS clients, but 4,096 entries of
 * the longest name do not fit in one message: the reply must still be
 * sent (the list cut to what fits), not dropped with the connection.  */
static void test_status_many_long_names(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	struct conn *cs[PROTO_MAX_CLIENTS];
	struct proto_msg m;

	for (unsigned i = 0; i < PROTO_MAX_CLIENTS; i++) {
		cs[i] = fs_conn(f, PROTO_VOL_ADMIN, 0);
		memset(cs[i]->name, 'n', PROTO_STR_MAX);
		cs[i]->name[PROTO_STR_MAX] = 0;
	}
	proto_msg_init(&m, PROTO_STATUS, 1);
	fs_send(cs[0], &m);
	assert_false(cs[0]->dead);
	fs_reply(cs[0], PROTO_STATUS, 1, 0, &m);
	assert_true(m.u.status.nclients > 3000);
	assert_true(m.u.status.nclients < PROTO_MAX_CLIENTS);
	assert_int_equal(strlen(m.u.status.clients[0].name), PROTO_STR_MAX);
	proto_msg_free(&m);
	for (unsigned i = 0; i < PROTO_MAX_CLIENTS; i++)
		fs_drop(cs[i]);
	fs_teardown(f);
}

/* The creator must never be told "created" for a snapshot that is not
 * there.  The lease renewal is late, so the create's commit waits and its
 * reply is queued for after the commit; meanwhile an origin write's
 * copy-out fails, which throws the open transaction (the snapshot
 * included) away.  The creator must get an error.  */
static void test_create_late_commit_discarded(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	struct srv *s = &f->s;
	struct conn *adm = fs_conn(f, PROTO_VOL_ADMIN, 0);
	uint32_t snap;

	s->lm.valid_until_ns = 0;	/* renewal late: commits wait */
	send_create(adm, 1, "late");
	for (int i = 0; i < 3; i++)
		srv_turn_end(s);
	fs_expect_nothing(adm);
	assert_true(store_txn_pending(s->st));
	assert_true(s->after_commit.n == 1);

	/* An origin write copies chunk 3 out for "late"; the copy fails.  */
	struct conn *o1 = fs_conn(f, PROTO_VOL_ORIGIN, 0);
	io_dev_inject_fault(s->sdev, IO_FAULT_WRITE, 0, 0, EIO);
	fs_send_range(o1, PROTO_ORIGIN_WRITE, 7, 3, 1);
	for (int i = 0; i < 10; i++) {
		srv_turn_end(s);
		if (copy_pending(s))
			TU_OK(io_engine_reap(s->eng, 1000));
	}
	assert_false(copy_pending(s));
	assert_true(copy_failed(s));
	/* Discarding reopens the engine, which writes metadata home: not
	 * while the lease is late.  */
	assert_true(store_txn_pending(s->st));
	fs_expect_nothing(o1);
	fs_expect_nothing(adm);

	/* The lease is renewed: the transaction is thrown away.  */
	s->lm.valid_until_ns = INT64_MAX;
	fs_settle(f);
	fs_expect(o1, PROTO_ORIGIN_WRITE, 7, EIO);
	assert_false(has_snapshot(f, "late", &snap));
	fs_expect(adm, PROTO_SNAP_CREATE, 1, EIO);
	fs_expect_nothing(adm);
	fs_drop(adm);
	fs_drop(o1);
	fs_teardown(f);
}

/* The whole store file.  */
static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	long n = ftell(fp);
	assert_true(n > 0);
	rewind(fp);
	uint8_t *b = malloc((size_t)n);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return b;
}

/* Closes the fake server's store as the orderly stop does, with the lease
 * valid or not; says whether the store file changed.  */
static bool close_changes_store(struct fake_srv *f, bool lease_valid)
{
	struct srv *s = &f->s;
	size_t n0, n1;

	uint8_t *before = slurp(f->store_path, &n0);
	s->lm.valid_until_ns = lease_valid ? INT64_MAX : 0;
	srv_close_store(s);
	assert_null(s->st);
	uint8_t *after = slurp(f->store_path, &n1);
	assert_int_equal(n0, n1);
	bool changed = memcmp(before, after, n0) != 0;
	free(before);
	free(after);
	s->lm.valid_until_ns = INT64_MAX;
	TU_OK(store_open(f->store_path, NULL, &s->st));
	s->sdev = store_dev(s->st);
	store_get_info(s->st, &s->info);
	return changed;
}

/* A master paused between its drain and its close until the lease may
 * have moved must not write its (older) metadata home over a successor's
 * blocks: with the lease expired the close writes nothing, and the
 * committed snapshot is still there after a replay.  With the lease
 * valid the close checkpoints (the control: the comparison can fail).  */
static void test_close_store_lease(void **state)
{
	(void)state;
	struct fake_srv *f = fs_setup(16, 256, STORE_FULL_FAIL);
	struct srv *s = &f->s;
	uint32_t id, found;

	TU_OK(store_snapshot_create(s->st, "paused", 0, &id));
	TU_OK(srv_commit_now(s));
	assert_false(close_changes_store(f, false));
	assert_true(has_snapshot(f, "paused", &found));
	assert_int_equal(found, id);

	TU_OK(store_snapshot_create(s->st, "valid", 0, &id));
	TU_OK(srv_commit_now(s));
	assert_true(close_changes_store(f, true));
	assert_true(has_snapshot(f, "valid", &found));
	assert_int_equal(found, id);
	fs_teardown(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_barrier),
		cmocka_unit_test(test_barrier_departed_client_grant),
		cmocka_unit_test(test_added_close_while_sending),
		cmocka_unit_test(test_routing),
		cmocka_unit_test(test_clone),
		cmocka_unit_test(test_status_many_long_names),
		cmocka_unit_test(test_create_late_commit_discarded),
		cmocka_unit_test(test_close_store_lease),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
