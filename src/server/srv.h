/*
 * src/server/srv.h - internal state of the metadata server, shared by its
 * files:
 *   server.c    election, start-up, the event loop, shutdown
 *   commit.c    parked requests, group commit, the end of a loop turn
 *   conn.c      sockets, handshake + authentication, framing
 *   route.c     what each volume may send and which handler takes it
 *   datapath.c  origin writes (copy-out), snapshot reads/writes, read locks
 *   copy.c      copy-out jobs on the async ioengine
 *   admin.c     snapshot create: the barrier, SNAP_ADDED, clones
 *   admin_snap.c  snapshot delete / set / rename
 *   admin_query.c snapshot list, status, changed-chunk lists
 *   admin_space.c cleanup of deleted snapshots, the store-full policy
 *   chunkset.c  hash multiset of chunk numbers (locks, busy chunks)
 *   invalidate.c  telling a snapshot's other clients that a snapshot
 *               write moved chunks (before the writer is answered)
 *   grants.c    clients' grants: when they have certainly run out (before
 *               a snapshot commit, a moved-chunk answer, a delete)
 *   rollback.c  SNAP_ROLLBACK and the background steps of a rollback
 *
 * Single-threaded: everything runs on the loop thread.
 *
 * State: struct srv below holds what several files share (the store, the
 * connections, the lists of parked requests, the lock and busy-chunk
 * sets).  What one file alone needs is its own struct, defined in that
 * file and reached through a pointer here (struct dp_state in
 * datapath.c, copy_state in copy.c,
 * admin_state in admin.c, inval_state in invalidate.c, grants in
 * grants.c); other files use the small functions declared below.
 *
 * Request model: a request is processed by a function that is idempotent
 * given the committed store state.  When it cannot finish now (a chunk is
 * busy with an uncommitted copy-out, a read lock holds it, a barrier or
 * the takeover grace period is on, the batch is closed) it parks the
 * request on a wait list and returns; the request is processed again from
 * the start when the reason goes away.  So correctness never depends on
 * remembering partial progress.
 *
 * Copy-out ordering (store.h rules): the engine records exceptions in the
 * open transaction; their data is copied by copy jobs; the store device is
 * flushed and the transaction committed only when no copy job is in flight;
 * replies that allow origin writes are sent only after that commit.  Chunks
 * with uncommitted exceptions are "busy": every request touching them waits
 * for the commit.
 */
#ifndef CSNAP_SERVER_SRV_H
#define CSNAP_SERVER_SRV_H

#include "src/server/chunkset.h"
#include "src/server/server.h"
#include "src/proto/proto.h"
#include "src/store/store.h"
#include "lease/lease.h"
#include "utils/clock.h"
#include "utils/evloop.h"
#include "utils/fdlimit.h"
#include "utils/log.h"

#include <stdbool.h>
#include <stdint.h>

struct io_dev;
struct io_engine;
struct srv;

/* ---- requests ---------------------------------------------------------- */

struct conn;

/* A parked request is processed again from the start whenever the state
 * that held it back may have changed (a commit, a lock release, the end of
 * a barrier or of the grace period): srv_kick().  */
struct req {
	struct req *next, *prev;
	struct conn *c;		/* its connection (refcounted; may be dead) */
	struct proto_msg m;
	bool parked;
	struct proto_msg *reply;	/* sent after the next commit */
	/* SNAP_WRITE: chunks it moved to a new store chunk; the other
	 * clients of the snapshot must forget their old location before it
	 * is answered (invalidate.c).  */
	struct proto_range *moved;
	uint32_t nmoved, capmoved;
	bool inval_sent;
	unsigned inval_waiting;		/* acks still awaited */
};

struct req_list {
	struct req *head, *tail;
	unsigned n;
};

void req_list_push(struct req_list *l, struct req *r);
void req_list_remove(struct req_list *l, struct req *r);
struct req *req_list_pop(struct req_list *l);

/* ---- connections (conn.c) ----------------------------------------------- */

enum conn_state {
	CONN_CHALLENGED = 1,	/* challenge sent, waiting for AUTH */
	CONN_AUTHED,		/* waiting for IDENTIFY */
	CONN_READY,
};

