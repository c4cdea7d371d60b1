/*
 * src/server/admin_snap.c - the admin requests that change one snapshot:
 * SNAP_DELETE, SNAP_SET (priority, use count), SNAP_RENAME.
 *
 * Changes that need a quiet store (delete, set, rename) wait until no
 * copy-out is in flight, then change the engine and commit at once.
 * Exports learn of deletes and renames from their one-second snapshot
 * list (export.c): a renamed snapshot is withdrawn under its old name and
 * exported under the new one.  A rename, like a delete, is refused while
 * NBD clients use the snapshot, so none loses its volume to it.
 *
 * Invariants: a snapshot is deleted or renamed only when no client uses
 * it, and deleted only once no grant of a cut-off client of it is left
 * (that client could still write chunks that would be freed and reused);
 * each change is committed before it is answered
 * (admin_commit_and_reply).
 */
#include "src/server/srv.h"
#include "src/server/admin_int.h"

#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Looks up a live snapshot by name for an admin request; answers ENOENT
 * itself when there is none.  */
static bool find_live_snapshot(struct srv *s, struct req *r, const char *name,
			       struct store_snapshot *sn)
{
	if (store_snapshot_find(s->st, name, sn) < 0 || !(sn->flags & STORE_SNAP_LIVE)) {
		admin_reply_err(s, r, ENOENT, "no such snapshot");
		return false;
	}
	return true;
}

/* Commits the change just made to snapshot ID and answers with its new
 * description (what `snapshot set` and `rename` print).  */
static void reply_snapinfo(struct srv *s, struct req *r, uint16_t type, uint32_t id)
{
	struct store_snapshot sn;
	store_snapshot_get(s->st, id, &sn);
	struct proto_msg m;
	proto_msg_init(&m, type | PROTO_REPLY, r->m.id);
	admin_fill_snapinfo(&sn, NULL, &m.u.snapinfo);
	admin_commit_and_reply(s, r, &m);
}

void admin_snap_delete(struct srv *s, struct req *r)
{
	struct store_snapshot sn;
	const char *name = r->m.u.snap_name.name;
	if (!find_live_snapshot(s, r, name, &sn))
		return;
	/* A client cut off a moment ago may not know it yet and still write
	 * to chunks of the snapshot it cached: they must not be freed (and
	 * reused) before its grant has run out.  */
	if (!admin_snap_unused(s, r, sn.id, "snapshot is in use by connected clients"))
		return;
	int e = store_snapshot_delete(s->st, sn.id);
	if (e < 0) {
		admin_reply_err(s, r, -e, err_get());
		return;
	}
	s->txn_unsafe = true;
	log_info("snapshot %s (id %u) deleted", sn.name, sn.id);
	struct proto_msg m;
	proto_msg_init(&m, PROTO_SNAP_DELETE | PROTO_REPLY, r->m.id);
	admin_commit_and_reply(s, r, &m);
}

void admin_snap_set(struct srv *s, struct req *r)
{
	const struct proto_snap_set *ss = &r->m.u.snap_set;
	struct store_snapshot sn;
	if (!find_live_snapshot(s, r, ss->name, &sn))
		return;
	if (admin_quiet_or_park(s, r))
		return;
	int e = 0;
	if (ss->mask & PROTO_SET_PRIORITY)
		e = store_snapshot_set_priority(s->st, sn.id, ss->priority);
	if (e == 0 && (ss->mask & PROTO_SET_USECOUNT)) {
		int64_t n = (int64_t)sn.usecount + ss->usecount_delta;
		if (n < 0)
			n = 0;
		if (n > UINT32_MAX)
			n = UINT32_MAX;
		e = store_snapshot_set_usecount(s->st, sn.id, (uint32_t)n);
	}
	if (e < 0) {
		admin_reply_err(s, r, -e, err_get());
		return;
	}
	reply_snapinfo(s, r, PROTO_SNAP_SET, sn.id);
}

void admin_snap_rename(struct srv *s, struct req *r)
{
	const struct proto_snap_rename *rn = &r->m.u.snap_rename;
	struct store_snapshot sn, other;
	if (!find_live_snapshot(s, r, rn->name, &sn))
		return;
	if (strcmp(rn->name, rn->new_name) != 0 &&
	    store_snapshot_find(s->st, rn->new_name, &other) == 0) {
		admin_reply_err(s, r, EEXIST, "a snapshot with the new name exists");
		return;
	}
	if (admin_snap_in_use(s, sn.id)) {
		admin_reply_err(s, r, EBUSY, "snapshot is in use by connected clients");
		return;
	}
	if (admin_quiet_or_park(s, r))
		return;
	int e = store_snapshot_rename(s->st, sn.id, rn->new_name);
	if (e < 0) {
		admin_reply_err(s, r, -e, err_get());
		return;
	}
	log_info("snapshot %s (id %u) renamed to %s", sn.name, sn.id, rn->new_name);
	reply_snapinfo(s, r, PROTO_SNAP_RENAME, sn.id);
}
