/*
 * src/export/volume_snap.c - a snapshot volume of a csnap store.
 *
 * Each chunk of a snapshot lives either in a store chunk or, if the origin
 * has not changed it since the snapshot, still on the origin.
 *  - Read: chunks whose store location is cached are read from the store;
 *    the others are asked for (SNAP_READ).  A chunk answered "on the
 *    origin" is read-locked for us: the master lets no origin write touch
 *    it until we send SNAP_READ_DONE after our read completed.
 *  - Write: the chunk must be unique to this snapshot; SNAP_WRITE makes it
 *    so (the master allocates a store chunk and copies the old contents
 *    in, then commits) and answers with its location, which never changes
 *    afterwards, so it is cached as "unique".
 *
 * Invariants:
 *  - Every read lock we hold belongs to a request still in flight (struct
 *    sop on sv->ops) and is given back exactly once, after its data was
 *    read; after a master change the locks still held are re-uploaded
 *    (LOCK_UPLOAD, one message per request) before any query is re-sent.
 *  - A read that read the origin under a lock completes only if the lock
 *    was held without a gap until the data was read: either the connection
 *    that granted it was still up when the read finished, or the new
 *    master accepted the re-upload.  A re-upload refused as stale
 *    (PROTO_STATUS_LOCK_STALE: the chunk was copied out meanwhile, so the
 *    origin may hold newer data) restarts the read from scratch; it then
 *    finds the chunk in the store.
 *  - A location from the master is checked against the store's data area
 *    before any I/O uses it: a bad answer fails the request, it never
 *    writes somewhere else.
 *  - Cached locations are right while connected: when another client's
 *    write moves a chunk, the master sends INVALIDATE (after any answer
 *    that carried the old location) and answers that writer only after
 *    we acknowledged, so a read that starts after that write completed
 *    never uses the old location.  Invalidations may be missed while
 *    not connected, so the cache is emptied whenever the connection is
 *    lost or let go.
 *  - Cached locations and answers are used only under a grant from the
 *    current connection (proto.h; docs/RELIABILITY.md): every successful
 *    reply grants PROTO_GRANT_MS from when its request was sent, PING
 *    renews it, the connection's end ends it.  Every device read or write
 *    of a request asks for it right before it goes to the kernel (an
 *    ioengine gate); refused, the request starts again from scratch.  An
 *    export that was stopped or cut off cannot use a location the master
 *    has since moved (it waits for cut-off clients' grants before
 *    answering the writer that moved it, and before deleting).
 *  - Data read from the origin under read locks is returned only after
 *    the master acknowledged their release (SNAP_READ_DONE) on the
 *    connection that holds them: it held them throughout, and it was the
 *    master throughout (it answers only while its lease is valid).  If
 *    that connection breaks first, the locks are re-uploaded and the new
 *    master decides (accepted: confirmed on the new connection; stale:
 *    the read restarts).
 *  - Per request, locked[0..held_from) are the locks the master does not
 *    hold and held_from <= nlocked <= caplocked; `uploads` counts the
 *    re-uploads awaiting an answer (snap_locks.c: CSNAP_ASSERT checks both).
 */
#include "src/export/csvol.h"

#include "src/export/chunkmap.h"
#include "src/export/dio.h"
#include "src/export/grant.h"
#include "src/export/loop.h"
#include "src/export/session.h"
#include "src/export/snap_int.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- grant ------------------------------------------------------------ */

/* The connection is gone or let go: nothing it said counts any more.  */
static void grant_lost(struct snap_vol *sv)
{
	grant_drop(&sv->grant);
	chunk_map_clear(&sv->map);
}

/* ioengine gate for every device I/O of an op.  */
static bool op_gate(void *arg)
{
	struct sop *op = arg;

	return grant_gate_ok(&op->sv->grant, op->epoch);
}

/* ---- op bookkeeping --------------------------------------------------- */

/* The request's I/O is over (or it failed before I/O).  Completes it,
 * unless its read locks still need the master's word: then it waits for
 * the answer to the re-upload (which calls here again), and if the new
 * master refused them it is started again from scratch.  */
