/*
 * src/export/volume_origin.c - the origin volume of a csnap store.
 *
 * Reads go straight to the origin device, except while a rollback runs
 * (origin_read.c: then they ask the master where each chunk is).  A
 * write may change a chunk that
 * a snapshot still shares, so before writing chunks not known to be
 * unique it asks the master (ORIGIN_WRITE); the master copies them out,
 * commits, and answers; then the write goes to the origin.  The answer is
 * remembered in a bitmap so later writes to those chunks ask nobody.
 *
 * Invariants:
 *  - A chunk is in the bitmap only between an ORIGIN_WRITE answer and the
 *    next snapshot barrier or loss of the master.
 *  - The bitmap (and an ORIGIN_WRITE answer) is used only while the grant
 *    of the current connection lasts (proto.h; docs/RELIABILITY.md "A
 *    paused or partitioned export"): every successful reply extends it to
 *    PROTO_GRANT_MS after the request was SENT (boot clock), PING renews
 *    it every PROTO_PING_MS, losing the connection ends it.  It is checked
 *    immediately before the write is handed to the kernel (an ioengine
 *    gate), not when the request arrived: a write that waited, or an
 *    export that was stopped, past the grant is not issued; it asks the
 *    master again (who may have taken a snapshot meanwhile).
 *  - A barrier is acknowledged only once every write admitted before it
 *    (bitmap hit or answered query) has reached the device and a flush
 *    issued after them has completed, so the snapshot sees either all of
 *    a write or, if the client was never answered, possibly none of it -
 *    never a write made after it - and a power cut after the snapshot's
 *    commit cannot take from it a write it holds (the chunks it shares
 *    with the origin are durable: tests/integration/cluster_powercut.sh).
 *  - Concurrent writes needing the same chunks share one query when an
 *    outstanding query already covers them.
 *  - A write is admitted only when every chunk it touches is in the bitmap
 *    at that moment.  A write spanning chunks asks only for those not in
 *    it; when the answer comes, the others are checked again (a barrier
 *    or a lost connection may have cleared them meanwhile: the master may
 *    have taken a snapshot that shares them, and the answer covers only
 *    what was asked).
 */
#include "src/export/csvol.h"

#include "src/export/chunkmap.h"
#include "src/export/dio.h"
#include "src/export/grant.h"
#include "src/export/loop.h"
#include "src/export/origin_read.h"
#include "src/export/session.h"
#include "utils/err.h"
#include "utils/assert.h"
#include "utils/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct oquery;

struct owrite {
	struct vol_req *req;
	struct origin_vol *ov;
	struct owrite *next;		/* waiters of one query */
	uint64_t epoch;			/* connection it was admitted under */
};

struct oquery {
	struct sreq rq;
	struct proto_range range;
	struct owrite *waiters;
	struct oquery *next, **pprev;
};

struct origin_vol {
	struct volume vol;
	struct csvol_env env;
	struct session *sess;
	struct chunk_bitmap unique;
	struct oquery *queries;		/* outstanding ORIGIN_WRITE queries */
	unsigned admitted;		/* writes past the check, not yet done */
	bool barrier_pending;
	uint64_t barrier_id;
	uint64_t conn_gen;		/* connections lost so far: a barrier's
					 * flush answers only the one it was for */
	struct grant grant;		/* the bitmap and admitted writes count
					 * only while it lasts (grant.h) */
	struct origin_reader rd;	/* reads (origin_read.c) */
	uint64_t queries_sent, bitmap_hits, grant_refused;
	unsigned writes_open;		/* writes submitted, not yet answered:
					 * admitted + waiting for a query + being
					 * re-asked; logged at each master change */
	const char *test_stray;		/* $CSNAP_TEST_STRAY_FILE (see origin_write) */
};

/* ioengine gate: asked right before the write goes to the kernel.  */
static bool write_gate(void *arg)
{
	struct owrite *w = arg;

	return grant_gate_ok(&w->ov->grant, w->epoch);
}

