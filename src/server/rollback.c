/*
 * src/server/rollback.c - `csnap snapshot rollback` on the master: the
 * SNAP_ROLLBACK request and the background steps that move a snapshot's
 * content back onto the origin (docs/server.md "Rollback", docs/store.md
 * "Rollback" for the engine's part, src/store/rollback.c).
 *
 * The start: refused while the snapshot has clients that used it (as a
 * delete is), while grants of departed clients may still run (theirs or
 * the origin's), and while an origin client is connected (exports do not
 * yet ask the master before reading the origin, so one would read the old
 * content at chunks still to be moved: see "What is not built" in
 * docs/server.md).  Then store_rollback_start() is committed and the
 * admin answered.
 *
 * A step, between requests, whenever the store is quiet (no copy-out in
 * flight, nothing uncommitted, no lock re-upload window):
 *   IDLE     pick the chunks: those an origin write waits for first
 *            (`urgent`), else the next ones from the cursor;
 *            store_rollback_prepare(), copy-outs for older snapshots
 *            (origin -> store, synchronous), chunks marked busy;
 *   COPIED   commit (the store is flushed first);
 *   LOCKWAIT wait until no snapshot reader holds a read lock on a chunk
 *            (it may be reading the old origin content); moves (store ->
 *            origin, synchronous), origin flushed, store_rollback_finish();
 *   MOVED    commit; the chunks stop being busy.
 * Invariants: the step's chunks are in `busy` (origin writes over them
 * wait) from prepare until the commit after the finish, so no write over
 * them is answered that a replayed step could overwrite; the moves start
 * only after the copy-outs are committed and the read locks released;
 * no other copy-out joins the transaction while the step's copy-outs are
 * uncommitted (the batch is closed: a failed copy would throw them away
 * while the step went on).  Any I/O error is fatal: the master stops
 * without committing, the next one replays and repeats the step.
 *
 * Step size: CSNAP_ROLLBACK_STEP chunks (1..4096, default 128), read from
 * the environment at start; the copies run on the loop thread, so a step
 * holds the loop for its I/O (128 x 64 KiB: a few tens of ms).
 */
#include "src/server/srv.h"

#include "ioengine/ioengine.h"
#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RB_STEP_MAX	4096u
#define RB_STEP_DEFAULT	128u
#define RB_FULL_RETRY_MS 1000	/* store full (policy fail): try again */

enum rb_phase { RB_IDLE, RB_COPIED, RB_LOCKWAIT, RB_MOVED };

/* This file's state (struct srv points at it).  */
struct rb_state {
	enum rb_phase phase;
	uint32_t step;			/* chunks per step */
	/* the step in flight */
	chunk_t chunks[RB_STEP_MAX];
	uint32_t n;
	chunk_t advance;		/* for store_rollback_finish() */
	struct store_copy copies[RB_STEP_MAX], moves[RB_STEP_MAX];
	uint32_t nmoves;
	struct chunkset busy;		/* the step's chunks */
	struct chunkset urgent;		/* pending chunks origin writes wait for */
	struct io_dev *origin;		/* the origin, read-write (moves) */
	void *buf;			/* one chunk */
	int64_t full_until_ms;		/* store full: no step before */
	bool was_active;		/* a rollback ran at the last poll */
	char name[STORE_SNAP_NAME_MAX + 1];
	uint64_t stat_steps, stat_moved, stat_copied;
};

int rb_init(struct srv *s)
{
	s->rb = calloc(1, sizeof *s->rb);
	if (!s->rb)
		return -ENOMEM;
	chunkset_init(&s->rb->busy);
	chunkset_init(&s->rb->urgent);
	s->rb->step = RB_STEP_DEFAULT;
	const char *e = getenv("CSNAP_ROLLBACK_STEP");
	if (e && *e) {
		char *end;
		unsigned long v = strtoul(e, &end, 10);
		if (*end || v < 1 || v > RB_STEP_MAX)
			log_warn("CSNAP_ROLLBACK_STEP=%s is not 1..%u: using %u", e, RB_STEP_MAX,
				 RB_STEP_DEFAULT);
		else
			s->rb->step = (uint32_t)v;
	}
	return 0;
}

