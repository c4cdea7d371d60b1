/*
 * src/agent/supervise.c - the local standby server of each store this
 * node serves (server = yes).  Started once the node has joined the
 * store's lockspace; stopped with SIGTERM (an orderly hand-over: the
 * server drains, clears the lease-owner record and releases the master
 * lease) and only after that, SIGKILL at the stop timeout.  Children get
 * PR_SET_PDEATHSIG=SIGTERM, so a server never outlives an agent that was
 * killed outright.
 *
 * Restart: a server that exits is restarted at once, so every serving
 * node keeps a standby ready however often masters are killed or hand
 * over.  Only a server failing fast in a loop (FAST_FAILS_MAX exits in a
 * row, each within FAST_EXIT_MS of its start and before it served) is
 * backed off, 1 s doubling to 30 s: a misconfigured node must not spin.
 * One the agent killed for not answering its heartbeat restarts after
 * heartbeat_timeout, so that a standby on another node takes over first.
 *
 * Frozen masters: each server gets one end of a SOCK_SEQPACKET pair
 * ($CSNAP_AGENT_FD, src/server/heartbeat.c).  Once it says SERVING, its
 * main loop must answer every PING within heartbeat_timeout (csnap.conf);
 * otherwise (stopped, deadlocked, hung) it gets SIGKILL, which frees the
 * master lease for a standby elsewhere.  Only one PING is outstanding and
 * the deadline is checked after reading the channel, so an agent that was
 * itself not scheduled for a while never kills a server that answered.
 *
 * Runs in the main thread only (fork and waitpid there; SIGCHLD comes
 * through the signalfd).  Stopping is asynchronous: agent_servers_stop()
 * sends SIGTERM, the main loop keeps serving clients (so they see the
 * hand-over) until agent_servers_running() is 0 or the stop timeout,
 * when agent_servers_kill() sends SIGKILL.
 */
#include "src/agent/agent_int.h"
#include "src/server/heartbeat.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define RESTART_MIN_MS	1000
#define RESTART_MAX_MS	30000
#define FAST_EXIT_MS	5000
#define FAST_FAILS_MAX	3
#define HB_CHILD_FD	3

/* argv and environment are built before fork: after fork in a threaded
 * process the child may only make async-signal-safe calls.  */
struct spawn {
	char *argv[12];
	char port[8];
	char path[CONFIG_PATH_MAX];
	char **envp;
	char env_store[11][CONFIG_PATH_MAX + 32];
};

