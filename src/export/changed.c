/*
 * src/export/changed.c - the csnap:changed metadata context's data source
 * for csnap volumes: asks the master, over the volume's own session, which
 * chunks differ between a snapshot and this volume (CHANGED, the request
 * behind `csnap snapshot changed`), one page at a time.
 *
 * Invariant: every query gets exactly one done() (session.h guarantees one
 * reply or error per request; a lost master means the request is re-sent).
 * The master's reply is checked before it is handed on: ranges in
 * increasing order, none before the chunk asked for, none empty, and a
 * continuation cursor past every range, so the NBD layer can trust them to
 * build extents.
 */
#include "src/export/csvol.h"
#include "src/export/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct changed_q {
	struct sreq rq;
	struct vol_changed_req *q;
	unsigned chunk_shift;
};

static const char *check_reply(uint64_t start, const struct proto_changed_reply *cr)
{
	uint64_t pos = start;

	for (uint32_t i = 0; i < cr->ranges.n; i++) {
		const struct proto_range *r = &cr->ranges.r[i];

		if (r->count == 0 || r->start < pos || r->start + r->count < r->start)
			return "the master's changed ranges are out of order";
		pos = r->start + r->count;
	}
	if (cr->next != UINT64_MAX && (cr->next < pos || cr->next <= start))
		return "the master's changed-chunk cursor does not advance";
	return NULL;
}

static void changed_reply(struct sreq *rq, const struct proto_msg *rep, int err)
{
	struct changed_q *cq = (struct changed_q *)rq;
	struct vol_changed_req *q = cq->q;
	const uint64_t start = q->off >> cq->chunk_shift;
	struct vol_range *v = NULL;
	const char *bad;
	char why[PROTO_STR_MAX + 64];

	free(cq);
	if (err < 0) {
		snprintf(why, sizeof why, "cannot reach the master: %s", strerror(-err));
		q->done(q, err, why);
		return;
	}
	if (rep->status) {
		snprintf(why, sizeof why, "the master refused the changed-chunk query: %s",
			 rep->error[0] ? rep->error : strerror((int)rep->status));
		q->done(q, -(int)rep->status, why);
		return;
	}
	bad = check_reply(start, &rep->u.changed_reply);
	if (bad) {
		q->done(q, -EPROTO, bad);
		return;
	}
	const struct proto_ranges *rs = &rep->u.changed_reply.ranges;
	if (rs->n && !(v = calloc(rs->n, sizeof *v))) {
		q->done(q, -ENOMEM, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < rs->n; i++)
		v[i] = (struct vol_range){ rs->r[i].start, rs->r[i].count };
	q->r = v;
	q->n = rs->n;
	q->next = rep->u.changed_reply.next;
	q->done(q, 0, NULL);
	free(v);
}

void csvol_changed(struct session *s, unsigned chunk_shift, const char *to,
		   struct vol_changed_req *q)
{
	struct changed_q *cq = calloc(1, sizeof *cq);

	q->chunk_shift = chunk_shift;
	q->r = NULL;
	q->n = 0;
	if (!cq) {
		q->done(q, -ENOMEM, "out of memory");
		return;
	}
	if (strlen(q->from) > PROTO_NAME_MAX || strlen(to) > PROTO_NAME_MAX) {
		free(cq);
		q->done(q, -EINVAL, "snapshot name too long");
		return;
	}
	cq->q = q;
	cq->chunk_shift = chunk_shift;
	proto_msg_init(&cq->rq.msg, PROTO_CHANGED, 0);
	snprintf(cq->rq.msg.u.changed.from, sizeof cq->rq.msg.u.changed.from, "%s", q->from);
	snprintf(cq->rq.msg.u.changed.to, sizeof cq->rq.msg.u.changed.to, "%s", to);
	cq->rq.msg.u.changed.start = q->off >> chunk_shift;
	cq->rq.msg.u.changed.max_ranges = q->max_ranges ? q->max_ranges : 1;
	if (cq->rq.msg.u.changed.max_ranges > PROTO_MAX_RANGES)
		cq->rq.msg.u.changed.max_ranges = PROTO_MAX_RANGES;
	cq->rq.done = changed_reply;
	session_send(s, &cq->rq);
}
