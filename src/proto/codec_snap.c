/*
 * src/proto/codec_snap.c - snapshot message bodies: the snapshot info
 * that SNAP_LIST, SNAP_ADDED and the replies to SNAP_CREATE, SNAP_RENAME
 * and SNAP_SET carry, and the requests that name snapshots (create,
 * delete, rollback, rename, set).
 *
 * Invariants: every snapshot name on the wire is valid (proto_name_valid);
 * a snapshot info carries no unknown flag, its request id only with
 * PROTO_SNAP_REQ_ID and a parent (not 0, not itself) only with
 * PROTO_SNAP_PARENT; a request id sent with PROTO_F_REQ_ID is never all
 * zero.  Encode and decode refuse the same values.
 */
#include "src/proto/codec.h"

#include "utils/err.h"

#include <errno.h>

/* ---- snapshot info ------------------------------------------------------ */

static int enc_snapinfo(struct wr *w, const struct proto_snapinfo *s)
{
	if (!proto_name_valid(s->name))
		return err_set(EINVAL, "invalid snapshot name");
	if (s->flags & ~(uint32_t)PROTO_SNAP_KNOWN_FLAGS)
		return err_set(EINVAL, "unknown snapshot flags 0x%x", s->flags);
	wr_u32(w, s->id);
	wr_u32(w, s->flags);
	wr_str(w, s->name);
	wr_u64(w, s->ctime);
	wr_u32(w, (uint32_t)s->priority);
	wr_u32(w, s->usecount);
	wr_u64(w, s->unique_chunks);
	wr_u64(w, s->shared_chunks);
	if (s->flags & PROTO_SNAP_REQ_ID)
		wr_bytes(w, s->req_id, PROTO_REQ_ID_LEN);
	if (s->flags & PROTO_SNAP_PARENT) {
		if (s->parent_id == 0 || s->parent_id == s->id)
			return err_set(EINVAL, "invalid parent snapshot id %u", s->parent_id);
		wr_u32(w, s->parent_id);
	}
	return 0;
}

static void dec_snapinfo(struct rd *r, struct proto_snapinfo *s)
{
	s->id = rd_u32(r, "snapshot id");
	s->flags = rd_u32(r, "snapshot flags");
	rd_str(r, s->name, PROTO_NAME_MAX, "snapshot name");
	s->ctime = rd_u64(r, "snapshot ctime");
	s->priority = (int32_t)rd_u32(r, "snapshot priority");
	s->usecount = rd_u32(r, "snapshot use count");
	s->unique_chunks = rd_u64(r, "snapshot usage");
	s->shared_chunks = rd_u64(r, "snapshot usage");
	if (!r->bad && !proto_name_valid(s->name))
		rd_fail(r, "invalid snapshot name");
	if (!r->bad && (s->flags & ~(uint32_t)PROTO_SNAP_KNOWN_FLAGS))
		rd_fail(r, "unknown snapshot flags");
	if (!r->bad && (s->flags & PROTO_SNAP_REQ_ID))
		rd_bytes(r, s->req_id, PROTO_REQ_ID_LEN, "snapshot request id");
	if (!r->bad && (s->flags & PROTO_SNAP_PARENT)) {
		s->parent_id = rd_u32(r, "parent snapshot id");
		if (!r->bad && (s->parent_id == 0 || s->parent_id == s->id))
			rd_fail(r, "invalid parent snapshot id");
	}
}

/* A request that names one snapshot (SNAP_DELETE, SNAP_ROLLBACK).  */
static int enc_one_name(struct wr *w, const char *name)
{
	if (!proto_name_valid(name))
		return err_set(EINVAL, "invalid snapshot name");
	wr_str(w, name);
	return 0;
}

/* ---- SNAP_ADDED: the master tells an export of a new snapshot ------------- */

int enc_snap_added(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	return reply ? 0 : enc_snapinfo(w, &m->u.snapinfo);
}

void dec_snap_added(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (!reply)
		dec_snapinfo(r, &m->u.snapinfo);
}

