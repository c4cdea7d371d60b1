/*
 * src/export/loop.c - epoll event loop with the async ioengine plugged in
 * through its eventfd.  See loop.h for the invariants.
 *
 * One iteration: wait for events (or the nearest timer), dispatch them,
 * reap I/O completions, run expired timers, run deferred work, then submit
 * every I/O queued during the iteration as one batch.
 */
#include "src/export/loop.h"

#include "ioengine/ioengine.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 64

struct loop {
	int epfd;
	struct io_engine *io;
	struct loop_watch io_watch;
	struct loop_deferred *defer_head, **defer_tail;
	struct loop_timer *timers;	/* sorted by due_ms */
	bool stop;
	/* Watches deleted during the current batch, so their pending events
	 * are skipped: compared by pointer.  */
	struct loop_watch *deleted[LOOP_MAX_EVENTS];
	unsigned ndeleted;
	bool in_batch;
};

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void io_ready(void *arg, uint32_t events)
{
	struct loop *lp = arg;
	int rc;

	(void)events;
	rc = io_engine_reap(lp->io, 0);
	if (rc < 0)
		log_error("export: reaping I/O completions: %s", err_get());
}

int loop_create(unsigned io_depth, struct loop **out)
{
	struct loop *lp = calloc(1, sizeof *lp);
	int rc;

	if (!lp)
		return err_set(ENOMEM, "out of memory");
	lp->defer_tail = &lp->defer_head;
	lp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (lp->epfd < 0) {
		rc = err_set(errno, "epoll_create1: %s", strerror(errno));
		free(lp);
		return rc;
	}
	rc = io_engine_create(io_depth, &lp->io);
	if (rc < 0)
		goto fail;
	rc = loop_watch_add(lp, &lp->io_watch, io_engine_eventfd(lp->io), EPOLLIN,
			    io_ready, lp);
	if (rc < 0)
		goto fail;
	*out = lp;
	return 0;
fail:
	if (lp->io)
		io_engine_destroy(lp->io);
	close(lp->epfd);
	free(lp);
	return rc;
}

void loop_destroy(struct loop *lp)
{
	if (!lp)
		return;
	if (lp->io) {
		/* Let in-flight I/O finish: its buffers belong to callers
		 * that are still waiting for the callbacks.  */
		while (io_engine_pending(lp->io) > 0) {
			io_engine_submit(lp->io);
			if (io_engine_reap(lp->io, 100) < 0)
				break;
		}
		loop_watch_del(lp, &lp->io_watch);
		io_engine_destroy(lp->io);
	}
	close(lp->epfd);
	free(lp);
}

struct io_engine *loop_io(struct loop *lp)
{
	return lp->io;
}

int loop_watch_add(struct loop *lp, struct loop_watch *w, int fd, uint32_t events,
		   loop_fd_fn fn, void *arg)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->arg = arg;
	if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return err_set(errno, "epoll_ctl(ADD fd %d): %s", fd, strerror(errno));
	w->active = true;
	return 0;
}

int loop_watch_mod(struct loop *lp, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (!w->active || w->events == events)
		return 0;
	if (epoll_ctl(lp->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return err_set(errno, "epoll_ctl(MOD fd %d): %s", w->fd, strerror(errno));
	w->events = events;
	return 0;
}

void loop_watch_del(struct loop *lp, struct loop_watch *w)
{
	if (!w->active)
		return;
	epoll_ctl(lp->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->active = false;
	if (lp->in_batch && lp->ndeleted < LOOP_MAX_EVENTS)
		lp->deleted[lp->ndeleted++] = w;
}

void loop_defer(struct loop *lp, struct loop_deferred *d)
{
	if (d->queued)
		return;
	d->queued = true;
	d->next = NULL;
	*lp->defer_tail = d;
	lp->defer_tail = &d->next;
}

void loop_timer_arm(struct loop *lp, struct loop_timer *t, unsigned ms)
{
	struct loop_timer **p;

	loop_timer_cancel(lp, t);
	t->due_ms = loop_now_ms() + ms;
	for (p = &lp->timers; *p && (*p)->due_ms <= t->due_ms; p = &(*p)->next)
		;
	t->next = *p;
	*p = t;
	t->armed = true;
}

void loop_timer_cancel(struct loop *lp, struct loop_timer *t)
{
	struct loop_timer **p;

	if (!t->armed)
		return;
	for (p = &lp->timers; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	t->armed = false;
}

static void run_timers(struct loop *lp)
{
	uint64_t now = loop_now_ms();

	while (lp->timers && lp->timers->due_ms <= now) {
		struct loop_timer *t = lp->timers;

		lp->timers = t->next;
		t->armed = false;
		t->fn(t->arg);
	}
}

static void run_deferred(struct loop *lp)
{
	/* Work queued by deferred work runs in the same pass.  */
	while (lp->defer_head) {
		struct loop_deferred *d = lp->defer_head;

		lp->defer_head = d->next;
		if (!lp->defer_head)
			lp->defer_tail = &lp->defer_head;
		d->queued = false;
		d->fn(d->arg);
	}
}

static bool deleted_in_batch(const struct loop *lp, const struct loop_watch *w)
{
	for (unsigned i = 0; i < lp->ndeleted; i++)
		if (lp->deleted[i] == w)
			return true;
	return false;
}

static int next_timeout(const struct loop *lp)
{
	uint64_t now;

	if (lp->defer_head)
		return 0;
	if (!lp->timers)
		return -1;
	now = loop_now_ms();
	if (lp->timers->due_ms <= now)
		return 0;
	return (int)(lp->timers->due_ms - now > 60000 ? 60000 : lp->timers->due_ms - now);
}

int loop_run_once(struct loop *lp, int max_wait_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int n, rc, wait = next_timeout(lp);

	if (max_wait_ms >= 0 && (wait < 0 || wait > max_wait_ms))
		wait = max_wait_ms;
	n = epoll_wait(lp->epfd, evs, LOOP_MAX_EVENTS, wait);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return err_set(errno, "epoll_wait: %s", strerror(errno));
	}
	lp->in_batch = true;
	lp->ndeleted = 0;
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = evs[i].data.ptr;

		if (!w->active || deleted_in_batch(lp, w))
			continue;
		w->fn(w->arg, evs[i].events);
	}
	lp->in_batch = false;
	lp->ndeleted = 0;
	run_timers(lp);
	run_deferred(lp);
	rc = io_engine_submit(lp->io);
	if (rc < 0)
		log_error("export: submitting I/O: %s", err_get());
	return 0;
}

int loop_run(struct loop *lp)
{
	while (!lp->stop) {
		int rc = loop_run_once(lp, -1);

		if (rc < 0)
			return rc;
	}
	return 0;
}

void loop_stop(struct loop *lp)
{
	lp->stop = true;
}

bool loop_stopping(const struct loop *lp)
{
	return lp->stop;
}
