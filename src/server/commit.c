/*
 * src/server/commit.c - the server's request core: parked requests, group
 * commit, the end of a loop turn, and the state every part shares (struct
 * srv).  The loop itself (sockets, timers, signals) is server.c; this file
 * never touches a descriptor, so the handlers can be driven without one
 * (tests/unit/test_server_*.c).
 *
 * Invariants: a request is on at most one list (waiting or after_commit),
 * and `parked` is true exactly while it is on `waiting`; replies on
 * after_commit go out only after a commit succeeded; nothing commits while
 * a copy-out is queued or in flight (its data would be missing) or while
 * the master lease is not certainly ours.
 *
 * Pipelined commits (srv.flight): a transaction of data-path changes only
 * (no reply waits on after_commit, no deletion, no data chunk freed) is
 * staged by store_commit_begin() and its I/O runs on the ioengine - flush
 * of the copied data, journal write, flush - while the loop goes on and
 * the next transaction's copy-outs start.  At most one is in flight; its
 * busy chunks stay busy (nothing touching them is answered) until
 * store_commit_end() says it is durable, and the next commit of either
 * kind starts only after that, so commits stay in order and an answer
 * never precedes the durability of what it depends on.
 */
#include "src/server/srv.h"

#include "ioengine/ioengine.h"
#include "utils/assert.h"
#include "utils/clock.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- request lists ----------------------------------------------------- */

