/*
 * src/server/admin.c - snapshot creation: SNAP_CREATE with the
 * cluster-wide barrier (which a rollback raises too), SNAP_ADDED to the
 * exports, snapshots of snapshots, and the timer of these; the admin
 * files' state and the helpers they share (admin_int.h).  The other
 * admin requests are in admin_snap.c (delete, set, rename) and
 * admin_query.c (list, status, changed); freeing deleted snapshots and
 * the store-full policy in admin_space.c.
 *
 * Snapshot creation barrier: the master sends BARRIER to every origin
 * client; each drains the origin writes it already started and forgets
 * which chunks it knew to be unshared, then acks.  Meanwhile origin-write
 * queries are held.  When all acked (or were cut off at the timeout) and
 * no copy-out is in flight, the snapshot is created and committed; held
 * queries are then answered against the new snapshot.  So no origin write
 * can slip past a snapshot uncopied.  A client cut off at the timeout (or
 * gone) may not know it yet and still write chunks it was told were
 * unique: the snapshot is committed only after its grant has certainly
 * run out (proto.h, docs/RELIABILITY.md).
 *
 * After the commit every origin client (one per export) is sent
 * SNAP_ADDED and serves the snapshot before it acknowledges; the creator
 * is answered when all did (or 5 s passed), so a snapshot
 * can be opened on every node as soon as `snapshot create` returns.
 *
 * A snapshot of a snapshot (SNAP_CREATE with PROTO_F_FROM) needs no
 * barrier: origin clients' unique chunks are unique for the new snapshot
 * too (it has every exception its parent has).  Its parent must not be in
 * use (no data request on a connection of it, no grant of a cut-off one
 * left), as for delete and rename: a client that wrote the parent caches
 * chunks as its own and would write them in place after they became
 * shared.  The engine's walk (src/store/clone.c) then runs in steps of
 * CLONE_BUDGET exceptions, each committed, whenever no copy-out is in
 * flight (admin_poll); writes to the parent wait meanwhile (datapath.c).
 * A new master resumes a walk it finds, and a retry of the create with
 * the same request id adopts it.  When the walk is done the exports are
 * told (SNAP_ADDED) as for any create, then the creator is answered.
 */
#include "src/server/srv.h"
#include "src/server/admin_int.h"

#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLONE_BUDGET	65536	/* exceptions per walk step of a clone */
/* SNAP_ADDED: an export answers in milliseconds (it only adds a name); one
 * that has not within this is not waited for (it lists the snapshot within
 * a second once it recovers).  */
#define ADDED_WAIT_MS	5000

/* This file's state (struct srv points at it).
 * Invariants: barrier_req is set exactly while barrier_active, and
 * barrier_pending counts the READY origin connections whose barrier_seq
 * is the current barrier_seq; added_req is set exactly while SNAP_ADDED
 * acks are awaited and added_pending counts the connections with a
 * nonzero added_id; a SNAP_CREATE is owned by at most one of
 * barrier_req, added_req and the waiting list.  */
struct admin_state {
	/* barrier (snapshot creation) */
	bool barrier_active;
	uint64_t barrier_seq;
	unsigned barrier_pending;
	int64_t barrier_deadline_ms;
	struct req *barrier_req;	/* the SNAP_CREATE being served */
	bool grant_wait_logged;
	/* a snapshot create waits parked, without raising its barrier (which
	 * holds every origin write), until the grant horizon has passed */
	bool create_deferred;
	/* After the commit: every origin client is told of the new
	 * snapshot and serves it before the creator hears back.  */
	struct req *added_req;		/* the SNAP_CREATE, reply in added_reply */
	struct proto_msg added_reply;
	uint64_t added_seq;
	unsigned added_pending;
	int64_t added_deadline_ms;
	/* the SNAP_CREATE --from whose walk runs (NULL: none, or a walk
	 * resumed after a failover that no retry has adopted yet) */
	struct req *clone_req;
};

int admin_init(struct srv *s)
{
	s->admin = calloc(1, sizeof *s->admin);
	return s->admin ? 0 : -ENOMEM;
}

void admin_free(struct srv *s)
{
	free(s->admin);
	s->admin = NULL;
}

