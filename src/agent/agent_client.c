/*
 * src/agent/agent_client.c - client side of the agent protocol (see
 * agent_client.h).  One blocking unix socket; waits are poll() with a
 * deadline.  Notices that arrive while a reply is awaited are queued
 * (bounded: when full the oldest is dropped, which loses nothing a client
 * needs because every notice carries the complete current state).
 */
#include "src/agent/agent_client.h"
#include "utils/err.h"
#include "utils/clock.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NOTICE_QUEUE 64

struct agent_client {
	int fd;
	char node[AGENT_NAME_LEN];
	unsigned host_id;
	char in[2 * AGENT_LINE_MAX];
	size_t inlen;
	struct agent_master q[NOTICE_QUEUE];
	unsigned qhead, qlen;
};

int agent_socket_path(const char *run_dir, char *out, size_t outlen)
{
	struct sockaddr_un sun;
	int n = snprintf(out, outlen, "%s/agent.sock", run_dir);

	if (n < 0 || (size_t)n >= outlen || (size_t)n >= sizeof sun.sun_path)
		return err_set(ENAMETOOLONG, "agent socket path too long: %s/agent.sock", run_dir);
	return 0;
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : csnap_now_ms() + timeout_ms;
}

/* Takes one complete line out of the input buffer, if there is one. */
static int take_line(struct agent_client *c, char *line, size_t len)
{
	char *nl = memchr(c->in, '\n', c->inlen);
	size_t n;

	if (!nl) {
		if (c->inlen >= AGENT_LINE_MAX)
			return err_set(EPROTO, "agent sent a line longer than %d bytes",
				       AGENT_LINE_MAX);
		return 0;
	}
	n = (size_t)(nl - c->in);
	if (n >= len)
		return err_set(EPROTO, "agent line too long for the caller's buffer");
	memcpy(line, c->in, n);
	if (n && line[n - 1] == '\r')
		n--;
	line[n] = 0;
	c->inlen -= (size_t)(nl + 1 - c->in);
	memmove(c->in, nl + 1, c->inlen);
	return 1;
}

/* Next raw line, waiting until DEADLINE (-1 forever).  */
static int raw_line(struct agent_client *c, char *line, size_t len, int64_t deadline)
{
	for (;;) {
		int r = take_line(c, line, len);
		if (r)
			return r < 0 ? r : 0;
		if (c->fd < 0)
			return err_set(ENOTCONN, "connection to the agent is closed");
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - csnap_now_ms();
			wait = left > 0 ? (int)left : 0;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		r = poll(&p, 1, wait);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(errno, "poll on agent socket: %s", strerror(errno));
		if (r == 0)
			return err_set(ETIMEDOUT, "no answer from the agent in time");
		ssize_t got = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0) {
			close(c->fd);
			c->fd = -1;
			return err_set(ENOTCONN, "the agent closed the connection");
		}
		c->inlen += (size_t)got;
	}
}

static void queue_notice(struct agent_client *c, const struct agent_master *m)
{
	if (c->qlen == NOTICE_QUEUE) {
		c->qhead = (c->qhead + 1) % NOTICE_QUEUE;
		c->qlen--;
	}
	c->q[(c->qhead + c->qlen) % NOTICE_QUEUE] = *m;
	c->qlen++;
}

/* Next line that is not a notice; notices are queued.  */
static int reply_line(struct agent_client *c, char *line, size_t len, int64_t deadline)
{
	for (;;) {
		int r = raw_line(c, line, len, deadline);
		if (r < 0)
			return r;
		if (strncmp(line, "NOTICE ", 7))
			return 0;
		struct agent_master m;
		bool notice;
		if (agent_parse_master(line, &m, &notice) == 0)
			queue_notice(c, &m);
	}
}

int agent_client_read_line(struct agent_client *c, char *line, size_t len, int timeout_ms)
{
	return reply_line(c, line, len, deadline_of(timeout_ms));
}

static int send_line(struct agent_client *c, const char *line)
{
	char buf[AGENT_LINE_MAX];
	int n = snprintf(buf, sizeof buf, "%s\n", line);

	if (n < 0 || (size_t)n >= sizeof buf)
		return err_set(EINVAL, "request longer than %d bytes", AGENT_LINE_MAX - 1);
	if (strchr(line, '\n'))
		return err_set(EINVAL, "request contains a newline");
	if (c->fd < 0)
		return err_set(ENOTCONN, "connection to the agent is closed");
	for (int off = 0; off < n;) {
		ssize_t w = send(c->fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			close(c->fd);
			c->fd = -1;
			return err_set(ENOTCONN, "sending to the agent: %s", strerror(e));
		}
		off += (int)w;
	}
	return 0;
}

