/*
 * src/server/conn.c - client connections of the master: accept, the
 * handshake (challenge, HMAC authentication, identify), message framing,
 * buffered non-blocking output.  What an identified connection may send
 * and who handles it is route.c's table; this file is the socket side.
 *
 * Invariants: a connection that sends anything malformed or out of order
 * is closed with a logged reason; nothing it sent is acted on after that,
 * and no other connection is affected.  Peers cannot exhaust descriptors
 * or memory: connections are capped below the descriptor limit, the
 * oldest unidentified one is shed when too many wait, a handshake must
 * finish within CONN_HANDSHAKE_MS, nothing larger than a handshake
 * message is buffered before identification, and what peers can make us
 * log is rate-limited.  Requests that are parked keep a
 * reference (refs) so the struct outlives its socket; their replies are
 * then dropped.
 */
#include "src/server/srv.h"

#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_READ_BUDGET	(4u << 20)	/* bytes read per event, fairness */
#define CONN_OUT_LIMIT		(64u << 20)	/* a client that never reads */
#define CONN_HANDSHAKE_MS	5000		/* connect to identified */
#define CONN_MAX		4096		/* connections, if descriptors allow */
/* Connections not yet identified: at this many, a new one sheds the
 * oldest, so idle or slow peers can neither fill the connection table
 * nor keep a real client out for longer than its own handshake.  */
#define CONN_MAX_UNIDENT	256

/* Until a peer is identified, anyone may be behind it: what it makes us
 * log is rate-limited (a flood of bad connections must not flood the
 * log).  */
#define conn_log(c, level, ...)							\
	do {									\
		if ((c)->state != CONN_READY)					\
			log_limited(&(c)->s->peer_log, (level), __VA_ARGS__);	\
		else								\
			log_msg((level), __VA_ARGS__);				\
	} while (0)

static void conn_update_events(struct conn *c)
{
	if (c->dead)
		return;
	bool want = c->out.off < c->out.len;
	/* no system call when the mask is unchanged */
	evloop_watch_mod(c->s->lp, &c->w, EPOLLIN | (want ? EPOLLOUT : 0));
}

static void conn_write(struct conn *c)
{
	while (!c->dead && c->out.off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out.off, c->out.len - c->out.off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->out.off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_log(c, LOG_LEVEL_INFO, "client %s: send failed: %s; closing", c->peer,
			 n < 0 ? strerror(errno) : "short write");
		conn_close(c);
		return;
	}
	if (c->out.off == c->out.len) {
		c->out.off = c->out.len = 0;
		if (c->closing) {
			conn_close(c);
			return;
		}
	}
	conn_update_events(c);
}

void conn_reap(struct srv *s)
{
	while (s->graveyard) {
		struct conn *c = s->graveyard;

		s->graveyard = c->grave_next;
		conn_put(c);
	}
}

void conn_flush_all(struct srv *s)
{
	struct conn *c, *next;

	conn_reap(s);
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->out.off < c->out.len)
			conn_write(c);
	}
}

void conn_queue(struct conn *c, const struct proto_msg *m)
{
	if (c->dead)
		return;
	int r = proto_encode(m, &c->out);
	if (r < 0) {
		/* Our own bug: never send what the peer would reject.  */
		log_error("client %s: cannot encode %s: %s", c->peer, proto_type_name(m->type), err_get());
		conn_close(c);
		return;
	}
	if (c->out.len - c->out.off > CONN_OUT_LIMIT) {
		log_warn("client %s: not reading its replies (%zu bytes queued); closing",
			 c->peer, c->out.len - c->out.off);
		conn_close(c);
	}
}

void conn_fail(struct conn *c, const char *why)
{
	conn_log(c, LOG_LEVEL_WARN, "client %s: protocol error: %s; closing the connection",
		 c->peer, why);
	conn_close(c);
}

