/*
 * src/server/datapath.c - the requests of the data path: origin-write
 * queries (copy-out before the origin may change), snapshot reads (store
 * chunk, or origin + read lock), lock release, snapshot writes (a store
 * chunk unique to the snapshot) and re-upload of read locks after a master
 * change.
 *
 * Every handler is idempotent given the committed store state (see srv.h):
 * it either replies or parks the request to be processed again.
 *
 * An origin-write reply means "these chunks are no longer shared with any
 * snapshot and nobody reads them from the origin": the client may write
 * them and remember that until the next snapshot barrier, while its grant
 * lasts (proto.h).  It is sent only
 * after the copy-outs are durable and committed and the chunks' read locks
 * are released.
 */
#include "src/server/srv.h"

#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DP_PIECE	4096	/* chunks handed to the engine per call */
#define DP_MAX_LOCKS	(1u << 20)	/* chunks per lock upload / release */

/* This file's state (struct srv points at it).  */
struct dp_state {
	/* read locks of connections that went away, kept for grace_ms */
	struct lock_orphan *orphans;
	uint64_t stat_locks_refused;	/* stale lock re-uploads refused */
};

/* The locks of a dropped connection, until it re-uploads them.  */
struct lock_orphan {
	struct lock_orphan *next;
	struct chunkset locks;
	int64_t expires_ms;
};

int dp_init(struct srv *s)
{
	s->dp = calloc(1, sizeof *s->dp);
	return s->dp ? 0 : -ENOMEM;
}

void dp_free(struct srv *s)
{
	if (!s->dp)
		return;
	/* dp_tick() while stopping released them all.  */
	CSNAP_ASSERT(!s->dp->orphans);
	free(s->dp);
	s->dp = NULL;
}

uint64_t dp_locks_refused(const struct srv *s)
{
	return s->dp->stat_locks_refused;
}

static struct store_copy dp_copies[DP_PIECE];
static chunk_t dp_chunks[DP_PIECE];

static bool ranges_in(const struct proto_ranges *rs, uint64_t limit, uint64_t *total)
{
	uint64_t t = 0;
	for (uint32_t i = 0; i < rs->n; i++) {
		if (rs->r[i].start >= limit || rs->r[i].count > limit - rs->r[i].start)
			return false;
		t += rs->r[i].count;
	}
	*total = t;
	return true;
}

static bool ranges_busy(const struct chunkset *cs, const struct proto_ranges *rs)
{
	if (!cs->used)
		return false;
	for (uint32_t i = 0; i < rs->n; i++)
		if (chunkset_any(cs, rs->r[i].start, rs->r[i].count))
			return true;
	return false;
}

static void reply_ok(struct srv *s, struct req *r)
{
	struct proto_msg m;
	proto_msg_init(&m, (uint16_t)(r->m.type | PROTO_REPLY), r->m.id);
	conn_send(r->c, &m);
	srv_req_done(s, r);
}

static void reply_err(struct srv *s, struct req *r, int err, const char *why)
{
	conn_reply_error(r->c, &r->m, err, why);
	srv_req_done(s, r);
}

/* The ranges of snapshot request R lie in its snapshot and hold at most
 * MAX chunks (*TOTAL); otherwise R is answered (EINVAL, or E2BIG with
 * TOO_MANY) and the result is false.  */
static bool snap_ranges_ok(struct srv *s, struct req *r, uint64_t max, const char *too_many,
			   uint64_t *total)
{
	if (!ranges_in(&r->m.u.ranges, r->c->snap_chunks, total)) {
		reply_err(s, r, EINVAL, "chunk range beyond the end of the snapshot");
		return false;
	}
	if (*total > max) {
		reply_err(s, r, E2BIG, too_many);
		return false;
	}
	return true;
}

/* -ENOSPC from the engine for a piece of N chunks, nothing changed.
 * Returns 1 to retry the request now, 2 to retry the piece in halves, 0
 * when the request was parked or answered.  Only a full data area (or a
 * tree area that cannot take even one chunk) is "store full" and goes to
 * the policy, which may release snapshots; a request that merely might
 * not fit the tree area or the open transaction is split or waits for the
 * commit instead.  */
