/*
 * src/export/session.h - one volume's conversation with the store's
 * master, surviving master changes.
 *
 * A session finds the master (asking this node's agent if it runs, else
 * reading the lease-owner record and validating it against sanlock; or a
 * fixed address for tests), connects, authenticates with
 * the store secret and identifies its volume, all on a helper thread so
 * the event loop never waits for the network.  Then requests go out
 * non-blocking and replies come back through callbacks on the loop.
 *
 * Invariants:
 *  - Every request handed to session_send() gets exactly one done()
 *    callback: with the reply, or with an error if the session is shut
 *    down.  Losing the master is not an error: requests still unanswered
 *    are re-sent, in their original order, on the next connection (after
 *    ops->connected(), which is where a volume re-uploads its state).
 *    One-way requests (session_send_oneway) are dropped instead.
 *  - ops->disconnected() runs before any request is re-sent, so a volume
 *    can forget what the old master told it that a new one may not honour
 *    (the origin's unique-chunk memory).
 */
#ifndef CSNAP_EXPORT_SESSION_H
#define CSNAP_EXPORT_SESSION_H

#include "lease/lease.h"
#include "src/proto/proto.h"

#include <stdbool.h>
#include <stdint.h>

struct evloop;
struct session;

/* How to reach the master of one store; shared by its sessions.  */
struct master_target {
	char store_path[LEASE_PATH_LEN];
	struct csnap_uuid uuid;
	uint8_t secret[PROTO_SECRET_LEN];
	struct lease_area area;
	char fixed_address[64];		/* non-empty: skip the lookup */
	uint16_t fixed_port;
	char agent_socket[108];		/* this node's agent; empty: none */
	uint16_t host_id;
	char client_name[PROTO_STR_MAX + 1];
	int connect_timeout_ms;
};

struct sreq;
typedef void (*sreq_done_fn)(struct sreq *rq, const struct proto_msg *reply, int err);

struct sreq {
	struct proto_msg msg;		/* type, flags, body; owned by the caller */
	sreq_done_fn done;		/* reply (status may be non-zero) or err < 0 */
	void *arg;
	/* set by the session when the request goes on the wire (csnap_boot_ns):
	 * a grant in its reply counts from then (proto.h) */
	int64_t sent_ns;
	/* session private */
	struct sreq *next;
	bool oneway;
};

struct session_ops {
	/* Identified (again): ok describes the volume.  Requests sent from
	 * here go out before the re-sent ones.  */
	void (*connected)(void *arg, const struct proto_identify_ok *ok, bool again);
	void (*disconnected)(void *arg);
	/* A request from the server (BARRIER); answer with session_reply(). */
	void (*server_request)(void *arg, const struct proto_msg *req);
	/* Identify refused (e.g. the snapshot was deleted): the session
	 * stops trying.  */
	void (*refused)(void *arg, int err, const char *why);
};

int session_create(struct evloop *lp, const struct master_target *tgt, uint8_t volume,
		   const char *snapshot, const struct session_ops *ops, void *arg,
		   struct session **out);
/* Fails pending requests with -ESHUTDOWN (their done() runs) and frees. */
void session_destroy(struct session *s);
/* Keep a connection up (reconnecting as needed) / let it go when nothing
 * is pending.  Requests sent while stopped connect on demand.  */
void session_start(struct session *s);
void session_stop(struct session *s);
/* Snapshot sessions: identify with PROTO_F_PASSIVE (no user yet) from the
 * next connection on.  session_is_passive(): the current connection (up
 * or being made) did.  */
void session_set_passive(struct session *s, bool passive);
bool session_is_passive(const struct session *s);

void session_send(struct session *s, struct sreq *rq);
/* Sends a copy of M; no reply is reported and it is not re-sent after a
 * master change.  */
void session_send_oneway(struct session *s, const struct proto_msg *m);
/* Sends RQ on the current connection only: its done() gets the reply, or
 * an error (-ENOTCONN at once if no connection is up, -ECONNRESET if the
 * connection breaks first, -ESHUTDOWN); it is never re-sent.  For
 * requests that belong to one connection (LOCK_UPLOAD).  */
void session_send_once(struct session *s, struct sreq *rq);
void session_reply(struct session *s, const struct proto_msg *m);
bool session_up(const struct session *s);
/* Requests waiting for a reply or for a connection.  */
unsigned session_pending(const struct session *s);
uint64_t session_generation(const struct session *s);

#endif
