/*
 * tests/unit/test_evloop.c - utils/evloop: fd watches on pipes and
 * socketpairs, deleting (and freeing, and reusing the slot of) another
 * watch from a callback of the same batch, timer order, deferred work,
 * the after-turn hook, signals and stop; a loop with a lock (several
 * loops sharing one state): callbacks run with the lock held, and work
 * given to it from another thread (deferred, a timer, stop) wakes its
 * wait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "utils/clock.h"
#include "utils/evloop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct rec {
	struct evloop *lp;
	struct evloop_watch w;
	int fd, peer;
	int calls;
	uint32_t last;
	struct rec *victim;	/* deleted, closed and freed by this one's callback */
	struct rec *reborn;	/* then added again on a new socketpair */
};

static void on_fd(void *arg, uint32_t events)
{
	struct rec *r = arg;
	char buf[16];

	r->calls++;
	r->last = events;
	if (events & EPOLLIN)
		(void)!read(r->fd, buf, sizeof buf);
	if (r->victim) {
		struct rec *v = r->victim;

		evloop_watch_del(r->lp, &v->w);
		close(v->fd);
		close(v->peer);
		free(v);	/* ASan: a later event must not touch it */
		r->victim = NULL;
		if (r->reborn) {
			int sv[2];

			/* Likely the same slot (freed last) and the same fd.  */
			assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
			r->reborn->fd = sv[0];
			r->reborn->peer = sv[1];
			assert_int_equal(evloop_watch_add(r->lp, &r->reborn->w, sv[0], EPOLLIN,
							  on_fd, r->reborn), 0);
		}
	}
}

static struct rec *rec_new(struct evloop *lp, bool readable)
{
	struct rec *r = calloc(1, sizeof *r);
	int sv[2];

	assert_non_null(r);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	r->lp = lp;
	r->fd = sv[0];
	r->peer = sv[1];
	if (readable)
		assert_int_equal(write(r->peer, "x", 1), 1);
	assert_int_equal(evloop_watch_add(lp, &r->w, r->fd, EPOLLIN, on_fd, r), 0);
	return r;
}

static void rec_free(struct rec *r)
{
	evloop_watch_del(r->lp, &r->w);
	close(r->fd);
	close(r->peer);
	free(r);
}

