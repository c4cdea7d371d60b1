/*
 * utils/evloop.c - see evloop.h for the invariants.
 *
 * Watches live in a slot table: the epoll data of a registration is
 * (generation << 32 | slot).  Deleting a watch empties its slot and bumps
 * the slot's generation, so an event of the current batch that still
 * names the old registration finds a different generation and is dropped;
 * the watch's own memory is never read for it.  Free slots are chained
 * through their `next_free` index.
 */
#include "utils/evloop.h"

#include "utils/assert.h"
#include "utils/clock.h"
#include "utils/err.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define EVLOOP_MAX_EVENTS	64
#define EVLOOP_MAX_WAIT_MS	60000
#define SLOT_NONE		UINT32_MAX

struct slot {
	struct evloop_watch *w;	/* NULL: free */
	uint32_t gen;
	uint32_t next_free;
};

struct evloop {
	int epfd;
	struct slot *slots;
	uint32_t nslots, free_slot, nwatches;
	struct evloop_timer *timers;	/* armed, sorted by due_ms */
	uint64_t timer_pass;
	struct evloop_deferred *defer_head, **defer_tail;
	void (*after)(void *arg);
	void *after_arg;
	void *userdata;
	bool stop;
	/* evloop_set_lock(): the lock every turn holds but for its wait, and
	 * the eventfd other threads write to wake the wait.  */
	void (*lock)(void *arg);
	void (*unlock)(void *arg);
	void *lock_arg;
	int wake_fd;
	struct evloop_watch wake_w;
	pthread_t owner;	/* the thread in evloop_run(), if owned */
	bool owned;
};

static uint64_t slot_data(const struct evloop *lp, uint32_t slot)
{
	return (uint64_t)lp->slots[slot].gen << 32 | slot;
}

int evloop_create(struct evloop **out)
{
	struct evloop *lp = calloc(1, sizeof *lp);

	if (!lp)
		return err_set(ENOMEM, "out of memory");
	lp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (lp->epfd < 0) {
		int e = errno;

		free(lp);
		return err_set(e, "epoll_create1: %s", strerror(e));
	}
	lp->free_slot = SLOT_NONE;
	lp->defer_tail = &lp->defer_head;
	lp->wake_fd = -1;
	*out = lp;
	return 0;
}

void evloop_destroy(struct evloop *lp)
{
	if (!lp)
		return;
	if (lp->wake_fd >= 0) {
		evloop_watch_del(lp, &lp->wake_w);
		close(lp->wake_fd);
	}
	/* A watch still registered would name freed slots.  */
	CSNAP_ASSERT(lp->nwatches == 0);
	close(lp->epfd);
	free(lp->slots);
	free(lp);
}

void evloop_set_userdata(struct evloop *lp, void *data)
{
	lp->userdata = data;
}

void *evloop_userdata(const struct evloop *lp)
{
	return lp->userdata;
}

void evloop_set_after(struct evloop *lp, void (*fn)(void *arg), void *arg)
{
	lp->after = fn;
	lp->after_arg = arg;
}

