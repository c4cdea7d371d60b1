/*
 * src/send/stream.h - the `csnap send` stream: a header, then tagged
 * records (docs/send-stream.md has every byte offset).  One encoder and one
 * decoder per record kind; a writer that frames, checksums, digests and
 * optionally compresses records, and a reader that refuses anything it
 * cannot prove right before handing a record to its caller.
 *
 * Invariants the reader guarantees for every record it returns:
 *  - the record's own crc32c matched (type, length and body);
 *  - DATA and ZERO ranges lie inside [0, origin size), are non-empty,
 *    and come in increasing, non-overlapping order;
 *  - DATA bytes are exactly `length` long after decompression and their
 *    crc32c matches the one the sender computed before compressing;
 *  - CHECKPOINT counts match what the reader itself counted;
 *  - ss_reader_next() returns SS_END only after the END record's BLAKE2b
 *    digest of every byte before it matched and no byte follows it.
 * Errors are one line naming the record (its number and kind) and the
 * stream offset where it starts (err_get()).
 */
#ifndef CSNAP_SEND_STREAM_H
#define CSNAP_SEND_STREAM_H

#include "utils/uuid.h"

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SS_MAGIC		"CSNAPSND"
#define SS_VERSION		1
#define SS_HEADER_SIZE		256
#define SS_NAME_LEN		64	/* snapshot name field: up to 63 bytes + NUL padding */
#define SS_REC_HDR		8	/* le32 type, le32 body length */
#define SS_REC_TRAILER		4	/* le32 crc32c */
#define SS_MAX_DATA		(4u << 20)	/* bytes of one DATA record, uncompressed */
#define SS_DATA_HDR		20
#define SS_MAX_BODY		(SS_DATA_HDR + SS_MAX_DATA)
#define SS_DIGEST_LEN		32	/* BLAKE2b-256 (crypto_generichash) */

/* Header flags.  */
#define SS_F_INCREMENTAL	0x1	/* from snapshot given: only changes */
#define SS_F_RESUMED		0x2	/* continues a cut receive: ranges start
					 * at resume_offset */
#define SS_F_KNOWN		(SS_F_INCREMENTAL | SS_F_RESUMED)

/* Layouts, as byte offsets (little-endian; docs/send-stream.md).
 * Header, SS_HEADER_SIZE bytes; bytes SH_RESERVED..SH_CSUM are zero.  */
enum {
	SH_MAGIC = 0,		/* SS_MAGIC, 8 bytes */
	SH_VERSION = 8,		/* le32 SS_VERSION */
	SH_SIZE = 12,		/* le32 SS_HEADER_SIZE */
	SH_SOURCE = 16,		/* u8[16] source store uuid */
	SH_ORIGIN_SIZE = 32,	/* le64 */
	SH_CHUNK_SIZE = 40,	/* le32 */
	SH_FLAGS = 44,		/* le32 SS_F_* */
	SH_FROM_ID = 48,	/* le32 */
	SH_TO_ID = 52,		/* le32 */
	SH_FROM_CTIME = 56,	/* le64 */
	SH_TO_CTIME = 64,	/* le64 */
	SH_FROM_NAME = 72,	/* char[SS_NAME_LEN] */
	SH_TO_NAME = 136,	/* char[SS_NAME_LEN] */
	SH_TOTAL = 200,		/* le64 total_bytes */
	SH_RESUME = 208,	/* le64 resume_offset */
	SH_RESERVED = 216,
	SH_CSUM = 252,		/* le32 crc32c of bytes [0, SH_CSUM) */
};
/* A record: le32 type, le32 body length, the body, le32 crc32c of all
 * before it.  Bodies: DATA (SD_*), ZERO (SZ_*), CHECKPOINT (SC_*), END
 * (SE_*).  */
enum {
	SR_TYPE = 0, SR_LEN = 4,
	SD_OFFSET = 0, SD_LENGTH = 8, SD_ENCODING = 12, SD_CRC = 16,	/* SS_DATA_HDR, payload */
	SZ_OFFSET = 0, SZ_LENGTH = 8, SZ_SIZE = 16,
	SC_NEXT = 0, SC_RECORDS = 8, SC_DATA_BYTES = 16, SC_SIZE = 24,
	SE_RECORDS = 0, SE_DATA_BYTES = 8, SE_DIGEST = 16, SE_SIZE = 16 + SS_DIGEST_LEN,
};

/* Record types.  An unknown type with SS_T_OPTIONAL set is skipped (after
 * its checksum is checked); an unknown one without it is refused.  */
enum ss_type {
	SS_T_DATA	= 1,
	SS_T_ZERO	= 2,
	SS_T_CHECKPOINT	= 3,
	SS_T_END	= 4,
};
#define SS_T_OPTIONAL	0x80000000u

/* DATA encodings.  */
#define SS_ENC_RAW	0
#define SS_ENC_ZSTD	1

