/*
 * src/export/snap_locks.c - a snapshot volume's read locks: given back and
 * confirmed (SNAP_READ_DONE acknowledged on the connection that holds
 * them, so they held throughout the read), re-uploaded after a master
 * change (LOCK_UPLOAD; refused as stale: the read restarts), and failed
 * when the session is gone for good.  The invariants are in
 * volume_snap.c's header; the shared structures in snap_int.h.
 */
#include "src/export/snap_int.h"

#include "src/export/loop.h"
#include "src/export/session.h"
#include "utils/assert.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Gives back the locks the master holds for OP and forgets OP.  */
void snap_op_release(struct sop *op)
{
	struct snap_vol *sv = op->sv;

	if (op->nlocked > op->held_from && sv->sess) {
		struct proto_msg m;

		proto_msg_init(&m, PROTO_SNAP_READ_DONE, 0);
		for (uint32_t i = op->held_from; i < op->nlocked; i += PROTO_MAX_RANGES) {
			m.u.ranges.r = op->locked + i;
			m.u.ranges.n = op->nlocked - i < PROTO_MAX_RANGES ? op->nlocked - i
									   : PROTO_MAX_RANGES;
			session_send_oneway(sv->sess, &m);
		}
	}
	*op->pprev = op->next;
	if (op->next)
		op->next->pprev = op->pprev;
	free(op->locked);
	free(op->loc);
	free(op);
}

/* Sends TYPE with OP's locks [from, from + n) on the current connection
 * only (an upload covers them up to op->nlocked); DONE gets the answer.
 * *PENDING counts it from before the send, as the answer may come at
 * once.  -ENOMEM: nothing sent.  */
static int send_locks(struct snap_vol *sv, struct sop *op, uint16_t type, uint32_t from,
		      uint32_t n, sreq_done_fn done, unsigned *pending)
{
	struct slocks *u = calloc(1, sizeof *u + n * sizeof *u->r);

	if (!u)
		return -ENOMEM;
	u->op = op;
	u->upto = op->nlocked;
	memcpy(u->r, op->locked + from, n * sizeof *u->r);
	proto_msg_init(&u->rq.msg, type, 0);
	u->rq.msg.u.ranges.n = n;
	u->rq.msg.u.ranges.r = u->r;
	u->rq.done = done;
	(*pending)++;
	session_send_once(sv->sess, &u->rq);
	return 0;
}

/* One release ack (or failure) is in: when it was the last one, decide
 * what the locks are now and return true.  */
static bool release_settled(struct sop *op)
{
	if (--op->releasing)
		return false;
	if (op->release_failed) {
		op->release_failed = false;
		if (!op->stale)
			op->unconfirmed = true;
	} else if (!op->stale) {
		op->held_from = op->nlocked;	/* released, and held until then */
	}
	return true;
}

static void release_done(struct sreq *rq, const struct proto_msg *reply, int err)
{
	struct slocks *u = (struct slocks *)rq;
	struct sop *op = u->op;
	struct snap_vol *sv = op->sv;
	int64_t sent_ns = rq->sent_ns;

	free(u);
	if (err) {
		/* No ack: the locks may have been dropped with the connection;
		 * the next one re-uploads them and its answer decides.  */
		op->release_failed = true;
	} else if (reply->status) {
		log_warn("snapshot %s: read lock release refused: %s", sv->vol.name, reply->error);
		op->stale = true;	/* start again; nothing is lost */
	} else {
		grant_renew(&sv->grant, sent_ns);
	}
	if (release_settled(op) && op->ended && !op->unconfirmed && !op->uploads)
		snap_op_end(op);
}

/* Sends SNAP_READ_DONE for the locks OP holds, on the current connection
 * only, and waits for the acks (release_done).  */
void snap_release_confirm(struct sop *op)
{
	struct snap_vol *sv = op->sv;

	op->releasing++;	/* held while sending: acks may come at once */
	for (uint32_t i = op->held_from; i < op->nlocked; i += PROTO_MAX_RANGES) {
		uint32_t n = op->nlocked - i < PROTO_MAX_RANGES ? op->nlocked - i : PROTO_MAX_RANGES;
		if (send_locks(sv, op, PROTO_SNAP_READ_DONE, i, n, release_done, &op->releasing) < 0) {
			op->release_failed = true;
			break;
		}
	}
	release_settled(op);	/* true if every ack (or failure) came at once */
}

/* The session is gone for good: requests waiting for a lock verdict
 * can never get one.  */
