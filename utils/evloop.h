/*
 * utils/evloop.h - the one event loop of every csnap daemon (server, agent,
 * export): epoll over file descriptors, monotonic timers, work deferred to
 * the end of a batch, signals through a signalfd, and a hook run after
 * every turn.
 *
 * Invariants:
 *  - Single-threaded: everything runs on the thread that calls
 *    evloop_run(); another thread wakes the loop only through a file
 *    descriptor it watches (an eventfd, a pipe).  Unless evloop_set_lock()
 *    gave it a lock: then every turn holds that lock except during its
 *    wait (epoll_wait), the caller of evloop_run()/evloop_run_once() holds
 *    it, and any thread holding it may use the loop's calls; deferring
 *    work, arming the first timer or stopping from a thread other than the
 *    one in evloop_run() wakes the wait (an eventfd), so the work is not
 *    left until the next event.
 *  - A watch (struct evloop_watch, owned and placed by the caller) is
 *    registered from evloop_watch_add() to evloop_watch_del().  Each
 *    registration gets a slot and the slot's generation is in the epoll
 *    data, so an event already fetched for a watch deleted during the same
 *    batch is skipped, even if its slot was reused meanwhile or the
 *    watch's memory was freed: a callback may close and delete any other
 *    watch of the batch.  Each slot's registration is checked
 *    (CSNAP_ASSERT) when its event is dispatched.
 *  - One turn: wait (no longer than the nearest timer; not at all if work
 *    is deferred), dispatch the batch of events (stops early once
 *    evloop_stop() was called), run the timers due at the start of the
 *    timer pass (a timer re-armed by its own callback waits for the next
 *    turn), run the deferred work in the order queued (work queued by
 *    deferred work runs in the same pass), then the after-turn hook.
 *  - Timers use csnap_now_ms() (utils/clock.h), CLOCK_MONOTONIC; the
 *    armed timers form one list sorted by due time.
 *  - No system call but epoll_wait per turn, and epoll_ctl only when a
 *    watch is added, deleted, or its event mask really changes.
 */
#ifndef CSNAP_UTILS_EVLOOP_H
#define CSNAP_UTILS_EVLOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct evloop;

typedef void (*evloop_fd_fn)(void *arg, uint32_t events);

struct evloop_watch {
	int fd;
	uint32_t events;	/* EPOLLIN / EPOLLOUT currently asked for */
	evloop_fd_fn fn;
	void *arg;
	uint32_t slot;		/* private: index in the loop's slot table */
	bool active;		/* between add and del */
};

struct evloop_timer {
	int64_t due_ms;		/* csnap_now_ms() time */
	void (*fn)(void *arg);
	void *arg;
	struct evloop_timer *next;
	uint64_t pass;		/* private: timer pass that armed it */
	bool armed;
};

struct evloop_deferred {
	void (*fn)(void *arg);
	void *arg;
	struct evloop_deferred *next;
	bool queued;
};

/* The signals of a daemon, read from a signalfd: FN is called once per
 * signal delivered.  */
struct evloop_signals {
	struct evloop_watch w;
	int fd;
	void (*fn)(void *arg, int signo);
	void *arg;
};

int evloop_create(struct evloop **out);
/* Every watch must have been deleted; pending deferred work is dropped.  */
void evloop_destroy(struct evloop *lp);

/* One pointer the loop's owner may hang on it (libev's ev_userdata).  */
void evloop_set_userdata(struct evloop *lp, void *data);
void *evloop_userdata(const struct evloop *lp);

int evloop_watch_add(struct evloop *lp, struct evloop_watch *w, int fd, uint32_t events,
		     evloop_fd_fn fn, void *arg);
/* Change the event mask; no system call when it is unchanged.  */
int evloop_watch_mod(struct evloop *lp, struct evloop_watch *w, uint32_t events);
/* Stop watching (no-op if not active).  The fd stays open: the caller's. */
void evloop_watch_del(struct evloop *lp, struct evloop_watch *w);

/* Run D->fn(D->arg) after the current batch; queuing twice is a no-op.  */
void evloop_defer(struct evloop *lp, struct evloop_deferred *d);

/* Call T->fn(T->arg) in MS milliseconds, or at DUE_MS (csnap_now_ms()
 * time); re-arming moves the timer.  */
void evloop_timer_arm(struct evloop *lp, struct evloop_timer *t, unsigned ms);
void evloop_timer_arm_at(struct evloop *lp, struct evloop_timer *t, int64_t due_ms);
void evloop_timer_cancel(struct evloop *lp, struct evloop_timer *t);

/* Blocks SIGNOS (a 0-terminated list) for the whole process, ignores
 * SIGPIPE and watches a signalfd for them.  Call before starting threads,
 * so that only the signalfd sees them.  */
int evloop_signals_add(struct evloop *lp, struct evloop_signals *s, const int *signos,
		       void (*fn)(void *arg, int signo), void *arg);
void evloop_signals_del(struct evloop *lp, struct evloop_signals *s);

/* Several loops, one lock (one loop per thread sharing one state): LOCK
 * and UNLOCK take and release it; each turn releases it for its wait.
 * Adds an eventfd watch (the wake) until evloop_destroy().  Call once,
 * before evloop_run().  */
int evloop_set_lock(struct evloop *lp, void (*lock)(void *arg), void (*unlock)(void *arg),
		    void *arg);

/* FN(ARG) after every turn (NULL: none): the owner's group work.  */
void evloop_set_after(struct evloop *lp, void (*fn)(void *arg), void *arg);

/* One turn; MAX_WAIT_MS bounds the wait (-1: until an event or timer).
 * Returns how many events epoll reported, or -errno if epoll_wait failed
 * (EINTR is not a failure).  */
int evloop_run_once(struct evloop *lp, int max_wait_ms);
/* Turns until evloop_stop() (returns 0) or a failure (-errno).  */
int evloop_run(struct evloop *lp);
void evloop_stop(struct evloop *lp);
bool evloop_stopping(const struct evloop *lp);

#endif