struct conn {
	struct conn *next, *prev;
	struct conn *grave_next;	/* srv.graveyard, once closed */
	struct srv *s;
	int fd;
	enum conn_state state;
	uint8_t nonce[PROTO_NONCE_LEN];
	struct proto_buf in, out;
	struct evloop_watch w;	/* w.events has EPOLLOUT while `out` has data */
	bool closing;		/* close once `out` drains */
	bool dead;		/* closed; freed when refs drops to 0 */
	unsigned refs;		/* requests pointing here */
	char peer[64];
	int64_t accepted_ms;	/* handshake must finish in time */
	/* identity */
	uint8_t volume;		/* enum proto_volume */
	uint32_t snap_id;
	bool passive;		/* snapshot opened with PROTO_F_PASSIVE and no
				 * data request since: not "in use" */
	uint64_t snap_chunks;	/* snapshot volume size in chunks */
	uint16_t host_id;
	char name[PROTO_STR_MAX + 1];
	/* read locks this connection holds (snapshot volumes) */
	struct chunkset locks;
	/* origin volumes: it asks before reads while a rollback runs
	 * (IDENTIFY with PROTO_F_ROLLBACK_OK), and the origin-read locks it
	 * holds (ORIGIN_READ, rollback.c); zeroed by calloc, freed when it
	 * goes (dp_conn_gone) */
	bool rb_ok;
	struct chunkset olocks;
	/* barrier */
	uint64_t barrier_seq;	/* ack pending for this seq, 0 none */
	uint64_t added_id;	/* SNAP_ADDED ack pending for this id, 0 none */
	/* grant (proto.h): when we last queued a successful reply for it;
	 * the client's grant ends before granted_ms + PROTO_GRANT_WAIT_MS */
	int64_t granted_ms;
	bool eof;		/* the client closed it (not cut off, not an error) */
};

/* Listening starts / stops: connection cap and descriptor reserve.  */
int conn_listen_init(struct srv *s);	/* watches s->lfd */
void conn_listen_done(struct srv *s);
int conn_accept(struct srv *s);
/* Encode M into the output buffer (the socket side of conn_send).  */
void conn_queue(struct conn *c, const struct proto_msg *m);
/* Protocol error: log the reason and close this connection only.  */
void conn_fail(struct conn *c, const char *why);
void conn_close(struct conn *c);
void conn_put(struct conn *c);
/* Write what can be written now for every connection with output; at
 * the end of a loop turn (frees the connections closed during it).  */
void conn_flush_all(struct srv *s);
/* Frees closed connections (no event of this loop turn may follow). */
void conn_reap(struct srv *s);
/* Timer: close connections that did not finish the handshake in time. */
void conn_tick(struct srv *s);

/* ---- routing (route.c) ------------------------------------------------- */

/* A message from a READY connection: an acknowledgement, or a request
 * that the table allows this connection's volume (else EPERM; a type not
 * in the table is a protocol error).  Takes ownership of M's contents.  */
void route_message(struct conn *c, struct proto_msg *m);
/* (Re)process request R, which route_message admitted.  Takes R.  */
void route_process(struct srv *s, struct req *r);
/* Queue a message for sending (best effort on dead connections); notes
 * the grant a successful reply renews.  */
void conn_send(struct conn *c, const struct proto_msg *m);
/* Queue a reply to REQ: status errnum (0 = success, body in *m).  */
void conn_reply_error(struct conn *c, const struct proto_msg *req, int errnum,
		      const char *why);
/* C was closed (dead): drop what the server keeps for it (grants, read
 * locks, invalidation and barrier waits).  */
void srv_conn_gone(struct srv *s, struct conn *c);

/* ---- copy-out jobs (copy.c) -------------------------------------------- */

/* Queues copies; copy_flush() starts them, coalescing neighbours across
 * all requests of the loop turn.  Returns 0 or -ENOMEM (the caller
 * aborts the transaction).  */
