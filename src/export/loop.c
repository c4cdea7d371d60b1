/*
 * src/export/loop.c - the export's evloop and its async ioengine, and the
 * pool of loop threads sharing the export lock: see loop.h.  Completions
 * are reaped when the engine's eventfd is readable; queued I/O is
 * submitted after every turn.
 */
#include "src/export/loop.h"

#include "ioengine/ioengine.h"
#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

struct loop_io {
	struct io_engine *io;
	struct evloop_watch w;
};

static void io_ready(void *arg, uint32_t events)
{
	struct loop_io *li = arg;

	(void)events;
	if (io_engine_reap(li->io, 0) < 0)
		log_error("export: reaping I/O completions: %s", err_get());
}

static void lock_cb(void *arg);
static void unlock_cb(void *arg);
/* A pool runs (set and cleared with the lock held by the only thread).  */
static bool threaded;

/* The end of a turn: nothing of the shared state is held on the stack,
 * so with loop threads the others may run during io_submit.  */
static void io_submit_turn(void *arg)
{
	struct loop_io *li = arg;
	int rc;

	if (__atomic_load_n(&threaded, __ATOMIC_RELAXED))
		rc = io_engine_submit_unlocked(li->io, unlock_cb, lock_cb, NULL);
	else
		rc = io_engine_submit(li->io);
	if (rc < 0)
		log_error("export: submitting I/O: %s", err_get());
}

int loop_create(unsigned io_depth, struct evloop **out)
{
	struct loop_io *li = calloc(1, sizeof *li);
	struct evloop *lp = NULL;
	int rc;

	if (!li)
		return err_set(ENOMEM, "out of memory");
	if ((rc = evloop_create(&lp)) < 0 ||
	    (rc = io_engine_create(io_depth, &li->io)) < 0 ||
	    (rc = evloop_watch_add(lp, &li->w, io_engine_eventfd(li->io), EPOLLIN, io_ready,
				   li)) < 0) {
		if (li->io)
			io_engine_destroy(li->io);
		evloop_destroy(lp);
		free(li);
		return rc;
	}
	evloop_set_userdata(lp, li);
	evloop_set_after(lp, io_submit_turn, li);
	*out = lp;
	return 0;
}

void loop_destroy(struct evloop *lp)
{
	struct loop_io *li;

	if (!lp)
		return;
	li = evloop_userdata(lp);
	while (io_engine_pending(li->io) > 0) {
		io_engine_submit(li->io);
		if (io_engine_reap(li->io, 100) < 0)
			break;
	}
	evloop_watch_del(lp, &li->w);
	io_engine_destroy(li->io);
	evloop_destroy(lp);
	free(li);
}

struct io_engine *loop_io(struct evloop *lp)
{
	return ((struct loop_io *)evloop_userdata(lp))->io;
}

/* ---- the export lock and the loop threads ----------------------------- */

static pthread_mutex_t export_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread bool lock_mine;			/* this thread holds it */
static __thread struct io_engine *thread_io;	/* loop_bind_thread() */

struct io_engine *loop_thread_io(void)
{
	return thread_io;
}

void loop_bind_thread(struct evloop *lp)
{
	thread_io = lp ? loop_io(lp) : NULL;
}

void loop_lock(void)
{
	CSNAP_ASSERT(!lock_mine);	/* not recursive */
	pthread_mutex_lock(&export_lock);
	lock_mine = true;
}

void loop_unlock(void)
{
	CSNAP_ASSERT(lock_mine);
	lock_mine = false;
	pthread_mutex_unlock(&export_lock);
}

bool loop_locked(void)
{
	return lock_mine || !__atomic_load_n(&threaded, __ATOMIC_RELAXED);
}

static void lock_cb(void *arg)
{
	(void)arg;
	loop_lock();
}

static void unlock_cb(void *arg)
{
	(void)arg;
	loop_unlock();
}

struct loop_worker {
	struct evloop *lp;	/* NULL until a connection needs it */
	pthread_t thread;
};

struct loop_pool {
	struct evloop *main;
	struct loop_worker *w;
	unsigned n;		/* threads besides MAIN's */
	unsigned *users;	/* [0..n]: connections on MAIN's (0), w[i - 1]'s */
	unsigned io_depth;
	bool failed;		/* a thread could not start: warned once */
};