void rb_free(struct srv *s)
{
	if (!s->rb)
		return;
	chunkset_free(&s->rb->busy);
	chunkset_free(&s->rb->urgent);
	if (s->rb->origin)
		io_dev_close(s->rb->origin);
	free(s->rb->buf);
	free(s->rb);
	s->rb = NULL;
}

bool rb_batch_closed(const struct srv *s)
{
	return s->rb->phase == RB_COPIED;
}

bool rb_busy(const struct srv *s, const struct proto_ranges *rs)
{
	if (!s->rb->busy.used)
		return false;
	for (uint32_t i = 0; i < rs->n; i++)
		if (chunkset_any(&s->rb->busy, rs->r[i].start, rs->r[i].count))
			return true;
	return false;
}

bool rb_full(const struct srv *s)
{
	return s->rb->full_until_ms != 0;
}

static chunk_t rb_where[RB_STEP_MAX];

int rb_origin_wait(struct srv *s, uint64_t first, uint32_t n)
{
	while (n) {
		uint32_t k = n > RB_STEP_MAX ? RB_STEP_MAX : n;
		int e = store_origin_read(s->st, first, k, rb_where);
		if (e < 0)
			return e;
		for (uint32_t i = 0; i < k; i++)
			if (rb_where[i] != STORE_ON_ORIGIN && !chunkset_get(&s->rb->urgent, first + i) &&
			    (e = chunkset_add(&s->rb->urgent, first + i, 1)) < 0)
				return e;
		first += k;
		n -= k;
	}
	return 0;
}

bool rb_snap_blocked(const struct srv *s, uint32_t snap_id, char *why, size_t len)
{
	struct store_rollback rb;

	store_rollback_get(s->st, &rb);
	if (!rb.active || (snap_id != rb.snap_id && snap_id <= rb.source_id))
		return false;
	snprintf(why, len, "this snapshot reads data that the running rollback to \"%s\" is moving "
		 "(chunk %llu of %llu): usable when the rollback ends", rb.name,
		 (unsigned long long)rb.cursor, (unsigned long long)rb.origin_chunks);
	return true;
}

bool rb_refuses_origin(const struct srv *s, char *why, size_t len)
{
	struct store_rollback rb;

	store_rollback_get(s->st, &rb);
	if (!rb.active)
		return false;
	snprintf(why, len, "a rollback to snapshot \"%s\" is running (chunk %llu of %llu): "
		 "the origin can be exported again when it ends", rb.name,
		 (unsigned long long)rb.cursor, (unsigned long long)rb.origin_chunks);
	return true;
}

/* ---- the request --------------------------------------------------------- */

static void reply_progress(struct srv *s, struct req *r)
{
	struct store_rollback rb;
	struct proto_msg m;

	store_rollback_get(s->st, &rb);
	proto_msg_init(&m, PROTO_SNAP_ROLLBACK | PROTO_REPLY, r->m.id);
	if (rb.active) {
		m.u.rollback.flags = PROTO_RB_ACTIVE;
		snprintf(m.u.rollback.name, sizeof m.u.rollback.name, "%s", rb.name);
		m.u.rollback.cursor = rb.cursor;
		m.u.rollback.origin_chunks = rb.origin_chunks;
		m.u.rollback.started = rb.started;
	}
	conn_send(r->c, &m);
	srv_req_done(s, r);
}

static void reply_err(struct srv *s, struct req *r, int err, const char *why)
{
	conn_reply_error(r->c, &r->m, err, why);
	srv_req_done(s, r);
}

