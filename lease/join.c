/*
 * lease/join.c - the node's membership in a store's lockspace (its delta
 * lease, held by the local sanlock daemon) and the list of hosts.
 *
 * A node has exactly one host_id per lockspace: sanlock refuses a second
 * add of the same lockspace name on one daemon, and we turn that into a
 * clear message naming the host_id already in use.
 */
#include "lease/lease_internal.h"
#include "utils/err.h"
#include "utils/clock.h"

#include <errno.h>
#include <sanlock_admin.h>
#include <sanlock_resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* host_id under which this node's daemon holds the lockspace: >0, 0 if
 * not joined, <0 on error.  */
static int64_t joined_host_id(const struct lease_area *a, bool *adding)
{
	struct sanlk_lockspace *lss = NULL;
	int count = 0, rv;
	int64_t found = 0;

	rv = sanlock_get_lockspaces(&lss, &count, 0);
	if (rv < 0 && rv != -ENOSPC)
		return lease_sanlock_error(rv, "listing lockspaces");
	for (int i = 0; i < count; i++) {
		if (strncmp(lss[i].name, a->lockspace, LEASE_NAME_LEN) == 0) {
			found = (int64_t)lss[i].host_id;
			if (adding)
				*adding = (lss[i].flags & SANLK_LSF_ADD) != 0;
		}
	}
	free(lss);
	return found;
}

int lease_join_start(const struct lease_area *a, uint32_t host_id, uint32_t io_timeout)
{
	struct sanlk_lockspace ls;
	int rv = lease_daemon_check();

	if (rv < 0)
		return rv;
	if (host_id < 1 || host_id > LEASE_MAX_HOSTS)
		return err_set(EINVAL, "host_id %u out of range 1..%d", host_id, LEASE_MAX_HOSTS);
	lease_fill_lockspace(a, host_id, &ls);
	rv = sanlock_add_lockspace_timeout(&ls, SANLK_ADD_ASYNC, io_timeout);
	/* sanlock answers -EINVAL when the lockspace is already held with a
	 * different host_id, -EEXIST/-EINPROGRESS for the same one.  */
	if (rv == -EEXIST || rv == -EINPROGRESS || rv == -EINVAL) {
		int64_t have = joined_host_id(a, NULL);
		if (have < 0)
			return (int)have;
		if (have != 0 && have != host_id)
			return err_set(EEXIST, "this node already joined lockspace %s as host_id %lld; "
				       "a node has one host_id per lockspace (not %u)",
				       a->lockspace, (long long)have, host_id);
		if (have == host_id || rv != -EINVAL)
			return 0;
	}
	if (rv < 0)
		return lease_sanlock_error(rv, "joining the lockspace");
	return 0;
}

/* After a failed add: say why, from the delta lease on disk.  */
static int join_failed(const struct lease_area *a, uint32_t host_id)
{
	uint8_t *sec = lease_io_alloc(a->sector_size);
	struct sanlock_leader l;
	int rc;

	if (!sec)
		return err_set(ENOMEM, "out of memory");
	rc = lease_io_read(a->path, a->offset + (uint64_t)(host_id - 1) * a->sector_size,
			   sec, a->sector_size);
	if (rc == 0 && lease_leader_decode(sec, &l) == 0 && l.magic == SANLOCK_DELTA_MAGIC &&
	    l.timestamp != 0)
		rc = err_set(EADDRINUSE, "host_id %u is in use by host '%s' (generation %llu): "
			     "give each node its own host_id in csnap.conf", host_id,
			     l.resource_name, (unsigned long long)l.owner_generation);
	else if (rc == 0)
		rc = err_set(EIO, "joining lockspace %s as host_id %u failed (see the sanlock "
			     "daemon's log)", a->lockspace, host_id);
	free(sec);
	return rc;
}

int lease_joined(const struct lease_area *a, uint32_t host_id)
{
	struct sanlk_lockspace ls;
	int rv;

	lease_fill_lockspace(a, host_id, &ls);
	rv = sanlock_inq_lockspace(&ls, 0);
	if (rv == 0 || rv == -ENOENT || rv == -EINPROGRESS)
		return rv;
	return lease_sanlock_error(rv, "asking about the lockspace");
}

