/*
 * lease/find.c - who is master?  Combines the lease-owner record with
 * sanlock's view of the master lease (read from disk by the daemon) and the
 * owner's liveness (watched by the local daemon, so this node must have
 * joined the lockspace).  The record is trusted only if all agree: a record
 * left by a previous master (older lver), by a host that has since
 * restarted (other generation), or by a failing host never is.
 */
#include "lease/lease_internal.h"
#include "utils/err.h"

#include <errno.h>
#include <inttypes.h>
#include <sanlock_admin.h>
#include <sanlock_resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *lease_master_state_name(enum lease_master_state s)
{
	switch (s) {
	case LEASE_MASTER_VALID: return "valid";
	case LEASE_MASTER_NONE: return "no master";
	case LEASE_MASTER_CHANGING: return "master changing";
	}
	return "?";
}

#define WHY(state, ...) (snprintf(why, whylen, __VA_ARGS__), (state))

enum lease_master_state lease_validate(const struct lease_record *rec, int rec_rc,
				       const struct lease_owner_view *v,
				       char *why, size_t whylen)
{
	if (!v->owned)
		return WHY(LEASE_MASTER_NONE, "the master lease is free");
	switch (v->host_state) {
	case LEASE_HOST_LIVE:
		break;
	case LEASE_HOST_DEAD:
	case LEASE_HOST_FREE:
		return WHY(LEASE_MASTER_NONE, "master host_id %" PRIu64 " is %s; its lease is free "
			   "for a standby to take", v->host_id,
			   lease_host_state_name(v->host_state));
	default:
		return WHY(LEASE_MASTER_CHANGING, "master host_id %" PRIu64 " is %s",
			   v->host_id, lease_host_state_name(v->host_state));
	}
	if (v->host_generation != v->generation)
		return WHY(LEASE_MASTER_NONE, "master host_id %" PRIu64 " restarted since taking the "
			   "lease (generation %" PRIu64 ", now %" PRIu64 ")", v->host_id,
			   v->generation, v->host_generation);
	if (rec_rc < 0)
		return WHY(LEASE_MASTER_CHANGING, "lease-owner record unreadable (%s)",
			   strerror(-rec_rc));
	if (lease_record_is_empty(rec))
		return WHY(LEASE_MASTER_CHANGING, "host_id %" PRIu64 " holds the lease but has not "
			   "published its address yet", v->host_id);
	if (rec->lver != v->lver)
		return WHY(LEASE_MASTER_CHANGING, "%s lease-owner record (lver %" PRIu64 ", lease "
			   "is at %" PRIu64 ")", rec->lver < v->lver ? "stale" : "unconfirmed",
			   rec->lver, v->lver);
	if (rec->host_id != v->host_id || rec->generation != v->generation)
		return WHY(LEASE_MASTER_CHANGING, "lease-owner record names host_id %" PRIu64
			   " generation %" PRIu64 ", lease is held by host_id %" PRIu64
			   " generation %" PRIu64, rec->host_id, rec->generation, v->host_id,
			   v->generation);
	return WHY(LEASE_MASTER_VALID, "record matches the lease");
}

int lease_find_master(const struct lease_area *a, struct lease_master_info *out)
{
	union {
		struct sanlk_resource r;
		char space[sizeof(struct sanlk_resource) + sizeof(struct sanlk_disk)];
	} res;
	struct sanlk_host *owners = NULL, *hs = NULL;
	struct lease_owner_view v;
	struct lease_record rec;
	int n = 0, nhs = 0, rv, rec_rc;

	memset(out, 0, sizeof(*out));
	memset(&v, 0, sizeof(v));
	rv = lease_daemon_check();
	if (rv < 0)
		return rv;
	lease_fill_master(a, &res.r);
	rv = sanlock_read_resource_owners(&res.r, 0, &owners, &n);
	if (rv < 0)
		return lease_sanlock_error(rv, "reading the master lease");
	if (n > 0 && owners[0].host_id) {
		v.owned = true;
		v.lver = res.r.lver;
		v.host_id = owners[0].host_id;
		v.generation = owners[0].generation;
	}
	free(owners);
	/* Read the record after the lease: a record newer than the lease
	 * view shows up as "unconfirmed", never as valid-but-old.  */
	rec_rc = lease_record_read(a, &rec);
	if (v.owned) {
		rv = sanlock_get_hosts(a->lockspace, v.host_id, &hs, &nhs, 0);
		if (rv == -ENOENT) {
			return err_set(ENOTCONN, "lockspace %s is not joined on this node, so the "
				       "master's liveness cannot be checked (start csnap agent)",
				       a->lockspace);
		}
		/* -EAGAIN: joined moments ago, no host status yet.  */
		if (rv < 0 && rv != -EAGAIN)
			return lease_sanlock_error(rv, "reading host liveness");
		if (rv < 0)
			nhs = 0;
		v.host_state = LEASE_HOST_UNKNOWN;
		if (nhs > 0) {
			v.host_state = (enum lease_host_state)(hs[0].flags & SANLK_HOST_MASK);
			v.host_generation = hs[0].generation;
		}
		free(hs);
	}
	out->state = lease_validate(&rec, rec_rc, &v, out->why, sizeof(out->why));
	out->host_id = v.host_id;
	out->generation = v.generation;
	out->lver = v.lver;
	if (out->state == LEASE_MASTER_VALID) {
		out->epoch = rec.epoch;
		out->port = rec.port;
		memcpy(out->address, rec.address, sizeof(out->address));
	}
	return 0;
}
