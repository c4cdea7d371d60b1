/*
 * src/proto/client.h - the client end of a csnap server connection, for
 * the export data path and the admin CLI.
 *
 * A proto_client is one TCP connection to the master: connect +
 * handshake (store uuid check, mutual HMAC authentication), IDENTIFY, then
 * requests.  Two ways to use it, freely mixed on one connection:
 *
 *  - blocking: proto_client_call() sends one request and waits for its
 *    reply.  Server-initiated requests (BARRIER) that arrive meanwhile are
 *    handed to the handler set with proto_client_set_handler(), or acked
 *    at once if there is none.  Replies to other outstanding ids are kept
 *    and returned later by proto_client_recv().
 *
 *  - non-blocking (for an epoll loop): proto_client_send() queues a request
 *    and returns its id; proto_client_flush() writes what the socket takes;
 *    proto_client_recv(.., false) returns messages as they become whole.
 *    Watch proto_client_fd() for EPOLLIN, and for EPOLLOUT while
 *    proto_client_want_write().
 *
 * The socket is always non-blocking; "blocking" calls wait with poll().
 * Errors are negative errnos with err_set(); -ECONNRESET when the server
 * closed the connection.  After an error the connection is unusable:
 * close it and reconnect (to the new master, after failover).
 */
#ifndef CSNAP_PROTO_CLIENT_H
#define CSNAP_PROTO_CLIENT_H

#include "src/proto/proto.h"

#include <stdbool.h>
#include <stdint.h>

struct proto_client;

/* Connects to ADDRESS:PORT (numeric IPv4/IPv6 or host name) and runs the
 * handshake.  STORE: the expected store uuid (the server's must match).
 * timeout_ms bounds connect + handshake (-1: none).  */
int proto_client_connect(const char *address, uint16_t port,
			 const struct csnap_uuid *store,
			 const uint8_t secret[PROTO_SECRET_LEN],
			 int timeout_ms, struct proto_client **out);
void proto_client_close(struct proto_client *c);

/* IDENTIFY, blocking.  volume: enum proto_volume; snapshot: name for
 * PROTO_VOL_SNAPSHOT (else NULL); flags: PROTO_F_RECONNECT or 0.  */
int proto_client_identify(struct proto_client *c, uint8_t volume,
			  const char *snapshot, uint16_t host_id,
			  const char *client_name, uint16_t flags,
			  struct proto_identify_ok *out);

/* The protocol version agreed in the handshake.  */
uint16_t proto_client_version(const struct proto_client *c);

/* Sends REQ (its id is assigned here) and waits for the reply, which the
 * caller frees with proto_msg_free().  Returns 0 when a reply came, even a
 * failed one: check reply->status.  */
int proto_client_call(struct proto_client *c, struct proto_msg *req,
		      struct proto_msg *reply);
/* The same, giving up after TIMEOUT_MS (-1: never) with -ETIMEDOUT.  */
int proto_client_call_timeout(struct proto_client *c, struct proto_msg *req,
			      struct proto_msg *reply, int timeout_ms);

/* Handler for server-initiated requests met inside blocking calls.  It must
 * answer with proto_client_reply() (now or later).  */
typedef void (*proto_client_handler_fn)(void *arg, struct proto_client *c,
					const struct proto_msg *req);
void proto_client_set_handler(struct proto_client *c,
			      proto_client_handler_fn fn, void *arg);

/* ---- non-blocking use -------------------------------------------------- */

int proto_client_fd(const struct proto_client *c);
/* Queues REQ with a fresh id (also stored in req->id) and tries to write.
 * Returns 0 or a negative errno.  */
int proto_client_send(struct proto_client *c, struct proto_msg *req);
/* Queues a reply to a server-initiated request.  */
int proto_client_reply(struct proto_client *c, const struct proto_msg *reply);
/* Writes queued bytes.  block: until all are written.  Returns 0 when the
 * queue is empty, -EAGAIN if bytes remain (non-blocking), or an error.  */
int proto_client_flush(struct proto_client *c, bool block);
bool proto_client_want_write(const struct proto_client *c);
/* Next whole message (a reply, or a server request such as BARRIER).
 * Returns 1 with OUT filled (free with proto_msg_free), 0 if none is ready
 * (block false), or a negative errno.  */
int proto_client_recv(struct proto_client *c, struct proto_msg *out, bool block);

#endif
