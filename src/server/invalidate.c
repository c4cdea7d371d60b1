/*
 * src/server/invalidate.c - keeping the snapshot chunk locations that
 * clients cache right when several clients write the same snapshot.
 *
 * Exports cache where a snapshot chunk lives in the store.  A SNAP_WRITE
 * to a chunk the snapshot shares with other snapshots gives it a new store
 * chunk of its own: every other connection identified for that snapshot
 * may hold the old location.  Before the writer is answered, the server
 * sends those connections INVALIDATE with the moved chunks and waits for
 * each to acknowledge (it has forgotten them) or to be cut off after
 * --barrier-timeout-ms; a client cut off (or lost) may not know it and
 * use its cache until its grant runs out, so the writer is answered only
 * after that (datapath.c, srv_snap_grants_until).  The INVALIDATE goes out on the same connection
 * after any SNAP_READ answer that carried the old location, so the client
 * drops it after learning it.  Hence a read that starts after the write
 * was acknowledged never uses the old location.
 *
 * Invariants: every wait points at a live connection and a live request
 * (conn close and request completion remove theirs); a request with
 * inval_waiting > 0 stays parked.
 */
#include "src/server/srv.h"

#include "utils/assert.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdlib.h>

/* An INVALIDATE sent, its ack awaited.  */
struct inval_wait {
	struct inval_wait *next;
	struct conn *c;			/* asked to forget */
	uint64_t id;			/* our INVALIDATE's id */
	struct req *r;			/* the SNAP_WRITE waiting for the ack */
	int64_t deadline_ms;
};

/* This file's state (struct srv points at it).  */
struct inval_state {
	struct inval_wait *waits;
	uint64_t seq;			/* last INVALIDATE id */
	uint64_t stat_sent;
};

int inval_init(struct srv *s)
{
	s->inval = calloc(1, sizeof *s->inval);
	return s->inval ? 0 : -ENOMEM;
}

void inval_free(struct srv *s)
{
	if (!s->inval)
		return;
	/* Every connection was closed first, and took its waits along.  */
	CSNAP_ASSERT(!s->inval->waits);
	free(s->inval);
	s->inval = NULL;
}

int inval_note(struct req *r, uint64_t chunk)
{
	if (r->nmoved) {
		struct proto_range *last = &r->moved[r->nmoved - 1];
		if (last->start + last->count == chunk && last->count < UINT32_MAX) {
			last->count++;
			return 0;
		}
		if (chunk >= last->start && chunk < last->start + last->count)
			return 0;
	}
	if (r->nmoved == r->capmoved) {
		uint32_t nc = r->capmoved ? r->capmoved * 2 : 8;
		struct proto_range *n = realloc(r->moved, nc * sizeof *n);
		if (!n)
			return -ENOMEM;
		r->moved = n;
		r->capmoved = nc;
	}
	r->moved[r->nmoved++] = (struct proto_range){ .start = chunk, .count = 1 };
	return 0;
}

unsigned inval_send(struct srv *s, struct req *r)
{
	struct conn *w = r->c;
	int64_t deadline = csnap_now_ms() + (s->o.barrier_timeout_ms > 0 ? s->o.barrier_timeout_ms : 30000);

	r->inval_sent = true;
	for (struct conn *x = s->conns; x; x = x->next) {
		if (x == w || x->dead || x->closing || x->state != CONN_READY ||
		    x->volume != PROTO_VOL_SNAPSHOT || x->snap_id != w->snap_id)
			continue;
		struct inval_wait *iw = calloc(1, sizeof *iw);
		if (!iw) {
			/* Cannot track the ack: the old location must not
			 * survive, so the connection goes.  */
			conn_fail(x, "out of memory for a chunk invalidation");
			continue;
		}
		/* Ranges are at most PROTO_MAX_RANGES: one SNAP_WRITE's.  */
		struct proto_msg m;
		proto_msg_init(&m, PROTO_INVALIDATE, ++s->inval->seq);
		m.u.ranges.n = r->nmoved;
		m.u.ranges.r = r->moved;
		conn_send(x, &m);
		iw->c = x;
		iw->id = m.id;
		iw->r = r;
		iw->deadline_ms = deadline;
		iw->next = s->inval->waits;
		s->inval->waits = iw;
		r->inval_waiting++;
		s->inval->stat_sent++;
	}
	return r->inval_waiting;
}

/* Unlinks the waits matching C (if non-NULL) and R (if non-NULL), and
 * for C, only id ID (if ID != 0).  */
static void drop_waits(struct srv *s, struct conn *c, uint64_t id, struct req *r)
{
	struct inval_wait **p = &s->inval->waits;
	bool kick = false;
	while (*p) {
		struct inval_wait *iw = *p;
		if ((c && iw->c != c) || (id && iw->id != id) || (r && iw->r != r)) {
			p = &iw->next;
			continue;
		}
		*p = iw->next;
		CSNAP_ASSERT(iw->r->inval_waiting > 0);	/* counted in inval_send */
		if (--iw->r->inval_waiting == 0)
			kick = true;
		free(iw);
	}
	if (kick)
		srv_kick(s);
}

void inval_ack(struct srv *s, struct conn *c, uint64_t id)
{
	for (struct inval_wait *iw = s->inval->waits; iw; iw = iw->next)
		if (iw->c == c && iw->id == id) {
			/* waits name live connections and requests only */
			CSNAP_ASSERT(!c->dead && iw->r->inval_waiting > 0);
			drop_waits(s, c, id, NULL);
			return;
		}
	/* The write it was for has finished (its writer went away).  */
}

void inval_conn_gone(struct srv *s, struct conn *c)
{
	drop_waits(s, c, 0, NULL);
}

void inval_req_gone(struct srv *s, struct req *r)
{
	if (r->inval_waiting)
		drop_waits(s, NULL, 0, r);
	free(r->moved);
	r->moved = NULL;
}

void inval_tick(struct srv *s)
{
	int64_t now = csnap_now_ms();
	for (;;) {
		struct inval_wait *iw = s->inval->waits;
		while (iw && iw->deadline_ms > now)
			iw = iw->next;
		if (!iw)
			return;
		CSNAP_ASSERT(!iw->c->dead);	/* conn_close dropped its waits */
		log_warn("client %s did not acknowledge a chunk invalidation in time: cutting it off",
			 iw->c->peer);
		conn_fail(iw->c, "no invalidation ack");	/* removes its waits */
	}
}
