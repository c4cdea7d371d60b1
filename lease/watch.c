/*
 * lease/watch.c - liveness and mastership read from the disk alone, for a
 * node whose sanlock daemon has not joined the lockspace (or has not
 * watched it long enough): what `csnap lease status` shows an operator on
 * any node that can read the store.
 *
 * A host renewing its delta lease rewrites its timestamp every
 * 2 x io_timeout (sanlock's renewal interval); the timestamp is the host's
 * own monotonic clock, so it can only be compared with itself: a host
 * whose timestamp (or generation) changes while we watch is renewing; one
 * whose timestamp stays the same for 3 x io_timeout + 1 s (a renewal
 * interval, a slow renewal I/O, a margin) is not.  Watching ends early once
 * every watched host was seen renewing.
 *
 * The master lease's leader record names its owner (host_id, generation,
 * lver) and the owner's monotonic time at acquisition; the owner's delta
 * lease timestamp is on the same clock, so their difference says how long
 * it has held the lease (to within one renewal interval).  sanlock writes
 * timestamp 0 into the leader when the lease is released.
 */
#include "lease/lease_internal.h"
#include "utils/clock.h"
#include "utils/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool watched(const struct lease_host *h)
{
	return h->timestamp != 0 &&
	       (h->state == LEASE_HOST_NOT_JOINED || h->state == LEASE_HOST_UNKNOWN);
}

int lease_watch_ms(const struct lease_host *h, int n)
{
	uint32_t io = 0;

	for (int i = 0; i < n; i++)
		if (watched(&h[i]) && h[i].io_timeout > io)
			io = h[i].io_timeout;
	return io ? (int)(3 * io + 1) * 1000 : 0;
}

int lease_hosts_watch(const struct lease_area *a, struct lease_host *h, int n, int wait_ms)
{
	size_t len = a->align;
	uint8_t *buf = lease_io_alloc(len);
	int64_t end = csnap_now_ms() + wait_ms;
	int rc = 0, left = 0;

	if (!buf)
		return err_set(ENOMEM, "out of memory");
	for (int i = 0; i < n; i++)
		left += watched(&h[i]);
	while (left > 0 && csnap_now_ms() < end) {
		struct timespec ts = { 0, 250 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		rc = lease_io_read(a->path, lease_area_lockspace_offset(a), buf, len);
		if (rc < 0)
			break;
		for (int i = 0; i < n; i++) {
			struct sanlock_leader l;
			size_t off = (size_t)(h[i].host_id - 1) * a->sector_size;
			if (!watched(&h[i]) || off + a->sector_size > len ||
			    lease_leader_decode(buf + off, &l) < 0)
				continue;
			if (l.timestamp == 0) {
				h[i].state = LEASE_HOST_FREE;	/* left meanwhile */
			} else if (l.timestamp != h[i].timestamp || l.owner_generation != h[i].generation) {
				h[i].state = LEASE_HOST_RENEWING;
				h[i].generation = l.owner_generation;
			} else {
				continue;
			}
			h[i].timestamp = l.timestamp;
			left--;
		}
	}
	for (int i = 0; rc == 0 && i < n; i++)
		if (watched(&h[i]))
			h[i].state = LEASE_HOST_STALE;
	free(buf);
	return rc;
}

int lease_master_disk(const struct lease_area *a, const struct lease_host *h, int n,
		      struct lease_master_disk *out)
{
	struct sanlock_leader l;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = lease_master_leader_read(a, &l)) < 0)
		return rc;
	out->lver = l.lver;
	out->host_id = l.owner_id;
	out->generation = l.owner_generation;
	out->held = l.timestamp != 0 && l.owner_id != 0;
	out->held_for_s = -1;
	for (int i = 0; out->held && i < n; i++)
		if (h[i].host_id == l.owner_id && h[i].generation == l.owner_generation &&
		    h[i].timestamp >= l.timestamp)
			out->held_for_s = (int64_t)(h[i].timestamp - l.timestamp);
	return 0;
}
