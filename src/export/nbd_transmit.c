/*
 * src/export/nbd_transmit.c - the transmission phase: parse and validate
 * each request, hand it to the volume, send the simple reply.
 *
 * Requests run concurrently and complete in any order (the protocol
 * allows it; replies carry the client's cookie).  Validation follows the
 * protocol: out-of-range or malformed requests get an error reply
 * (EINVAL, ENOSPC for writes past the end, EPERM for writes to a
 * read-only export) and the connection goes on; a bad magic or a write
 * payload larger than advertised ends the connection, since the byte
 * stream can no longer be trusted.
 */
#include "src/export/nbd_conn.h"
#include "src/export/nbd_server.h"

#include "utils/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

static void send_reply(struct nbd_conn *c, struct nbd_req *r)
{
	nbd_put32(r->reply, NBD_SIMPLE_REPLY_MAGIC);
	nbd_put32(r->reply + 4, r->wire_err);
	nbd_put64(r->reply + 8, r->cookie);
	r->out.iov[0].iov_base = r->reply;
	r->out.iov[0].iov_len = sizeof r->reply;
	r->out.niov = 1;
	if (r->cmd == NBD_CMD_READ && !r->wire_err) {
		r->out.iov[1].iov_base = r->vr.buf;
		r->out.iov[1].iov_len = r->vr.len;
		r->out.niov = 2;
	}
	r->out.sent = req_sent;
	nbd_conn_queue(c, &r->out);
}

static void reply_error(struct nbd_conn *c, struct nbd_req *r, uint32_t wire_err)
{
	r->wire_err = wire_err;
	send_reply(c, r);
}

static void req_done(struct vol_req *vr, int err)
{
	struct nbd_req *r = (struct nbd_req *)vr;
	struct nbd_conn *c = r->conn;

	if (c->dead) {
		nbd_tx_release(c, r);
		return;
	}
	if (err < 0) {
		log_warn("nbd %s: %s of %u bytes at %llu on %s failed: %s", c->peer,
			 r->cmd == NBD_CMD_READ ? "read" : r->cmd == NBD_CMD_FLUSH ? "flush" : "write",
			 vr->len, (unsigned long long)vr->off, c->vol->name, strerror(-err));
		r->wire_err = nbd_errno_to_wire(-err);
	}
	send_reply(c, r);
}

/* 0, or the NBD error a well-formed reply reports.  */
static uint32_t validate(const struct nbd_conn *c, const struct nbd_req *r)
{
	const struct volume *vol = c->vol;
	uint64_t off = r->vr.off, len = r->vr.len;
	bool in_range = off <= vol->size && len <= vol->size - off;
	bool ro = vol->flags & VOL_READONLY;

	if (r->flags & ~KNOWN_CMD_FLAGS)
		return NBD_EINVAL;
	/* DF and REQ_ONE need structured replies; FAST_ZERO was not offered. */
	if (r->flags & (NBD_CMD_FLAG_DF | NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO))
		return NBD_EINVAL;
	if (r->flags & NBD_CMD_FLAG_NO_HOLE && r->cmd != NBD_CMD_WRITE_ZEROES)
		return NBD_EINVAL;
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
		return in_range ? 0 : NBD_ENOSPC;
	case NBD_CMD_FLUSH:
		return off || len ? NBD_EINVAL : 0;
	default:
		return NBD_EINVAL;	/* CACHE, BLOCK_STATUS, RESIZE, unknown */
	}
}

static void submit(struct nbd_conn *c, struct nbd_req *r)
{
	uint32_t e = validate(c, r);

	if (e) {
		log_debug("nbd %s: invalid request cmd %u flags %#x off %llu len %u: error %u",
			  c->peer, r->cmd, r->flags, (unsigned long long)r->vr.off, r->vr.len, e);
		reply_error(c, r, e);
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
	volume_submit(c->vol, &r->vr);
}

void nbd_tx_header(struct nbd_conn *c)
{
	const uint8_t *h = c->hdr;
	struct nbd_req *r;

	if (nbd_get32(h) != NBD_REQUEST_MAGIC) {
		nbd_conn_kill(c, "bad request magic");
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
	r->vr.len = nbd_get32(h + 24);
	if (r->cmd == NBD_CMD_WRITE || (r->cmd == NBD_CMD_READ && r->vr.len &&
					r->vr.len <= NBD_SERVER_MAX_PAYLOAD)) {
		if (r->vr.len > NBD_SERVER_MAX_PAYLOAD) {
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
	if (r->cmd == NBD_CMD_WRITE) {
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
	c->hdr_want = NBD_REQUEST_SIZE;
	submit(c, r);
}
