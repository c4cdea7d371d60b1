/*
 * src/proto/codec.h - private to src/proto: the cursors every message
 * codec writes and reads through, the field checks encode and decode
 * share, and the per-message codecs proto.c dispatches to.
 *
 * The files behind it:
 *   proto.c         buffers, the header, framing (encode / decode / take),
 *                   which codec serves which type, freeing a message
 *   handshake.c     CHALLENGE, AUTH, IDENTIFY, and the HMAC they carry
 *   codec_data.c    range lists and extents: the data path, BARRIER, PING
 *   codec_snap.c    snapshot info and the snapshot admin requests
 *   codec_admin.c   STATUS, CHANGED, the resize family
 *
 * Invariants: a writer (struct wr) keeps the first error it met and
 * writes nothing after it; a reader (struct rd) keeps the first problem
 * it met (bad), reads nothing after it and returns zeros, so a decoder
 * may read its fields in a row and check r->bad once.  Every read is
 * bounds-checked here, against what is left of the payload, before any
 * byte is used.  A codec pair (enc_X / dec_X) writes and reads the same
 * layout and refuses the same values: what they both check is one
 * predicate below or beside the pair.
 */
#ifndef CSNAP_PROTO_CODEC_H
#define CSNAP_PROTO_CODEC_H

#include "src/proto/proto.h"

#include "utils/endian.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---- writing ----------------------------------------------------------- */

struct wr {
	struct proto_buf *b;
	int err;
};

static inline uint8_t *wr_room(struct wr *w, size_t n)
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

static inline void wr_u8(struct wr *w, uint8_t v)   { uint8_t *p = wr_room(w, 1); if (p) *p = v; }
static inline void wr_u16(struct wr *w, uint16_t v) { uint8_t *p = wr_room(w, 2); if (p) put_le16(p, v); }
static inline void wr_u32(struct wr *w, uint32_t v) { uint8_t *p = wr_room(w, 4); if (p) put_le32(p, v); }
static inline void wr_u64(struct wr *w, uint64_t v) { uint8_t *p = wr_room(w, 8); if (p) put_le64(p, v); }
static inline void wr_bytes(struct wr *w, const void *s, size_t n)
{
	uint8_t *p = wr_room(w, n);
	if (p && n)
		memcpy(p, s, n);
}
/* A string: le16 length, the bytes (the codec checked its length).  */
void wr_str(struct wr *w, const char *s);

/* ---- reading ----------------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t len, off;
	const char *bad;	/* first problem met, NULL if none */
};

static inline bool rd_need(struct rd *r, size_t n, const char *what)
{
	if (r->bad)
		return false;
	if (r->len - r->off < n) {
		r->bad = what;
		return false;
	}
	return true;
}

static inline uint8_t rd_u8(struct rd *r, const char *what)
{
	if (!rd_need(r, 1, what)) return 0;
	return r->p[r->off++];
}
static inline uint16_t rd_u16(struct rd *r, const char *what)
{
	if (!rd_need(r, 2, what)) return 0;
	uint16_t v = get_le16(r->p + r->off); r->off += 2; return v;
}
static inline uint32_t rd_u32(struct rd *r, const char *what)
{
	if (!rd_need(r, 4, what)) return 0;
	uint32_t v = get_le32(r->p + r->off); r->off += 4; return v;
}
static inline uint64_t rd_u64(struct rd *r, const char *what)
{
	if (!rd_need(r, 8, what)) return 0;
	uint64_t v = get_le64(r->p + r->off); r->off += 8; return v;
}
static inline void rd_bytes(struct rd *r, void *dst, size_t n, const char *what)
{
	if (!rd_need(r, n, what)) { memset(dst, 0, n); return; }
	memcpy(dst, r->p + r->off, n);
	r->off += n;
}
static inline void rd_fail(struct rd *r, const char *why)
{
	if (!r->bad)
		r->bad = why;
}

/* No control characters: strings end up in logs and on terminals.  */
static inline bool str_clean(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* A string of at most max bytes into dst[max + 1].  */
void rd_str(struct rd *r, char *dst, size_t max, const char *what);
/* A snapshot name (rd_str, then proto_name_valid).  */
void rd_name(struct rd *r, char *dst, const char *what);
/* A counted list: a le32 count (at most MAX), then that many elements of
 * at least WIRE bytes each.  Returns the zeroed array of *N elements of
 * ELEM bytes for the caller to fill (NULL for none; *N is 0 unless it
 * succeeded).  The messages name what failed.  */
void *rd_list(struct rd *r, uint32_t max, size_t elem, size_t wire, const char *count_what,
	      const char *too_many, const char *truncated, uint32_t *n);

/* ---- field checks shared by encode and decode -------------------------- */

static inline bool str_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	return n <= max && str_clean(s, n);
}

static inline bool volume_ok(uint32_t volume)
{
	return volume >= PROTO_VOL_ORIGIN && volume <= PROTO_VOL_ADMIN;
}

static inline bool req_id_zero(const uint8_t id[PROTO_REQ_ID_LEN])
{
	static const uint8_t zero[PROTO_REQ_ID_LEN];
	return !memcmp(id, zero, sizeof zero);
}

/* ---- the codecs -------------------------------------------------------- */

/* enc_X validates and writes the body of a request (or, reply true, of a
 * successful reply) of type T; it returns 0 or a negative errno with
 * err_set().  dec_X reads it back into M, leaving any problem in R.  */
#define CODEC(x)								\
	int enc_##x(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply); \
	void dec_##x(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)

CODEC(challenge);	/* handshake.c */
CODEC(auth);
CODEC(identify);
CODEC(ranges_only);	/* codec_data.c: ranges, empty reply */
CODEC(ranges_extents);	/* ranges, extents in the reply */
CODEC(barrier);
CODEC(ping);
CODEC(snap_added);	/* codec_snap.c */
CODEC(snap_create);
CODEC(snap_delete);
CODEC(snap_rollback);
CODEC(snap_list);
CODEC(snap_rename);
CODEC(snap_set);
CODEC(status);		/* codec_admin.c */
CODEC(changed);
CODEC(resize);

#undef CODEC

/* Shared shapes (codec_data.c): a range list, as in several messages.  */
int enc_range_list(struct wr *w, const struct proto_ranges *rs);
void dec_range_list(struct rd *r, struct proto_ranges *rs);

#endif
