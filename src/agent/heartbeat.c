/*
 * src/agent/heartbeat.c - the agent's end of each local server's liveness
 * channel (the server's end is src/server/heartbeat.c; supervise.c makes
 * the socket pair at spawn).
 *
 * A server that said SERVING is a master whose main loop runs; from then
 * on the agent keeps exactly one PING outstanding, a new one every
 * interval (heartbeat_timeout / 5, 100..1000 ms) after the last PONG.
 * If a PING stays unanswered for heartbeat_timeout the server is frozen
 * (SIGSTOP, deadlock, hung I/O in the loop): SIGKILL it, so sanlock frees
 * the master lease and a standby on another node takes over, as after a
 * crash.  The channel is always read before the deadline is checked: an
 * agent that was not scheduled for a while sees the PONG that came
 * meanwhile and kills nobody.  After STOPPING (orderly hand-over, the
 * loop has ended) there are no PINGs; a server that then does not exit
 * within the stop timeout is killed too, as when the agent stops.
 */
#include "src/agent/agent_int.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int64_t interval_ms(const struct agent_store *st)
{
	int64_t i = st->cs->heartbeat_ms / 5;
	return i < 100 ? 100 : i > 1000 ? 1000 : i;
}

void agent_hb_close(struct agent_store *st)
{
	if (st->hb_fd >= 0) {
		evloop_watch_del(st->ag->lp, &st->hb_watch);
		close(st->hb_fd);
	}
	st->hb_fd = -1;
	st->hb_serving = false;
	st->hb_ping_ms = 0;
	st->hb_stopping_ms = 0;
}

static void hb_read(struct agent_store *st, int64_t now)
{
	char buf[80];
	ssize_t n;

	while (st->hb_fd >= 0 && (n = recv(st->hb_fd, buf, sizeof buf - 1, MSG_DONTWAIT)) != 0) {
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			break;
		}
		buf[n] = 0;
		if (!strncmp(buf, "SERVING", 7)) {
			log_info("store %s: server (pid %ld) is master%s; heartbeat every %" PRId64
				 " ms, killed after %u ms without an answer", st->cs->name,
				 (long)st->server_pid, buf + 7, interval_ms(st), st->cs->heartbeat_ms);
			st->hb_serving = st->hb_served = true;
			st->hb_ping_ms = 0;
			st->hb_next_ms = now;
		} else if (!strncmp(buf, "PONG ", 5)) {
			if (st->hb_ping_ms && strtoull(buf + 5, NULL, 10) == st->hb_seq) {
				st->hb_ping_ms = 0;
				st->hb_next_ms = now + interval_ms(st);
			}
		} else if (!strcmp(buf, "STOPPING")) {
			st->hb_serving = false;
			st->hb_ping_ms = 0;
			st->hb_stopping_ms = now;
		}
	}
	/* EOF: the server closed its end (it is exiting); SIGCHLD follows. */
	int64_t stopping = st->hb_stopping_ms;
	agent_hb_close(st);
	st->hb_stopping_ms = stopping;
}

static void hb_kill(struct agent_store *st, const char *why)
{
	log_error("store %s: server (pid %ld) %s: killing it so that another node can take over",
		  st->cs->name, (long)st->server_pid, why);
	kill(st->server_pid, SIGKILL);
	st->hb_kills++;
	st->hb_killed = true;
	agent_hb_close(st);
}

void agent_hb_tick(struct agent *ag, struct agent_store *st)
{
	int64_t now = csnap_now_ms();
	char why[96];

	if (!st->server_pid || ag->stopping)
		return;
	hb_read(st, now);
	if (st->hb_stopping_ms && now - st->hb_stopping_ms >= ag->o->stop_timeout_ms) {
		snprintf(why, sizeof why, "has not exited %d ms after its hand-over began",
			 ag->o->stop_timeout_ms);
		st->hb_stopping_ms = 0;
		hb_kill(st, why);
		return;
	}
	if (!st->hb_serving || st->hb_fd < 0)
		return;
	if (st->hb_ping_ms) {
		if (now - st->hb_ping_ms >= st->cs->heartbeat_ms) {
			snprintf(why, sizeof why, "is master but its main loop has not answered for %" PRId64
				 " ms (frozen?)", now - st->hb_ping_ms);
			hb_kill(st, why);
		}
		return;
	}
	if (now < st->hb_next_ms)
		return;
	char ping[32];
	int len = snprintf(ping, sizeof ping, "PING %" PRIu64, ++st->hb_seq);
	if (send(st->hb_fd, ping, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			agent_hb_close(st);	/* the server is exiting */
		return;
	}
	st->hb_ping_ms = now;
}

int64_t agent_hb_next_ms(const struct agent *ag, const struct agent_store *st)
{
	if (!st->server_pid || st->hb_fd < 0)
		return st->hb_stopping_ms ? st->hb_stopping_ms + ag->o->stop_timeout_ms : -1;
	if (st->hb_stopping_ms)
		return st->hb_stopping_ms + ag->o->stop_timeout_ms;
	if (!st->hb_serving)
		return -1;
	return st->hb_ping_ms ? st->hb_ping_ms + st->cs->heartbeat_ms : st->hb_next_ms;
}
