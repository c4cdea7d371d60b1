/*
 * src/server/admin_query.c - the admin requests that only read: SNAP_LIST
 * (with usage counters unless PROTO_F_NO_USAGE), STATUS (the store and
 * the connected clients), CHANGED (the chunks that differ between two
 * snapshots, or a snapshot and the origin, a bounded walk a request).
 *
 * Invariants: nothing here parks a request or commits; every
 * reply fits one message (a status lists only the clients that fit); a
 * CHANGED reply's cursor (next) is past the asked start whenever the
 * walk stopped early, so a client asking again always advances.
 */
#include "src/server/srv.h"
#include "src/server/admin_int.h"

#include "utils/assert.h"
#include "utils/err.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A CHANGED walk's share of the master's time per request: 10 ms is about
 * 100 K exceptions here, so a whole-store diff costs one round trip per
 * 100 K exceptions and every other request waits at most this long.  */
#define CHANGED_WALK_NS		(10 * 1000 * 1000)

void admin_snap_list(struct srv *s, struct req *r)
{
	unsigned max = PROTO_MAX_SNAPSHOTS;
	struct store_snapshot *sn = calloc(max, sizeof *sn);
	struct store_usage *u = calloc(max, sizeof *u);
	struct proto_msg m;
	proto_msg_init(&m, PROTO_SNAP_LIST | PROTO_REPLY, r->m.id);
	m.u.snap_list.s = calloc(max, sizeof *m.u.snap_list.s);
	if (!sn || !u || !m.u.snap_list.s) {
		free(sn);
		free(u);
		free(m.u.snap_list.s);
		admin_reply_err(s, r, ENOMEM, "server out of memory");
		return;
	}
	int n = store_snapshot_list(s->st, sn, max);
	/* The exports poll the list every second for new names: they ask
	 * without usage (the counters cost O(snapshots), but an older
	 * export refuses PROTO_SNAP_USAGE_UNKNOWN).  */
	int nu = n < 0 ? n : (r->m.flags & PROTO_F_NO_USAGE) ? 0 : store_usage(s->st, u, max);
	if (n < 0 || nu < 0) {
		admin_reply_err(s, r, EIO, err_get());
	} else {
		if ((unsigned)n > max)
			n = (int)max;
		int ku = 0;
		for (int i = 0; i < n; i++) {
			if (!(sn[i].flags & STORE_SNAP_LIVE))
				continue;
			/* both ordered by id, u[] the live subset of sn[] */
			const struct store_usage *uu = NULL;
			while (ku < nu && ku < (int)max && u[ku].id < sn[i].id)
				ku++;
			if (ku < nu && ku < (int)max && u[ku].id == sn[i].id)
				uu = &u[ku];
			struct proto_snapinfo *si = &m.u.snap_list.s[m.u.snap_list.n++];
			admin_fill_snapinfo(&sn[i], uu, si);
			/* Only to a client that asked: an older one refuses the
			 * flag.  csnap receive checks a snapshot's source by it. */
			static const uint8_t zero[PROTO_REQ_ID_LEN];
			if ((r->m.flags & PROTO_F_REQ_IDS) && memcmp(sn[i].req_id, zero, sizeof zero)) {
				si->flags |= PROTO_SNAP_REQ_ID;
				memcpy(si->req_id, sn[i].req_id, PROTO_REQ_ID_LEN);
			}
			/* (the exports poll without usage: they never see it) */
			if (!(r->m.flags & PROTO_F_NO_USAGE) && sn[i].parent_id) {
				CSNAP_ASSERT(sn[i].parent_id != sn[i].id);
				si->flags |= PROTO_SNAP_PARENT;
				si->parent_id = sn[i].parent_id;
			}
		}
		conn_send(r->c, &m);
		srv_req_done(s, r);
	}
	free(sn);
	free(u);
	free(m.u.snap_list.s);
}

