/*
 * src/export/origin_read.h - origin reads while a rollback runs
 * (docs/server.md, "Rollback"): the origin volume (volume_origin.c) hands
 * every read here; it goes straight to the origin device unless the
 * master said a rollback runs (or has not said yet), then it asks first.
 */
#ifndef CSNAP_EXPORT_ORIGIN_READ_H
#define CSNAP_EXPORT_ORIGIN_READ_H

#include "src/export/csvol.h"
#include "src/export/grant.h"
#include "src/export/volume.h"

#include <stdbool.h>
#include <stdint.h>

struct oread_held;

struct origin_reader {
	const struct csvol_env *env;
	struct session *sess;		/* NULL once shut down */
	struct grant *grant;		/* the origin session's */
	bool known;			/* the master said whether one runs */
	bool ask;			/* a rollback runs: ask before reads */
	struct oread_held *held;	/* reads waiting for `known` */
	unsigned inflight;		/* asked reads not finished */
	uint64_t asked, again;		/* stats: reads asked, read again */
};

void orr_init(struct origin_reader *rd, const struct csvol_env *env, struct grant *grant);
static inline void orr_set_session(struct origin_reader *rd, struct session *sess) { rd->sess = sess; }
/* A read of the origin volume (REQ->done() once, in any case).  */
void orr_submit(struct origin_reader *rd, struct vol_req *req);
/* The origin session identified (again): OK says whether a rollback runs
 * (a master without rollbacks does not say: none runs).  */
void orr_connected(struct origin_reader *rd, const struct proto_identify_ok *ok);
/* The master refused the origin session for good (another store, say):
 * reads go to the origin directly, as before rollbacks existed.  */
void orr_refused(struct origin_reader *rd);
/* BARRIER flags: PROTO_F_RB_START (ask from now on), PROTO_F_RB_END.  */
void orr_barrier(struct origin_reader *rd, uint16_t flags);
/* The session is going away: held reads fail (-ESHUTDOWN).  */
void orr_shutdown(struct origin_reader *rd);

#endif