static void test_watch_pipe(void **state)
{
	struct evloop *lp;
	struct rec r = { 0 };
	int p[2];

	(void)state;
	assert_int_equal(evloop_create(&lp), 0);
	assert_int_equal(pipe(p), 0);
	r.lp = lp;
	r.fd = p[0];
	assert_int_equal(evloop_watch_add(lp, &r.w, p[0], EPOLLIN, on_fd, &r), 0);
	/* Nothing readable: the bounded wait ends without a call.  */
	assert_int_equal(evloop_run_once(lp, 10), 0);
	assert_int_equal(r.calls, 0);
	assert_int_equal(write(p[1], "ab", 2), 2);
	assert_int_equal(evloop_run_once(lp, 1000), 1);
	assert_int_equal(r.calls, 1);
	assert_true(r.last & EPOLLIN);
	/* Modified to EPOLLOUT on a read end: never ready.  */
	assert_int_equal(evloop_watch_mod(lp, &r.w, EPOLLOUT), 0);
	assert_int_equal(write(p[1], "c", 1), 1);
	assert_int_equal(evloop_run_once(lp, 10), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(evloop_watch_mod(lp, &r.w, EPOLLIN), 0);
	assert_int_equal(evloop_run_once(lp, 1000), 1);
	assert_int_equal(r.calls, 2);
	/* Deleted: no more calls; deleting twice is harmless.  */
	assert_int_equal(write(p[1], "d", 1), 1);
	evloop_watch_del(lp, &r.w);
	evloop_watch_del(lp, &r.w);
	assert_int_equal(evloop_run_once(lp, 10), 0);
	assert_int_equal(r.calls, 2);
	/* A bad fd is refused with a message, and leaves no registration. */
	assert_int_equal(evloop_watch_add(lp, &r.w, -1, EPOLLIN, on_fd, &r), -EBADF);
	assert_false(r.w.active);
	close(p[0]);
	close(p[1]);
	evloop_destroy(lp);
}

/* Many readable sockets in one batch; each of the first half deletes,
 * closes and frees a partner of the second half, and half of them add a
 * new watch at once (reusing the freed slot, often the same fd number).
 * Whatever order epoll reports them in, no freed partner is called and a
 * reborn watch is not called for its predecessor's stale event.  */
static void test_delete_during_dispatch(void **state)
{
	enum { N = 16 };
	struct evloop *lp;
	struct rec *a[N], *b[N], *reborn[N];

	(void)state;
	assert_int_equal(evloop_create(&lp), 0);
	for (int i = 0; i < N; i++) {
		a[i] = rec_new(lp, true);
		b[i] = rec_new(lp, true);
		reborn[i] = NULL;
		a[i]->victim = b[i];
		/* and b deletes a: whichever runs first wins */
		b[i]->victim = a[i];
		if (i % 2) {
			reborn[i] = calloc(1, sizeof *reborn[i]);
			assert_non_null(reborn[i]);
			reborn[i]->lp = lp;
			a[i]->reborn = b[i]->reborn = reborn[i];
		}
	}
	assert_int_equal(evloop_run_once(lp, 1000), 2 * N);
	for (int i = 0; i < N; i++) {
		/* exactly one of each pair ran and freed the other */
		struct rec *alive = a[i]->w.active ? a[i] : b[i];

		assert_true(alive->w.active);
		assert_int_equal(alive->calls, 1);
		if (reborn[i]) {
			assert_int_equal(reborn[i]->calls, 0);
			assert_true(reborn[i]->w.active);
			/* The reborn watch works on its own events.  */
			assert_int_equal(write(reborn[i]->peer, "y", 1), 1);
		}
	}
	assert_int_equal(evloop_run_once(lp, 1000), N / 2);
	for (int i = 0; i < N; i++) {
		if (reborn[i]) {
			assert_int_equal(reborn[i]->calls, 1);
			rec_free(reborn[i]);
		}
		rec_free(a[i]->w.active ? a[i] : b[i]);
	}
	evloop_destroy(lp);
}

struct order {
	int seq[16];
	int n;
	struct evloop *lp;
	struct evloop_timer *rearm;
	int rearms;
};

struct tmr {
	struct evloop_timer t;
	struct order *o;
	int id;
};

static void on_timer(void *arg)
{
	struct tmr *t = arg;

	t->o->seq[t->o->n++] = t->id;
	/* A timer that re-arms itself for "now" fires once per turn.  */
	if (t->o->rearm == &t->t && t->o->rearms-- > 0)
		evloop_timer_arm(t->o->lp, &t->t, 0);
}

static void test_timers(void **state)
{
	struct evloop *lp;
	struct order o = { 0 };
	struct tmr t[6];
	int64_t t0;

	(void)state;
	assert_int_equal(evloop_create(&lp), 0);
	o.lp = lp;
	for (int i = 0; i < 6; i++)
		t[i] = (struct tmr){ .t = { .fn = on_timer, .arg = &t[i] }, .o = &o, .id = i };
	t0 = csnap_now_ms();
	evloop_timer_arm(lp, &t[0].t, 30);
	evloop_timer_arm(lp, &t[1].t, 10);
	evloop_timer_arm(lp, &t[2].t, 20);
	evloop_timer_arm(lp, &t[3].t, 10);	/* same due as 1: after it */
	evloop_timer_arm(lp, &t[4].t, 15);
	evloop_timer_cancel(lp, &t[4].t);
	evloop_timer_cancel(lp, &t[4].t);
	evloop_timer_arm(lp, &t[5].t, 5);
	evloop_timer_arm(lp, &t[5].t, 25);	/* moved */
	while (o.n < 5)
		assert_int_equal(evloop_run_once(lp, -1), 0);
	assert_true(csnap_now_ms() - t0 >= 30);
	int want[] = { 1, 3, 2, 5, 0 };
	assert_memory_equal(o.seq, want, sizeof want);
	assert_false(t[4].t.armed);
	for (int i = 0; i < 6; i++)
		assert_false(t[i].t.armed);

	/* Re-armed for 0 ms from its own callback: once per turn, not in a
	 * loop inside one turn.  */
	o.n = 0;
	o.rearm = &t[0].t;
	o.rearms = 2;
	evloop_timer_arm(lp, &t[0].t, 0);
	assert_int_equal(evloop_run_once(lp, -1), 0);
	assert_int_equal(o.n, 1);
	assert_int_equal(evloop_run_once(lp, -1), 0);
	assert_int_equal(o.n, 2);
	assert_int_equal(evloop_run_once(lp, -1), 0);
	assert_int_equal(o.n, 3);
	assert_false(t[0].t.armed);
	evloop_destroy(lp);
}

struct dq {
	struct evloop_deferred d[3];
	struct evloop *lp;
	int seq[8], n, after;
};

static struct dq *g_dq;

static void on_dq(void *arg)
{
	int id = (int)(intptr_t)arg;

	g_dq->seq[g_dq->n++] = id;
	if (id == 0)	/* queued by deferred work: same pass */
		evloop_defer(g_dq->lp, &g_dq->d[2]);
}

static void on_after(void *arg)
{
	struct dq *q = arg;

	q->after++;
	/* the deferred work ran before the hook */
	assert_int_equal(q->n, 3);
}

static void test_deferred_and_after(void **state)
{
	struct dq q = { 0 };

	(void)state;
	g_dq = &q;
	assert_int_equal(evloop_create(&q.lp), 0);
	for (int i = 0; i < 3; i++)
		q.d[i] = (struct evloop_deferred){ .fn = on_dq, .arg = (void *)(intptr_t)i };
	evloop_defer(q.lp, &q.d[1]);
	evloop_defer(q.lp, &q.d[0]);
	evloop_defer(q.lp, &q.d[1]);	/* twice: no-op */
	evloop_set_after(q.lp, on_after, &q);
	/* Deferred work pending: the turn does not sleep.  */
	int64_t t0 = csnap_now_ms();
	assert_int_equal(evloop_run_once(q.lp, 5000), 0);
	assert_true(csnap_now_ms() - t0 < 2000);
	int want[] = { 1, 0, 2 };
	assert_memory_equal(q.seq, want, sizeof want);
	assert_int_equal(q.after, 1);
	evloop_destroy(q.lp);
}

struct stopper {
	struct evloop *lp;
	struct evloop_watch w[2];
	int fds[2][2];
	int calls;
	int sig;
};

static void on_stop_fd(void *arg, uint32_t events)
{
	struct stopper *s = arg;

	(void)events;
	s->calls++;
	evloop_stop(s->lp);
}

static void on_sig(void *arg, int signo)
{
	struct stopper *s = arg;

	s->sig = signo;
	evloop_stop(s->lp);
}

static void test_stop_and_signals(void **state)
{
	struct stopper s = { 0 };
	struct evloop_signals sigs;
	static const int signos[] = { SIGUSR1, 0 };

	(void)state;
	assert_int_equal(evloop_create(&s.lp), 0);
	/* Two ready fds whose callbacks both stop: the batch ends after the
	 * first, and run() returns.  */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s.fds[i]), 0);
		assert_int_equal(write(s.fds[i][1], "z", 1), 1);
		assert_int_equal(evloop_watch_add(s.lp, &s.w[i], s.fds[i][0], EPOLLIN, on_stop_fd,
						  &s), 0);
	}
	assert_int_equal(evloop_run(s.lp), 0);
	assert_int_equal(s.calls, 1);
	assert_true(evloop_stopping(s.lp));
	for (int i = 0; i < 2; i++) {
		evloop_watch_del(s.lp, &s.w[i]);
		close(s.fds[i][0]);
		close(s.fds[i][1]);
	}
	evloop_destroy(s.lp);

	/* A signal arrives through the signalfd and stops a running loop. */
	assert_int_equal(evloop_create(&s.lp), 0);
	assert_int_equal(evloop_signals_add(s.lp, &sigs, signos, on_sig, &s), 0);
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(evloop_run(s.lp), 0);
	assert_int_equal(s.sig, SIGUSR1);
	evloop_signals_del(s.lp, &sigs);
	evloop_destroy(s.lp);
}