int agent_client_connect(const char *socket_path, int timeout_ms, struct agent_client **out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct agent_client *c;
	char line[AGENT_LINE_MAX];
	int r;

	*out = NULL;
	if (strlen(socket_path) >= sizeof sun.sun_path)
		return err_set(ENAMETOOLONG, "agent socket path too long: %s", socket_path);
	memcpy(sun.sun_path, socket_path, strlen(socket_path) + 1);
	c = calloc(1, sizeof *c);
	if (!c)
		return err_set(ENOMEM, "out of memory");
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = err_set(errno, "socket: %s", strerror(errno));
		free(c);
		return r;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		int e = errno;
		r = err_set(e, "cannot connect to the csnap agent at %s: %s%s", socket_path,
			    strerror(e), e == ENOENT || e == ECONNREFUSED ?
			    " (is `csnap agent` running on this node?)" : "");
		agent_client_close(c);
		return r;
	}
	r = raw_line(c, line, sizeof line, deadline_of(timeout_ms));
	if (r == 0) {
		r = agent_parse_greeting(line, c->node, &c->host_id);
		if (r == -EPROTONOSUPPORT)
			err_set(EPROTONOSUPPORT, "agent at %s speaks another protocol version: %.60s",
				socket_path, line);
		else if (r < 0)
			err_set(EPROTO, "%s is not a csnap agent (greeting: %.60s)", socket_path, line);
	} else {
		err_prefix(-r, "waiting for the agent's greeting");
	}
	if (r < 0) {
		agent_client_close(c);
		return r;
	}
	*out = c;
	return 0;
}

void agent_client_close(struct agent_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

int agent_client_fd(const struct agent_client *c) { return c->fd; }
const char *agent_client_node(const struct agent_client *c) { return c->node; }
unsigned agent_client_host_id(const struct agent_client *c) { return c->host_id; }

int agent_client_request(struct agent_client *c, const char *line, char *reply,
			 size_t replylen, int timeout_ms)
{
	int r = send_line(c, line);

	if (r < 0)
		return r;
	return reply_line(c, reply, replylen, deadline_of(timeout_ms));
}

/* An ERR reply as an errno: unknown stores are -ENOENT.  */
static int remote_error(const char *why)
{
	int e = strstr(why, "unknown store") ? ENOENT : EREMOTEIO;

	return err_set(e, "agent: %s", why);
}

int agent_client_where(struct agent_client *c, const char *store, struct agent_master *out,
		       int timeout_ms)
{
	char line[AGENT_LINE_MAX], req[AGENT_LINE_MAX];
	int r;

	if (snprintf(req, sizeof req, "WHERE %s", store) >= (int)sizeof req)
		return err_set(EINVAL, "store name too long");
	r = agent_client_request(c, req, line, sizeof line, timeout_ms);
	if (r < 0)
		return r;
	r = agent_parse_master(line, out, NULL);
	if (r == -EREMOTEIO)
		return remote_error(out->why);
	if (r < 0)
		return err_set(EPROTO, "unexpected answer from the agent: %.80s", line);
	return 0;
}

static int watch_verb(struct agent_client *c, const char *verb, const char *store,
		      char uuid_out[AGENT_UUID_LEN], int timeout_ms)
{
	char line[AGENT_LINE_MAX], req[AGENT_LINE_MAX], expect[16];
	int r;

	if (snprintf(req, sizeof req, "%s %s", verb, store) >= (int)sizeof req)
		return err_set(EINVAL, "store name too long");
	r = agent_client_request(c, req, line, sizeof line, timeout_ms);
	if (r < 0)
		return r;
	if (!strncmp(line, "ERR ", 4))
		return remote_error(line + 4);
	snprintf(expect, sizeof expect, "OK %s ", verb);
	if (strncmp(line, expect, strlen(expect)))
		return err_set(EPROTO, "unexpected answer from the agent: %.80s", line);
	if (uuid_out)
		agent_sanitize(uuid_out, AGENT_UUID_LEN, line + strlen(expect));
	return 0;
}

int agent_client_watch(struct agent_client *c, const char *store,
		       char uuid_out[AGENT_UUID_LEN], int timeout_ms)
{
	return watch_verb(c, "WATCH", store, uuid_out, timeout_ms);
}

int agent_client_unwatch(struct agent_client *c, const char *store, int timeout_ms)
{
	return watch_verb(c, "UNWATCH", store, NULL, timeout_ms);
}

int agent_client_next_notice(struct agent_client *c, struct agent_master *out, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	char line[AGENT_LINE_MAX];

	for (;;) {
		if (c->qlen) {
			*out = c->q[c->qhead];
			c->qhead = (c->qhead + 1) % NOTICE_QUEUE;
			c->qlen--;
			return 0;
		}
		int r = raw_line(c, line, sizeof line, deadline);
		if (r < 0)
			return r;
		bool notice;
		struct agent_master m;
		/* Anything but a notice here is a stray reply: skip it.  */
		if (agent_parse_master(line, &m, &notice) == 0 && notice)
			queue_notice(c, &m);
	}
}
