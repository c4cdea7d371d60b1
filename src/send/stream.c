/*
 * src/send/stream.c - encoders, decoders, writer and reader of the send
 * stream (stream.h, docs/send-stream.md).  Every length read from the
 * stream is checked against the bytes that carry it and against
 * SS_MAX_BODY before anything is allocated or copied; the reader's buffers
 * have fixed sizes, so a hostile stream costs at most one record of memory.
 */
#include "src/send/stream.h"

#include "utils/assert.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

_Static_assert((int)SH_CSUM + 4 == SS_HEADER_SIZE && (int)SD_CRC + 4 == SS_DATA_HDR &&
	       (int)SR_LEN + 4 == SS_REC_HDR, "stream layouts and their sizes agree");

/* Bytes of a snapshot-name field: NUL-terminated and NUL-padded.  */
static bool name_ok(const uint8_t *p)
{
	const uint8_t *nul = memchr(p, 0, SS_NAME_LEN);
	if (!nul)
		return false;
	for (const uint8_t *q = nul; q < p + SS_NAME_LEN; q++)
		if (*q)
			return false;
	return true;
}

/* ---- header ------------------------------------------------------------ */

void ss_header_encode(const struct ss_header *h, uint8_t *b)
{
	memset(b, 0, SS_HEADER_SIZE);
	memcpy(b + SH_MAGIC, SS_MAGIC, 8);
	put_le32(b + SH_VERSION, SS_VERSION);
	put_le32(b + SH_SIZE, SS_HEADER_SIZE);
	memcpy(b + SH_SOURCE, h->source.b, 16);
	put_le64(b + SH_ORIGIN_SIZE, h->origin_size);
	put_le32(b + SH_CHUNK_SIZE, h->chunk_size);
	put_le32(b + SH_FLAGS, h->flags);
	put_le32(b + SH_FROM_ID, h->from_id);
	put_le32(b + SH_TO_ID, h->to_id);
	put_le64(b + SH_FROM_CTIME, h->from_ctime);
	put_le64(b + SH_TO_CTIME, h->to_ctime);
	memcpy(b + SH_FROM_NAME, h->from_name, strnlen(h->from_name, SS_NAME_LEN - 1));
	memcpy(b + SH_TO_NAME, h->to_name, strnlen(h->to_name, SS_NAME_LEN - 1));
	put_le64(b + SH_TOTAL, h->total_bytes);
	put_le64(b + SH_RESUME, h->resume_offset);
	put_le32(b + SH_CSUM, crc32c(0, b, SH_CSUM));
}

