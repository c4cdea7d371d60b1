/*
 * src/export/nbd_server.c - listeners, connections and their socket I/O,
 * the table of exports, and the payload buffer cache.  The protocol
 * itself is in nbd_handshake.c and nbd_transmit.c.
 *
 * Input: each readable event drains the socket into a staging buffer and
 * parses it in place; large write payloads are received straight into
 * their request buffer.  Flow control: a connection with too many
 * requests (or bytes) in flight, or during the handshake too much output
 * queued, stops reading until replies go out.
 * Output: replies are queued and sent with one sendmsg() per batch of the
 * event loop.
 * TLS (nbd_tls.c) replaces recv()/sendmsg() on a TCP connection after
 * NBD_OPT_STARTTLS; a plain connection never touches it (c->tls NULL).
 * Input GnuTLS holds is invisible to epoll: the reader goes on while
 * nbd_tls_buffered(), and a 0 ms timer (tls_more) comes back for it when
 * the rounds of one wakeup run out.
 *
 * Loop threads (nbd_server_set_threads, loop.h): a connection is accepted
 * and shakes hands on the main loop, and moves to a loop of the pool when
 * it enters transmission (nbd_conn_enter_tx); c->lp is always the loop
 * its watch is on.  Everything here runs under the export lock, so other
 * loops' callbacks may queue replies and kick a connection of any loop
 * (the kick wakes that loop).
 *
 * Peers cannot exhaust descriptors: connections are capped below the
 * descriptor limit, the oldest one still in the handshake is shed when too
 * many wait, accept() failing for want of a descriptor sheds a connection
 * with a reserved one or backs off (never spins), and what peers can make
 * us log is rate-limited.
 */
#include "src/export/nbd_server.h"

#include "src/export/nbd_conn.h"
#include "ioengine/ioengine.h"
#include "utils/assert.h"
#include "utils/err.h"
#include "utils/fdlimit.h"
#include "utils/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define NBD_MAX_LISTENERS	8
#define NBD_MAX_CONNS		1024	/* if descriptors allow (fd_conn_cap) */
/* Connections still in the handshake: at this many a new one sheds the
 * oldest, so idle peers cannot keep real clients out.  */
#define NBD_MAX_HANDSHAKING	256
#define NBD_ACCEPT_BACKOFF_MS	250	/* after a descriptor shortage */
#define BUF_CLASSES		14		/* 4 KiB .. 32 MiB */
#define BUF_MIN_SHIFT		12

struct listener {
	struct nbd_server *srv;
	struct evloop_watch watch;
	int fd;
	bool is_unix;
	char path[108];
	uint16_t port;
	enum nbd_tls_mode tls_mode;		/* TCP: the server's; unix: off */
	const struct nbd_tls_creds *tls_creds;
};

struct cached_buf {
	struct cached_buf *next;
};

struct nbd_server {
	struct evloop *lp;
	struct listener listeners[NBD_MAX_LISTENERS];
	unsigned nlisteners;
	struct volume **vols;
	unsigned nvols, capvols;
	struct nbd_conn *conns;		/* newest first */
	unsigned nconns;
	unsigned max_conns;		/* below the descriptor limit */
	struct fd_reserve fdres;	/* accept on EMFILE (utils/fdlimit.h) */
	struct evloop_timer accept_timer;	/* listeners unwatched until then */
	struct log_limit peer_log;	/* what peers can make us log at will */
	unsigned long long serial;	/* connections accepted so far */
	struct cached_buf *bufs[BUF_CLASSES];
	unsigned nbufs[BUF_CLASSES];
	enum nbd_tls_mode tls_mode;	/* for TCP listeners added from now */
	struct nbd_tls_creds *tls_creds;
	struct loop_pool *pool;		/* more than one loop thread, or NULL */
};

static void conn_readable(struct nbd_conn *c);
static void conn_flush(struct nbd_conn *c);
static bool over_limits(const struct nbd_conn *c);

/* ---- buffer cache ----------------------------------------------------- */

static unsigned buf_class(size_t len)
{
	unsigned k = 0;

	while (((size_t)1 << (k + BUF_MIN_SHIFT)) < len)
		k++;
	return k;
}

static unsigned buf_keep(unsigned k)
{
	return k <= 8 ? 64 : 4;		/* up to 1 MiB: many; above: few */
}