int copy_start(struct srv *s, const struct store_copy *copies, uint32_t n);
/* Start the queued copies as jobs.  */
void copy_flush(struct srv *s);
/* Copies queued or in flight (the transaction may not commit).  */
bool copy_pending(const struct srv *s);
/* Marks the chunks of COPIES busy until the next commit.  */
int copy_mark_busy(struct srv *s, const struct store_copy *copies, uint32_t n);
/* Reap completions (the engine's eventfd fired).  */
void copy_reap(struct srv *s);
/* May new copies join the open transaction?  (Closes after a while so a
 * steady stream of copy-outs cannot postpone the commit forever; closed
 * after a failed copy.)  */
bool copy_batch_open(const struct srv *s);
/* The open transaction was committed (nothing pending): a new batch.  */
void copy_batch_done(struct srv *s);
/* A copy failed: the open transaction must be thrown away.  */
void copy_fail(struct srv *s);
bool copy_failed(const struct srv *s);
/* The failed transaction was thrown away: a new batch.  */
void copy_batch_reset(struct srv *s);
/* Wait for every job in flight to finish (orderly shutdown).  */
void copy_drain(struct srv *s);
void copy_stats(const struct srv *s, uint64_t *copyouts, uint64_t *jobs);
/* Copy-outs queued while a pipelined commit was in flight (overlap).  */
uint64_t copy_overlapped(const struct srv *s);
int copy_init(struct srv *s);
void copy_free(struct srv *s);

/* ---- data path (datapath.c) -------------------------------------------- */

/* Request handlers (route.c's table).  Each takes ownership of R and
 * either answers it or parks it.  */
void dp_origin_write(struct srv *s, struct req *r);
void dp_snap_read(struct srv *s, struct req *r);
void dp_snap_read_done(struct srv *s, struct req *r);
void dp_snap_write(struct srv *s, struct req *r);
void dp_lock_upload(struct srv *s, struct req *r);
/* ORIGIN_READ / ORIGIN_READ_DONE (origin clients, while a rollback runs):
 * where the origin's chunks are; "at store chunk X" locks X's origin
 * chunk against the rollback step that would free X.  */
void dp_origin_read(struct srv *s, struct req *r);
void dp_origin_read_done(struct srv *s, struct req *r);
/* Connection going away: its read locks are kept for grace_ms (the
 * client may be reconnecting and will re-upload them), then released. */
void dp_conn_gone(struct srv *s, struct conn *c);
/* Timer: release the kept locks of connections that did not come back. */
void dp_tick(struct srv *s);

/* Stale lock re-uploads refused so far.  */
uint64_t dp_locks_refused(const struct srv *s);
int dp_init(struct srv *s);
void dp_free(struct srv *s);

/* ---- chunk invalidation (invalidate.c) ----------------------------------- */

int inval_init(struct srv *s);
void inval_free(struct srv *s);
/* Remembers that R's snapshot write moved CHUNK.  0 or -ENOMEM.  */
int inval_note(struct req *r, uint64_t chunk);
/* Sends INVALIDATE for R's moved chunks to every other connection of its
 * snapshot; returns how many acks R now waits for (0: answer at once).
 * Connections that do not ack within --barrier-timeout-ms are cut off. */
unsigned inval_send(struct srv *s, struct req *r);
void inval_ack(struct srv *s, struct conn *c, uint64_t id);
void inval_conn_gone(struct srv *s, struct conn *c);
/* R is finished (answered or failed): forget its waits.  */
void inval_req_gone(struct srv *s, struct req *r);
void inval_tick(struct srv *s);

/* ---- admin (admin*.c; their shared helpers: admin_int.h) ---------------- */

/* Request handlers (route.c's table), like dp_*.  */
void admin_snap_create(struct srv *s, struct req *r);
void admin_snap_delete(struct srv *s, struct req *r);
void admin_snap_set(struct srv *s, struct req *r);
void admin_snap_rename(struct srv *s, struct req *r);
void admin_snap_list(struct srv *s, struct req *r);
void admin_status(struct srv *s, struct req *r);
void admin_changed(struct srv *s, struct req *r);
/* Parks R (true) until no copy-out is in flight, as changes that need a
 * quiet store do.  */