void req_list_push(struct req_list *l, struct req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

void req_list_remove(struct req_list *l, struct req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->next = r->prev = NULL;
	CSNAP_ASSERT(l->n > 0);
	l->n--;
	r->parked = false;	/* `parked` means "on the waiting list" */
}

struct req *req_list_pop(struct req_list *l)
{
	struct req *r = l->head;
	if (r)
		req_list_remove(l, r);
	return r;
}

void srv_park(struct srv *s, struct req *r)
{
	/* On one list at a time; a request whose reply waits for the
	 * commit is on after_commit, never parked.  */
	CSNAP_ASSERT(!r->parked && !r->reply);
	CSNAP_ASSERT(!r->c || r->c->refs > 0);	/* its reference keeps C */
	r->parked = true;
	req_list_push(&s->waiting, r);
}

void srv_kick(struct srv *s)
{
	s->kick = true;
}

void srv_req_done(struct srv *s, struct req *r)
{
	/* Freed only once off every list (else a dangling entry).  */
	CSNAP_ASSERT(!r->parked && !r->next && !r->prev);
	inval_req_gone(s, r);
	CSNAP_ASSERT(r->inval_waiting == 0);
	free(r->reply);
	proto_msg_free(&r->m);
	if (r->c)
		conn_put(r->c);
	free(r);
}

bool srv_batch_open(struct srv *s)
{
	if (s->quiesce || admin_barrier_active(s) || rb_batch_closed(s))
		return false;
	return copy_batch_open(s);
}

unsigned srv_origin_clients(const struct srv *s)
{
	unsigned n = 0;
	for (const struct conn *c = s->conns; c; c = c->next)
		if (c->state == CONN_READY && c->volume == PROTO_VOL_ORIGIN)
			n++;
	return n;
}

void srv_fatal(struct srv *s, int err, const char *why)
{
	if (!s->fatal) {
		log_error("stopping at once, no further writes: %s", why);
		s->fatal = true;
		s->fatal_err = err < 0 ? err : -EIO;
		/* no further event of this turn is handled */
		if (s->lp)
			evloop_stop(s->lp);
	}
}

/* ---- commit ------------------------------------------------------------ */

/* Asks sanlock about our lease.  A shortage of our own (no descriptor or
 * memory to open a socket to sanlock, say because peers hold them all)
 * says nothing about the lease: it is not taken for a lost lease.  The
 * lease's validity then simply is not extended, so commits wait (see
 * lease_ok) until a check succeeds.  Other failures: < 0.  */
int srv_lease_check(struct srv *s)
{
	static struct log_limit said;
	int r = lease_master_check(&s->lm);
	if (r < 0 && fd_shortage(-r) && !lease_fenced()) {
		log_limited(&said, LOG_LEVEL_WARN,
			    "cannot check the master lease now (%s): commits wait for the next check",
			    err_get());
		return 0;
	}
	return r;
}

/* May we commit?  A late delta-lease renewal (a busy host, slow storage)
 * is not a lost lease: wait for it rather than fail over.  If the lease is
 * really gone, sanlock fences us or the inquiry says so.  */
static int lease_ok(struct srv *s)
{
	if (lease_may_commit(&s->lm) == 0)
		goto ok;
	int r = srv_lease_check(s);
	if (r < 0) {
		srv_fatal(s, r, err_get());
		return r;
	}
	if (lease_may_commit(&s->lm) == 0)
		goto ok;
	if (lease_fenced()) {
		srv_fatal(s, -ENOLCK, "fenced");
		return -ENOLCK;
	}
	if (!s->lease_late)
		log_warn("master lease renewal is late: holding commits until sanlock renews it");
	s->lease_late = true;
	return err_set(EAGAIN, "master lease renewal is late");
ok:
	if (s->lease_late)
		log_info("master lease renewed: commits resume");
	s->lease_late = false;
	return 0;
}

void srv_reply_after_commit(struct srv *s, struct req *r, const struct proto_msg *m)
{
	CSNAP_ASSERT(!r->parked && !r->reply);
	r->reply = malloc(sizeof *r->reply);
	if (!r->reply) {
		conn_reply_error(r->c, &r->m, ENOMEM, "server out of memory");
		srv_req_done(s, r);
		return;
	}
	*r->reply = *m;
	req_list_push(&s->after_commit, r);
}

/* ---- pipelined commit ----------------------------------------------- */

bool srv_commit_inflight(const struct srv *s)
{
	return s->flight.active;
}

/* The flight's I/O is over (or failed): the transaction is durable, or the
 * server stops.  Its chunks stop being busy; parked requests run again. */
static void flight_finish(struct srv *s)
{
	struct commit_flight *f = &s->flight;

	CSNAP_ASSERT(f->active && f->pending == 0);
	f->active = false;
	/* After a fatal stop nothing more is written (the end may
	 * checkpoint); the next master replays what became durable.  */
	if (s->fatal || !s->st)
		return;
	int r = store_commit_end(s->st, f->err);
	if (r < 0) {
		srv_fatal(s, r, err_get());
		return;
	}
	s->commits++;
	s->stat_commits++;
	s->stat_pipelined++;
	store_get_info(s->st, &s->info);
	size_t pos = 0;
	uint64_t key;
	uint32_t n;
	while (chunkset_next(&f->busy, &pos, &key, &n)) {
		uint32_t g = chunkset_sub(&s->busy, key, n);
		CSNAP_ASSERT(g == n);	/* srv.busy holds the flight's chunks */
		(void)g;
	}
	chunkset_clear(&f->busy);
	srv_kick(s);
}

static void flight_io_done(void *arg, ssize_t result);

/* Starts the flight's next step: 1 journal write, 2 flush, 3 done.  */
static void flight_next(struct srv *s)
{
	struct commit_flight *f = &s->flight;
	int r;

	f->step++;
	if (!f->err && (s->fatal || lease_fenced()))
		f->err = -ENOLCK;
	if (f->err || f->step > 2) {
		flight_finish(s);
		return;
	}
	if (f->step == 1) {
		for (unsigned i = 0; i < f->io.n; i++) {
			r = io_engine_write(s->eng, s->sdev, f->io.buf[i], f->io.len[i], f->io.off[i],
					    flight_io_done, s);
			if (r < 0) {
				f->err = r;
				break;
			}
			f->pending++;
		}
	} else {
		r = io_engine_flush(s->eng, s->sdev, flight_io_done, s);
		if (r < 0)
			f->err = r;
		else
			f->pending++;
	}
	if (f->pending == 0) {
		flight_finish(s);
		return;
	}
	if ((r = io_engine_submit(s->eng)) < 0 && !f->err)
		f->err = r;
}

static void flight_io_done(void *arg, ssize_t result)
{
	struct srv *s = arg;
	struct commit_flight *f = &s->flight;

	if (result < 0 && !f->err) {
		log_error("commit: %s", err_get());
		f->err = (int)result;
	}
	CSNAP_ASSERT(f->pending > 0);
	if (--f->pending == 0)
		flight_next(s);
}

/* Begins a pipelined commit of the open transaction.  False when it may
 * not be pipelined (the caller commits the plain way); true when it was
 * started, or must wait (a late lease renewal), or failed fatally.  */
static bool flight_begin(struct srv *s)
{
	struct commit_flight *f = &s->flight;

	CSNAP_ASSERT(!f->active && !copy_pending(s) && !s->after_commit.n);
	if (lease_ok(s) < 0)
		return true;	/* retried every turn, like srv_commit_now */
	/* the transaction's busy chunks, to release when it is durable */
	CSNAP_ASSERT(f->busy.used == 0);
	size_t pos = 0;
	uint64_t key;
	uint32_t n;
	while (chunkset_next(&s->busy, &pos, &key, &n))
		if (chunkset_add(&f->busy, key, n) < 0) {
			chunkset_clear(&f->busy);
			return false;
		}
	int r = store_commit_begin(s->st, &f->io);
	if (r < 0) {
		chunkset_clear(&f->busy);
		if (r == -EAGAIN)
			return false;	/* it frees data chunks */
		srv_fatal(s, r, err_get());
		return true;
	}
	copy_batch_done(s);
	if (f->io.n == 0) {	/* nothing was staged: nothing to wait for */
		CSNAP_ASSERT(!store_commit_inflight(s->st));
		chunkset_clear(&f->busy);
		chunkset_clear(&s->busy);
		srv_kick(s);
		return true;
	}
	f->active = true;
	f->err = 0;
	f->step = 0;
	f->pending = 0;
	/* step 0: the copied data durable before the journal points at it */
	r = io_engine_flush(s->eng, s->sdev, flight_io_done, s);
	if (r < 0) {
		f->err = r;
		flight_finish(s);
		return true;
	}
	f->pending = 1;
	if ((r = io_engine_submit(s->eng)) < 0)
		f->err = r;
	return true;
}

/* Waits for the flight to end (the plain commit and the stop need it). */
int srv_commit_flight_wait(struct srv *s)
{
	while (s->flight.active) {
		int r = io_engine_reap(s->eng, 1000);
		if (r < 0) {
			srv_fatal(s, r, err_get());
			return r;
		}
	}
	return 0;
}

int srv_commit_now(struct srv *s)
{
	int r;
	/* commits stay in order: the one in flight first */
	if ((r = srv_commit_flight_wait(s)) < 0)
		return r;
	if (copy_pending(s))
		return err_set(EBUSY, "copy-outs in flight");
	/* A failed copy leaves exceptions without their data: that
	 * transaction is thrown away (do_abort), never committed.  */
	if (copy_failed(s))
		return err_set(EBUSY, "a copy-out failed: the transaction is being discarded");
	if (s->fatal)
		return err_set(ENOLCK, "server is stopping after a fatal error");
	if (store_txn_pending(s->st)) {
		if ((r = lease_ok(s)) < 0)
			return r;
		if ((r = io_dev_flush(s->sdev)) < 0) {
			srv_fatal(s, r, err_get());
			return r;
		}
		if ((r = store_commit(s->st)) < 0) {
			srv_fatal(s, r, err_get());
			return r;
		}
		CSNAP_ASSERT(!store_txn_pending(s->st));
		s->commits++;
		s->stat_commits++;
		s->txn_unsafe = false;
		store_get_info(s->st, &s->info);
	}
	if (s->busy.used)
		chunkset_clear(&s->busy);
	copy_batch_done(s);
	struct req *q;
	while ((q = req_list_pop(&s->after_commit))) {
		CSNAP_ASSERT(q->reply);	/* srv_reply_after_commit put it there */
		conn_send(q->c, q->reply);
		srv_req_done(s, q);
	}
	srv_kick(s);
	return 0;
}

void srv_close_store(struct srv *s)
{
	if (!s->st)
		return;
	/* the journal's staged images are the flight's write buffers */
	srv_commit_flight_wait(s);
	/* A checkpoint overwrites metadata home blocks: like a commit, only
	 * while the lease is certainly ours (a master paused after its
	 * drain could otherwise write over a successor's blocks).  */
	if (!s->fatal && lease_may_commit(&s->lm) == 0) {
		store_close(s->st);
	} else {
		log_warn("closing the store without a checkpoint (%s): the next master replays the journal",
			 s->fatal ? "fatal stop" : err_get());
		store_close_nockpt(s->st);
	}
	s->st = NULL;
	s->sdev = NULL;
}

void srv_abort_txn(struct srv *s, int err)
{
	(void)err;
	copy_fail(s);
}

/* The open transaction has exceptions without their data: throw it away
 * by reopening the engine, and fail the writes that waited for it.  */
static void do_abort(struct srv *s)
{
	log_error("copy-out failed: discarding the open transaction and failing its writes");
	store_close(s->st);
	s->st = NULL;
	struct store_open_opts so = { .cache_bytes = s->o.cache_bytes };
	int r = store_open(s->o.store_path, &so, &s->st);
	if (r < 0) {
		srv_fatal(s, r, err_get());
		return;
	}
	s->sdev = store_dev(s->st);
	store_get_info(s->st, &s->info);
	struct req_list keep = { 0 };
	struct req *q;
	while ((q = req_list_pop(&s->waiting))) {
		if (q->m.type == PROTO_ORIGIN_WRITE || q->m.type == PROTO_SNAP_WRITE) {
			conn_reply_error(q->c, &q->m, EIO, "copy-out to the snapshot store failed");
			srv_req_done(s, q);
		} else {
			req_list_push(&keep, q);
		}
	}
	while ((q = req_list_pop(&keep)))
		srv_park(s, q);
	/* Replies waiting for a late commit (a create, a delete) describe
	 * changes of the transaction just thrown away: they were not done.  */
	while ((q = req_list_pop(&s->after_commit))) {
		conn_reply_error(q->c, &q->m, EIO,
				 "not done: a copy-out failed and the transaction was discarded; retry");
		srv_req_done(s, q);
	}
	chunkset_clear(&s->busy);
	s->txn_unsafe = false;
	copy_batch_reset(s);
	srv_kick(s);
}

static void commit_step(struct srv *s)
{
	if (s->flight.active || copy_pending(s) || s->fatal)
		return;
	/* The abort reopens the engine, whose close and journal replay
	 * write metadata home: like a commit, only while the lease is
	 * certainly ours (a late renewal holds the abort, as it holds
	 * commits).  */
	if (copy_failed(s)) {
		if (lease_ok(s) == 0)
			do_abort(s);
		return;
	}
	if (store_txn_pending(s->st) || s->busy.used || s->after_commit.n) {
		/* data-path changes only: pipelined (a deletion's commit
		 * releases the origin writes held by txn_unsafe, and replies
		 * on after_commit belong to the plain commit) */
		if (s->pipeline && s->eng && store_txn_pending(s->st) && !s->after_commit.n &&
		    !s->txn_unsafe && flight_begin(s))
			return;
		srv_commit_now(s);
	}
}

static void reprocess(struct srv *s)
{
	for (int rounds = 0; s->kick && rounds < 4 && !s->fatal; rounds++) {
		s->kick = false;
		s->quiesce = 0;
		struct req_list l = s->waiting;
		memset(&s->waiting, 0, sizeof s->waiting);
		struct req *r;
		while ((r = req_list_pop(&l))) {
			if (s->fatal) {
				srv_req_done(s, r);
				continue;
			}
			route_process(s, r);
		}
		copy_flush(s);
		commit_step(s);
	}
}

/* End of the lock re-upload window after a takeover (checked every loop
 * turn: origin writes wait for it).  */
void srv_grace_check(struct srv *s)
{
	if (s->grace_until_ms && csnap_now_ms() >= s->grace_until_ms) {
		log_info("lock re-upload window over: serving origin writes");
		s->grace_until_ms = 0;
		srv_kick(s);
	}
}

/* Between transactions, write committed metadata home and empty the
 * journal, so a master that dies replays only what it committed since
 * the last tick: takeover time stays short (a journal of a few thousand
 * transactions took ~0.6 s to replay).  Like a commit, only while the
 * lease certainly holds.  */
void srv_checkpoint(struct srv *s)
{
	if (s->commits == s->ckpt_commits || s->fatal || s->stopping || copy_pending(s) ||
	    s->flight.active || store_txn_pending(s->st) || s->busy.used || s->after_commit.n)
		return;
	if (lease_ok(s) < 0)
		return;
	int r = store_checkpoint(s->st);
	if (r < 0) {
		srv_fatal(s, r, err_get());
		return;
	}
	s->ckpt_commits = s->commits;
}

/* The end of a loop turn, after every ready event was handled: start the
 * queued copies, commit once for the batch, finish a barrier, then process
 * parked requests again (a few rounds: each may commit and free more).  */
void srv_turn_end(struct srv *s)
{
	srv_grace_check(s);
	copy_flush(s);
	commit_step(s);
	admin_poll(s);
	rb_poll(s);
	reprocess(s);
	copy_flush(s);
}

int srv_init(struct srv *s, const struct server_opts *o)
{
	memset(s, 0, sizeof *s);
	s->o = *o;
	s->lfd = s->iofd = -1;
	s->lm.sock = -1;
	s->fdres.spare = -1;
	chunkset_init(&s->locks);
	chunkset_init(&s->olocks);
	chunkset_init(&s->busy);
	chunkset_init(&s->flight.busy);
	if (dp_init(s) < 0 || copy_init(s) < 0 || admin_init(s) < 0 || inval_init(s) < 0 || grants_init(s) < 0 ||
	    rb_init(s) < 0) {
		srv_free(s);
		return err_set(ENOMEM, "out of memory");
	}
	return 0;
}

void srv_free(struct srv *s)
{
	rb_free(s);
	grants_free(s);
	inval_free(s);
	admin_free(s);
	copy_free(s);
	dp_free(s);
	chunkset_free(&s->locks);
	chunkset_free(&s->olocks);
	chunkset_free(&s->busy);
	chunkset_free(&s->flight.busy);
}