/* The invariants above, counted over the connections (debug build).  */
static void admin_check(const struct srv *s)
{
#ifdef CSNAP_DEBUG
	const struct admin_state *a = s->admin;
	unsigned barrier = 0, added = 0;

	for (const struct conn *c = s->conns; c; c = c->next) {
		if (a->barrier_active && c->barrier_seq && c->barrier_seq == a->barrier_seq)
			barrier++;
		if (c->added_id)
			added++;
	}
	CSNAP_ASSERT(!a->barrier_req == !a->barrier_active);
	CSNAP_ASSERT(barrier == (a->barrier_active ? a->barrier_pending : 0));
	CSNAP_ASSERT(added == (a->added_req ? a->added_pending : 0));
	CSNAP_ASSERT(!a->barrier_req || a->barrier_req != a->added_req);
#else
	(void)s;
#endif
}

bool admin_barrier_active(const struct srv *s)
{
	return s->admin->barrier_active;
}

/* A clone's walk step commits: only with no copy-out in flight, and only
 * once the previous step was committed (a commit held back - the lease's
 * renewal is late - must not let steps pile up in one transaction).  */
static bool clone_can_step(const struct srv *s)
{
	return !copy_pending(s) && !s->busy.used && !copy_failed(s) && !s->fatal && !s->stopping &&
	       !store_txn_pending(s->st);
}

int64_t admin_due_ms(const struct srv *s)
{
	const struct admin_state *a = s->admin;

	if ((a->barrier_active && !a->barrier_pending) || a->create_deferred)
		return grants_horizon(s);
	if (store_clone_pending(s->st, NULL) && clone_can_step(s))
		return csnap_now_ms();	/* the next walk step: no sleep */
	return 0;
}

/* Server stopping: drop the requests this file holds.  */
void admin_shutdown(struct srv *s)
{
	struct admin_state *a = s->admin;

	if (a->barrier_req) {
		srv_req_done(s, a->barrier_req);
		a->barrier_req = NULL;
		a->barrier_active = false;
	}
	if (a->added_req) {
		srv_req_done(s, a->added_req);
		a->added_req = NULL;
	}
	if (a->clone_req) {
		srv_req_done(s, a->clone_req);
		a->clone_req = NULL;
	}
}

/* ---- helpers the admin files share ---------------------------------------- */

void admin_reply_err(struct srv *s, struct req *r, int err, const char *why)
{
	conn_reply_error(r->c, &r->m, err, why);
	srv_req_done(s, r);
}

void admin_fill_snapinfo(const struct store_snapshot *sn, const struct store_usage *u,
			 struct proto_snapinfo *out)
{
	memset(out, 0, sizeof *out);
	out->id = sn->id;
	/* being deleted, or a snapshot of a snapshot still being made */
	out->flags = (sn->flags & (STORE_SNAP_DELETING | STORE_SNAP_CLONING)) ? PROTO_SNAP_BUSY : 0;
	snprintf(out->name, sizeof out->name, "%s", sn->name);
	out->ctime = sn->ctime;
	out->priority = sn->priority;
	out->usecount = sn->usecount;
	if (u && u->known) {
		out->unique_chunks = u->unique;
		out->shared_chunks = u->shared;
	} else if (u) {
		out->flags |= PROTO_SNAP_USAGE_UNKNOWN;
	}
}

/* In use by a client: a snapshot connection that is not passive (an
 * export opening every new snapshot to learn its size does not count
 * until it sends a data request for an NBD client).  */
bool admin_snap_in_use(const struct srv *s, uint32_t id)
{
	for (const struct conn *c = s->conns; c; c = c->next)
		if (c->state == CONN_READY && c->volume == PROTO_VOL_SNAPSHOT &&
		    c->snap_id == id && !c->passive)
			return true;
	return false;
}

bool admin_snap_unused(struct srv *s, struct req *r, uint32_t id, const char *busy_why)
{
	if (admin_snap_in_use(s, id)) {
		admin_reply_err(s, r, EBUSY, busy_why);
		return false;
	}
	if (srv_snap_grants_until(s, id) > csnap_now_ms()) {
		grants_wait(s);
		srv_park(s, r);
		return false;
	}
	return !admin_quiet_or_park(s, r);
}

/* Park until no copy-out is in flight; closes the batch meanwhile.  */
bool admin_quiet_or_park(struct srv *s, struct req *r)
{
	if (!copy_pending(s) && !copy_failed(s) && !s->busy.used)
		return false;
	s->quiesce++;
	srv_park(s, r);
	return true;
}

