/*
 * src/server/server.h - the csnap metadata server (`csnap server`).
 *
 * One server process per serving node per store.  It stays standby until
 * it wins the store's master lease; then it replays the journal (opening
 * the store engine), listens on TCP, publishes its address in the
 * lease-owner record and serves clients until SIGTERM (orderly hand-over)
 * or until sanlock fences it (immediate stop, no further writes).
 *
 * The master is the only writer of the store's metadata and performs every
 * copy-out (origin -> store) before it lets an origin write proceed.
 */
#ifndef CSNAP_SERVER_H
#define CSNAP_SERVER_H

#include "utils/config.h"

#include <stdbool.h>
#include <stdint.h>

struct server_opts {
	const char *store_path;		/* snapshot store device or file */
	const char *origin_path;	/* origin volume */
	uint32_t host_id;		/* this node's sanlock host id */
	uint32_t io_timeout;		/* sanlock io_timeout (joining) */
	const char *address;		/* listen + publish address */
	uint16_t port;			/* 0: ephemeral (published) */
	const char *node_name;		/* for status */
	enum store_full_policy store_full;
	int grace_ms;			/* after takeover: time for clients to
					 * re-upload read locks before origin
					 * writes are served (later uploads of
					 * chunks copied out meanwhile are
					 * refused as stale) */
	int standby_retry_ms;		/* standby: master lease retry period */
	int standby_turn_ms;		/* standby: a freed master lease is
					 * tried by one host per turn
					 * (lease/turn.c); more than a retry
					 * period plus a paxos ballot */
	int barrier_timeout_ms;		/* origin clients that do not ack a
					 * snapshot barrier in time are cut off */
	int drain_timeout_ms;		/* SIGTERM: bound on finishing work */
	unsigned copy_depth;		/* copy-out I/Os in flight */
	uint64_t cache_bytes;		/* engine metadata cache */
	int64_t changed_walk_ns;	/* one CHANGED query walks the tree at
					 * most about this long before answering
					 * with a cursor (0: CHANGED_WALK_NS) */
	bool join;			/* join the lockspace if not joined */
};

void server_opts_defaults(struct server_opts *o);

/* Runs the server until SIGTERM/SIGINT (returns 0 after an orderly
 * hand-over) or a fatal error / fencing (negative errno, err_set).
 * Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread.  */
int server_run(const struct server_opts *o);

#endif