void admin_status(struct srv *s, struct req *r)
{
	struct proto_msg m;
	struct proto_status *st = &m.u.status;
	proto_msg_init(&m, PROTO_STATUS | PROTO_REPLY, r->m.id);
	store_get_info(s->st, &s->info);
	st->store = s->uuid;
	st->chunk_size = s->chunk_size;
	st->max_snapshots = s->info.sb.max_snapshots;
	st->nsnapshots = s->info.snapshots;
	st->store_chunks = s->info.data_chunks;
	st->free_chunks = s->info.data_free <= s->info.data_chunks ? s->info.data_free : s->info.data_chunks;
	st->origin_size = s->origin_size;
	st->master_host_id = (uint16_t)s->o.host_id;
	st->master_port = s->port;
	st->generation = s->epoch;
	snprintf(st->master_address, sizeof st->master_address, "%s", s->address);
	snprintf(st->master_node, sizeof st->master_node, "%s", s->o.node_name ? s->o.node_name : "");
	unsigned n = 0;
	for (struct conn *c = s->conns; c; c = c->next)
		if (c->state == CONN_READY)
			n++;
	if (n > PROTO_MAX_CLIENTS)
		n = PROTO_MAX_CLIENTS;
	st->clients = calloc(n ? n : 1, sizeof *st->clients);
	if (!st->clients) {
		admin_reply_err(s, r, ENOMEM, "server out of memory");
		return;
	}
	/* As many as fit in one message (many clients with long names do
	 * not): an unsendable reply would cost the asker its connection.  */
	size_t room = PROTO_MAX_PAYLOAD - PROTO_STATUS_FIXED_MAX;
	for (struct conn *c = s->conns; c && st->nclients < n; c = c->next) {
		if (c->state != CONN_READY)
			continue;
		struct proto_client_info *ci = &st->clients[st->nclients];
		ci->host_id = c->host_id;
		ci->volume = c->volume;
		ci->snap_id = c->snap_id;
		snprintf(ci->name, sizeof ci->name, "%s", c->name);
		snprintf(ci->peer, sizeof ci->peer, "%s", c->peer);
		size_t sz = proto_client_info_size(ci);
		if (sz > room)
			break;
		room -= sz;
		st->nclients++;
	}
	conn_send(r->c, &m);
	free(st->clients);
	srv_req_done(s, r);
}

void admin_changed(struct srv *s, struct req *r)
{
	const struct proto_changed *q = &r->m.u.changed;
	struct store_snapshot a, b;
	if (store_snapshot_find(s->st, q->from, &a) < 0) {
		admin_reply_err(s, r, ENOENT, "no such snapshot");
		return;
	}
	if (!q->to[0])
		b.id = STORE_ORIGIN_ID;		/* against the live origin */
	else if (store_snapshot_find(s->st, q->to, &b) < 0) {
		admin_reply_err(s, r, ENOENT, "no such snapshot");
		return;
	}
	struct proto_msg m;
	proto_msg_init(&m, PROTO_CHANGED | PROTO_REPLY, r->m.id);
	struct proto_ranges *rs = &m.u.changed_reply.ranges;
	rs->r = calloc(q->max_ranges, sizeof *rs->r);
	chunk_t *buf = calloc(4096, sizeof *buf);
	if (!rs->r || !buf) {
		free(rs->r);
		free(buf);
		admin_reply_err(s, r, ENOMEM, "server out of memory");
		return;
	}
	/* One request walks for at most CHANGED_WALK_NS (store_changed stops
	 * itself every 8 K entries): where nothing changed after the asked
	 * chunk the walk would otherwise cover every exception to the end of
	 * the store while the master answers nobody (14-20 s at 10 M
	 * exceptions).  The reply's cursor says where to go on; clients ask
	 * again (the CLI) or report "unchanged up to there" (NBD block
	 * status, which may describe less than was asked).  */
	const int64_t walk_end = csnap_now_ns() + (s->o.changed_walk_ns > 0 ? s->o.changed_walk_ns
									      : CHANGED_WALK_NS);
	chunk_t cursor = q->start;
	uint64_t next = STORE_CHUNK_END;
	while (cursor != STORE_CHUNK_END) {
		if (cursor != q->start && csnap_now_ns() >= walk_end) {
			CSNAP_ASSERT(cursor > q->start);	/* the reply's cursor advances */
			next = cursor;
			break;
		}
		int n = store_changed(s->st, a.id, b.id, &cursor, buf, 4096);
		if (n < 0) {
			free(rs->r);
			free(buf);
			admin_reply_err(s, r, EIO, err_get());
			return;
		}
		int i;
		for (i = 0; i < n; i++) {
			struct proto_range *last = rs->n ? &rs->r[rs->n - 1] : NULL;
			if (last && last->start + last->count == buf[i] && last->count < UINT32_MAX) {
				last->count++;
				continue;
			}
			if (rs->n == q->max_ranges)
				break;
			rs->r[rs->n++] = (struct proto_range){ buf[i], 1 };
		}
		if (i < n) {
			next = buf[i];
			break;
		}
		if (n == 0 && cursor != STORE_CHUNK_END)
			continue;
	}
	m.u.changed_reply.next = next;
	conn_send(r->c, &m);
	free(rs->r);
	free(buf);
	srv_req_done(s, r);
}
