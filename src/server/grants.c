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

#include "utils/clock.h"

#include <stdlib.h>

void srv_grant_gone(struct srv *s, const struct conn *c)
{
	int64_t until = c->granted_ms + PROTO_GRANT_WAIT_MS;

	if (c->state != CONN_READY || !c->granted_ms)
		return;
	if (c->volume == PROTO_VOL_ORIGIN) {
		if (until > s->grant_horizon_ms)
			s->grant_horizon_ms = until;
		return;
	}
	/* A passive connection never carried a data request: nothing was
	 * cached from it.  */
	if (c->volume != PROTO_VOL_SNAPSHOT || c->eof || c->passive || until <= csnap_now_ms())
		return;
	struct grant_ghost *g = calloc(1, sizeof *g);
	if (!g) {
		/* Cannot tell which snapshot: treat them all alike.  */
		if (until > s->takeover_grants_ms)
			s->takeover_grants_ms = until;
		return;
	}
	g->snap_id = c->snap_id;
	g->until_ms = until;
	g->next = s->ghosts;
	s->ghosts = g;
}

int64_t srv_snap_grants_until(const struct srv *s, uint32_t snap_id)
{
	int64_t until = s->takeover_grants_ms;

	for (const struct grant_ghost *g = s->ghosts; g; g = g->next)
		if (g->snap_id == snap_id && g->until_ms > until)
			until = g->until_ms;
	return until;
}

void srv_ghost_tick(struct srv *s)
{
	int64_t now = csnap_now_ms();
	struct grant_ghost **p = &s->ghosts;

	while (*p) {
		struct grant_ghost *g = *p;

		if (g->until_ms > now && !s->stopping) {
			p = &g->next;
			continue;
		}
		*p = g->next;
		free(g);
	}
	if (s->ghost_wait) {
		s->ghost_wait = false;
		srv_kick(s);
	}
}

bool srv_may_grant(struct srv *s)
{
	if (lease_may_commit(&s->lm) == 0)
		return true;
	s->grant_held = true;
	return false;
}
