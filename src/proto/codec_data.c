/*
 * src/proto/codec_data.c - the data path's message bodies: chunk range
 * lists (ORIGIN_WRITE, SNAP_READ[_DONE], ORIGIN_READ[_DONE], SNAP_WRITE,
 * LOCK_UPLOAD, INVALIDATE), the extents that answer reads and writes,
 * BARRIER and PING.
 *
 * Invariants: a range is never empty and never runs past UINT64_MAX; an
 * extent is a range that is either on the origin (store_chunk 0) or in
 * the store (store_chunk + count within UINT64_MAX).  Both lists hold at
 * most PROTO_MAX_RANGES entries.  Encode and decode refuse the same
 * values (range_ok, extent_ok).
 */
#include "src/proto/codec.h"

#include "utils/err.h"

#include <errno.h>

static bool range_ok(const struct proto_range *x)
{
	return x->count >= 1 && x->start <= UINT64_MAX - x->count;
}

static bool extent_ok(const struct proto_extent *x)
{
	if (x->count < 1 || x->start > UINT64_MAX - x->count)
		return false;
	if (x->where == PROTO_AT_STORE)
		return x->store_chunk <= UINT64_MAX - x->count;
	if (x->where == PROTO_AT_ORIGIN)
		return x->store_chunk == 0;
	return false;
}

/* ---- range lists (also in CHANGED replies) ------------------------------ */

int enc_range_list(struct wr *w, const struct proto_ranges *rs)
{
	if (rs->n > PROTO_MAX_RANGES)
		return err_set(EINVAL, "%u ranges exceed the limit of %u", rs->n, PROTO_MAX_RANGES);
	for (uint32_t i = 0; i < rs->n; i++)
		if (!range_ok(&rs->r[i]))
			return err_set(EINVAL, "range %u is empty or overflows", i);
	wr_u32(w, rs->n);
	for (uint32_t i = 0; i < rs->n; i++) {
		wr_u64(w, rs->r[i].start);
		wr_u32(w, rs->r[i].count);
	}
	return 0;
}

void dec_range_list(struct rd *r, struct proto_ranges *rs)
{
	rs->r = rd_list(r, PROTO_MAX_RANGES, sizeof *rs->r, 12, "range count", "too many ranges",
			"truncated ranges", &rs->n);
	for (uint32_t i = 0; i < rs->n; i++) {
		rs->r[i].start = rd_u64(r, "range");
		rs->r[i].count = rd_u32(r, "range");
		if (!range_ok(&rs->r[i]))
			rd_fail(r, "empty or overflowing chunk range");
	}
}

/* ---- ORIGIN_WRITE, *_READ_DONE, LOCK_UPLOAD, INVALIDATE: ranges, and an
 * empty reply --------------------------------------------------------------- */

int enc_ranges_only(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	return reply ? 0 : enc_range_list(w, &m->u.ranges);
}

void dec_ranges_only(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (!reply)
		dec_range_list(r, &m->u.ranges);
}

/* ---- SNAP_READ, ORIGIN_READ, SNAP_WRITE: ranges, answered by extents ---- */

int enc_ranges_extents(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	if (!reply)
		return enc_range_list(w, &m->u.ranges);
	const struct proto_extents *es = &m->u.extents;
	if (es->n > PROTO_MAX_RANGES)
		return err_set(EINVAL, "%u extents exceed the limit", es->n);
	wr_u32(w, es->n);
	for (uint32_t i = 0; i < es->n; i++) {
		const struct proto_extent *e = &es->e[i];
		if (!extent_ok(e))
			return err_set(EINVAL, "extent %u is invalid", i);
		wr_u64(w, e->start);
		wr_u32(w, e->count);
		wr_u32(w, e->where);
		wr_u64(w, e->store_chunk);
	}
	return 0;
}

void dec_ranges_extents(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (!reply) {
		dec_range_list(r, &m->u.ranges);
		return;
	}
	struct proto_extents *es = &m->u.extents;
	es->e = rd_list(r, PROTO_MAX_RANGES, sizeof *es->e, 24, "extent count", "too many extents",
			"truncated extents", &es->n);
	for (uint32_t i = 0; i < es->n; i++) {
		struct proto_extent *e = &es->e[i];
		e->start = rd_u64(r, "extent");
		e->count = rd_u32(r, "extent");
		uint32_t where = rd_u32(r, "extent");
		e->where = (uint8_t)where;
		e->store_chunk = rd_u64(r, "extent");
		if (!r->bad && (where > 0xff || !extent_ok(e)))
			rd_fail(r, "invalid extent");
	}
}

/* ---- BARRIER: a sequence number; the reply is empty ------------------------ */

/* A barrier starts a rollback or ends one, not both.  */
static bool barrier_flags_ok(uint16_t flags)
{
	return !((flags & PROTO_F_RB_START) && (flags & PROTO_F_RB_END));
}

int enc_barrier(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	if (reply)
		return 0;
	if (!barrier_flags_ok(m->flags))
		return err_set(EINVAL, "a barrier cannot start and end a rollback");
	wr_u64(w, m->u.barrier.seq);
	return 0;
}

void dec_barrier(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (reply)
		return;
	m->u.barrier.seq = rd_u64(r, "barrier sequence");
	if (!r->bad && !barrier_flags_ok(m->flags))
		rd_fail(r, "a barrier cannot start and end a rollback");
}

/* ---- PING: no body either way ------------------------------------------- */

int enc_ping(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	return 0;
}

void dec_ping(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
}