void snap_op_end(struct sop *op)
{
	struct snap_vol *sv = op->sv;
	struct vol_req *req = op->req;
	int err = op->err;

	op->ended = true;
	if (op->uploads || op->unconfirmed || op->releasing)
		return;
	if (op->expired && !op->stale && sv->sess && !sv->retired) {
		/* An I/O was not issued: the grant ran out while it waited (or
		 * the connection changed).  Ask again from scratch.  */
		if (!sv->expired++ || sv->expired % 1000 == 0)
			log_info("snapshot %s: a request at chunk %llu waited past this export's grant: "
				 "asking the master again (%llu so far)", sv->vol.name,
				 (unsigned long long)op->c0, (unsigned long long)sv->expired);
		snap_op_release(op);
		snap_rw(sv, req);
		return;
	}
	if (op->stale && sv->sess && !sv->retired) {
		sv->restarts++;
		log_info("snapshot %s: read of %llu chunk(s) at chunk %llu restarted: the new master refused its stale read locks",
			 sv->vol.name, (unsigned long long)op->nchunks, (unsigned long long)op->c0);
		snap_op_release(op);
		snap_rw(sv, req);
		return;
	}
	if (op->expired)
		err = -EIO;
	/* Origin data read under locks counts once the master that holds
	 * them acknowledges their release on the same connection.  */
	if (!op->stale && !err && op->nlocked > op->held_from && sv->sess && !sv->retired) {
		snap_release_confirm(op);
		if (op->releasing || op->unconfirmed || op->uploads)
			return;
	}
	if (op->stale)
		err = -EIO;
	snap_op_release(op);
	if (!sv->ops && !sv->users)
		evloop_timer_arm(sv->env.lp, &sv->idle, SNAP_IDLE_MS);
	req->done(req, err);
}

/* ---- device I/O ------------------------------------------------------- */

static void io_done(void *arg, int err)
{
	struct sop *op = arg;

	if (err == -EKEYEXPIRED)
		op->expired = true;
	else if (err && !op->err)
		op->err = err;
	if (--op->ios == 0)
		snap_op_end(op);
}

static bool loc_valid(struct snap_vol *sv, uint64_t sc)
{
	if (sc >= sv->env.store_chunks && sv->env.store_chunks_now)	/* grown? */
		sv->env.store_chunks = sv->env.store_chunks_now(sv->env.snap_arg, sc);
	return sc < sv->env.store_chunks;
}

/* Walks the request chunk by chunk, merging pieces that are contiguous on
 * the same device, and starts one dio per piece.  */
static void start_io(struct sop *op)
{
	struct snap_vol *sv = op->sv;
	struct vol_req *req = op->req;
	uint64_t cs = sv->env.chunk_size;
	struct dio *pdev = NULL;
	uint64_t poff = 0, pbuf = 0, plen = 0;
	uint64_t pos = 0;
	unsigned fl = req->flags & VOL_REQ_FUA ? DIO_FUA : 0;

	op->ios = 1;	/* held while issuing */
	for (uint64_t i = 0; i < op->nchunks && !op->err; i++) {
		uint64_t chunk = op->c0 + i;
		uint64_t vstart = req->off + pos;
		uint64_t in = vstart - (chunk << sv->env.chunk_shift);
		uint64_t len = cs - in < req->len - pos ? cs - in : req->len - pos;
		uint64_t l = op->loc[i] & ~LOC_UNIQUE;
		struct dio *dev;
		uint64_t doff;

		if (op->loc[i] == LOC_ORIGIN) {
			dev = sv->env.origin;
			doff = vstart;
		} else if (op->loc[i] != LOC_UNKNOWN && loc_valid(sv, l)) {
			dev = sv->env.store;
			doff = sv->env.data_offset + (l << sv->env.chunk_shift) + in;
		} else {
			log_error("snapshot %s: no valid location for chunk %llu", sv->vol.name,
				  (unsigned long long)chunk);
			op->err = -EIO;
			break;
		}
		if (pdev == dev && poff + plen == doff) {
			plen += len;
		} else {
			if (plen) {
				op->ios++;
				if (req->op == VOL_READ)
					dio_read_gated(pdev, (char *)req->buf + pbuf, plen, poff,
						       op_gate, op, io_done, op);
				else if (req->op == VOL_ZEROES)
					dio_zero_gated(pdev, plen, poff, fl, op_gate, op, io_done, op);
				else
					dio_write_gated(pdev, (char *)req->buf + pbuf, plen, poff, fl,
							op_gate, op, io_done, op);
			}
			pdev = dev;
			poff = doff;
			pbuf = pos;
			plen = len;
		}
		pos += len;
	}
	if (plen && !op->err) {
		op->ios++;
		if (req->op == VOL_READ)
			dio_read_gated(pdev, (char *)req->buf + pbuf, plen, poff, op_gate, op,
				       io_done, op);
		else if (req->op == VOL_ZEROES)
			dio_zero_gated(pdev, plen, poff, fl, op_gate, op, io_done, op);
		else
			dio_write_gated(pdev, (char *)req->buf + pbuf, plen, poff, fl, op_gate, op,
					io_done, op);
	}
	io_done(op, 0);
}