/* ---- SNAP_CREATE: name, priority [, request id] [, parent name] ----------- */

int enc_snap_create(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	const struct proto_snap_create *sc = &m->u.snap_create;

	if (reply)
		return enc_snapinfo(w, &m->u.snapinfo);
	if (!proto_name_valid(sc->name))
		return err_set(EINVAL, "invalid snapshot name");
	wr_str(w, sc->name);
	wr_u32(w, (uint32_t)sc->priority);
	if (m->flags & PROTO_F_REQ_ID) {
		if (req_id_zero(sc->req_id))
			return err_set(EINVAL, "request id is all zero");
		wr_bytes(w, sc->req_id, PROTO_REQ_ID_LEN);
	}
	if (m->flags & PROTO_F_FROM) {
		if (!proto_name_valid(sc->from))
			return err_set(EINVAL, "invalid parent snapshot name");
		wr_str(w, sc->from);
	}
	return 0;
}

void dec_snap_create(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	struct proto_snap_create *sc = &m->u.snap_create;

	if (reply) {
		dec_snapinfo(r, &m->u.snapinfo);
		return;
	}
	rd_name(r, sc->name, "snapshot name");
	sc->priority = (int32_t)rd_u32(r, "priority");
	if (m->flags & PROTO_F_REQ_ID) {
		rd_bytes(r, sc->req_id, PROTO_REQ_ID_LEN, "request id");
		if (!r->bad && req_id_zero(sc->req_id))
			rd_fail(r, "request id is all zero");
	}
	if (m->flags & PROTO_F_FROM)
		rd_name(r, sc->from, "parent snapshot name");
}

/* ---- SNAP_DELETE: a name; the reply is empty ------------------------------ */

int enc_snap_delete(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	return reply ? 0 : enc_one_name(w, m->u.snap_name.name);
}

void dec_snap_delete(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (!reply)
		rd_name(r, m->u.snap_name.name, "snapshot name");
}

/* ---- SNAP_ROLLBACK: a name (none with PROTO_F_QUERY); the reply is the
 * rollback's progress -------------------------------------------------------- */

/* Progress: a rollback that runs names a snapshot and has not gone past
 * the origin's end; with none running, everything is zero.  */
static bool rollback_progress_ok(const struct proto_rollback *rb)
{
	if (rb->flags)
		return proto_name_valid(rb->name) && rb->cursor <= rb->origin_chunks;
	return !rb->name[0] && !rb->cursor && !rb->origin_chunks && !rb->started;
}

/* A query names nothing and so deletes nothing.  */
static bool rollback_query_ok(uint16_t flags)
{
	return !((flags & PROTO_F_QUERY) && (flags & PROTO_F_DELETE));
}

int enc_snap_rollback(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	if (reply) {
		const struct proto_rollback *rb = &m->u.rollback;
		if (rb->flags & ~(uint32_t)PROTO_RB_ACTIVE)
			return err_set(EINVAL, "unknown rollback flags 0x%x", rb->flags);
		if (!rollback_progress_ok(rb))
			return err_set(EINVAL, "invalid rollback progress");
		wr_u32(w, rb->flags);
		wr_str(w, rb->name);
		wr_u64(w, rb->cursor);
		wr_u64(w, rb->origin_chunks);
		wr_u64(w, rb->started);
		return 0;
	}
	if (!rollback_query_ok(m->flags))
		return err_set(EINVAL, "a rollback query deletes nothing");
	if (m->flags & PROTO_F_QUERY)
		return 0;
	return enc_one_name(w, m->u.snap_name.name);
}