int lease_join_wait(const struct lease_area *a, uint32_t host_id, int timeout_ms)
{
	int64_t end = csnap_now_ms() + timeout_ms;

	for (;;) {
		int rv = lease_joined(a, host_id);
		if (rv == 0)
			return 0;
		if (rv == -ENOENT)
			return join_failed(a, host_id);
		if (rv != -EINPROGRESS)
			return rv;
		if (csnap_now_ms() >= end)
			return err_set(ETIMEDOUT, "joining lockspace %s as host_id %u: not done after "
				       "%d ms", a->lockspace, host_id, timeout_ms);
		usleep(50 * 1000);
	}
}

int lease_join(const struct lease_area *a, uint32_t host_id, uint32_t io_timeout, int timeout_ms)
{
	int rc = lease_join_start(a, host_id, io_timeout);

	return rc < 0 ? rc : lease_join_wait(a, host_id, timeout_ms);
}

int lease_leave(const struct lease_area *a, uint32_t host_id, bool unused_only)
{
	struct sanlk_lockspace ls;
	int rv;

	lease_fill_lockspace(a, host_id, &ls);
	rv = sanlock_rem_lockspace(&ls, unused_only ? SANLK_REM_UNUSED : 0);
	if (rv == -ENOENT)
		return 0;
	if (rv == -EBUSY)
		return err_set(EBUSY, "lockspace %s is still in use by a lease holder on this node",
			       a->lockspace);
	return rv < 0 ? lease_sanlock_error(rv, "leaving the lockspace") : 0;
}

const char *lease_host_state_name(enum lease_host_state s)
{
	switch (s) {
	case LEASE_HOST_UNKNOWN: return "unknown";
	case LEASE_HOST_FREE: return "free";
	case LEASE_HOST_LIVE: return "live";
	case LEASE_HOST_FAIL: return "failing";
	case LEASE_HOST_DEAD: return "dead";
	case LEASE_HOST_NOT_JOINED: return "held";
	case LEASE_HOST_RENEWING: return "renewing";
	case LEASE_HOST_STALE: return "not-renewing";
	}
	return "?";
}

int lease_hosts(const struct lease_area *a, struct lease_host **hosts, int *count)
{
	size_t len = a->align;
	uint8_t *buf = lease_io_alloc(len);
	struct lease_host *out = NULL;
	struct sanlk_host *hs = NULL;
	int n = 0, nhs = 0, rc;
	bool joined;

	*hosts = NULL;
	*count = 0;
	if (!buf)
		return err_set(ENOMEM, "out of memory");
	rc = lease_io_read(a->path, a->offset, buf, len);
	if (rc < 0)
		goto out;
	/* Liveness only from a daemon that watches the lockspace.  */
	rc = sanlock_get_hosts(a->lockspace, 0, &hs, &nhs, 0);
	joined = rc == 0 || rc == -EAGAIN;	/* EAGAIN: joined, no status yet */
	if (rc < 0)
		nhs = 0;
	for (uint32_t i = 0; i < LEASE_MAX_HOSTS && (size_t)(i + 1) * a->sector_size <= len; i++) {
		struct sanlock_leader l;
		struct lease_host *h;

		if (lease_leader_decode(buf + (size_t)i * a->sector_size, &l) < 0 ||
		    l.magic != SANLOCK_DELTA_MAGIC || l.owner_generation == 0)
			continue;
		if (strncmp(l.space_name, a->lockspace, LEASE_NAME_LEN) != 0) {
			rc = err_set(EBADMSG, "lockspace on disk is %s, expected %s",
				     l.space_name, a->lockspace);
			goto out;
		}
		h = realloc(out, sizeof(*out) * (size_t)(n + 1));
		if (!h) {
			rc = err_set(ENOMEM, "out of memory");
			goto out;
		}
		out = h;
		h = &out[n++];
		memset(h, 0, sizeof(*h));
		h->host_id = i + 1;
		h->generation = l.owner_generation;
		h->timestamp = l.timestamp;
		h->io_timeout = l.io_timeout;
		snprintf(h->name, sizeof(h->name), "%s", l.resource_name);
		h->state = l.timestamp == 0 ? LEASE_HOST_FREE :
			   joined ? LEASE_HOST_UNKNOWN : LEASE_HOST_NOT_JOINED;
		for (int j = 0; joined && j < nhs; j++)
			if (hs[j].host_id == h->host_id)
				h->state = (enum lease_host_state)(hs[j].flags & SANLK_HOST_MASK);
	}
	*hosts = out;
	*count = n;
	out = NULL;
	rc = 0;
out:
	free(out);
	free(hs);
	free(buf);
	return rc;
}
