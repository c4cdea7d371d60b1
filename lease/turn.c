/*
 * lease/turn.c - which standby tries for a free master lease first.
 *
 * When a master dies or hands over, sanlock releases the master lease
 * (timestamp 0 in its leader record) and every standby sees it free within
 * one retry period.  If two of them start a paxos ballot at the same time,
 * both lose it and sanlock sleeps a random 0-1 s in each before trying
 * again (paxos_lease.c, "retry delay"); daemons started in the same second
 * draw the same random delays, so the pair can collide again.  Measured in
 * the 3-node kill soak: about one master change in two collided, and the
 * collisions made every master change over 0.5 s.
 *
 * So the standbys take turns: the live hosts are ordered by host_id,
 * starting after the last owner and wrapping (the last owner's own host
 * comes last: a server restarted there is the least likely to be ready),
 * and a host of rank R waits R turns after it first saw this version of
 * the lease free before it asks sanlock.  The first in line takes the lease
 * with one uncontested ballot; the next tries only if the first has not
 * taken it within a turn (its standby not running, or its node slow).  A
 * turn is longer than a retry period plus a ballot, so the next host's
 * ballot cannot start while the first one's runs unless the first host is
 * stalled for that long; then sanlock's own back-off still decides, as
 * before.  Correctness never depends on the turns: sanlock's paxos alone
 * decides who holds the lease.
 *
 * While a live host holds the lease with the generation it has now, asking
 * sanlock is pointless (it refuses, SANLK_ACQUIRE_IDLIVE), so the standby
 * only reads the leader.  In every other state (owner failing, dead, or of
 * an older generation; the leader unreadable) it asks sanlock, which knows
 * best; only an owner that sanlock already reports dead is treated like a
 * free lease, because all standbys learn that at the same moment too.
 */
#include "lease/lease_internal.h"
#include "utils/assert.h"
#include "utils/err.h"

#include <errno.h>
#include <sanlock_admin.h>
#include <stdlib.h>
#include <string.h>

/* Distance from the last owner in the wrapping host_id order: 1 for the
 * host right after it, LEASE_MAX_HOSTS for the owner itself.  */
static uint32_t turn_distance(uint64_t host_id, uint64_t last_owner)
{
	uint64_t d = (host_id + LEASE_MAX_HOSTS - (last_owner % LEASE_MAX_HOSTS)) % LEASE_MAX_HOSTS;

	return d == 0 ? LEASE_MAX_HOSTS : (uint32_t)d;
}

int lease_turn_rank(uint32_t me, uint64_t last_owner, const struct sanlk_host *hs, int n)
{
	uint32_t mine = turn_distance(me, last_owner);
	int rank = 0;

	CSNAP_ASSERT(me >= 1 && me <= LEASE_MAX_HOSTS);
	for (int i = 0; i < n; i++) {
		if (hs[i].host_id == me || hs[i].host_id < 1 || hs[i].host_id > LEASE_MAX_HOSTS)
			continue;
		if ((hs[i].flags & SANLK_HOST_MASK) != SANLK_HOST_LIVE)
			continue;
		if (turn_distance(hs[i].host_id, last_owner) < mine)
			rank++;
	}
	CSNAP_ASSERT(rank < n || n == 0);
	return rank;
}

int lease_master_turn(const struct lease_master *m, struct lease_turn *t)
{
	uint8_t *sec = lease_io_alloc(m->area.sector_size);
	struct sanlk_host *hs = NULL;
	struct sanlock_leader l;
	int n = 0, rc;

	memset(t, 0, sizeof *t);
	if (!sec)
		return err_set(ENOMEM, "out of memory");
	rc = lease_io_read(m->area.path, lease_area_master_offset(&m->area), sec,
			   m->area.sector_size);
	if (rc == 0 && (lease_leader_decode(sec, &l) < 0 || l.magic != SANLOCK_PAXOS_MAGIC))
		rc = err_set(EBADMSG, "master lease leader record is damaged");
	free(sec);
	if (rc < 0)
		return rc;
	/* The daemon's view of the hosts: liveness and current generations. */
	rc = sanlock_get_hosts(m->area.lockspace, 0, &hs, &n, 0);
	if (rc < 0) {
		free(hs);
		return lease_sanlock_error(rc, "listing the lockspace's hosts");
	}
	t->lver = l.lver;
	bool held = l.timestamp != 0 && l.owner_id != 0;
	bool owner_live = false, owner_dead = false;
	for (int i = 0; held && i < n; i++) {
		if (hs[i].host_id != l.owner_id)
			continue;
		uint32_t st = hs[i].flags & SANLK_HOST_MASK;
		owner_live = st == SANLK_HOST_LIVE && hs[i].generation == l.owner_generation;
		owner_dead = st == SANLK_HOST_DEAD;
	}
	t->owner_live = owner_live;
	t->takeable = !held || owner_dead;
	t->rank = t->takeable ? lease_turn_rank(m->host_id, l.owner_id, hs, n) : 0;
	free(hs);
	return 0;
}