/* Refusals that hold before and after the barrier: 0 or answered.  */
static int start_check(struct srv *s, struct req *r, struct store_snapshot *sn)
{
	struct store_rollback rb;
	char why[300];

	if (store_snapshot_find(s->st, r->m.u.snap_name.name, sn) < 0 || !(sn->flags & STORE_SNAP_LIVE)) {
		reply_err(s, r, ENOENT, "no such snapshot");
		return -1;
	}
	store_rollback_get(s->st, &rb);
	if (rb.active) {
		snprintf(why, sizeof why, "a rollback to snapshot \"%s\" is running (chunk %llu of %llu); "
			 "wait for it to finish", rb.name, (unsigned long long)rb.cursor,
			 (unsigned long long)rb.origin_chunks);
		reply_err(s, r, EBUSY, why);
		return -1;
	}
	/* An older export would read the origin device directly.  */
	for (const struct conn *c = s->conns; c; c = c->next) {
		if (c->state != CONN_READY || c->volume != PROTO_VOL_ORIGIN || c->dead || c->rb_ok)
			continue;
		snprintf(why, sizeof why, "origin client %s (%s) cannot follow a rollback (an older csnap "
			 "export): stop or upgrade it first", c->peer, c->name);
		reply_err(s, r, EBUSY, why);
		return -1;
	}
	/* Its clients cache where its chunks are; the rollback hands them to
	 * the source, whose exceptions the steps free.  */
	if (admin_snap_in_use(s, sn->id)) {
		reply_err(s, r, EBUSY, "snapshot is in use by connected clients");
		return -1;
	}
	return 0;
}

void admin_snap_rollback(struct srv *s, struct req *r)
{
	struct store_snapshot sn;

	if (r->m.flags & PROTO_F_QUERY) {
		reply_progress(s, r);
		return;
	}
	if (start_check(s, r, &sn) < 0)
		return;
	/* A client of the snapshot cut off a moment ago may not know it yet
	 * (the barrier waits for departed origin clients' grants).  */
	if (srv_snap_grants_until(s, sn.id) > csnap_now_ms()) {
		grants_wait(s);
		srv_park(s, r);
		return;
	}
	/* Like a snapshot create: every export drains its origin writes,
	 * forgets which chunks it knew to be unique (some will be pending)
	 * and asks before reading from then on.  */
	admin_barrier_for(s, r);
}

void rb_barrier_done(struct srv *s, struct req *r)
{
	struct store_snapshot sn;

	/* things may have changed while the barrier was up */
	if (start_check(s, r, &sn) < 0)
		return;
	bool del = r->m.flags & PROTO_F_DELETE;
	int e = store_rollback_start(s->st, sn.id, del);
	if (e < 0) {
		reply_err(s, r, -e, err_get());
		return;
	}
	log_info("rollback to snapshot %s (id %u) started%s: the origin reads its content; "
		 "moving it back in steps of %u chunks", sn.name, sn.id,
		 del ? ", the snapshot deleted" : "", s->rb->step);
	struct proto_msg m;
	proto_msg_init(&m, PROTO_SNAP_ROLLBACK | PROTO_REPLY, r->m.id);
	m.u.rollback.flags = PROTO_RB_ACTIVE;
	snprintf(m.u.rollback.name, sizeof m.u.rollback.name, "%s", sn.name);
	m.u.rollback.origin_chunks = s->info.origin_chunks;
	m.u.rollback.started = (uint64_t)time(NULL);
	admin_commit_and_reply(s, r, &m);
	srv_kick(s);
}

uint32_t rb_origin_state(const struct srv *s)
{
	struct store_rollback rb;

	store_rollback_get(s->st, &rb);
	return rb.active ? PROTO_STATE_ROLLBACK : 0;
}

/* The end is committed: exports read the origin directly again.  */
static void announce_end(struct srv *s)
{
	struct proto_msg m;

	proto_msg_init(&m, PROTO_BARRIER, 0);
	m.flags = PROTO_F_RB_END;
	for (struct conn *c = s->conns; c; c = c->next)
		if (c->state == CONN_READY && c->volume == PROTO_VOL_ORIGIN && c->rb_ok && !c->dead)
			conn_send(c, &m);
}

/* ---- steps ---------------------------------------------------------------- */

static int cmp_chunk(const void *a, const void *b)
{
	chunk_t x = *(const chunk_t *)a, y = *(const chunk_t *)b;
	return x < y ? -1 : x > y;
}

/* The chunks origin writes wait for that are still pending, sorted (at
 * most one step), into rb->chunks; the others leave `urgent`.  */
