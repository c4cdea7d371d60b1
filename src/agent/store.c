/*
 * src/agent/store.c - one thread per configured store: find the device,
 * read the superblock, set up the lease area, join the lockspace with the
 * node's host_id, then look up the master every poll_ms (and at once when
 * a client asks for a fresh answer) and publish what it sees.  On stop
 * (asked only after the local server is gone) it leaves the lockspace.
 *
 * Failures are not fatal: the reason is published (clients and `STORES`
 * see it) and the step is retried with backoff (1 s doubling to 30 s), so
 * a device that appears later or a host_id conflict that is fixed later
 * heals without restarting the agent.
 */
#include "src/agent/agent_int.h"
#include "src/locate/locate.h"
#include "src/store/superblock.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/uuid.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS	1000
#define BACKOFF_MAX_MS	30000

const char *agent_store_state_name(enum store_state s)
{
	switch (s) {
	case STORE_OPENING: return "opening";
	case STORE_JOINING: return "joining";
	case STORE_JOINED: return "joined";
	case STORE_FAILED: return "failed";
	case STORE_LEFT: return "left";
	}
	return "?";
}

static void wake_main(struct agent *ag)
{
	uint64_t one = 1;

	if (write(ag->efd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warn("agent: cannot wake the main loop: %s", strerror(errno));
}

/* Called with st->lock held.  */
static bool stopping(struct agent_store *st)
{
	return st->stop;
}

static void set_state(struct agent_store *st, enum store_state s, const char *why)
{
	pthread_mutex_lock(&st->lock);
	st->pub.state = s;
	agent_sanitize(st->pub.why, sizeof st->pub.why, why ? why : "");
	memset(&st->pub.view, 0, sizeof st->pub.view);	/* looks start afresh */
	st->pub.done_seq = st->want_seq;	/* waiting clients get this state */
	pthread_mutex_unlock(&st->lock);
	wake_main(st->ag);
}

/* Sleeps up to MS or until stop; true if stopping.  */
static bool nap(struct agent_store *st, int ms, bool wake_on_want, uint64_t want_seen)
{
	struct timespec dl;
	bool s;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&st->lock);
	while (!stopping(st) && !(wake_on_want && st->want_seq != want_seen))
		if (pthread_cond_timedwait(&st->cond, &st->lock, &dl) == ETIMEDOUT)
			break;
	s = stopping(st);
	pthread_mutex_unlock(&st->lock);
	return s;
}

static bool should_stop(struct agent_store *st)
{
	bool s;

	pthread_mutex_lock(&st->lock);
	s = stopping(st);
	pthread_mutex_unlock(&st->lock);
	return s;
}

/* A failure: published, and logged when its reason is new (retries of
 * the same failure are logged at debug level only).  */
static void failed(struct agent_store *st)
{
	char why[AGENT_WHY_LEN];
	bool same;

	agent_sanitize(why, sizeof why, err_get());
	pthread_mutex_lock(&st->lock);
	same = st->pub.state == STORE_FAILED && !strcmp(st->pub.why, why);
	pthread_mutex_unlock(&st->lock);
	if (same)
		log_debug("store %s: still: %s", st->cs->name, why);
	else
		log_error("store %s: %s", st->cs->name, why);
	set_state(st, STORE_FAILED, why);
}

static int locate(struct agent_store *st)
{
	struct csnap_sb sb;
	struct lease_area area;
	struct csnap_uuid u;
	char path[CONFIG_PATH_MAX], uuid[CSNAP_UUID_STR_LEN];
	int r;

	r = agent_locate_store(st->cs->device, path, sizeof path, &sb);
	if (r < 0)
		return r;
	memcpy(u.b, sb.uuid, sizeof u.b);
	r = lease_area_setup(&area, path, sb.lease_offset, sb.lease_align, sb.lease_sector_size, &u);
	if (r < 0)
		return err_prefix(-r, "%s: lease area", path);
	csnap_uuid_unparse(&u, uuid);
	pthread_mutex_lock(&st->lock);
	snprintf(st->pub.path, sizeof st->pub.path, "%s", path);
	snprintf(st->pub.uuid, sizeof st->pub.uuid, "%s", uuid);
	st->pub.area = area;
	st->pub.located = true;
	pthread_mutex_unlock(&st->lock);
	log_info("store %s: %s, uuid %s, lockspace %s", st->cs->name, path, uuid, area.lockspace);
	return 0;
}

/* Our host_id's delta lease as on disk (found: 1, absent: 0, <0 error). */
static int slot_read(const struct lease_area *area, uint32_t host_id, struct lease_host *out)
{
	struct lease_host *hosts;
	int n, found = 0;

	if (lease_hosts(area, &hosts, &n) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (hosts[i].host_id == host_id) {
			*out = hosts[i];
			found = 1;
		}
	free(hosts);
	return found;
}

/*
 * Joins, and detects early that another live host uses our host_id:
 * sanlock itself only gives up after the owner would have been declared
 * dead (8 * io_timeout + 60 s), and never says why.  If the slot was held
 * when we started and its owner renews it (same generation, new
 * timestamp; renewals come every 2 * io_timeout) while our add waits, the
 * host_id is in use: we cancel the add and say so.  A stale slot (this
 * node crashed earlier) is not renewed, and the join goes on.
 */
static int join(struct agent_store *st, const struct lease_area *area)
{
	const struct config *cfg = st->ag->cfg;
	char why[AGENT_WHY_LEN];
	struct lease_host h0, h;
	int64_t check_at;
	bool held;
	int r;

	snprintf(why, sizeof why, "this node is joining lockspace %s as host_id %u",
		 area->lockspace, cfg->host_id);
	/* after a failure, the failure stays what clients see until we join */
	if (st->pub.state != STORE_FAILED)
		set_state(st, STORE_JOINING, why);
	held = slot_read(area, cfg->host_id, &h0) == 1 && h0.timestamp != 0;
	check_at = csnap_now_ms() + (2 * (int64_t)cfg->io_timeout + 1) * 1000;
	r = lease_join_start(area, cfg->host_id, cfg->io_timeout);
	while (r == 0) {
		r = lease_join_wait(area, cfg->host_id, 500);
		if (r != -ETIMEDOUT)
			break;
		if (should_stop(st))
			return -ECANCELED;
		r = 0;
		if (!held || csnap_now_ms() < check_at)
			continue;
		if (slot_read(area, cfg->host_id, &h) != 1)
			continue;
		if (h.generation == h0.generation && h.timestamp != h0.timestamp &&
		    h.timestamp != 0) {
			lease_leave(area, cfg->host_id, false);	/* cancels our add */
			return err_set(EADDRINUSE, "host_id %u is in use by live host '%s' "
				       "(generation %llu): give each node its own host_id in "
				       "csnap.conf", cfg->host_id, h.name,
				       (unsigned long long)h.generation);
		}
		check_at = csnap_now_ms() + (2 * (int64_t)cfg->io_timeout + 1) * 1000;
		h0 = h;
	}
	return r;
}

static void master_view(const struct lease_master_info *mi, const char *uuid,
			struct agent_master *v)
{
	memset(v, 0, sizeof *v);
	snprintf(v->uuid, sizeof v->uuid, "%s", uuid);
	switch (mi->state) {
	case LEASE_MASTER_VALID:
		v->state = AGENT_MASTER_VALID;
		v->host_id = (uint32_t)mi->host_id;
		v->generation = mi->generation;
		v->lver = mi->lver;
		v->epoch = mi->epoch;
		v->port = mi->port;
		/* locate_where() vouched for it: the protocol can carry it */
		agent_sanitize(v->address, sizeof v->address, mi->address);
		return;
	case LEASE_MASTER_NONE:
		v->state = AGENT_MASTER_NONE;
		break;
	default:
		v->state = AGENT_MASTER_CHANGING;
		break;
	}
	agent_sanitize(v->why, sizeof v->why, mi->why);
}

/* Polls the master until stop or until the lockspace is lost.  */
static int watch_master(struct agent_store *st, const struct lease_area *area, const char *uuid)
{
	struct agent_master prev;
	uint64_t prev_done = 0;
	bool have_prev = false;

	for (;;) {
		struct lease_master_info mi;
		const char *from;
		struct agent_master v;
		uint64_t want;
		int r;

		pthread_mutex_lock(&st->lock);
		if (stopping(st)) {
			pthread_mutex_unlock(&st->lock);
			return -ECANCELED;
		}
		want = st->want_seq;
		pthread_mutex_unlock(&st->lock);

		r = locate_where(area, NULL, NULL, &mi, &from);	/* we are the agent */
		if (r == -ENOTCONN) {
			log_warn("store %s: %s; joining again", st->cs->name, err_get());
			return r;
		}
		if (r < 0) {
			memset(&v, 0, sizeof v);
			v.state = AGENT_MASTER_CHANGING;
			snprintf(v.uuid, sizeof v.uuid, "%s", uuid);
			snprintf(v.why, sizeof v.why, "cannot look: %s", err_get());
		} else {
			master_view(&mi, uuid, &v);
		}
		if (!have_prev || !agent_master_same(&prev, &v) || want != prev_done ||
		    strcmp(prev.why, v.why)) {
			pthread_mutex_lock(&st->lock);
			st->pub.view = v;
			st->pub.done_seq = want;
			pthread_mutex_unlock(&st->lock);
			wake_main(st->ag);
			prev = v;
			prev_done = want;
			have_prev = true;
		}
		if (nap(st, st->ag->poll_ms, true, want))
			return -ECANCELED;
	}
}

static void *store_thread(void *arg)
{
	struct agent_store *st = arg;
	const struct config *cfg = st->ag->cfg;
	int backoff = BACKOFF_MIN_MS;
	bool joined_once = false, member = false;
	struct lease_area area;
	char uuid[AGENT_UUID_LEN];

	while (!should_stop(st)) {
		int r;

		if (!st->pub.located) {
			if (st->pub.state != STORE_FAILED)
				set_state(st, STORE_OPENING, "looking for the store device");
			r = locate(st);
			if (r < 0) {
				failed(st);
				nap(st, backoff, false, 0);
				backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
				continue;
			}
			pthread_mutex_lock(&st->lock);
			area = st->pub.area;
			snprintf(uuid, sizeof uuid, "%s", st->pub.uuid);
			pthread_mutex_unlock(&st->lock);
		}
		joined_once = true;	/* even an unfinished add needs undoing */
		r = join(st, &area);
		if (r == -ECANCELED)
			break;
		if (r < 0) {
			failed(st);
			nap(st, backoff, false, 0);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		backoff = BACKOFF_MIN_MS;
		member = true;
		log_info("store %s: joined lockspace %s as host_id %u", st->cs->name,
			 area.lockspace, cfg->host_id);
		set_state(st, STORE_JOINED, "");
		if (watch_master(st, &area, uuid) == -ECANCELED)
			break;
	}
	if (joined_once) {
		int r = lease_leave(&area, cfg->host_id, true);
		if (r < 0)
			log_error("store %s: not leaving lockspace %s: %s", st->cs->name,
				  area.lockspace, err_get());
		else if (member)
			log_info("store %s: left lockspace %s", st->cs->name, area.lockspace);
	}
	set_state(st, STORE_LEFT, "the agent is stopping");
	return NULL;
}

int agent_store_start(struct agent_store *st)
{
	pthread_condattr_t ca;
	int r;

	pthread_mutex_init(&st->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cond, &ca);
	pthread_condattr_destroy(&ca);
	st->pub.state = STORE_OPENING;
	r = pthread_create(&st->thread, NULL, store_thread, st);
	if (r)
		return err_set(r, "store %s: cannot start thread: %s", st->cs->name, strerror(r));
	st->thread_started = true;
	return 0;
}

uint64_t agent_store_want(struct agent_store *st)
{
	uint64_t seq;

	pthread_mutex_lock(&st->lock);
	seq = ++st->want_seq;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return seq;
}

void agent_store_snapshot(struct agent_store *st, struct store_pub *out)
{
	pthread_mutex_lock(&st->lock);
	*out = st->pub;
	pthread_mutex_unlock(&st->lock);
}

void agent_store_stop(struct agent_store *st)
{
	pthread_mutex_lock(&st->lock);
	st->stop = true;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

void agent_store_join(struct agent_store *st, int timeout_ms)
{
	struct timespec dl;
	int r;

	if (!st->thread_started)
		return;
	/* A thread stuck in I/O on a dead device must not hang the stop
	 * forever: after the timeout the process exits without it.  */
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	r = pthread_timedjoin_np(st->thread, NULL, &dl);
	if (r == ETIMEDOUT) {
		log_error("store %s: still busy after %d ms (stuck I/O on %s?); stopping without it",
			  st->cs->name, timeout_ms, st->cs->device);
		return;
	}
	st->thread_started = false;
}

void agent_store_answer(const struct agent_store *st, const struct store_pub *pub,
			struct agent_master *out)
{
	if (pub->state == STORE_JOINED && pub->view.uuid[0]) {
		*out = pub->view;
		return;
	}
	memset(out, 0, sizeof *out);
	out->state = AGENT_MASTER_CHANGING;
	snprintf(out->uuid, sizeof out->uuid, "%s", pub->uuid);
	switch (pub->state) {
	case STORE_JOINED:
		snprintf(out->why, sizeof out->why, "this node joined; first look pending");
		break;
	case STORE_FAILED:
		snprintf(out->why, sizeof out->why, "this node cannot use store %s: %s",
			 st->cs->name, pub->why);
		break;
	default:
		snprintf(out->why, sizeof out->why, "%s", pub->why[0] ? pub->why :
			 agent_store_state_name(pub->state));
		break;
	}
}
