/*
 * src/export/nbd_conn.h - internals shared by the NBD server's files:
 * nbd_server.c (exports, buffers), nbd_listen.c (accept), nbd_conn.c
 * (a connection's buffered socket I/O), nbd_handshake.c
 * (option haggling), nbd_transmit.c (commands) and nbd_tls.c (TLS under
 * the connection's I/O).  Not a public interface.
 *
 * A connection reads through a staging buffer and parses in place; it
 * writes through a queue of iovec-described messages flushed once per
 * loop iteration.  A connection that failed or ended is "dead": its
 * socket is closed at once, but the struct lives until the volume
 * requests it has in flight complete.
 */
#ifndef CSNAP_EXPORT_NBD_CONN_H
#define CSNAP_EXPORT_NBD_CONN_H

#include "src/export/loop.h"
#include "src/export/nbd.h"
#include "src/export/nbd_server.h"
#include "src/export/volume.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NBD_STAGE_SIZE		(256 * 1024)
#define NBD_MAX_INFLIGHT	128		/* requests per connection */
#define NBD_MAX_INFLIGHT_BYTES	(64u * 1024 * 1024)
#define NBD_MAX_OPTIONS		256		/* before transmission */
#define NBD_MAX_OPT_LEN		(NBD_MAX_STRING + 1024)
#define NBD_HANDSHAKE_MS	10000		/* greeting to NBD_OPT_GO */
/* Metadata context negotiation (nbd_meta.c): queries in one option, and
 * csnap:changed contexts listed one by one before a LIST answers with the
 * "csnap:changed:" wildcard instead (one option's replies stay small).  */
#define NBD_MAX_META_QUERIES	64u
#define NBD_MAX_META_LIST	64
#define NBD_META_ID_ALLOC	1		/* base:allocation */
#define NBD_META_ID_CHANGED	2		/* csnap:changed:<snapshot> */
#define NBD_META_CHANGED_PREFIX	"csnap:changed:"
/* Changed ranges asked from the master per NBD_CMD_BLOCK_STATUS: bounds
 * the reply (two extents per range, plus one) and the master's work.  */
#define NBD_BS_MAX_RANGES	512
#define NBD_BS_MAX_EXTENTS	(2 * NBD_BS_MAX_RANGES + 2)
/* Output queued during the handshake before the connection stops reading
 * options: a client that asks and never reads holds at most this (plus
 * one option's replies).  In transmission the in-flight limits above
 * bound the queue, since a request lives until its reply is sent.  */
#define NBD_MAX_HS_OUT		(64u * 1024)
/* Send buffer of a unix socket connection (SO_SNDBUF; the kernel caps it
 * at net.core.wmem_max).  The default (~208 KiB) makes a 1 MiB read reply
 * go out in five sendmsg()s, each after the client drained the socket and
 * the loop woke again for EPOLLOUT.  TCP keeps the kernel's autotuning.  */
#define NBD_UNIX_SNDBUF		(4 * 1024 * 1024)

struct nbd_conn;
struct log_limit;

/* One message waiting to be sent.  */
struct nbd_out {
	struct nbd_out *next;
	struct iovec iov[2];
	unsigned niov;
	/* Called once the message is sent or the connection died.  */
	void (*sent)(struct nbd_conn *c, struct nbd_out *o);
	/* On the connection's queue: a message is queued at most once at a
	 * time (queued twice, it would cut the queue after it and every
	 * later reply would be lost: a client waiting forever).  */
	bool queued;
};

enum nbd_conn_state {
	NBD_ST_CLIENT_FLAGS,	/* waiting for the client's 32-bit flags */
	NBD_ST_OPT_HEADER,	/* waiting for IHAVEOPT, option, length */
	NBD_ST_OPT_DATA,	/* option payload */
	NBD_ST_TX_HEADER,	/* transmission: request header */
	NBD_ST_TX_PAYLOAD,	/* write payload */
	NBD_ST_DRAIN,		/* NBD_CMD_DISC / OPT_ABORT: finish, then close */
	NBD_ST_TLS_HS,		/* after NBD_OPT_STARTTLS: the TLS handshake */
};

struct nbd_tls_creds;
struct nbd_tls_conn;