static void *worker_main(void *arg)
{
	struct loop_worker *w = arg;
	int rc;

	loop_lock();
	loop_bind_thread(w->lp);
	rc = evloop_run(w->lp);
	if (rc < 0)
		log_error("export: loop thread stopped: %s", err_get());
	loop_bind_thread(NULL);
	loop_unlock();
	return NULL;
}

/* A worker's loop, engine and thread come with its first connection: an
 * export that never has more than one client keeps one libaio context
 * (each reserves io_depth of the system's fs.aio-max-nr).  */
static int worker_start(struct loop_pool *p, struct loop_worker *w)
{
	int rc;

	if ((rc = loop_create(p->io_depth, &w->lp)) < 0)
		return rc;
	if ((rc = evloop_set_lock(w->lp, lock_cb, unlock_cb, NULL)) < 0)
		goto fail;
	if ((rc = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
		rc = err_set(rc, "pthread_create: %s", strerror(rc));
		goto fail;
	}
	return 0;
fail:
	loop_destroy(w->lp);
	w->lp = NULL;
	return rc;
}

int loop_pool_start(struct evloop *main, unsigned nthreads, unsigned io_depth,
		    struct loop_pool **out)
{
	struct loop_pool *p = calloc(1, sizeof *p);
	int rc;

	CSNAP_ASSERT(nthreads >= 2 && !threaded);
	if (!p || !(p->w = calloc(nthreads - 1, sizeof *p->w)) ||
	    !(p->users = calloc(nthreads, sizeof *p->users))) {
		if (p)
			free(p->w);
		free(p);
		return err_set(ENOMEM, "out of memory");
	}
	p->main = main;
	p->n = nthreads - 1;
	p->io_depth = io_depth;
	if ((rc = evloop_set_lock(main, lock_cb, unlock_cb, NULL)) < 0) {
		free(p->users);
		free(p->w);
		free(p);
		return rc;
	}
	loop_lock();
	__atomic_store_n(&threaded, true, __ATOMIC_RELAXED);
	loop_bind_thread(main);
	log_info("export: %u loop threads", nthreads);
	*out = p;
	return 0;
}

struct evloop *loop_pool_pick(struct loop_pool *p, unsigned *index)
{
	unsigned i = 0;
	struct loop_worker *w;
	int rc;

	CSNAP_ASSERT(loop_locked());
	/* The least used; MAIN's on a tie, so a lone client is served where
	 * the master's answers arrive, as with one thread.  */
	for (unsigned k = 1; k <= p->n; k++)
		if (p->users[k] < p->users[i])
			i = k;
	if (i && !(w = &p->w[i - 1])->lp && (rc = worker_start(p, w)) < 0) {
		if (!p->failed)
			log_warn("export: cannot start loop thread %u (%s): its connections go to "
				 "the main loop", i, err_get());
		p->failed = true;
		i = 0;
	}
	p->users[i]++;
	*index = i;
	return i ? p->w[i - 1].lp : p->main;
}

void loop_pool_unpick(struct loop_pool *p, unsigned index)
{
	CSNAP_ASSERT(loop_locked());
	CSNAP_ASSERT(index <= p->n && p->users[index] > 0);
	p->users[index]--;
}

unsigned loop_pool_pending(const struct loop_pool *p)
{
	unsigned n = 0;

	CSNAP_ASSERT(loop_locked());
	for (unsigned i = 0; i < p->n; i++)
		if (p->w[i].lp)
			n += io_engine_pending(loop_io(p->w[i].lp));
	return n;
}

void loop_pool_stop(struct loop_pool *p)
{
	if (!p)
		return;
	CSNAP_ASSERT(lock_mine);
	for (unsigned i = 0; i < p->n; i++)
		if (p->w[i].lp)
			evloop_stop(p->w[i].lp);
	loop_unlock();
	for (unsigned i = 0; i < p->n; i++)
		if (p->w[i].lp)
			pthread_join(p->w[i].thread, NULL);
	loop_lock();
	/* Alone now: what the threads left on their engines completes here. */
	for (unsigned i = 0; i < p->n; i++)
		loop_destroy(p->w[i].lp);
	__atomic_store_n(&threaded, false, __ATOMIC_RELAXED);
	loop_unlock();
	free(p->users);
	free(p->w);
	free(p);
}
