/*
 * src/agent/agent_int.h - the agent's internal structures, shared by its
 * files (not a public interface).
 *
 * Threads: the main thread runs the event loop (utils/evloop.h: clients,
 * signals, server children); one thread per store opens it, joins its
 * lockspace and polls lease_find_master().  They share struct
 * agent_store's `pub` part under its mutex; a store thread wakes the main
 * thread through ag->efd.
 * Everything else in agent_store is touched by one side only (marked).
 */
#ifndef CSNAP_AGENT_INT_H
#define CSNAP_AGENT_INT_H

#include "lease/lease.h"
#include "src/agent/agent.h"
#include "src/agent/agent_proto.h"
#include "utils/config.h"
#include "utils/evloop.h"
#include "utils/clock.h"
#include "utils/fdlimit.h"
#include "utils/log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum store_state {
	STORE_OPENING = 0,	/* finding the device, reading the superblock */
	STORE_JOINING,		/* joining the lockspace */
	STORE_JOINED,		/* member: master lookups are meaningful */
	STORE_FAILED,		/* last attempt failed (why); retried later */
	STORE_LEFT,		/* left the lockspace on shutdown */
};
const char *agent_store_state_name(enum store_state s);

struct agent;

/* What a store thread publishes (copied out under the lock).  */
struct store_pub {
	enum store_state state;
	char why[AGENT_WHY_LEN];	/* of state (FAILED, JOINING) */
	bool located;			/* path, uuid and area are valid */
	char path[CONFIG_PATH_MAX];
	char uuid[AGENT_UUID_LEN];
	struct lease_area area;
	struct agent_master view;	/* current answer for WHERE/notices */
	uint64_t done_seq;		/* fresh lookups up to here are in view */
};

struct agent_store {
	struct agent *ag;
	int index;
	const struct config_store *cs;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_pub pub;		/* under lock */
	uint64_t want_seq;		/* under lock: fresh lookups asked for */
	bool stop;			/* under lock: main asks the thread to leave */

	/* main thread only */
	struct agent_master pushed;	/* last state sent to watchers */
	bool pushed_any;
	pid_t server_pid;		/* 0: not running */
	int64_t server_started_ms;
	int64_t server_restart_ms;	/* when to (re)start; 0: now if joined */
	int server_backoff_ms;
	unsigned server_fast_fails;	/* exits in a row soon after start */
	unsigned server_restarts;
	/* liveness channel of the running server (supervise.c) */
	int hb_fd;			/* -1: none */
	struct evloop_watch hb_watch;	/* of hb_fd */
	bool hb_serving;		/* said SERVING: heartbeat it */
	bool hb_served;			/* this run reached SERVING */
	uint64_t hb_seq;		/* last PING sent */
	int64_t hb_ping_ms;		/* when the unanswered PING went; 0 none */
	int64_t hb_next_ms;		/* next PING due */
	int64_t hb_stopping_ms;		/* said STOPPING at; 0 not */
	bool hb_killed;			/* this run was killed for not answering */
	unsigned hb_kills;		/* killed for not answering, in all */
	enum store_state last_state;	/* for logging transitions */
};

struct agent_conn;

struct agent {
	const struct agent_opts *o;
	const struct config *cfg;
	int poll_ms;
	struct evloop *lp;
	int efd;			/* eventfd: a store thread published */
	struct evloop_watch efd_watch;
	int lfd;			/* listening socket */
	struct evloop_watch listen_watch;
	struct evloop_signals sigs;
	struct evloop_timer wake;	/* the loop's next due work */
	char sock_path[CONFIG_PATH_MAX];
	char self_exe[CONFIG_PATH_MAX];
	int nstores;
	struct agent_store *stores;
	struct agent_conn *conns;
	int nconns;
	int max_conns;			/* below the descriptor limit */
	struct fd_reserve fdres;	/* accept on EMFILE (utils/fdlimit.h) */
	bool accept_paused;		/* listener unwatched until the loop turn ends */
	struct log_limit peer_log;	/* what clients can make us log at will */
	bool stopping;
	bool killed;			/* servers SIGKILLed at the stop timeout */
	int64_t stop_deadline_ms;
	pid_t pid;
};


/* store.c: the per-store thread.  */
int agent_store_start(struct agent_store *st);
/* Asks for a fresh master lookup; returns the sequence to wait for.  */
uint64_t agent_store_want(struct agent_store *st);
void agent_store_snapshot(struct agent_store *st, struct store_pub *out);
/* Asks the thread to leave the lockspace and end; then join it.  */
void agent_store_stop(struct agent_store *st);
void agent_store_join(struct agent_store *st, int timeout_ms);
/* The answer a client gets for a store in state PUB (VALID/NONE/CHANGING).
 * Only for located stores.  */
void agent_store_answer(const struct agent_store *st, const struct store_pub *pub,
			struct agent_master *out);

/* supervise.c: the local standby servers.  */
void agent_servers_tick(struct agent *ag);		/* start/restart as due */
void agent_servers_reaped(struct agent *ag);		/* after SIGCHLD */
int agent_servers_stop(struct agent *ag);		/* SIGTERM; returns how many */
int agent_servers_running(const struct agent *ag);
void agent_servers_kill(struct agent *ag);		/* SIGKILL the rest */
int64_t agent_servers_next_ms(const struct agent *ag);	/* next due time, -1 none */

/* heartbeat.c: liveness of the local masters.  The channel fd of a
 * store is watched by st->hb_watch while the server runs.  */
void agent_hb_tick(struct agent *ag, struct agent_store *st);	/* read, ping, kill */
int64_t agent_hb_next_ms(const struct agent *ag, const struct agent_store *st);
void agent_hb_close(struct agent_store *st);

/* conn.c: clients on the unix socket.  */
int agent_listen(struct agent *ag);
void agent_accept(struct agent *ag);
/* At the end of a loop turn: watch the listener again after accept()
 * ran out of descriptors.  */
void agent_accept_resume(struct agent *ag);
/* A store published: push notices, answer pending WHEREs.  */
void agent_conns_store_changed(struct agent *ag, struct agent_store *st,
			       const struct store_pub *pub);
/* Frees clients marked dead (after each loop turn, so a callback never
 * frees the client it is running for).  */
void agent_conns_reap(struct agent *ag);
void agent_conns_close_all(struct agent *ag);
/* Finds a store by uuid, name, configured device or resolved path.  */
struct agent_store *agent_find_store(struct agent *ag, const char *what);

#endif
