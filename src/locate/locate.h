/*
 * src/locate/locate.h - finding the master of a store: the one lookup the
 * export, the agent and the admin tools share, and connecting to it.
 *
 * One look (locate_where): ask this node's agent when a socket is given
 * and an agent answers there; otherwise read the lease-owner record,
 * trusted only if it matches sanlock's view of the master lease
 * (lease_find_master), so this node must have joined the store's
 * lockspace (the agent does; the local server does when it starts).  The
 * agent itself looks with no socket.  Either way an address that is
 * empty or holds a space or '=' is not usable (the agent's line protocol
 * cannot carry it): the answer is then "changing", never "valid".
 *
 * Connecting (locate_connect: admin tools, test clients): an explicit
 * address overrides the lookup (debugging, tests); the store secret and
 * uuid for the handshake come from the store's superblock: only a node
 * that can read the shared store can connect.
 *
 * Layer: uses lease/, src/store (superblock), src/proto (client) and the
 * agent's client library; used by src/export, src/agent, src/cli.
 */
#ifndef CSNAP_LOCATE_H
#define CSNAP_LOCATE_H

#include "lease/lease.h"
#include "src/proto/client.h"

#include <stdint.h>

/* Where the master of the store of AREA (uuid UUID) is, in one look;
 * AGENT_SOCKET NULL or "": the record only.  Returns 0 with *OUT filled
 * (VALID: address and port usable; NONE / CHANGING: out->why says why)
 * and *FROM naming the source for messages ("told by the agent", "from
 * the lease-owner record"), or < 0 when neither the agent nor sanlock could be asked
 * (err_get() says why; -ENOTCONN: this node is not in the lockspace).  */
int locate_where(const struct lease_area *area, const struct csnap_uuid *uuid,
		 const char *agent_socket, struct lease_master_info *out, const char **from);

struct locate_opts {
	const char *store_path;
	const char *address;	/* NULL: look the master up */
	uint16_t port;
	const char *agent_socket;	/* NULL: the lease-owner record only */
	int timeout_ms;		/* waiting for a master while it changes */
	/* Called (if set) each time the lookup waits: WHY says for what.  */
	void (*on_wait)(void *arg, const char *why);
	void *wait_arg;
};

struct locate_result {
	char address[64];
	uint16_t port;
	uint64_t host_id;
	struct csnap_uuid uuid;
	uint8_t secret[PROTO_SECRET_LEN];
	struct lease_area area;
};

/* Reads the superblock (uuid, secret, lease area) of the store.  */
int locate_read_store(const char *store_path, struct locate_result *out);
/* Finds the master (retrying while the master is changing, up to
 * timeout_ms) and connects + authenticates.  */
int locate_connect(const struct locate_opts *o, struct locate_result *res,
		   struct proto_client **out);

#endif