void *nbd_buf_get(struct nbd_server *srv, size_t len, size_t *cap)
{
	unsigned k = buf_class(len ? len : 1);
	struct cached_buf *b;

	CSNAP_ASSERT(loop_locked());	/* one cache for every loop thread */
	*cap = (size_t)1 << (k + BUF_MIN_SHIFT);
	if (k < BUF_CLASSES && (b = srv->bufs[k])) {
		srv->bufs[k] = b->next;
		srv->nbufs[k]--;
		return b;
	}
	return io_buf_alloc(*cap);
}

void nbd_buf_put(struct nbd_server *srv, void *buf, size_t cap)
{
	unsigned k = buf_class(cap);

	if (!buf)
		return;
	if (k < BUF_CLASSES && srv->nbufs[k] < buf_keep(k)) {
		struct cached_buf *b = buf;

		b->next = srv->bufs[k];
		srv->bufs[k] = b;
		srv->nbufs[k]++;
		return;
	}
	io_buf_free(buf);
}

/* ---- exports ---------------------------------------------------------- */

struct volume *nbd_server_lookup(struct nbd_server *srv, const char *name)
{
	if (!name[0])
		return srv->nvols ? srv->vols[0] : NULL;
	for (unsigned i = 0; i < srv->nvols; i++)
		if (!strcmp(srv->vols[i]->name, name))
			return srv->vols[i];
	return NULL;
}

struct volume *nbd_server_find(struct nbd_server *srv, const char *name)
{
	return nbd_server_lookup(srv, name);
}

struct log_limit *nbd_server_peer_log(struct nbd_server *srv)
{
	return &srv->peer_log;
}

struct volume *nbd_server_vol_at(struct nbd_server *srv, unsigned i)
{
	return i < srv->nvols ? srv->vols[i] : NULL;
}

void nbd_server_each(struct nbd_server *srv,
		     void (*fn)(struct nbd_conn *c, struct volume *vol), struct nbd_conn *c)
{
	for (unsigned i = 0; i < srv->nvols && !c->dead; i++)
		fn(c, srv->vols[i]);
}

int nbd_server_add(struct nbd_server *srv, struct volume *vol)
{
	if (!vol->name[0])
		return err_set(EINVAL, "export name must not be empty");
	if (nbd_server_lookup(srv, vol->name))
		return err_set(EEXIST, "export %s already exists", vol->name);
	if (srv->nvols == srv->capvols) {
		unsigned cap = srv->capvols ? srv->capvols * 2 : 8;
		struct volume **v = realloc(srv->vols, cap * sizeof *v);

		if (!v)
			return err_set(ENOMEM, "out of memory");
		srv->vols = v;
		srv->capvols = cap;
	}
	srv->vols[srv->nvols++] = volume_get(vol);
	return 0;
}

int nbd_server_remove(struct nbd_server *srv, const char *name)
{
	for (unsigned i = 0; i < srv->nvols; i++) {
		if (!strcmp(srv->vols[i]->name, name)) {
			struct volume *vol = srv->vols[i];

			memmove(&srv->vols[i], &srv->vols[i + 1],
				(srv->nvols - i - 1) * sizeof *srv->vols);
			srv->nvols--;
			volume_put(vol);
			return 0;
		}
	}
	return err_set(ENOENT, "no export named %s", name);
}

unsigned nbd_server_connections(const struct nbd_server *srv)
{
	return srv->nconns;
}

void nbd_server_log_state(struct nbd_server *srv)
{
	log_info("nbd: state on request: %u connections, %u exports", srv->nconns, srv->nvols);
	for (const struct nbd_conn *c = srv->conns; c; c = c->next) {
		unsigned nout = 0;

		for (const struct nbd_out *o = c->out_head; o; o = o->next)
			nout++;
		/* A request lives until its reply is sent: those without a
		 * queued reply are in the volume (or their payload is
		 * arriving).  */
		log_info("nbd %s: %s, state %d%s%s%s: %u requests in flight (%zu bytes), "
			 "%u replies queued (%zu bytes, %zu of the first sent), %s",
			 c->peer, c->vol ? c->vol->name : "(handshake)", (int)c->state,
			 c->tls_up ? ", TLS" : c->tls ? ", TLS handshake" : "",
			 c->paused ? ", input paused" : "", c->dead ? ", closed" : "", c->inflight,
			 c->inflight_bytes, nout, c->out_queued, c->out_sent,
			 c->cur ? "a write payload arriving" : "no payload arriving");
	}
	for (unsigned i = 0; i < srv->nvols; i++)
		volume_log_state(srv->vols[i]);
}

/* ---- connections ------------------------------------------------------ */

