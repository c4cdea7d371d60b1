/*
 * src/agent/conn.c - local clients of the agent on RUN_DIR/agent.sock.
 *
 * Non-blocking sockets in the main event loop (utils/evloop.h).  Each client has a bounded
 * input buffer (one line) and a bounded output buffer; a client that does
 * not read its notices is disconnected rather than allowed to grow the
 * agent's memory or stall others.  Requests of one client are answered in
 * order: while its WHERE waits for a fresh lookup, its further input stays
 * buffered.  A bad line gets an ERR line and the connection stays usable;
 * an overlong line is discarded up to its newline, then answered with ERR.
 */
#include "src/agent/agent_client.h"
#include "src/agent/agent_int.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS	1024	/* if descriptors allow (fd_conn_cap) */
#define OUT_MAX		(64 * 1024)

struct agent_conn {
	struct agent *ag;
	int fd;
	struct agent_conn *next;
	char in[AGENT_LINE_MAX];
	size_t inlen;
	bool discarding;		/* inside an overlong line */
	char *out;
	size_t outlen, outcap;
	struct evloop_watch w;		/* w.events: what we wait for */
	uint64_t watch;			/* bit i: watching store i */
	struct agent_store *pending;	/* WHERE awaiting a fresh lookup */
	uint64_t pending_seq;
	bool eof;			/* the client shut down its sending side */
	bool closing;			/* close once the output is flushed */
	bool dead;
};

_Static_assert(CONFIG_MAX_STORES <= 64, "watch mask is one uint64_t");

static void on_listen(void *arg, uint32_t events)
{
	(void)events;
	/* also while stopping: clients see the hand-over */
	agent_accept(arg);
}

int agent_listen(struct agent *ag)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, r;

	r = agent_socket_path(ag->cfg->run_dir, ag->sock_path, sizeof ag->sock_path);
	if (r < 0)
		return r;
	memcpy(sun.sun_path, ag->sock_path, strlen(ag->sock_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(errno, "socket: %s", strerror(errno));
	/* We hold the node's agent lock, so a socket file here is stale.  */
	unlink(ag->sock_path);
	mode_t old = umask(0077);	/* clients are root / the csnap group */
	r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (r < 0 || listen(fd, 64) < 0) {
		r = err_set(errno, "cannot listen on %s: %s", ag->sock_path, strerror(errno));
		close(fd);
		return r;
	}
	ag->lfd = fd;
	if ((r = evloop_watch_add(ag->lp, &ag->listen_watch, fd, EPOLLIN, on_listen, ag)) < 0)
		return r;
	ag->max_conns = (int)fd_conn_cap(MAX_CONNS);
	if (fd_reserve_open(&ag->fdres) < 0)
		log_warn("agent: cannot keep a spare descriptor: %s", strerror(errno));
	return 0;
}

/* Accept failed with ERR: take a connection with the spare descriptor
 * and close it, or stop watching the listener until the loop turn ends
 * (agent_accept_resume): a listener left readable would spin the loop.
 * True: accept again.  */
static bool accept_failed(struct agent *ag, int err)
{
	if (fd_reserve_shed(&ag->fdres, ag->lfd, err)) {
		log_limited(&ag->peer_log, LOG_LEVEL_WARN,
			    "agent: accept: %s: closed a new client (%d open)", strerror(err),
			    ag->nconns);
		return true;
	}
	log_limited(&ag->peer_log, LOG_LEVEL_WARN, "agent: accept: %s", strerror(err));
	if (fd_shortage(err)) {
		evloop_watch_del(ag->lp, &ag->listen_watch);
		ag->accept_paused = true;
	}
	return false;
}

void agent_accept_resume(struct agent *ag)
{
	if (!ag->accept_paused || ag->lfd < 0)
		return;
	if (evloop_watch_add(ag->lp, &ag->listen_watch, ag->lfd, EPOLLIN, on_listen, ag) == 0)
		ag->accept_paused = false;
	if (ag->fdres.spare < 0)
		fd_reserve_open(&ag->fdres);
}

/* One thing at a time per client: while output is queued we only wait to
 * write (back-pressure); while a WHERE waits for its lookup, or after
 * QUIT, we do not read; otherwise we read.  Level-triggered.  */
static void conn_arm(struct agent *ag, struct agent_conn *c)
{
	uint32_t events = 0;

	if (c->outlen)
		events = EPOLLOUT;
	else if (!c->pending && !c->closing && !c->eof)
		events = EPOLLIN;
	/* On failure w.events keeps the old mask: tried again next time. */
	evloop_watch_mod(ag->lp, &c->w, events);
}

static void conn_flush(struct agent *ag, struct agent_conn *c)
{
	while (c->outlen && !c->dead) {
		ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			c->dead = true;
			break;
		}
		memmove(c->out, c->out + w, c->outlen - (size_t)w);
		c->outlen -= (size_t)w;
	}
	if (!c->outlen && c->closing)
		c->dead = true;
	if (!c->dead)
		conn_arm(ag, c);
}