/* Commit, then reply with M (or the error).  */
void admin_commit_and_reply(struct srv *s, struct req *r, struct proto_msg *m)
{
	int e = srv_commit_now(s);
	if (e == -EAGAIN) {
		srv_reply_after_commit(s, r, m);
	} else if (e < 0) {
		admin_reply_err(s, r, -e, err_get());
	} else {
		conn_send(r->c, m);
		srv_req_done(s, r);
	}
}

/* ---- create + barrier ---------------------------------------------------- */

static void added_conn_gone(struct srv *s, struct conn *c);
static void clone_step(struct srv *s);

static void barrier_start(struct srv *s, struct req *r)
{
	/* One snapshot create at a time: a second one parks.  */
	CSNAP_ASSERT(!s->admin->barrier_active && !s->admin->barrier_req && !s->admin->added_req);
	s->admin->barrier_active = true;
	s->admin->barrier_req = r;
	s->admin->barrier_seq++;
	s->admin->barrier_pending = 0;
	s->admin->barrier_deadline_ms = csnap_now_ms() + s->o.barrier_timeout_ms;
	struct proto_msg m;
	bool rb = r->m.type == PROTO_SNAP_ROLLBACK;
	proto_msg_init(&m, PROTO_BARRIER, s->admin->barrier_seq);
	m.u.barrier.seq = s->admin->barrier_seq;
	if (rb)
		m.flags = PROTO_F_RB_START;	/* origin reads ask from now on */
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->state != CONN_READY || c->volume != PROTO_VOL_ORIGIN || c->dead)
			continue;
		c->barrier_seq = s->admin->barrier_seq;
		s->admin->barrier_pending++;
		conn_send(c, &m);
	}
	log_info("%s %s: barrier %llu sent to %u origin client(s)", rb ? "rollback to" : "snapshot",
		 rb ? r->m.u.snap_name.name : r->m.u.snap_create.name,
		 (unsigned long long)s->admin->barrier_seq, s->admin->barrier_pending);
}

bool admin_barrier_for(struct srv *s, struct req *r)
{
	if (s->admin->barrier_active || s->admin->added_req || s->admin->clone_req) {
		srv_park(s, r);
		return false;
	}
	barrier_start(s, r);
	return true;
}

static void barrier_end(struct srv *s)
{
	s->admin->barrier_active = false;
	s->admin->barrier_req = NULL;
	for (struct conn *c = s->conns; c; c = c->next)
		c->barrier_seq = 0;
	srv_kick(s);
}

void admin_barrier_ack(struct srv *s, struct conn *c, uint64_t seq)
{
	if (!s->admin->barrier_active || c->barrier_seq != seq || seq != s->admin->barrier_seq)
		return;		/* late ack of a barrier that was cut off */
	CSNAP_ASSERT(s->admin->barrier_pending > 0);	/* C was counted in barrier_start */
	c->barrier_seq = 0;
	s->admin->barrier_pending--;
}

void admin_barrier_conn_gone(struct srv *s, struct conn *c)
{
	if (s->admin->barrier_active && c->barrier_seq == s->admin->barrier_seq && c->barrier_seq) {
		CSNAP_ASSERT(s->admin->barrier_pending > 0);
		c->barrier_seq = 0;
		s->admin->barrier_pending--;
	}
	if (s->admin->barrier_req && s->admin->barrier_req->c == c) {
		/* The admin went away: still finish the snapshot (it was asked
		 * for), just drop the reply.  */
	}
	added_conn_gone(s, c);
}

/* ---- after the commit: every export serves the new snapshot ------------- */

static void added_finish(struct srv *s)
{
	struct req *r = s->admin->added_req;

	CSNAP_ASSERT(r && !r->parked);
	s->admin->added_req = NULL;
	s->admin->added_pending = 0;
	for (struct conn *c = s->conns; c; c = c->next)
		c->added_id = 0;
	conn_send(r->c, &s->admin->added_reply);
	srv_req_done(s, r);
	srv_kick(s);		/* creates parked behind this one */
}

/* The snapshot of R is committed: tell every origin client (each is an
 * export) and answer the creator with REPLY once all have acknowledged,
 * i.e. serve it, so `snapshot create` returning means it can be opened on
 * every node.  An export that does not answer within ADDED_WAIT_MS
 * is not waited for longer (it lists the snapshot within a second).  */
