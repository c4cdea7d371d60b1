/*
 * src/export/nbd_conn.h - internals shared by the NBD server's files:
 * nbd_server.c (sockets, connections, buffered I/O), nbd_handshake.c
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

/* One message waiting to be sent.  */
struct nbd_out {
	struct nbd_out *next;
	struct iovec iov[2];
	unsigned niov;
	/* Called once the message is sent or the connection died.  */
	void (*sent)(struct nbd_conn *c, struct nbd_out *o);
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
	size_t buf_size;	/* capacity of vr.buf (buffer cache class) */
	uint8_t reply[NBD_SIMPLE_REPLY_SIZE];
	struct nbd_out out;
	struct nbd_req *next_free;
};

struct nbd_conn {
	struct nbd_server *srv;
	struct evloop *lp;
	struct evloop_watch watch;
	struct evloop_deferred kick;	/* flush output, resume input */
	struct evloop_timer hs_timer;	/* handshake must finish in time */
	int fd;
	char peer[80];
	enum nbd_conn_state state;
	bool dead;
	bool fixed_newstyle;
	bool no_zeroes;
	bool paused;			/* input stopped by flow control */

	/* staged input: [in_pos, in_end) not yet parsed */
	uint8_t *in;
	size_t in_pos, in_end;

	/* the message being read */
	uint8_t hdr[NBD_REQUEST_SIZE];
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

/* nbd_server.c */
void nbd_conn_queue(struct nbd_conn *c, struct nbd_out *o);
/* Queue a copy of LEN bytes.  Returns 0 or -ENOMEM (then kills C). */
int nbd_conn_send_copy(struct nbd_conn *c, const void *data, size_t len);
void nbd_conn_kill(struct nbd_conn *c, const char *why);
/* Nothing more to read; close once output and requests are done.  */
void nbd_conn_drain(struct nbd_conn *c);
/* Re-evaluate flow control and flush output at the end of the batch. */
void nbd_conn_kick(struct nbd_conn *c);
struct volume *nbd_server_lookup(struct nbd_server *srv, const char *name);
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

#endif