void snap_fail_waiting(struct snap_vol *sv)
{
	struct sop *op = sv->ops, *next;

	for (; op; op = next) {
		next = op->next;
		if (!op->unconfirmed)
			continue;
		op->unconfirmed = false;
		if (!op->err)
			op->err = -EIO;
		if (op->ended)
			snap_op_end(op);
	}
}

int snap_lock_add(struct sop *op, uint64_t chunk)
{
	if (op->nlocked) {
		struct proto_range *last = &op->locked[op->nlocked - 1];

		if (last->start + last->count == chunk && last->count < UINT32_MAX) {
			last->count++;
			return 0;
		}
	}
	if (op->nlocked == op->caplocked) {
		uint32_t cap = op->caplocked ? op->caplocked * 2 : 4;
		struct proto_range *r = realloc(op->locked, cap * sizeof *r);

		if (!r)
			return -ENOMEM;
		op->locked = r;
		op->caplocked = cap;
	}
	op->locked[op->nlocked++] = (struct proto_range){ .start = chunk, .count = 1 };
	CSNAP_ASSERT(op->held_from <= op->nlocked && op->nlocked <= op->caplocked);
	return 0;
}

static void upload_done(struct sreq *rq, const struct proto_msg *reply, int err)
{
	struct slocks *u = (struct slocks *)rq;
	struct sop *op = u->op;
	struct snap_vol *sv = op->sv;
	uint32_t upto = u->upto;
	int64_t sent_ns = rq->sent_ns;

	free(u);
	CSNAP_ASSERT(op->uploads > 0);		/* counted in upload_locks */
	op->uploads--;
	if (err == -ENOTCONN || err == -ECONNRESET)
		return;		/* still unconfirmed: the next connection asks */
	op->unconfirmed = false;
	if (!err && !reply->status)
		grant_renew(&sv->grant, sent_ns);
	if (err) {
		if (!op->err)
			op->err = -EIO;
	} else if (reply->status) {
		/* The master holds none of these locks.  */
		if (reply->status == PROTO_STATUS_LOCK_STALE)
			log_info("snapshot %s: %s", sv->vol.name, reply->error);
		else
			log_warn("snapshot %s: read lock re-upload refused: %s", sv->vol.name,
				 reply->error);
		op->stale = true;
		op->held_from = upto;
		CSNAP_ASSERT(op->held_from <= op->nlocked);	/* locks are only added */
	}
	if (op->ended && !op->uploads)
		snap_op_end(op);
}

static void upload_locks(struct snap_vol *sv, struct sop *op)
{
	CSNAP_ASSERT(op->held_from <= op->nlocked);
	uint32_t n = op->nlocked - op->held_from;

	if (n > PROTO_MAX_RANGES) {
		/* Cannot happen (a request spans at most 8193 chunks, half of
		 * them runs at most); restarting is always safe.  */
		op->stale = true;
		op->held_from = op->nlocked;
		op->unconfirmed = false;
		return;
	}
	if (send_locks(sv, op, PROTO_LOCK_UPLOAD, op->held_from, n, upload_done, &op->uploads) < 0) {
		op->stale = true;
		op->held_from = op->nlocked;
		op->unconfirmed = false;
	}
}

/* After a reconnect: re-upload the read locks still held by requests in
 * flight, one message per request, so a refusal names the request to
 * restart.  */
void snap_locks_reupload(struct snap_vol *sv)
{
	uint64_t n = 0;

	for (struct sop *op = sv->ops; op; op = op->next)
		for (uint32_t i = op->held_from; i < op->nlocked; i++)
			n += op->locked[i].count;
	if (n)
		log_info("snapshot %s: re-uploading %llu read locks", sv->vol.name,
			 (unsigned long long)n);
	for (struct sop *op = sv->ops, *next; op; op = next) {
		next = op->next;
		if (!op->unconfirmed)
			continue;
		if (op->nlocked == op->held_from) {
			op->unconfirmed = false;
			if (op->ended && !op->uploads)
				snap_op_end(op);
			continue;
		}
		upload_locks(sv, op);
	}
}

/* The connection is lost: every lock still held must be confirmed by the
 * next one (a stale read restarts, it keeps nothing).  */
void snap_locks_lost(struct snap_vol *sv)
{
	for (struct sop *op = sv->ops; op; op = op->next) {
		if (op->stale)
			op->held_from = op->nlocked;	/* restarting: nothing to keep */
		else if (op->nlocked > op->held_from)
			op->unconfirmed = true;
	}
}
