/*
 * src/export/nbd.h - NBD wire protocol constants (fixed newstyle
 * handshake, simple replies), as specified by the NBD project's
 * doc/proto.md.
 *
 * Everything on the NBD wire is big-endian ("network byte order"); the
 * helpers at the bottom are the only place that converts.  Nothing here
 * depends on csnap: this header is the vocabulary of src/export/nbd_*.c.
 */
#ifndef CSNAP_EXPORT_NBD_H
#define CSNAP_EXPORT_NBD_H

#include <stdint.h>

/* ---- handshake -------------------------------------------------------- */

#define NBD_MAGIC		0x4e42444d41474943ULL	/* "NBDMAGIC" */
#define NBD_IHAVEOPT		0x49484156454f5054ULL	/* "IHAVEOPT" */
#define NBD_REP_MAGIC		0x0003e889045565a9ULL	/* option replies */

/* Server handshake flags (16 bit).  */
#define NBD_FLAG_FIXED_NEWSTYLE	(1u << 0)
#define NBD_FLAG_NO_ZEROES	(1u << 1)
/* Client flags (32 bit): same bits.  */
#define NBD_FLAG_C_FIXED_NEWSTYLE NBD_FLAG_FIXED_NEWSTYLE
#define NBD_FLAG_C_NO_ZEROES	NBD_FLAG_NO_ZEROES

/* Options.  */
#define NBD_OPT_EXPORT_NAME		1
#define NBD_OPT_ABORT			2
#define NBD_OPT_LIST			3
#define NBD_OPT_PEEK_EXPORT		4
#define NBD_OPT_STARTTLS		5
#define NBD_OPT_INFO			6
#define NBD_OPT_GO			7
#define NBD_OPT_STRUCTURED_REPLY	8
#define NBD_OPT_LIST_META_CONTEXT	9
#define NBD_OPT_SET_META_CONTEXT	10
#define NBD_OPT_EXTENDED_HEADERS	11

/* Option replies.  */
#define NBD_REP_ACK			1
#define NBD_REP_SERVER			2
#define NBD_REP_INFO			3
#define NBD_REP_META_CONTEXT		4
#define NBD_REP_FLAG_ERROR		(1u << 31)
#define NBD_REP_ERR_UNSUP		(NBD_REP_FLAG_ERROR | 1)
#define NBD_REP_ERR_POLICY		(NBD_REP_FLAG_ERROR | 2)
#define NBD_REP_ERR_INVALID		(NBD_REP_FLAG_ERROR | 3)
#define NBD_REP_ERR_PLATFORM		(NBD_REP_FLAG_ERROR | 4)
#define NBD_REP_ERR_TLS_REQD		(NBD_REP_FLAG_ERROR | 5)
#define NBD_REP_ERR_UNKNOWN		(NBD_REP_FLAG_ERROR | 6)
#define NBD_REP_ERR_SHUTDOWN		(NBD_REP_FLAG_ERROR | 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD	(NBD_REP_FLAG_ERROR | 8)
#define NBD_REP_ERR_TOO_BIG		(NBD_REP_FLAG_ERROR | 9)
#define NBD_REP_ERR_EXT_HEADER_REQD	(NBD_REP_FLAG_ERROR | 10)

/* NBD_REP_INFO types.  */
#define NBD_INFO_EXPORT		0
#define NBD_INFO_NAME		1
#define NBD_INFO_DESCRIPTION	2
#define NBD_INFO_BLOCK_SIZE	3

/* Transmission flags (16 bit), sent with the export size.  */
#define NBD_FLAG_HAS_FLAGS		(1u << 0)
#define NBD_FLAG_READ_ONLY		(1u << 1)
#define NBD_FLAG_SEND_FLUSH		(1u << 2)
#define NBD_FLAG_SEND_FUA		(1u << 3)
#define NBD_FLAG_ROTATIONAL		(1u << 4)
#define NBD_FLAG_SEND_TRIM		(1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES	(1u << 6)
#define NBD_FLAG_SEND_DF		(1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN		(1u << 8)
#define NBD_FLAG_SEND_RESIZE		(1u << 9)
#define NBD_FLAG_SEND_CACHE		(1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO		(1u << 11)