void dec_snap_rollback(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (reply) {
		struct proto_rollback *rb = &m->u.rollback;
		rb->flags = rd_u32(r, "rollback flags");
		rd_str(r, rb->name, PROTO_NAME_MAX, "snapshot name");
		rb->cursor = rd_u64(r, "rollback cursor");
		rb->origin_chunks = rd_u64(r, "origin chunks");
		rb->started = rd_u64(r, "rollback start");
		if (!r->bad && (rb->flags & ~(uint32_t)PROTO_RB_ACTIVE))
			rd_fail(r, "unknown rollback flags");
		else if (!r->bad && !rollback_progress_ok(rb))
			rd_fail(r, "invalid rollback progress");
		return;
	}
	if (!rollback_query_ok(m->flags))
		rd_fail(r, "a rollback query deletes nothing");
	if (m->flags & PROTO_F_QUERY)
		return;
	rd_name(r, m->u.snap_name.name, "snapshot name");
}

/* ---- SNAP_LIST: no request body; the reply is a list of snapshot infos ---- */

int enc_snap_list(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	const struct proto_snap_list *l = &m->u.snap_list;
	int r;

	if (!reply)
		return 0;
	if (l->n > PROTO_MAX_SNAPSHOTS)
		return err_set(EINVAL, "too many snapshots in list");
	wr_u32(w, l->n);
	for (uint32_t i = 0; i < l->n; i++)
		if ((r = enc_snapinfo(w, &l->s[i])) < 0)
			return r;
	return 0;
}

void dec_snap_list(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	struct proto_snap_list *l = &m->u.snap_list;

	if (!reply)
		return;
	/* A snapinfo is 43 bytes on the wire with a one-byte name.  */
	l->s = rd_list(r, PROTO_MAX_SNAPSHOTS, sizeof *l->s, 43, "snapshot count",
		       "too many snapshots", "truncated snapshot list", &l->n);
	for (uint32_t i = 0; i < l->n && !r->bad; i++)
		dec_snapinfo(r, &l->s[i]);
}

/* ---- SNAP_RENAME: old and new name; the reply is the snapshot's info ------ */

int enc_snap_rename(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	const struct proto_snap_rename *rn = &m->u.snap_rename;

	if (reply)
		return enc_snapinfo(w, &m->u.snapinfo);
	if (!proto_name_valid(rn->name) || !proto_name_valid(rn->new_name))
		return err_set(EINVAL, "invalid snapshot name");
	wr_str(w, rn->name);
	wr_str(w, rn->new_name);
	return 0;
}

void dec_snap_rename(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (reply) {
		dec_snapinfo(r, &m->u.snapinfo);
		return;
	}
	rd_name(r, m->u.snap_rename.name, "snapshot name");
	rd_name(r, m->u.snap_rename.new_name, "new snapshot name");
}

/* ---- SNAP_SET: name, what to set, priority, use count change; the reply is
 * the snapshot's info ------------------------------------------------------------ */

static bool set_mask_ok(uint32_t mask)
{
	return mask && !(mask & ~(uint32_t)(PROTO_SET_PRIORITY | PROTO_SET_USECOUNT));
}

int enc_snap_set(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	const struct proto_snap_set *ss = &m->u.snap_set;

	if (reply)
		return enc_snapinfo(w, &m->u.snapinfo);
	if (!proto_name_valid(ss->name))
		return err_set(EINVAL, "invalid snapshot name");
	if (!set_mask_ok(ss->mask))
		return err_set(EINVAL, "invalid set mask 0x%x", ss->mask);
	wr_str(w, ss->name);
	wr_u32(w, ss->mask);
	wr_u32(w, (uint32_t)ss->priority);
	wr_u32(w, (uint32_t)ss->usecount_delta);
	return 0;
}

void dec_snap_set(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	struct proto_snap_set *ss = &m->u.snap_set;

	if (reply) {
		dec_snapinfo(r, &m->u.snapinfo);
		return;
	}
	rd_name(r, ss->name, "snapshot name");
	ss->mask = rd_u32(r, "set mask");
	ss->priority = (int32_t)rd_u32(r, "priority");
	ss->usecount_delta = (int32_t)rd_u32(r, "use count");
	if (!r->bad && !set_mask_ok(ss->mask))
		rd_fail(r, "invalid set mask");
}