int ss_header_decode(const uint8_t *b, struct ss_header *h)
{
	if (memcmp(b + SH_MAGIC, SS_MAGIC, 8))
		return err_set(EINVAL, "not a csnap send stream (bad magic)");
	uint32_t v = get_le32(b + SH_VERSION);
	if (v != SS_VERSION)
		return err_set(EINVAL, "stream version %u is not supported (this csnap reads %u)",
			       v, SS_VERSION);
	if (get_le32(b + SH_SIZE) != SS_HEADER_SIZE)
		return err_set(EINVAL, "stream header length %u, expected %u", get_le32(b + SH_SIZE),
			       SS_HEADER_SIZE);
	if (get_le32(b + SH_CSUM) != crc32c(0, b, SH_CSUM))
		return err_set(EINVAL, "stream header checksum mismatch (offset 0)");
	memset(h, 0, sizeof *h);
	memcpy(h->source.b, b + SH_SOURCE, 16);
	h->origin_size = get_le64(b + SH_ORIGIN_SIZE);
	h->chunk_size = get_le32(b + SH_CHUNK_SIZE);
	h->flags = get_le32(b + SH_FLAGS);
	h->from_id = get_le32(b + SH_FROM_ID);
	h->to_id = get_le32(b + SH_TO_ID);
	h->from_ctime = get_le64(b + SH_FROM_CTIME);
	h->to_ctime = get_le64(b + SH_TO_CTIME);
	if (!name_ok(b + SH_FROM_NAME) || !name_ok(b + SH_TO_NAME))
		return err_set(EINVAL, "stream header: snapshot name not terminated or not padded");
	memcpy(h->from_name, b + SH_FROM_NAME, SS_NAME_LEN);
	memcpy(h->to_name, b + SH_TO_NAME, SS_NAME_LEN);
	h->total_bytes = get_le64(b + SH_TOTAL);
	h->resume_offset = get_le64(b + SH_RESUME);
	for (int i = SH_RESERVED; i < SH_CSUM; i++)
		if (b[i])
			return err_set(EINVAL, "stream header: reserved byte %d is not zero", i);
	if (h->flags & ~(uint32_t)SS_F_KNOWN)
		return err_set(EINVAL, "stream header: unknown flags 0x%x", h->flags);
	if (!h->chunk_size || (h->chunk_size & (h->chunk_size - 1)) || h->chunk_size > SS_MAX_DATA)
		return err_set(EINVAL, "stream header: invalid chunk size %u", h->chunk_size);
	if (!h->origin_size || h->origin_size > (UINT64_MAX >> 2))
		return err_set(EINVAL, "stream header: invalid origin size %" PRIu64, h->origin_size);
	if (!h->to_id || !h->to_name[0])
		return err_set(EINVAL, "stream header: no target snapshot");
	bool inc = h->flags & SS_F_INCREMENTAL;
	if (inc != (h->from_id != 0) || inc != (h->from_name[0] != 0))
		return err_set(EINVAL, "stream header: from snapshot and incremental flag disagree");
	if (inc && (h->from_id == h->to_id || !strcmp(h->from_name, h->to_name)))
		return err_set(EINVAL, "stream header: from and to are the same snapshot");
	bool resumed = h->flags & SS_F_RESUMED;
	if (resumed ? !h->resume_offset || h->resume_offset > h->origin_size : h->resume_offset != 0)
		return err_set(EINVAL, "stream header: invalid resume offset %" PRIu64, h->resume_offset);
	return 0;
}

/* ---- record bodies ----------------------------------------------------- */

size_t ss_data_encode(uint8_t *body, uint64_t offset, uint32_t length, uint32_t encoding,
		      uint32_t crc, const void *payload, size_t payload_len)
{
	put_le64(body + SD_OFFSET, offset);
	put_le32(body + SD_LENGTH, length);
	put_le32(body + SD_ENCODING, encoding);
	put_le32(body + SD_CRC, crc);
	memcpy(body + SS_DATA_HDR, payload, payload_len);
	return SS_DATA_HDR + payload_len;
}

int ss_data_decode(const uint8_t *body, size_t len, struct ss_record *rec, uint32_t *crc,
		   const uint8_t **payload, size_t *payload_len)
{
	if (len < SS_DATA_HDR + 1)
		return err_set(EINVAL, "body of %zu bytes is too short", len);
	rec->offset = get_le64(body + SD_OFFSET);
	rec->length = get_le32(body + SD_LENGTH);
	rec->encoding = get_le32(body + SD_ENCODING);
	*crc = get_le32(body + SD_CRC);
	*payload = body + SS_DATA_HDR;
	*payload_len = len - SS_DATA_HDR;
	if (!rec->length || rec->length > SS_MAX_DATA)
		return err_set(EINVAL, "data length %" PRIu64 " out of range", rec->length);
	if (rec->encoding == SS_ENC_RAW && *payload_len != rec->length)
		return err_set(EINVAL, "raw data of %zu bytes for a length of %" PRIu64,
			       *payload_len, rec->length);
	if (rec->encoding != SS_ENC_RAW && rec->encoding != SS_ENC_ZSTD)
		return err_set(EINVAL, "unknown data encoding %u", rec->encoding);
	return 0;
}

size_t ss_zero_encode(uint8_t *body, uint64_t offset, uint64_t length)
{
	put_le64(body + SZ_OFFSET, offset);
	put_le64(body + SZ_LENGTH, length);
	return SZ_SIZE;
}

int ss_zero_decode(const uint8_t *body, size_t len, struct ss_record *rec)
{
	if (len != SZ_SIZE)
		return err_set(EINVAL, "body of %zu bytes, expected %d", len, SZ_SIZE);
	rec->offset = get_le64(body + SZ_OFFSET);
	rec->length = get_le64(body + SZ_LENGTH);
	if (!rec->length)
		return err_set(EINVAL, "empty zero range");
	return 0;
}