/* ---- barrier ---------------------------------------------------------- */

struct barrier_flush {
	struct origin_vol *ov;
	uint64_t id, gen;
};

static void barrier_flushed(void *arg, int err)
{
	struct barrier_flush *bf = arg;
	struct origin_vol *ov = bf->ov;
	struct proto_msg m;

	if (err < 0)
		/* Unanswered, the master cuts us off and waits out our grant
		 * before it commits: the snapshot does not rely on us.  */
		log_error("origin: flush for barrier %llu failed: %s", (unsigned long long)bf->id,
			  strerror(-err));
	else if (ov->sess && bf->gen == ov->conn_gen) {
		proto_msg_init(&m, PROTO_BARRIER | PROTO_REPLY, bf->id);
		session_reply(ov->sess, &m);
		log_debug("origin: barrier %llu acknowledged", (unsigned long long)bf->id);
	}
	free(bf);
	volume_put(&ov->vol);
}

/* Every write admitted before the barrier is done: make them durable,
 * then acknowledge.  Writes admitted meanwhile ask the master, who holds
 * its answers until the snapshot exists.  */
static void maybe_ack_barrier(struct origin_vol *ov)
{
	struct barrier_flush *bf;

	if (!ov->barrier_pending || ov->admitted)
		return;
	ov->barrier_pending = false;
	bf = malloc(sizeof *bf);
	if (!bf) {
		log_error("origin: out of memory flushing for barrier %llu",
			  (unsigned long long)ov->barrier_id);
		return;
	}
	*bf = (struct barrier_flush){ ov, ov->barrier_id, ov->conn_gen };
	volume_get(&ov->vol);
	dio_flush(ov->env.origin, barrier_flushed, bf);
}

/* The origin grew to SIZE (never shrinks): the exporter checks the
 * device and takes the size for new snapshots; new NBD connections see
 * it.  The unique-chunk memory starts over at the new size (forgetting
 * is always safe: those writes ask again).  */
static int origin_grow(struct origin_vol *ov, uint64_t size)
{
	struct chunk_bitmap nb;
	int rc;

	if (size <= ov->vol.size)
		return 0;
	if (ov->env.origin_resized && (rc = ov->env.origin_resized(ov->env.snap_arg, size)) < 0)
		return rc;
	if ((rc = chunk_bitmap_init(&nb, (size + ov->env.chunk_size - 1) >> ov->env.chunk_shift)) < 0)
		return rc;
	chunk_bitmap_free(&ov->unique);
	ov->unique = nb;
	ov->vol.size = size;
	ov->env.origin_size = size;
	return 0;
}

static void on_server_request(void *arg, const struct proto_msg *req)
{
	struct origin_vol *ov = arg;

	if (req->type == PROTO_ORIGIN_SIZE) {
		struct proto_msg m;
		int rc = origin_grow(ov, req->u.resize.new_size);

		if (rc < 0)
			proto_msg_error(&m, req, (uint32_t)-rc, err_get());
		else
			proto_msg_init(&m, PROTO_ORIGIN_SIZE | PROTO_REPLY, req->id);
		session_reply(ov->sess, &m);
		return;
	}

	if (req->type == PROTO_SNAP_ADDED) {
		/* Serve it before the master answers its creator.  */
		struct proto_msg m;
		int rc = ov->env.snap_added ? ov->env.snap_added(ov->env.snap_arg,
								 req->u.snapinfo.name) : 0;

		if (rc < 0)
			proto_msg_error(&m, req, (uint32_t)-rc, err_get());
		else
			proto_msg_init(&m, PROTO_SNAP_ADDED | PROTO_REPLY, req->id);
		session_reply(ov->sess, &m);
		return;
	}
	if (req->type == PROTO_BARRIER && (req->flags & PROTO_F_RB_END)) {
		/* the rollback is over: nothing to drain */
		struct proto_msg m;
		orr_barrier(&ov->rd, req->flags);
		proto_msg_init(&m, PROTO_BARRIER | PROTO_REPLY, req->id);
		session_reply(ov->sess, &m);
		return;
	}
	if (req->type != PROTO_BARRIER) {
		struct proto_msg m;

		proto_msg_error(&m, req, EOPNOTSUPP, "origin export: unexpected request");
		session_reply(ov->sess, &m);
		return;
	}
	/* From now on every write asks; the master holds those answers
	 * until the snapshot exists (or the rollback started; then reads
	 * ask too, before we acknowledge).  */
	orr_barrier(&ov->rd, req->flags);
	chunk_bitmap_clear_all(&ov->unique);
	ov->barrier_pending = true;
	ov->barrier_id = req->id;
	log_debug("origin: barrier %llu, %u writes to drain", (unsigned long long)req->id,
		  ov->admitted);
	maybe_ack_barrier(ov);
}