static void conn_free(struct nbd_conn *c)
{
	struct nbd_server *srv = c->srv;

	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	evloop_timer_cancel(c->lp, &c->hs_timer);
	evloop_timer_cancel(c->lp, &c->tls_more);
	nbd_tls_free(c);
	nbd_tx_free_reqs(c);
	if (c->vol)
		volume_detach(c->vol);
	volume_put(c->vol);
	free(c->in);
	free(c);
}

static void conn_update_events(struct nbd_conn *c)
{
	uint32_t ev = 0;

	if (c->dead)
		return;
	if (c->state == NBD_ST_TLS_HS) {
		/* Only what the handshake waits for: a readable socket the
		 * session cannot read yet would spin the loop.  */
		ev = c->out_head ? EPOLLOUT : nbd_tls_events(c);
	} else {
		if (!c->paused && c->state != NBD_ST_DRAIN)
			ev |= EPOLLIN;
		if (c->out_head)
			ev |= EPOLLOUT;
		if (nbd_tls_read_wants_write(c))
			ev = (ev & ~(uint32_t)EPOLLIN) | EPOLLOUT;
	}
	if (evloop_watch_mod(c->lp, &c->watch, ev) < 0)
		nbd_conn_kill(c, err_get());
}

static void conn_kick_fn(void *arg)
{
	struct nbd_conn *c = arg;

	if (c->dead) {
		if (c->inflight == 0)
			conn_free(c);
		return;
	}
	conn_flush(c);
	if (c->dead)
		return;
	if (c->state == NBD_ST_TLS_HS && !c->out_head) {
		/* The ACK of STARTTLS is out: the handshake may start.  */
		if (nbd_tls_handshake(c))
			conn_readable(c);
		if (c->dead)
			return;
	}
	if (c->paused && !over_limits(c)) {
		c->paused = false;
		conn_readable(c);
		if (c->dead)
			return;
	}
	if (c->state == NBD_ST_DRAIN && !c->out_head && c->inflight == 0) {
		nbd_conn_kill(c, NULL);
		return;
	}
	conn_update_events(c);
}

void nbd_conn_kick(struct nbd_conn *c)
{
	evloop_defer(c->lp, &c->kick);
}

void nbd_conn_kill(struct nbd_conn *c, const char *why)
{
	if (c->dead)
		return;
	/* Before NBD_OPT_GO anyone can connect: rate-limited.  */
	if (why && !c->vol)
		log_limited(&c->srv->peer_log, LOG_LEVEL_WARN, "nbd %s: closing connection: %s",
			    c->peer, why);
	else if (why)
		log_warn("nbd %s: closing connection: %s", c->peer, why);
	else
		log_debug("nbd %s: connection closed", c->peer);
	if (!why)
		nbd_tls_bye(c);
	c->dead = true;
	evloop_timer_cancel(c->lp, &c->hs_timer);
	evloop_timer_cancel(c->lp, &c->tls_more);
	evloop_watch_del(c->lp, &c->watch);
	close(c->fd);
	c->fd = -1;
	while (c->out_head) {
		struct nbd_out *o = c->out_head;

		c->out_head = o->next;
		o->queued = false;
		o->sent(c, o);
	}
	c->out_tail = &c->out_head;
	c->out_queued = 0;
	free(c->opt_data);
	c->opt_data = NULL;
	if (c->cur) {
		struct nbd_req *r = c->cur;

		c->cur = NULL;
		nbd_tx_release(c, r);
	}
	nbd_conn_kick(c);	/* frees C once nothing is in flight */
}

void nbd_conn_drain(struct nbd_conn *c)
{
	/* A write whose payload was still arriving never will: it gets no
	 * reply, and it must not count as in flight, or the connection (its
	 * socket and up to a 32 MiB buffer) would wait for it forever.  */
	if (c->cur) {
		struct nbd_req *r = c->cur;

		c->cur = NULL;
		nbd_tx_release(c, r);
	}
	c->state = NBD_ST_DRAIN;
	nbd_conn_kick(c);
}

static size_t out_len(const struct nbd_out *o)
{
	size_t len = 0;

	for (unsigned i = 0; i < o->niov; i++)
		len += o->iov[i].iov_len;
	return len;
}

void nbd_conn_queue(struct nbd_conn *c, struct nbd_out *o)
{
	CSNAP_ASSERT(loop_locked());	/* shared by the loop threads */
	CSNAP_ASSERT(!o->queued);	/* a request answered twice */
	if (c->dead) {
		o->sent(c, o);
		return;
	}
	c->out_queued += out_len(o);
	o->queued = true;
	o->next = NULL;
	*c->out_tail = o;
	c->out_tail = &o->next;
	nbd_conn_kick(c);
}