static int pick_urgent(struct srv *s)
{
	struct rb_state *rb = s->rb;
	size_t pos = 0;
	uint64_t key;
	uint32_t cnt;

	rb->n = 0;
	while (rb->n < rb->step && chunkset_next(&rb->urgent, &pos, &key, &cnt))
		rb->chunks[rb->n++] = key;
	qsort(rb->chunks, rb->n, sizeof rb->chunks[0], cmp_chunk);
	for (uint32_t i = 0; i < rb->n; i++)
		chunkset_sub(&rb->urgent, rb->chunks[i], UINT32_MAX);
	/* one step spans less than 4 G chunks (store_rollback_prepare) */
	while (rb->n > 1 && rb->chunks[rb->n - 1] - rb->chunks[0] >= UINT32_MAX)
		chunkset_add(&rb->urgent, rb->chunks[--rb->n], 1);
	uint32_t k = 0;
	for (uint32_t i = 0; i < rb->n; i++) {
		int e = store_origin_read(s->st, rb->chunks[i], 1, rb_where);
		if (e < 0)
			return e;
		if (rb_where[0] != STORE_ON_ORIGIN)
			rb->chunks[k++] = rb->chunks[i];
	}
	rb->n = k;
	rb->advance = 0;	/* out of cursor order: the cursor stays */
	return 0;
}

static int open_origin(struct srv *s)
{
	struct rb_state *rb = s->rb;
	int e;

	if (!rb->buf && !(rb->buf = io_buf_alloc(s->chunk_size)))
		return err_set(ENOMEM, "out of memory for a rollback buffer");
	if (!rb->origin && (e = io_dev_open(s->o.origin_path, IO_DEV_RDWR, &rb->origin)) < 0)
		return err_prefix(-e, "rollback: opening the origin %s for writing", s->o.origin_path);
	return 0;
}

/* Bytes of origin chunk C (the last one may be partial).  */
static size_t chunk_len(const struct srv *s, chunk_t c)
{
	uint64_t off = c * s->chunk_size;
	if (off + s->chunk_size <= s->origin_size)
		return s->chunk_size;
	unsigned align = io_dev_align(s->rb->origin);
	return (size_t)((s->origin_size - off) / align * align);
}

/* Origin chunk C to store chunk DST (a copy-out: the store chunk is
 * written whole, zero past a partial last origin chunk).  */
static int copy_out(struct srv *s, chunk_t c, chunk_t dst)
{
	size_t len = chunk_len(s, c);
	int e;

	if (len < s->chunk_size)
		memset(s->rb->buf, 0, s->chunk_size);
	if (len && (e = io_dev_pread(s->rb->origin, s->rb->buf, len, c * s->chunk_size)) < 0)
		return e;
	return io_dev_pwrite(s->sdev, s->rb->buf, s->chunk_size, store_chunk_offset(s->st, dst));
}

enum { STEP_NONE, STEP_STARTED, STEP_CURSOR };

/* IDLE -> COPIED (STEP_STARTED); STEP_CURSOR: no pending chunk below
 * rb->advance, only the cursor moves; STEP_NONE: nothing now.  < 0:
 * fatal.  */
