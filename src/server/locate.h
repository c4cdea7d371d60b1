/*
 * src/server/locate.h - find the master of a store and connect to it, for
 * admin tools and test clients.
 *
 * The master's address comes from the lease-owner record, trusted only if
 * it matches sanlock's view of the master lease (lease_find_master), so
 * this node must have joined the store's lockspace (the agent does; the
 * local server does when it starts).  An explicit address overrides the
 * lookup (debugging, tests).  The store secret and uuid for the handshake
 * come from the store's superblock: only a node that can read the shared
 * store can connect.
 */
#ifndef CSNAP_SERVER_LOCATE_H
#define CSNAP_SERVER_LOCATE_H

#include "lease/lease.h"
#include "src/proto/client.h"

#include <stdint.h>

struct locate_opts {
	const char *store_path;
	const char *address;	/* NULL: look the master up */
	uint16_t port;
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