/* Strings (export names, descriptions) are at most this long.  */
#define NBD_MAX_STRING		4096

/* ---- transmission ----------------------------------------------------- */

#define NBD_REQUEST_MAGIC	0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC	0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu
/* NBD_OPT_EXTENDED_HEADERS (the extension-ext-header branch of proto.md):
 * 32-byte requests with a 64-bit length, and every reply a 32-byte chunk
 * header that repeats the request's offset and has a 64-bit length.  */
#define NBD_EXTENDED_REQUEST_MAGIC 0x21e41c71u
#define NBD_EXTENDED_REPLY_MAGIC 0x6e8a278cu
#define NBD_EXT_REQUEST_SIZE	32
#define NBD_EXT_CHUNK_HDR_SIZE	32

#define NBD_REQUEST_SIZE	28
#define NBD_SIMPLE_REPLY_SIZE	16
#define NBD_CHUNK_HDR_SIZE	20	/* structured reply chunk header */

/* Structured reply chunk types and flags.  */
#define NBD_REPLY_FLAG_DONE		(1u << 0)
#define NBD_REPLY_TYPE_NONE		0
#define NBD_REPLY_TYPE_OFFSET_DATA	1
#define NBD_REPLY_TYPE_OFFSET_HOLE	2
#define NBD_REPLY_TYPE_BLOCK_STATUS	5
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT	6
#define NBD_REPLY_TYPE_ERROR		((1u << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET	((1u << 15) + 2)

/* Metadata contexts.  base:allocation flags: */
#define NBD_STATE_HOLE		(1u << 0)
#define NBD_STATE_ZERO		(1u << 1)
/* csnap:changed:<snapshot> flags (docs/export.md): the extent's content
 * may differ from the snapshot's (its chunks were written since).  */
#define NBD_STATE_CSNAP_CHANGED	(1u << 0)

#define NBD_CMD_READ		0
#define NBD_CMD_WRITE		1
#define NBD_CMD_DISC		2
#define NBD_CMD_FLUSH		3
#define NBD_CMD_TRIM		4
#define NBD_CMD_CACHE		5
#define NBD_CMD_WRITE_ZEROES	6
#define NBD_CMD_BLOCK_STATUS	7
#define NBD_CMD_RESIZE		8

#define NBD_CMD_FLAG_FUA	(1u << 0)
#define NBD_CMD_FLAG_NO_HOLE	(1u << 1)
#define NBD_CMD_FLAG_DF		(1u << 2)
#define NBD_CMD_FLAG_REQ_ONE	(1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO	(1u << 4)
#define NBD_CMD_FLAG_PAYLOAD_LEN (1u << 5)	/* extended headers only */

/* Error values in replies (fixed by the protocol, not host errno).  */
#define NBD_EPERM	1
#define NBD_EIO		5
#define NBD_ENOMEM	12
#define NBD_EINVAL	22
#define NBD_ENOSPC	28
#define NBD_EOVERFLOW	75
#define NBD_ENOTSUP	95
#define NBD_ESHUTDOWN	108

/* ---- big-endian helpers ----------------------------------------------- */

static inline uint16_t nbd_get16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint32_t nbd_get32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline uint64_t nbd_get64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)nbd_get32(b) << 32 | nbd_get32(b + 4);
}

static inline void nbd_put16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 8); b[1] = (uint8_t)v;
}

static inline void nbd_put32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 24); b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);  b[3] = (uint8_t)v;
}

static inline void nbd_put64(void *p, uint64_t v)
{
	nbd_put32(p, (uint32_t)(v >> 32));
	nbd_put32((uint8_t *)p + 4, (uint32_t)v);
}

/* Host errno -> NBD error value for a reply.  */
uint32_t nbd_errno_to_wire(int err);

#endif