/* Where the unanswered NBD writes are: a write the client waits for and
 * that none of these counts holds was answered (its reply is the NBD
 * connection's), and the open count says whether one got lost here.  */
static void log_where(const struct origin_vol *ov, const char *when)
{
	unsigned nq = 0, nw = 0;

	for (const struct oquery *q = ov->queries; q; q = q->next) {
		nq++;
		for (const struct owrite *w = q->waiters; w; w = w->next)
			nw++;
	}
	log_info("origin: %s: %u writes unanswered: %u on the way to the disk, "
		 "%u waiting for %u queries; %llu re-asked after the grant ran out so far",
		 when, ov->writes_open, ov->admitted, nw, nq,
		 (unsigned long long)ov->grant_refused);
	/* Between callbacks every open write is admitted or a waiter.  */
	CSNAP_ASSERT(ov->writes_open == ov->admitted + nw);
}

static void on_connected(void *arg, const struct proto_identify_ok *ok, bool again)
{
	struct origin_vol *ov = arg;

	grant_ping_start(&ov->grant);
	orr_connected(&ov->rd, ok);
	if (again)
		log_where(ov, "at this master change");
	/* a resize this export did not hear of (it was away) */
	if (ok->chunk_size == ov->env.chunk_size && ok->origin_size > ov->vol.size &&
	    origin_grow(ov, ok->origin_size) < 0)
		log_error("origin: cannot serve the origin's new size %llu: %s",
			  (unsigned long long)ok->origin_size, err_get());
	if (ok->chunk_size != ov->env.chunk_size || ok->origin_size != ov->vol.size)
		log_warn("origin: master reports chunk size %u, origin size %llu; the superblock said %u, %llu",
			 ok->chunk_size, (unsigned long long)ok->origin_size, ov->env.chunk_size,
			 (unsigned long long)ov->vol.size);
}

static void on_disconnected(void *arg)
{
	struct origin_vol *ov = arg;

	/* A new master may create snapshots before it knows about us: what
	 * the old one said about uniqueness no longer holds, nor does its
	 * grant (writes admitted under it are not issued: write_gate).  A
	 * barrier the old master sent can no longer be answered.  */
	chunk_bitmap_clear_all(&ov->unique);
	grant_drop(&ov->grant);
	ov->barrier_pending = false;
	ov->conn_gen++;
}

static void on_refused(void *arg, int err, const char *why)
{
	struct origin_vol *ov = arg;

	(void)err;
	log_error("origin: the master refused this export: %s", why);
	orr_refused(&ov->rd);
}

static const struct session_ops origin_session_ops = {
	.connected = on_connected,
	.disconnected = on_disconnected,
	.server_request = on_server_request,
	.refused = on_refused,
};

/* ---- writes ----------------------------------------------------------- */

static void origin_write(struct origin_vol *ov, struct vol_req *req);

/* Every write submitted leaves the volume through here, exactly once.  */
static void write_reply(struct origin_vol *ov, struct vol_req *req, int err)
{
	CSNAP_ASSERT(ov->writes_open > 0);	/* counted in origin_submit */
	ov->writes_open--;
	req->done(req, err);
}