bool admin_quiet_or_park(struct srv *s, struct req *r);
/* resize.c: ORIGIN_RESIZE, STORE_GROW, and the ORIGIN_SIZE acks of
 * origin clients */
void admin_origin_resize(struct srv *s, struct req *r);
void admin_store_grow(struct srv *s, struct req *r);
void admin_origin_size_ack(struct srv *s, struct conn *c, const struct proto_msg *m);
/* Barrier ack from an origin connection.  */
void admin_barrier_ack(struct srv *s, struct conn *c, uint64_t seq);
/* Connection closed while a barrier waited for it.  */
void admin_barrier_conn_gone(struct srv *s, struct conn *c);
/* SNAP_ADDED ack from an origin connection.  */
void admin_added_ack(struct srv *s, struct conn *c, uint64_t id);
/* Timer tick: barrier timeouts, background cleanup.  */
void admin_tick(struct srv *s);
/* End of a loop turn, after the commit step: finish a barrier whose acks
 * are all in once nothing is in flight; retry a deferred create.  */
void admin_poll(struct srv *s);
/* A snapshot barrier holds origin writes.  */
bool admin_barrier_active(const struct srv *s);
/* When admin_poll wants to run next (a create waiting for the grant
 * horizon), 0 if not waiting on time.  */
int64_t admin_due_ms(const struct srv *s);
/* Stopping: drop the requests admin holds.  */
void admin_shutdown(struct srv *s);
int admin_init(struct srv *s);
void admin_free(struct srv *s);
/* -ENOSPC met: apply the store-full policy.  Returns 1 if space was made
 * (retry), 0 if the policy says fail, negative errno on error.  Call only
 * with no copy in flight (nothing uncommitted that needs data).  */
int admin_store_full(struct srv *s, bool meta);

/* Raise the barrier for R (a SNAP_ROLLBACK; flag RB_START on it); when
 * every origin client acknowledged and no grant of a departed one is
 * left, admin_poll() calls rb_barrier_done(s, R).  Park R instead if a
 * barrier or a create is in progress (false).  */
bool admin_barrier_for(struct srv *s, struct req *r);
/* Used by a client (a data request on one of its connections).  */
bool admin_snap_in_use(const struct srv *s, uint32_t id);
/* Commits, then answers R with M (or the commit's error; after a late
 * commit when the lease's renewal is late).  */
void admin_commit_and_reply(struct srv *s, struct req *r, struct proto_msg *m);

/* ---- rollback (rollback.c) ------------------------------------------------ */

int rb_init(struct srv *s);
void rb_free(struct srv *s);
/* SNAP_ROLLBACK (route.c's table).  */
void admin_snap_rollback(struct srv *s, struct req *r);
/* The rollback's barrier is down (admin_barrier_for): start it.  */
void rb_barrier_done(struct srv *s, struct req *r);
/* The identify reply's state for an origin client (PROTO_STATE_*).  */
uint32_t rb_origin_state(const struct srv *s);
/* End of a loop turn: the next step of a running rollback, if the store
 * is quiet.  */
void rb_poll(struct srv *s);
/* When rb_poll wants to run next (0: when something happens).  */
int64_t rb_due_ms(const struct srv *s);
/* A rollback step holds these chunks: origin writes over them wait.  */
bool rb_busy(const struct srv *s, const struct proto_ranges *rs);
/* store_origin_write() said -EAGAIN for [FIRST, +N): its pending chunks
 * are rolled back before the next background step.  0 or -errno.  */
int rb_origin_wait(struct srv *s, uint64_t first, uint32_t n);
/* The store was full at the last step (policy fail): origin writes over
 * pending chunks fail with ENOSPC rather than wait.  */
bool rb_full(const struct srv *s);
/* A step's copy-outs are uncommitted: no other copy-out may join.  */
bool rb_batch_closed(const struct srv *s);
/* Snapshot SNAP_ID reads the running rollback's source (taken after its
 * start): no data request until it ends (WHY: the reason).  */
