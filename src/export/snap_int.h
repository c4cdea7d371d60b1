/*
 * src/export/snap_int.h - what volume_snap.c (the snapshot volume: cache,
 * queries, device I/O, session callbacks) and snap_locks.c (its read
 * locks) share.  Not for other files.
 */
#ifndef CSNAP_EXPORT_SNAP_INT_H
#define CSNAP_EXPORT_SNAP_INT_H

#include "src/export/chunkmap.h"
#include "src/export/csvol.h"
#include "src/export/grant.h"
#include "src/export/loop.h"
#include "src/export/session.h"

#include <stdbool.h>
#include <stdint.h>

#define LOC_UNIQUE	(1ULL << 63)	/* cache flag: chunk is ours alone */
#define LOC_UNKNOWN	UINT64_MAX
#define LOC_ORIGIN	(UINT64_MAX - 1)
#define LOC_GONE	(LOC_UNIQUE - 1)	/* cache entry invalidated: a miss */

struct snap_vol;
struct sop;

struct squery {
	struct sreq rq;
	struct sop *op;
	uint32_t n;
	struct proto_range r[];
};

struct sop {
	struct snap_vol *sv;
	struct vol_req *req;
	uint64_t c0, nchunks;
	uint64_t *loc;
	unsigned queries;		/* outstanding */
	unsigned ios;			/* outstanding device I/Os */
	int err;
	struct proto_range *locked;	/* AT_ORIGIN chunks we hold */
	uint32_t nlocked, caplocked;
	uint32_t held_from;		/* locked[0..held_from) are not held
					 * by the master (refused: stale) */
	unsigned uploads;		/* LOCK_UPLOADs awaiting their answer */
	bool unconfirmed;		/* the master changed since the locks
					 * were granted; no answer yet */
	bool stale;			/* a re-upload was refused: restart */
	bool expired;			/* an I/O was not issued: no grant */
	bool ended;			/* I/O over, waiting for the verdict */
	unsigned releasing;		/* SNAP_READ_DONEs awaiting their ack */
	bool release_failed;		/* one of them got no ack */
	uint64_t epoch;			/* connection its answers came on */
	struct sop *next, **pprev;
};

/* A LOCK_UPLOAD or SNAP_READ_DONE carrying some of OP's locks.  */
struct slocks {
	struct sreq rq;
	struct sop *op;
	uint32_t upto;			/* upload: covers locked[held_from..upto) */
	struct proto_range r[];
};

struct snap_vol {
	struct volume vol;
	struct csvol_env env;
	struct session *sess;
	struct chunk_map map;
	bool identified, retired;
	csvol_notify_fn ready, gone;
	void *arg;
	struct sop *ops;
	unsigned users;			/* NBD connections using the volume */
	struct evloop_timer idle;		/* let the session go when unused */
	struct grant grant;		/* the cache and answers count only
					 * while it lasts (grant.h) */
	uint64_t hits, asks, restarts, invalidated, expired;
};

#define SNAP_IDLE_MS	1000


/* volume_snap.c */
/* The request's I/O is over (or it failed before I/O): complete it, or
 * wait for the locks' verdict, or start it again.  */
void snap_op_end(struct sop *op);
/* Looks up every chunk and asks the master for the missing ones.  */
void snap_rw(struct snap_vol *sv, struct vol_req *req);

/* snap_locks.c */
/* Gives back (one-way) the locks the master holds for OP and frees OP. */
void snap_op_release(struct sop *op);
/* SNAP_READ_DONE for OP's locks on the current connection; the acks
 * decide (op->releasing counts them).  */
void snap_release_confirm(struct sop *op);
/* The session is gone for good: requests waiting for a verdict fail.  */
void snap_fail_waiting(struct snap_vol *sv);
int snap_lock_add(struct sop *op, uint64_t chunk);
void snap_locks_reupload(struct snap_vol *sv);
void snap_locks_lost(struct snap_vol *sv);

#endif