static void write_done(void *arg, int err)
{
	struct owrite *w = arg;
	struct origin_vol *ov = w->ov;
	struct vol_req *req = w->req;

	free(w);
	ov->admitted--;
	maybe_ack_barrier(ov);
	if (err == -EKEYEXPIRED) {
		/* The grant ran out (or the connection changed) before the
		 * write could be issued: nothing of it went to the kernel
		 * after that.  Ask again.  */
		if (!ov->grant_refused++ || ov->grant_refused % 1000 == 0)
			log_info("origin: a write at %llu waited past this export's grant: "
				 "asking the master again (%llu so far)",
				 (unsigned long long)req->off, (unsigned long long)ov->grant_refused);
		if (!ov->sess) {
			write_reply(ov, req, -ESHUTDOWN);
			return;
		}
		origin_write(ov, req);
		return;
	}
	write_reply(ov, req, err);
}

static void admitted_write(struct origin_vol *ov, struct owrite *w)
{
	struct vol_req *req = w->req;
	unsigned fl = req->flags & VOL_REQ_FUA ? DIO_FUA : 0;

	ov->admitted++;
	w->epoch = ov->grant.epoch;
	if (req->op == VOL_ZEROES)
		dio_zero_gated(ov->env.origin, req->len, req->off, fl, write_gate, w, write_done, w);
	else
		dio_write_gated(ov->env.origin, req->buf, req->len, req->off, fl, write_gate, w,
				write_done, w);
}

/* The chunks of REQ not in the bitmap: false if none, else the first and
 * the last of them in *M0, *M1 (UINT64_MAX, 0 when none).  */
static bool missing_chunks(const struct origin_vol *ov, const struct vol_req *req,
			   uint64_t *m0, uint64_t *m1)
{
	uint64_t c0 = req->off >> ov->env.chunk_shift;
	uint64_t c1 = (req->off + req->len - 1) >> ov->env.chunk_shift;

	*m0 = UINT64_MAX;
	*m1 = 0;
	for (uint64_t c = c0; c <= c1; c++) {
		if (!chunk_bitmap_test(&ov->unique, c)) {
			if (*m0 == UINT64_MAX)
				*m0 = c;
			*m1 = c;
		}
	}
	return *m0 != UINT64_MAX;
}

static void query_done(struct sreq *rq, const struct proto_msg *reply, int err)
{
	struct oquery *q = (struct oquery *)rq;
	struct origin_vol *ov = rq->arg;
	struct owrite *w = q->waiters;

	*q->pprev = q->next;
	if (q->next)
		q->next->pprev = q->pprev;
	if (!err && reply->status) {
		err = -(int)reply->status;
		log_warn("origin: write to chunks %llu+%u refused: %s",
			 (unsigned long long)q->range.start, q->range.count, reply->error);
	}
	if (!err) {
		grant_renew(&ov->grant, rq->sent_ns);
		chunk_bitmap_set(&ov->unique, q->range.start, q->range.count);
	}
	free(q);
	while (w) {
		struct owrite *next = w->next;
		struct vol_req *req = w->req;
		uint64_t m0, m1;

		if (err) {
			free(w);
			write_reply(ov, req, err == -ENOSPC ? -ENOSPC : -EIO);
		} else if (!missing_chunks(ov, req, &m0, &m1)) {
			admitted_write(ov, w);
		} else {
			/* It spans chunks it did not ask about, which it
			 * remembered as unique when it asked; no longer
			 * (barrier, lost connection): ask for them too.  */
			free(w);
			origin_write(ov, req);
		}
		w = next;
	}
}