static int on_enospc(struct srv *s, struct req *r, uint32_t n)
{
	enum store_short why = store_enospc_kind(s->st);
	bool pending = copy_pending(s) || s->busy.used || store_txn_pending(s->st);

	if (why != STORE_SHORT_DATA && !pending && n > 1) {
		log_info("%u chunks in one transaction: %s; splitting the request", n, err_get());
		return 2;
	}
	if (pending) {
		/* Space may come back with the policy or the commit only
		 * once the open transaction is committed.  */
		srv_park(s, r);
		return 0;
	}
	if (why == STORE_SHORT_TXN) {	/* one chunk larger than the journal: cannot be */
		log_error("origin/snapshot write: %s", err_get());
		reply_err(s, r, ENOSPC, err_get());
		return 0;
	}
	int p = admin_store_full(s, why == STORE_SHORT_META);
	if (p == 1)
		return 1;
	if (p == 0)
		reply_err(s, r, ENOSPC, why == STORE_SHORT_META ?
			  "snapshot store metadata area is full" : "snapshot store is full");
	else
		reply_err(s, r, -p, err_get());
	return 0;
}

void dp_origin_write(struct srv *s, struct req *r)
{
	const struct proto_ranges *rs = &r->m.u.ranges;
	uint64_t total;

	if (!ranges_in(rs, s->info.origin_chunks, &total)) {
		reply_err(s, r, EINVAL, "chunk range beyond the end of the origin");
		return;
	}
	/* Held back: a snapshot is being created (the answer must take it
	 * into account), a deletion is not yet committed (a crash would
	 * bring the snapshot back), clients may still re-upload read locks
	 * (takeover), or the open batch is closing.  */
	if (admin_barrier_active(s) || s->txn_unsafe || csnap_now_ms() < s->grace_until_ms ||
	    ranges_busy(&s->busy, rs) || rb_busy(s, rs) || !srv_batch_open(s)) {
		srv_park(s, r);
		return;
	}
	uint32_t piece = DP_PIECE;
retry:;
	bool copying = false;
	for (uint32_t i = 0; i < rs->n; i++) {
		uint64_t first = rs->r[i].start, left = rs->r[i].count;
		while (left) {
			uint32_t n = left > piece ? piece : (uint32_t)left, nout = 0;
			if (copying && !srv_batch_open(s))
				goto park;
			int e = store_origin_write(s->st, first, n, dp_copies, &nout);
			if (e == -ENOSPC) {
				if (copying)
					goto park;	/* the commit makes room */
				int how = on_enospc(s, r, n);
				if (how == 2) {
					piece = n / 2;
					continue;
				}
				if (how == 1)
					goto retry;
				return;
			}
			if (e == -EAGAIN) {
				/* a chunk a rollback has still to move here
				 * (rollback.c): moved first, then asked again */
				if (rb_full(s)) {
					reply_err(s, r, ENOSPC, "snapshot store is full: the rollback "
						  "cannot move these chunks back yet");
					return;
				}
				if ((e = rb_origin_wait(s, first, n)) == 0)
					goto park;
			}
			if (e < 0) {
				log_error("origin write query: %s", err_get());
				srv_fatal(s, e, err_get());
				reply_err(s, r, EIO, "metadata error");
				return;
			}
			if (nout) {
				copying = true;
				if ((e = copy_mark_busy(s, dp_copies, nout)) < 0 ||
				    (e = copy_start(s, dp_copies, nout)) < 0) {
					/* do_abort() fails it with EIO.  */
					srv_abort_txn(s, e);
					srv_park(s, r);
					return;
				}
			}
			first += n;
			left -= n;
		}
	}
	if (copying)
		goto park;
	/* Nothing to copy.  Readers that were told "on the origin" hold the
	 * origin write back until they are done.  */
	if (ranges_busy(&s->locks, rs))
		goto park;
	/* The answer renews the client's grant (proto.h): only while our
	 * lease is certainly valid; the tick retries once it is renewed.  */
	if (!srv_may_grant(s))
		goto park;
	/* The answer lets the client overwrite these chunks: none may have
	 * an uncommitted copy-out, a snapshot being created or a deletion
	 * not yet committed (a crash would bring the snapshot back without
	 * its copy).  A store-full release that could not commit yet kept
	 * the lease check above from passing.  */
	CSNAP_ASSERT(!ranges_busy(&s->busy, rs) && !ranges_busy(&s->locks, rs));
	CSNAP_ASSERT(!admin_barrier_active(s) && !s->txn_unsafe);
	reply_ok(s, r);
	return;
park:
	srv_park(s, r);
}

