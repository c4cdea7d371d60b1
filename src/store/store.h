/*
 * src/store/store.h - the snapshot store engine: the one public interface
 * of src/store/ for the server, the CLI and tests.
 *
 * A store maps every origin chunk to a short list of *exceptions*:
 * {store chunk, share mask}.  Bit b of a share mask names the snapshot that
 * owns mask bit b; one copied-out chunk serves every snapshot whose bit is
 * set, so an origin write costs one copy whatever the number of snapshots.
 * A snapshot chunk with no exception carrying its bit still reads from the
 * origin.
 *
 * Layering (each with its own header): block manager (bm.h: cached,
 * checksummed metadata blocks) -> journal (journal.h: transactions, group
 * commit, replay) -> b-tree (btree.h) -> space maps (spacemap.h) ->
 * snapshot table (snaptable.h) -> this engine.
 *
 * Rules for callers:
 *  - Single-threaded: one thread owns a struct store.
 *  - Changes accumulate in the current transaction until store_commit();
 *    nothing is ever committed behind the caller's back (group commit is
 *    the caller's choice of when to call store_commit()).  store_close()
 *    discards uncommitted changes.
 *  - Copy-out ordering.  store_origin_write() and store_snapshot_write()
 *    hand out store chunks to fill.  The caller copies the data, makes the
 *    store device durable (flush), and only then calls store_commit(); and
 *    only after store_commit() returned 0 may it overwrite the origin chunk
 *    (or acknowledge the snapshot write).  A crash before the commit loses
 *    only the uncommitted exceptions; the old mapping is intact.
 *  - Lookups see the open transaction at once: a store chunk handed out
 *    for a copy-out is returned by store_snapshot_read() before the copy
 *    is done, so the caller holds reads of such chunks until its copy
 *    completes.  If a copy fails, store_abort() drops the whole open
 *    transaction.
 *  - Chunk numbers are origin chunk indexes (byte offset / chunk_size) or
 *    store chunk indexes (byte offset of the chunk on the store device is
 *    store_chunk_offset()).  Snapshots are named by their id (never reused).
 *  - Errors: negative errno with err_set() giving a one-line reason
 *    (utils/err.h).  -ENOSPC from a write means nothing was changed by
 *    that call; store_enospc_kind() says why.  Only STORE_SHORT_DATA (and
 *    STORE_SHORT_META for a single chunk) means the store is full: the
 *    server then applies its policy (store_pick_victim() +
 *    store_snapshot_delete() + store_cleanup() + store_commit(), then
 *    retry; or fail the I/O).  The other kinds ask for a commit or a
 *    smaller request.
 */
#ifndef CSNAP_STORE_STORE_H
#define CSNAP_STORE_STORE_H

#include "src/store/superblock.h"
#include "utils/snapname.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct store;
struct io_dev;

typedef uint64_t chunk_t;

/* A snapshot chunk that still lives on the origin.  */
#define STORE_ON_ORIGIN		UINT64_MAX
/* store_changed(): cursor value once the whole origin has been listed.  */
#define STORE_CHUNK_END		UINT64_MAX
/* store_changed(): compare a snapshot against the live origin.  */
#define STORE_ORIGIN_ID		0u

#define STORE_SNAP_NAME_MAX	SNAP_NAME_MAX	/* bytes, without the NUL (utils/snapname.h) */
#define STORE_REQ_ID_LEN	16	/* admin request id kept per snapshot */

/* ---- open / close / commit ---------------------------------------------- */

struct store_open_opts {
	size_t cache_bytes;	/* metadata block cache (LRU); 0 = 64 MiB.  The
				 * cache may exceed it only by blocks pinned by
				 * the current transaction. */
	bool readonly;		/* no writes at all: a journal that needs replay
				 * is replayed into memory only */
	bool old_format;	/* open a store of an older format version
				 * read-write (store_upgrade() and tests only):
				 * without it such a store opens only read-only */
};

/* Opens the store at PATH (O_DIRECT), validates the superblock, replays the
 * journal (read-write: to the device; read-only: in memory) and loads the
 * snapshot table and space map summaries.  */