static void conn_put(struct agent *ag, struct agent_conn *c, const char *line, size_t len)
{
	if (c->dead)
		return;
	if (c->outlen + len > OUT_MAX) {
		log_warn("agent: client fd %d does not read its answers; disconnecting it", c->fd);
		c->dead = true;
		return;
	}
	if (c->outlen + len > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 1024;
		while (cap < c->outlen + len)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p) {
			c->dead = true;
			return;
		}
		c->out = p;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, line, len);
	c->outlen += len;
	conn_flush(ag, c);
}

static void conn_puts(struct agent *ag, struct agent_conn *c, const char *line)
{
	conn_put(ag, c, line, strlen(line));
}

static void conn_err(struct agent *ag, struct agent_conn *c, const char *why)
{
	char line[AGENT_LINE_MAX];
	int n = agent_format_error(line, sizeof line, "%s", why);

	if (n > 0)
		conn_put(ag, c, line, (size_t)n);
}

static void conn_master(struct agent *ag, struct agent_conn *c, const struct agent_master *m,
			bool notice)
{
	char line[AGENT_LINE_MAX];
	int n = agent_format_master(m, notice, line, sizeof line);

	if (n > 0)
		conn_put(ag, c, line, (size_t)n);
	else
		conn_err(ag, c, "internal error formatting the answer");
}

static void conn_ready(void *arg, uint32_t events);

void agent_accept(struct agent *ag)
{
	for (;;) {
		int fd = accept4(ag->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		char line[AGENT_LINE_MAX];

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (accept_failed(ag, errno))
				continue;
			return;
		}
		if (ag->nconns >= ag->max_conns) {
			int n = agent_format_error(line, sizeof line, "too many clients (%d)",
						   ag->max_conns);
			if (n > 0 && send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				log_debug("agent: refusing client: %s", strerror(errno));
			close(fd);
			continue;
		}
		struct agent_conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->ag = ag;
		c->fd = fd;
		if (evloop_watch_add(ag->lp, &c->w, fd, EPOLLIN, conn_ready, c) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = ag->conns;
		ag->conns = c;
		ag->nconns++;
		int n = agent_format_greeting(ag->cfg->node_name, ag->cfg->host_id, line, sizeof line);
		if (n > 0)
			conn_put(ag, c, line, (size_t)n);
	}
}

struct agent_store *agent_find_store(struct agent *ag, const char *what)
{
	char real[PATH_MAX];
	bool have_real = false;

	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < ag->nstores; i++) {
			struct agent_store *st = &ag->stores[i];
			struct store_pub pub;

			agent_store_snapshot(st, &pub);
			if (pass == 0) {
				const char *u = strncasecmp(what, "UUID=", 5) ? what : what + 5;
				if (!strcmp(st->cs->name, what) || !strcmp(st->cs->device, what) ||
				    (pub.located && (!strcasecmp(pub.uuid, u) ||
						     !strcmp(pub.path, what))))
					return st;
				continue;
			}
			/* second pass: another name of the same device path */
			char other[PATH_MAX];
			if (pub.located && have_real && realpath(pub.path, other) &&
			    !strcmp(other, real))
				return st;
		}
		if (what[0] != '/' || !realpath(what, real))
			break;
		have_real = true;
	}
	return NULL;
}

/* Device paths in a STORE line: csnap.conf takes paths up to PATH_MAX,
 * a line is AGENT_LINE_MAX with everything else on it.  */
#define STORE_DEV_SHOWN	320