struct ss_header {
	struct csnap_uuid source;	/* the sending store */
	uint64_t origin_size;		/* bytes */
	uint32_t chunk_size;
	uint32_t flags;			/* SS_F_* */
	uint32_t from_id, to_id;	/* snapshot ids on the source; from 0 = full */
	uint64_t from_ctime, to_ctime;	/* seconds since the epoch */
	char from_name[SS_NAME_LEN];	/* "" for a full stream */
	char to_name[SS_NAME_LEN];
	uint64_t total_bytes;		/* bytes the ranges will cover: for
					 * progress only, never trusted */
	uint64_t resume_offset;		/* SS_F_RESUMED: origin offset below
					 * which the receiver has it all */
};

struct ss_record {
	uint32_t type;
	uint64_t stream_off;		/* where the record starts in the stream */
	uint64_t offset, length;	/* DATA, ZERO: origin byte range */
	const uint8_t *data;		/* DATA: `length` bytes, valid until the next call */
	uint32_t encoding;		/* DATA: how it was sent */
	uint64_t next;			/* CHECKPOINT: everything below was sent */
	uint64_t records, data_bytes;	/* CHECKPOINT, END: counts before this record */
};

/* Header: encode into SS_HEADER_SIZE bytes / decode and validate.  */
void ss_header_encode(const struct ss_header *h, uint8_t *buf);
int ss_header_decode(const uint8_t *buf, struct ss_header *h);

/* Record bodies.  Encoders return the body length written into BODY
 * (which has room for SS_MAX_BODY); decoders validate and fill REC.  */
size_t ss_data_encode(uint8_t *body, uint64_t offset, uint32_t length, uint32_t encoding,
		      uint32_t crc, const void *payload, size_t payload_len);
int ss_data_decode(const uint8_t *body, size_t len, struct ss_record *rec, uint32_t *crc,
		   const uint8_t **payload, size_t *payload_len);
size_t ss_zero_encode(uint8_t *body, uint64_t offset, uint64_t length);
int ss_zero_decode(const uint8_t *body, size_t len, struct ss_record *rec);
size_t ss_checkpoint_encode(uint8_t *body, uint64_t next, uint64_t records, uint64_t data_bytes);
int ss_checkpoint_decode(const uint8_t *body, size_t len, struct ss_record *rec);
size_t ss_end_encode(uint8_t *body, uint64_t records, uint64_t data_bytes,
		     const uint8_t digest[SS_DIGEST_LEN]);
int ss_end_decode(const uint8_t *body, size_t len, struct ss_record *rec,
		  uint8_t digest[SS_DIGEST_LEN]);

const char *ss_type_name(uint32_t type);

/* I/O callbacks: write all N bytes (0 or -errno with err_set()); read up
 * to N bytes (count, 0 at the end of input, or -errno).  */
typedef int (*ss_write_fn)(void *ctx, const void *buf, size_t n);
typedef long (*ss_read_fn)(void *ctx, void *buf, size_t n);

struct ss_writer {
	ss_write_fn write;
	void *ctx;
	struct ss_header h;
	uint64_t off;			/* bytes written */
	uint64_t records;		/* records written */
	uint64_t data_bytes;		/* DATA bytes, uncompressed */
	uint64_t last_end;		/* end of the last range */
	int level;			/* zstd level, 0: no compression */
	void *cctx;			/* ZSTD_CCtx */
	uint8_t *rec;			/* the record being framed */
	size_t reccap;			/* grows to at most one whole record */
	uint8_t *zbuf;			/* compressed payload */
	size_t zcap;
	crypto_generichash_state hash;
};

/* Writes the header.  LEVEL: zstd level for DATA records, 0 for none.  */
int ss_writer_open(struct ss_writer *w, ss_write_fn fn, void *ctx, const struct ss_header *h,
		   int level);
/* Ranges must be given in increasing order (checked: -EINVAL).  A DATA
 * record is stored compressed only when that is smaller.  */
int ss_write_data(struct ss_writer *w, uint64_t offset, const void *buf, uint32_t len);
int ss_write_zero(struct ss_writer *w, uint64_t offset, uint64_t len);
int ss_write_checkpoint(struct ss_writer *w);
int ss_write_end(struct ss_writer *w);
void ss_writer_close(struct ss_writer *w);

struct ss_reader {
	ss_read_fn read;
	void *ctx;
	struct ss_header h;
	uint64_t off;			/* bytes consumed */
	uint64_t records;		/* records read, END not counted */
	uint64_t data_bytes;
	uint64_t last_end;
	bool ended;
	void *dctx;			/* ZSTD_DCtx, made at the first zstd record */
	uint8_t *rec;			/* the record being read */
	size_t reccap;			/* grows to at most one whole record */
	uint8_t *data;			/* decompressed DATA */
	size_t datacap;
	crypto_generichash_state hash;
};

#define SS_MORE	1	/* ss_reader_next: a record is in *rec */
#define SS_END	0	/* the stream ended, digest verified */

/* Reads and validates the header.  */
int ss_reader_open(struct ss_reader *r, ss_read_fn fn, void *ctx);
/* The next DATA, ZERO or CHECKPOINT record (SS_MORE), SS_END, or -errno
 * with a one-line err_set() naming record and offset.  */
int ss_reader_next(struct ss_reader *r, struct ss_record *rec);
void ss_reader_close(struct ss_reader *r);

#endif
