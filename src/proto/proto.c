/*
 * src/proto/proto.c - encode and decode csnap protocol messages.
 *
 * enc_body() writes every message body, one case per message type, and
 * dec_body() reads it back in a case of the same shape; the shapes several
 * messages share (range lists, snapshot info) have one enc_/dec_ pair
 * each.  Both go through the small cursor helpers below, so every read
 * is bounds-checked and every field range-checked in one place.  Decoding
 * never trusts a length before checking it against what is left in the
 * payload, and a payload with bytes left over is rejected too: a message
 * has exactly one valid encoding.
 */
#include "src/proto/proto.h"

#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"
#include "utils/snapname.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ---- buffers ----------------------------------------------------------- */

void proto_buf_init(struct proto_buf *b)
{
	memset(b, 0, sizeof *b);
}

void proto_buf_free(struct proto_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

int proto_buf_reserve(struct proto_buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return 0;
	if (b->off) {
		proto_buf_compact(b);
		if (b->len + more <= b->cap)
			return 0;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return err_set(ENOMEM, "out of memory for a %zu byte buffer", cap);
	b->data = p;
	b->cap = cap;
	return 0;
}

void proto_buf_compact(struct proto_buf *b)
{
	if (!b->off)
		return;
	memmove(b->data, b->data + b->off, b->len - b->off);
	b->len -= b->off;
	b->off = 0;
}

/* ---- writing ----------------------------------------------------------- */

struct wr {
	struct proto_buf *b;
	int err;
};

static uint8_t *wr_room(struct wr *w, size_t n)
{
	if (w->err)
		return NULL;
	int r = proto_buf_reserve(w->b, n);
	if (r < 0) {
		w->err = r;
		return NULL;
	}
	uint8_t *p = w->b->data + w->b->len;
	w->b->len += n;
	return p;
}

static void wr_u8(struct wr *w, uint8_t v)   { uint8_t *p = wr_room(w, 1); if (p) *p = v; }
static void wr_u16(struct wr *w, uint16_t v) { uint8_t *p = wr_room(w, 2); if (p) put_le16(p, v); }
static void wr_u32(struct wr *w, uint32_t v) { uint8_t *p = wr_room(w, 4); if (p) put_le32(p, v); }
static void wr_u64(struct wr *w, uint64_t v) { uint8_t *p = wr_room(w, 8); if (p) put_le64(p, v); }
static void wr_bytes(struct wr *w, const void *s, size_t n)
{
	uint8_t *p = wr_room(w, n);
	if (p && n)
		memcpy(p, s, n);
}
static void wr_str(struct wr *w, const char *s)
{
	size_t n = strnlen(s, PROTO_STR_MAX + 1);
	wr_u16(w, (uint16_t)n);
	wr_bytes(w, s, n);
}

/* ---- reading ----------------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t len, off;
	const char *bad;	/* first problem met, NULL if none */
};

static bool rd_need(struct rd *r, size_t n, const char *what)
{
	if (r->bad)
		return false;
	if (r->len - r->off < n) {
		r->bad = what;
		return false;
	}
	return true;
}

static uint8_t rd_u8(struct rd *r, const char *what)
{
	if (!rd_need(r, 1, what)) return 0;
	return r->p[r->off++];
}
static uint16_t rd_u16(struct rd *r, const char *what)
{
	if (!rd_need(r, 2, what)) return 0;
	uint16_t v = get_le16(r->p + r->off); r->off += 2; return v;
}
static uint32_t rd_u32(struct rd *r, const char *what)
{
	if (!rd_need(r, 4, what)) return 0;
	uint32_t v = get_le32(r->p + r->off); r->off += 4; return v;
}
static uint64_t rd_u64(struct rd *r, const char *what)
{
	if (!rd_need(r, 8, what)) return 0;
	uint64_t v = get_le64(r->p + r->off); r->off += 8; return v;
}
static void rd_bytes(struct rd *r, void *dst, size_t n, const char *what)
{
	if (!rd_need(r, n, what)) { memset(dst, 0, n); return; }
	memcpy(dst, r->p + r->off, n);
	r->off += n;
}
static void rd_fail(struct rd *r, const char *why)
{
	if (!r->bad)
		r->bad = why;
}

static bool str_clean(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* A string of at most max bytes into dst[max + 1].  */
static void rd_str(struct rd *r, char *dst, size_t max, const char *what)
{
	uint16_t n = rd_u16(r, what);
	dst[0] = '\0';
	if (r->bad)
		return;
	if (n > max) {
		rd_fail(r, what);
		return;
	}
	if (!rd_need(r, n, what))
		return;
	memcpy(dst, r->p + r->off, n);
	dst[n] = '\0';
	r->off += n;
	if (!str_clean(dst, n))
		rd_fail(r, what);
}

/* ---- field checks shared by encode and decode -------------------------- */

bool proto_name_valid(const char *name)
{
	return snap_name_valid(name);
}

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

static bool str_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	return n <= max && str_clean(s, n);
}

/* Which header flags each request type may carry.  */
static uint16_t flags_allowed(uint16_t type)
{
	switch (type) {
	case PROTO_SNAP_WRITE:	return PROTO_F_FULL_CHUNKS;
	case PROTO_IDENTIFY:	return PROTO_F_RECONNECT | PROTO_F_PASSIVE | PROTO_F_ROLLBACK_OK;
	case PROTO_BARRIER:	return PROTO_F_RB_START | PROTO_F_RB_END;
	case PROTO_SNAP_LIST:	return PROTO_F_NO_USAGE | PROTO_F_REQ_IDS;
	case PROTO_SNAP_CREATE:	return PROTO_F_REQ_ID | PROTO_F_FROM;
	case PROTO_SNAP_ROLLBACK: return PROTO_F_DELETE | PROTO_F_QUERY;
	default:		return 0;
	}
}

size_t proto_client_info_size(const struct proto_client_info *ci)
{
	/* host_id, volume, snap_id, name and peer with their lengths: as
	 * encoded for PROTO_STATUS replies */
	return 2 + 1 + 4 + 2 + strnlen(ci->name, PROTO_STR_MAX) + 2 + strnlen(ci->peer, PROTO_STR_MAX);
}

const char *proto_type_name(uint16_t type)
{
	static const char *names[] = {
		[PROTO_CHALLENGE] = "challenge", [PROTO_AUTH] = "auth",
		[PROTO_IDENTIFY] = "identify", [PROTO_ORIGIN_WRITE] = "origin-write",
		[PROTO_SNAP_READ] = "snap-read", [PROTO_SNAP_READ_DONE] = "snap-read-done",
		[PROTO_SNAP_WRITE] = "snap-write", [PROTO_LOCK_UPLOAD] = "lock-upload",
		[PROTO_BARRIER] = "barrier", [PROTO_INVALIDATE] = "invalidate", [PROTO_SNAP_CREATE] = "snap-create",
		[PROTO_SNAP_DELETE] = "snap-delete", [PROTO_SNAP_LIST] = "snap-list",
		[PROTO_SNAP_SET] = "snap-set", [PROTO_STATUS] = "status",
		[PROTO_CHANGED] = "changed", [PROTO_PING] = "ping",
		[PROTO_SNAP_ADDED] = "snap-added", [PROTO_SNAP_RENAME] = "snap-rename",
		[PROTO_ORIGIN_RESIZE] = "origin-resize", [PROTO_ORIGIN_SIZE] = "origin-size",
		[PROTO_STORE_GROW] = "store-grow", [PROTO_SNAP_ROLLBACK] = "snap-rollback",
		[PROTO_ORIGIN_READ] = "origin-read", [PROTO_ORIGIN_READ_DONE] = "origin-read-done",
	};
	uint16_t t = type & (uint16_t)~PROTO_REPLY;
	if (t == 0 || t > PROTO_TYPE_MAX)
		return "unknown";
	return names[t];
}

/* ---- per-shape encoders ------------------------------------------------ */

/* Each checks its values before it writes them (the caller drops a
 * message whose encoding failed).  */
static int enc_ranges(struct wr *w, const struct proto_ranges *rs)
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

/* Validates and writes the body of a request (or of a successful reply,
 * reply true).  */
static int enc_body(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	int r;

	switch (t) {
	case PROTO_CHALLENGE:
		if (reply)
			return err_set(EINVAL, "challenge has no reply");
		wr_u64(w, PROTO_MAGIC);
		wr_u16(w, m->u.challenge.version_min);
		wr_u16(w, m->u.challenge.version_max);
		wr_bytes(w, m->u.challenge.store.b, 16);
		wr_bytes(w, m->u.challenge.nonce, PROTO_NONCE_LEN);
		return 0;
	case PROTO_AUTH:
		if (reply) {
			wr_bytes(w, m->u.auth_ok.mac, PROTO_MAC_LEN);
			return 0;
		}
		wr_u16(w, m->u.auth.version);
		wr_bytes(w, m->u.auth.nonce, PROTO_NONCE_LEN);
		wr_bytes(w, m->u.auth.mac, PROTO_MAC_LEN);
		return 0;
	case PROTO_IDENTIFY:
		if (reply) {
			const struct proto_identify_ok *o = &m->u.identify_ok;
			wr_u32(w, o->chunk_size);
			wr_u32(w, o->snap_id);
			wr_u64(w, o->origin_size);
			wr_u64(w, o->volume_size);
			wr_u64(w, o->store_data_offset);
			wr_u64(w, o->generation);
			if (o->has_state) {
				if (o->state & ~(uint32_t)PROTO_STATE_ROLLBACK)
					return err_set(EINVAL, "unknown volume state 0x%x", o->state);
				wr_u32(w, o->state);
			}
			return 0;
		} else {
			const struct proto_identify *id = &m->u.identify;
			if (id->volume < PROTO_VOL_ORIGIN || id->volume > PROTO_VOL_ADMIN)
				return err_set(EINVAL, "unknown volume kind %u", id->volume);
			if (id->volume == PROTO_VOL_SNAPSHOT ? !proto_name_valid(id->snapshot)
							     : id->snapshot[0] != '\0')
				return err_set(EINVAL, "invalid snapshot name for volume kind %u", id->volume);
			if (!str_ok(id->client, PROTO_STR_MAX))
				return err_set(EINVAL, "invalid client name");
			wr_bytes(w, id->store.b, 16);
			wr_u8(w, id->volume);
			wr_u16(w, id->host_id);
			wr_str(w, id->snapshot);
			wr_str(w, id->client);
			return 0;
		}
	case PROTO_ORIGIN_WRITE:
	case PROTO_SNAP_READ_DONE:
	case PROTO_ORIGIN_READ_DONE:
	case PROTO_LOCK_UPLOAD:
	case PROTO_INVALIDATE:
		if (reply)
			return 0;
		/* fallthrough */
	case PROTO_SNAP_READ:
	case PROTO_ORIGIN_READ:
	case PROTO_SNAP_WRITE:
		if (!reply) {
			return enc_ranges(w, &m->u.ranges);
		} else {
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
	case PROTO_BARRIER:
		if (!reply) {
			if ((m->flags & PROTO_F_RB_START) && (m->flags & PROTO_F_RB_END))
				return err_set(EINVAL, "a barrier cannot start and end a rollback");
			wr_u64(w, m->u.barrier.seq);
		}
		return 0;
	case PROTO_PING:
		return 0;
	case PROTO_SNAP_ADDED:
		if (reply)
			return 0;
		return enc_snapinfo(w, &m->u.snapinfo);
	case PROTO_SNAP_CREATE:
		if (reply) {
			return enc_snapinfo(w, &m->u.snapinfo);
		}
		if (!proto_name_valid(m->u.snap_create.name))
			return err_set(EINVAL, "invalid snapshot name");
		wr_str(w, m->u.snap_create.name);
		wr_u32(w, (uint32_t)m->u.snap_create.priority);
		if (m->flags & PROTO_F_REQ_ID) {
			static const uint8_t zero[PROTO_REQ_ID_LEN];
			if (!memcmp(m->u.snap_create.req_id, zero, sizeof zero))
				return err_set(EINVAL, "request id is all zero");
			wr_bytes(w, m->u.snap_create.req_id, PROTO_REQ_ID_LEN);
		}
		if (m->flags & PROTO_F_FROM) {
			if (!proto_name_valid(m->u.snap_create.from))
				return err_set(EINVAL, "invalid parent snapshot name");
			wr_str(w, m->u.snap_create.from);
		}
		return 0;
	case PROTO_SNAP_DELETE:
		if (reply)
			return 0;
		if (!proto_name_valid(m->u.snap_name.name))
			return err_set(EINVAL, "invalid snapshot name");
		wr_str(w, m->u.snap_name.name);
		return 0;
	case PROTO_SNAP_ROLLBACK:
		if (reply) {
			const struct proto_rollback *rb = &m->u.rollback;
			if (rb->flags & ~(uint32_t)PROTO_RB_ACTIVE)
				return err_set(EINVAL, "unknown rollback flags 0x%x", rb->flags);
			if (rb->flags ? !proto_name_valid(rb->name) || rb->cursor > rb->origin_chunks
				      : rb->name[0] || rb->cursor || rb->origin_chunks || rb->started)
				return err_set(EINVAL, "invalid rollback progress");
			wr_u32(w, rb->flags);
			wr_str(w, rb->name);
			wr_u64(w, rb->cursor);
			wr_u64(w, rb->origin_chunks);
			wr_u64(w, rb->started);
			return 0;
		}
		if (m->flags & PROTO_F_QUERY) {
			if (m->flags & PROTO_F_DELETE)
				return err_set(EINVAL, "a rollback query deletes nothing");
			return 0;
		}
		if (!proto_name_valid(m->u.snap_name.name))
			return err_set(EINVAL, "invalid snapshot name");
		wr_str(w, m->u.snap_name.name);
		return 0;
	case PROTO_SNAP_LIST:
		if (!reply)
			return 0;
		if (m->u.snap_list.n > PROTO_MAX_SNAPSHOTS)
			return err_set(EINVAL, "too many snapshots in list");
		wr_u32(w, m->u.snap_list.n);
		for (uint32_t i = 0; i < m->u.snap_list.n; i++) {
			if ((r = enc_snapinfo(w, &m->u.snap_list.s[i])) < 0)
				return r;
		}
		return 0;
	case PROTO_ORIGIN_RESIZE:
	case PROTO_ORIGIN_SIZE:
	case PROTO_STORE_GROW:
		/* the sizes go with the resize's and grow's replies and the
		 * size's request */
		if (reply == (t == PROTO_ORIGIN_SIZE))
			return 0;
		if (m->u.resize.new_size < m->u.resize.old_size)
			return err_set(EINVAL, "origin size going down");
		wr_u64(w, m->u.resize.old_size);
		wr_u64(w, m->u.resize.new_size);
		return 0;
	case PROTO_SNAP_RENAME:
		if (reply)
			return enc_snapinfo(w, &m->u.snapinfo);
		if (!proto_name_valid(m->u.snap_rename.name) ||
		    !proto_name_valid(m->u.snap_rename.new_name))
			return err_set(EINVAL, "invalid snapshot name");
		wr_str(w, m->u.snap_rename.name);
		wr_str(w, m->u.snap_rename.new_name);
		return 0;
	case PROTO_SNAP_SET:
		if (reply) {
			return enc_snapinfo(w, &m->u.snapinfo);
		}
		if (!proto_name_valid(m->u.snap_set.name))
			return err_set(EINVAL, "invalid snapshot name");
		if (!m->u.snap_set.mask || (m->u.snap_set.mask & ~(uint32_t)(PROTO_SET_PRIORITY | PROTO_SET_USECOUNT)))
			return err_set(EINVAL, "invalid set mask 0x%x", m->u.snap_set.mask);
		wr_str(w, m->u.snap_set.name);
		wr_u32(w, m->u.snap_set.mask);
		wr_u32(w, (uint32_t)m->u.snap_set.priority);
		wr_u32(w, (uint32_t)m->u.snap_set.usecount_delta);
		return 0;
	case PROTO_STATUS:
		if (!reply)
			return 0;
		else {
			const struct proto_status *s = &m->u.status;
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
				if (ci->volume < PROTO_VOL_ORIGIN || ci->volume > PROTO_VOL_ADMIN ||
				    !str_ok(ci->name, PROTO_STR_MAX) || !str_ok(ci->peer, PROTO_STR_MAX))
					return err_set(EINVAL, "invalid client entry %u", i);
				wr_u16(w, ci->host_id);
				wr_u8(w, ci->volume);
				wr_u32(w, ci->snap_id);
				wr_str(w, ci->name);
				wr_str(w, ci->peer);
			}
			return 0;
		}
	case PROTO_CHANGED:
		if (reply) {
			wr_u64(w, m->u.changed_reply.next);
			return enc_ranges(w, &m->u.changed_reply.ranges);
		}
		/* to = "": compare against the live origin */
		if (!proto_name_valid(m->u.changed.from) ||
		    (m->u.changed.to[0] && !proto_name_valid(m->u.changed.to)))
			return err_set(EINVAL, "invalid snapshot name");
		if (m->u.changed.max_ranges < 1 || m->u.changed.max_ranges > PROTO_MAX_RANGES)
			return err_set(EINVAL, "max_ranges out of range");
		wr_str(w, m->u.changed.from);
		wr_str(w, m->u.changed.to);
		wr_u64(w, m->u.changed.start);
		wr_u32(w, m->u.changed.max_ranges);
		return 0;
	}
	return err_set(EINVAL, "unknown message type %u", t);
}

/* The header as the checksum covers it: crc (and reserved) zero.  */
static void put_hdr(uint8_t *h, uint16_t type, uint16_t flags, uint32_t len, uint64_t id)
{
	put_le16(h + PH_TYPE, type);
	put_le16(h + PH_FLAGS, flags);
	put_le32(h + PH_LEN, len);
	put_le64(h + PH_ID, id);
	put_le32(h + PH_CRC, 0);
	put_le32(h + PH_RESERVED, 0);
}

int proto_encode(const struct proto_msg *m, struct proto_buf *out)
{
	uint16_t t = m->type & (uint16_t)~PROTO_REPLY;
	bool reply = m->type & PROTO_REPLY;
	size_t start = out->len;
	struct wr w = { .b = out };
	int r;

	if (t == 0 || t > PROTO_TYPE_MAX)
		return err_set(EINVAL, "unknown message type %u", t);
	if (m->flags & ~flags_allowed(t))
		return err_set(EINVAL, "flags 0x%x not allowed on %s", m->flags, proto_type_name(t));
	wr_room(&w, PROTO_HDR_SIZE);
	if (reply) {
		wr_u32(&w, m->status);
		if (m->status) {
			if (!str_ok(m->error, PROTO_STR_MAX))
				r = err_set(EINVAL, "invalid error text");
			else
				r = 0, wr_str(&w, m->error);
		} else {
			r = enc_body(&w, m, t, true);
		}
	} else {
		r = enc_body(&w, m, t, false);
	}
	if (r == 0 && w.err)
		r = w.err;
	if (r == 0 && out->len - start - PROTO_HDR_SIZE > PROTO_MAX_PAYLOAD)
		r = err_set(EINVAL, "message of %zu bytes exceeds the limit", out->len - start - PROTO_HDR_SIZE);
	if (r < 0) {
		out->len = start;
		return r;
	}
	uint8_t *h = out->data + start;
	put_hdr(h, m->type, m->flags, (uint32_t)(out->len - start - PROTO_HDR_SIZE), m->id);
	put_le32(h + PH_CRC, crc32c(0, h, out->len - start));
	return 0;
}

/* ---- decoding ---------------------------------------------------------- */

int proto_decode_hdr(const uint8_t *buf, struct proto_hdr *h)
{
	h->type = get_le16(buf + PH_TYPE);
	h->flags = get_le16(buf + PH_FLAGS);
	h->len = get_le32(buf + PH_LEN);
	h->id = get_le64(buf + PH_ID);
	h->crc = get_le32(buf + PH_CRC);
	uint16_t t = h->type & (uint16_t)~PROTO_REPLY;
	if (t == 0 || t > PROTO_TYPE_MAX)
		return err_set(EBADMSG, "unknown message type %u", h->type);
	if ((h->type & PROTO_REPLY) ? h->flags != 0 : (h->flags & ~flags_allowed(t)) != 0)
		return err_set(EBADMSG, "flags 0x%x not allowed on %s", h->flags, proto_type_name(t));
	if (h->len > PROTO_MAX_PAYLOAD)
		return err_set(EBADMSG, "%s payload of %u bytes exceeds the limit of %u",
			       proto_type_name(t), h->len, PROTO_MAX_PAYLOAD);
	if (get_le32(buf + PH_RESERVED) != 0)
		return err_set(EBADMSG, "reserved header field not zero");
	return 0;
}

/* A counted list: a le32 count (at most MAX), then that many elements of
 * at least WIRE bytes each.  Returns the zeroed array of *N elements of
 * ELEM bytes for the caller to fill (NULL for none; *N is 0 unless it
 * succeeded).  The messages name what failed.  */
static void *rd_list(struct rd *r, uint32_t max, size_t elem, size_t wire, const char *count_what,
		     const char *too_many, const char *truncated, uint32_t *n)
{
	uint32_t k = rd_u32(r, count_what);

	*n = 0;
	if (r->bad || k == 0)
		return NULL;
	if (k > max) {
		rd_fail(r, too_many);
		return NULL;
	}
	/* Check the wire bytes exist before allocating for them.  */
	if ((r->len - r->off) / wire < k) {
		rd_fail(r, truncated);
		return NULL;
	}
	void *p = calloc(k, elem);
	if (!p)
		rd_fail(r, "out of memory");
	else
		*n = k;
	return p;
}

static void dec_ranges(struct rd *r, struct proto_ranges *rs)
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

static void rd_name(struct rd *r, char *dst, const char *what)
{
	rd_str(r, dst, PROTO_NAME_MAX, what);
	if (!r->bad && !proto_name_valid(dst))
		rd_fail(r, what);
}

static void dec_body(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	switch (t) {
	case PROTO_CHALLENGE:
		if (reply) {
			rd_fail(r, "challenge has no reply");
			return;
		}
		if (rd_u64(r, "magic") != PROTO_MAGIC && !r->bad)
			rd_fail(r, "bad magic: not a csnap server");
		m->u.challenge.version_min = rd_u16(r, "version");
		m->u.challenge.version_max = rd_u16(r, "version");
		rd_bytes(r, m->u.challenge.store.b, 16, "store uuid");
		rd_bytes(r, m->u.challenge.nonce, PROTO_NONCE_LEN, "nonce");
		if (!r->bad && (m->u.challenge.version_min == 0 ||
				m->u.challenge.version_min > m->u.challenge.version_max))
			rd_fail(r, "invalid version range");
		return;
	case PROTO_AUTH:
		if (reply) {
			rd_bytes(r, m->u.auth_ok.mac, PROTO_MAC_LEN, "mac");
			return;
		}
		m->u.auth.version = rd_u16(r, "version");
		rd_bytes(r, m->u.auth.nonce, PROTO_NONCE_LEN, "nonce");
		rd_bytes(r, m->u.auth.mac, PROTO_MAC_LEN, "mac");
		if (!r->bad && m->u.auth.version == 0)
			rd_fail(r, "version 0");
		return;
	case PROTO_IDENTIFY:
		if (reply) {
			struct proto_identify_ok *o = &m->u.identify_ok;
			o->chunk_size = rd_u32(r, "chunk size");
			o->snap_id = rd_u32(r, "snapshot id");
			o->origin_size = rd_u64(r, "origin size");
			o->volume_size = rd_u64(r, "volume size");
			o->store_data_offset = rd_u64(r, "data offset");
			o->generation = rd_u64(r, "generation");
			/* a trailing state only for a client that asked */
			if (!r->bad && r->len - r->off == 4) {
				o->has_state = true;
				o->state = rd_u32(r, "volume state");
				if (o->state & ~(uint32_t)PROTO_STATE_ROLLBACK)
					rd_fail(r, "unknown volume state");
			}
			if (!r->bad && (o->chunk_size < 512 || (o->chunk_size & (o->chunk_size - 1))))
				rd_fail(r, "chunk size not a power of two >= 512");
			return;
		} else {
			struct proto_identify *id = &m->u.identify;
			rd_bytes(r, id->store.b, 16, "store uuid");
			id->volume = rd_u8(r, "volume kind");
			id->host_id = rd_u16(r, "host id");
			rd_str(r, id->snapshot, PROTO_NAME_MAX, "snapshot name");
			rd_str(r, id->client, PROTO_STR_MAX, "client name");
			if (r->bad)
				return;
			if (id->volume < PROTO_VOL_ORIGIN || id->volume > PROTO_VOL_ADMIN)
				rd_fail(r, "unknown volume kind");
			else if (id->volume == PROTO_VOL_SNAPSHOT ? !proto_name_valid(id->snapshot)
								  : id->snapshot[0] != '\0')
				rd_fail(r, "invalid snapshot name for the volume kind");
			return;
		}
	case PROTO_ORIGIN_WRITE:
	case PROTO_SNAP_READ_DONE:
	case PROTO_ORIGIN_READ_DONE:
	case PROTO_LOCK_UPLOAD:
	case PROTO_INVALIDATE:
		if (reply)
			return;
		/* fallthrough */
	case PROTO_SNAP_READ:
	case PROTO_ORIGIN_READ:
	case PROTO_SNAP_WRITE:
		if (!reply) {
			dec_ranges(r, &m->u.ranges);
			return;
		} else {
			struct proto_extents *es = &m->u.extents;
			es->e = rd_list(r, PROTO_MAX_RANGES, sizeof *es->e, 24, "extent count",
					"too many extents", "truncated extents", &es->n);
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
			return;
		}
	case PROTO_BARRIER:
		if (!reply) {
			m->u.barrier.seq = rd_u64(r, "barrier sequence");
			if (!r->bad && (m->flags & PROTO_F_RB_START) && (m->flags & PROTO_F_RB_END))
				rd_fail(r, "a barrier cannot start and end a rollback");
		}
		return;
	case PROTO_PING:
		return;
	case PROTO_SNAP_ADDED:
		if (!reply)
			dec_snapinfo(r, &m->u.snapinfo);
		return;
	case PROTO_SNAP_CREATE:
		if (reply) {
			dec_snapinfo(r, &m->u.snapinfo);
			return;
		}
		rd_name(r, m->u.snap_create.name, "snapshot name");
		m->u.snap_create.priority = (int32_t)rd_u32(r, "priority");
		if (m->flags & PROTO_F_REQ_ID) {
			static const uint8_t zero[PROTO_REQ_ID_LEN];
			rd_bytes(r, m->u.snap_create.req_id, PROTO_REQ_ID_LEN, "request id");
			if (!r->bad && !memcmp(m->u.snap_create.req_id, zero, sizeof zero))
				rd_fail(r, "request id is all zero");
		}
		if (m->flags & PROTO_F_FROM)
			rd_name(r, m->u.snap_create.from, "parent snapshot name");
		return;
	case PROTO_SNAP_DELETE:
		if (!reply)
			rd_name(r, m->u.snap_name.name, "snapshot name");
		return;
	case PROTO_SNAP_ROLLBACK:
		if (reply) {
			struct proto_rollback *rb = &m->u.rollback;
			rb->flags = rd_u32(r, "rollback flags");
			rd_str(r, rb->name, PROTO_NAME_MAX, "snapshot name");
			rb->cursor = rd_u64(r, "rollback cursor");
			rb->origin_chunks = rd_u64(r, "origin chunks");
			rb->started = rd_u64(r, "rollback start");
			if (!r->bad && (rb->flags & ~(uint32_t)PROTO_RB_ACTIVE))
				rd_fail(r, "unknown rollback flags");
			else if (!r->bad && (rb->flags ? !proto_name_valid(rb->name) ||
							 rb->cursor > rb->origin_chunks
						       : rb->name[0] || rb->cursor || rb->origin_chunks ||
							 rb->started))
				rd_fail(r, "invalid rollback progress");
			return;
		}
		if (m->flags & PROTO_F_QUERY) {
			if (m->flags & PROTO_F_DELETE)
				rd_fail(r, "a rollback query deletes nothing");
			return;
		}
		rd_name(r, m->u.snap_name.name, "snapshot name");
		return;
	case PROTO_SNAP_LIST:
		if (reply) {
			struct proto_snap_list *l = &m->u.snap_list;
			/* A snapinfo is 43 bytes on the wire with a one-byte name.  */
			l->s = rd_list(r, PROTO_MAX_SNAPSHOTS, sizeof *l->s, 43, "snapshot count",
				       "too many snapshots", "truncated snapshot list", &l->n);
			for (uint32_t i = 0; i < l->n && !r->bad; i++)
				dec_snapinfo(r, &m->u.snap_list.s[i]);
		}
		return;
	case PROTO_ORIGIN_RESIZE:
	case PROTO_ORIGIN_SIZE:
	case PROTO_STORE_GROW:
		if (reply == (t == PROTO_ORIGIN_SIZE))
			return;
		m->u.resize.old_size = rd_u64(r, "old origin size");
		m->u.resize.new_size = rd_u64(r, "new origin size");
		if (!r->bad && m->u.resize.new_size < m->u.resize.old_size)
			rd_fail(r, "origin size going down");
		return;
	case PROTO_SNAP_RENAME:
		if (reply) {
			dec_snapinfo(r, &m->u.snapinfo);
			return;
		}
		rd_name(r, m->u.snap_rename.name, "snapshot name");
		rd_name(r, m->u.snap_rename.new_name, "new snapshot name");
		return;
	case PROTO_SNAP_SET:
		if (reply) {
			dec_snapinfo(r, &m->u.snapinfo);
			return;
		}
		rd_name(r, m->u.snap_set.name, "snapshot name");
		m->u.snap_set.mask = rd_u32(r, "set mask");
		m->u.snap_set.priority = (int32_t)rd_u32(r, "priority");
		m->u.snap_set.usecount_delta = (int32_t)rd_u32(r, "use count");
		if (!r->bad && (!m->u.snap_set.mask ||
				(m->u.snap_set.mask & ~(uint32_t)(PROTO_SET_PRIORITY | PROTO_SET_USECOUNT))))
			rd_fail(r, "invalid set mask");
		return;
	case PROTO_STATUS:
		if (reply) {
			struct proto_status *s = &m->u.status;
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
			s->clients = rd_list(r, PROTO_MAX_CLIENTS, sizeof *s->clients, 11, "client count",
					     "too many clients", "truncated client list", &s->nclients);
			for (uint32_t i = 0; i < s->nclients && !r->bad; i++) {
				struct proto_client_info *ci = &s->clients[i];
				ci->host_id = rd_u16(r, "client");
				ci->volume = rd_u8(r, "client");
				ci->snap_id = rd_u32(r, "client");
				rd_str(r, ci->name, PROTO_STR_MAX, "client name");
				rd_str(r, ci->peer, PROTO_STR_MAX, "client peer");
				if (!r->bad && (ci->volume < PROTO_VOL_ORIGIN || ci->volume > PROTO_VOL_ADMIN))
					rd_fail(r, "client volume kind");
			}
		}
		return;
	case PROTO_CHANGED:
		if (reply) {
			m->u.changed_reply.next = rd_u64(r, "next chunk");
			dec_ranges(r, &m->u.changed_reply.ranges);
			return;
		}
		rd_name(r, m->u.changed.from, "from snapshot");
		rd_str(r, m->u.changed.to, PROTO_NAME_MAX, "to snapshot");
		if (!r->bad && m->u.changed.to[0] && !proto_name_valid(m->u.changed.to))
			rd_fail(r, "to snapshot");
		m->u.changed.start = rd_u64(r, "start chunk");
		m->u.changed.max_ranges = rd_u32(r, "max ranges");
		if (!r->bad && (m->u.changed.max_ranges < 1 || m->u.changed.max_ranges > PROTO_MAX_RANGES))
			rd_fail(r, "max ranges out of range");
		return;
	}
	rd_fail(r, "unknown message type");
}

int proto_decode(const struct proto_hdr *h, const uint8_t *payload, struct proto_msg *out)
{
	uint16_t t = h->type & (uint16_t)~PROTO_REPLY;
	bool reply = h->type & PROTO_REPLY;
	uint8_t hdr[PROTO_HDR_SIZE];

	memset(out, 0, sizeof *out);
	put_hdr(hdr, h->type, h->flags, h->len, h->id);
	uint32_t crc = crc32c(crc32c(0, hdr, sizeof hdr), payload, h->len);
	if (crc != h->crc)
		return err_set(EBADMSG, "%s message: checksum mismatch", proto_type_name(h->type));

	out->type = h->type;
	out->flags = h->flags;
	out->id = h->id;

	struct rd r = { .p = payload, .len = h->len };
	if (reply) {
		out->status = rd_u32(&r, "status");
		if (!r.bad && out->status > 4095)
			rd_fail(&r, "status is not an errno");
		if (!r.bad && out->status)
			rd_str(&r, out->error, PROTO_STR_MAX, "error text");
		else
			dec_body(&r, out, t, true);
	} else {
		dec_body(&r, out, t, false);
	}
	if (!r.bad && r.off != r.len)
		r.bad = "trailing bytes";
	if (r.bad) {
		bool nomem = strcmp(r.bad, "out of memory") == 0;
		const char *what = r.bad;
		proto_msg_free(out);
		if (nomem)
			return err_set(ENOMEM, "out of memory decoding a %s message", proto_type_name(h->type));
		return err_set(EBADMSG, "malformed %s%s message: %s", proto_type_name(h->type),
			       reply ? " reply" : "", what);
	}
	return 0;
}

int proto_take(struct proto_buf *in, struct proto_msg *out)
{
	struct proto_hdr h;
	size_t avail = in->len - in->off;
	int r;

	if (avail < PROTO_HDR_SIZE)
		return 0;
	if ((r = proto_decode_hdr(in->data + in->off, &h)) < 0)
		return r;
	if (avail < PROTO_HDR_SIZE + (size_t)h.len)
		return 0;
	r = proto_decode(&h, in->data + in->off + PROTO_HDR_SIZE, out);
	if (r < 0)
		return r;
	in->off += PROTO_HDR_SIZE + h.len;
	if (in->off == in->len)
		in->off = in->len = 0;
	return 1;
}

void proto_msg_free(struct proto_msg *m)
{
	uint16_t t = m->type & (uint16_t)~PROTO_REPLY;
	bool reply = m->type & PROTO_REPLY;

	if (reply && m->status)
		return;
	switch (t) {
	case PROTO_ORIGIN_WRITE: case PROTO_SNAP_READ_DONE: case PROTO_LOCK_UPLOAD:
	case PROTO_INVALIDATE: case PROTO_ORIGIN_READ_DONE:
		if (!reply) { free(m->u.ranges.r); m->u.ranges.r = NULL; m->u.ranges.n = 0; }
		break;
	case PROTO_SNAP_READ: case PROTO_SNAP_WRITE: case PROTO_ORIGIN_READ:
		if (!reply) { free(m->u.ranges.r); m->u.ranges.r = NULL; m->u.ranges.n = 0; }
		else { free(m->u.extents.e); m->u.extents.e = NULL; m->u.extents.n = 0; }
		break;
	case PROTO_SNAP_LIST:
		if (reply) { free(m->u.snap_list.s); m->u.snap_list.s = NULL; m->u.snap_list.n = 0; }
		break;
	case PROTO_STATUS:
		if (reply) { free(m->u.status.clients); m->u.status.clients = NULL; m->u.status.nclients = 0; }
		break;
	case PROTO_CHANGED:
		if (reply) {
			free(m->u.changed_reply.ranges.r);
			m->u.changed_reply.ranges.r = NULL;
			m->u.changed_reply.ranges.n = 0;
		}
		break;
	default:
		break;
	}
}

void proto_msg_init(struct proto_msg *m, uint16_t type, uint64_t id)
{
	memset(m, 0, sizeof *m);
	m->type = type;
	m->id = id;
}

void proto_msg_error(struct proto_msg *m, const struct proto_msg *req,
		     uint32_t errnum, const char *reason)
{
	proto_msg_init(m, (uint16_t)(req->type | PROTO_REPLY), req->id);
	m->status = errnum ? errnum : EIO;
	size_t j = 0;
	for (size_t i = 0; reason && reason[i] && j < PROTO_STR_MAX; i++) {
		unsigned char c = (unsigned char)reason[i];
		m->error[j++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	m->error[j] = '\0';
}

/* ---- authentication ---------------------------------------------------- */

static void auth_compute(const uint8_t secret[PROTO_SECRET_LEN], char role, uint16_t version,
			 const uint8_t sn[PROTO_NONCE_LEN], const uint8_t cn[PROTO_NONCE_LEN],
			 uint8_t mac[PROTO_MAC_LEN])
{
	crypto_auth_hmacsha256_state st;
	uint8_t v[2];

	put_le16(v, version);
	crypto_auth_hmacsha256_init(&st, secret, PROTO_SECRET_LEN);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"csnap-auth", 10);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)&role, 1);
	crypto_auth_hmacsha256_update(&st, v, 2);
	crypto_auth_hmacsha256_update(&st, sn, PROTO_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, cn, PROTO_NONCE_LEN);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof st);
}

void proto_auth_mac(const uint8_t secret[PROTO_SECRET_LEN], char role, uint16_t version,
		    const uint8_t server_nonce[PROTO_NONCE_LEN],
		    const uint8_t client_nonce[PROTO_NONCE_LEN], uint8_t mac[PROTO_MAC_LEN])
{
	auth_compute(secret, role, version, server_nonce, client_nonce, mac);
}

bool proto_auth_verify(const uint8_t secret[PROTO_SECRET_LEN], char role, uint16_t version,
		       const uint8_t server_nonce[PROTO_NONCE_LEN],
		       const uint8_t client_nonce[PROTO_NONCE_LEN], const uint8_t mac[PROTO_MAC_LEN])
{
	uint8_t want[PROTO_MAC_LEN];
	auth_compute(secret, role, version, server_nonce, client_nonce, want);
	bool ok = crypto_verify_32(want, mac) == 0;
	sodium_memzero(want, sizeof want);
	return ok;
}

void proto_random(uint8_t *buf, size_t len)
{
	if (sodium_init() < 0)
		abort();	/* no CSPRNG: nothing safe to do */
	randombytes_buf(buf, len);
}