/* Appends [chunk, +1) at WHERE/store to the extent list, merging.  */
static int extent_add(struct proto_extents *es, uint32_t *cap, uint64_t chunk,
		      uint8_t where, uint64_t store)
{
	if (es->n) {
		struct proto_extent *e = &es->e[es->n - 1];
		if (e->where == where && e->start + e->count == chunk &&
		    (where == PROTO_AT_ORIGIN || e->store_chunk + e->count == store)) {
			e->count++;
			return 0;
		}
	}
	if (es->n == *cap) {
		uint32_t nc = *cap ? *cap * 2 : 16;
		struct proto_extent *ne = realloc(es->e, nc * sizeof *ne);
		if (!ne)
			return -ENOMEM;
		es->e = ne;
		*cap = nc;
	}
	es->e[es->n++] = (struct proto_extent){
		.start = chunk, .count = 1, .where = where,
		.store_chunk = where == PROTO_AT_STORE ? store : 0,
	};
	return 0;
}

/* One more lock on CHUNK in HELD (a connection's) and ALL (the sum of
 * every holder's).  */
static void lock_in(struct chunkset *held, struct chunkset *all, uint64_t chunk)
{
	if (chunkset_add(held, chunk, 1) == 0 && chunkset_add(all, chunk, 1) < 0)
		chunkset_sub(held, chunk, 1);
}

static void lock_chunk(struct srv *s, struct conn *c, uint64_t chunk)
{
	lock_in(&c->locks, &s->locks, chunk);
}

/* Answers a SNAP_READ (ORIGIN false: the connection's snapshot) or an
 * ORIGIN_READ (ORIGIN true) with where each asked chunk is, and takes the
 * read locks the answer promises: a snapshot reader locks the chunks it
 * will read on the origin (an origin write copies them out only after the
 * lock is released), an origin reader during a rollback the store chunks
 * it will read (a rollback step frees them only after that).  */
static void reply_locations(struct srv *s, struct req *r, bool origin)
{
	const struct proto_ranges *rs = &r->m.u.ranges;
	struct conn *c = r->c;
	struct proto_msg m;
	uint32_t cap = 0;

	proto_msg_init(&m, (uint16_t)((origin ? PROTO_ORIGIN_READ : PROTO_SNAP_READ) | PROTO_REPLY),
		       r->m.id);
	for (uint32_t i = 0; i < rs->n; i++) {
		uint64_t first = rs->r[i].start;
		uint32_t n = rs->r[i].count;	/* <= PROTO_MAX_RANGES <= DP_PIECE * 2 */
		while (n) {
			uint32_t k = n > DP_PIECE ? DP_PIECE : n;
			int e = origin ? store_origin_read(s->st, first, k, dp_chunks)
				       : store_snapshot_read(s->st, c->snap_id, first, k, dp_chunks);
			if (e < 0) {
				free(m.u.extents.e);
				reply_err(s, r, EIO, err_get());
				return;
			}
			for (uint32_t j = 0; j < k; j++) {
				bool at_store = dp_chunks[j] != STORE_ON_ORIGIN;
				if (origin && at_store)
					lock_in(&c->olocks, &s->olocks, first + j);
				else if (!origin && !at_store)
					lock_chunk(s, c, first + j);
				if (extent_add(&m.u.extents, &cap, first + j,
					       at_store ? PROTO_AT_STORE : PROTO_AT_ORIGIN, dp_chunks[j]) < 0) {
					free(m.u.extents.e);
					reply_err(s, r, ENOMEM, "server out of memory");
					return;
				}
			}
			first += k;
			n -= k;
		}
	}
	conn_send(c, &m);
	free(m.u.extents.e);
	srv_req_done(s, r);
}

