/*
 * src/agent/supervise.c - the local standby server of each store this
 * node serves (server = yes).  Started once the node has joined the
 * store's lockspace; restarted with backoff (1 s doubling to 30 s, reset
 * after 60 s of good running) when it exits; stopped with SIGTERM (an
 * orderly hand-over: the server drains, clears the lease-owner record and
 * releases the master lease) and only after that, SIGKILL at the stop
 * timeout.  Children get PR_SET_PDEATHSIG=SIGTERM, so a server never
 * outlives an agent that was killed outright.
 *
 * Runs in the main thread only (fork and waitpid there; SIGCHLD comes
 * through the signalfd).  Stopping is asynchronous: agent_servers_stop()
 * sends SIGTERM, the main loop keeps serving clients (so they see the
 * hand-over) until agent_servers_running() is 0 or the stop timeout,
 * when agent_servers_kill() sends SIGKILL.
 */
#include "src/agent/agent_int.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define RESTART_MIN_MS	1000
#define RESTART_MAX_MS	30000
#define GOOD_RUN_MS	60000

/* argv and environment are built before fork: after fork in a threaded
 * process the child may only make async-signal-safe calls.  */
struct spawn {
	char *argv[12];
	char port[8];
	char path[CONFIG_PATH_MAX];
	char **envp;
	char env_store[10][CONFIG_PATH_MAX + 32];
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
		"LEASE_ALIGN=", "LEASE_SECTOR=", "LEASE_UUID=" };
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
	sp->envp = calloc((size_t)env_n + 12, sizeof *sp->envp);
	if (!sp->envp)
		return -ENOMEM;
	for (char **e = environ; *e; e++)
		if (!ours(*e))
			sp->envp[n++] = *e;
	add_env(sp, &n, 0, "CSNAP_STORE", "%s", st->cs->name);
	add_env(sp, &n, 1, "CSNAP_STORE_DEVICE", "%s", pub->path);
	add_env(sp, &n, 2, "CSNAP_STORE_UUID", "%s", pub->uuid);
	add_env(sp, &n, 3, "CSNAP_CONF", "%s", ag->o->conf_path ? ag->o->conf_path : "");
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

static void start_server(struct agent *ag, struct agent_store *st, const struct store_pub *pub)
{
	struct spawn *sp = calloc(1, sizeof *sp);
	pid_t pid = -1;

	if (sp && build_spawn(ag, st, pub, sp) == 0)
		pid = fork();
	else
		errno = ENOMEM;
	if (pid == 0) {
		sigset_t none;
		static const char msg[] = "csnap agent: cannot execute the server\n";

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
	if (pid < 0) {
		log_error("store %s: cannot start the server: %s", st->cs->name, strerror(errno));
		st->server_restart_ms = csnap_now_ms() + RESTART_MIN_MS;
	} else {
		st->server_pid = pid;
		st->server_started_ms = csnap_now_ms();
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
		if (st->cs->server && !st->server_pid && st->server_restart_ms &&
		    (next < 0 || st->server_restart_ms < next))
			next = st->server_restart_ms;
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
		if (ag->stopping) {
			log_info("store %s: server (pid %ld) %s", st->cs->name, (long)pid, how);
			continue;
		}
		int64_t now = csnap_now_ms();
		if (now - st->server_started_ms >= GOOD_RUN_MS || !st->server_backoff_ms)
			st->server_backoff_ms = RESTART_MIN_MS;
		else if (st->server_backoff_ms < RESTART_MAX_MS)
			st->server_backoff_ms = st->server_backoff_ms * 2 > RESTART_MAX_MS ?
						RESTART_MAX_MS : st->server_backoff_ms * 2;
		st->server_restart_ms = now + st->server_backoff_ms;
		st->server_restarts++;
		log_warn("store %s: server (pid %ld) %s; restarting in %d ms", st->cs->name,
			 (long)pid, how, st->server_backoff_ms);
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
