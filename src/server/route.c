/*
 * src/server/route.c - what an identified connection may send and who
 * handles it: one table, {message type, volumes allowed, handler}, used
 * both when a message arrives (route_message) and when a parked request is
 * processed again (route_process).  Also the protocol side of sending
 * (grant bookkeeping on replies) and of a connection going away; the
 * socket side is conn.c.
 *
 * Invariants: a request reaches its handler only if its type is in the
 * table and the connection's volume is allowed for it, every time it is
 * processed (first arrival or after parking); a type the table does not
 * list as a request (a handshake message, a server-to-client message, a
 * reply nobody waits for) closes the connection as a protocol error; a
 * listed type from a volume not allowed is answered EPERM and nothing
 * else happens.  Nothing here depends on the numeric order of
 * enum proto_type.
 */
#include "src/server/srv.h"

#include "utils/assert.h"
#include "utils/clock.h"
#include "utils/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define VOL(v)		(1u << (v))
#define VOL_DATA	(VOL(PROTO_VOL_ORIGIN) | VOL(PROTO_VOL_SNAPSHOT))
#define VOL_ANY		(VOL_DATA | VOL(PROTO_VOL_ADMIN))

/* A data request: an NBD client uses the volume (clears conn.passive).  */
#define R_DATA		0x1
/* Its answer renews the client's grant (proto.h): processed only while
 * our lease is certainly valid, parked otherwise.  (ORIGIN_WRITE checks
 * that itself, last, after its copy-outs.)  */
#define R_GRANT		0x2

struct route {
	uint16_t type;		/* with PROTO_REPLY for acknowledgements */
	uint8_t volumes;	/* VOL() bits of the volumes that may send it */
	uint8_t flags;		/* R_* */
	/* exactly one of: */
	void (*request)(struct srv *s, struct req *r);
	void (*ack)(struct srv *s, struct conn *c, const struct proto_msg *m);
};

static void ping(struct srv *s, struct req *r);
static void added_ack(struct srv *s, struct conn *c, const struct proto_msg *m);
static void barrier_ack(struct srv *s, struct conn *c, const struct proto_msg *m);
static void invalidate_ack(struct srv *s, struct conn *c, const struct proto_msg *m);

static const struct route routes[] = {
	{ PROTO_ORIGIN_WRITE,	VOL(PROTO_VOL_ORIGIN),	 R_DATA,	  dp_origin_write,	NULL },
	{ PROTO_SNAP_READ,	VOL(PROTO_VOL_SNAPSHOT), R_DATA | R_GRANT, dp_snap_read,	NULL },
	{ PROTO_SNAP_READ_DONE,	VOL(PROTO_VOL_SNAPSHOT), R_DATA | R_GRANT, dp_snap_read_done, NULL },
	{ PROTO_SNAP_WRITE,	VOL(PROTO_VOL_SNAPSHOT), R_DATA | R_GRANT, dp_snap_write,	NULL },
	{ PROTO_LOCK_UPLOAD,	VOL(PROTO_VOL_SNAPSHOT), R_DATA | R_GRANT, dp_lock_upload,	NULL },
	{ PROTO_ORIGIN_READ,	VOL(PROTO_VOL_ORIGIN),	 R_DATA | R_GRANT, dp_origin_read,	NULL },
	{ PROTO_ORIGIN_READ_DONE, VOL(PROTO_VOL_ORIGIN), R_DATA,	  dp_origin_read_done,	NULL },
	{ PROTO_PING,		VOL_DATA,		 0,		  ping,			NULL },
	/* admin requests come from any authenticated client */
	{ PROTO_SNAP_CREATE,	VOL_ANY,		 0,		  admin_snap_create,	NULL },
	{ PROTO_SNAP_DELETE,	VOL_ANY,		 0,		  admin_snap_delete,	NULL },
	{ PROTO_SNAP_SET,	VOL_ANY,		 0,		  admin_snap_set,	NULL },
	{ PROTO_SNAP_RENAME,	VOL(PROTO_VOL_ADMIN),	 0,		  admin_snap_rename,	NULL },
	{ PROTO_ORIGIN_RESIZE,	VOL(PROTO_VOL_ADMIN),	 0,		  admin_origin_resize,	NULL },
	{ PROTO_STORE_GROW,	VOL(PROTO_VOL_ADMIN),	 0,		  admin_store_grow,	NULL },
	{ PROTO_SNAP_ROLLBACK,	VOL(PROTO_VOL_ADMIN),	 0,		  admin_snap_rollback,	NULL },
	{ PROTO_SNAP_LIST,	VOL_ANY,		 0,		  admin_snap_list,	NULL },
	{ PROTO_STATUS,		VOL_ANY,		 0,		  admin_status,		NULL },
	{ PROTO_CHANGED,	VOL_ANY,		 0,		  admin_changed,	NULL },
	/* acknowledgements of what the server sent */
	{ PROTO_BARRIER | PROTO_REPLY,	  VOL(PROTO_VOL_ORIGIN),   0, NULL, barrier_ack },
	{ PROTO_SNAP_ADDED | PROTO_REPLY, VOL(PROTO_VOL_ORIGIN),   0, NULL, added_ack },
	{ PROTO_INVALIDATE | PROTO_REPLY, VOL(PROTO_VOL_SNAPSHOT), 0, NULL, invalidate_ack },
	{ PROTO_ORIGIN_SIZE | PROTO_REPLY, VOL(PROTO_VOL_ORIGIN),  0, NULL, admin_origin_size_ack },
};

