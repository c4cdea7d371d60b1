/*
 * src/agent/agent.c - the agent's main thread: start-up (node lock,
 * socket, one thread per store), the event loop (clients, signals, store
 * threads' news, server children) and the orderly stop.
 *
 * Stop order (SIGTERM/SIGINT), so that a master on this node hands over
 * cleanly and nobody is fenced needlessly:
 *   1. SIGTERM the local servers; keep serving clients (they see the
 *      hand-over) until the servers exited (SIGKILL at the stop timeout);
 *   2. the store threads leave their lockspaces (only now: a server still
 *      holding the master lease would be killed by sanlock otherwise);
 *   3. close the clients, remove the socket, drop the node lock.
 */
#include "src/agent/agent_int.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void begin_stop(struct agent *ag, int signo)
{
	if (ag->stopping) {
		log_info("agent: %s again; still stopping", strsignal(signo));
		return;
	}
	ag->stopping = true;
	ag->stop_deadline_ms = csnap_now_ms() + ag->o->stop_timeout_ms;
	log_info("agent: %s: stopping (servers first, then leaving lockspaces)",
		 strsignal(signo));
	agent_servers_stop(ag);
}

static void on_signal(void *arg, int signo)
{
	struct agent *ag = arg;

	switch (signo) {
	case SIGTERM:
	case SIGINT:
		begin_stop(ag, signo);
		break;
	case SIGCHLD:
		agent_servers_reaped(ag);
		break;
	case SIGHUP:
		log_info("agent: SIGHUP ignored (restart the agent to reload csnap.conf)");
		break;
	}
}

static void on_stores(void *arg, uint32_t events)
{
	struct agent *ag = arg;
	uint64_t v;

	(void)events;
	if (read(ag->efd, &v, sizeof v) < 0 && errno != EAGAIN)
		log_warn("agent: eventfd: %s", strerror(errno));
	for (int i = 0; i < ag->nstores; i++) {
		struct agent_store *st = &ag->stores[i];
		struct store_pub pub;

		agent_store_snapshot(st, &pub);
		if (pub.state != st->last_state) {
			log_debug("store %s: %s -> %s", st->cs->name,
				  agent_store_state_name(st->last_state),
				  agent_store_state_name(pub.state));
			st->last_state = pub.state;
		}
		agent_conns_store_changed(ag, st, &pub);
	}
}

static int setup(struct agent *ag)
{
	/* Blocked before any thread starts, so only the signalfd sees them. */
	static const int signos[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, 0 };
	ssize_t n;
	int r;

	if ((r = evloop_create(&ag->lp)) < 0 ||
	    (r = evloop_signals_add(ag->lp, &ag->sigs, signos, on_signal, ag)) < 0)
		return r;
	ag->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ag->efd < 0)
		return err_set(errno, "eventfd: %s", strerror(errno));
	if ((r = evloop_watch_add(ag->lp, &ag->efd_watch, ag->efd, EPOLLIN, on_stores, ag)) < 0)
		return r;
	n = readlink("/proc/self/exe", ag->self_exe, sizeof ag->self_exe - 1);
	if (n <= 0)
		return err_set(errno, "cannot find my own executable: %s", strerror(errno));
	ag->self_exe[n] = 0;
	return 0;
}

/* When the loop must look again at the latest: a heartbeat (which also
 * bounds any missed wake-up), sooner for a due server start or check,
 * every 50 ms while stopping.  */
static int64_t next_turn_ms(const struct agent *ag)
{
	int64_t now = csnap_now_ms(), next = agent_servers_next_ms(ag);
	int64_t t = ag->stopping ? 50 : 1000;

	if (next >= 0 && next - now < t)
		t = next > now ? next - now : 0;
	return now + t;
}

static void on_wake(void *arg)
{
	(void)arg;	/* the turn's work is in after_turn() */
}