static int add_env(struct spawn *sp, int *n, int slot, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int add_env(struct spawn *sp, int *n, int slot, const char *key, const char *fmt, ...)
{
	va_list ap;
	int len = snprintf(sp->env_store[slot], sizeof sp->env_store[slot], "%s=", key);

	va_start(ap, fmt);
	vsnprintf(sp->env_store[slot] + len, sizeof sp->env_store[slot] - (size_t)len, fmt, ap);
	va_end(ap);
	sp->envp[(*n)++] = sp->env_store[slot];
	return 0;
}

static bool ours(const char *e)
{
	static const char *const keys[] = { "CSNAP_STORE=", "CSNAP_STORE_DEVICE=",
		"CSNAP_STORE_UUID=", "CSNAP_CONF=", "LEASE_PATH=", "LEASE_OFFSET=",
		"LEASE_ALIGN=", "LEASE_SECTOR=", "LEASE_UUID=", CSNAP_AGENT_FD_ENV "=" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!strncmp(e, keys[i], strlen(keys[i])))
			return true;
	return false;
}

static int build_spawn(struct agent *ag, struct agent_store *st, const struct store_pub *pub,
		       struct spawn *sp)
{
	int n = 0, env_n = 0;

	for (char **e = environ; *e; e++)
		env_n++;
	sp->envp = calloc((size_t)env_n + 13, sizeof *sp->envp);
	if (!sp->envp)
		return -ENOMEM;
	for (char **e = environ; *e; e++)
		if (!ours(*e))
			sp->envp[n++] = *e;
	add_env(sp, &n, 0, "CSNAP_STORE", "%s", st->cs->name);
	add_env(sp, &n, 1, "CSNAP_STORE_DEVICE", "%s", pub->path);
	add_env(sp, &n, 2, "CSNAP_STORE_UUID", "%s", pub->uuid);
	add_env(sp, &n, 3, "CSNAP_CONF", "%s", ag->o->conf_path ? ag->o->conf_path : "");
	if (st->cs->heartbeat_ms)
		add_env(sp, &n, 9, CSNAP_AGENT_FD_ENV, "%d", HB_CHILD_FD);
	if (ag->o->server_cmd) {
		add_env(sp, &n, 4, "LEASE_PATH", "%s", pub->area.path);
		add_env(sp, &n, 5, "LEASE_OFFSET", "%llu", (unsigned long long)pub->area.offset);
		add_env(sp, &n, 6, "LEASE_ALIGN", "%u", pub->area.align);
		add_env(sp, &n, 7, "LEASE_SECTOR", "%u", pub->area.sector_size);
		add_env(sp, &n, 8, "LEASE_UUID", "%s", pub->uuid);
		sp->argv[0] = (char *)"/bin/sh";
		sp->argv[1] = (char *)"-c";
		sp->argv[2] = (char *)ag->o->server_cmd;
		sp->argv[3] = NULL;
	} else if (strncmp(st->cs->device, "UUID=", 5)) {
		sp->argv[0] = ag->self_exe;
		sp->argv[1] = (char *)"server";
		sp->argv[2] = (char *)"-c";
		sp->argv[3] = (char *)ag->o->conf_path;
		sp->argv[4] = (char *)st->cs->name;
		sp->argv[5] = NULL;
	} else {
		/* `csnap server` takes device paths, not UUID=: give it the
		 * device we found and the store's settings explicitly.  */
		snprintf(sp->port, sizeof sp->port, "%u", st->cs->server_port);
		snprintf(sp->path, sizeof sp->path, "%s", pub->path);
		sp->argv[0] = ag->self_exe;
		sp->argv[1] = (char *)"server";
		sp->argv[2] = (char *)"-c";
		sp->argv[3] = (char *)ag->o->conf_path;
		sp->argv[4] = (char *)"--origin";
		sp->argv[5] = (char *)st->cs->origin;
		sp->argv[6] = (char *)"--port";
		sp->argv[7] = sp->port;
		sp->argv[8] = (char *)"--store-full";
		sp->argv[9] = (char *)(st->cs->store_full == STORE_FULL_FAIL ? "fail" : "release");
		sp->argv[10] = sp->path;
		sp->argv[11] = NULL;
	}
	sp->envp[n] = NULL;
	return 0;
}

static void hb_ready(void *arg, uint32_t events)
{
	struct agent_store *st = arg;

	(void)events;
	agent_hb_tick(st->ag, st);
}

static void start_server(struct agent *ag, struct agent_store *st, const struct store_pub *pub)
{
	struct spawn *sp = calloc(1, sizeof *sp);
	pid_t pid = -1;
	int hb[2] = { -1, -1 };

	if (st->cs->heartbeat_ms &&
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, hb) < 0) {
		log_error("store %s: cannot start the server: socketpair: %s", st->cs->name,
			  strerror(errno));
		st->server_restart_ms = csnap_now_ms() + RESTART_MIN_MS;
		free(sp);
		return;
	}
	if (sp && build_spawn(ag, st, pub, sp) == 0)
		pid = fork();
	else
		errno = ENOMEM;
	if (pid == 0) {
		sigset_t none;
		static const char msg[] = "csnap agent: cannot execute the server\n";

		/* The server's end at a fixed number, open across exec.  */
		if (hb[1] >= 0 && (hb[1] == HB_CHILD_FD ? fcntl(hb[1], F_SETFD, 0)
					: dup2(hb[1], HB_CHILD_FD)) < 0)
			_exit(127);
		sigemptyset(&none);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != ag->pid)	/* the agent died before prctl */
			_exit(1);
		execve(sp->argv[0], sp->argv, sp->envp);
		if (write(2, msg, sizeof msg - 1) < 0)
			_exit(127);
		_exit(127);
	}
	if (hb[1] >= 0)
		close(hb[1]);
	if (pid < 0) {
		log_error("store %s: cannot start the server: %s", st->cs->name, strerror(errno));
		st->server_restart_ms = csnap_now_ms() + RESTART_MIN_MS;
		if (hb[0] >= 0)
			close(hb[0]);
	} else {
		st->server_pid = pid;
		st->server_started_ms = csnap_now_ms();
		st->hb_fd = hb[0];
		st->hb_serving = st->hb_served = st->hb_killed = false;
		st->hb_ping_ms = st->hb_stopping_ms = 0;
		if (st->hb_fd >= 0 && evloop_watch_add(ag->lp, &st->hb_watch, st->hb_fd, EPOLLIN,
						       hb_ready, st) < 0) {
			log_warn("store %s: heartbeat channel: %s; heartbeats off", st->cs->name,
				 err_get());
			agent_hb_close(st);
		}
		log_info("store %s: started standby server (pid %ld)", st->cs->name, (long)pid);
	}
	if (sp)
		free(sp->envp);
	free(sp);
}