void conn_put(struct conn *c)
{
	CSNAP_ASSERT(c->refs > 0);	/* every put matches a reference */
	if (--c->refs == 0 && c->dead) {
		proto_buf_free(&c->in);
		proto_buf_free(&c->out);
		chunkset_free(&c->locks);
		free(c);
	}
}

void conn_close(struct conn *c)
{
	struct srv *s = c->s;
	if (c->dead)
		return;
	c->dead = true;
	evloop_watch_del(s->lp, &c->w);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	if (c->state != CONN_READY) {
		CSNAP_ASSERT(s->nunident > 0);	/* counted at accept */
		s->nunident--;
	}
	if (c->state == CONN_READY)
		log_msg(c->volume == PROTO_VOL_ADMIN ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO,
			"client %s (%s) disconnected", c->peer, c->name);
	srv_conn_gone(s, c);
	/* Freed at the end of the loop turn: the callback that closed C may
	 * still use it.  The graveyard holds a reference until then.  */
	c->refs++;
	c->grave_next = s->graveyard;
	s->graveyard = c;
}

static void on_listen(void *arg, uint32_t events)
{
	(void)events;
	conn_accept(arg);
}

int conn_listen_init(struct srv *s)
{
	int r = evloop_watch_add(s->lp, &s->listen_watch, s->lfd, EPOLLIN, on_listen, s);

	if (r < 0)
		return r;
	s->max_conns = fd_conn_cap(CONN_MAX);
	if (fd_reserve_open(&s->fdres) < 0)
		log_warn("cannot keep a spare descriptor: %s", strerror(errno));
	s->accept_paused = false;
	log_debug("accepting up to %u connections (%u not yet identified)", s->max_conns,
		  s->max_conns / 2 < CONN_MAX_UNIDENT ? s->max_conns / 2 : CONN_MAX_UNIDENT);
	return 0;
}

void conn_listen_done(struct srv *s)
{
	evloop_watch_del(s->lp, &s->listen_watch);
	fd_reserve_close(&s->fdres);
}

/* The connection that has waited longest for its handshake, or NULL.  */
static struct conn *oldest_unident(struct srv *s)
{
	struct conn *old = NULL;

	for (struct conn *c = s->conns; c; c = c->next)
		if (c->state != CONN_READY)
			old = c;	/* the list is newest first */
	return old;
}

/* Room for one more connection, FD: shed the oldest unidentified one when
 * over a limit.  False: refuse the new one.  */
static bool make_room(struct srv *s, int fd)
{
	unsigned max_unident = s->max_conns / 2 < CONN_MAX_UNIDENT ? s->max_conns / 2
								   : CONN_MAX_UNIDENT;

	if (s->nconns < s->max_conns && s->nunident < (max_unident ? max_unident : 1))
		return true;
	if (fd_peer_gone(fd))
		return false;
	struct conn *old = oldest_unident(s);
	if (!old) {
		log_limited(&s->peer_log, LOG_LEVEL_WARN,
			    "refusing a connection: %u connections open (limit %u)", s->nconns,
			    s->max_conns);
		return false;
	}
	log_limited(&s->peer_log, LOG_LEVEL_WARN,
		    "client %s: closing: not identified after %lld ms and %u connections wait "
		    "(limit %u)", old->peer, (long long)(csnap_now_ms() - old->accepted_ms),
		    s->nunident, max_unident);
	conn_close(old);
	return true;
}

/* Accept failed with ERR: take it from the reserve, or stop watching the
 * listener until the next tick.  Never returns to a readable listener
 * without progress: that would spin the loop.  */
static bool accept_failed(struct srv *s, int err)
{
	if (fd_reserve_shed(&s->fdres, s->lfd, err)) {
		log_limited(&s->peer_log, LOG_LEVEL_WARN,
			    "accept: %s: closed a new connection (%u open, limit %u)",
			    strerror(err), s->nconns, s->max_conns);
		return true;
	}
	log_limited(&s->peer_log, LOG_LEVEL_WARN, "accept: %s: not accepting for %d ms",
		    strerror(err), 250);
	s->accept_paused = true;
	evloop_watch_del(s->lp, &s->listen_watch);
	return false;
}

