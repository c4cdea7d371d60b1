/*
 * src/export/origin_read.c - reads of the origin volume, which must ask
 * the master while a rollback runs (docs/server.md, "Rollback").
 *
 * While a rollback runs, the origin's content at a chunk the master has
 * not moved back yet is a store chunk (the snapshot's): ORIGIN_READ says,
 * per chunk, "on the origin" or "at store chunk X"; the latter is locked
 * on the master until ORIGIN_READ_DONE, so the step that moves the chunk
 * does not free X under the read.
 *
 * Invariants:
 *  - A read goes straight to the origin device only while the master last
 *    said no rollback runs (IDENTIFY reply, or a BARRIER with
 *    PROTO_F_RB_END) or refused the session for good (nothing to follow);
 *    before the first answer reads wait, from a BARRIER
 *    with PROTO_F_RB_START (acknowledged only after `ask` is set) on they
 *    ask.  Losing the master keeps what the last one said.
 *  - A read from a store chunk is issued only under the grant of the
 *    connection whose answer named it (an ioengine gate), and a read that
 *    used a store chunk is done again from the start if that connection
 *    was lost before it finished: a new master knows nothing of the old
 *    one's locks (it steps only once the old grants have run out).
 *  - The answer must cover the asked chunks exactly, in order, and name
 *    store chunks inside the data area; anything else fails the read (EIO).
 */
#include "src/export/origin_read.h"

#include "src/export/dio.h"
#include "src/export/session.h"
#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct oread_held {
	struct oread_held *next;
	struct vol_req *req;
};

struct oread {
	struct sreq rq;			/* ORIGIN_READ; first member */
	struct origin_reader *rd;
	struct vol_req *req;
	struct proto_range range;
	uint64_t epoch;			/* grant epoch of the answer */
	unsigned pending;		/* device reads in flight (+1 while issuing) */
	int err;
	bool again;			/* a gate refused: read again */
	struct proto_range *locked;	/* store extents, to release */
	uint32_t nlocked;
};

void orr_init(struct origin_reader *rd, const struct csvol_env *env, struct grant *grant)
{
	memset(rd, 0, sizeof *rd);
	rd->env = env;
	rd->grant = grant;
}

static void direct_done(void *arg, int err)
{
	struct vol_req *req = arg;

	req->done(req, err);
}

static void oread_finish(struct oread *o)
{
	struct origin_reader *rd = o->rd;
	struct vol_req *req = o->req;
	bool lost = o->epoch != rd->grant->epoch;
	bool again = o->nlocked && (o->again || lost);
	int err = o->err;

	/* A lost connection took its locks with it.  */
	if (o->nlocked && !lost && rd->sess) {
		struct proto_msg m;
		proto_msg_init(&m, PROTO_ORIGIN_READ_DONE, 0);
		m.u.ranges.n = o->nlocked;
		m.u.ranges.r = o->locked;
		session_send_oneway(rd->sess, &m);
	}
	free(o->locked);
	free(o);
	CSNAP_ASSERT(rd->inflight > 0);
	rd->inflight--;
	if (again) {
		if (!rd->again++ || rd->again % 1000 == 0)
			log_info("origin: a read from the store lost its master's grant: reading again "
				 "(%llu so far)", (unsigned long long)rd->again);
		orr_submit(rd, req);
		return;
	}
	req->done(req, err);
}

static void io_done(void *arg, int err)
{
	struct oread *o = arg;

	if (err == -EKEYEXPIRED)
		o->again = true;
	else if (err < 0 && !o->err)
		o->err = err;
	if (--o->pending == 0)
		oread_finish(o);
}

static bool gate(void *arg)
{
	const struct oread *o = arg;

	return grant_gate_ok(o->rd->grant, o->epoch);
}

/* The answer covers exactly the asked chunks, in order, store chunks in
 * the data area.  */
static bool answer_ok(const struct origin_reader *rd, const struct oread *o,
		      const struct proto_extents *es)
{
	uint64_t next = o->range.start;

	for (uint32_t i = 0; i < es->n; i++) {
		const struct proto_extent *e = &es->e[i];
		if (e->start != next)
			return false;
		next += e->count;
		if (e->where == PROTO_AT_STORE) {
			uint64_t end = e->store_chunk + e->count, have = rd->env->store_chunks;
			if (end > have && rd->env->store_chunks_now)	/* grown? */
				have = rd->env->store_chunks_now(rd->env->snap_arg, end - 1);
			if (end > have)
				return false;
		}
	}
	return next == o->range.start + o->range.count;
}

