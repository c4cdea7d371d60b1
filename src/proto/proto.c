/*
 * src/proto/proto.c - framing of csnap protocol messages: the buffers,
 * the 24-byte header with its checksum, which codec serves which message
 * type, and encoding, decoding and freeing a whole message.
 *
 * A message is the header (proto.h: type, flags, payload length, id,
 * crc32c over header and payload) and a payload; a reply's payload
 * starts with a status, then either the error text or the body.  The
 * bodies are written and read by one codec pair a message type (types[]
 * below, in handshake.c, codec_data.c, codec_snap.c, codec_admin.c; the
 * cursors they share are in codec.h).
 *
 * Invariants: proto_encode() writes a whole message or, on any error,
 * nothing (the buffer is as it was); decoding never trusts a length
 * before checking it against what is left in the payload, and a payload
 * with bytes left over is rejected too: a message has exactly one valid
 * encoding.  A decoded message owns its lists until proto_msg_free().
 */
#include "src/proto/proto.h"
#include "src/proto/codec.h"

#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"
#include "utils/snapname.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- string helpers the codecs share ------------------------------------ */

/* Out of line: gcc would otherwise see the strnlen bound pass the end of
 * the shorter name arrays (-Wstringop-overread), though the string ends
 * within them.  */
void wr_str(struct wr *w, const char *s)
{
	size_t n = strnlen(s, PROTO_STR_MAX + 1);
	wr_u16(w, (uint16_t)n);
	wr_bytes(w, s, n);
}

void rd_str(struct rd *r, char *dst, size_t max, const char *what)
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

void rd_name(struct rd *r, char *dst, const char *what)
{
	rd_str(r, dst, PROTO_NAME_MAX, what);
	if (!r->bad && !proto_name_valid(dst))
		rd_fail(r, what);
}

void *rd_list(struct rd *r, uint32_t max, size_t elem, size_t wire, const char *count_what,
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

/* ---- message types ------------------------------------------------------ */

bool proto_name_valid(const char *name)
{
	return snap_name_valid(name);
}

/* What each message type is: its name, the header flags its requests may
 * carry (replies carry none), and its body codec (codec.h).  Every type
 * from 1 to PROTO_TYPE_MAX has an entry.  */
static const struct msg_type {
	const char *name;
	uint16_t flags;
	int (*enc)(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply);
	void (*dec)(struct rd *r, struct proto_msg *m, uint16_t t, bool reply);
} types[PROTO_TYPE_MAX + 1] = {
#define T(type, name, flags, codec) [type] = { name, flags, enc_##codec, dec_##codec }
	T(PROTO_CHALLENGE, "challenge", 0, challenge),
	T(PROTO_AUTH, "auth", 0, auth),
	T(PROTO_IDENTIFY, "identify", PROTO_F_RECONNECT | PROTO_F_PASSIVE | PROTO_F_ROLLBACK_OK,
	  identify),
	T(PROTO_ORIGIN_WRITE, "origin-write", 0, ranges_only),
	T(PROTO_SNAP_READ, "snap-read", 0, ranges_extents),
	T(PROTO_SNAP_READ_DONE, "snap-read-done", 0, ranges_only),
	T(PROTO_SNAP_WRITE, "snap-write", PROTO_F_FULL_CHUNKS, ranges_extents),
	T(PROTO_LOCK_UPLOAD, "lock-upload", 0, ranges_only),
	T(PROTO_BARRIER, "barrier", PROTO_F_RB_START | PROTO_F_RB_END, barrier),
	T(PROTO_SNAP_CREATE, "snap-create", PROTO_F_REQ_ID | PROTO_F_FROM, snap_create),
	T(PROTO_SNAP_DELETE, "snap-delete", 0, snap_delete),
	T(PROTO_SNAP_LIST, "snap-list", PROTO_F_NO_USAGE | PROTO_F_REQ_IDS, snap_list),
	T(PROTO_SNAP_SET, "snap-set", 0, snap_set),
	T(PROTO_STATUS, "status", 0, status),
	T(PROTO_CHANGED, "changed", 0, changed),
	T(PROTO_INVALIDATE, "invalidate", 0, ranges_only),
	T(PROTO_PING, "ping", 0, ping),
	T(PROTO_SNAP_ADDED, "snap-added", 0, snap_added),
	T(PROTO_SNAP_RENAME, "snap-rename", 0, snap_rename),
	T(PROTO_ORIGIN_RESIZE, "origin-resize", 0, resize),
	T(PROTO_ORIGIN_SIZE, "origin-size", 0, resize),
	T(PROTO_STORE_GROW, "store-grow", 0, resize),
	T(PROTO_SNAP_ROLLBACK, "snap-rollback", PROTO_F_DELETE | PROTO_F_QUERY, snap_rollback),
	T(PROTO_ORIGIN_READ, "origin-read", 0, ranges_extents),
	T(PROTO_ORIGIN_READ_DONE, "origin-read-done", 0, ranges_only),
#undef T
};

/* The entry of type T (without PROTO_REPLY), NULL for an unknown type.  */
static const struct msg_type *type_of(uint16_t t)
{
	return t >= 1 && t <= PROTO_TYPE_MAX && types[t].enc ? &types[t] : NULL;
}

const char *proto_type_name(uint16_t type)
{
	const struct msg_type *mt = type_of(type & (uint16_t)~PROTO_REPLY);
	return mt ? mt->name : "unknown";
}

/* ---- encoding ----------------------------------------------------------- */


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
	const struct msg_type *c = type_of(t);
	int r;

	if (!c)
		return err_set(EINVAL, "unknown message type %u", t);
	if (m->flags & ~c->flags)
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
			r = c->enc(&w, m, t, true);
		}
	} else {
		r = c->enc(&w, m, t, false);
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
	const struct msg_type *mt = type_of(t);
	if (!mt)
		return err_set(EBADMSG, "unknown message type %u", h->type);
	if ((h->type & PROTO_REPLY) ? h->flags != 0 : (h->flags & ~mt->flags) != 0)
		return err_set(EBADMSG, "flags 0x%x not allowed on %s", h->flags, proto_type_name(t));
	if (h->len > PROTO_MAX_PAYLOAD)
		return err_set(EBADMSG, "%s payload of %u bytes exceeds the limit of %u",
			       proto_type_name(t), h->len, PROTO_MAX_PAYLOAD);
	if (get_le32(buf + PH_RESERVED) != 0)
		return err_set(EBADMSG, "reserved header field not zero");
	return 0;
}

