/*
 * src/export/loop.h - the export daemon's single-threaded event loop:
 * epoll over sockets, the async ioengine's eventfd, timers, and work
 * deferred to the end of the current batch of events.
 *
 * Invariants:
 *  - Everything runs on the thread that calls loop_run(); nothing here is
 *    thread-safe and nothing needs to be.
 *  - A struct loop_watch registered with loop_watch_add() stays valid until
 *    loop_watch_del(); owners that free themselves from inside a callback
 *    must defer the free with loop_defer() so a later event of the same
 *    batch never touches freed memory (loop_watch_del() marks the watch so
 *    pending events for it in the current batch are skipped).
 *  - Deferred work runs after the current batch, in the order queued, and
 *    before the queued I/O is submitted and the loop sleeps again.
 */
#ifndef CSNAP_EXPORT_LOOP_H
#define CSNAP_EXPORT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct io_engine;

typedef void (*loop_fd_fn)(void *arg, uint32_t events);

struct loop_watch {
	int fd;
	uint32_t events;	/* EPOLLIN / EPOLLOUT currently asked for */
	loop_fd_fn fn;
	void *arg;
	bool active;
};

struct loop_deferred {
	void (*fn)(void *arg);
	void *arg;
	struct loop_deferred *next;
	bool queued;
};

struct loop_timer {
	uint64_t due_ms;	/* CLOCK_MONOTONIC milliseconds */
	void (*fn)(void *arg);
	void *arg;
	struct loop_timer *next;
	bool armed;
};

/* Creates a loop with an async ioengine of the given queue depth.  */
int loop_create(unsigned io_depth, struct loop **out);
void loop_destroy(struct loop *lp);
struct io_engine *loop_io(struct loop *lp);

int loop_watch_add(struct loop *lp, struct loop_watch *w, int fd, uint32_t events,
		   loop_fd_fn fn, void *arg);
/* Change the event mask; no system call when it is unchanged.  */
int loop_watch_mod(struct loop *lp, struct loop_watch *w, uint32_t events);
void loop_watch_del(struct loop *lp, struct loop_watch *w);

/* Run D->fn(D->arg) after the current batch; queuing twice is a no-op.  */
void loop_defer(struct loop *lp, struct loop_deferred *d);

/* Call T->fn after ms milliseconds (re-arming moves it).  */
void loop_timer_arm(struct loop *lp, struct loop_timer *t, unsigned ms);
void loop_timer_cancel(struct loop *lp, struct loop_timer *t);
uint64_t loop_now_ms(void);

/* Runs until loop_stop() or a fatal error (returns -errno).  */
int loop_run(struct loop *lp);
/* One iteration (wait at most MAX_WAIT_MS, -1: until the next timer or
 * event; then dispatch, timers, deferred work, I/O submission).  For a
 * caller that drives the loop itself: the NBD fuzz target.  */
int loop_run_once(struct loop *lp, int max_wait_ms);
void loop_stop(struct loop *lp);
bool loop_stopping(const struct loop *lp);

#endif