int store_open(const char *path, const struct store_open_opts *opts,
	       struct store **out);
/* Same on an already open device (tests record its writes).  The device
 * stays the caller's: store_close() does not close it.  */
int store_open_dev(struct io_dev *dev, const struct store_open_opts *opts,
		   struct store **out);
/* Discards uncommitted changes, writes committed metadata home (read-write),
 * frees everything.  NULL is fine.  */
void store_close(struct store *s);
/* Discards uncommitted changes and frees everything without writing
 * anything: committed metadata stays in the journal for the next open to
 * replay.  For a writer that may no longer own the store (a master whose
 * lease may have run out must not write over a successor's blocks).  */
void store_close_nockpt(struct store *s);

/* Moves the store on DEV (not open anywhere else: the cluster stopped)
 * up to CSNAP_FORMAT_VERSION, one version at a time, each crash-safely
 * (upgrade.c): a cut leaves the old version or the new one.  *FROM gets
 * the version found; a store already current is left untouched.  REPORT
 * (may be NULL) gets one line per step run.  */
int store_upgrade_dev(struct io_dev *dev, uint32_t *from,
		      void (*report)(void *arg, const char *line), void *arg);
int store_upgrade(const char *path, uint32_t *from,
		  void (*report)(void *arg, const char *line), void *arg);

/* Group commit: makes every change since the last commit durable as one
 * atomic transaction (journal write + flush).  No-op without changes.  */
int store_commit(struct store *s);
/* Group commit in two halves, so that the next transaction's changes (and
 * copy-outs) can proceed while this one's I/O is in flight.
 * store_commit_begin() closes the open transaction and stages it: IO gets
 * the journal writes to make (io->n == 0: nothing to commit, nothing in
 * flight); a new, empty transaction opens at once.  The caller then makes
 * the copied data durable (flush), writes IO's pieces, flushes again and
 * calls store_commit_end() with the result; only then is the transaction
 * durable (answer the writes that waited for it).  Meanwhile lookups see
 * it, changes go into the new transaction, store_abort() drops only the
 * new one, and store_commit(), store_checkpoint(), store_grow() and
 * store_origin_resize() fail with -EBUSY.  -EAGAIN (nothing done): the
 * transaction frees data chunks, which the next one could reuse before
 * this one is durable: use store_commit().  A failed end (or I/O result
 * < 0) leaves the store unusable: only store_close_nockpt() may follow.  */
struct store_commit_io {
	void *buf[2];
	size_t len[2];
	uint64_t off[2];
	unsigned n;
};
int store_commit_begin(struct store *s, struct store_commit_io *io);
int store_commit_end(struct store *s, int io_result);
bool store_commit_inflight(const struct store *s);
/* Abandons every change since the last commit (e.g. a copy-out failed):
 * the store is back at the last committed state.  Chunks handed out by
 * the abandoned operations must not be used.  If it fails (the committed
 * metadata does not read back), the store is unusable: only
 * store_close_nockpt() may follow.  */
int store_abort(struct store *s);
/* Writes committed metadata to its home location and empties the journal
 * (bounded replay time).  store_commit() does it by itself when the journal
 * fills; servers may call it when idle.  */
int store_checkpoint(struct store *s);
/* Metadata blocks changed in the current transaction, and the most one
 * transaction may hold (the journal's capacity).  Commit well before the
 * limit (e.g. at half): store_commit() fails with -EFBIG beyond it.  */
unsigned store_txn_blocks(const struct store *s);
unsigned store_txn_limit(const struct store *s);

/* Why the last data-path call failed with -ENOSPC.  */
enum store_short {
	STORE_SHORT_NONE = 0,
	STORE_SHORT_DATA,	/* not enough free data chunks: the store is full */
	STORE_SHORT_META,	/* the b-tree area might not hold the worst case
				 * of this request: retry it in smaller pieces;
				 * for one chunk, the tree area is full */
	STORE_SHORT_TXN,	/* the request might not fit in what is left of
				 * the open transaction's journal room: commit,
				 * then retry (in smaller pieces if alone) */
};
enum store_short store_enospc_kind(const struct store *s);
/* Worst-case b-tree blocks that COUNT ascending inserts allocate when they
 * land in at most TOUCHED existing leaves (exposed for the unit tests).  */