bool rb_snap_blocked(const struct srv *s, uint32_t snap_id, char *why, size_t len);
/* A rollback runs: origin clients that cannot follow it (no
 * PROTO_F_ROLLBACK_OK) are refused (WHY: the reason).  */
bool rb_refuses_origin(const struct srv *s, char *why, size_t len);

/* ---- the server --------------------------------------------------------- */

struct srv {
	struct server_opts o;
	char address[64];
	uint16_t port;
	uint64_t epoch;

	/* store */
	struct store *st;
	struct store_info info;		/* geometry (refreshed after commits) */
	struct io_dev *sdev;		/* the engine's device */
	struct io_dev *odev;		/* origin, read-only */
	uint64_t origin_size;
	uint32_t chunk_size;
	struct csnap_uuid uuid;
	uint8_t secret[PROTO_SECRET_LEN];

	/* leases */
	struct lease_area area;
	struct lease_master lm;

	/* loop */
	struct evloop *lp;
	int lfd, iofd;
	struct evloop_watch listen_watch, io_watch;
	struct evloop_signals sigs;
	struct evloop_timer tick_timer;	/* every TICK_MS while master */
	struct evloop_timer wake;	/* the next due time of the turn's work */
	unsigned ticks;
	bool stop_asked;		/* SIGTERM/SIGINT seen */
	bool serving;			/* in serve(): a stop drains */
	int64_t drain_deadline_ms;
	struct io_engine *eng;
	bool stopping;			/* SIGTERM: drain and hand over */
	bool fatal;			/* fenced or store failure: stop now */
	int fatal_err;

	struct conn *conns;		/* newest first */
	unsigned nconns;
	unsigned nunident;		/* of which not yet identified */
	unsigned max_conns;		/* below the descriptor limit */
	struct fd_reserve fdres;	/* accept on EMFILE (utils/fdlimit.h) */
	bool accept_paused;		/* listener unwatched until the tick */
	struct conn *graveyard;		/* closed during this loop turn */
	struct log_limit peer_log;	/* what peers can make us log at will */

	/* data path state */
	struct chunkset locks;		/* read lock counts, all connections */
	struct chunkset olocks;		/* origin-read lock counts (rollback) */
	struct chunkset busy;		/* chunks with uncommitted copy-outs */
	struct req_list waiting;	/* parked requests */
	struct req_list after_commit;	/* replies waiting for a commit */
	bool lease_late;		/* commits held: renewal is late */
	bool txn_unsafe;		/* the open transaction drops snapshot
					 * data (delete): answer no origin
					 * write until it is committed */
	bool kick;			/* reprocess `waiting` this turn */
	unsigned quiesce;		/* admin ops waiting for no copy in
					 * flight: close the batch */
	uint64_t commits;		/* commit counter */
	uint64_t ckpt_commits;		/* `commits` at the last checkpoint */
	int64_t grace_until_ms;		/* lock re-upload window */
	/* Pipelined group commit (commit.c): a data-path transaction's
	 * flush, journal write and flush run on the ioengine while the next
	 * transaction's copy-outs proceed.  Its busy chunks stay in `busy`
	 * (and are kept in flight.busy to be released) until it is durable,
	 * so everything that waits for "no uncommitted copy-out" waits for
	 * it too.  */
	bool pipeline;			/* allowed (server_run; tests choose) */
	struct commit_flight {
		bool active;
		int err;		/* first failure of its I/O */
		unsigned step;		/* 0 data flush, 1 journal write, 2 flush */
		unsigned pending;	/* its I/Os not completed */
		struct store_commit_io io;
		struct chunkset busy;	/* its chunks (also in srv.busy) */
	} flight;
	uint64_t stat_pipelined;	/* commits that went through the flight */

	/* each file's own state */
	struct dp_state *dp;		/* datapath.c: kept locks */
	struct copy_state *copy;	/* copy.c */
	struct admin_state *admin;	/* admin.c: barrier, SNAP_ADDED */
	struct inval_state *inval;	/* invalidate.c */
	struct grants *grants;		/* grants.c */
	struct rb_state *rb;		/* rollback.c */

	/* stats */
	uint64_t stat_queries, stat_commits;
};

