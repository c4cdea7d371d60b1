/*
 * src/server/grants.c - what the master knows of its clients' grants
 * (src/proto/proto.h "Grants"; the timing argument is in
 * docs/RELIABILITY.md).
 *
 * A client may use what it was told without asking until its grant runs
 * out, even after we closed its connection (it may not know: stopped,
 * partitioned).  So:
 *  - replies that renew a grant go out only while our lease is certainly
 *    valid (srv_may_grant), and conn_send() notes when (conn.granted_ms);
 *  - an origin connection that closes moves grant_horizon_ms: no snapshot
 *    commit before it (admin.c);
 *  - a snapshot connection closed by us or by an error (not by the client,
 *    which forgets everything first; not a passive one, which never
 *    carried a data request) leaves a ghost until its grant has certainly
 *    run out: its snapshot counts as in use, and a write that moved
 *    chunks is not answered (srv_snap_grants_until);
 *  - after a takeover both wait PROTO_GRANT_WAIT_MS for the previous
 *    master's grants (server.c).
 */
#include "src/server/srv.h"

#include "utils/assert.h"
#include "utils/clock.h"

#include <stdlib.h>

/* A snapshot connection that went away while its client may still hold a
 * grant: it may still use locations it cached until `until_ms`.  */
struct grant_ghost {
	struct grant_ghost *next;
	uint32_t snap_id;
	int64_t until_ms;
};

/* This file's state (struct srv points at it).  */
struct grants {
	/* No snapshot is committed before grant_horizon_ms, the time by
	 * which every grant of an origin connection that closed (or of a
	 * previous master) has certainly expired.  */
	int64_t grant_horizon_ms;
	int64_t takeover_grants_ms;	/* grants of a previous master end */
	struct grant_ghost *ghosts;	/* closed snapshot connections */
	bool ghost_wait;		/* a request waits for a ghost to go */
	bool grant_held;		/* a reply waits for the lease: kick */
};

int grants_init(struct srv *s)
{
	s->grants = calloc(1, sizeof *s->grants);
	return s->grants ? 0 : -ENOMEM;
}

void grants_free(struct srv *s)
{
	if (!s->grants)
		return;
	while (s->grants->ghosts) {
		struct grant_ghost *g = s->grants->ghosts;
		s->grants->ghosts = g->next;
		free(g);
	}
	free(s->grants);
	s->grants = NULL;
}

int64_t grants_horizon(const struct srv *s)
{
	return s->grants->grant_horizon_ms;
}

void grants_takeover(struct srv *s, int64_t until_ms)
{
	s->grants->grant_horizon_ms = s->grants->takeover_grants_ms = until_ms;
}

void grants_wait(struct srv *s)
{
	s->grants->ghost_wait = true;
}

void srv_grant_gone(struct srv *s, const struct conn *c)
{
	int64_t until = c->granted_ms + PROTO_GRANT_WAIT_MS;

	if (c->state != CONN_READY || !c->granted_ms)
		return;
	if (c->volume == PROTO_VOL_ORIGIN) {
		if (until > s->grants->grant_horizon_ms)
			s->grants->grant_horizon_ms = until;
		/* the horizon only moves later */
		CSNAP_ASSERT(s->grants->grant_horizon_ms >= until);
		return;
	}
	/* A passive connection never carried a data request: nothing was
	 * cached from it.  */
	if (c->volume != PROTO_VOL_SNAPSHOT || c->eof || c->passive || until <= csnap_now_ms())
		return;
	struct grant_ghost *g = calloc(1, sizeof *g);
	if (!g) {
		/* Cannot tell which snapshot: treat them all alike.  */
		if (until > s->grants->takeover_grants_ms)
			s->grants->takeover_grants_ms = until;
		return;
	}
	g->snap_id = c->snap_id;
	g->until_ms = until;
	g->next = s->grants->ghosts;
	s->grants->ghosts = g;
}

int64_t srv_snap_grants_until(const struct srv *s, uint32_t snap_id)
{
	int64_t until = s->grants->takeover_grants_ms;

	for (const struct grant_ghost *g = s->grants->ghosts; g; g = g->next)
		if (g->snap_id == snap_id && g->until_ms > until)
			until = g->until_ms;
	return until;
}

void grants_tick(struct srv *s)
{
	int64_t now = csnap_now_ms();
	struct grant_ghost **p = &s->grants->ghosts;

	while (*p) {
		struct grant_ghost *g = *p;

		if (g->until_ms > now && !s->stopping) {
			p = &g->next;
			continue;
		}
		*p = g->next;
		free(g);
	}
	/* Replies held back while the lease renewal was late.  */
	if (s->grants->grant_held && lease_may_commit(&s->lm) == 0) {
		s->grants->grant_held = false;
		srv_kick(s);
	}
	if (s->grants->ghost_wait) {
		s->grants->ghost_wait = false;
		srv_kick(s);
	}
}

bool srv_may_grant(struct srv *s)
{
	if (lease_may_commit(&s->lm) == 0)
		return true;
	s->grants->grant_held = true;
	return false;
}