uint64_t store_tree_need(const struct store *s, uint64_t count, uint64_t touched);
/* True when a change is pending (store_commit() has work).  */
bool store_txn_pending(const struct store *s);

/* The device (for the caller's copy-outs: io_dev_pread/pwrite/flush).  */
struct io_dev *store_dev(const struct store *s);

/* ---- geometry --------------------------------------------------------- */

struct store_info {
	struct csnap_sb sb;	/* decoded superblock */
	uint32_t chunk_size;	/* bytes */
	uint64_t origin_chunks;	/* chunks of the origin (last may be partial) */
	uint64_t data_chunks;	/* store chunks for copied-out data */
	uint64_t data_free;	/* of which free (committed view + this txn) */
	uint64_t meta_blocks;	/* b-tree node area, 4 KiB blocks */
	uint64_t meta_free;
	uint64_t exceptions;	/* exceptions in the tree */
	uint32_t tree_height;	/* 1 = root is a leaf */
	uint32_t snapshots;	/* live snapshots */
	uint32_t snapshots_deleting;	/* deleted, cleanup not finished */
	uint32_t snapshots_cloning;	/* snapshots of snapshots being made */
	uint64_t txn_seq;	/* sequence of the last committed transaction */
};
void store_get_info(const struct store *s, struct store_info *out);
/* The origin grew to NEW_SIZE bytes (resize.c): recorded durably in the
 * superblock before it returns.  The new chunks belong to no snapshot
 * taken before (each keeps its size, store_snapshot.origin_chunks); later
 * snapshots cover them.  Equal: no-op.  -EINVAL (nothing changed) for a
 * shrink, or when the current size is not a multiple of the chunk size.  */
int store_origin_resize(struct store *s, uint64_t new_size);
/* The store device was extended: adds its space to the data area
 * (grow.c: the data bitmap moves to the device's end, one atomic
 * superblock write switches to it).  Needs no uncommitted change
 * (-EBUSY); *ADDED gets the data chunks added (0: the device did not
 * grow).  -ENOSPC: it grew too little to hold a chunk and the bitmap.  */
int store_grow(struct store *s, uint64_t *added);
/* Byte offset of store chunk C on the store device.  */
uint64_t store_chunk_offset(const struct store *s, chunk_t c);

/* ---- data path ---------------------------------------------------------- */

/* A copy the caller must perform before committing.  */
struct store_copy {
	chunk_t origin_chunk;	/* chunk being written */
	chunk_t dst;		/* store chunk to fill */
	chunk_t src;		/* store chunk to copy from, or STORE_ON_ORIGIN:
				 * copy origin chunk `origin_chunk` */
};

/* Origin write of chunks [first, first+count): for every chunk that some
 * live snapshot still reads from the origin, allocates a store chunk and
 * records an exception shared by all those snapshots.  Fills out[0..*nout)
 * (out needs room for `count` entries) with the copies to do (src is always
 * STORE_ON_ORIGIN).  Chunks not listed may be overwritten at once.
 * -ENOSPC: store full, nothing changed.  */
int store_origin_write(struct store *s, chunk_t first, uint32_t count,
		       struct store_copy *out, uint32_t *nout);

/* Snapshot write of chunks [first, first+count) of snapshot SNAP_ID:
 * dst[i] receives the store chunk to write chunk first+i to.  When that
 * chunk is new, a copy is listed in copies[0..*ncopies) (room for `count`)
 * whose src is the origin or the previously shared store chunk; the caller
 * needs to do it only for a partial-chunk write.  Chunks the snapshot owns
 * alone are written in place and listed in no copy.  -ENOSPC: nothing
 * changed.  */