/* New copies may join the open transaction?  (Closes after a while so a
 * steady stream of copy-outs cannot postpone the commit forever.)  */
bool srv_batch_open(struct srv *s);
/* Park R until the next srv_kick().  */
void srv_park(struct srv *s, struct req *r);
/* Something changed: reprocess parked requests at the end of this turn. */
void srv_kick(struct srv *s);
/* Frees a finished request (and drops its connection reference).  */
void srv_req_done(struct srv *s, struct req *r);
/* Fatal: fenced or the store failed; stop without further writes.  */
void srv_fatal(struct srv *s, int err, const char *why);
/* Discard the open transaction after a failed copy (reopen the engine),
 * failing the requests that waited for it.  */
void srv_abort_txn(struct srv *s, int err);
/* Commit now if nothing is in flight (admin ops use it).  Returns 0 when
 * committed (or nothing to commit), -EAGAIN when the master lease's
 * renewal is late so the commit must wait (nothing is lost: it is retried
 * every loop turn), or another negative errno after srv_fatal().  */
int srv_commit_now(struct srv *s);
/* A pipelined commit is in flight (its replies are not sent yet).  */
bool srv_commit_inflight(const struct srv *s);
/* Waits until no pipelined commit is in flight (reaping the engine): for
 * the engine calls that refuse to run during one (store_origin_resize).
 * Negative errno after a fatal error.  */
int srv_commit_flight_wait(struct srv *s);
/* Closes the engine at an orderly stop (s->st becomes NULL).  It writes
 * committed metadata home (a checkpoint) only while the master lease
 * still allows commits; otherwise it writes nothing: the journal already
 * holds every commit and the next master replays it.  */
void srv_close_store(struct srv *s);
/* Send M (a reply to R, copied) after the next successful commit, then
 * finish R.  */
void srv_reply_after_commit(struct srv *s, struct req *r, const struct proto_msg *m);
/* A connection goes away while its client may still hold a grant (it
 * may not know it was cut off).  Origin: no snapshot commit before that
 * grant has certainly expired.  Snapshot, unless the client closed it
 * itself (it forgets everything first): until then the snapshot counts as
 * in use and a write that moved chunks it may have cached is not answered
 * (srv_snap_grants_until).  */
void srv_grant_gone(struct srv *s, const struct conn *c);
/* When every grant a client of snapshot SNAP_ID may still hold from a
 * closed connection (or from a previous master) has certainly run out;
 * in the past if none.  */
int64_t srv_snap_grants_until(const struct srv *s, uint32_t snap_id);
/* Timer: forget ghosts that ran out; kick requests waiting for them or
 * for the lease (srv_may_grant).  */
void grants_tick(struct srv *s);
/* No snapshot commit before this (grants of departed origin clients or
 * of a previous master).  */
int64_t grants_horizon(const struct srv *s);
/* Taking over: every grant of the previous master ends by UNTIL_MS.  */
void grants_takeover(struct srv *s, int64_t until_ms);
/* A request parks until a ghost goes (kicked by grants_tick).  */
void grants_wait(struct srv *s);
int grants_init(struct srv *s);
void grants_free(struct srv *s);
/* May we send a reply that renews a grant?  Only while the master lease is
 * certainly ours (else a zombie master could extend grants past the
 * moment a new master takes over).  Sets grant_held when not.  */
bool srv_may_grant(struct srv *s);
/* Connection count by volume kind, for status.  */
unsigned srv_origin_clients(const struct srv *s);
/* Ask sanlock about the master lease (a local descriptor shortage is not
 * a lost lease: 0).  */
int srv_lease_check(struct srv *s);
/* End of the lock re-upload window after a takeover: kick when over.  */
void srv_grace_check(struct srv *s);
/* Between transactions: write committed metadata home (short replay). */
void srv_checkpoint(struct srv *s);
/* The end of a loop turn: start copies, commit, finish a barrier,
 * process parked requests again.  */
void srv_turn_end(struct srv *s);
/* Set up / free a server's state (no descriptor is opened).  */
int srv_init(struct srv *s, const struct server_opts *o);
void srv_free(struct srv *s);

#endif