static void send_stores(struct agent *ag, struct agent_conn *c)
{
	char line[AGENT_LINE_MAX], why[AGENT_WHY_LEN], dev[STORE_DEV_SHOWN];

	for (int i = 0; i < ag->nstores; i++) {
		struct agent_store *st = &ag->stores[i];
		struct store_pub pub;
		const char *server;
		int n;

		agent_store_snapshot(st, &pub);
		if (!st->cs->server)
			server = "no";
		else if (st->server_pid)
			server = "running";
		else
			server = "stopped";
		agent_sanitize(why, sizeof why, pub.why);
		agent_sanitize_tail(dev, sizeof dev, pub.located ? pub.path : st->cs->device);
		/* names and paths with spaces are legal in csnap.conf; keep the
		 * line one line and let why= run to its end, cut to fit (the
		 * newline always goes out: a client's line buffer is
		 * AGENT_LINE_MAX, newline included).  */
		n = snprintf(line, sizeof line - 1, "STORE name=%s uuid=%s device=%s state=%s "
			     "server=%s server_pid=%ld restarts=%u master=%s frozen_kills=%u why=%s",
			     st->cs->name, pub.located ? pub.uuid : "-", dev,
			     agent_store_state_name(pub.state), server, (long)st->server_pid,
			     st->server_restarts, st->hb_serving ? "yes" : "no", st->hb_kills,
			     why[0] ? why : "-");
		if (n < 0)
			continue;
		if ((size_t)n >= sizeof line - 1) {
			n = (int)sizeof line - 2;
			memcpy(line + n - 3, "...", 3);
		}
		line[n++] = '\n';
		line[n] = 0;
		conn_put(ag, c, line, (size_t)n);
	}
	conn_puts(ag, c, "END\n");
}

/* Answers C's pending WHERE if the store's published state allows.  */
static void answer_pending(struct agent *ag, struct agent_conn *c, const struct store_pub *pub)
{
	struct agent_master m;

	if (pub->state == STORE_JOINED && pub->done_seq < c->pending_seq)
		return;
	agent_store_answer(c->pending, pub, &m);
	c->pending = NULL;
	conn_master(ag, c, &m, false);
}

static void conn_process(struct agent *ag, struct agent_conn *c);

static void handle_request(struct agent *ag, struct agent_conn *c, const char *line, size_t len)
{
	struct agent_request req;
	struct agent_store *st;
	struct store_pub pub;
	char why[AGENT_WHY_LEN + 64];

	if (agent_parse_request(line, len, &req, why, sizeof why) < 0) {
		conn_err(ag, c, why);
		return;
	}
	switch (req.verb) {
	case AGENT_PING:
		conn_puts(ag, c, "PONG\n");
		return;
	case AGENT_QUIT:
		conn_puts(ag, c, "BYE\n");
		c->closing = true;
		conn_flush(ag, c);
		return;
	case AGENT_STORES:
		send_stores(ag, c);
		return;
	default:
		break;
	}
	st = agent_find_store(ag, req.arg);
	if (!st) {
		agent_sanitize(why, 120, req.arg);
		char msg[AGENT_WHY_LEN + 64];
		snprintf(msg, sizeof msg, "unknown store '%s' (give a uuid, a [store NAME] of "
			 "csnap.conf or its device)", why);
		conn_err(ag, c, msg);
		return;
	}
	agent_store_snapshot(st, &pub);
	if (!pub.located) {
		snprintf(why, sizeof why, "store %s is not available on this node yet: %s",
			 st->cs->name, pub.why[0] ? pub.why : agent_store_state_name(pub.state));
		conn_err(ag, c, why);
		return;
	}
	switch (req.verb) {
	case AGENT_WHERE:
		c->pending = st;
		c->pending_seq = pub.state == STORE_JOINED ? agent_store_want(st) : 0;
		answer_pending(ag, c, &pub);
		conn_arm(ag, c);
		return;
	case AGENT_WATCH: {
		struct agent_master m;
		snprintf(why, sizeof why, "OK WATCH %s\n", pub.uuid);
		conn_puts(ag, c, why);
		c->watch |= 1ULL << st->index;
		/* the current state first, so the watcher has a baseline */
		agent_store_answer(st, &pub, &m);
		conn_master(ag, c, &m, true);
		return;
	}
	case AGENT_UNWATCH:
		c->watch &= ~(1ULL << st->index);
		snprintf(why, sizeof why, "OK UNWATCH %s\n", pub.uuid);
		conn_puts(ag, c, why);
		return;
	default:
		conn_err(ag, c, "internal error: unhandled verb");
		return;
	}
}