static void conn_on_event(void *arg, uint32_t events);

int conn_accept(struct srv *s)
{
	for (;;) {
		struct sockaddr_storage sa;
		socklen_t sl = sizeof sa;
		int fd = accept4(s->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			if (errno == ECONNABORTED)
				continue;
			if (accept_failed(s, errno))
				continue;
			return 0;
		}
		if (!make_room(s, fd)) {
			close(fd);
			continue;
		}
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			log_limited(&s->peer_log, LOG_LEVEL_ERROR, "out of memory for a connection");
			return 0;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->s = s;
		c->fd = fd;
		c->state = CONN_CHALLENGED;
		c->accepted_ms = csnap_now_ms();
		proto_buf_init(&c->in);
		proto_buf_init(&c->out);
		chunkset_init(&c->locks);
		char host[INET6_ADDRSTRLEN] = "?";
		uint16_t port = 0;
		if (sa.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&sa;
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
			port = ntohs(in->sin_port);
			snprintf(c->peer, sizeof c->peer, "%s:%u", host, port);
		} else if (sa.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
			port = ntohs(in6->sin6_port);
			snprintf(c->peer, sizeof c->peer, "[%s]:%u", host, port);
		}
		if (evloop_watch_add(s->lp, &c->w, fd, EPOLLIN, conn_on_event, c) < 0) {
			log_error("%s", err_get());
			close(fd);
			chunkset_free(&c->locks);
			free(c);
			continue;
		}
		c->refs = 0;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->nconns++;
		s->nunident++;
		/* make_room() kept us under the cap (below the descriptor
		 * limit), shedding an unidentified one if need be.  */
		CSNAP_ASSERT(s->nconns <= s->max_conns);

		struct proto_msg m;
		proto_msg_init(&m, PROTO_CHALLENGE, 0);
		m.u.challenge.version_min = PROTO_VERSION_MIN;
		m.u.challenge.version_max = PROTO_VERSION;
		m.u.challenge.store = s->uuid;
		proto_random(c->nonce, sizeof c->nonce);
		memcpy(m.u.challenge.nonce, c->nonce, sizeof c->nonce);
		conn_send(c, &m);
		log_debug("client %s: connected", c->peer);
	}
}

static void on_auth(struct conn *c, struct proto_msg *m)
{
	struct srv *s = c->s;
	if (m->type != PROTO_AUTH) {
		conn_fail(c, "expected auth");
		return;
	}
	uint16_t v = m->u.auth.version;
	if (v < PROTO_VERSION_MIN || v > PROTO_VERSION ||
	    !proto_auth_verify(s->secret, 'C', v, c->nonce, m->u.auth.nonce, m->u.auth.mac)) {
		conn_log(c, LOG_LEVEL_WARN, "client %s: authentication failed (wrong store secret "
			 "or version %u); refusing", c->peer, v);
		conn_reply_error(c, m, EACCES, "authentication failed");
		c->closing = true;
		return;
	}
	struct proto_msg ok;
	proto_msg_init(&ok, PROTO_AUTH | PROTO_REPLY, m->id);
	proto_auth_mac(s->secret, 'S', v, c->nonce, m->u.auth.nonce, ok.u.auth_ok.mac);
	conn_send(c, &ok);
	c->state = CONN_AUTHED;
}

