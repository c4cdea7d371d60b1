/*
 * src/proto/client.c - see client.h.
 *
 * Invariants: the socket is non-blocking; `out` holds encoded bytes not yet
 * written (from out.off on); `in` holds received bytes not yet decoded;
 * `held` keeps replies that a blocking call read past while waiting for its
 * own, in arrival order, for proto_client_recv() to return first.
 */
#include "src/proto/client.h"

#include "utils/err.h"
#include "utils/clock.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

struct held_msg {
	struct proto_msg m;
	struct held_msg *next;
};

struct proto_client {
	int fd;
	uint16_t version;
	struct csnap_uuid store;
	uint64_t next_id;
	struct proto_buf in, out;
	struct held_msg *held, **held_tail;
	proto_client_handler_fn handler;
	void *handler_arg;
	int dead;		/* negative errno once the connection failed */
};

static int wait_fd(int fd, short ev, int64_t deadline)
{
	for (;;) {
		int t = -1;
		if (deadline >= 0) {
			int64_t left = deadline - csnap_now_ms();
			if (left <= 0)
				return err_set(ETIMEDOUT, "timed out waiting for the server");
			t = (int)(left > 60000 ? 60000 : left);
		}
		struct pollfd p = { .fd = fd, .events = ev };
		int r = poll(&p, 1, t);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return err_set(errno, "poll: %s", strerror(errno));
	}
}

static int fail(struct proto_client *c, int r)
{
	if (!c->dead)
		c->dead = r;
	return r;
}

int proto_client_flush(struct proto_client *c, bool block)
{
	while (c->out.off < c->out.len) {
		if (c->dead)
			return c->dead;
		ssize_t n = send(c->fd, c->out.data + c->out.off, c->out.len - c->out.off,
				 MSG_NOSIGNAL);
		if (n > 0) {
			c->out.off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!block)
				return -EAGAIN;
			int r = wait_fd(c->fd, POLLOUT, -1);
			if (r < 0)
				return fail(c, r);
			continue;
		}
		return fail(c, err_set(errno ? errno : EIO, "send to server: %s", strerror(errno)));
	}
	c->out.off = c->out.len = 0;
	return 0;
}

bool proto_client_want_write(const struct proto_client *c)
{
	return c->out.off < c->out.len;
}

int proto_client_fd(const struct proto_client *c)
{
	return c->fd;
}

uint16_t proto_client_version(const struct proto_client *c)
{
	return c->version;
}

static int queue_msg(struct proto_client *c, const struct proto_msg *m)
{
	if (c->dead)
		return c->dead;
	int r = proto_encode(m, &c->out);
	if (r < 0)
		return r;
	r = proto_client_flush(c, false);
	return r == -EAGAIN ? 0 : r;
}

int proto_client_send(struct proto_client *c, struct proto_msg *req)
{
	req->id = c->next_id++;
	return queue_msg(c, req);
}

int proto_client_reply(struct proto_client *c, const struct proto_msg *reply)
{
	return queue_msg(c, reply);
}

/* Reads what the socket has.  Returns bytes read, 0 if none (EAGAIN), or
 * a negative errno (-ECONNRESET at end of stream).  */
static int read_some(struct proto_client *c)
{
	int r = proto_buf_reserve(&c->in, 65536);
	if (r < 0)
		return r;
	for (;;) {
		ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
		if (n > 0) {
			c->in.len += (size_t)n;
			return (int)n;
		}
		if (n == 0)
			return fail(c, err_set(ECONNRESET, "server closed the connection"));
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return fail(c, err_set(errno, "receive from server: %s", strerror(errno)));
	}
}

/* Next message from the stream (not from `held`).  */
static int recv_stream(struct proto_client *c, struct proto_msg *out, bool block, int64_t deadline)
{
	for (;;) {
		if (c->dead)
			return c->dead;
		int r = proto_take(&c->in, out);
		if (r < 0)
			return fail(c, err_prefix(-r, "from server"));
		if (r == 1)
			return 1;
		proto_buf_compact(&c->in);
		r = read_some(c);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		if (!block)
			return 0;
		/* Keep writing while waiting, so a large request cannot deadlock
		 * against a server that waits for us to read.  */
		short ev = POLLIN | (proto_client_want_write(c) ? POLLOUT : 0);
		r = wait_fd(c->fd, ev, deadline);
		if (r < 0)
			return fail(c, r);
		if (proto_client_want_write(c)) {
			r = proto_client_flush(c, false);
			if (r < 0 && r != -EAGAIN)
				return r;
		}
	}
}