/* Handles complete lines in the input buffer until one must wait.  */
static void conn_process(struct agent *ag, struct agent_conn *c)
{
	while (!c->dead && !c->closing && !c->pending && c->outlen < OUT_MAX / 2) {
		char *nl = memchr(c->in, '\n', c->inlen);
		if (!nl)
			break;
		size_t len = (size_t)(nl - c->in);
		char line[AGENT_LINE_MAX];

		memcpy(line, c->in, len);
		line[len] = 0;
		c->inlen -= len + 1;
		memmove(c->in, nl + 1, c->inlen);
		if (c->discarding) {
			c->discarding = false;
			char msg[64];
			snprintf(msg, sizeof msg, "line too long (max %d bytes)", AGENT_LINE_MAX - 1);
			conn_err(ag, c, msg);
			continue;
		}
		if (memchr(line, 0, len)) {
			conn_err(ag, c, "NUL byte in request");
			continue;
		}
		handle_request(ag, c, line, len);
	}
	/* After the client's EOF: answer what it sent, then close.  */
	if (c->eof && !c->pending && !c->closing && !c->dead &&
	    !memchr(c->in, '\n', c->inlen)) {
		c->closing = true;
		conn_flush(ag, c);
	}
}

static void conn_read(struct agent *ag, struct agent_conn *c)
{
	for (int rounds = 0; rounds < 16 && !c->dead; rounds++) {
		if (c->pending || c->closing || c->eof)
			return;		/* leave the rest in the socket for later */
		if (c->inlen == sizeof c->in) {
			/* a full buffer without a newline: an overlong line */
			c->discarding = true;
			c->inlen = 0;
		}
		ssize_t got = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, MSG_DONTWAIT);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (got < 0) {
			c->dead = true;
			return;
		}
		if (got == 0) {
			c->eof = true;
			conn_process(ag, c);
			if (!c->dead)
				conn_arm(ag, c);
			return;
		}
		if (c->discarding) {
			char *nl = memchr(c->in, '\n', (size_t)got);
			if (!nl) {
				c->inlen = 0;	/* still inside the long line */
				continue;
			}
			/* keep the newline: conn_process answers ERR for it */
			size_t keep = (size_t)got - (size_t)(nl - c->in);
			memmove(c->in, nl, keep);
			c->inlen = keep;
		} else {
			c->inlen += (size_t)got;
		}
		conn_process(ag, c);
		if (c->outlen)
			return;		/* wait for EPOLLOUT before reading more */
	}
}

static void conn_free(struct agent *ag, struct agent_conn *c)
{
	struct agent_conn **p;

	for (p = &ag->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	evloop_watch_del(ag->lp, &c->w);
	close(c->fd);
	free(c->out);
	free(c);
	ag->nconns--;
}

static void conn_ready(void *arg, uint32_t events)
{
	struct agent_conn *c = arg;
	struct agent *ag = c->ag;

	if (c->dead)
		return;		/* freed by agent_conns_reap() after this batch */
	if (events & EPOLLOUT)
		conn_flush(ag, c);
	if (!c->dead && !c->outlen) {
		conn_process(ag, c);	/* lines held back by back-pressure */
		if (!c->outlen)
			conn_read(ag, c);
	}
	if (!c->dead && (events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN))
		c->dead = true;
}

void agent_conns_reap(struct agent *ag)
{
	for (struct agent_conn *c = ag->conns, *next; c; c = next) {
		next = c->next;
		if (c->dead)
			conn_free(ag, c);
	}
}

void agent_conns_store_changed(struct agent *ag, struct agent_store *st,
			       const struct store_pub *pub)
{
	struct agent_master m;
	bool push = false;

	if (pub->located) {
		agent_store_answer(st, pub, &m);
		if (!st->pushed_any || !agent_master_same(&st->pushed, &m)) {
			push = true;
			st->pushed = m;
			st->pushed_any = true;
			if (m.state == AGENT_MASTER_VALID)
				log_info("store %s: master is host_id %u at %s:%u (lver %llu)",
					 st->cs->name, m.host_id, m.address, m.port,
					 (unsigned long long)m.lver);
			else
				log_info("store %s: %s: %s", st->cs->name,
					 agent_master_state_name(m.state), m.why);
		}
	}
	for (struct agent_conn *c = ag->conns, *next; c; c = next) {
		next = c->next;
		if (push && (c->watch & (1ULL << st->index)))
			conn_master(ag, c, &m, true);
		if (c->pending == st && !c->dead) {
			answer_pending(ag, c, pub);
			if (!c->pending)
				conn_process(ag, c);
			if (!c->dead)
				conn_arm(ag, c);
		}
	}
}

void agent_conns_close_all(struct agent *ag)
{
	while (ag->conns)
		conn_free(ag, ag->conns);
	if (ag->lfd >= 0) {
		evloop_watch_del(ag->lp, &ag->listen_watch);
		close(ag->lfd);
		ag->lfd = -1;
		unlink(ag->sock_path);
		fd_reserve_close(&ag->fdres);
	}
}