static void added_start(struct srv *s, struct req *r, const struct proto_msg *reply)
{
	struct proto_msg m;

	/* The create moves from barrier_req (cleared) to added_req.  */
	CSNAP_ASSERT(!s->admin->added_req && !s->admin->barrier_req && !r->parked);
	proto_msg_init(&m, PROTO_SNAP_ADDED, ++s->admin->added_seq);
	m.u.snapinfo = reply->u.snapinfo;
	s->admin->added_req = r;
	s->admin->added_reply = *reply;
	/* One extra count while queueing: a connection that closes on
	 * conn_send() (its output over the limit) must not finish it
	 * halfway through the loop.  */
	s->admin->added_pending = 1;
	s->admin->added_deadline_ms = csnap_now_ms() + (s->o.barrier_timeout_ms < ADDED_WAIT_MS ?
						 s->o.barrier_timeout_ms : ADDED_WAIT_MS);
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->state != CONN_READY || c->volume != PROTO_VOL_ORIGIN || c->dead ||
		    c->closing)
			continue;
		c->added_id = m.id;
		s->admin->added_pending++;
		conn_send(c, &m);
	}
	if (--s->admin->added_pending == 0)
		added_finish(s);
}

void admin_added_ack(struct srv *s, struct conn *c, uint64_t id)
{
	if (!s->admin->added_req || !c->added_id || c->added_id != id)
		return;		/* late: it was not waited for */
	CSNAP_ASSERT(s->admin->added_pending > 0);	/* C was counted in added_start */
	c->added_id = 0;
	if (--s->admin->added_pending == 0)
		added_finish(s);
}

static void added_conn_gone(struct srv *s, struct conn *c)
{
	if (s->admin->added_req && c->added_id) {
		CSNAP_ASSERT(s->admin->added_pending > 0);
		c->added_id = 0;
		if (--s->admin->added_pending == 0)
			added_finish(s);
	}
}

static void added_tick(struct srv *s)
{
	if (!s->admin->added_req || csnap_now_ms() < s->admin->added_deadline_ms)
		return;
	for (struct conn *c = s->conns; c; c = c->next)
		if (c->added_id)
			log_warn("client %s (%s) did not confirm serving snapshot %s in time",
				 c->peer, c->name, s->admin->added_reply.u.snapinfo.name);
	added_finish(s);
}

void admin_poll(struct srv *s)
{
	admin_check(s);
	/* A snapshot create deferred until the grant horizon: retry it now. */
	if (s->admin->create_deferred && csnap_now_ms() >= grants_horizon(s)) {
		s->admin->create_deferred = false;
		srv_kick(s);
	}
	clone_step(s);
	if (!s->admin->barrier_active || s->admin->barrier_pending || s->fatal)
		return;
	if (copy_pending(s) || copy_failed(s) || s->busy.used)
		return;		/* the batch is closed; commit comes first */
	/* A client that did not acknowledge the barrier was cut off, and
	 * one that went away may not know yet; either may still write
	 * chunks it knows to be unique until its grant runs out.  So may
	 * the clients of a previous master.  No snapshot before then.  */
	int64_t now = csnap_now_ms();
	if (now < grants_horizon(s)) {
		if (!s->admin->grant_wait_logged)
			log_info("barrier %llu: waiting %lld ms for the grants of departed origin "
				 "clients (or of the previous master) to run out",
				 (unsigned long long)s->admin->barrier_seq,
				 (long long)(grants_horizon(s) - now));
		s->admin->grant_wait_logged = true;
		return;
	}
	s->admin->grant_wait_logged = false;
	if (s->admin->barrier_req->m.type == PROTO_SNAP_ROLLBACK) {
		struct req *rb = s->admin->barrier_req;
		barrier_end(s);
		rb_barrier_done(s, rb);
		return;
	}
	struct req *r = s->admin->barrier_req;
	CSNAP_ASSERT(r && !r->parked);	/* barrier_req is set while the barrier is */
	const struct proto_snap_create *sc = &r->m.u.snap_create;
	uint32_t id;
	int e = store_snapshot_create_req(s->st, sc->name, sc->priority,
					  r->m.flags & PROTO_F_REQ_ID ? sc->req_id : NULL, &id);
	if (e < 0) {
		char why[300];
		snprintf(why, sizeof why, "%s", err_get());
		barrier_end(s);
		admin_reply_err(s, r, -e, why);
		return;
	}
	barrier_end(s);
	struct store_snapshot sn;
	struct proto_msg m;
	store_snapshot_get(s->st, id, &sn);
	proto_msg_init(&m, PROTO_SNAP_CREATE | PROTO_REPLY, r->m.id);
	admin_fill_snapinfo(&sn, NULL, &m.u.snapinfo);
	log_info("snapshot %s created (id %u, priority %d)", sn.name, sn.id, sn.priority);
	int e2 = srv_commit_now(s);
	if (e2 == -EAGAIN) {
		/* Committed later; the exports list it within a second.  */
		srv_reply_after_commit(s, r, &m);
	} else if (e2 < 0) {
		admin_reply_err(s, r, -e2, err_get());
	} else {
		added_start(s, r, &m);
	}
}