/* ---- queries ---------------------------------------------------------- */

static int apply_extents(struct sop *op, const struct proto_extents *ex, bool write)
{
	struct snap_vol *sv = op->sv;

	for (uint32_t k = 0; k < ex->n; k++) {
		const struct proto_extent *e = &ex->e[k];

		if (e->start < op->c0 || e->count > op->nchunks ||
		    e->start - op->c0 > op->nchunks - e->count)
			return err_set(EPROTO, "answer for chunks %llu+%u outside the request",
				       (unsigned long long)e->start, e->count);
		for (uint32_t j = 0; j < e->count; j++) {
			uint64_t i = e->start - op->c0 + j;

			if (e->where == PROTO_AT_ORIGIN && !write) {
				if (snap_lock_add(op, e->start + j) < 0)
					return -ENOMEM;
				op->loc[i] = LOC_ORIGIN;
			} else if (e->where == PROTO_AT_STORE && loc_valid(sv, e->store_chunk + j)) {
				uint64_t l = (e->store_chunk + j) | (write ? LOC_UNIQUE : 0), old;

				op->loc[i] = l;
				/* A unique location is final: an older read answer
				 * arriving after a write's must not replace it.  */
				if (write || !chunk_map_get(&sv->map, e->start + j, &old) ||
				    !(old & LOC_UNIQUE))
					chunk_map_put(&sv->map, e->start + j, l);
			} else {
				return err_set(EPROTO, "bad location for chunk %llu",
					       (unsigned long long)(e->start + j));
			}
		}
	}
	return 0;
}

static void query_done(struct sreq *rq, const struct proto_msg *reply, int err)
{
	struct squery *q = (struct squery *)rq;
	struct sop *op = q->op;
	struct snap_vol *sv = op->sv;
	bool write = rq->msg.type == PROTO_SNAP_WRITE;

	if (!err && !reply->status)
		grant_renew(&sv->grant, rq->sent_ns);
	if (!err && reply->status) {
		log_warn("snapshot %s: %s refused: %s", sv->vol.name, write ? "write" : "read",
			 reply->error);
		err = reply->status == ENOSPC ? -ENOSPC : -EIO;
	} else if (!err && apply_extents(op, &reply->u.extents, write) < 0) {
		log_error("snapshot %s: bad answer from the master: %s", sv->vol.name, err_get());
		err = -EIO;
	}
	free(q);
	if (err && !op->err)
		op->err = err == -ENOSPC ? -ENOSPC : -EIO;
	if (--op->queries)
		return;
	/* Every chunk must have its answer before I/O starts.  */
	for (uint64_t i = 0; i < op->nchunks && !op->err; i++) {
		if (op->loc[i] == LOC_UNKNOWN)
			op->err = -EIO;
	}
	if (op->err || op->stale) {
		snap_op_end(op);
		return;
	}
	start_io(op);
}

static int send_query(struct sop *op, uint16_t type, struct proto_range *r, uint32_t n)
{
	struct squery *q = calloc(1, sizeof *q + n * sizeof *r);

	if (!q)
		return -ENOMEM;
	q->op = op;
	q->n = n;
	memcpy(q->r, r, n * sizeof *r);
	proto_msg_init(&q->rq.msg, type, 0);
	q->rq.msg.u.ranges.n = n;
	q->rq.msg.u.ranges.r = q->r;
	q->rq.done = query_done;
	op->queries++;
	op->sv->asks++;
	session_send(op->sv->sess, &q->rq);
	return 0;
}

/* Looks up every chunk; asks the master for the missing ones in messages
 * of at most PROTO_MAX_RANGES chunks.  */