int proto_client_recv(struct proto_client *c, struct proto_msg *out, bool block)
{
	if (c->held) {
		struct held_msg *h = c->held;
		c->held = h->next;
		if (!c->held)
			c->held_tail = &c->held;
		*out = h->m;
		free(h);
		return 1;
	}
	return recv_stream(c, out, block, -1);
}

void proto_client_set_handler(struct proto_client *c, proto_client_handler_fn fn, void *arg)
{
	c->handler = fn;
	c->handler_arg = arg;
}

static void handle_server_request(struct proto_client *c, struct proto_msg *m)
{
	if (c->handler) {
		c->handler(c->handler_arg, c, m);
	} else {
		/* No cache to drop: acknowledge at once.  */
		struct proto_msg ack;
		proto_msg_init(&ack, (uint16_t)(m->type | PROTO_REPLY), m->id);
		(void)queue_msg(c, &ack);
	}
	proto_msg_free(m);
}

static int wait_reply(struct proto_client *c, uint64_t id, struct proto_msg *reply, int64_t deadline)
{
	for (;;) {
		struct proto_msg m;
		int r = recv_stream(c, &m, true, deadline);
		if (r < 0)
			return r;
		if (!(m.type & PROTO_REPLY)) {
			handle_server_request(c, &m);
			continue;
		}
		if (m.id == id) {
			*reply = m;
			return 0;
		}
		struct held_msg *h = malloc(sizeof *h);
		if (!h) {
			proto_msg_free(&m);
			return fail(c, err_set(ENOMEM, "out of memory"));
		}
		h->m = m;
		h->next = NULL;
		*c->held_tail = h;
		c->held_tail = &h->next;
	}
}

static int call_deadline(struct proto_client *c, struct proto_msg *req, struct proto_msg *reply,
			 int64_t deadline)
{
	int r = proto_client_send(c, req);
	if (r < 0)
		return r;
	r = wait_reply(c, req->id, reply, deadline);
	if (r < 0)
		return r;
	if ((reply->type & (uint16_t)~PROTO_REPLY) != req->type) {
		proto_msg_free(reply);
		return fail(c, err_set(EPROTO, "server answered %s with %s",
				       proto_type_name(req->type), proto_type_name(reply->type)));
	}
	return 0;
}

int proto_client_call(struct proto_client *c, struct proto_msg *req, struct proto_msg *reply)
{
	return call_deadline(c, req, reply, -1);
}

int proto_client_call_timeout(struct proto_client *c, struct proto_msg *req,
			      struct proto_msg *reply, int timeout_ms)
{
	return call_deadline(c, req, reply, timeout_ms < 0 ? -1 : csnap_now_ms() + timeout_ms);
}

static int tcp_connect(const char *address, uint16_t port, int64_t deadline, int *out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	char portstr[8];
	int last = -ECONNREFUSED;

	snprintf(portstr, sizeof portstr, "%u", port);
	int g = getaddrinfo(address, portstr, &hints, &res);
	if (g != 0)
		return err_set(EHOSTUNREACH, "cannot resolve %s: %s", address, gai_strerror(g));
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			last = err_set(errno, "socket: %s", strerror(errno));
			continue;
		}
		int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (r < 0 && errno == EINPROGRESS) {
			r = wait_fd(fd, POLLOUT, deadline);
			if (r == 0) {
				int e = 0;
				socklen_t el = sizeof e;
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
				if (e) {
					errno = e;
					r = -1;
				}
			} else {
				errno = -r;
				r = -1;
			}
		}
		if (r == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			freeaddrinfo(res);
			*out = fd;
			return 0;
		}
		last = err_set(errno, "connect to %s:%u: %s", address, port, strerror(errno));
		close(fd);
	}
	freeaddrinfo(res);
	return last;
}

int proto_client_connect(const char *address, uint16_t port, const struct csnap_uuid *store,
			 const uint8_t secret[PROTO_SECRET_LEN], int timeout_ms,
			 struct proto_client **out)
{
	int64_t deadline = timeout_ms < 0 ? -1 : csnap_now_ms() + timeout_ms;
	struct proto_client *c = calloc(1, sizeof *c);
	struct proto_msg m, reply;
	int r;

