/*
 * src/server/admin_int.h - private to the admin files: admin.c (snapshot
 * creation, the state), admin_snap.c (delete, set, rename),
 * admin_query.c (list, status, changed), admin_space.c (cleanup, store
 * full).  What the rest of the server calls is in srv.h.
 */
#ifndef CSNAP_SERVER_ADMIN_INT_H
#define CSNAP_SERVER_ADMIN_INT_H

#include "src/server/srv.h"

/* Answers R with the error ERR (a positive errno) and WHY, and finishes it.  */
void admin_reply_err(struct srv *s, struct req *r, int err, const char *why);
/* A snapshot as replies describe it; U its usage (NULL: not asked for).  */
void admin_fill_snapinfo(const struct store_snapshot *sn, const struct store_usage *u,
			 struct proto_snapinfo *out);
/* May snapshot ID be changed under R now (true)?  Else R was answered
 * EBUSY with BUSY_WHY (a client uses it) or parked (a cut-off client's
 * grant of it may still run, or a copy-out is in flight).  */
bool admin_snap_unused(struct srv *s, struct req *r, uint32_t id, const char *busy_why);
/* Timer (admin_tick): frees a budget of deleted snapshots' chunks when
 * nothing is in flight.  */
void admin_cleanup_tick(struct srv *s);

#endif