size_t ss_checkpoint_encode(uint8_t *body, uint64_t next, uint64_t records, uint64_t data_bytes)
{
	put_le64(body + SC_NEXT, next);
	put_le64(body + SC_RECORDS, records);
	put_le64(body + SC_DATA_BYTES, data_bytes);
	return SC_SIZE;
}

int ss_checkpoint_decode(const uint8_t *body, size_t len, struct ss_record *rec)
{
	if (len != SC_SIZE)
		return err_set(EINVAL, "body of %zu bytes, expected %d", len, SC_SIZE);
	rec->next = get_le64(body + SC_NEXT);
	rec->records = get_le64(body + SC_RECORDS);
	rec->data_bytes = get_le64(body + SC_DATA_BYTES);
	return 0;
}

size_t ss_end_encode(uint8_t *body, uint64_t records, uint64_t data_bytes,
		     const uint8_t digest[SS_DIGEST_LEN])
{
	put_le64(body + SE_RECORDS, records);
	put_le64(body + SE_DATA_BYTES, data_bytes);
	memcpy(body + SE_DIGEST, digest, SS_DIGEST_LEN);
	return SE_SIZE;
}

int ss_end_decode(const uint8_t *body, size_t len, struct ss_record *rec,
		  uint8_t digest[SS_DIGEST_LEN])
{
	if (len != SE_SIZE)
		return err_set(EINVAL, "body of %zu bytes, expected %d", len, SE_SIZE);
	rec->records = get_le64(body + SE_RECORDS);
	rec->data_bytes = get_le64(body + SE_DATA_BYTES);
	memcpy(digest, body + SE_DIGEST, SS_DIGEST_LEN);
	return 0;
}

const char *ss_type_name(uint32_t type)
{
	switch (type) {
	case SS_T_DATA: return "data";
	case SS_T_ZERO: return "zero";
	case SS_T_CHECKPOINT: return "checkpoint";
	case SS_T_END: return "end";
	default: return "unknown";
	}
}

/* Buffers grow to the largest record seen (never past one whole record),
 * so a small stream costs little memory.  */
static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 4096;
	while (c < need)
		c *= 2;
	uint8_t *nb = realloc(*buf, c);
	if (!nb)
		return err_set(ENOMEM, "out of memory");
	*buf = nb;
	*cap = c;
	return 0;
}

/* ---- writer ------------------------------------------------------------ */

static int w_out(struct ss_writer *w, const void *buf, size_t n)
{
	crypto_generichash_update(&w->hash, buf, n);
	int r = w->write(w->ctx, buf, n);
	if (r < 0)
		return r;
	w->off += n;
	return 0;
}

/* Frames the body already in w->rec + SS_REC_HDR (room made by the
 * caller with w_room).  */
static int w_room(struct ss_writer *w, size_t body_len)
{
	return grow(&w->rec, &w->reccap, SS_REC_HDR + body_len + SS_REC_TRAILER);
}

static int w_record(struct ss_writer *w, uint32_t type, size_t body_len)
{
	CSNAP_ASSERT(body_len <= SS_MAX_BODY);
	put_le32(w->rec + SR_TYPE, type);
	put_le32(w->rec + SR_LEN, (uint32_t)body_len);
	size_t n = SS_REC_HDR + body_len;
	put_le32(w->rec + n, crc32c(0, w->rec, n));
	int r = w_out(w, w->rec, n + SS_REC_TRAILER);
	if (r == 0)
		w->records++;
	return r;
}