void snap_rw(struct snap_vol *sv, struct vol_req *req)
{
	bool write = req->op != VOL_READ;
	uint16_t type = write ? PROTO_SNAP_WRITE : PROTO_SNAP_READ;
	struct sop *op = calloc(1, sizeof *op);
	struct proto_range *runs = NULL;
	uint32_t nruns = 0, chunks_in_msg = 0;

	if (!op) {
		req->done(req, -ENOMEM);
		return;
	}
	/* Cached locations count only under a grant (the master may have
	 * moved chunks, or deleted the snapshot, after waiting ours out).  */
	if (sv->map.used && !grant_valid(&sv->grant))
		chunk_map_clear(&sv->map);
	op->sv = sv;
	op->req = req;
	op->epoch = sv->grant.epoch;
	op->c0 = req->off >> sv->env.chunk_shift;
	op->nchunks = ((req->off + req->len - 1) >> sv->env.chunk_shift) - op->c0 + 1;
	op->loc = malloc(op->nchunks * sizeof *op->loc);
	runs = malloc(op->nchunks * sizeof *runs);
	if (!op->loc || !runs) {
		free(op->loc);
		free(runs);
		free(op);
		req->done(req, -ENOMEM);
		return;
	}
	op->next = sv->ops;
	op->pprev = &sv->ops;
	if (sv->ops)
		sv->ops->pprev = &op->next;
	sv->ops = op;
	op->queries = 1;	/* held while asking */
	for (uint64_t i = 0; i < op->nchunks; i++) {
		uint64_t chunk = op->c0 + i, l;

		if (chunk_map_get(&sv->map, chunk, &l) && l != LOC_GONE &&
		    (!write || (l & LOC_UNIQUE))) {
			op->loc[i] = l;
			sv->hits++;
			continue;
		}
		op->loc[i] = LOC_UNKNOWN;
		if (nruns && runs[nruns - 1].start + runs[nruns - 1].count == chunk)
			runs[nruns - 1].count++;
		else
			runs[nruns++] = (struct proto_range){ .start = chunk, .count = 1 };
		if (++chunks_in_msg == PROTO_MAX_RANGES) {
			if (send_query(op, type, runs, nruns) < 0)
				op->err = -ENOMEM;
			nruns = 0;
			chunks_in_msg = 0;
		}
	}
	if (nruns && send_query(op, type, runs, nruns) < 0)
		op->err = -ENOMEM;
	free(runs);
	/* Drop the hold: completes at once if nothing was asked.  */
	if (--op->queries == 0) {
		if (op->err)
			snap_op_end(op);
		else
			start_io(op);
	}
}

/* ---- session callbacks ------------------------------------------------ */

static void unpassive(struct snap_vol *sv);

static void on_connected(void *arg, const struct proto_identify_ok *ok, bool again)
{
	struct snap_vol *sv = arg;

	grant_ping_start(&sv->grant);

	if (!sv->identified) {
		sv->identified = true;
		if (sv->vol.size && sv->vol.size != ok->volume_size)
			log_warn("snapshot %s: served as %llu bytes, the master says %llu",
				 sv->vol.name, (unsigned long long)sv->vol.size,
				 (unsigned long long)ok->volume_size);
		sv->vol.size = ok->volume_size;
		if (ok->chunk_size != sv->env.chunk_size ||
		    ok->store_data_offset != sv->env.data_offset) {
			log_error("snapshot %s: master says chunk size %u, data at %llu; the superblock says %u, %llu",
				  sv->vol.name, ok->chunk_size,
				  (unsigned long long)ok->store_data_offset, sv->env.chunk_size,
				  (unsigned long long)sv->env.data_offset);
			sv->retired = true;
		}
		if (sv->ready)
			sv->ready(sv->arg, &sv->vol, sv->retired ? -EIO : 0, NULL);
		/* The size was all we needed until somebody uses it.  */
		if (!sv->users && !sv->ops)
			evloop_timer_arm(sv->env.lp, &sv->idle, SNAP_IDLE_MS);
		return;
	}
	if (!again) {
		unpassive(sv);	/* a user came while we connected passively */
		return;
	}
	snap_locks_reupload(sv);
}

/* Whatever the lost master granted must now be confirmed by the next;
 * invalidations sent meanwhile never reach us: forget every location.  */