static const struct route *route_find(uint16_t type)
{
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (routes[i].type == type)
			return &routes[i];
	return NULL;
}

static bool route_allows(const struct route *rt, uint8_t volume)
{
	return volume < 8 && (rt->volumes & VOL(volume));
}

/* ---- handlers that live here --------------------------------------------- */

/* Renews the grant: only while the lease is certainly ours.  Refused, not
 * parked: the client retries on its own schedule.  */
static void ping(struct srv *s, struct req *r)
{
	if (srv_may_grant(s)) {
		struct proto_msg ok;
		proto_msg_init(&ok, PROTO_PING | PROTO_REPLY, r->m.id);
		conn_send(r->c, &ok);
	} else {
		conn_reply_error(r->c, &r->m, EAGAIN, "master lease renewal is late: no grant");
	}
	srv_req_done(s, r);
}

static void barrier_ack(struct srv *s, struct conn *c, const struct proto_msg *m)
{
	admin_barrier_ack(s, c, m->id);
}

static void added_ack(struct srv *s, struct conn *c, const struct proto_msg *m)
{
	if (m->status)
		log_warn("client %s: cannot serve the new snapshot: %s", c->peer, m->error);
	admin_added_ack(s, c, m->id);
}

static void invalidate_ack(struct srv *s, struct conn *c, const struct proto_msg *m)
{
	inval_ack(s, c, m->id);
}

/* ---- dispatch --------------------------------------------------------------- */

void route_process(struct srv *s, struct req *r)
{
	const struct route *rt = route_find(r->m.type);

	/* route_message let it in: the table said so, and still says so.  */
	CSNAP_ASSERT(rt && rt->request && route_allows(rt, r->c->volume));
	CSNAP_ASSERT(!r->parked);
	if (r->c->dead) {
		srv_req_done(s, r);	/* nobody to answer */
		return;
	}
	if ((rt->flags & R_GRANT) && !srv_may_grant(s)) {
		srv_park(s, r);
		return;
	}
	char why[PROTO_STR_MAX + 1];
	if ((rt->flags & R_DATA) && r->c->volume == PROTO_VOL_SNAPSHOT &&
	    rb_snap_blocked(s, r->c->snap_id, why, sizeof why)) {
		conn_reply_error(r->c, &r->m, EBUSY, why);
		srv_req_done(s, r);
		return;
	}
	rt->request(s, r);
}

void route_message(struct conn *c, struct proto_msg *m)
{
	struct srv *s = c->s;
	const struct route *rt = route_find(m->type);

	CSNAP_ASSERT(c->state == CONN_READY && !c->dead);
	if (!rt) {
		char why[64];
		snprintf(why, sizeof why, "unexpected %s%s", proto_type_name(m->type & ~PROTO_REPLY),
			 (m->type & PROTO_REPLY) ? " reply" : "");
		proto_msg_free(m);
		conn_fail(c, why);
		return;
	}
	if (rt->ack) {
		if (route_allows(rt, c->volume))
			rt->ack(s, c, m);
		else
			conn_fail(c, "unexpected reply");
		proto_msg_free(m);
		return;
	}
	if (!route_allows(rt, c->volume)) {
		conn_reply_error(c, m, EPERM, "request not allowed on this volume");
		proto_msg_free(m);
		return;
	}
	struct req *r = calloc(1, sizeof *r);
	if (!r) {
		conn_reply_error(c, m, ENOMEM, "server out of memory");
		proto_msg_free(m);
		return;
	}
	r->c = c;
	c->refs++;
	r->m = *m;
	s->stat_queries++;
	if (rt->flags & R_DATA)
		c->passive = false;	/* an NBD client uses it */
	route_process(s, r);
}

/* ---- the protocol side of sending and closing ---------------------------- */

void conn_send(struct conn *c, const struct proto_msg *m)
{
	if (!c || c->dead)
		return;
	/* Every successful reply renews the client's grant (proto.h): note
	 * when, so we know when it has certainly run out.  The client counts
	 * from when it sent the request, which is before now.  */
	if ((m->type & PROTO_REPLY) && !m->status && c->state == CONN_READY &&
	    c->volume != PROTO_VOL_ADMIN)
		c->granted_ms = csnap_now_ms();
	conn_queue(c, m);
}

void conn_reply_error(struct conn *c, const struct proto_msg *req, int errnum, const char *why)
{
	struct proto_msg m;
	proto_msg_error(&m, req, (uint32_t)(errnum < 0 ? -errnum : errnum), why);
	conn_send(c, &m);
}

void srv_conn_gone(struct srv *s, struct conn *c)
{
	CSNAP_ASSERT(c->dead);
	/* Until its grant runs out the client may still write chunks it
	 * knows to be unique (it may not know it was cut off): no snapshot
	 * commit before that.  */
	srv_grant_gone(s, c);
	dp_conn_gone(s, c);
	inval_conn_gone(s, c);
	admin_barrier_conn_gone(s, c);
}