int store_snapshot_write(struct store *s, uint32_t snap_id, chunk_t first,
			 uint32_t count, chunk_t *dst,
			 struct store_copy *copies, uint32_t *ncopies);

/* Snapshot read lookup: out[i] = store chunk holding chunk first+i of the
 * snapshot, or STORE_ON_ORIGIN.  */
int store_snapshot_read(struct store *s, uint32_t snap_id, chunk_t first,
			uint32_t count, chunk_t *out);

/* ---- snapshots ---------------------------------------------------------- */

#define STORE_SNAP_LIVE		0x1
#define STORE_SNAP_DELETING	0x2	/* deleted; its chunks are being freed */
#define STORE_SNAP_CLONING	0x8	/* snapshot of a snapshot whose walk has
					 * not finished: not readable yet */

struct store_snapshot {
	uint32_t id;		/* >= 1, never reused within a store */
	uint32_t bit;		/* share-mask bit (internal, for dump/check) */
	uint32_t flags;		/* STORE_SNAP_* */
	int32_t priority;	/* store-full policy: lower goes first */
	uint32_t usecount;	/* users holding it (server-maintained) */
	uint32_t parent_id;	/* 0 = snapshot of the origin; else the
				 * snapshot it was made from (which may
				 * have been deleted since) */
	uint64_t ctime;		/* creation, seconds since the epoch */
	uint64_t origin_chunks;	/* origin size at creation, in chunks */
	char name[STORE_SNAP_NAME_MAX + 1];
	uint8_t req_id[STORE_REQ_ID_LEN];	/* the create request that made
						 * it (all zero: none given) */
	uint64_t clone_next;	/* STORE_SNAP_CLONING: first origin chunk
				 * the walk has not done (else 0) */
	chunk_t rb_cursor;	/* internal (rollback source slot only) */
};

/* O(1) in the number of exceptions.  -EEXIST: name taken; -ENOSPC: table
 * or mask bits full (a deleted snapshot's bit is reusable only after its
 * cleanup finished: -EBUSY then).  */
int store_snapshot_create(struct store *s, const char *name, int32_t priority,
			  uint32_t *id_out);
/* The same, recording REQ_ID (STORE_REQ_ID_LEN bytes, NULL: none) with the
 * snapshot, so that a retried create can tell its own snapshot from
 * someone else's of the same name.  */
int store_snapshot_create_req(struct store *s, const char *name, int32_t priority,
			      const uint8_t *req_id, uint32_t *id_out);
/* Marks the snapshot deleted: it disappears from reads at once; its chunks
 * are freed incrementally by store_cleanup().  */
int store_snapshot_delete(struct store *s, uint32_t id);
int store_snapshot_get(const struct store *s, uint32_t id,
		       struct store_snapshot *out);
int store_snapshot_find(const struct store *s, const char *name,
			struct store_snapshot *out);
/* Copies up to MAX entries (live and deleting), ordered by id; returns the
 * total number of entries (may exceed MAX).  */
int store_snapshot_list(const struct store *s, struct store_snapshot *out,
			unsigned max);
int store_snapshot_set_priority(struct store *s, uint32_t id, int32_t prio);

/* Snapshots of snapshots (clone.c).  store_snapshot_clone() starts NEW
 * (NAME) as a copy of live snapshot PARENT_ID: it takes a free mask bit
 * and a table slot marked STORE_SNAP_CLONING (the name is taken, the
 * snapshot is not readable).  store_clone_step() then walks the
 * exceptions from a persistent cursor, setting NEW's bit wherever the
 * parent's is set, at most BUDGET exceptions (whole origin chunks) and at
 * most half the journal's room per call; the caller commits between
 * calls.  It returns 1 while more remains, 0 once the clone is live
 * (*ID_OUT of store_clone_pending() then reads the parent's content as it
 * was at store_snapshot_clone()), negative errno on error.  The walk
 * resumes after a crash or reopen where its last commit left it.
 * While a clone runs: writes to the parent fail with -EBUSY (its content
 * must stay put), deleting the parent fails with -EBUSY, a second clone
 * fails with -EBUSY; origin writes, reads, other snapshots and cleanup
 * go on (origin writes copy out for NEW wherever the parent reads the
 * origin).  Deleting NEW while it clones abandons the clone (cleanup
 * clears its bits).  Cost: O(exceptions) in total, O(BUDGET) per call;
 * lookups stay one descent whatever the depth of clones.  */