static void oread_reply(struct sreq *rq, const struct proto_msg *reply, int err)
{
	struct oread *o = (struct oread *)rq;
	struct origin_reader *rd = o->rd;
	struct vol_req *req = o->req;
	const struct csvol_env *env = rd->env;
	uint64_t cs = env->chunk_size;

	if (!err && reply->status) {
		log_warn("origin: read of chunks %llu+%u refused: %s",
			 (unsigned long long)o->range.start, o->range.count, reply->error);
		err = -(int)reply->status;
	}
	if (!err && !answer_ok(rd, o, &reply->u.extents)) {
		log_error("origin: the master's answer for chunks %llu+%u does not cover them",
			  (unsigned long long)o->range.start, o->range.count);
		err = -EIO;
	}
	if (!err && !(o->locked = calloc(reply->u.extents.n ? reply->u.extents.n : 1, sizeof *o->locked)))
		err = -ENOMEM;
	if (err) {
		free(o);
		CSNAP_ASSERT(rd->inflight > 0);
		rd->inflight--;
		req->done(req, err == -ENOMEM ? -ENOMEM : -EIO);
		return;
	}
	grant_renew(rd->grant, rq->sent_ns);
	o->epoch = rd->grant->epoch;
	o->pending = 1;		/* until every read is issued */
	for (uint32_t i = 0; i < reply->u.extents.n; i++) {
		const struct proto_extent *e = &reply->u.extents.e[i];
		uint64_t b0 = e->start * cs, b1 = (e->start + e->count) * cs;
		if (b0 < req->off)
			b0 = req->off;
		if (b1 > req->off + req->len)
			b1 = req->off + req->len;
		if (b0 >= b1)
			continue;
		uint8_t *buf = (uint8_t *)req->buf + (b0 - req->off);
		o->pending++;
		if (e->where == PROTO_AT_ORIGIN) {
			dio_read(env->origin, buf, b1 - b0, b0, io_done, o);
		} else {
			o->locked[o->nlocked++] = (struct proto_range){ e->start, e->count };
			dio_read_gated(env->store, buf, b1 - b0,
				       env->data_offset + e->store_chunk * cs + (b0 - e->start * cs),
				       gate, o, io_done, o);
		}
	}
	io_done(o, 0);
}

static void ask(struct origin_reader *rd, struct vol_req *req)
{
	struct oread *o = calloc(1, sizeof *o);
	uint64_t c0 = req->off >> rd->env->chunk_shift;
	uint64_t c1 = (req->off + req->len - 1) >> rd->env->chunk_shift;

	if (!o) {
		req->done(req, -ENOMEM);
		return;
	}
	o->rd = rd;
	o->req = req;
	o->range = (struct proto_range){ c0, (uint32_t)(c1 - c0 + 1) };
	proto_msg_init(&o->rq.msg, PROTO_ORIGIN_READ, 0);
	o->rq.msg.u.ranges.n = 1;
	o->rq.msg.u.ranges.r = &o->range;
	o->rq.done = oread_reply;
	o->rq.arg = rd;
	rd->inflight++;
	rd->asked++;
	session_send(rd->sess, &o->rq);
}

void orr_submit(struct origin_reader *rd, struct vol_req *req)
{
	if (!rd->sess && (rd->ask || !rd->known)) {
		req->done(req, -ESHUTDOWN);
		return;
	}
	if (!rd->known) {
		/* before the master said whether a rollback runs */
		struct oread_held *h = malloc(sizeof *h), **p = &rd->held;
		if (!h) {
			req->done(req, -ENOMEM);
			return;
		}
		h->req = req;
		h->next = NULL;
		while (*p)
			p = &(*p)->next;
		*p = h;
		return;
	}
	if (!rd->ask) {
		dio_read(rd->env->origin, req->buf, req->len, req->off, direct_done, req);
		return;
	}
	ask(rd, req);
}

static void release_held(struct origin_reader *rd)
{
	struct oread_held *h = rd->held;

	rd->held = NULL;
	while (h) {
		struct oread_held *next = h->next;
		orr_submit(rd, h->req);
		free(h);
		h = next;
	}
}

void orr_connected(struct origin_reader *rd, const struct proto_identify_ok *ok)
{
	bool ask_now = ok->has_state && (ok->state & PROTO_STATE_ROLLBACK);

	if (ask_now != rd->ask || !rd->known)
		log_info("origin: %s", ask_now ? "a rollback runs: reads ask the master" :
			 "reads go to the origin directly");
	rd->ask = ask_now;
	rd->known = true;
	release_held(rd);
}

void orr_refused(struct origin_reader *rd)
{
	if (rd->known)
		return;
	rd->known = true;
	release_held(rd);
}

void orr_barrier(struct origin_reader *rd, uint16_t flags)
{
	if (flags & PROTO_F_RB_START) {
		log_info("origin: a rollback starts: reads ask the master");
		rd->ask = true;
		rd->known = true;
	} else if (flags & PROTO_F_RB_END) {
		log_info("origin: the rollback has ended: reads go to the origin directly "
			 "(%llu asked, %llu read again)", (unsigned long long)rd->asked,
			 (unsigned long long)rd->again);
		rd->ask = false;
		rd->known = true;
	}
	release_held(rd);
}

void orr_shutdown(struct origin_reader *rd)
{
	rd->sess = NULL;
	if (!rd->known) {
		struct oread_held *h = rd->held;
		rd->held = NULL;
		while (h) {
			struct oread_held *next = h->next;
			h->req->done(h->req, -ESHUTDOWN);
			free(h);
			h = next;
		}
	}
}