int ss_writer_open(struct ss_writer *w, ss_write_fn fn, void *ctx, const struct ss_header *h,
		   int level)
{
	memset(w, 0, sizeof *w);
	if (sodium_init() < 0)
		return err_set(EIO, "libsodium failed to initialise");
	w->write = fn;
	w->ctx = ctx;
	w->h = *h;
	w->last_end = h->resume_offset;
	w->level = level;
	if (w_room(w, 64) < 0)
		return -ENOMEM;
	if (level) {
		w->cctx = ZSTD_createCCtx();
		if (!w->cctx) {
			ss_writer_close(w);
			return err_set(ENOMEM, "out of memory");
		}
	}
	crypto_generichash_init(&w->hash, NULL, 0, SS_DIGEST_LEN);
	uint8_t hb[SS_HEADER_SIZE];
	ss_header_encode(h, hb);
	struct ss_header check;
	if (ss_header_decode(hb, &check) < 0) {
		ss_writer_close(w);
		return -EINVAL;
	}
	return w_out(w, hb, sizeof hb);
}

static int w_range(struct ss_writer *w, uint64_t offset, uint64_t len)
{
	if (!len || offset < w->last_end || offset > w->h.origin_size ||
	    len > w->h.origin_size - offset)
		return err_set(EINVAL, "range %" PRIu64 "+%" PRIu64 " out of order or past the "
			       "origin's end", offset, len);
	w->last_end = offset + len;
	return 0;
}

int ss_write_data(struct ss_writer *w, uint64_t offset, const void *buf, uint32_t len)
{
	if (len > SS_MAX_DATA)
		return err_set(EINVAL, "data record of %u bytes is too long", len);
	int r = w_range(w, offset, len);
	if (r < 0)
		return r;
	uint32_t crc = crc32c(0, buf, len);
	const void *payload = buf;
	size_t plen = len;
	uint32_t enc = SS_ENC_RAW;
	if (w->level && grow(&w->zbuf, &w->zcap, ZSTD_compressBound(len)) < 0)
		return -ENOMEM;
	if (w->level) {
		size_t z = ZSTD_compressCCtx(w->cctx, w->zbuf, w->zcap, buf, len, w->level);
		if (!ZSTD_isError(z) && z < len) {
			payload = w->zbuf;
			plen = z;
			enc = SS_ENC_ZSTD;
		}
	}
	if (w_room(w, SS_DATA_HDR + plen) < 0)
		return -ENOMEM;
	size_t n = ss_data_encode(w->rec + SS_REC_HDR, offset, len, enc, crc, payload, plen);
	w->data_bytes += len;
	return w_record(w, SS_T_DATA, n);
}

int ss_write_zero(struct ss_writer *w, uint64_t offset, uint64_t len)
{
	int r = w_range(w, offset, len);
	if (r < 0)
		return r;
	return w_record(w, SS_T_ZERO, ss_zero_encode(w->rec + SS_REC_HDR, offset, len));
}

int ss_write_checkpoint(struct ss_writer *w)
{
	return w_record(w, SS_T_CHECKPOINT,
			ss_checkpoint_encode(w->rec + SS_REC_HDR, w->last_end, w->records,
					     w->data_bytes));
}

int ss_write_end(struct ss_writer *w)
{
	uint8_t d[SS_DIGEST_LEN];
	crypto_generichash_state copy = w->hash;
	crypto_generichash_final(&copy, d, sizeof d);
	return w_record(w, SS_T_END, ss_end_encode(w->rec + SS_REC_HDR, w->records,
						   w->data_bytes, d));
}

void ss_writer_close(struct ss_writer *w)
{
	free(w->rec);
	free(w->zbuf);
	ZSTD_freeCCtx(w->cctx);
	w->rec = w->zbuf = NULL;
	w->cctx = NULL;
}

/* ---- reader ------------------------------------------------------------ */

/* Exactly N bytes; *got says how many came before the end of input.  */
static int r_in(struct ss_reader *r, void *buf, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		long k = r->read(r->ctx, (uint8_t *)buf + *got, n - *got);
		if (k < 0)
			return (int)k;
		if (k == 0)
			return 0;
		*got += (size_t)k;
	}
	return 0;
}