static void on_disconnected(void *arg)
{
	struct snap_vol *sv = arg;

	grant_lost(sv);
	snap_locks_lost(sv);
}

/* Another client's write moved these chunks: forget where they were.  */
static void invalidate(struct snap_vol *sv, const struct proto_ranges *rs)
{
	uint64_t total = 0;

	for (uint32_t i = 0; i < rs->n; i++)
		total += rs->r[i].count;
	if (total > PROTO_MAX_RANGES) {
		chunk_map_clear(&sv->map);
		return;
	}
	for (uint32_t i = 0; i < rs->n; i++)
		for (uint32_t k = 0; k < rs->r[i].count; k++) {
			uint64_t l;

			if (chunk_map_get(&sv->map, rs->r[i].start + k, &l))
				chunk_map_put(&sv->map, rs->r[i].start + k, LOC_GONE);
		}
	sv->invalidated += total;
}

static void on_server_request(void *arg, const struct proto_msg *req)
{
	struct snap_vol *sv = arg;
	struct proto_msg m;

	if (req->type == PROTO_INVALIDATE) {
		invalidate(sv, &req->u.ranges);
		proto_msg_init(&m, PROTO_INVALIDATE | PROTO_REPLY, req->id);
	} else {
		proto_msg_error(&m, req, EOPNOTSUPP, "snapshot export: unexpected request");
	}
	session_reply(sv->sess, &m);
}

static void on_refused(void *arg, int err, const char *why)
{
	struct snap_vol *sv = arg;

	sv->retired = true;
	snap_fail_waiting(sv);
	if (sv->gone)
		sv->gone(sv->arg, &sv->vol, err, why);
}

static const struct session_ops snap_session_ops = {
	.connected = on_connected,
	.disconnected = on_disconnected,
	.server_request = on_server_request,
	.refused = on_refused,
};

/* ---- volume ----------------------------------------------------------- */

static void req_done(void *arg, int err)
{
	struct vol_req *req = arg;

	req->done(req, err);
}

static void snap_submit(struct volume *vol, struct vol_req *req)
{
	struct snap_vol *sv = (struct snap_vol *)vol;

	if (sv->retired || !sv->sess) {
		req->done(req, -EIO);
		return;
	}
	switch (req->op) {
	case VOL_READ:
	case VOL_WRITE:
	case VOL_ZEROES:
		snap_rw(sv, req);
		return;
	case VOL_FLUSH:
		/* Allocations were committed before SNAP_WRITE was answered. */
		dio_flush(sv->env.store, req_done, req);
		return;
	case VOL_TRIM:
		if (req->flags & VOL_REQ_FUA)
			dio_flush(sv->env.store, req_done, req);
		else
			req->done(req, 0);
		return;
	}
	req->done(req, -EINVAL);
}

/* A snapshot with a connection to the master counts as in use there (it
 * cannot be deleted), so the session lives only while NBD clients use the
 * volume, plus a moment.  */
static void idle_fn(void *arg)
{
	struct snap_vol *sv = arg;

	if (!sv->users && !sv->ops && sv->sess) {
		if (grant_ping_busy(&sv->grant)) {
			/* session_stop() would keep the connection for it.  */
			evloop_timer_arm(sv->env.lp, &sv->idle, 100);
			return;
		}
		grant_ping_stop(&sv->grant);
		session_stop(sv->sess);
		/* Not connected: invalidations would not reach us.  */
		grant_lost(sv);
	}
}

/* A connection identified as passive while the volume now has users:
 * make a new one that says so (the master then counts the snapshot as in
 * use and never releases it).  Requests already waiting on it (or ops in
 * flight, which sent or will send some) are data requests, which mark it
 * in use on their own.  */
static void unpassive(struct snap_vol *sv)
{
	if (sv->users && !sv->ops && sv->sess && !sv->retired && session_is_passive(sv->sess) &&
	    session_up(sv->sess) && !session_pending(sv->sess)) {
		session_stop(sv->sess);
		grant_lost(sv);		/* nothing of that connection counts */
		session_start(sv->sess);
	}
}

static void snap_attach(struct volume *vol)
{
	struct snap_vol *sv = (struct snap_vol *)vol;

	sv->users++;
	evloop_timer_cancel(sv->env.lp, &sv->idle);
	if (sv->sess && !sv->retired) {
		session_set_passive(sv->sess, false);
		unpassive(sv);
		session_start(sv->sess);
	}
}