int store_snapshot_clone(struct store *s, const char *name, uint32_t parent_id,
			 int32_t priority, const uint8_t *req_id, uint32_t *id_out);
int store_clone_step(struct store *s, unsigned budget);
/* The id of the snapshot being cloned (0: none) and of its parent.  */
uint32_t store_clone_pending(const struct store *s, uint32_t *parent_id);
/* Gives live snapshot ID the name NEW_NAME (snap_name_check() rules, not
 * taken by another live snapshot: -EEXIST); its id, content and request id
 * are unchanged.  Journaled like create/delete: durable at the next
 * store_commit().  Renaming to its own name is a no-op.  */
int store_snapshot_rename(struct store *s, uint32_t id, const char *new_name);
int store_snapshot_set_usecount(struct store *s, uint32_t id, uint32_t n);

/* Store-full policy helper: the live snapshot with usecount 0, for which
 * IN_USE (may be NULL) is false, with the lowest priority, oldest first.
 * -ENOENT if none.  */
int store_pick_victim(const struct store *s, bool (*in_use)(void *arg, uint32_t id),
		      void *arg, uint32_t *id_out);

/* Frees the chunks of deleted snapshots, examining at most BUDGET
 * exceptions.  Returns 1 if more work remains, 0 when no cleanup is
 * pending, negative errno on error.  Freed chunks become allocatable after
 * the next store_commit().  */
int store_cleanup(struct store *s, unsigned budget);

/* ---- rollback (rollback.c; docs/store.md "Rollback") ---------------------- */

/* Makes the origin read snapshot ID's content from this transaction on;
 * the data moves back with the steps below.  DELETE_SNAP: the snapshot
 * ends with the start (else it keeps its id, name and content, and needs
 * a free table slot: -ENOSPC / -EBUSY (slots still being cleaned) with a
 * message).  -EBUSY: a rollback is already running.  O(1).  */
int store_rollback_start(struct store *s, uint32_t id, bool delete_snap);

struct store_rollback {
	bool active;
	uint32_t snap_id;	/* the snapshot rolled back to (may be deleted) */
	uint32_t source_id;	/* the source's id: snapshots with snap_id or an
				 * id above this read its exceptions at pending
				 * chunks (taken after the start) */
	char name[STORE_SNAP_NAME_MAX + 1];	/* its name at the start */
	uint64_t started;	/* seconds since the epoch */
	chunk_t cursor;		/* origin chunks below it are done */
	uint64_t origin_chunks;
};
/* The running rollback, if any (out->active false: none).  */
void store_rollback_get(const struct store *s, struct store_rollback *out);

/* Origin read lookup: out[i] = the store chunk holding origin chunk
 * first+i while it is still to be rolled back, else STORE_ON_ORIGIN.  */
int store_origin_read(struct store *s, chunk_t first, uint32_t count, chunk_t *out);

/* Up to MAX chunks still to roll back, ascending, from the cursor;
 * *ADVANCE: where the cursor may move once they are finished
 * (STORE_CHUNK_END: nothing after them; finishing then ends the rollback).
 * Examines a bounded number of exceptions, so *n may be 0 with more to do. */
int store_rollback_next(struct store *s, chunk_t *out, uint32_t max, uint32_t *n,
			chunk_t *advance);
/* First half of a step over CHUNKS[0..n) (ascending; chunks no longer
 * pending are skipped): records the copy-outs of every live snapshot
 * still reading the physical origin there, as store_origin_write() does
 * (copies[], room for n; src STORE_ON_ORIGIN), and lists the moves
 * (moves[], room for n: origin_chunk <- store chunk src; dst is
 * STORE_ON_ORIGIN).  Order for the caller: do the copies, flush the store,
 * store_commit(); then write every move onto the origin and flush it; then
 * store_rollback_finish().  -ENOSPC as for store_origin_write().  */