static void wake_read(void *arg, uint32_t events)
{
	struct evloop *lp = arg;
	uint64_t v;

	(void)events;
	if (read(lp->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
		CSNAP_ASSERT(errno == EINTR);
}

int evloop_set_lock(struct evloop *lp, void (*lock)(void *arg), void (*unlock)(void *arg),
		    void *arg)
{
	int rc;

	CSNAP_ASSERT(lp->wake_fd < 0 && lock && unlock);
	lp->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (lp->wake_fd < 0)
		return err_set(errno, "eventfd: %s", strerror(errno));
	if ((rc = evloop_watch_add(lp, &lp->wake_w, lp->wake_fd, EPOLLIN, wake_read, lp)) < 0) {
		close(lp->wake_fd);
		lp->wake_fd = -1;
		return rc;
	}
	lp->lock = lock;
	lp->unlock = unlock;
	lp->lock_arg = arg;
	return 0;
}

/* Work given to the loop from another thread: its wait may have been
 * computed without it (a timer, deferred work, a stop).  */
static void wake_other(struct evloop *lp)
{
	uint64_t one = 1;

	if (lp->wake_fd < 0 || (lp->owned && pthread_equal(lp->owner, pthread_self())))
		return;
	/* EAGAIN: the counter is full, the loop is woken anyway.  */
	if (write(lp->wake_fd, &one, sizeof one) < 0)
		CSNAP_ASSERT(errno == EAGAIN || errno == EINTR);
}

/* ---- watches ------------------------------------------------------------ */

static int slot_get(struct evloop *lp, uint32_t *out)
{
	if (lp->free_slot == SLOT_NONE) {
		uint32_t n = lp->nslots ? lp->nslots * 2 : 16;
		struct slot *s = realloc(lp->slots, n * sizeof *s);

		if (!s)
			return err_set(ENOMEM, "out of memory");
		for (uint32_t i = lp->nslots; i < n; i++)
			s[i] = (struct slot){ .next_free = i + 1 < n ? i + 1 : SLOT_NONE };
		lp->free_slot = lp->nslots;
		lp->slots = s;
		lp->nslots = n;
	}
	*out = lp->free_slot;
	lp->free_slot = lp->slots[*out].next_free;
	CSNAP_ASSERT(lp->slots[*out].w == NULL);
	return 0;
}

static void slot_put(struct evloop *lp, uint32_t slot)
{
	/* The new generation makes events fetched for the old one stale.  */
	lp->slots[slot].w = NULL;
	lp->slots[slot].gen++;
	lp->slots[slot].next_free = lp->free_slot;
	lp->free_slot = slot;
}

int evloop_watch_add(struct evloop *lp, struct evloop_watch *w, int fd, uint32_t events,
		     evloop_fd_fn fn, void *arg)
{
	struct epoll_event ev = { .events = events };
	uint32_t slot = SLOT_NONE;
	int rc;

	CSNAP_ASSERT(!w->active);
	if ((rc = slot_get(lp, &slot)) < 0)
		return rc;
	ev.data.u64 = slot_data(lp, slot);
	if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;

		slot_put(lp, slot);
		return err_set(e, "epoll_ctl(ADD fd %d): %s", fd, strerror(e));
	}
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->arg = arg;
	w->slot = slot;
	w->active = true;
	lp->slots[slot].w = w;
	lp->nwatches++;
	return 0;
}

int evloop_watch_mod(struct evloop *lp, struct evloop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	if (!w->active || w->events == events)
		return 0;
	CSNAP_ASSERT(w->slot < lp->nslots && lp->slots[w->slot].w == w);
	ev.data.u64 = slot_data(lp, w->slot);
	if (epoll_ctl(lp->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return err_set(errno, "epoll_ctl(MOD fd %d): %s", w->fd, strerror(errno));
	w->events = events;
	return 0;
}

void evloop_watch_del(struct evloop *lp, struct evloop_watch *w)
{
	if (!w->active)
		return;
	CSNAP_ASSERT(w->slot < lp->nslots && lp->slots[w->slot].w == w);
	CSNAP_ASSERT(lp->nwatches > 0);
	/* Fails only if the fd was closed already, which removed it.  */
	epoll_ctl(lp->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	slot_put(lp, w->slot);
	w->active = false;
	lp->nwatches--;
}

/* ---- deferred work and timers ------------------------------------------- */

void evloop_defer(struct evloop *lp, struct evloop_deferred *d)
{
	if (d->queued)
		return;
	d->queued = true;
	d->next = NULL;
	*lp->defer_tail = d;
	lp->defer_tail = &d->next;
	wake_other(lp);
}

static void run_deferred(struct evloop *lp)
{
	while (lp->defer_head) {
		struct evloop_deferred *d = lp->defer_head;

		lp->defer_head = d->next;
		if (!lp->defer_head)
			lp->defer_tail = &lp->defer_head;
		CSNAP_ASSERT(d->queued);
		d->queued = false;
		d->fn(d->arg);
	}
}

void evloop_timer_cancel(struct evloop *lp, struct evloop_timer *t)
{
	struct evloop_timer **p;

	if (!t->armed)
		return;
	for (p = &lp->timers; *p && *p != t; p = &(*p)->next)
		;
	CSNAP_ASSERT(*p == t);	/* an armed timer is on the list */
	if (*p)
		*p = t->next;
	t->armed = false;
}

void evloop_timer_arm_at(struct evloop *lp, struct evloop_timer *t, int64_t due_ms)
{
	struct evloop_timer **p;

	evloop_timer_cancel(lp, t);
	t->due_ms = due_ms;
	t->pass = lp->timer_pass;
	/* After the timers due at the same time: they fire in arming order. */
	for (p = &lp->timers; *p && (*p)->due_ms <= due_ms; p = &(*p)->next)
		;
	t->next = *p;
	*p = t;
	t->armed = true;
	if (lp->timers == t)
		wake_other(lp);
}

void evloop_timer_arm(struct evloop *lp, struct evloop_timer *t, unsigned ms)
{
	evloop_timer_arm_at(lp, t, csnap_now_ms() + ms);
}

static void run_timers(struct evloop *lp)
{
	int64_t now;

	if (!lp->timers)
		return;
	now = csnap_now_ms();
	/* A timer armed during this pass has pass == timer_pass + 1 and a
	 * due time >= now, so it sorts after every timer this pass fires.  */
	lp->timer_pass++;
	while (lp->timers && lp->timers->due_ms <= now && lp->timers->pass < lp->timer_pass) {
		struct evloop_timer *t = lp->timers;

		CSNAP_ASSERT(t->armed);
		CSNAP_ASSERT(!t->next || t->next->due_ms >= t->due_ms);
		lp->timers = t->next;
		t->armed = false;
		t->fn(t->arg);
	}
}

static int next_wait(const struct evloop *lp, int max_wait_ms)
{
	int64_t wait = -1;

	if (lp->defer_head || lp->stop)
		return 0;
	if (lp->timers) {
		wait = lp->timers->due_ms - csnap_now_ms();
		if (wait < 0)
			wait = 0;
		if (wait > EVLOOP_MAX_WAIT_MS)
			wait = EVLOOP_MAX_WAIT_MS;
	}
	if (max_wait_ms >= 0 && (wait < 0 || wait > max_wait_ms))
		wait = max_wait_ms;
	return (int)wait;
}

/* ---- signals ------------------------------------------------------------ */

static void on_signalfd(void *arg, uint32_t events)
{
	struct evloop_signals *s = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(s->fd, &si, sizeof si) == (ssize_t)sizeof si)
		s->fn(s->arg, (int)si.ssi_signo);
}

int evloop_signals_add(struct evloop *lp, struct evloop_signals *s, const int *signos,
		       void (*fn)(void *arg, int signo), void *arg)
{
	sigset_t set;
	int rc;

	sigemptyset(&set);
	for (; *signos; signos++)
		sigaddset(&set, *signos);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->fn = fn;
	s->arg = arg;
	s->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->fd < 0)
		return err_set(errno, "signalfd: %s", strerror(errno));
	if ((rc = evloop_watch_add(lp, &s->w, s->fd, EPOLLIN, on_signalfd, s)) < 0) {
		close(s->fd);
		s->fd = -1;
	}
	return rc;
}

void evloop_signals_del(struct evloop *lp, struct evloop_signals *s)
{
	if (!s->w.active)
		return;
	evloop_watch_del(lp, &s->w);
	close(s->fd);
	s->fd = -1;
}

/* ---- turns -------------------------------------------------------------- */

int evloop_run_once(struct evloop *lp, int max_wait_ms)
{
	struct epoll_event evs[EVLOOP_MAX_EVENTS];
	int wait = next_wait(lp, max_wait_ms);
	int n, e;

	if (lp->unlock)
		lp->unlock(lp->lock_arg);
	n = epoll_wait(lp->epfd, evs, EVLOOP_MAX_EVENTS, wait);
	e = errno;
	if (lp->lock)
		lp->lock(lp->lock_arg);
	if (n < 0) {
		if (e != EINTR)
			return err_set(e, "epoll_wait: %s", strerror(e));
		n = 0;
	}
	for (int i = 0; i < n && !lp->stop; i++) {
		uint32_t slot = (uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		struct evloop_watch *w;

		CSNAP_ASSERT(slot < lp->nslots);
		w = lp->slots[slot].w;
		/* Another generation: deleted during this batch.  The same
		 * generation always has its watch (deleting bumps it).  */
		CSNAP_ASSERT(lp->slots[slot].gen != gen || w);
		if (lp->slots[slot].gen != gen || !w)
			continue;
		CSNAP_ASSERT(w->active && w->slot == slot);
		w->fn(w->arg, evs[i].events);
	}
	run_timers(lp);
	run_deferred(lp);
	if (lp->after)
		lp->after(lp->after_arg);
	return n;
}

int evloop_run(struct evloop *lp)
{
	int rc = 0;

	lp->owner = pthread_self();
	lp->owned = true;
	while (!lp->stop) {
		rc = evloop_run_once(lp, -1);
		if (rc < 0)
			break;
	}
	lp->owned = false;
	return rc < 0 ? rc : 0;
}

void evloop_stop(struct evloop *lp)
{
	lp->stop = true;
	wake_other(lp);
}

bool evloop_stopping(const struct evloop *lp)
{
	return lp->stop;
}