static void snap_detach(struct volume *vol)
{
	struct snap_vol *sv = (struct snap_vol *)vol;

	if (--sv->users == 0) {
		if (sv->sess)
			session_set_passive(sv->sess, true);
		if (!sv->ops)
			evloop_timer_arm(sv->env.lp, &sv->idle, SNAP_IDLE_MS);
	}
}

void volume_snap_set_size(struct volume *vol, uint64_t size)
{
	struct snap_vol *sv = (struct snap_vol *)vol;

	if (!sv->identified)
		sv->vol.size = size;
}

void volume_snap_retire(struct volume *vol)
{
	((struct snap_vol *)vol)->retired = true;
}

void volume_snap_shutdown(struct volume *vol)
{
	struct snap_vol *sv = (struct snap_vol *)vol;

	evloop_timer_cancel(sv->env.lp, &sv->idle);
	grant_ping_stop(&sv->grant);
	grant_set_session(&sv->grant, NULL);
	session_destroy(sv->sess);
	sv->sess = NULL;
	snap_fail_waiting(sv);
}

static void snap_destroy(struct volume *vol)
{
	struct snap_vol *sv = (struct snap_vol *)vol;

	log_debug("snapshot %s: %llu chunk lookups from cache, %llu queries, %llu reads restarted, %llu chunks invalidated",
		  vol->name, (unsigned long long)sv->hits, (unsigned long long)sv->asks,
		  (unsigned long long)sv->restarts, (unsigned long long)sv->invalidated);
	evloop_timer_cancel(sv->env.lp, &sv->idle);
	grant_ping_stop(&sv->grant);
	session_destroy(sv->sess);
	chunk_map_free(&sv->map);
	free(sv);
}

/* csnap:changed on a snapshot export: what differs between FROM and this
 * snapshot.  */
static void snap_changed(struct volume *vol, struct vol_changed_req *q)
{
	struct snap_vol *sv = (struct snap_vol *)vol;

	if (!sv->sess || sv->retired) {
		q->done(q, -EIO, "the snapshot was deleted");
		return;
	}
	csvol_changed(sv->sess, sv->env.chunk_shift, sv->vol.name, q);
}

static const struct volume_ops snap_ops = {
	.submit = snap_submit,
	.destroy = snap_destroy,
	.attach = snap_attach,
	.detach = snap_detach,
	.changed = snap_changed,
};

int volume_snap_create(const struct csvol_env *env, const char *name,
		       csvol_notify_fn ready, csvol_notify_fn gone, void *arg,
		       struct volume **out)
{
	struct snap_vol *sv = calloc(1, sizeof *sv);
	int rc;

	if (!sv)
		return err_set(ENOMEM, "out of memory");
	if (strlen(name) >= sizeof sv->vol.name) {
		free(sv);
		return err_set(ENAMETOOLONG, "snapshot name too long");
	}
	sv->env = *env;
	sv->ready = ready;
	sv->gone = gone;
	sv->arg = arg;
	sv->vol.ops = &snap_ops;
	sv->vol.flags = VOL_SNAPSHOT;
	snprintf(sv->vol.name, sizeof sv->vol.name, "%s", name);
	snprintf(sv->vol.description, sizeof sv->vol.description, "csnap snapshot %s", name);
	sv->vol.pref_block = env->chunk_size < 65536 ? env->chunk_size : 65536;
	sv->vol.refs = 1;
	sv->idle.fn = idle_fn;
	sv->idle.arg = sv;
	grant_init(&sv->grant, env->lp);
	rc = chunk_map_init(&sv->map, env->cache_entries);
	if (rc < 0) {
		free(sv);
		return rc;
	}
	rc = session_create(env->lp, env->tgt, PROTO_VOL_SNAPSHOT, name, &snap_session_ops, sv,
			    &sv->sess);
	if (rc < 0) {
		chunk_map_free(&sv->map);
		free(sv);
		return rc;
	}
	/* Only the size is needed until an NBD client comes: that does not
	 * make the snapshot "in use" for the master's store-full policy.  */
	session_set_passive(sv->sess, true);
	grant_set_session(&sv->grant, sv->sess);
	session_start(sv->sess);
	*out = &sv->vol;
	return 0;
}