static void origin_write(struct origin_vol *ov, struct vol_req *req)
{
	uint64_t m0, m1;
	struct owrite *w = malloc(sizeof *w);
	struct oquery *q;

	if (!w) {
		write_reply(ov, req, -ENOMEM);
		return;
	}
	w->req = req;
	w->ov = ov;
	w->next = NULL;
	/* What we remember counts only under a grant; once it has run out
	 * the master may have taken a snapshot without us (we may have been
	 * stopped, or cut off without knowing it): forget and ask.  */
	if (ov->unique.nset && !grant_valid(&ov->grant)) {
		log_info("origin: no grant from the master (it ran out %lld ms ago): "
			 "forgetting %llu unique chunks", (long long)grant_expired_ms(&ov->grant),
			 (unsigned long long)ov->unique.nset);
		chunk_bitmap_clear_all(&ov->unique);
	}
	missing_chunks(ov, req, &m0, &m1);
	/* Test fault (proves the fencing tests' stray-write check,
	 * tests/integration/wlog_stray.sh): once the file named by
	 * CSNAP_TEST_STRAY_FILE exists, the next write that should ask the
	 * master goes straight to the disk, and the file is removed.  */
	if (m0 != UINT64_MAX && ov->test_stray && unlink(ov->test_stray) == 0) {
		log_warn("origin: TEST FAULT: writing %llu bytes at %llu without asking the master",
			 (unsigned long long)req->len, (unsigned long long)req->off);
		m0 = UINT64_MAX;
	}
	if (m0 == UINT64_MAX) {
		ov->bitmap_hits++;
		admitted_write(ov, w);
		return;
	}
	for (q = ov->queries; q; q = q->next) {
		if (q->range.start <= m0 && m1 < q->range.start + q->range.count) {
			w->next = q->waiters;
			q->waiters = w;
			return;
		}
	}
	q = calloc(1, sizeof *q);
	if (!q) {
		free(w);
		write_reply(ov, req, -ENOMEM);
		return;
	}
	q->range.start = m0;
	q->range.count = (uint32_t)(m1 - m0 + 1);
	q->waiters = w;
	q->next = ov->queries;
	q->pprev = &ov->queries;
	if (ov->queries)
		ov->queries->pprev = &q->next;
	ov->queries = q;
	proto_msg_init(&q->rq.msg, PROTO_ORIGIN_WRITE, 0);
	q->rq.msg.u.ranges.n = 1;
	q->rq.msg.u.ranges.r = &q->range;
	q->rq.done = query_done;
	q->rq.arg = ov;
	ov->queries_sent++;
	session_send(ov->sess, &q->rq);
}

/* ---- volume ----------------------------------------------------------- */

static void req_done(void *arg, int err)
{
	struct vol_req *req = arg;

	req->done(req, err);
}

static void origin_submit(struct volume *vol, struct vol_req *req)
{
	struct origin_vol *ov = (struct origin_vol *)vol;

	switch (req->op) {
	case VOL_READ:
		orr_submit(&ov->rd, req);
		return;
	case VOL_WRITE:
	case VOL_ZEROES:
		ov->writes_open++;
		if (!ov->sess) {
			write_reply(ov, req, -ESHUTDOWN);
			return;
		}
		origin_write(ov, req);
		return;
	case VOL_FLUSH:
		/* Copy-outs were committed before their queries were
		 * answered: only our own writes need to reach the disk.  */
		dio_flush(ov->env.origin, req_done, req);
		return;
	case VOL_TRIM:
		/* Advisory; discarding a chunk a snapshot shares would need a
		 * copy-out first, which would cost more than it saves.  */
		if (req->flags & VOL_REQ_FUA)
			dio_flush(ov->env.origin, req_done, req);
		else
			req->done(req, 0);
		return;
	}
	req->done(req, -EINVAL);
}

void volume_origin_shutdown(struct volume *vol)
{
	struct origin_vol *ov = (struct origin_vol *)vol;

	grant_ping_stop(&ov->grant);
	grant_set_session(&ov->grant, NULL);
	orr_shutdown(&ov->rd);
	session_destroy(ov->sess);
	ov->sess = NULL;
}