int ss_reader_open(struct ss_reader *r, ss_read_fn fn, void *ctx)
{
	memset(r, 0, sizeof *r);
	if (sodium_init() < 0)
		return err_set(EIO, "libsodium failed to initialise");
	r->read = fn;
	r->ctx = ctx;
	uint8_t hb[SS_HEADER_SIZE];
	size_t got;
	int e = r_in(r, hb, sizeof hb, &got);
	if (e < 0)
		return err_prefix(-e, "reading the stream header");
	if (got < sizeof hb)
		return err_set(EPIPE, "stream truncated in its header (%zu of %d bytes)", got,
			       SS_HEADER_SIZE);
	if ((e = ss_header_decode(hb, &r->h)) < 0)
		return e;
	if (grow(&r->rec, &r->reccap, 4096) < 0)
		return -ENOMEM;
	r->last_end = r->h.resume_offset;
	crypto_generichash_init(&r->hash, NULL, 0, SS_DIGEST_LEN);
	crypto_generichash_update(&r->hash, hb, sizeof hb);
	r->off = sizeof hb;
	return 0;
}

static int bad(struct ss_reader *r, uint32_t type, uint64_t at, int e, const char *why)
{
	return err_set(e, "record %" PRIu64 " (%s) at stream offset %" PRIu64 ": %s",
		       r->records + 1, ss_type_name(type), at, why);
}

static int check_range(struct ss_reader *r, const struct ss_record *rec, char *why, size_t n)
{
	if (rec->offset < r->last_end) {
		snprintf(why, n, "range %" PRIu64 "+%" PRIu64 " overlaps or precedes the last one "
			 "(ending at %" PRIu64 ")", rec->offset, rec->length, r->last_end);
		return -EINVAL;
	}
	if (rec->offset > r->h.origin_size || rec->length > r->h.origin_size - rec->offset) {
		snprintf(why, n, "range %" PRIu64 "+%" PRIu64 " past the origin's end %" PRIu64,
			 rec->offset, rec->length, r->h.origin_size);
		return -EINVAL;
	}
	return 0;
}

/* The body of the DATA record in r->rec: decompress into r->data and
 * check the data's own checksum.  */
static int data_body(struct ss_reader *r, size_t len, struct ss_record *rec, char *why, size_t n)
{
	uint32_t crc;
	const uint8_t *p;
	size_t plen;
	if (ss_data_decode(r->rec + SS_REC_HDR, len, rec, &crc, &p, &plen) < 0) {
		snprintf(why, n, "%s", err_get());
		return -EINVAL;
	}
	if (check_range(r, rec, why, n) < 0)
		return -EINVAL;
	if (rec->encoding == SS_ENC_RAW) {
		rec->data = p;
	} else {
		unsigned long long cs = ZSTD_getFrameContentSize(p, plen);
		if (cs != rec->length || ZSTD_findFrameCompressedSize(p, plen) != plen) {
			snprintf(why, n, "compressed data is not one frame of %" PRIu64 " bytes",
				 rec->length);
			return -EINVAL;
		}
		if (!r->dctx && !(r->dctx = ZSTD_createDCtx())) {
			snprintf(why, n, "out of memory");
			return -ENOMEM;
		}
		if (grow(&r->data, &r->datacap, rec->length) < 0) {
			snprintf(why, n, "out of memory");
			return -ENOMEM;
		}
		size_t d = ZSTD_decompressDCtx(r->dctx, r->data, rec->length, p, plen);
		if (ZSTD_isError(d) || d != rec->length) {
			snprintf(why, n, "compressed data does not decompress to %" PRIu64 " bytes%s%s",
				 rec->length, ZSTD_isError(d) ? ": " : "",
				 ZSTD_isError(d) ? ZSTD_getErrorName(d) : "");
			return -EINVAL;
		}
		rec->data = r->data;
	}
	if (crc32c(0, rec->data, rec->length) != crc) {
		snprintf(why, n, "data checksum mismatch");
		return -EILSEQ;
	}
	return 0;
}

