/*
 * src/export/nbd_transmit.c - the transmission phase: parse and validate
 * each request (compact 28-byte or, with NBD_OPT_EXTENDED_HEADERS, 32-byte
 * headers), hand it to the volume (block status: nbd_meta.c), send the
 * reply: simple, structured chunks, or extended chunks, as negotiated.
 *
 * Requests run concurrently and complete in any order (the protocol
 * allows it; replies carry the client's cookie).  Validation follows the
 * protocol: out-of-range or malformed requests get an error reply
 * (EINVAL, ENOSPC for writes past the end, EPERM for writes to a
 * read-only export) and the connection goes on; a bad magic or a write
 * payload larger than advertised ends the connection, since the byte
 * stream can no longer be trusted.  An extended request's payload is
 * always read before its reply, even when the command takes none.
 */
#include "src/export/nbd_conn.h"
#include "src/export/nbd_server.h"

#include "utils/assert.h"
#include "utils/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Volumes take 32-bit lengths: a longer TRIM or WRITE_ZEROES (extended
 * headers) goes to the volume in pieces of this many bytes, a multiple of
 * any chunk size.  */
#define NBD_TX_PIECE	(1u << 30)

#define KNOWN_CMD_FLAGS (NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF | \
			 NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO)

uint32_t nbd_errno_to_wire(int err)
{
	switch (err) {
	case 0:		return 0;
	case EPERM:
	case EROFS:	return NBD_EPERM;
	case ENOMEM:	return NBD_ENOMEM;
	case EINVAL:	return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:	return NBD_ENOSPC;
	case EOVERFLOW:	return NBD_EOVERFLOW;
	case ENOTSUP:	return NBD_ENOTSUP;
	case ESHUTDOWN:	return NBD_ESHUTDOWN;
	default:	return NBD_EIO;
	}
}

static struct nbd_req *req_new(struct nbd_conn *c)
{
	struct nbd_req *r = c->free_reqs;

	if (r)
		c->free_reqs = r->next_free;
	else if (!(r = malloc(sizeof *r)))
		return NULL;
	memset(r, 0, sizeof *r);
	r->conn = c;
	c->inflight++;
	return r;
}

/* The request is over: its reply went out or the connection died.  */
void nbd_tx_release(struct nbd_conn *c, struct nbd_req *r)
{
	if (r->vr.buf) {
		nbd_buf_put(c->srv, r->vr.buf, r->buf_size);
		c->inflight_bytes -= r->buf_size;
	}
	r->vr.buf = NULL;
	c->inflight--;
	r->next_free = c->free_reqs;
	c->free_reqs = r;
	nbd_conn_kick(c);
}

void nbd_tx_free_reqs(struct nbd_conn *c)
{
	while (c->free_reqs) {
		struct nbd_req *r = c->free_reqs;

		c->free_reqs = r->next_free;
		free(r);
	}
}

static void req_sent(struct nbd_conn *c, struct nbd_out *o)
{
	nbd_tx_release(c, (struct nbd_req *)((char *)o - offsetof(struct nbd_req, out)));
}

size_t nbd_tx_chunk_header(const struct nbd_conn *c, const struct nbd_req *r, uint8_t *dst,
			   uint16_t flags, uint16_t type, uint64_t len)
{
	nbd_put16(dst + 4, flags);
	nbd_put16(dst + 6, type);
	nbd_put64(dst + 8, r->cookie);
	if (c->extended) {
		nbd_put32(dst, NBD_EXTENDED_REPLY_MAGIC);
		nbd_put64(dst + 16, r->vr.off);	/* the request's offset */
		nbd_put64(dst + 24, len);
		return NBD_EXT_CHUNK_HDR_SIZE;
	}
	CSNAP_ASSERT(len <= UINT32_MAX);	/* payloads are bounded far below */
	nbd_put32(dst, NBD_STRUCTURED_REPLY_MAGIC);
	nbd_put32(dst + 16, (uint32_t)len);
	return NBD_CHUNK_HDR_SIZE;
}

