/*
 * src/server/heartbeat.c - the server's end of the liveness channel its
 * node's agent passes it (a SOCK_SEQPACKET socket, fd in $CSNAP_AGENT_FD).
 *
 * Messages (one per packet, ASCII): server -> agent "SERVING <epoch>" once
 * the master's main loop runs, "PONG <n>" for each "PING <n>", "STOPPING"
 * when the loop ended for an orderly hand-over.  PINGs are answered only
 * from the main loop (hb_event is the channel's evloop callback),
 * so a PONG proves the loop turns: a stopped, deadlocked or I/O-hung master
 * does not answer and its agent kills it, which frees the master lease.
 * Start-up work that may legitimately take long (journal replay) happens
 * before SERVING, when the agent does not heartbeat.  Long synchronous
 * work inside the loop (a usage walk over millions of exceptions, a big
 * commit) answers too, through the store engine's progress pulses
 * (utils/progress.h): the master is busy, not frozen.
 *
 * Invariant: all writes are non-blocking and best effort; the agent's end
 * going away (agent restarted) only disables the channel, never stops
 * the server.
 */
#include "src/server/heartbeat.h"

#include "utils/err.h"
#include "utils/log.h"
#include "utils/progress.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int hb_fd = -1;
static struct evloop *hb_loop;
static struct evloop_watch hb_watch;	/* active from SERVING on */

static void hb_close(void)
{
	if (hb_fd < 0)
		return;
	evloop_watch_del(hb_loop, &hb_watch);
	csnap_progress_hook = NULL;
	close(hb_fd);
	hb_fd = -1;
}

static void hb_send(const char *msg)
{
	if (hb_fd >= 0 && send(hb_fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
	    errno != EAGAIN && errno != EWOULDBLOCK) {
		log_warn("agent heartbeat channel: %s; heartbeats off", strerror(errno));
		hb_close();
	}
}

void hb_init(struct evloop *lp)
{
	const char *env = getenv(CSNAP_AGENT_FD_ENV);
	char v[24], *end;
	long fd;
	int type = 0;
	socklen_t tl = sizeof type;

	if (!env || !*env)
		return;
	snprintf(v, sizeof v, "%s", env);
	unsetenv(CSNAP_AGENT_FD_ENV);	/* not passed on to anything we run */
	fd = strtol(v, &end, 10);
	/* Only a SOCK_SEQPACKET socket is ours: never write into some other
	 * inherited fd that happens to carry that number.  */
	if (*end || fd < 3 || fd > 1023 ||
	    getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET) {
		log_warn("%s=%s is not a heartbeat socket: ignored", CSNAP_AGENT_FD_ENV, v);
		return;
	}
	hb_fd = (int)fd;
	hb_loop = lp;
	fcntl(hb_fd, F_SETFD, FD_CLOEXEC);
	fcntl(hb_fd, F_SETFL, fcntl(hb_fd, F_GETFL) | O_NONBLOCK);
}

static void hb_ready(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
	hb_event();
}

void hb_serving(uint64_t epoch)
{
	char msg[48];

	/* Polled only from now on: before, nobody answers PINGs, and an
	 * agent that went away (EOF) must not wake the standby loop.  */
	if (hb_fd >= 0 && !hb_watch.active) {
		if (evloop_watch_add(hb_loop, &hb_watch, hb_fd, EPOLLIN, hb_ready, NULL) < 0) {
			log_warn("agent heartbeat channel: %s", err_get());
			hb_close();
			return;
		}
		csnap_progress_hook = hb_event;	/* also from long work */
	}
	snprintf(msg, sizeof msg, "SERVING %llu", (unsigned long long)epoch);
	hb_send(msg);
}

void hb_stopping(void)
{
	hb_send("STOPPING");
}

void hb_detach(void)
{
	evloop_watch_del(hb_loop, &hb_watch);
}

void hb_event(void)
{
	char buf[64], reply[80];
	ssize_t n;

	while (hb_fd >= 0 && (n = recv(hb_fd, buf, sizeof buf - 1, MSG_DONTWAIT)) != 0) {
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			break;
		}
		buf[n] = 0;
		if (!strncmp(buf, "PING ", 5)) {
			snprintf(reply, sizeof reply, "PONG %s", buf + 5);
			hb_send(reply);
		}
	}
	/* EOF or error: the agent is gone; the server goes on without it. */
	hb_close();
}
