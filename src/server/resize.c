/*
 * src/server/resize.c - `csnap resize`: the master records that the
 * origin device grew (ORIGIN_RESIZE from an admin connection) and tells
 * every origin client (one per export) the new size (ORIGIN_SIZE).
 * `csnap grow` (STORE_GROW): once no copy-out is in flight and the open
 * transaction is committed, the engine adds the grown store device's
 * space to the data area (src/store/grow.c); exports learn the larger
 * data area when a location beyond the one they knew reaches them
 * (they read the superblock again, volume_snap.c).
 *
 * The new size is the origin device's own, read again here: the admin
 * says only "it grew".  The engine writes it to the superblock durably
 * (src/store/resize.c) before the admin is answered; nothing needs the
 * store quiet, since copy-outs in flight concern the old range, and the
 * new range belongs to no snapshot taken so far.  Exports learn the size
 * from ORIGIN_SIZE at once, or when they (re)connect (the IDENTIFY
 * answer carries it), so an export that missed the message catches up.
 * The admin is answered once the size is recorded and the messages are
 * queued, not when every export has acknowledged.
 */
#include "src/server/srv.h"

#include "ioengine/ioengine.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdio.h>

/* Every ready origin client learns the new size.  */
static void announce(struct srv *s, uint64_t old_size, uint64_t new_size)
{
	struct proto_msg m;
	unsigned n = 0;

	proto_msg_init(&m, PROTO_ORIGIN_SIZE, 0);
	m.u.resize = (struct proto_resize){ old_size, new_size };
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->state != CONN_READY || c->volume != PROTO_VOL_ORIGIN || c->dead || c->closing)
			continue;
		conn_send(c, &m);
		n++;
	}
	log_info("origin resized from %llu to %llu bytes; told %u origin client(s)",
		 (unsigned long long)old_size, (unsigned long long)new_size, n);
}

void admin_origin_resize(struct srv *s, struct req *r)
{
	uint64_t old_size = s->origin_size;
	int rc;

	/* a superblock write: only while the store is certainly ours */
	if (!srv_may_grant(s)) {
		conn_reply_error(r->c, &r->m, EAGAIN, "master lease renewal is late: retry");
		srv_req_done(s, r);
		return;
	}
	if ((rc = io_dev_refresh_size(s->odev)) < 0) {
		conn_reply_error(r->c, &r->m, -rc, err_get());
		srv_req_done(s, r);
		return;
	}
	uint64_t new_size = io_dev_size(s->odev);
	/* the engine writes the superblock only between commits */
	if ((rc = srv_commit_flight_wait(s)) < 0 ||
	    (rc = store_origin_resize(s->st, new_size)) < 0) {
		char why[300];
		snprintf(why, sizeof why, "%s", err_get());
		conn_reply_error(r->c, &r->m, -rc, why);
		srv_req_done(s, r);
		return;
	}
	if (new_size != old_size) {
		s->origin_size = new_size;
		store_get_info(s->st, &s->info);
		announce(s, old_size, new_size);
	}
	struct proto_msg ok;
	proto_msg_init(&ok, PROTO_ORIGIN_RESIZE | PROTO_REPLY, r->m.id);
	ok.u.resize = (struct proto_resize){ old_size, new_size };
	conn_send(r->c, &ok);
	srv_req_done(s, r);
}

static void reply_err(struct srv *s, struct req *r, int err, const char *why)
{
	char w[300];

	snprintf(w, sizeof w, "%s", why);	/* (err_get()'s buffer is reused) */
	conn_reply_error(r->c, &r->m, err, w);
	srv_req_done(s, r);
}

void admin_store_grow(struct srv *s, struct req *r)
{
	if (admin_quiet_or_park(s, r))
		return;
	int rc = srv_commit_now(s);
	if (rc < 0) {
		reply_err(s, r, rc == -EAGAIN ? EAGAIN : -rc, err_get());
		return;
	}
	/* superblock writes: only while the store is certainly ours */
	if (!srv_may_grant(s)) {
		reply_err(s, r, EAGAIN, "master lease renewal is late: retry");
		return;
	}
	uint64_t cs = s->chunk_size, old = s->info.data_chunks, added;
	if ((rc = store_grow(s->st, &added)) < 0) {
		reply_err(s, r, -rc, err_get());
		return;
	}
	store_get_info(s->st, &s->info);
	if (added)
		log_info("store grown: %llu data chunks added (%llu now)", (unsigned long long)added,
			 (unsigned long long)s->info.data_chunks);
	struct proto_msg ok;
	proto_msg_init(&ok, PROTO_STORE_GROW | PROTO_REPLY, r->m.id);
	ok.u.resize = (struct proto_resize){ old * cs, s->info.data_chunks * cs };
	conn_send(r->c, &ok);
	srv_req_done(s, r);
}

void admin_origin_size_ack(struct srv *s, struct conn *c, const struct proto_msg *m)
{
	(void)s;
	if (m->status)	/* it serves the old size until it reconnects */
		log_warn("client %s (%s): cannot serve the new origin size: %s", c->peer, c->name,
			 m->error);
}
