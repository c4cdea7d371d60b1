/*
 * lease/errors.c - sanlock's return codes as errno values and one-line
 * reasons a user can act on.  libsanlock returns either a negative errno
 * (socket and daemon-side errors) or one of the SANLK_* codes of
 * sanlock_rv.h (lease algorithm results, all <= -200).
 */
#include "lease/lease_internal.h"
#include "utils/err.h"

#include <errno.h>
#include <sanlock_rv.h>
#include <string.h>

struct sanlock_code {
	int rv;
	int err;		/* positive errno we map it to */
	const char *msg;
};

static const struct sanlock_code codes[] = {
	{ SANLK_ERROR, EIO, "sanlock failed (see the sanlock daemon's log)" },
	{ SANLK_AIO_TIMEOUT, ETIMEDOUT, "I/O to the lease area timed out" },
	{ SANLK_WD_ERROR, EIO, "the watchdog daemon (wdmd) could not be armed" },
	{ SANLK_DBLOCK_READ, EIO, "cannot read the paxos ballot blocks" },
	{ SANLK_DBLOCK_WRITE, EIO, "cannot write the paxos ballot blocks" },
	{ SANLK_DBLOCK_LVER, EAGAIN, "another host advanced the lease meanwhile" },
	{ SANLK_DBLOCK_MBAL, EAGAIN, "another host is acquiring the lease at the same time" },
	{ SANLK_DBLOCK_CHECKSUM, EBADMSG, "corrupt paxos ballot block (checksum)" },
	{ SANLK_LEADER_READ, EIO, "cannot read the lease leader record" },
	{ SANLK_LEADER_WRITE, EIO, "cannot write the lease leader record" },
	{ SANLK_LEADER_DIFF, EIO, "lease leader records differ between disks" },
	{ SANLK_LEADER_MAGIC, EBADMSG, "no sanlock lease at this offset (run csnap lease init)" },
	{ SANLK_LEADER_VERSION, EBADMSG, "lease written by an incompatible sanlock version" },
	{ SANLK_LEADER_SECTORSIZE, EINVAL, "lease sector size does not match the device" },
	{ SANLK_LEADER_LOCKSPACE, EBADMSG, "lease belongs to a different lockspace (another store?)" },
	{ SANLK_LEADER_RESOURCE, EBADMSG, "lease belongs to a different resource" },
	{ SANLK_LEADER_NUMHOSTS, EINVAL, "host_id is beyond the lockspace's number of hosts" },
	{ SANLK_LEADER_CHECKSUM, EBADMSG, "corrupt lease leader record (checksum)" },
	{ SANLK_ADDLS_SIZES, EINVAL, "lockspace sector/align sizes do not match the disk" },
	{ SANLK_ADDLS_INVALID_HOSTID, EINVAL, "invalid host_id (must be 1..2000)" },
	{ SANLK_ACQUIRE_LVER, EAGAIN, "lease version changed while acquiring" },
	{ SANLK_ACQUIRE_LOCKSPACE, ENOTCONN, "this node has not joined the store's lockspace" },
	{ SANLK_ACQUIRE_IDDISK, EIO, "cannot read the owner's delta lease" },
	{ SANLK_ACQUIRE_IDLIVE, EBUSY, "the lease is held by another live host" },
	{ SANLK_ACQUIRE_OWNED, EBUSY, "the lease is held by another process on this host" },
	{ SANLK_ACQUIRE_OTHER, EBUSY, "the lease is held by another process" },
	{ SANLK_ACQUIRE_SHRETRY, EAGAIN, "shared holders are changing; retry" },
	{ SANLK_ACQUIRE_OWNED_RETRY, EAGAIN, "the owner's lease must expire first; retry" },
	{ SANLK_RELEASE_LVER, ESTALE, "lease version changed: the lease was lost" },
	{ SANLK_RELEASE_OWNER, ENOLCK, "not the owner: the lease was lost" },
	{ SANLK_RENEW_OWNER, ENOLCK, "delta lease taken over by another host" },
	{ SANLK_RENEW_DIFF, ENOLCK, "delta lease changed under us" },
	{ SANLK_HOSTID_BUSY, EADDRINUSE, "host_id is in use by another live host "
	  "(give each node its own host_id in csnap.conf)" },
	{ SANLK_REQUEST_MAGIC, EBADMSG, "bad lease request record" },
	{ SANLK_REQUEST_VERSION, EBADMSG, "lease request from an incompatible version" },
	{ SANLK_REQUEST_OLD, EAGAIN, "lease request is older than the lease" },
	{ SANLK_REQUEST_LVER, EAGAIN, "lease request for another version" },
	{ SANLK_RINDEX_MAGIC, EBADMSG, "bad resource index" },
	{ SANLK_RINDEX_VERSION, EBADMSG, "resource index of an incompatible version" },
	{ SANLK_RINDEX_LOCKSPACE, EBADMSG, "resource index of another lockspace" },
	{ SANLK_RINDEX_OFFSET, EINVAL, "bad resource index offset" },
	{ SANLK_RINDEX_DIFF, EIO, "resource index mismatch" },
	/* errno values with a meaning specific to the sanlock daemon */
	{ -ECONNREFUSED, ECONNREFUSED, "the sanlock daemon is not running (check SANLOCK_RUN_DIR)" },
	{ -EEXIST, EEXIST, "the lockspace is already joined on this node" },
	{ -EINPROGRESS, EINPROGRESS, "the lockspace is being joined or left" },
	{ -ENOENT, ENOENT, "lockspace not joined on this node, or no sanlock daemon socket" },
	{ -EAGAIN, EAGAIN, "the lockspace is being left; retry" },
	{ -EBUSY, EBUSY, "busy: leases in the lockspace are still held" },
	{ -ETIMEDOUT, ETIMEDOUT, "timed out" },
	{ -ENOSPC, ENOSPC, "lockspace not found on this node, or no room for the answer" },
	{ -EPERM, EPERM, "permission denied by the sanlock daemon" },
	{ -EACCES, EACCES, "permission denied by the sanlock daemon" },
	{ -EINVAL, EINVAL, "the sanlock daemon rejected the request as invalid" },
	{ -ENOMEM, ENOMEM, "the sanlock daemon is out of memory" },
};

static const struct sanlock_code *find_code(int rv)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].rv == rv)
			return &codes[i];
	return NULL;
}

const char *lease_sanlock_strerror(int rv)
{
	const struct sanlock_code *c = find_code(rv);

	if (c)
		return c->msg;
	if (rv < 0 && rv > -200)
		return strerror(-rv);
	return "unknown sanlock error";
}

int lease_sanlock_error(int rv, const char *what)
{
	const struct sanlock_code *c = find_code(rv);
	int e = c ? c->err : (rv < 0 && rv > -200) ? -rv : EIO;

	return err_set(e, "%s: %s (sanlock %d)", what, lease_sanlock_strerror(rv), rv);
}