static int step_start(struct srv *s)
{
	struct rb_state *rb = s->rb;
	uint32_t nc = 0;
	int e;

	if (rb->urgent.used) {
		if ((e = pick_urgent(s)) < 0)
			return e;
		if (!rb->n)
			return STEP_NONE;	/* all done meanwhile */
	} else if ((e = store_rollback_next(s->st, rb->chunks, rb->step, &rb->n, &rb->advance)) < 0) {
		return e;
	} else if (!rb->n) {
		return rb->advance ? STEP_CURSOR : STEP_NONE;
	}
	if ((e = open_origin(s)) < 0)
		return e;
	for (;;) {
		e = store_rollback_prepare(s->st, rb->chunks, rb->n, rb->copies, &nc, rb->moves,
					   &rb->nmoves);
		if (e != -ENOSPC)
			break;
		enum store_short why = store_enospc_kind(s->st);
		if (why != STORE_SHORT_DATA && rb->n > 1) {
			/* might not fit the tree area or the journal: fewer */
			uint32_t half = rb->n / 2;
			for (uint32_t i = half; i < rb->n && !rb->advance; i++)
				chunkset_add(&rb->urgent, rb->chunks[i], 1);
			if (rb->advance)
				rb->advance = rb->chunks[half];
			rb->n = half;
			continue;
		}
		int p = why == STORE_SHORT_TXN ? 0 : admin_store_full(s, why == STORE_SHORT_META);
		if (p < 0)
			return p;
		if (p == 0 || copy_pending(s) || store_txn_pending(s->st)) {
			/* policy "fail" (or nothing left to release), or the
			 * release is not committed yet: later */
			if (p == 0 && !rb->full_until_ms)
				log_error("rollback to snapshot %s: the snapshot store is full; it waits for "
					  "space, origin writes over chunks still to move fail with ENOSPC",
					  rb->name);
			if (p == 0)
				rb->full_until_ms = csnap_now_ms() + RB_FULL_RETRY_MS;
			/* the urgent chunks stay wanted */
			for (uint32_t i = 0; i < rb->n && !rb->advance; i++)
				chunkset_add(&rb->urgent, rb->chunks[i], 1);
			rb->n = 0;
			rb->advance = 0;
			return STEP_NONE;
		}
	}
	if (e < 0)
		return e;
	if (rb->full_until_ms)
		log_info("rollback to snapshot %s: space again, going on", rb->name);
	rb->full_until_ms = 0;
	/* older snapshots' copies, before anything moves */
	for (uint32_t i = 0; i < nc; i++)
		if ((e = copy_out(s, rb->copies[i].origin_chunk, rb->copies[i].dst)) < 0)
			return err_prefix(-e, "rollback: copy-out of origin chunk %llu",
					  (unsigned long long)rb->copies[i].origin_chunk);
	rb->stat_copied += nc;
	if ((e = copy_mark_busy(s, rb->copies, nc)) < 0)
		return e;
	for (uint32_t i = 0; i < rb->n; i++)
		if ((e = chunkset_add(&rb->busy, rb->chunks[i], 1)) < 0)
			return e;
	rb->phase = RB_COPIED;
	return STEP_STARTED;
}

/* LOCKWAIT -> MOVED.  < 0: fatal.  */
static int step_move(struct srv *s)
{
	struct rb_state *rb = s->rb;
	int e;

	for (uint32_t i = 0; i < rb->nmoves; i++) {
		chunk_t c = rb->moves[i].origin_chunk;
		size_t len = chunk_len(s, c);
		/* the store chunk is whole; the origin's last may not be */
		if ((e = io_dev_pread(s->sdev, rb->buf, s->chunk_size,
				      store_chunk_offset(s->st, rb->moves[i].src))) < 0 ||
		    (len && (e = io_dev_pwrite(rb->origin, rb->buf, len, c * s->chunk_size)) < 0))
			return err_prefix(-e, "rollback: moving store chunk %llu to origin chunk %llu",
					  (unsigned long long)rb->moves[i].src, (unsigned long long)c);
	}
	if (rb->nmoves && (e = io_dev_flush(rb->origin)) < 0)
		return err_prefix(-e, "rollback: flushing the origin");
	rb->stat_moved += rb->nmoves;
	if ((e = store_rollback_finish(s->st, rb->moves, rb->nmoves, rb->advance)) < 0)
		return e;
	rb->phase = RB_MOVED;
	return 0;
}

/* A snapshot reader may be reading the old origin content, or an origin
 * reader the source chunk, of a chunk of the step.  */
static bool locked(const struct srv *s)
{
	const struct rb_state *rb = s->rb;
	if (!s->locks.used && !s->olocks.used)
		return false;
	for (uint32_t i = 0; i < rb->n; i++)
		if (chunkset_get(&s->locks, rb->chunks[i]) || chunkset_get(&s->olocks, rb->chunks[i]))
			return true;
	return false;
}

/* Commit the step's transaction.  1: committed, 0: later, < 0: fatal.  */
static int step_commit(struct srv *s)
{
	if (copy_pending(s) || copy_failed(s))
		return 0;	/* commit_step commits (or throws away) first */
	int e = srv_commit_now(s);
	return e == -EAGAIN ? 0 : e < 0 ? e : 1;
}

