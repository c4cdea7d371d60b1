/*
 * src/agent/agent_client.h - the library local programs (csnap export, the
 * admin CLI, scripts via socat) use to ask this node's `csnap agent` where
 * the master of a store is, and to be told when it changes.
 *
 * It speaks the agent's line protocol (agent_proto.h, docs/agent.md) over
 * the unix socket RUN_DIR/agent.sock.  One struct agent_client is one
 * connection; use it from one thread at a time.  Every call that waits
 * takes a timeout in milliseconds (0: do not wait, -1: wait forever).
 *
 * A master answer is only ever VALID when the agent validated the
 * lease-owner record against sanlock's view (lease_find_master()); NONE and
 * CHANGING carry the agent's one-line reason.  The agent may restart: a
 * call that finds the connection closed returns -ENOTCONN; reconnect and
 * WATCH again (a fresh WATCH always yields the current state first).
 *
 * Errors: negative errno + err_set() (utils/err.h).  -ETIMEDOUT when the
 * timeout passed, -ENOENT for a store the agent does not know, -EPROTO for
 * a line the library cannot parse, -ENOTCONN for a closed connection.
 */
#ifndef CSNAP_AGENT_CLIENT_H
#define CSNAP_AGENT_CLIENT_H

#include "src/agent/agent_proto.h"

#include <stddef.h>

struct agent_client;

/* Socket path of the agent for RUN_DIR: "RUN_DIR/agent.sock".  -ENAMETOOLONG
 * if it does not fit a sockaddr_un.  */
int agent_socket_path(const char *run_dir, char *out, size_t outlen);

/* Connects to the agent at SOCKET_PATH and checks its greeting (protocol
 * major version).  -ECONNREFUSED/-ENOENT: no agent running.  */
int agent_client_connect(const char *socket_path, int timeout_ms,
			 struct agent_client **out);
void agent_client_close(struct agent_client *c);

/* The connection's fd, for an event loop: when it is readable, call
 * agent_client_next_notice(c, &m, 0) until it returns -ETIMEDOUT.  */
int agent_client_fd(const struct agent_client *c);

/* The agent's node name and host_id from its greeting.  */
const char *agent_client_node(const struct agent_client *c);
unsigned agent_client_host_id(const struct agent_client *c);

/* "Where is the master of STORE?"  STORE is a store uuid, the [store NAME]
 * of the agent's csnap.conf, or its device path as configured.  The agent
 * looks afresh (not a cached answer).  Returns 0 with *out filled (any
 * state), or -errno.  Notices that arrive meanwhile are kept for
 * agent_client_next_notice().  */
int agent_client_where(struct agent_client *c, const char *store,
		       struct agent_master *out, int timeout_ms);

/* Subscribes to master changes of STORE.  On success the agent sends the
 * current state at once as the first notice, then one notice per change.
 * *uuid_out (may be NULL) gets the store's uuid text, which names the
 * store in notices.  Watching a store twice is harmless.  */
int agent_client_watch(struct agent_client *c, const char *store,
		       char uuid_out[AGENT_UUID_LEN], int timeout_ms);
int agent_client_unwatch(struct agent_client *c, const char *store, int timeout_ms);

/* Next pushed notice (out->uuid names the store).  0, or -ETIMEDOUT if
 * none arrived within TIMEOUT_MS, or -ENOTCONN.  */
int agent_client_next_notice(struct agent_client *c, struct agent_master *out,
			     int timeout_ms);

/* Sends one raw request line (without newline) and returns the first reply
 * line that is not a notice (without newline) in REPLY.  For the CLI and
 * tests; multi-line replies (STORES) continue with agent_client_read_line. */
int agent_client_request(struct agent_client *c, const char *line,
			 char *reply, size_t replylen, int timeout_ms);
/* Next line that is not a notice (notices are queued).  */
int agent_client_read_line(struct agent_client *c, char *line, size_t len,
			   int timeout_ms);

#endif