static void copy_sent(struct nbd_conn *c, struct nbd_out *o)
{
	(void)c;
	free(o);
}

int nbd_conn_send_copy(struct nbd_conn *c, const void *data, size_t len)
{
	struct nbd_out *o = malloc(sizeof *o + len);

	if (!o) {
		nbd_conn_kill(c, "out of memory");
		return -ENOMEM;
	}
	memcpy(o + 1, data, len);
	o->iov[0].iov_base = o + 1;
	o->iov[0].iov_len = len;
	o->niov = 1;
	o->sent = copy_sent;
	o->queued = false;
	nbd_conn_queue(c, o);
	return 0;
}

static void conn_flush(struct nbd_conn *c)
{
	while (c->out_head && !c->dead) {
		struct iovec iov[64];
		struct msghdr msg = { .msg_iov = iov };
		size_t skip = c->out_sent;
		ssize_t n;

		for (struct nbd_out *o = c->out_head; o && msg.msg_iovlen < 63; o = o->next) {
			for (unsigned i = 0; i < o->niov; i++) {
				if (skip >= o->iov[i].iov_len) {
					skip -= o->iov[i].iov_len;
					continue;
				}
				iov[msg.msg_iovlen].iov_base = (char *)o->iov[i].iov_base + skip;
				iov[msg.msg_iovlen].iov_len = o->iov[i].iov_len - skip;
				msg.msg_iovlen++;
				skip = 0;
			}
		}
		if (c->tls_up)
			n = nbd_tls_sendv(c, iov, msg.msg_iovlen);
		else
			n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE || errno == ECONNRESET)
				nbd_conn_kill(c, NULL);	/* the client went away */
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				nbd_conn_kill(c, strerror(errno));
			return;
		}
		c->out_sent += (size_t)n;
		while (c->out_head) {
			struct nbd_out *o = c->out_head;
			size_t len = out_len(o);

			if (c->out_sent < len)
				break;
			c->out_sent -= len;
			CSNAP_ASSERT(c->out_queued >= len);	/* counted when queued */
			c->out_queued -= len;
			c->out_head = o->next;
			if (!c->out_head)
				c->out_tail = &c->out_head;
			o->queued = false;
			o->sent(c, o);
		}
	}
}

/* Moves up to WANT - *HAVE staged bytes into DST.  */
static size_t take(struct nbd_conn *c, void *dst, size_t want, size_t *have)
{
	size_t n = c->in_end - c->in_pos;

	if (n > want - *have)
		n = want - *have;
	memcpy((uint8_t *)dst + *have, c->in + c->in_pos, n);
	c->in_pos += n;
	*have += n;
	return n;
}

/* Should the connection stop reading until output drains?  Every state
 * has a bound, so a client that sends and never reads holds a bounded
 * amount of memory.  */
static bool over_limits(const struct nbd_conn *c)
{
	if (c->state == NBD_ST_TX_HEADER || c->state == NBD_ST_TX_PAYLOAD)
		return c->inflight >= NBD_MAX_INFLIGHT ||
		       c->inflight_bytes >= NBD_MAX_INFLIGHT_BYTES;
	return c->out_queued >= NBD_MAX_HS_OUT;
}

/* Parses staged input until it runs out or the connection must wait.  */
static void conn_parse(struct nbd_conn *c)
{
	while (!c->dead && !c->paused) {
		switch (c->state) {
		case NBD_ST_CLIENT_FLAGS:
		case NBD_ST_OPT_HEADER:
		case NBD_ST_TX_HEADER:
			if (c->hdr_have == 0 && over_limits(c)) {
				c->paused = true;
				conn_update_events(c);
				return;
			}
			if (c->in_pos == c->in_end)
				return;
			take(c, c->hdr, c->hdr_want, &c->hdr_have);
			if (c->hdr_have < c->hdr_want)
				return;
			c->hdr_have = 0;
			if (c->state == NBD_ST_CLIENT_FLAGS)
				nbd_hs_client_flags(c);
			else if (c->state == NBD_ST_OPT_HEADER)
				nbd_hs_option_header(c);
			else
				nbd_tx_header(c);
			break;
		case NBD_ST_OPT_DATA:
			if (c->in_pos == c->in_end)
				return;
			if (!c->opt_data) {	/* oversized: drop it */
				size_t n = c->in_end - c->in_pos;

				if (n > c->opt_len - c->opt_have)
					n = c->opt_len - c->opt_have;
				c->in_pos += n;
				c->opt_have += n;
			} else {
				take(c, c->opt_data, c->opt_len, &c->opt_have);
			}
			if (c->opt_have < c->opt_len)
				return;
			nbd_hs_option_data(c);
			break;
		case NBD_ST_TX_PAYLOAD:
			if (c->in_pos == c->in_end)
				return;
			take(c, c->cur->vr.buf, c->cur->vr.len, &c->pay_have);
			if (c->pay_have < c->cur->vr.len)
				return;
			nbd_tx_payload_done(c);
			break;
		case NBD_ST_DRAIN:
			c->in_pos = c->in_end;
			return;
		case NBD_ST_TLS_HS:
			/* nbd_tls_start() took what was staged */
			return;
		}
	}
}