static void origin_destroy(struct volume *vol)
{
	struct origin_vol *ov = (struct origin_vol *)vol;

	log_info("origin: %llu writes asked the master, %llu went straight to the disk, "
		 "%llu waited past the grant and asked again; %llu reads asked (rollback), "
		 "%llu of them read again", (unsigned long long)ov->queries_sent,
		 (unsigned long long)ov->bitmap_hits, (unsigned long long)ov->grant_refused,
		 (unsigned long long)ov->rd.asked, (unsigned long long)ov->rd.again);
	grant_ping_stop(&ov->grant);
	orr_shutdown(&ov->rd);
	session_destroy(ov->sess);
	chunk_bitmap_free(&ov->unique);
	free(ov);
}

/* SIGUSR1: where the unanswered writes are, and what the grant is.  */
static void origin_log_state(struct volume *vol)
{
	struct origin_vol *ov = (struct origin_vol *)vol;
	const struct grant *g = &ov->grant;

	log_where(ov, "on request");
	log_info("origin: grant %s %lld ms (epoch %llu, PING %s); session %s, %u requests "
		 "pending; %llu unique chunks remembered; barrier %s",
		 grant_valid(g) ? "holds for" : "ran out",
		 (long long)(grant_valid(g) ? grant_left_ms(g) : grant_expired_ms(g)),
		 (unsigned long long)g->epoch, grant_ping_busy(g) ? "in flight" : "idle",
		 ov->sess && session_up(ov->sess) ? "up" : "down",
		 ov->sess ? session_pending(ov->sess) : 0, (unsigned long long)ov->unique.nset,
		 ov->barrier_pending ? "waiting for writes" : "none");
}

/* csnap:changed on the origin export: what differs between FROM and the
 * live origin (writes acknowledged before the reply are in it: a chunk is
 * copied out, hence changed, before the write that changes it starts).  */
static void origin_changed(struct volume *vol, struct vol_changed_req *q)
{
	struct origin_vol *ov = (struct origin_vol *)vol;

	if (!ov->sess) {
		q->done(q, -ESHUTDOWN, "the export is shutting down");
		return;
	}
	csvol_changed(ov->sess, ov->env.chunk_shift, "", q);
}

static const struct volume_ops origin_ops = {
	.submit = origin_submit,
	.destroy = origin_destroy,
	.changed = origin_changed,
	.log_state = origin_log_state,
};

int volume_origin_create(const struct csvol_env *env, struct volume **out)
{
	struct origin_vol *ov = calloc(1, sizeof *ov);
	int rc;

	if (!ov)
		return err_set(ENOMEM, "out of memory");
	ov->env = *env;
	ov->vol.ops = &origin_ops;
	snprintf(ov->vol.name, sizeof ov->vol.name, "origin");
	snprintf(ov->vol.description, sizeof ov->vol.description, "csnap origin");
	ov->vol.size = env->origin_size;
	ov->vol.pref_block = env->chunk_size < 65536 ? env->chunk_size : 65536;
	ov->vol.refs = 1;
	grant_init(&ov->grant, env->lp);
	orr_init(&ov->rd, &ov->env, &ov->grant);
	ov->test_stray = getenv("CSNAP_TEST_STRAY_FILE");
	rc = chunk_bitmap_init(&ov->unique, (env->origin_size + env->chunk_size - 1) >> env->chunk_shift);
	if (rc < 0) {
		free(ov);
		return rc;
	}
	rc = session_create(env->lp, env->tgt, PROTO_VOL_ORIGIN, NULL, &origin_session_ops, ov,
			    &ov->sess);
	if (rc < 0) {
		chunk_bitmap_free(&ov->unique);
		free(ov);
		return rc;
	}
	grant_set_session(&ov->grant, ov->sess);
	orr_set_session(&ov->rd, ov->sess);
	session_start(ov->sess);
	*out = &ov->vol;
	return 0;
}