void nbd_tx_reply(struct nbd_conn *c, struct nbd_req *r)
{
	size_t n;

	r->out.niov = 1;
	r->out.iov[0].iov_base = r->reply;
	if (!c->structured ||
	    (!c->extended && r->cmd != NBD_CMD_READ && r->cmd != NBD_CMD_BLOCK_STATUS)) {
		/* Simple replies carry no message: allowed for everything but
		 * READ once structured replies are negotiated, and for nothing
		 * with extended headers.  */
		nbd_put32(r->reply, NBD_SIMPLE_REPLY_MAGIC);
		nbd_put32(r->reply + 4, r->wire_err);
		nbd_put64(r->reply + 8, r->cookie);
		r->out.iov[0].iov_len = NBD_SIMPLE_REPLY_SIZE;
		if (r->cmd == NBD_CMD_READ && !r->wire_err) {
			r->out.iov[1].iov_base = r->vr.buf;
			r->out.iov[1].iov_len = r->vr.len;
			r->out.niov = 2;
		}
	} else if (r->wire_err) {
		const char *msg = r->err_msg ? r->err_msg : "";
		size_t ml = strnlen(msg, sizeof r->reply - NBD_EXT_CHUNK_HDR_SIZE - 6);

		n = nbd_tx_chunk_header(c, r, r->reply, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
					6 + ml);
		nbd_put32(r->reply + n, r->wire_err);
		nbd_put16(r->reply + n + 4, (uint16_t)ml);
		memcpy(r->reply + n + 6, msg, ml);
		r->out.iov[0].iov_len = n + 6 + ml;
	} else if (r->cmd == NBD_CMD_READ) {
		/* One data chunk: csnap cannot tell zeroes from data without
		 * reading them, so it never answers with a hole (and DF is
		 * honoured by construction).  */
		n = nbd_tx_chunk_header(c, r, r->reply, NBD_REPLY_FLAG_DONE,
					NBD_REPLY_TYPE_OFFSET_DATA, 8 + (uint64_t)r->vr.len);
		nbd_put64(r->reply + n, r->vr.off);
		r->out.iov[0].iov_len = n + 8;
		r->out.iov[1].iov_base = r->vr.buf;
		r->out.iov[1].iov_len = r->vr.len;
		r->out.niov = 2;
	} else if (r->cmd == NBD_CMD_BLOCK_STATUS) {
		/* nbd_meta.c built the whole reply in vr.buf.  */
		CSNAP_ASSERT(r->bs_len > 0 && r->bs_len <= r->buf_size);
		r->out.iov[0].iov_base = r->vr.buf;
		r->out.iov[0].iov_len = r->bs_len;
	} else {
		/* extended headers: success without data */
		r->out.iov[0].iov_len = nbd_tx_chunk_header(c, r, r->reply, NBD_REPLY_FLAG_DONE,
							     NBD_REPLY_TYPE_NONE, 0);
	}
	r->out.sent = req_sent;
	nbd_conn_queue(c, &r->out);
}

static void reply_error(struct nbd_conn *c, struct nbd_req *r, uint32_t wire_err, const char *msg)
{
	r->wire_err = wire_err;
	r->err_msg = msg;
	nbd_tx_reply(c, r);
}

static void submit_pieces(struct nbd_conn *c, struct nbd_req *r);

/* Moves R to its next piece; false when the last one is done.  */
static bool next_piece(struct nbd_req *r)
{
	uint64_t done = r->piece_done + r->vr.len, left;

	CSNAP_ASSERT(done <= r->len);	/* pieces never overrun */
	left = r->len - done;
	if (!left)
		return false;
	r->piece_done = done;
	r->vr.off += r->vr.len;
	r->vr.len = left < NBD_TX_PIECE ? (uint32_t)left : NBD_TX_PIECE;
	return true;
}

static void req_done(struct vol_req *vr, int err)
{
	struct nbd_req *r = (struct nbd_req *)vr;
	struct nbd_conn *c = r->conn;

	if (c->dead) {
		nbd_tx_release(c, r);
		return;
	}
	if (r->len > UINT32_MAX && err >= 0 && next_piece(r)) {
		if (r->in_submit)
			r->again = true;	/* submit_pieces() goes on */
		else
			submit_pieces(c, r);
		return;
	}
	vr->off -= r->piece_done;	/* the reply names the request's offset */
	if (err < 0) {
		/* (the request's length: vr->len is the failed piece's) */
		log_warn("nbd %s: %s of %llu bytes at %llu on %s failed: %s", c->peer,
			 r->cmd == NBD_CMD_READ ? "read" : r->cmd == NBD_CMD_FLUSH ? "flush" :
			 r->cmd == NBD_CMD_TRIM ? "trim" :
			 r->cmd == NBD_CMD_WRITE_ZEROES ? "write zeroes" : "write",
			 (unsigned long long)r->len, (unsigned long long)vr->off, c->vol->name,
			 strerror(-err));
		r->wire_err = nbd_errno_to_wire(-err);
		r->err_msg = strerror(-err);
	}
	nbd_tx_reply(c, r);
}