static ssize_t conn_recv(struct nbd_conn *c, void *buf, size_t len)
{
	if (c->tls_up)
		return nbd_tls_recv(c, buf, len);
	return recv(c->fd, buf, len, MSG_DONTWAIT);
}

static void conn_readable(struct nbd_conn *c)
{
	if (c->state == NBD_ST_TLS_HS) {
		if (c->out_head || !nbd_tls_handshake(c))
			return;
	}
	for (int rounds = 0; rounds < 32; rounds++) {
		ssize_t n;

		conn_parse(c);
		if (c->dead || c->paused || c->state == NBD_ST_DRAIN || c->state == NBD_ST_TLS_HS)
			return;
		c->in_pos = c->in_end = 0;
		if (c->state == NBD_ST_TX_PAYLOAD &&
		    c->cur->vr.len - c->pay_have >= NBD_STAGE_SIZE) {
			n = conn_recv(c, (uint8_t *)c->cur->vr.buf + c->pay_have,
				      c->cur->vr.len - c->pay_have);
			if (n > 0) {
				c->pay_have += (size_t)n;
				if (c->pay_have == c->cur->vr.len)
					nbd_tx_payload_done(c);
				continue;
			}
		} else {
			n = conn_recv(c, c->in, NBD_STAGE_SIZE);
			if (n > 0) {
				c->in_end = (size_t)n;
				if (n < NBD_STAGE_SIZE && !(c->tls && nbd_tls_buffered(c))) {
					/* Probably drained: parse, and let epoll say
					 * when there is more rather than asking.  */
					conn_parse(c);
					return;
				}
				continue;
			}
		}
		if (n == 0) {
			/* The client closed its side: finish what it asked.  */
			if (c->hdr_have || c->state == NBD_ST_OPT_DATA ||
			    c->state == NBD_ST_TX_PAYLOAD)
				log_info("nbd %s: client closed the connection mid-message", c->peer);
			else
				log_debug("nbd %s: client closed the connection", c->peer);
			nbd_conn_drain(c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			nbd_conn_kill(c, NULL);
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			nbd_conn_kill(c, strerror(errno));
		return;
	}
	/* Out of rounds: what the last one staged is parsed now, since the
	 * socket may be empty and no wakeup would come for it (requests that
	 * ended exactly there would wait forever; export_burst.sh).  More in
	 * the socket wakes us again; more inside GnuTLS would not.  */
	conn_parse(c);
	if (c->tls && !c->dead && nbd_tls_buffered(c))
		evloop_timer_arm(c->lp, &c->tls_more, 0);
}

static void tls_more_fn(void *arg)
{
	struct nbd_conn *c = arg;

	if (c->dead || c->paused)
		return;		/* unpausing reads again */
	conn_readable(c);
	if (!c->dead)
		nbd_conn_kick(c);
}

static void conn_event(void *arg, uint32_t events)
{
	struct nbd_conn *c = arg;

	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
		nbd_conn_kill(c, NULL);
		return;
	}
	if (c->state == NBD_ST_TLS_HS && !c->out_head) {
		conn_readable(c);	/* the handshake, then any options */
		if (!c->dead)
			nbd_conn_kick(c);
		return;
	}
	if (events & EPOLLOUT)
		conn_flush(c);
	if (!c->dead && (events & EPOLLIN ||
			 (events & EPOLLOUT && nbd_tls_read_wants_write(c))))
		conn_readable(c);
	if (!c->dead)
		nbd_conn_kick(c);
}

static void hs_timeout(void *arg)
{
	struct nbd_conn *c = arg;

	if (!c->dead && !c->vol)
		nbd_conn_kill(c, "handshake not finished in time");
}

static void accept_event(void *arg, uint32_t events);

/* Back off after a descriptor shortage: watch the listeners again.  */
static void accept_resume(void *arg)
{
	struct nbd_server *srv = arg;

	for (unsigned i = 0; i < srv->nlisteners; i++)
		if (evloop_watch_mod(srv->lp, &srv->listeners[i].watch, EPOLLIN) < 0)
			log_limited(&srv->peer_log, LOG_LEVEL_WARN, "nbd: %s", err_get());
	if (srv->fdres.spare < 0)
		fd_reserve_open(&srv->fdres);
}

/* Accept on L failed with ERR: shed a connection with the reserve, or
 * stop watching the listeners for a while.  Never returns to a readable
 * listener without progress: that spun the loop at 100% CPU.  True:
 * accept again.  */
static bool accept_failed(struct nbd_server *srv, struct listener *l, int err)
{
	if (fd_reserve_shed(&srv->fdres, l->fd, err)) {
		log_limited(&srv->peer_log, LOG_LEVEL_WARN,
			    "nbd: accept: %s: closed a new connection (%u open, limit %u)",
			    strerror(err), srv->nconns, srv->max_conns);
		return true;
	}
	log_limited(&srv->peer_log, LOG_LEVEL_WARN, "nbd: accept: %s: not accepting for %d ms",
		    strerror(err), NBD_ACCEPT_BACKOFF_MS);
	for (unsigned i = 0; i < srv->nlisteners; i++)
		evloop_watch_mod(srv->lp, &srv->listeners[i].watch, 0);
	evloop_timer_arm(srv->lp, &srv->accept_timer, NBD_ACCEPT_BACKOFF_MS);
	return false;
}

/* Room for one more connection: sheds the oldest connection still in the
 * handshake when over a limit.  False: refuse the new one.  */
static bool make_room(struct nbd_server *srv)
{
	unsigned max_hs = srv->max_conns / 2 < NBD_MAX_HANDSHAKING ? srv->max_conns / 2
								   : NBD_MAX_HANDSHAKING;
	struct nbd_conn *old = NULL;
	unsigned hs = 0, live = 0;

	/* Dead connections waiting for their I/O hold no descriptor.  */
	for (struct nbd_conn *c = srv->conns; c; c = c->next) {
		if (c->dead)
			continue;
		live++;
		if (!c->vol) {
			hs++;
			old = c;	/* newest first: the last is the oldest */
		}
	}
	if (live < srv->max_conns && hs < (max_hs ? max_hs : 1))
		return true;
	if (!old) {
		log_limited(&srv->peer_log, LOG_LEVEL_WARN,
			    "nbd: refusing connection: %u connections open (limit %u)", srv->nconns,
			    srv->max_conns);
		return false;
	}
	/* Its descriptor is closed now; the struct goes at the end of the
	 * loop turn.  */
	nbd_conn_kill(old, "handshake not finished and too many connections wait");
	return true;
}

static void accept_event(void *arg, uint32_t events)
{
	struct listener *l = arg;
	struct nbd_server *srv = l->srv;

	(void)events;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		struct nbd_conn *c;
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (accept_failed(srv, l, errno))
				continue;
			return;
		}
		if (!make_room(srv)) {
			close(fd);
			continue;
		}
		c = calloc(1, sizeof *c);
		if (c)
			c->in = malloc(NBD_STAGE_SIZE);
		if (!c || !c->in) {
			log_limited(&srv->peer_log, LOG_LEVEL_WARN, "nbd: refusing connection: out of memory");
			if (c)
				free(c);
			close(fd);
			continue;
		}
		c->srv = srv;
		c->lp = srv->lp;
		c->fd = fd;
		c->out_tail = &c->out_head;
		c->kick.fn = conn_kick_fn;
		c->kick.arg = c;
		c->hs_timer.fn = hs_timeout;
		c->hs_timer.arg = c;
		c->tls_more.fn = tls_more_fn;
		c->tls_more.arg = c;
		c->tls_mode = l->tls_mode;
		c->tls_creds = l->tls_creds;
		if (l->is_unix) {
			int sndbuf = NBD_UNIX_SNDBUF;

			snprintf(c->peer, sizeof c->peer, "unix#%llu", ++srv->serial);
			/* best effort: on failure the default size stays */
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
		} else {
			char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
			int one = 1;

			getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
				    NI_NUMERICHOST | NI_NUMERICSERV);
			snprintf(c->peer, sizeof c->peer, "%s:%s", host, port);
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		}
		c->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = c;
		srv->conns = c;
		srv->nconns++;
		if (evloop_watch_add(srv->lp, &c->watch, fd, EPOLLIN, conn_event, c) < 0) {
			log_warn("nbd: %s", err_get());
			c->dead = true;
			close(fd);
			conn_free(c);
			continue;
		}
		log_debug("nbd %s: connected", c->peer);
		evloop_timer_arm(srv->lp, &c->hs_timer, NBD_HANDSHAKE_MS);
		nbd_hs_greet(c);
	}
}