void dp_snap_read(struct srv *s, struct req *r)
{
	const struct proto_ranges *rs = &r->m.u.ranges;
	uint64_t total;

	if (!snap_ranges_ok(s, r, PROTO_MAX_RANGES, "too many chunks in one snapshot request", &total))
		return;
	/* A chunk with an uncommitted change: its old location is still
	 * right, but simpler and as fast to answer after the commit.  */
	if (ranges_busy(&s->busy, rs)) {
		srv_park(s, r);
		return;
	}
	reply_locations(s, r, false);
}

/* Releases up to the locks HELD has on the ranges (ALL: the sum of every
 * holder's).  Returns chunks freed. */
static uint64_t unlock_ranges(struct chunkset *held, struct chunkset *all,
			      const struct proto_ranges *rs)
{
	uint64_t freed = 0;
	for (uint32_t i = 0; i < rs->n && held->used; i++) {
		for (uint64_t k = 0; k < rs->r[i].count && held->used; k++) {
			uint64_t chunk = rs->r[i].start + k;
			uint32_t t = chunkset_sub(held, chunk, 1);
			if (t) {
				uint32_t g = chunkset_sub(all, chunk, t);
				CSNAP_ASSERT(g == t);
				(void)g;
				freed += t;
			}
		}
	}
	return freed;
}

static void read_done(struct srv *s, struct req *r, struct chunkset *held, struct chunkset *all)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < r->m.u.ranges.n; i++)
		total += r->m.u.ranges.r[i].count;
	if (total > DP_MAX_LOCKS) {
		reply_err(s, r, E2BIG, "too many chunks in one release (split it)");
		return;
	}
	if (unlock_ranges(held, all, &r->m.u.ranges))
		srv_kick(s);
	reply_ok(s, r);
}

void dp_snap_read_done(struct srv *s, struct req *r)
{
	read_done(s, r, &r->c->locks, &s->locks);
}

void dp_origin_read_done(struct srv *s, struct req *r)
{
	read_done(s, r, &r->c->olocks, &s->olocks);
}

/* While a rollback runs the origin's content at a chunk still to move is
 * a store chunk X (store_origin_read): the answer says so and locks the
 * chunk until ORIGIN_READ_DONE, so the step that moves it does not free
 * X (and a copy-out reuse it) under the reader.  A chunk a step is moving
 * waits for that step (no new lock can then hold it up for ever).  With
 * no rollback every chunk is "on the origin".  */
void dp_origin_read(struct srv *s, struct req *r)
{
	const struct proto_ranges *rs = &r->m.u.ranges;
	uint64_t total;

	if (!ranges_in(rs, s->info.origin_chunks, &total)) {
		reply_err(s, r, EINVAL, "chunk range beyond the end of the origin");
		return;
	}
	if (total > PROTO_MAX_RANGES) {
		reply_err(s, r, E2BIG, "too many chunks in one origin read request");
		return;
	}
	if (rb_busy(s, rs)) {
		srv_park(s, r);
		return;
	}
	reply_locations(s, r, true);
}

/* Re-upload of read locks after a master change (or a dropped
 * connection).  A lock was granted while its chunk was still on the
 * origin for the snapshot; exceptions of a live snapshot are never
 * removed, and an origin write to a chunk the snapshot reads from the
 * origin is answered only after its copy-out (an exception for the
 * snapshot) is committed.  So "the chunk is still on the origin for this
 * snapshot now" is exactly "no origin write to it can have been answered
 * since the lock was granted", and the lock may be taken over.  If any
 * chunk of the message has an exception (committed or being copied), the
 * whole message is refused with PROTO_STATUS_LOCK_STALE and none of its
 * locks is taken: the client restarts those reads.  */
