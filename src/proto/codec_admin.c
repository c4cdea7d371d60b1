/*
 * src/proto/codec_admin.c - the other admin message bodies: STATUS (the
 * store and the clients connected to its master), CHANGED (which chunks
 * differ between two snapshots, or a snapshot and the origin) and the
 * resize family (ORIGIN_RESIZE, ORIGIN_SIZE, STORE_GROW).
 *
 * Invariants: a status never counts more free chunks than chunks, nor
 * more than PROTO_MAX_CLIENTS clients, each of a known volume kind; a
 * CHANGED request asks for 1 to PROTO_MAX_RANGES ranges; a size never
 * goes down.  Encode and decode refuse the same values.
 */
#include "src/proto/codec.h"

#include "utils/err.h"

#include <errno.h>

/* ---- STATUS: no request body; the reply describes the store ------------- */

size_t proto_client_info_size(const struct proto_client_info *ci)
{
	/* host_id, volume, snap_id, name and peer with their lengths: as
	 * encoded for PROTO_STATUS replies */
	return 2 + 1 + 4 + 2 + strnlen(ci->name, PROTO_STR_MAX) + 2 + strnlen(ci->peer, PROTO_STR_MAX);
}

int enc_status(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	const struct proto_status *s = &m->u.status;

	if (!reply)
		return 0;
	if (s->nclients > PROTO_MAX_CLIENTS)
		return err_set(EINVAL, "too many clients in status");
	if (!str_ok(s->master_address, PROTO_STR_MAX) || !str_ok(s->master_node, PROTO_STR_MAX))
		return err_set(EINVAL, "invalid master address or node");
	wr_bytes(w, s->store.b, 16);
	wr_u32(w, s->chunk_size);
	wr_u32(w, s->max_snapshots);
	wr_u32(w, s->nsnapshots);
	wr_u64(w, s->store_chunks);
	wr_u64(w, s->free_chunks);
	wr_u64(w, s->origin_size);
	wr_u16(w, s->master_host_id);
	wr_u16(w, s->master_port);
	wr_u64(w, s->generation);
	wr_str(w, s->master_address);
	wr_str(w, s->master_node);
	wr_u32(w, s->nclients);
	for (uint32_t i = 0; i < s->nclients; i++) {
		const struct proto_client_info *ci = &s->clients[i];
		if (!volume_ok(ci->volume) || !str_ok(ci->name, PROTO_STR_MAX) ||
		    !str_ok(ci->peer, PROTO_STR_MAX))
			return err_set(EINVAL, "invalid client entry %u", i);
		wr_u16(w, ci->host_id);
		wr_u8(w, ci->volume);
		wr_u32(w, ci->snap_id);
		wr_str(w, ci->name);
		wr_str(w, ci->peer);
	}
	return 0;
}

void dec_status(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	struct proto_status *s = &m->u.status;

	if (!reply)
		return;
	rd_bytes(r, s->store.b, 16, "store uuid");
	s->chunk_size = rd_u32(r, "chunk size");
	s->max_snapshots = rd_u32(r, "max snapshots");
	s->nsnapshots = rd_u32(r, "snapshot count");
	s->store_chunks = rd_u64(r, "store chunks");
	s->free_chunks = rd_u64(r, "free chunks");
	s->origin_size = rd_u64(r, "origin size");
	s->master_host_id = rd_u16(r, "host id");
	s->master_port = rd_u16(r, "port");
	s->generation = rd_u64(r, "generation");
	rd_str(r, s->master_address, PROTO_STR_MAX, "master address");
	rd_str(r, s->master_node, PROTO_STR_MAX, "master node");
	if (!r->bad && s->free_chunks > s->store_chunks)
		rd_fail(r, "more free chunks than chunks");
	/* 11: a client entry with empty strings */
	s->clients = rd_list(r, PROTO_MAX_CLIENTS, sizeof *s->clients, 11, "client count",
			     "too many clients", "truncated client list", &s->nclients);
	for (uint32_t i = 0; i < s->nclients && !r->bad; i++) {
		struct proto_client_info *ci = &s->clients[i];
		ci->host_id = rd_u16(r, "client");
		ci->volume = rd_u8(r, "client");
		ci->snap_id = rd_u32(r, "client");
		rd_str(r, ci->name, PROTO_STR_MAX, "client name");
		rd_str(r, ci->peer, PROTO_STR_MAX, "client peer");
		if (!r->bad && !volume_ok(ci->volume))
			rd_fail(r, "client volume kind");
	}
}

/* ---- CHANGED: from, to ("": the live origin), where to start, how many
 * ranges at most; the reply is where to go on and the ranges ---------------- */

static bool max_ranges_ok(uint32_t n)
{
	return n >= 1 && n <= PROTO_MAX_RANGES;
}

int enc_changed(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	const struct proto_changed *q = &m->u.changed;

	if (reply) {
		wr_u64(w, m->u.changed_reply.next);
		return enc_range_list(w, &m->u.changed_reply.ranges);
	}
	if (!proto_name_valid(q->from) || (q->to[0] && !proto_name_valid(q->to)))
		return err_set(EINVAL, "invalid snapshot name");
	if (!max_ranges_ok(q->max_ranges))
		return err_set(EINVAL, "max_ranges out of range");
	wr_str(w, q->from);
	wr_str(w, q->to);
	wr_u64(w, q->start);
	wr_u32(w, q->max_ranges);
	return 0;
}

void dec_changed(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	struct proto_changed *q = &m->u.changed;

	if (reply) {
		m->u.changed_reply.next = rd_u64(r, "next chunk");
		dec_range_list(r, &m->u.changed_reply.ranges);
		return;
	}
	rd_name(r, q->from, "from snapshot");
	rd_str(r, q->to, PROTO_NAME_MAX, "to snapshot");
	if (!r->bad && q->to[0] && !proto_name_valid(q->to))
		rd_fail(r, "to snapshot");
	q->start = rd_u64(r, "start chunk");
	q->max_ranges = rd_u32(r, "max ranges");
	if (!r->bad && !max_ranges_ok(q->max_ranges))
		rd_fail(r, "max ranges out of range");
}

/* ---- ORIGIN_RESIZE, STORE_GROW (sizes in the reply), ORIGIN_SIZE (sizes in
 * the request, an empty reply) --------------------------------------------------- */

/* Which direction carries the sizes.  */
static bool resize_has_sizes(uint16_t t, bool reply)
{
	return reply != (t == PROTO_ORIGIN_SIZE);
}

int enc_resize(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	if (!resize_has_sizes(t, reply))
		return 0;
	if (m->u.resize.new_size < m->u.resize.old_size)
		return err_set(EINVAL, "origin size going down");
	wr_u64(w, m->u.resize.old_size);
	wr_u64(w, m->u.resize.new_size);
	return 0;
}

void dec_resize(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (!resize_has_sizes(t, reply))
		return;
	m->u.resize.old_size = rd_u64(r, "old origin size");
	m->u.resize.new_size = rd_u64(r, "new origin size");
	if (!r->bad && m->u.resize.new_size < m->u.resize.old_size)
		rd_fail(r, "origin size going down");
}