/* ---- a loop with a lock, driven from another thread ---- */

struct locked {
	pthread_mutex_t m;
	bool held;		/* by the loop's thread, through the callbacks */
	struct evloop *lp;
	struct evloop_deferred d;
	struct evloop_timer t;
	int deferred_runs, timer_runs;
	bool held_in_cb;	/* every callback saw the lock held */
};

static void lk_lock(void *arg)
{
	struct locked *l = arg;

	pthread_mutex_lock(&l->m);
	l->held = true;
}

static void lk_unlock(void *arg)
{
	struct locked *l = arg;

	l->held = false;
	pthread_mutex_unlock(&l->m);
}

static void lk_deferred(void *arg)
{
	struct locked *l = arg;

	l->held_in_cb &= l->held;
	l->deferred_runs++;
}

static void lk_timer(void *arg)
{
	struct locked *l = arg;

	l->held_in_cb &= l->held;
	l->timer_runs++;
}

static void *lk_loop_thread(void *arg)
{
	struct locked *l = arg;
	intptr_t rc;

	lk_lock(l);
	rc = evloop_run(l->lp);
	lk_unlock(l);
	return (void *)rc;
}

/* Waits (lock released) until *COUNTER reaches WANT; false after 5 s.
 * Without the wake the loop would sleep forever: it has no timer and no
 * event when the work is given.  */