struct nbd_req {
	struct vol_req vr;
	struct nbd_conn *conn;
	uint64_t cookie;
	uint16_t cmd;
	uint16_t flags;
	uint32_t wire_err;
	uint64_t len;		/* the request's length (vr.len: up to 32 bits) */
	/* TRIM/WRITE_ZEROES of 4 GiB or more (extended headers): the volume
	 * gets it in pieces of NBD_TX_PIECE, one after the other; vr.off and
	 * vr.len describe the current piece (nbd_transmit.c).  */
	uint64_t piece_done;	/* bytes of the pieces before it */
	bool in_submit;		/* inside volume_submit() of a piece */
	bool again;		/* a piece done at once: submit the next */
	const char *err_msg;	/* structured error chunk text (static), or NULL */
	size_t buf_size;	/* capacity of vr.buf (buffer cache class) */
	size_t bs_len;		/* BLOCK_STATUS: bytes of chunks built in vr.buf */
	struct vol_changed_req cq;	/* BLOCK_STATUS: the csnap:changed query */
	/* simple reply, or a structured chunk header and its fixed payload
	 * (OFFSET_DATA's offset, or ERROR with its message) */
	uint8_t reply[NBD_EXT_CHUNK_HDR_SIZE + 6 + 128];
	struct nbd_out out;
	struct nbd_req *next_free;
};

struct nbd_conn {
	struct nbd_server *srv;
	struct evloop *lp;
	int pool_index;			/* loop_pool_pick()'s, -1: none */
	struct evloop_watch watch;
	struct evloop_deferred kick;	/* flush output, resume input */
	struct evloop_timer hs_timer;	/* handshake must finish in time */
	int fd;
	char peer[80];
	enum nbd_conn_state state;
	bool dead;
	bool fixed_newstyle;
	bool no_zeroes;
	bool structured;		/* NBD_OPT_STRUCTURED_REPLY acknowledged */
	bool extended;			/* NBD_OPT_EXTENDED_HEADERS too (implies
					 * structured) */
	bool paused;			/* input stopped by flow control */

	/* staged input: [in_pos, in_end) not yet parsed */
	uint8_t *in;
	size_t in_pos, in_end;

	/* the message being read */
	uint8_t hdr[NBD_EXT_REQUEST_SIZE];	/* the longest header */
	size_t hdr_have, hdr_want;
	uint32_t opt, opt_len;
	uint8_t *opt_data;
	size_t opt_have;
	unsigned nopts;
	struct nbd_req *cur;		/* write whose payload is arriving */
	size_t pay_have;

	/* output */
	struct nbd_out *out_head, **out_tail;
	size_t out_sent;		/* bytes of out_head already sent */
	size_t out_queued;		/* bytes of the queued messages */

	/* Metadata contexts of the last NBD_OPT_SET_META_CONTEXT, for the
	 * export named meta_export; dropped entering transmission with any
	 * other export.  */
	bool meta_alloc;
	char meta_export[VOL_NAME_MAX];
	char meta_changed[VOL_NAME_MAX];	/* its snapshot; "": none */

	struct volume *vol;		/* after NBD_OPT_GO / EXPORT_NAME */
	unsigned inflight;
	size_t inflight_bytes;
	struct nbd_req *free_reqs;

	/* TLS (nbd_tls.c).  tls_creds: the listener's (NULL on unix sockets
	 * and with TLS off); tls: the session once STARTTLS was accepted;
	 * every read and write goes through it once tls_up.  */
	enum nbd_tls_mode tls_mode;
	const struct nbd_tls_creds *tls_creds;
	struct nbd_tls_conn *tls;
	bool tls_up;
	struct evloop_timer tls_more;	/* input buffered inside GnuTLS */

	struct nbd_conn *next, *prev;
};

/* nbd_conn.c */
void nbd_conn_queue(struct nbd_conn *c, struct nbd_out *o);
/* Queue a copy of LEN bytes.  Returns 0 or -ENOMEM (then kills C). */
int nbd_conn_send_copy(struct nbd_conn *c, const void *data, size_t len);
void nbd_conn_kill(struct nbd_conn *c, const char *why);
/* Nothing more to read; close once output and requests are done.  */
void nbd_conn_drain(struct nbd_conn *c);
/* Re-evaluate flow control and flush output at the end of the batch. */
void nbd_conn_kick(struct nbd_conn *c);
/* The handshake is over: the connection moves to a loop of the pool
 * (the least used, loop_pool_pick; nothing without loop threads).  */
void nbd_conn_enter_tx(struct nbd_conn *c);

