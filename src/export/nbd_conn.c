/*
 * src/export/nbd_conn.c - one NBD connection's socket I/O and lifetime:
 * setting it up after accept, reading and parsing its input, sending its
 * queued output, flow control, and closing it.  The protocol itself is in
 * nbd_handshake.c and nbd_transmit.c; listeners in nbd_listen.c.
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
 * A dead connection has its socket closed at once; the struct is freed
 * (nbd_conn_free) only once no volume request of it is in flight.
 */
#include "src/export/nbd_server_int.h"

#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void conn_readable(struct nbd_conn *c);
static void conn_flush(struct nbd_conn *c);
static bool over_limits(const struct nbd_conn *c);

void nbd_conn_free(struct nbd_conn *c)
{
	struct nbd_server *srv = c->srv;

	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	if (c->pool_index >= 0 && srv->pool)
		loop_pool_unpick(srv->pool, (unsigned)c->pool_index);
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
			nbd_conn_free(c);
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

void nbd_conn_start(struct nbd_server *srv, const struct listener *l, int fd,
		    const struct sockaddr_storage *ss, socklen_t sl)
{
	struct nbd_conn *c = calloc(1, sizeof *c);

	if (c)
		c->in = malloc(NBD_STAGE_SIZE);
	if (!c || !c->in) {
		log_limited(&srv->peer_log, LOG_LEVEL_WARN, "nbd: refusing connection: out of memory");
		if (c)
			free(c);
		close(fd);
		return;
	}
	c->srv = srv;
	c->lp = srv->lp;
	c->pool_index = -1;
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

		getnameinfo((const struct sockaddr *)ss, sl, host, sizeof host, port, sizeof port,
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
		nbd_conn_free(c);
		return;
	}
	log_debug("nbd %s: connected", c->peer);
	evloop_timer_arm(srv->lp, &c->hs_timer, NBD_HANDSHAKE_MS);
	nbd_hs_greet(c);
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
	CSNAP_ASSERT(c->pool_index < 0);	/* picked once */
	to = loop_pool_pick(c->srv->pool, &index);
	c->pool_index = (int)index;
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