void dp_lock_upload(struct srv *s, struct req *r)
{
	const struct proto_ranges *rs = &r->m.u.ranges;
	struct conn *c = r->c;
	uint64_t total;
	if (!snap_ranges_ok(s, r, DP_MAX_LOCKS, "too many chunks in one lock upload (split it)", &total))
		return;
	for (uint32_t i = 0; i < rs->n; i++) {
		uint64_t first = rs->r[i].start;
		uint32_t n = rs->r[i].count;
		while (n) {
			uint32_t k = n > DP_PIECE ? DP_PIECE : n;
			int e = store_snapshot_read(s->st, c->snap_id, first, k, dp_chunks);
			if (e < 0) {
				reply_err(s, r, EIO, err_get());
				return;
			}
			for (uint32_t j = 0; j < k; j++) {
				if (dp_chunks[j] == STORE_ON_ORIGIN)
					continue;
				char why[128];
				snprintf(why, sizeof why, "read lock on chunk %llu is stale: "
					 "the chunk was copied out since it was granted",
					 (unsigned long long)(first + j));
				log_info("client %s: refused %llu re-uploaded read locks (%s)",
					 c->peer, (unsigned long long)total, why);
				s->dp->stat_locks_refused++;
				reply_err(s, r, PROTO_STATUS_LOCK_STALE, why);
				return;
			}
			first += k;
			n -= k;
		}
	}
	for (uint32_t i = 0; i < rs->n; i++)
		for (uint64_t k = 0; k < rs->r[i].count; k++)
			lock_chunk(s, c, rs->r[i].start + k);
	log_info("client %s: re-uploaded %llu read locks", c->peer, (unsigned long long)total);
	reply_ok(s, r);
}

void dp_snap_write(struct srv *s, struct req *r)
{
	const struct proto_ranges *rs = &r->m.u.ranges;
	struct conn *c = r->c;
	bool full = r->m.flags & PROTO_F_FULL_CHUNKS;
	uint64_t total;

	if (!snap_ranges_ok(s, r, PROTO_MAX_RANGES, "too many chunks in one snapshot request", &total))
		return;
	/* A snapshot being copied into a new one (admin.c, clone.c) keeps
	 * its content until the copy is done: its writes wait.  */
	uint32_t clone_parent;
	if (store_clone_pending(s->st, &clone_parent) && clone_parent == c->snap_id) {
		srv_park(s, r);
		return;
	}
	if (ranges_busy(&s->busy, rs) || !srv_batch_open(s)) {
		srv_park(s, r);
		return;
	}
	uint32_t piece = DP_PIECE;
retry:;
	struct proto_msg m;
	uint32_t cap = 0;
	bool changed = false;
	proto_msg_init(&m, PROTO_SNAP_WRITE | PROTO_REPLY, r->m.id);
	for (uint32_t i = 0; i < rs->n; i++) {
		uint64_t first = rs->r[i].start;
		uint32_t n = rs->r[i].count;
		while (n) {
			uint32_t k = n > piece ? piece : n, nc = 0;
			int e = store_snapshot_write(s->st, c->snap_id, first, k, dp_chunks,
						     dp_copies, &nc);
			if (e == -ENOSPC) {
				if (changed) {
					free(m.u.extents.e);
					srv_park(s, r);
					return;
				}
				int how = on_enospc(s, r, k);
				if (how == 2) {
					piece = k / 2;
					continue;
				}
				free(m.u.extents.e);
				if (how == 1)
					goto retry;
				return;
			}
			if (e < 0) {
				free(m.u.extents.e);
				reply_err(s, r, EIO, err_get());
				return;
			}
			if (nc) {
				changed = true;
				/* Chunks leaving a shared store chunk: other
				 * clients may have cached that location.  */
				for (uint32_t j = 0; j < nc && e >= 0; j++)
					if (dp_copies[j].src != STORE_ON_ORIGIN)
						e = inval_note(r, dp_copies[j].origin_chunk);
				if (e < 0 ||
				    (e = copy_mark_busy(s, dp_copies, nc)) < 0 ||
				    (!full && (e = copy_start(s, dp_copies, nc)) < 0)) {
					free(m.u.extents.e);
					/* do_abort() fails it with EIO.  */
					srv_abort_txn(s, e);
					srv_park(s, r);
					return;
				}
			}
			for (uint32_t j = 0; j < k; j++)
				if (extent_add(&m.u.extents, &cap, first + j, PROTO_AT_STORE, dp_chunks[j]) < 0) {
					free(m.u.extents.e);
					reply_err(s, r, ENOMEM, "server out of memory");
					return;
				}
			first += k;
			n -= k;
		}
	}
	if (changed) {
		/* New chunks: answer once they are committed (and filled). */
		free(m.u.extents.e);
		srv_park(s, r);
		return;
	}
	/* Committed.  Other clients of the snapshot forget the old
	 * locations of moved chunks before the writer hears back.  */
	if (r->inval_waiting || (r->nmoved && !r->inval_sent && inval_send(s, r))) {
		free(m.u.extents.e);
		srv_park(s, r);
		return;
	}
	/* Clients that were cut off (or of a previous master) may not have
	 * heard: they could use an old location until their grant runs out. */
	if (r->nmoved && srv_snap_grants_until(s, c->snap_id) > csnap_now_ms()) {
		free(m.u.extents.e);
		grants_wait(s);
		srv_park(s, r);
		return;
	}
	/* invalidate.c: answered only once every other client forgot */
	CSNAP_ASSERT(r->inval_waiting == 0);
	conn_send(c, &m);
	free(m.u.extents.e);
	srv_req_done(s, r);
}