_Static_assert(PROTO_REQ_ID_LEN == STORE_REQ_ID_LEN, "request id sizes");

/* ---- snapshot of a snapshot --------------------------------------------- */

/* Starts the clone asked for by R (SNAP_CREATE with PROTO_F_FROM), or
 * adopts the walk a previous master left if R is its retry.  */
static void clone_start(struct srv *s, struct req *r)
{
	const struct proto_snap_create *sc = &r->m.u.snap_create;
	struct store_snapshot parent, cs;
	uint32_t pending = store_clone_pending(s->st, NULL);

	if (pending) {
		if (store_snapshot_get(s->st, pending, &cs) == 0 && !strcmp(cs.name, sc->name) &&
		    (r->m.flags & PROTO_F_REQ_ID) && !memcmp(cs.req_id, sc->req_id, PROTO_REQ_ID_LEN)) {
			log_info("snapshot %s: create retried while its copy of %s's exceptions runs: "
				 "answered when that is done", cs.name, sc->from);
			s->admin->clone_req = r;
			return;
		}
		srv_park(s, r);		/* one at a time */
		return;
	}
	if (store_snapshot_find(s->st, sc->from, &parent) < 0 || !(parent.flags & STORE_SNAP_LIVE)) {
		admin_reply_err(s, r, ENOENT, "no such snapshot to copy (--from)");
		return;
	}
	/* A client cut off a moment ago may still write chunks of the
	 * parent it cached as its own: not before its grant ran out.  */
	if (!admin_snap_unused(s, r, parent.id,
			       "the snapshot to copy (--from) is in use by connected clients"))
		return;
	uint32_t id;
	int e = store_snapshot_clone(s->st, sc->name, parent.id, sc->priority,
				     r->m.flags & PROTO_F_REQ_ID ? sc->req_id : NULL, &id);
	if (e < 0) {
		admin_reply_err(s, r, -e, err_get());
		return;
	}
	s->admin->clone_req = r;
	log_info("snapshot %s: copying the exceptions of snapshot %s (id %u) to it (id %u)",
		 sc->name, parent.name, parent.id, id);
	(void)srv_commit_now(s);	/* -EAGAIN: the loop commits later */
}

/* The walk is done (and committed): the exports serve the new snapshot,
 * then its creator hears back.  */
static void clone_done(struct srv *s, uint32_t id)
{
	struct req *r = s->admin->clone_req;
	struct store_snapshot sn;
	struct proto_msg m;

	s->admin->clone_req = NULL;
	if (store_snapshot_get(s->st, id, &sn) < 0) {
		if (r)
			admin_reply_err(s, r, EIO, err_get());
		return;
	}
	log_info("snapshot %s created from snapshot %u (id %u, priority %d)", sn.name, sn.parent_id,
		 sn.id, sn.priority);
	srv_kick(s);		/* writes to the parent, creates parked behind it */
	if (!r)
		return;		/* resumed after a failover, nobody asked yet */
	proto_msg_init(&m, PROTO_SNAP_CREATE | PROTO_REPLY, r->m.id);
	admin_fill_snapinfo(&sn, NULL, &m.u.snapinfo);
	if (s->admin->added_req || s->admin->barrier_req) {
		/* cannot happen (creates park behind a clone); answer plainly */
		conn_send(r->c, &m);
		srv_req_done(s, r);
		return;
	}
	added_start(s, r, &m);
}