	if (!c)
		return err_set(ENOMEM, "out of memory");
	c->fd = -1;
	c->next_id = 1;
	c->held_tail = &c->held;
	proto_buf_init(&c->in);
	proto_buf_init(&c->out);
	r = tcp_connect(address, port, deadline, &c->fd);
	if (r < 0)
		goto fail;

	r = recv_stream(c, &m, true, deadline);
	if (r < 0)
		goto fail;
	if (m.type != PROTO_CHALLENGE) {
		proto_msg_free(&m);
		r = err_set(EPROTO, "%s:%u did not start with a challenge", address, port);
		goto fail;
	}
	struct proto_challenge ch = m.u.challenge;
	if (!csnap_uuid_equal(&ch.store, store)) {
		char want[CSNAP_UUID_STR_LEN], got[CSNAP_UUID_STR_LEN];
		csnap_uuid_unparse(store, want);
		csnap_uuid_unparse(&ch.store, got);
		r = err_set(ESTALE, "%s:%u serves store %s, not %s", address, port, got, want);
		goto fail;
	}
	if (ch.version_min > PROTO_VERSION || ch.version_max < PROTO_VERSION_MIN) {
		r = err_set(EPROTONOSUPPORT, "server speaks protocol %u..%u, we speak %u..%u",
			    ch.version_min, ch.version_max, PROTO_VERSION_MIN, PROTO_VERSION);
		goto fail;
	}
	c->store = ch.store;
	c->version = ch.version_max < PROTO_VERSION ? ch.version_max : PROTO_VERSION;

	proto_msg_init(&m, PROTO_AUTH, 0);
	m.u.auth.version = c->version;
	proto_random(m.u.auth.nonce, PROTO_NONCE_LEN);
	proto_auth_mac(secret, 'C', c->version, ch.nonce, m.u.auth.nonce, m.u.auth.mac);
	uint8_t cnonce[PROTO_NONCE_LEN];
	memcpy(cnonce, m.u.auth.nonce, sizeof cnonce);
	r = call_deadline(c, &m, &reply, deadline);
	if (r < 0) {
		if (r == -ECONNRESET)
			err_set(EACCES, "%s:%u closed the connection during authentication "
				"(wrong store secret?)", address, port);
		r = r == -ECONNRESET ? -EACCES : r;
		goto fail;
	}
	if (reply.status) {
		r = err_set((int)reply.status, "authentication refused: %s", reply.error);
		goto fail;
	}
	if (!proto_auth_verify(secret, 'S', c->version, ch.nonce, cnonce, reply.u.auth_ok.mac)) {
		r = err_set(EACCES, "%s:%u failed to prove it holds the store secret", address, port);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	proto_client_close(c);
	return r;
}

int proto_client_identify(struct proto_client *c, uint8_t volume, const char *snapshot,
			  uint16_t host_id, const char *client_name, uint16_t flags,
			  struct proto_identify_ok *out)
{
	struct proto_msg m, reply;
	int r;

	proto_msg_init(&m, PROTO_IDENTIFY, 0);
	m.flags = flags;
	m.u.identify.volume = volume;
	m.u.identify.host_id = host_id;
	snprintf(m.u.identify.snapshot, sizeof m.u.identify.snapshot, "%s", snapshot ? snapshot : "");
	snprintf(m.u.identify.client, sizeof m.u.identify.client, "%s", client_name ? client_name : "");
	/* The store uuid was checked in the handshake; it is repeated so a
	 * server could serve several stores on one port.  */
	m.u.identify.store = c->store;
	r = proto_client_call(c, &m, &reply);
	if (r < 0)
		return r;
	if (reply.status) {
		r = err_set((int)reply.status, "identify refused: %s", reply.error);
		proto_msg_free(&reply);
		return r;
	}
	if (out)
		*out = reply.u.identify_ok;
	proto_msg_free(&reply);
	return 0;
}

void proto_client_close(struct proto_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	while (c->held) {
		struct held_msg *h = c->held;
		c->held = h->next;
		proto_msg_free(&h->m);
		free(h);
	}
	proto_buf_free(&c->in);
	proto_buf_free(&c->out);
	free(c);
}