/* May a new step start now?  */
static bool can_start(const struct srv *s)
{
	/* grants: an export of a previous master (or one cut off) may still
	 * read a source chunk under a lock this master does not know */
	return !copy_pending(s) && !copy_failed(s) && !s->busy.used && !store_txn_pending(s->st) &&
	       !s->grace_until_ms && !s->lease_late && !admin_barrier_active(s) &&
	       csnap_now_ms() >= grants_horizon(s) &&
	       !(s->rb->full_until_ms && csnap_now_ms() < s->rb->full_until_ms);
}

static void rb_fatal(struct srv *s, int e)
{
	char why[300];
	snprintf(why, sizeof why, "rollback step: %s", err_get());
	log_error("%s", why);
	srv_fatal(s, e, why);
}

void rb_poll(struct srv *s)
{
	struct rb_state *rb = s->rb;
	struct store_rollback info;
	int e;

	if (!s->st || s->fatal)
		return;
	store_rollback_get(s->st, &info);
	if (info.active && !rb->was_active) {
		snprintf(rb->name, sizeof rb->name, "%s", info.name);
		log_info("rollback to snapshot %s: at chunk %llu of %llu", info.name,
			 (unsigned long long)info.cursor, (unsigned long long)info.origin_chunks);
	}
	rb->was_active = info.active;
	switch (rb->phase) {
	case RB_IDLE:
		if (!info.active || s->stopping || !can_start(s))
			return;
		if ((e = step_start(s)) < 0)
			goto fatal;
		if (e == STEP_CURSOR) {
			/* nothing pending in this stretch: only the cursor */
			if ((e = store_rollback_finish(s->st, NULL, 0, rb->advance)) < 0)
				goto fatal;
			rb->phase = RB_MOVED;
			goto moved;
		}
		if (e == STEP_NONE)
			return;
		/* fallthrough */
	case RB_COPIED:
		if (copy_failed(s)) {
			/* cannot be: the batch is closed while COPIED */
			e = err_set(EIO, "a copy-out failed while a rollback step's copies were uncommitted");
			goto fatal;
		}
		if ((e = step_commit(s)) <= 0) {
			if (e < 0)
				goto fatal;
			return;
		}
		rb->phase = RB_LOCKWAIT;
		/* fallthrough */
	case RB_LOCKWAIT:
		/* snapshot readers that were told "on the origin" before the
		 * copy-outs were committed (later ones read the copy) */
		if (locked(s))
			return;
		if ((e = step_move(s)) < 0)
			goto fatal;
		/* fallthrough */
	case RB_MOVED:
	moved:
		if ((e = step_commit(s)) <= 0) {
			if (e < 0)
				goto fatal;
			return;
		}
		chunkset_clear(&rb->busy);
		rb->phase = RB_IDLE;
		rb->stat_steps++;
		srv_kick(s);	/* origin writes that waited for these chunks */
		store_rollback_get(s->st, &info);
		if (!info.active) {
			announce_end(s);
			chunkset_clear(&rb->urgent);
			rb->was_active = false;
			log_info("rollback to snapshot %s done: %llu chunks moved onto the origin, "
				 "%llu copied out for older snapshots, %llu steps", rb->name,
				 (unsigned long long)rb->stat_moved, (unsigned long long)rb->stat_copied,
				 (unsigned long long)rb->stat_steps);
		}
		return;
	}
	return;
fatal:
	rb_fatal(s, e);
}

int64_t rb_due_ms(const struct srv *s)
{
	const struct rb_state *rb = s->rb;

	/* Other phases wait for a commit or a lock release, which events
	 * and the tick bring.  */
	if (!s->st || s->fatal || s->stopping || rb->phase != RB_IDLE || !rb->was_active)
		return 0;
	int64_t now = csnap_now_ms();
	if (rb->full_until_ms && now < rb->full_until_ms)
		return rb->full_until_ms;
	if (grants_horizon(s) > now)
		return grants_horizon(s);
	return can_start(s) ? now : 0;
}