static bool lk_wait(struct locked *l, int *counter, int want)
{
	for (int i = 0; i < 5000; i++) {
		bool done;

		lk_lock(l);
		done = *counter >= want;
		lk_unlock(l);
		if (done)
			return true;
		usleep(1000);
	}
	return false;
}

static void test_lock_and_wake(void **state)
{
	struct locked l = { .held_in_cb = true };
	pthread_t th;
	void *ret;

	(void)state;
	pthread_mutex_init(&l.m, NULL);
	assert_int_equal(evloop_create(&l.lp), 0);
	assert_int_equal(evloop_set_lock(l.lp, lk_lock, lk_unlock, &l), 0);
	l.d.fn = lk_deferred;
	l.d.arg = &l;
	l.t.fn = lk_timer;
	l.t.arg = &l;
	assert_int_equal(pthread_create(&th, NULL, lk_loop_thread, &l), 0);
	usleep(20000);		/* let it go to sleep */

	lk_lock(&l);
	evloop_defer(l.lp, &l.d);
	lk_unlock(&l);
	assert_true(lk_wait(&l, &l.deferred_runs, 1));

	lk_lock(&l);
	evloop_timer_arm(l.lp, &l.t, 10);
	lk_unlock(&l);
	assert_true(lk_wait(&l, &l.timer_runs, 1));

	lk_lock(&l);
	evloop_stop(l.lp);
	lk_unlock(&l);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_null(ret);
	assert_true(l.held_in_cb);
	assert_int_equal(l.deferred_runs, 1);
	assert_int_equal(l.timer_runs, 1);
	evloop_destroy(l.lp);
	pthread_mutex_destroy(&l.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_watch_pipe),
		cmocka_unit_test(test_delete_during_dispatch),
		cmocka_unit_test(test_timers),
		cmocka_unit_test(test_deferred_and_after),
		cmocka_unit_test(test_stop_and_signals),
		cmocka_unit_test(test_lock_and_wake),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