void nbd_conn_enter_tx(struct nbd_conn *c)
{
	struct evloop *to;
	uint32_t ev = c->watch.events;
	bool more = c->tls_more.armed;
	unsigned index;

	if (!c->srv->pool || c->dead)
		return;
	CSNAP_ASSERT(loop_locked());
	CSNAP_ASSERT(!c->hs_timer.armed);	/* the handshake is over */
	to = loop_pool_pick(c->srv->pool, &index);
	log_debug("nbd %s: on loop thread %u", c->peer, index);
	if (to == c->lp)
		return;
	/* A kick already queued runs on the old loop: harmless, every loop
	 * runs under the same lock and uses c->lp from then on.  */
	evloop_timer_cancel(c->lp, &c->tls_more);
	evloop_watch_del(c->lp, &c->watch);
	c->lp = to;
	if (evloop_watch_add(to, &c->watch, c->fd, ev, conn_event, c) < 0) {
		/* kill wants a watch of C->lp or none: it has none */
		nbd_conn_kill(c, err_get());
		return;
	}
	if (more)
		evloop_timer_arm(to, &c->tls_more, 0);
}

int nbd_server_set_threads(struct nbd_server *srv, unsigned nthreads, unsigned io_depth)
{
	CSNAP_ASSERT(!srv->pool && !srv->conns);
	if (nthreads <= 1)
		return 0;
	return loop_pool_start(srv->lp, nthreads, io_depth, &srv->pool);
}