static void release_all(struct srv *s, struct chunkset *held, struct chunkset *all)
{
	size_t pos = 0;
	uint64_t key;
	uint32_t n;
	bool any = false;
	while (chunkset_next(held, &pos, &key, &n)) {
		uint32_t g = chunkset_sub(all, key, n);
		CSNAP_ASSERT(g == n);	/* s->locks is the sum of every holder's */
		(void)g;
		any = true;
	}
	chunkset_clear(held);
	if (any)
		srv_kick(s);
}

void dp_conn_gone(struct srv *s, struct conn *c)
{
	/* Origin-read locks go at once: the export reads again whatever it
	 * read under a connection it lost (volume_origin.c), and a new
	 * master steps only once the old one's grants have run out.  */
	release_all(s, &c->olocks, &s->olocks);
	chunkset_free(&c->olocks);
	if (!c->locks.used)
		return;
	if (s->stopping || s->fatal || s->o.grace_ms <= 0) {
		release_all(s, &c->locks, &s->locks);
		return;
	}
	/* The reader may only have lost its connection: it reconnects and
	 * re-uploads.  Until then (bounded) its locks still hold writers. */
	struct lock_orphan *o = calloc(1, sizeof *o);
	if (!o) {
		release_all(s, &c->locks, &s->locks);
		return;
	}
	o->locks = c->locks;
	chunkset_init(&c->locks);
	o->expires_ms = csnap_now_ms() + s->o.grace_ms;
	o->next = s->dp->orphans;
	s->dp->orphans = o;
	log_info("client %s went away holding %zu read lock(s): kept %d ms for it to re-upload",
		 c->peer, o->locks.used, s->o.grace_ms);
}

void dp_tick(struct srv *s)
{
	int64_t now = csnap_now_ms();
	struct lock_orphan **p = &s->dp->orphans;
	while (*p) {
		struct lock_orphan *o = *p;
		if (o->expires_ms > now && !s->stopping) {
			p = &o->next;
			continue;
		}
		release_all(s, &o->locks, &s->locks);
		chunkset_free(&o->locks);
		*p = o->next;
		free(o);
	}
}