/* After every turn: the work that does not wait for an event.  */
static void after_turn(void *arg)
{
	struct agent *ag = arg;

	agent_conns_reap(ag);
	agent_accept_resume(ag);
	agent_servers_reaped(ag);	/* also catches a SIGCHLD we coalesced */
	agent_servers_tick(ag);
	if (ag->stopping) {
		if (!agent_servers_running(ag)) {
			evloop_stop(ag->lp);
			return;
		}
		if (!ag->killed && csnap_now_ms() >= ag->stop_deadline_ms) {
			agent_servers_kill(ag);
			ag->killed = true;
		}
	}
	evloop_timer_arm_at(ag->lp, &ag->wake, next_turn_ms(ag));
}

static int run_loop(struct agent *ag)
{
	ag->wake = (struct evloop_timer){ .fn = on_wake, .arg = ag };
	evloop_timer_arm_at(ag->lp, &ag->wake, next_turn_ms(ag));
	evloop_set_after(ag->lp, after_turn, ag);
	return evloop_run(ag->lp);
}

int agent_run(const struct agent_opts *o)
{
	struct agent ag = { .o = o, .cfg = o->cfg, .efd = -1, .lfd = -1,
			    .fdres = { .spare = -1 } };
	struct agent_opts oo = *o;
	int lockfd, r;

	if (!oo.poll_ms)
		oo.poll_ms = 250;
	if (!oo.stop_timeout_ms)
		oo.stop_timeout_ms = 20000;	/* server drain is 10 s; systemd gives 30 s */
	ag.o = &oo;
	ag.poll_ms = oo.poll_ms;
	ag.pid = getpid();
	lockfd = agent_lock(o->cfg->run_dir);
	if (lockfd < 0)
		return lockfd;
	r = setup(&ag);
	if (r == 0)
		r = agent_listen(&ag);
	if (r < 0)
		goto out;
	ag.nstores = o->cfg->nstores;
	ag.stores = calloc((size_t)(ag.nstores ? ag.nstores : 1), sizeof *ag.stores);
	if (!ag.stores) {
		r = err_set(ENOMEM, "out of memory");
		goto out;
	}
	if (!ag.nstores)
		log_warn("agent: no [store NAME] sections in the configuration");
	log_info("agent: node %s host_id %u, %d store(s), socket %s", o->cfg->node_name,
		 o->cfg->host_id, ag.nstores, ag.sock_path);
	for (int i = 0; i < ag.nstores; i++) {
		struct agent_store *st = &ag.stores[i];
		st->ag = &ag;
		st->index = i;
		st->cs = &o->cfg->stores[i];
		st->hb_fd = -1;
		r = agent_store_start(st);
		if (r < 0) {
			log_error("%s", err_get());
			begin_stop(&ag, SIGTERM);
			break;
		}
	}
	if (!ag.stopping && run_loop(&ag) < 0)
		log_error("agent: %s", err_get());
	for (int i = 0; i < ag.nstores; i++)
		agent_store_stop(&ag.stores[i]);
	for (int i = 0; i < ag.nstores; i++)
		agent_store_join(&ag.stores[i], 10000 + 4000 * (int)o->cfg->io_timeout);
	r = 0;
	log_info("agent: stopped");
out:
	agent_conns_close_all(&ag);
	for (int i = 0; ag.stores && i < ag.nstores; i++)
		if (ag.stores[i].thread_started) {
			/* A stuck store thread still uses our memory and fds:
			 * leave without freeing anything, and say it was not clean. */
			log_error("agent: exiting with a store thread stuck");
			_exit(1);
		}
	for (int i = 0; ag.stores && i < ag.nstores; i++)
		evloop_watch_del(ag.lp, &ag.stores[i].hb_watch);
	free(ag.stores);
	if (ag.lp) {
		evloop_signals_del(ag.lp, &ag.sigs);
		evloop_watch_del(ag.lp, &ag.efd_watch);
		evloop_timer_cancel(ag.lp, &ag.wake);
		evloop_destroy(ag.lp);
	}
	if (ag.efd >= 0)
		close(ag.efd);
	close(lockfd);
	return r;
}