static void on_identify(struct conn *c, struct proto_msg *m)
{
	struct srv *s = c->s;
	struct proto_identify *id = &m->u.identify;
	if (m->type != PROTO_IDENTIFY) {
		conn_fail(c, "expected identify");
		return;
	}
	if (!csnap_uuid_equal(&id->store, &s->uuid)) {
		conn_reply_error(c, m, ESTALE, "this server serves another store");
		c->closing = true;
		return;
	}
	char busy[PROTO_STR_MAX + 1];
	bool rb_ok = id->volume == PROTO_VOL_ORIGIN && (m->flags & PROTO_F_ROLLBACK_OK);
	/* EAGAIN: an older export tries again, and gets in when it ended */
	if (id->volume == PROTO_VOL_ORIGIN && !rb_ok && rb_refuses_origin(s, busy, sizeof busy)) {
		conn_reply_error(c, m, EAGAIN, busy);
		c->closing = true;
		return;
	}
	struct proto_msg ok;
	proto_msg_init(&ok, PROTO_IDENTIFY | PROTO_REPLY, m->id);
	ok.u.identify_ok.chunk_size = s->chunk_size;
	ok.u.identify_ok.origin_size = s->origin_size;
	ok.u.identify_ok.volume_size = s->origin_size;
	ok.u.identify_ok.store_data_offset = store_chunk_offset(s->st, 0);
	ok.u.identify_ok.generation = s->epoch;
	c->snap_chunks = s->info.origin_chunks;
	if (rb_ok) {
		c->rb_ok = true;
		ok.u.identify_ok.has_state = true;
		ok.u.identify_ok.state = rb_origin_state(s);
	}
	if (id->volume == PROTO_VOL_SNAPSHOT) {
		struct store_snapshot snap;
		if (store_snapshot_find(s->st, id->snapshot, &snap) < 0 ||
		    !(snap.flags & STORE_SNAP_LIVE)) {
			char why[128];
			snprintf(why, sizeof why, "no snapshot named %s", id->snapshot);
			conn_reply_error(c, m, ENOENT, why);
			c->closing = true;
			return;
		}
		c->snap_id = snap.id;
		c->passive = (m->flags & PROTO_F_PASSIVE) != 0;
		c->snap_chunks = snap.origin_chunks;
		ok.u.identify_ok.snap_id = snap.id;
		uint64_t sz = snap.origin_chunks * s->chunk_size;
		ok.u.identify_ok.volume_size = sz < s->origin_size ? sz : s->origin_size;
	}
	c->volume = id->volume;
	c->host_id = id->host_id;
	snprintf(c->name, sizeof c->name, "%s", id->client);
	c->state = CONN_READY;
	CSNAP_ASSERT(s->nunident > 0);	/* C was counted at accept */
	s->nunident--;
	static const char *kinds[] = { "?", "origin", "snapshot", "admin" };
	/* Admin tools come and go all the time: debug level for them.  */
	log_msg(id->volume == PROTO_VOL_ADMIN ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, "client %s: %s%s%s host %u (%s)%s%s", c->peer, kinds[id->volume],
		 id->volume == PROTO_VOL_SNAPSHOT ? " " : "", id->snapshot, id->host_id,
		 c->name, (m->flags & PROTO_F_RECONNECT) ? ", reconnect" : "",
		 c->passive ? ", passive (no user yet)" : "");
	conn_send(c, &ok);
}

static void on_message(struct conn *c, struct proto_msg *m)
{
	switch (c->state) {
	case CONN_CHALLENGED:
		on_auth(c, m);
		proto_msg_free(m);
		break;
	case CONN_AUTHED:
		on_identify(c, m);
		proto_msg_free(m);
		break;
	case CONN_READY:
		route_message(c, m);
		break;
	}
}

/* Before a connection is identified only AUTH, then IDENTIFY, may come,
 * and both are small: the header is checked as soon as it is in, before
 * the payload is waited for, so an unauthenticated peer never makes us
 * buffer more than one handshake message (a header announcing 1 MiB used
 * to be buffered whole: 200 connections, +200 MiB).  */
#define CONN_HANDSHAKE_MAX_MSG	(PROTO_HDR_SIZE + PROTO_HANDSHAKE_MAX_PAYLOAD)