int store_rollback_prepare(struct store *s, const chunk_t *chunks, uint32_t n,
			   struct store_copy *copies, uint32_t *ncopies,
			   struct store_copy *moves, uint32_t *nmoves);
/* Second half: the MOVES are on the origin (durable); the chunks stop
 * being pending (their source exceptions are freed where nobody else uses
 * them).  Then the cursor moves to ADVANCE if that is beyond it (0: stays;
 * only a value from store_rollback_next() whose chunks are all finished);
 * STORE_CHUNK_END ends the rollback.  Journaled: durable at the next
 * store_commit().  */
int store_rollback_finish(struct store *s, const struct store_copy *moves, uint32_t n,
			  chunk_t advance);

/* ---- reports ------------------------------------------------------------ */

/* Usage of one snapshot, from the counters the engine keeps with the
 * exceptions (src/store/counters.h; definitions in docs/store.md).  */
struct store_usage {
	uint32_t id;
	bool known;		/* false: the store has no valid counters (made
				 * before they existed, or damaged) - the figures
				 * are 0 and must be shown as unknown */
	uint64_t unique;	/* exceptions whose share mask is exactly this
				 * snapshot: freed if it were deleted */
	uint64_t shared;	/* exceptions it shares with other snapshots */
};
/* Usage of every live snapshot (up to MAX, ordered by id); returns the
 * number of live snapshots.  O(snapshots): never walks the tree.  */
int store_usage(struct store *s, struct store_usage *out, unsigned max);
/* True when the usage counters are present and maintained.  */
bool store_counters_valid(const struct store *s);
/* "valid", "absent" (a store made before counters existed) or why they
 * are damaged.  */
const char *store_counters_state(const struct store *s);
/* Recomputes the counters from a walk of the tree (O(exceptions)),
 * allocating their blocks if the store has none, and marks them valid;
 * durable at the next store_commit().  For `check --repair-counters` and
 * the format upgrade.  */
int store_counters_rebuild(struct store *s);
/* Compares the counters with a walk of the tree (the open transaction
 * included); prints one line per difference to REPORT (may be NULL) and
 * returns how many, or a negative errno.  0 when the counters are absent. */
long store_counters_verify(struct store *s, FILE *report);

/* Changed-chunk list: origin chunks whose content differs between snapshot
 * A and snapshot B (B = STORE_ORIGIN_ID: the live origin), ascending,
 * starting at *cursor.  Writes up to MAX chunks to out, returns how many,
 * and sets *cursor to where to continue (STORE_CHUNK_END when done).  */
int store_changed(struct store *s, uint32_t a, uint32_t b, chunk_t *cursor,
		  chunk_t *out, unsigned max);

/* ---- creation and checking (mkstore / check / dump) ---------------------- */

/* Lays out and writes an empty engine on DEV.  SB carries the fields the
 * caller decides (uuid, secret, ctime, chunk_size, origin_size, origin_id,
 * max_snapshots, lease_*, meta_offset, store_size); the engine fills
 * mask_bits, the engine area and everything from meta_offset on, then
 * writes both superblock copies and flushes.  */
int store_format(struct io_dev *dev, struct csnap_sb *sb);
/* The same, as format VERSION made it (CSNAP_FORMAT_VERSION_MIN..): for
 * the tests of upgrades and of the older formats' bytes (version 1: no
 * usage counters).  */
int store_format_as(struct io_dev *dev, struct csnap_sb *sb, uint32_t version);

/* Full consistency check of the store at PATH (opened read-only, journal
 * replayed in memory).  Prints one line per problem to REPORT (may be
 * NULL).  Returns the number of problems found (0 = clean), or a negative
 * errno if the store cannot be opened at all (err_get() says why).  */
long store_check(const char *path, FILE *report);
long store_check_open(struct store *s, FILE *report);

/* Human-readable superblock, layout, snapshot table and tree statistics. */
int store_dump(struct store *s, FILE *out);

#endif