/* One step of the running clone's walk, committed.  */
static void clone_step(struct srv *s)
{
	uint32_t id = store_clone_pending(s->st, NULL);

	if (!id || !clone_can_step(s))
		return;
	int more = store_clone_step(s->st, CLONE_BUDGET);
	if (more < 0) {
		/* the open transaction may be half done: a fatal error */
		srv_fatal(s, more, err_get());
		return;
	}
	int e = srv_commit_now(s);
	if (e < 0 && e != -EAGAIN) {
		srv_fatal(s, e, err_get());
		return;
	}
	if (more == 0) {
		if (e == -EAGAIN) {
			/* not durable yet: answer after the commit */
			struct req *r = s->admin->clone_req;
			struct store_snapshot sn;
			struct proto_msg m;
			s->admin->clone_req = NULL;
			srv_kick(s);
			if (r && store_snapshot_get(s->st, id, &sn) == 0) {
				proto_msg_init(&m, PROTO_SNAP_CREATE | PROTO_REPLY, r->m.id);
				admin_fill_snapinfo(&sn, NULL, &m.u.snapinfo);
				srv_reply_after_commit(s, r, &m);
			} else if (r) {
				admin_reply_err(s, r, EIO, err_get());
			}
			return;
		}
		clone_done(s, id);
	}
}

/* Is SN the snapshot that an earlier attempt of request R created?  An
 * admin whose connection broke (master killed, network) retries with the
 * same request id: it must learn that its create was done, not get EEXIST
 * nor a second snapshot.  */
static bool same_request(const struct store_snapshot *sn, const struct req *r)
{
	return (r->m.flags & PROTO_F_REQ_ID) && (sn->flags & STORE_SNAP_LIVE) &&
	       !memcmp(sn->req_id, r->m.u.snap_create.req_id, PROTO_REQ_ID_LEN);
}

void admin_snap_create(struct srv *s, struct req *r)
{
	struct store_snapshot sn;
	if (store_snapshot_find(s->st, r->m.u.snap_create.name, &sn) == 0) {
		if (!same_request(&sn, r)) {
			admin_reply_err(s, r, EEXIST, "a snapshot with that name exists");
			return;
		}
		if (s->admin->barrier_active || s->admin->added_req) {
			srv_park(s, r);		/* answered as the first attempt would be */
			return;
		}
		if (admin_quiet_or_park(s, r))
			return;		/* the commit below waits for copy-outs in flight */
		struct proto_msg m;
		log_info("snapshot %s: create retried with the same request id: done already (id %u)",
			 sn.name, sn.id);
		proto_msg_init(&m, PROTO_SNAP_CREATE | PROTO_REPLY, r->m.id);
		admin_fill_snapinfo(&sn, NULL, &m.u.snapinfo);
		admin_commit_and_reply(s, r, &m);
		return;
	}
	if (s->admin->barrier_active || s->admin->added_req || s->admin->clone_req) {
		srv_park(s, r);
		return;
	}
	if (r->m.flags & PROTO_F_FROM) {
		clone_start(s, r);
		return;
	}
	/* The commit must wait for departed clients' (or a previous
	 * master's) grants anyway; raising the barrier only then keeps
	 * origin writes flowing meanwhile instead of holding them for up
	 * to PROTO_GRANT_WAIT_MS.  admin_poll still checks the horizon,
	 * which a client cut off during the barrier moves.  */
	int64_t now = csnap_now_ms();
	if (now < grants_horizon(s)) {
		if (!s->admin->create_deferred)
			log_info("snapshot %s: waiting %lld ms for the grants of departed origin "
				 "clients (or of the previous master) to run out before the barrier",
				 r->m.u.snap_create.name, (long long)(grants_horizon(s) - now));
		s->admin->create_deferred = true;
		srv_park(s, r);
		return;
	}
	barrier_start(s, r);
}

/* ---- timer: barrier timeout ---------------------------------------------- */

void admin_tick(struct srv *s)
{
	admin_check(s);
	added_tick(s);
	if (s->admin->barrier_active && s->admin->barrier_pending && csnap_now_ms() >= s->admin->barrier_deadline_ms) {
		struct conn *c, *next;
		for (c = s->conns; c; c = next) {
			next = c->next;
			if (c->barrier_seq == s->admin->barrier_seq && c->barrier_seq) {
				log_warn("client %s did not acknowledge snapshot barrier %llu in %d ms: "
					 "disconnecting it (it must reconnect and drop its cache)",
					 c->peer, (unsigned long long)s->admin->barrier_seq, s->o.barrier_timeout_ms);
				conn_close(c);
			}
		}
	}
	admin_cleanup_tick(s);
}