int proto_decode(const struct proto_hdr *h, const uint8_t *payload, struct proto_msg *out)
{
	uint16_t t = h->type & (uint16_t)~PROTO_REPLY;
	bool reply = h->type & PROTO_REPLY;
	const struct msg_type *c = type_of(t);
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
		else if (c)
			c->dec(&r, out, t, true);
		else
			rd_fail(&r, "unknown message type");
	} else if (c) {
		c->dec(&r, out, t, false);
	} else {
		rd_fail(&r, "unknown message type");
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

/* Frees a decoded list and forgets it (a second free is harmless).  */
#define DROP_LIST(p, n) do { free(p); (p) = NULL; (n) = 0; } while (0)

void proto_msg_free(struct proto_msg *m)
{
	uint16_t t = m->type & (uint16_t)~PROTO_REPLY;
	bool reply = m->type & PROTO_REPLY;

	if (reply && m->status)
		return;
	switch (t) {
	/* Replies with extents; their requests are range lists like these: */
	case PROTO_SNAP_READ: case PROTO_SNAP_WRITE: case PROTO_ORIGIN_READ:
		if (reply)
			DROP_LIST(m->u.extents.e, m->u.extents.n);
		/* fallthrough */
	case PROTO_ORIGIN_WRITE: case PROTO_SNAP_READ_DONE: case PROTO_LOCK_UPLOAD:
	case PROTO_INVALIDATE: case PROTO_ORIGIN_READ_DONE:
		if (!reply)
			DROP_LIST(m->u.ranges.r, m->u.ranges.n);
		break;
	case PROTO_SNAP_LIST:
		if (reply)
			DROP_LIST(m->u.snap_list.s, m->u.snap_list.n);
		break;
	case PROTO_STATUS:
		if (reply)
			DROP_LIST(m->u.status.clients, m->u.status.nclients);
		break;
	case PROTO_CHANGED:
		if (reply)
			DROP_LIST(m->u.changed_reply.ranges.r, m->u.changed_reply.ranges.n);
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