/* 0, or the NBD error a well-formed reply reports (and *MSG why).  */
static uint32_t validate(const struct nbd_conn *c, const struct nbd_req *r, const char **msg)
{
	const struct volume *vol = c->vol;
	uint64_t off = r->vr.off, len = r->len;
	bool in_range = off <= vol->size && len <= vol->size - off;
	bool ro = vol->flags & VOL_READONLY;

	*msg = "invalid command flags";
	if (r->flags & ~(KNOWN_CMD_FLAGS | (c->extended ? NBD_CMD_FLAG_PAYLOAD_LEN : 0)))
		return NBD_EINVAL;
	if (c->extended && !!(r->flags & NBD_CMD_FLAG_PAYLOAD_LEN) != (r->cmd == NBD_CMD_WRITE)) {
		/* its payload (if any) was read and dropped */
		*msg = r->cmd == NBD_CMD_WRITE ? "NBD_CMD_WRITE needs NBD_CMD_FLAG_PAYLOAD_LEN"
					       : "this command takes no payload";
		return NBD_EINVAL;
	}
	/* DF (reads) and REQ_ONE (block status) need structured replies;
	 * FAST_ZERO was not offered.  */
	if (r->flags & NBD_CMD_FLAG_FAST_ZERO)
		return NBD_EINVAL;
	if (r->flags & NBD_CMD_FLAG_DF && (!c->structured || r->cmd != NBD_CMD_READ))
		return NBD_EINVAL;
	if (r->flags & NBD_CMD_FLAG_REQ_ONE && r->cmd != NBD_CMD_BLOCK_STATUS)
		return NBD_EINVAL;
	if (r->flags & NBD_CMD_FLAG_NO_HOLE && r->cmd != NBD_CMD_WRITE_ZEROES)
		return NBD_EINVAL;
	*msg = in_range ? "invalid request" : "request beyond the end of the export";
	switch (r->cmd) {
	case NBD_CMD_READ:
		if (len == 0 || len > NBD_SERVER_MAX_PAYLOAD || !in_range)
			return NBD_EINVAL;
		return 0;
	case NBD_CMD_WRITE:
		if (ro)
			return NBD_EPERM;
		if (len == 0)
			return NBD_EINVAL;
		return in_range ? 0 : NBD_ENOSPC;
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		if (ro)
			return NBD_EPERM;
		if (len == 0)
			return NBD_EINVAL;
		return in_range ? 0 : NBD_ENOSPC;	/* 4 GiB or more: in pieces */
	case NBD_CMD_FLUSH:
		return off || len ? NBD_EINVAL : 0;
	case NBD_CMD_BLOCK_STATUS:
		if (!c->meta_alloc && !c->meta_changed[0]) {
			*msg = "no metadata context was negotiated";
			return NBD_EINVAL;
		}
		return len && in_range ? 0 : NBD_EINVAL;
	default:
		*msg = "command not supported";
		return NBD_EINVAL;	/* CACHE, RESIZE, unknown */
	}
}

static void submit(struct nbd_conn *c, struct nbd_req *r)
{
	const char *msg = NULL;
	uint32_t e = validate(c, r, &msg);

	if (e) {
		log_debug("nbd %s: invalid request cmd %u flags %#x off %llu len %u: error %u (%s)",
			  c->peer, r->cmd, r->flags, (unsigned long long)r->vr.off, r->vr.len, e, msg);
		reply_error(c, r, e, msg);
		return;
	}
	if (r->cmd == NBD_CMD_BLOCK_STATUS) {
		nbd_meta_block_status(c, r);
		return;
	}
	switch (r->cmd) {
	case NBD_CMD_READ:		r->vr.op = VOL_READ; break;
	case NBD_CMD_WRITE:		r->vr.op = VOL_WRITE; break;
	case NBD_CMD_FLUSH:		r->vr.op = VOL_FLUSH; break;
	case NBD_CMD_TRIM:		r->vr.op = VOL_TRIM; break;
	case NBD_CMD_WRITE_ZEROES:	r->vr.op = VOL_ZEROES; break;
	}
	r->vr.flags = r->flags & NBD_CMD_FLAG_FUA ? VOL_REQ_FUA : 0;
	r->vr.done = req_done;
	if (r->len > UINT32_MAX) {
		r->vr.len = NBD_TX_PIECE;
		submit_pieces(c, r);
		return;
	}
	volume_submit(c->vol, &r->vr);
}

