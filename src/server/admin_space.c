/*
 * src/server/admin_space.c - the store's space: freeing the chunks of
 * deleted snapshots in the background, and the store-full policy when an
 * origin write meets ENOSPC (fail the write, or release the snapshot of
 * lowest priority, oldest first, that no client uses).
 *
 * Invariants: cleanup runs only when nothing is in flight (no copy-out,
 * no busy chunk, no failed copy, not fatal), as any change that commits
 * at once; the store-full policy never releases a snapshot in use or one
 * a cut-off client may still hold a grant on.
 */
#include "src/server/srv.h"
#include "src/server/admin_int.h"

#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define CLEANUP_BUDGET	65536

/* Timer: free chunks of deleted snapshots in the background, when quiet.  */
void admin_cleanup_tick(struct srv *s)
{
	if (!copy_pending(s) && !s->busy.used && !copy_failed(s) && !s->fatal &&
	    s->info.snapshots_deleting) {
		int more = store_cleanup(s->st, CLEANUP_BUDGET);
		if (more < 0)
			log_error("cleanup of deleted snapshots: %s", err_get());
		(void)srv_commit_now(s);	/* -EAGAIN: the loop commits later */
		store_get_info(s->st, &s->info);
	}
}

/* ---- store full ------------------------------------------------------------ */

static bool victim_in_use(void *arg, uint32_t id)
{
	/* Also a snapshot whose cut-off clients may still hold a grant.  */
	return admin_snap_in_use(arg, id) || srv_snap_grants_until(arg, id) > csnap_now_ms();
}

int admin_store_full(struct srv *s, bool meta)
{
	const char *what = meta ? "SNAPSHOT STORE METADATA AREA FULL" : "SNAPSHOT STORE FULL";

	if (s->o.store_full == STORE_FULL_FAIL) {
		log_warn("snapshot store %s: failing the write with ENOSPC (store_full = fail)",
			 meta ? "metadata area full" : "full");
		return 0;
	}
	/* First finish freeing what deleted snapshots left behind.  */
	store_get_info(s->st, &s->info);
	if (s->info.snapshots_deleting) {
		int more;
		do
			more = store_cleanup(s->st, CLEANUP_BUDGET);
		while (more > 0);
		if (more < 0)
			return more;
		int e = srv_commit_now(s);
		if (e == -EAGAIN)
			return 1;	/* retried after the commit */
		if (e < 0)
			return e;
		store_get_info(s->st, &s->info);
		if (s->info.data_free > 0)
			return 1;
	}
	/* Lowest priority, oldest first, skipping snapshots in use (use
	 * count, or an NBD client on them through some export).  */
	uint32_t id;
	struct store_snapshot sn;
	if (store_pick_victim(s->st, victim_in_use, s, &id) < 0 ||
	    store_snapshot_get(s->st, id, &sn) < 0) {
		log_error("%s and no snapshot may be released (all in use): "
			  "origin writes fail with ENOSPC", what);
		return 0;
	}
	char when[32] = "?";
	time_t t = (time_t)sn.ctime;
	struct tm tm;
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_error("%s: releasing snapshot %s (id %u, priority %d, created %s) "
		  "to make room for origin writes", what, sn.name, sn.id, sn.priority, when);
	int e = store_snapshot_delete(s->st, id);
	if (e < 0)
		return e;
	s->txn_unsafe = true;
	int more;
	do
		more = store_cleanup(s->st, CLEANUP_BUDGET);
	while (more > 0);
	if (more < 0)
		return more;
	e = srv_commit_now(s);
	if (e < 0 && e != -EAGAIN)
		return e;
	store_get_info(s->st, &s->info);
	return 1;
}
