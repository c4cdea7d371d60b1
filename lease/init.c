/*
 * lease/init.c - `csnap lease init`: format a store's lease area.
 *
 * Uses libsanlock's direct (in-process) writers, so no sanlock daemon is
 * needed to make a store.  Before overwriting, it reads sanlock's own
 * records: a delta lease with a nonzero timestamp belongs to a host that is
 * running (or crashed without leaving), and a master lease with a nonzero
 * timestamp is held; overwriting either under a live host would break its
 * mutual exclusion, so we refuse unless forced.
 */
#include "lease/lease_internal.h"
#include "utils/err.h"

#include <errno.h>
#include <sanlock_admin.h>
#include <sanlock_direct.h>
#include <sanlock_resource.h>
#include <stdlib.h>
#include <string.h>

/* First in-use lease found, described in err; -EBUSY.  0 if none.  */
static int check_unused(const struct lease_area *a)
{
	size_t len = 2ull * a->align;	/* lockspace + master regions */
	uint8_t *buf = lease_io_alloc(len);
	struct sanlock_leader l;
	int rc;

	if (!buf)
		return err_set(ENOMEM, "out of memory");
	rc = lease_io_read(a->path, a->offset, buf, len);
	if (rc < 0)
		goto out;
	for (uint32_t i = 0; i < LEASE_MAX_HOSTS && (size_t)(i + 1) * a->sector_size <= a->align; i++) {
		const uint8_t *sec = buf + (size_t)i * a->sector_size;
		if (lease_leader_decode(sec, &l) < 0 || l.magic != SANLOCK_DELTA_MAGIC)
			continue;
		if (l.timestamp != 0) {
			rc = err_set(EBUSY, "host_id %llu (%s) holds a delta lease in lockspace %s "
				     "(a node is running, or crashed without leaving): stop it "
				     "or use --force", (unsigned long long)i + 1,
				     l.resource_name, l.space_name);
			goto out;
		}
	}
	if (lease_leader_decode(buf + a->align, &l) == 0 && l.magic == SANLOCK_PAXOS_MAGIC &&
	    l.timestamp != 0 && l.owner_id != 0) {
		rc = err_set(EBUSY, "the master lease of lockspace %s is held by host_id %llu: "
			     "stop it or use --force", l.space_name,
			     (unsigned long long)l.owner_id);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

int lease_init(const struct lease_area *a, uint32_t io_timeout, bool force)
{
	struct sanlk_lockspace ls;
	union {
		struct sanlk_resource r;
		char space[sizeof(struct sanlk_resource) + sizeof(struct sanlk_disk)];
	} res;
	uint64_t size;
	int rc, rv;

	if (io_timeout == 0 || io_timeout > 300)
		return err_set(EINVAL, "io_timeout %u out of range 1..300 seconds", io_timeout);
	rc = lease_io_size(a->path, &size);
	if (rc < 0)
		return rc;
	if (size < a->offset + 3ull * a->align)
		return err_set(ENOSPC, "%s: %llu bytes is too small for the lease area "
			       "(needs %llu)", a->path, (unsigned long long)size,
			       (unsigned long long)(a->offset + 3ull * a->align));
	if (!force) {
		rc = check_unused(a);
		if (rc < 0)
			return rc;
	}

	lease_fill_lockspace(a, 0, &ls);
	ls.flags = lease_sanlock_size_flags(a);
	rv = sanlock_direct_write_lockspace(&ls, LEASE_MAX_HOSTS, 0, io_timeout);
	if (rv < 0)
		return err_prefix(-lease_sanlock_error(rv, "writing the lockspace"), "%s", a->path);

	lease_fill_master(a, &res.r);
	res.r.flags = lease_sanlock_size_flags(a);
	rv = sanlock_direct_write_resource(&res.r, LEASE_MAX_HOSTS, 0, 0);
	if (rv < 0)
		return err_prefix(-lease_sanlock_error(rv, "writing the master lease"), "%s", a->path);

	rc = lease_record_clear(a);
	if (rc < 0)
		return err_prefix(-rc, "writing the lease-owner record");
	return 0;
}
