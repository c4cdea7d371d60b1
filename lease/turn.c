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
 * The lease looks free when the leader is released (timestamp 0), when
 * its owner released it through its own dblock (sanlock does so when the
 * leader was last written by another host, e.g. after a contested
 * ballot), or when the local daemon reports the owner dead: all standbys
 * learn each of these at about the same moment.  While a live host holds
 * it, sanlock would refuse: a standby asks only once a second then (an ask
 * that reaches the daemon just after the release would be a ballot out of
 * turn), in case this reading is wrong.  In every other state (the owner
 * failing or unknown, the leader unreadable) it asks at every poll and
 * sanlock decides, as before.  So a wrong reading costs at most a second
 * or a few turns, never the lease.
 */
#include "lease/lease_internal.h"
#include "utils/assert.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
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
	CSNAP_ASSERT(rank <= n);	/* n when we are not (yet) in the list */
	return rank;
}

/* Whether the owner released the lease through its dblock (see
 * DBLOCK_FL_RELEASED): only ever when another host wrote the leader.  */
static bool owner_dblock_released(const struct lease_area *a, const struct sanlock_leader *l)
{
	uint32_t ss = a->sector_size;
	uint8_t *sec;
	bool released = false;

	if (l->write_id == l->owner_id || l->owner_id < 1 || l->owner_id > LEASE_MAX_HOSTS)
		return false;
	if (!(sec = lease_io_alloc(ss)))
		return false;
	if (lease_io_read(a->path, lease_area_master_offset(a) + (l->owner_id + 1) * ss, sec, ss) == 0 &&
	    get_le32(sec + DBL_CSUM) == ~crc32c(1, sec, DBLOCK_CHECKSUM_LEN) &&
	    get_le64(sec + DBL_LVER) == l->lver)
		released = (get_le32(sec + DBL_FLAGS) & DBLOCK_FL_RELEASED) != 0;
	free(sec);
	return released;
}

int lease_master_free_disk(const struct lease_area *a, struct lease_free_disk *f)
{
	struct sanlock_leader l;
	int rc;

	memset(f, 0, sizeof *f);
	if ((rc = lease_master_leader_read(a, &l)) < 0)
		return rc;
	f->lver = l.lver;
	f->owner_id = l.owner_id;
	f->owner_generation = l.owner_generation;
	f->released = l.timestamp == 0 || l.owner_id == 0 || owner_dblock_released(a, &l);
	return 0;
}

int lease_master_turn(const struct lease_master *m, struct lease_turn *t)
{
	struct lease_free_disk f;
	struct sanlk_host *hs = NULL;
	int n = 0, rc;

	memset(t, 0, sizeof *t);
	if ((rc = lease_master_free_disk(&m->area, &f)) < 0)
		return rc;
	/* The daemon's view of the hosts: liveness and current generations. */
	rc = sanlock_get_hosts(m->area.lockspace, 0, &hs, &n, 0);
	if (rc < 0) {
		free(hs);
		return lease_sanlock_error(rc, "listing the lockspace's hosts");
	}
	bool owner_dead = false, owner_live = false;
	for (int i = 0; !f.released && i < n; i++) {
		if (hs[i].host_id != f.owner_id)
			continue;
		uint32_t st = hs[i].flags & SANLK_HOST_MASK;
		owner_dead = st == SANLK_HOST_DEAD;
		owner_live = st == SANLK_HOST_LIVE && hs[i].generation == f.owner_generation;
	}
	t->lver = f.lver;
	t->takeable = f.released || owner_dead;
	t->owner_live = owner_live;
	t->rank = lease_turn_rank(m->host_id, f.owner_id, hs, n);
	free(hs);
	return 0;
}

bool lease_turn_ask(struct lease_turns *w, const struct lease_turn *t, int64_t now_ms,
		    int turn_ms, int held_ask_ms)
{
	bool ask;

	if (!t || (!t->takeable && !t->owner_live)) {
		ask = true;		/* unknown, or the owner failing: sanlock decides */
	} else if (t->takeable) {
		if (w->free_seen_ms == 0 || w->free_lver != t->lver) {
			w->free_lver = t->lver;
			w->free_seen_ms = now_ms;
		}
		ask = now_ms - w->free_seen_ms >= (int64_t)t->rank * turn_ms;
	} else {
		/* held by a live host: sanlock would refuse; ask now and then
		 * in case this reading is wrong, never at every poll (an ask
		 * that reaches the daemon just after the release is a ballot
		 * out of turn) */
		ask = w->asked_ms == 0 || now_ms - w->asked_ms >= held_ask_ms;
	}
	if (ask)
		w->asked_ms = now_ms;
	CSNAP_ASSERT(!ask || w->asked_ms == now_ms);
	return ask;
}