static int handshake_hdr_check(const struct conn *c)
{
	struct proto_hdr h;
	uint16_t want = c->state == CONN_CHALLENGED ? PROTO_AUTH : PROTO_IDENTIFY;

	if (c->in.len - c->in.off < PROTO_HDR_SIZE)
		return 0;
	if (proto_decode_hdr(c->in.data + c->in.off, &h) < 0)
		return -EBADMSG;
	if (h.type != want)
		return err_set(EPROTO, "expected %s, got %s", proto_type_name(want),
			       proto_type_name(h.type & (uint16_t)~PROTO_REPLY));
	if (h.len > PROTO_HANDSHAKE_MAX_PAYLOAD)
		return err_set(EMSGSIZE, "%s of %u bytes exceeds the handshake limit of %u",
			       proto_type_name(want), h.len, PROTO_HANDSHAKE_MAX_PAYLOAD);
	return 0;
}

/* How much one recv() may add to the input buffer.  */
static size_t read_room(const struct conn *c)
{
	size_t held = c->in.len - c->in.off;

	if (c->state == CONN_READY)
		return 65536;
	/* A whole handshake message that is held has been taken already.  */
	return held < CONN_HANDSHAKE_MAX_MSG ? CONN_HANDSHAKE_MAX_MSG - held : 0;
}

static void conn_read(struct conn *c)
{
	size_t budget = CONN_READ_BUDGET;
	bool eof = false;

	while (budget && !c->dead) {
		size_t room = read_room(c);
		if (room == 0)
			break;
		if (proto_buf_reserve(&c->in, room) < 0) {
			log_error("client %s: out of memory", c->peer);
			conn_close(c);
			return;
		}
		if (c->state == CONN_READY)
			room = c->in.cap - c->in.len;
		ssize_t n = recv(c->fd, c->in.data + c->in.len, room, MSG_DONTWAIT);
		if (n > 0) {
			c->in.len += (size_t)n;
			/* Before identification at most one handshake message
			 * is buffered (read_room).  */
			CSNAP_ASSERT(c->state == CONN_READY ||
				     c->in.len - c->in.off <= CONN_HANDSHAKE_MAX_MSG);
			budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
		} else if (n == 0) {
			eof = true;
			break;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			break;
		} else {
			conn_log(c, LOG_LEVEL_INFO, "client %s: receive failed: %s", c->peer,
				 strerror(errno));
			conn_close(c);
			return;
		}
		/* Decode as we go so a fast sender cannot make us buffer much. */
		for (;;) {
			if (c->dead || c->closing)
				break;
			struct proto_msg m;
			if (c->state != CONN_READY && handshake_hdr_check(c) < 0) {
				conn_fail(c, err_get());
				return;
			}
			int r = proto_take(&c->in, &m);
			if (r == 0)
				break;
			if (r < 0) {
				conn_fail(c, err_get());
				return;
			}
			on_message(c, &m);
		}
		if (c->dead)
			return;
		proto_buf_compact(&c->in);
		if (c->closing)
			break;
	}
	if (eof && !c->dead) {
		c->eof = true;	/* the client closed it: see srv_grant_gone */
		conn_close(c);
	}
}

void conn_tick(struct srv *s)
{
	int64_t now = csnap_now_ms();
	struct conn *c, *next;
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->state != CONN_READY && !c->closing && now - c->accepted_ms > CONN_HANDSHAKE_MS) {
			log_limited(&s->peer_log, LOG_LEVEL_WARN,
				    "client %s: no handshake within %d ms; closing", c->peer,
				    CONN_HANDSHAKE_MS);
			conn_close(c);
		}
	}
	/* Back off after a descriptor shortage: watch the listener again.  */
	if (s->accept_paused && s->lfd >= 0) {
		if (evloop_watch_add(s->lp, &s->listen_watch, s->lfd, EPOLLIN, on_listen, s) == 0)
			s->accept_paused = false;
		if (s->fdres.spare < 0)
			fd_reserve_open(&s->fdres);
	}
}

static void conn_on_event(void *arg, uint32_t events)
{
	struct conn *c = arg;

	c->refs++;	/* keep alive across callbacks that may close it */
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_read(c);
	if (!c->dead && (events & EPOLLOUT))
		conn_write(c);
	conn_put(c);
}
