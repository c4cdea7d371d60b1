/*
 * src/agent/agent.h - `csnap agent`, the per-node daemon.
 *
 * One agent per node (a lock file in run_dir enforces it).  For every
 * [store NAME] of csnap.conf it finds the store device (a path, or
 * UUID=<uuid> found by reading superblocks), joins the store's sanlock
 * lockspace with the node's host_id, supervises the local standby
 * `csnap server` when the node serves the store (server = yes), and tells
 * local clients on RUN_DIR/agent.sock where the master is (agent_proto.h).
 * SIGTERM/SIGINT: stop the servers first (they hand over), then leave the
 * lockspaces, then remove the socket.
 */
#ifndef CSNAP_AGENT_H
#define CSNAP_AGENT_H

#include "utils/config.h"

#include <stddef.h>

struct csnap_sb;

struct agent_opts {
	const char *conf_path;		/* passed on to the servers it spawns */
	const struct config *cfg;
	/* The server to supervise per store.  NULL: "<this csnap binary>
	 * server -c CONF NAME".  Otherwise a /bin/sh -c command line run with
	 * CSNAP_STORE (name), CSNAP_STORE_DEVICE, CSNAP_STORE_UUID, CSNAP_CONF
	 * and the lease area as LEASE_PATH, LEASE_OFFSET, LEASE_ALIGN,
	 * LEASE_SECTOR, LEASE_UUID in its environment (tests, wrappers).  */
	const char *server_cmd;
	int poll_ms;			/* master check interval; 0: 250 */
	int stop_timeout_ms;		/* SIGTERM -> SIGKILL for servers; 0: 20000 */
};

/* Runs until SIGTERM/SIGINT.  0 after an orderly stop; negative errno with
 * err_set() if it could not start (another agent running: -EBUSY naming
 * its pid).  */
int agent_run(const struct agent_opts *o);

/* Finds a store device: PATH as configured, or "UUID=<uuid>" by scanning
 * /dev/disk/by-id/ and the block devices of /proc/partitions (and the
 * directories or files in $CSNAP_SCAN, colon-separated, first).  Reads and
 * validates the superblock; for UUID= the uuid must match.  *PATH_OUT gets
 * the device to use.  -ENOENT not found, -EEXIST found on several distinct
 * devices (ambiguous), other -errno from reading, all with err_set().  */
int agent_locate_store(const char *device, char *path_out, size_t pathlen,
		       struct csnap_sb *sb);
/* Every csnap store on this node's devices (the same candidates as
 * UUID=): FN gets each readable superblock under each name it was found
 * by; the caller folds aliases (ST's st_rdev / inode).  */
struct stat;
void agent_scan_stores(void (*fn)(const char *path, const struct stat *st,
				  const struct csnap_sb *sb, void *arg), void *arg);

/* Takes the node's agent lock RUN_DIR/agent.lock (creating RUN_DIR).
 * Returns the fd to keep open, or -EBUSY "another csnap agent (pid N) ..."
 * or another -errno.  */
int agent_lock(const char *run_dir);

#endif