unsigned nbd_server_io_pending(const struct nbd_server *srv)
{
	return io_engine_pending(loop_io(srv->lp)) + (srv->pool ? loop_pool_pending(srv->pool) : 0);
}

/* ---- listeners -------------------------------------------------------- */

static int add_listener(struct nbd_server *srv, int fd, bool is_unix, const char *path,
			uint16_t port)
{
	struct listener *l;
	int rc;

	if (srv->nlisteners == NBD_MAX_LISTENERS) {
		close(fd);
		return err_set(EMFILE, "too many listeners");
	}
	l = &srv->listeners[srv->nlisteners];
	memset(l, 0, sizeof *l);
	l->srv = srv;
	l->fd = fd;
	l->is_unix = is_unix;
	l->port = port;
	if (path)
		snprintf(l->path, sizeof l->path, "%s", path);
	if (!is_unix) {
		l->tls_mode = srv->tls_mode;
		l->tls_creds = srv->tls_creds;
	}
	rc = evloop_watch_add(srv->lp, &l->watch, fd, EPOLLIN, accept_event, l);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	srv->nlisteners++;
	return 0;
}

int nbd_server_listen_unix(struct nbd_server *srv, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (strlen(path) >= sizeof sa.sun_path)
		return err_set(ENAMETOOLONG, "unix socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(errno, "socket: %s", strerror(errno));
	if (lstat(path, &st) == 0) {
		/* A socket left by a dead export is replaced; a live one or
		 * anything that is not a socket is not ours to remove.  */
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return err_set(EEXIST, "%s exists and is not a socket", path);
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
			close(probe);
			close(fd);
			return err_set(EADDRINUSE, "%s: another export is listening there", path);
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
		rc = err_set(errno, "listen on %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	return add_listener(srv, fd, true, path, 0);
}

int nbd_server_listen_tcp(struct nbd_server *srv, const char *address, uint16_t port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char portstr[8];
	int fd, rc, one = 1;

	snprintf(portstr, sizeof portstr, "%u", port);
	rc = getaddrinfo(address && address[0] ? address : NULL, portstr, &hints, &res);
	if (rc)
		return err_set(EINVAL, "address %s: %s", address ? address : "*", gai_strerror(rc));
	fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = err_set(errno, "socket: %s", strerror(errno));
		freeaddrinfo(res);
		return rc;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		rc = err_set(errno, "listen on %s port %u: %s", address && address[0] ? address : "*",
			     port, strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return rc;
	}
	freeaddrinfo(res);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return add_listener(srv, fd, false, NULL, port);
}

uint16_t nbd_server_tcp_port(const struct nbd_server *srv)
{
	for (unsigned i = 0; i < srv->nlisteners; i++)
		if (!srv->listeners[i].is_unix)
			return srv->listeners[i].port;
	return 0;
}

/* ---- lifetime --------------------------------------------------------- */

int nbd_server_create(struct evloop *lp, struct nbd_server **out)
{
	struct nbd_server *srv = calloc(1, sizeof *srv);

	if (!srv)
		return err_set(ENOMEM, "out of memory");
	srv->lp = lp;
	srv->max_conns = fd_conn_cap(NBD_MAX_CONNS);
	if (fd_reserve_open(&srv->fdres) < 0)
		log_warn("nbd: cannot keep a spare descriptor: %s", strerror(errno));
	srv->accept_timer.fn = accept_resume;
	srv->accept_timer.arg = srv;
	log_debug("nbd: accepting up to %u connections", srv->max_conns);
	*out = srv;
	return 0;
}

int nbd_server_set_tls(struct nbd_server *srv, const struct nbd_tls_opts *o)
{
	struct nbd_tls_creds *cr = NULL;
	int rc;

	if (o->mode != NBD_TLS_OFF && (rc = nbd_tls_creds_load(o, &cr)) < 0)
		return rc;
	/* Listeners already added keep the credentials they have.  */
	CSNAP_ASSERT(!srv->tls_creds);
	srv->tls_creds = cr;
	srv->tls_mode = o->mode;
	if (o->mode != NBD_TLS_OFF)
		log_info("nbd: TLS %s on TCP (%s%s%s%s)",
			 o->mode == NBD_TLS_REQUIRE ? "required" : "offered",
			 o->psk_file ? "PSK " : "", o->psk_file ? o->psk_file : "",
			 o->psk_file && o->cert_dir ? ", X.509 " : o->cert_dir ? "X.509 " : "",
			 o->cert_dir ? o->cert_dir : "");
	return 0;
}

/* Shutdown with loop threads: the connections they serve are freed by
 * their own loops (the kick of a dead connection whose requests are
 * done), so the threads go on until none is left or nothing moves any
 * more; then they stop, and what remains is the main loop's.  */
static void drain_pool(struct nbd_server *srv)
{
	unsigned idle = 0;

	for (;;) {
		bool remote = false;

		for (struct nbd_conn *c = srv->conns; c; c = c->next)
			remote |= c->lp != srv->lp;
		if (!remote)
			break;
		if (nbd_server_io_pending(srv) == 0 && ++idle > 200) {
			log_error("nbd: connections of the loop threads still open at shutdown");
			break;
		}
		io_engine_submit(loop_io(srv->lp));
		io_engine_reap(loop_io(srv->lp), 0);
		loop_unlock();
		usleep(5000);
		loop_lock();
	}
	/* Those left (stuck) go back to the main loop, which outlives this. */
	for (struct nbd_conn *c = srv->conns; c; c = c->next)
		c->lp = srv->lp;
	loop_pool_stop(srv->pool);
	srv->pool = NULL;
	loop_bind_thread(NULL);
}

void nbd_server_destroy(struct nbd_server *srv)
{
	if (!srv)
		return;
	evloop_timer_cancel(srv->lp, &srv->accept_timer);
	fd_reserve_close(&srv->fdres);
	for (unsigned i = 0; i < srv->nlisteners; i++) {
		struct listener *l = &srv->listeners[i];

		evloop_watch_del(srv->lp, &l->watch);
		close(l->fd);
		if (l->is_unix)
			unlink(l->path);
	}
	for (struct nbd_conn *c = srv->conns; c; c = c->next)
		nbd_conn_kill(c, NULL);
	if (srv->pool)
		drain_pool(srv);
	/* Volume requests still in flight hold their connections: let the
	 * loop's I/O finish, which frees them.  */
	while (srv->conns) {
		struct nbd_conn *c = srv->conns;

		if (c->inflight) {
			if (io_engine_pending(loop_io(srv->lp)) == 0) {
				log_error("nbd: %u requests stuck on %s at shutdown", c->inflight,
					  c->peer);
				break;
			}
			io_engine_submit(loop_io(srv->lp));
			io_engine_reap(loop_io(srv->lp), 100);
			continue;
		}
		conn_free(c);
	}
	nbd_tls_creds_free(srv->tls_creds);
	while (srv->nvols)
		volume_put(srv->vols[--srv->nvols]);
	free(srv->vols);
	for (unsigned k = 0; k < BUF_CLASSES; k++) {
		while (srv->bufs[k]) {
			struct cached_buf *b = srv->bufs[k];

			srv->bufs[k] = b->next;
			io_buf_free(b);
		}
	}
	free(srv);
}
