/*
 * src/export/grant.c - a volume's grant from the master: renewal by
 * replies and PING, expiry, the per-connection epoch.  See grant.h.
 */
#include "src/export/grant.h"

#include "src/export/loop.h"
#include "src/proto/proto.h"
#include "utils/assert.h"
#include "utils/clock.h"

#include <string.h>

static void ping_fn(void *arg);

void grant_init(struct grant *g, struct evloop *lp)
{
	memset(g, 0, sizeof *g);
	g->lp = lp;
	g->timer.fn = ping_fn;
	g->timer.arg = g;
}

bool grant_valid(const struct grant *g)
{
	return csnap_boot_ns() < g->until_ns;
}

/* With loop threads a grant is read by every thread's gates and renewed
 * or dropped by the master's session: all under the export lock.  */
void grant_renew(struct grant *g, int64_t sent_ns)
{
	CSNAP_ASSERT(loop_locked());
	int64_t until = sent_ns + (int64_t)PROTO_GRANT_MS * 1000000;

	if (until > g->until_ns)
		g->until_ns = until;
}

void grant_drop(struct grant *g)
{
	CSNAP_ASSERT(loop_locked());
	g->until_ns = 0;
	g->epoch++;
}

bool grant_gate_ok(const struct grant *g, uint64_t epoch)
{
	CSNAP_ASSERT(loop_locked());
	return epoch == g->epoch && grant_valid(g);
}

int64_t grant_expired_ms(const struct grant *g)
{
	int64_t now = csnap_boot_ns();

	return g->until_ns && now > g->until_ns ? (now - g->until_ns) / 1000000 : 0;
}

int64_t grant_left_ms(const struct grant *g)
{
	int64_t now = csnap_boot_ns();

	return g->until_ns > now ? (g->until_ns - now) / 1000000 : 0;
}

static void ping_done(struct sreq *rq, const struct proto_msg *reply, int err)
{
	struct grant *g = rq->arg;

	g->ping_inflight = false;
	if (!err && !reply->status)
		grant_renew(g, rq->sent_ns);
}

static void ping_fn(void *arg)
{
	struct grant *g = arg;

	if (!g->sess || !session_up(g->sess))
		return;		/* grant_ping_start() again on reconnect */
	if (!g->ping_inflight) {
		memset(&g->ping, 0, sizeof g->ping);
		proto_msg_init(&g->ping.msg, PROTO_PING, 0);
		g->ping.done = ping_done;
		g->ping.arg = g;
		g->ping_inflight = true;
		session_send_once(g->sess, &g->ping);	/* may answer at once */
	}
	evloop_timer_arm(g->lp, &g->timer, PROTO_PING_MS);
}

void grant_ping_start(struct grant *g)
{
	evloop_timer_arm(g->lp, &g->timer, PROTO_PING_MS);
}

void grant_ping_stop(struct grant *g)
{
	evloop_timer_cancel(g->lp, &g->timer);
}