int ss_reader_next(struct ss_reader *r, struct ss_record *rec)
{
	char why[200];
	for (;;) {
		if (r->ended)
			return SS_END;
		uint64_t at = r->off;
		size_t got;
		int e = r_in(r, r->rec, SS_REC_HDR, &got);
		if (e < 0)
			return err_prefix(-e, "record %" PRIu64 " at stream offset %" PRIu64,
					  r->records + 1, at);
		if (got == 0)
			return err_set(EPIPE, "stream truncated at offset %" PRIu64 " before record %"
				       PRIu64 " (no end record)", at, r->records + 1);
		if (got < SS_REC_HDR)
			return bad(r, 0, at, EPIPE, "truncated in the record header");
		uint32_t type = get_le32(r->rec + SR_TYPE);
		uint32_t len = get_le32(r->rec + SR_LEN);
		if (len > SS_MAX_BODY) {
			snprintf(why, sizeof why, "body length %u exceeds %u", len, SS_MAX_BODY);
			return bad(r, type, at, EINVAL, why);
		}
		size_t n = SS_REC_HDR + len + SS_REC_TRAILER;
		if ((e = grow(&r->rec, &r->reccap, n)) < 0)
			return e;
		if ((e = r_in(r, r->rec + SS_REC_HDR, n - SS_REC_HDR, &got)) < 0)
			return err_prefix(-e, "record %" PRIu64 " at stream offset %" PRIu64,
					  r->records + 1, at);
		if (got < n - SS_REC_HDR) {
			snprintf(why, sizeof why, "truncated (%zu of %zu bytes)", SS_REC_HDR + got, n);
			return bad(r, type, at, EPIPE, why);
		}
		if (get_le32(r->rec + SS_REC_HDR + len) != crc32c(0, r->rec, SS_REC_HDR + len))
			return bad(r, type, at, EILSEQ, "record checksum mismatch");
		memset(rec, 0, sizeof *rec);
		rec->type = type;
		rec->stream_off = at;
		const uint8_t *body = r->rec + SS_REC_HDR;
		why[0] = 0;
		switch (type) {
		case SS_T_DATA:
			if ((e = data_body(r, len, rec, why, sizeof why)) < 0)
				return bad(r, type, at, -e, why);
			break;
		case SS_T_ZERO:
			if (ss_zero_decode(body, len, rec) < 0)
				return bad(r, type, at, EINVAL, err_get());
			if (check_range(r, rec, why, sizeof why) < 0)
				return bad(r, type, at, EINVAL, why);
			break;
		case SS_T_CHECKPOINT:
			if (ss_checkpoint_decode(body, len, rec) < 0)
				return bad(r, type, at, EINVAL, err_get());
			if (rec->next != r->last_end || rec->records != r->records ||
			    rec->data_bytes != r->data_bytes)
				return bad(r, type, at, EINVAL, "counts disagree with the stream");
			break;
		case SS_T_END: {
			uint8_t want[SS_DIGEST_LEN], have[SS_DIGEST_LEN];
			if (ss_end_decode(body, len, rec, want) < 0)
				return bad(r, type, at, EINVAL, err_get());
			if (rec->records != r->records || rec->data_bytes != r->data_bytes)
				return bad(r, type, at, EINVAL, "counts disagree with the stream");
			crypto_generichash_state copy = r->hash;
			crypto_generichash_final(&copy, have, sizeof have);
			if (sodium_memcmp(want, have, sizeof have))
				return bad(r, type, at, EILSEQ, "stream digest (BLAKE2b) mismatch");
			uint8_t extra;
			if ((e = r_in(r, &extra, 1, &got)) < 0)
				return err_prefix(-e, "after the end record");
			if (got)
				return bad(r, type, at, EINVAL, "bytes follow the end record");
			r->off += n;
			r->ended = true;
			return SS_END;
		}
		default:
			if (!(type & SS_T_OPTIONAL))
				return bad(r, type, at, EINVAL, "unknown record type (a newer csnap "
					   "wrote this stream)");
			break;
		}
		crypto_generichash_update(&r->hash, r->rec, n);
		r->off += n;
		r->records++;
		if (type == SS_T_DATA || type == SS_T_ZERO)
			r->last_end = rec->offset + rec->length;
		if (type == SS_T_DATA)
			r->data_bytes += rec->length;
		if (type == SS_T_DATA || type == SS_T_ZERO || type == SS_T_CHECKPOINT)
			return SS_MORE;
		/* an optional record we do not know: skipped */
	}
}

void ss_reader_close(struct ss_reader *r)
{
	free(r->rec);
	free(r->data);
	ZSTD_freeDCtx(r->dctx);
	r->rec = r->data = NULL;
	r->dctx = NULL;
}