void agent_servers_tick(struct agent *ag)
{
	int64_t now = csnap_now_ms();

	if (ag->stopping)
		return;
	for (int i = 0; i < ag->nstores; i++) {
		struct agent_store *st = &ag->stores[i];
		struct store_pub pub;

		agent_hb_tick(ag, st);
		if (!st->cs->server || st->server_pid || now < st->server_restart_ms)
			continue;
		agent_store_snapshot(st, &pub);
		if (pub.state == STORE_JOINED)
			start_server(ag, st, &pub);
	}
}

int64_t agent_servers_next_ms(const struct agent *ag)
{
	int64_t next = -1;

	for (int i = 0; i < ag->nstores; i++) {
		const struct agent_store *st = &ag->stores[i];
		int64_t hb = agent_hb_next_ms(ag, st);
		if (st->cs->server && !st->server_pid && st->server_restart_ms &&
		    (next < 0 || st->server_restart_ms < next))
			next = st->server_restart_ms;
		if (hb >= 0 && (next < 0 || hb < next))
			next = hb;
	}
	return next;
}

static struct agent_store *store_of_pid(struct agent *ag, pid_t pid)
{
	for (int i = 0; i < ag->nstores; i++)
		if (ag->stores[i].server_pid == pid)
			return &ag->stores[i];
	return NULL;
}

static void describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended (status 0x%x)", (unsigned)status);
}

void agent_servers_reaped(struct agent *ag)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct agent_store *st = store_of_pid(ag, pid);
		char how[96];

		if (!st)
			continue;
		describe(status, how, sizeof how);
		st->server_pid = 0;
		bool served = st->hb_served, killed = st->hb_killed;
		agent_hb_close(st);
		st->hb_killed = false;
		if (ag->stopping) {
			log_info("store %s: server (pid %ld) %s", st->cs->name, (long)pid, how);
			continue;
		}
		/* Restart at once unless it fails fast in a loop: a master
		 * killed or handed over must leave a standby here.  */
		int64_t now = csnap_now_ms();
		if (!served && now - st->server_started_ms < FAST_EXIT_MS)
			st->server_fast_fails++;
		else
			st->server_fast_fails = 0;
		if (st->server_fast_fails < FAST_FAILS_MAX) {
			/* Killed for not answering: this node may be the
			 * trouble (hung storage), so let a standby elsewhere
			 * take the lease first: wait as long as we gave the
			 * frozen one (1..30 s).  */
			st->server_backoff_ms = !killed ? 0 :
				st->cs->heartbeat_ms < RESTART_MIN_MS ? RESTART_MIN_MS :
				st->cs->heartbeat_ms > RESTART_MAX_MS ? RESTART_MAX_MS :
				(int)st->cs->heartbeat_ms;
		} else {
			unsigned k = st->server_fast_fails - FAST_FAILS_MAX;
			st->server_backoff_ms = k >= 5 ? RESTART_MAX_MS : RESTART_MIN_MS << k;
			if (st->server_backoff_ms > RESTART_MAX_MS)
				st->server_backoff_ms = RESTART_MAX_MS;
		}
		st->server_restart_ms = now + st->server_backoff_ms;
		st->server_restarts++;
		if (st->server_backoff_ms && !killed)
			log_warn("store %s: server (pid %ld) %s; %u fast failures in a row: restarting in %d ms",
				 st->cs->name, (long)pid, how, st->server_fast_fails, st->server_backoff_ms);
		else if (killed)
			log_warn("store %s: server (pid %ld) %s; restarting it in %d ms "
				 "(a standby elsewhere goes first)", st->cs->name, (long)pid, how,
				 st->server_backoff_ms);
		else
			log_warn("store %s: server (pid %ld) %s; restarting it now", st->cs->name,
				 (long)pid, how);
	}
}

int agent_servers_stop(struct agent *ag)
{
	int running = 0;

	for (int i = 0; i < ag->nstores; i++) {
		struct agent_store *st = &ag->stores[i];
		if (st->server_pid) {
			log_info("store %s: stopping server (pid %ld)", st->cs->name,
				 (long)st->server_pid);
			kill(st->server_pid, SIGTERM);
			running++;
		}
	}
	return running;
}

int agent_servers_running(const struct agent *ag)
{
	int running = 0;

	for (int i = 0; i < ag->nstores; i++)
		running += ag->stores[i].server_pid != 0;
	return running;
}

void agent_servers_kill(struct agent *ag)
{
	for (int i = 0; i < ag->nstores; i++) {
		struct agent_store *st = &ag->stores[i];
		if (st->server_pid) {
			log_error("store %s: server (pid %ld) did not stop in time; killing it",
				  st->cs->name, (long)st->server_pid);
			kill(st->server_pid, SIGKILL);
		}
	}
}