/* Submits R's pieces from the current one on.  A piece the volume
 * completes at once (an advisory trim) comes back through req_done()
 * inside volume_submit(): it sets R->again instead of recursing (a 16 TiB
 * trim would nest 16,384 calls).  R may be over when volume_submit()
 * returns: a released request stays on the connection's free list until
 * the connection is freed, which only a deferred kick does, so R stays
 * valid here.  */
static void submit_pieces(struct nbd_conn *c, struct nbd_req *r)
{
	do {
		r->again = false;
		r->in_submit = true;
		volume_submit(c->vol, &r->vr);
		r->in_submit = false;
	} while (r->again);
}

void nbd_tx_header(struct nbd_conn *c)
{
	const uint8_t *h = c->hdr;
	const bool ext = c->extended;
	struct nbd_req *r;
	bool payload;

	if (nbd_get32(h) != (ext ? NBD_EXTENDED_REQUEST_MAGIC : NBD_REQUEST_MAGIC)) {
		nbd_conn_kill(c, ext ? "bad request magic (extended headers were negotiated)"
				     : "bad request magic");
		return;
	}
	if (nbd_get16(h + 6) == NBD_CMD_DISC) {
		log_debug("nbd %s: client disconnects", c->peer);
		nbd_conn_drain(c);
		return;
	}
	r = req_new(c);
	if (!r) {
		nbd_conn_kill(c, "out of memory");
		return;
	}
	r->flags = nbd_get16(h + 4);
	r->cmd = nbd_get16(h + 6);
	r->cookie = nbd_get64(h + 8);
	r->vr.off = nbd_get64(h + 16);
	r->len = ext ? nbd_get64(h + 24) : nbd_get32(h + 24);
	/* vr.len is 32 bits: validate() refuses what would not fit (payloads
	 * are bounded far below; block status clips its hint; trim and write
	 * zeroes go to the volume in pieces).  */
	r->vr.len = r->len > UINT32_MAX ? UINT32_MAX : (uint32_t)r->len;
	/* A payload follows: compact writes, or any extended request with
	 * NBD_CMD_FLAG_PAYLOAD_LEN (read and dropped if the command takes
	 * none: validate() then refuses it).  */
	payload = ext ? (r->flags & NBD_CMD_FLAG_PAYLOAD_LEN) != 0 : r->cmd == NBD_CMD_WRITE;
	if (payload || (r->cmd == NBD_CMD_READ && r->len && r->len <= NBD_SERVER_MAX_PAYLOAD)) {
		if (r->len > NBD_SERVER_MAX_PAYLOAD) {
			/* We cannot tell where the next request starts.  */
			c->inflight--;
			r->next_free = c->free_reqs;
			c->free_reqs = r;
			nbd_conn_kill(c, "write payload larger than the advertised maximum");
			return;
		}
		r->vr.buf = nbd_buf_get(c->srv, r->vr.len, &r->buf_size);
		if (!r->vr.buf) {
			nbd_tx_release(c, r);
			nbd_conn_kill(c, "out of memory for a payload buffer");
			return;
		}
		c->inflight_bytes += r->buf_size;
	}
	if (payload) {
		c->cur = r;
		c->pay_have = 0;
		c->state = NBD_ST_TX_PAYLOAD;
		if (r->vr.len == 0)
			nbd_tx_payload_done(c);
		return;
	}
	submit(c, r);
}

void nbd_tx_payload_done(struct nbd_conn *c)
{
	struct nbd_req *r = c->cur;

	c->cur = NULL;
	c->state = NBD_ST_TX_HEADER;
	c->hdr_want = nbd_req_hdr_size(c);
	submit(c, r);
}