/* nbd_server.c */
struct volume *nbd_server_lookup(struct nbd_server *srv, const char *name);
/* What peers can make us log at will goes through this limit.  */
struct log_limit *nbd_server_peer_log(struct nbd_server *srv);
/* The I-th exported volume, NULL past the last.  */
struct volume *nbd_server_vol_at(struct nbd_server *srv, unsigned i);
void nbd_server_each(struct nbd_server *srv,
		     void (*fn)(struct nbd_conn *c, struct volume *vol), struct nbd_conn *c);
void *nbd_buf_get(struct nbd_server *srv, size_t len, size_t *cap);
void nbd_buf_put(struct nbd_server *srv, void *buf, size_t cap);

/* nbd_handshake.c */
void nbd_hs_greet(struct nbd_conn *c);
/* Called with a complete client-flags word, option header or option
 * payload (per c->state).  */
void nbd_hs_client_flags(struct nbd_conn *c);
void nbd_hs_option_header(struct nbd_conn *c);
void nbd_hs_option_data(struct nbd_conn *c);
/* One option reply / a refusal with its one-line reason (logged).  */
void nbd_hs_reply(struct nbd_conn *c, uint32_t type, const void *data, size_t len);
void nbd_hs_refuse(struct nbd_conn *c, uint32_t type, const char *msg);

/* nbd_meta.c */
/* NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT (c->opt).  */
void nbd_meta_option(struct nbd_conn *c);
/* Entering transmission with VOL: keep the contexts only if they were
 * set for it.  */
void nbd_meta_enter(struct nbd_conn *c, const struct volume *vol);
/* NBD_CMD_BLOCK_STATUS, validated: build the chunks in R->vr.buf (asking
 * the volume for csnap:changed), then nbd_tx_reply().  */
void nbd_meta_block_status(struct nbd_conn *c, struct nbd_req *r);

/* nbd_tls.c */
int nbd_tls_creds_load(const struct nbd_tls_opts *o, struct nbd_tls_creds **out);
void nbd_tls_creds_free(struct nbd_tls_creds *cr);
/* NBD_OPT_STARTTLS accepted: sets up the session and takes over the input
 * staged after the option; the handshake starts once the ACK is out.
 * Returns 0 or -errno (then nothing changed).  */
int nbd_tls_start(struct nbd_conn *c);
/* Drives the handshake (state NBD_ST_TLS_HS).  True: done, the options
 * go on (NBD_ST_OPT_HEADER); false: waiting, or C was killed.  */
bool nbd_tls_handshake(struct nbd_conn *c);
/* Like recv()/sendmsg() on the session: >0, 0 at end of stream, -1 with
 * errno (EAGAIN, EINTR; ECONNRESET once C was killed for a TLS error).  */
ssize_t nbd_tls_recv(struct nbd_conn *c, void *buf, size_t len);
ssize_t nbd_tls_sendv(struct nbd_conn *c, const struct iovec *iov, size_t niov);
/* Input GnuTLS holds that epoll cannot report.  */
bool nbd_tls_buffered(const struct nbd_conn *c);
/* Events the session waits for beyond the connection's own.  */
uint32_t nbd_tls_events(const struct nbd_conn *c);
/* EPOLLOUT came while a read waited to write (a TLS 1.3 key update).  */
bool nbd_tls_read_wants_write(const struct nbd_conn *c);
/* Best-effort close_notify before a clean close.  */
void nbd_tls_bye(struct nbd_conn *c);
void nbd_tls_free(struct nbd_conn *c);

/* nbd_transmit.c */
void nbd_tx_header(struct nbd_conn *c);
void nbd_tx_payload_done(struct nbd_conn *c);
void nbd_tx_free_reqs(struct nbd_conn *c);
/* Give back a request that will get no reply (its connection died). */
void nbd_tx_release(struct nbd_conn *c, struct nbd_req *r);
/* Send R's reply: simple, or structured chunks when negotiated (READ:
 * one OFFSET_DATA chunk; BLOCK_STATUS: the r->bs_len bytes of chunks in
 * vr.buf; an error: one ERROR chunk with r->err_msg).  */
void nbd_tx_reply(struct nbd_conn *c, struct nbd_req *r);
/* Writes a reply chunk header for R at DST (structured or extended, per
 * C) and returns its size.  */
size_t nbd_tx_chunk_header(const struct nbd_conn *c, const struct nbd_req *r, uint8_t *dst,
			   uint16_t flags, uint16_t type, uint64_t len);

/* Size of a request header in transmission.  */
static inline size_t nbd_req_hdr_size(const struct nbd_conn *c)
{
	return c->extended ? NBD_EXT_REQUEST_SIZE : NBD_REQUEST_SIZE;
}

#endif
