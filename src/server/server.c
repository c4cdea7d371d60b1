/*
 * src/server/server.c - election, start-up, the event loop, group commit
 * and orderly shutdown of the metadata server.
 *
 * Life of a server process:
 *   standby   read the superblock, verify the origin (size and identity,
 *             else exit: a misconfigured node never becomes master), join
 *             the lockspace if asked, register
 *             with sanlock and try the master lease every second;
 *   master    open the store engine (journal replay), listen, publish the
 *             lease-owner record, serve; a grace period lets clients of
 *             the previous master re-upload their read locks before any
 *             origin write is answered;
 *   SIGTERM   stop accepting, finish in-flight work (bounded), commit,
 *             clear the record, release the lease: a standby takes over at
 *             once;
 *   fenced    (sanlock killpath signal, lease lost, or the lease may have
 *             expired before a commit) stop at once: no further metadata or
 *             copy-out writes, no record update.
 *
 * Group commit: the loop handles every ready event, then - once no copy
 * job is in flight - flushes the store device and commits the engine's
 * transaction once for all requests of the batch, then reprocesses parked
 * requests and writes the replies.
 */
#include "src/server/srv.h"
#include "src/server/heartbeat.h"

#include "ioengine/ioengine.h"
#include "src/store/origin_id.h"
#include "src/store/superblock.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS			250
#define FENCE_SIGNAL		SIGUSR1
#define STANDBY_HELD_ASK_MS	1000	/* a standby asks for a lease a live host holds */

/* The engine of a fenced master: kept (reachable, so leak checkers stay
 * quiet) instead of closed, because closing writes metadata.  */
static struct store *volatile fenced_store;


void server_opts_defaults(struct server_opts *o)
{
	memset(o, 0, sizeof *o);
	o->io_timeout = 10;
	o->address = "127.0.0.1";
	o->node_name = "";
	o->store_full = STORE_FULL_RELEASE;
	o->grace_ms = 100;
	o->standby_retry_ms = 50;
	o->standby_turn_ms = 250;
	o->barrier_timeout_ms = 30000;
	o->drain_timeout_ms = 10000;
	o->copy_depth = 64;
	o->join = true;
}

/* ---- signals, timer ----------------------------------------------------- */

static void stop_listening(struct srv *s);

/* Serving, the first SIGTERM/SIGINT starts the drain: stop accepting,
 * finish in-flight work (bounded), then hand over.  */
static void begin_drain(struct srv *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	s->drain_deadline_ms = csnap_now_ms() + s->o.drain_timeout_ms;
	stop_listening(s);
}

static void on_signal(void *arg, int signo)
{
	struct srv *s = arg;

	if (signo != SIGTERM && signo != SIGINT)
		return;		/* SIGHUP: blocked, ignored */
	log_info("signal %d: orderly shutdown", signo);
	s->stop_asked = true;
	if (s->serving)
		begin_drain(s);
}

static int setup_signals(struct srv *s)
{
	static const int signos[] = { SIGTERM, SIGINT, SIGHUP, 0 };

	return evloop_signals_add(s->lp, &s->sigs, signos, on_signal, s);
}

/* ---- standby ------------------------------------------------------------ */

static int load_superblock(struct srv *s)
{
	struct io_dev *dev;
	struct csnap_sb sb;
	int r = csnap_sb_read_path(s->o.store_path, &sb);
	if (r < 0)
		return r;	/* the message names the path */
	/* an older format: the master could not open it, say so at once */
	if ((r = csnap_sb_writable(&sb, s->o.store_path)) < 0)
		return r;
	/* A node pointed at the wrong origin must never become master:
	 * refuse before competing for the lease (and again at takeover).  */
	if ((r = io_dev_open(s->o.origin_path, IO_DEV_RDONLY, &dev)) < 0)
		return err_prefix(-r, "open origin");
	r = origin_id_verify(s->o.origin_path, io_dev_size(dev), &sb);
	io_dev_close(dev);
	if (r < 0)
		return r;
	memcpy(s->uuid.b, sb.uuid, 16);
	memcpy(s->secret, sb.secret, PROTO_SECRET_LEN);
	s->origin_size = sb.origin_size;
	s->chunk_size = sb.chunk_size;
	r = lease_area_setup(&s->area, s->o.store_path, sb.lease_offset, sb.lease_align,
			     sb.lease_sector_size, &s->uuid);
	return r;
}

/* Waits for the master lease.  Returns 1 when we hold it, 0 if asked to
 * stop while standby, negative errno on failure.  */
static int wait_for_master(struct srv *s)
{
	int r;
	int said = 0;		/* last reason logged */

	if (s->o.join) {
		r = lease_joined(&s->area, s->o.host_id);
		if (r == -ENOENT || r == -EINPROGRESS) {
			log_info("joining lockspace %s as host %u", s->area.lockspace, s->o.host_id);
			r = lease_join(&s->area, s->o.host_id, s->o.io_timeout, 300000);
		}
		if (r < 0)
			return r;
	}
	if ((r = lease_fence_install(FENCE_SIGNAL)) < 0)
		return r;
	if ((r = lease_master_open(&s->lm, &s->area, s->o.host_id, FENCE_SIGNAL)) < 0)
		return r;
	/* Standbys take turns for a freed lease (lease/turn.c): asking at
	 * once, they collide in paxos and sleep up to 1 s.  Where the disk
	 * cannot be read, ask: sanlock decides in any case.  */
	struct lease_turns turns = { 0 };
	for (;;) {
		struct lease_turn t;
		bool known = lease_master_turn(&s->lm, &t) == 0;
		if (lease_turn_ask(&turns, known ? &t : NULL, csnap_now_ms(), s->o.standby_turn_ms,
				   STANDBY_HELD_ASK_MS)) {
			r = lease_master_acquire(&s->lm);
			if (r == 0)
				return 1;
		} else {
			r = -EBUSY;
		}
		if (r != -EBUSY && r != -EAGAIN && r != -ENOTCONN)
			return r;
		if (said != r) {
			log_info("standby for store %s: %s", s->area.lockspace,
				 r == -ENOTCONN ? "lockspace not joined yet" : "master lease held elsewhere");
			said = r;
		}
		/* Acquiring against a live owner is cheap (sanlock answers
		 * at once), and the retry interval is most of the time an
		 * orderly hand-over takes.  */
		if ((r = evloop_run_once(s->lp, s->o.standby_retry_ms > 0 ? s->o.standby_retry_ms : 50)) < 0)
			return r;
		if (s->stop_asked)
			return 0;
		if (lease_fenced())
			return err_set(ENOLCK, "fenced while standby");
	}
}

/* ---- master ------------------------------------------------------------- */

static void io_ready(void *arg, uint32_t events)
{
	(void)events;
	copy_reap(arg);
}

static int open_store(struct srv *s)
{
	struct store_open_opts so = { .cache_bytes = s->o.cache_bytes };
	int r = store_open(s->o.store_path, &so, &s->st);
	if (r < 0)
		return err_prefix(-r, "open store");
	s->sdev = store_dev(s->st);
	store_get_info(s->st, &s->info);
	s->chunk_size = s->info.chunk_size;
	s->origin_size = s->info.sb.origin_size;
	r = io_dev_open(s->o.origin_path, IO_DEV_RDONLY, &s->odev);
	if (r < 0)
		return err_prefix(-r, "open origin");
	/* Again at takeover: the device behind the path may have changed
	 * while we were standby.  */
	if ((r = origin_id_verify(s->o.origin_path, io_dev_size(s->odev), &s->info.sb)) < 0)
		return r;
	r = io_engine_create(s->o.copy_depth ? s->o.copy_depth : 64, &s->eng);
	if (r < 0)
		return r;
	s->iofd = io_engine_eventfd(s->eng);
	s->pipeline = true;	/* commits' I/O on the engine (commit.c) */
	return evloop_watch_add(s->lp, &s->io_watch, s->iofd, EPOLLIN, io_ready, s);
}

static int start_listening(struct srv *s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *res;
	char port[8];
	snprintf(port, sizeof port, "%u", s->o.port);
	int g = getaddrinfo(s->o.address, port, &hints, &res);
	if (g)
		return err_set(EINVAL, "listen address %s: %s", s->o.address, gai_strerror(g));
	s->lfd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		freeaddrinfo(res);
		return err_set(errno, "socket: %s", strerror(errno));
	}
	int one = 1;
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s->lfd, res->ai_addr, res->ai_addrlen) < 0 || listen(s->lfd, 128) < 0) {
		int e = errno;
		freeaddrinfo(res);
		return err_set(e, "listen on %s port %u: %s", s->o.address, s->o.port, strerror(e));
	}
	freeaddrinfo(res);
	struct sockaddr_storage sa;
	socklen_t sl = sizeof sa;
	getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	getnameinfo((struct sockaddr *)&sa, sl, host, sizeof host, serv, sizeof serv,
		    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(s->address, sizeof s->address, "%s", host);
	s->port = (uint16_t)atoi(serv);
	return conn_listen_init(s);
}

static void stop_listening(struct srv *s)
{
	if (s->lfd >= 0) {
		conn_listen_done(s);	/* unwatches it */
		close(s->lfd);
		s->lfd = -1;
	}
}

/* How long the loop may sleep: the tick, or less if the re-upload window
 * ends or a snapshot waits only for grants to expire.  */
static int loop_timeout(const struct srv *s)
{
	int64_t due = 0;

	if (s->grace_until_ms)
		due = s->grace_until_ms;
	int64_t admin_due = admin_due_ms(s), rb_due = rb_due_ms(s);
	if (admin_due && (!due || admin_due < due))
		due = admin_due;
	if (rb_due && (!due || rb_due < due))
		due = rb_due;
	if (!due)
		return TICK_MS;
	int64_t left = due - csnap_now_ms();
	return left <= 0 ? 0 : left < TICK_MS ? (int)left : TICK_MS;
}

static void tick(struct srv *s, unsigned n)
{
	if (n % 4 == 0 && !s->fatal) {
		int r = srv_lease_check(s);
		if (r < 0)
			srv_fatal(s, r, err_get());
		else
			log_debug("master lease valid for %lld ms more",
				  (long long)((s->lm.valid_until_ns - (int64_t)csnap_now_ms() * 1000000) / 1000000));
	}
	srv_grace_check(s);
	srv_checkpoint(s);
	grants_tick(s);
	dp_tick(s);
	inval_tick(s);
	conn_tick(s);
	admin_tick(s);
}

/* Publishes the lease-owner record.  Like a commit, the write waits for a
 * late lease renewal (bounded) rather than giving the lease up.  */
static int publish(struct srv *s)
{
	int64_t give_up = csnap_now_ms() + 60000;
	bool said = false;
	for (;;) {
		int r = lease_master_publish(&s->lm, s->address, s->port, s->epoch);
		if (r != -ENOLCK || lease_fenced() || csnap_now_ms() >= give_up)
			return r;
		if ((r = lease_master_check(&s->lm)) < 0)
			return r;
		if (lease_may_commit(&s->lm) == 0)
			continue;
		if (!said)
			log_warn("master lease renewal is late: waiting to publish the record");
		said = true;
		if ((r = evloop_run_once(s->lp, 250)) < 0)
			return r;
		if (s->stop_asked)
			return err_set(EINTR, "stopped while waiting to publish");
	}
}

static bool drained(struct srv *s, int64_t deadline)
{
	if (csnap_now_ms() >= deadline + 10000)
		return true;	/* the lease never came back: give up */
	if (copy_pending(s) || srv_commit_inflight(s) || store_txn_pending(s->st) || s->after_commit.n)
		return false;
	if (!s->waiting.n)
		return true;
	return csnap_now_ms() >= deadline;
}

static void on_tick(void *arg)
{
	struct srv *s = arg;

	if (s->fatal)
		return;		/* stopping at once: no further work */
	evloop_timer_arm(s->lp, &s->tick_timer, TICK_MS);
	tick(s, ++s->ticks);
}

static void on_wake(void *arg)
{
	(void)arg;	/* the due work is in after_turn() */
}

/* After every turn, once the events of the batch are handled: group
 * commit and replies (srv_turn_end), the drain's end, the next wake-up. */
static void after_turn(void *arg)
{
	struct srv *s = arg;

	if (lease_fenced())
		srv_fatal(s, -ENOLCK, "sanlock asked this master to stop (fenced)");
	if (s->fatal)
		return;		/* srv_fatal stopped the loop */
	srv_turn_end(s);
	conn_flush_all(s);
	if (s->stopping && drained(s, s->drain_deadline_ms)) {
		evloop_stop(s->lp);
		return;
	}
	evloop_timer_arm(s->lp, &s->wake, (unsigned)loop_timeout(s));
}

static int serve(struct srv *s)
{
	int r;

	s->serving = true;
	if (s->stop_asked)	/* while we were taking over */
		begin_drain(s);
	s->tick_timer = (struct evloop_timer){ .fn = on_tick, .arg = s };
	s->wake = (struct evloop_timer){ .fn = on_wake, .arg = s };
	evloop_timer_arm(s->lp, &s->tick_timer, TICK_MS);
	evloop_timer_arm(s->lp, &s->wake, (unsigned)loop_timeout(s));
	evloop_set_after(s->lp, after_turn, s);
	r = evloop_run(s->lp);
	evloop_set_after(s->lp, NULL, NULL);
	evloop_timer_cancel(s->lp, &s->tick_timer);
	evloop_timer_cancel(s->lp, &s->wake);
	s->serving = false;
	if (r < 0)
		return r;
	return s->fatal ? s->fatal_err : 0;
}

static void close_all_conns(struct srv *s)
{
	while (s->conns)
		conn_close(s->conns);
	conn_reap(s);
	s->stopping = true;
	dp_tick(s);	/* frees kept locks */
	struct req *r;
	while ((r = req_list_pop(&s->waiting)))
		srv_req_done(s, r);
	while ((r = req_list_pop(&s->after_commit)))
		srv_req_done(s, r);
	admin_shutdown(s);
	grants_tick(s);	/* stopping: frees them all */
}

int server_run(const struct server_opts *o)
{
	struct srv *s = malloc(sizeof *s);
	int r, ret;

	if (!s)
		return err_set(ENOMEM, "out of memory");
	if ((r = srv_init(s, o)) < 0) {
		free(s);
		return r;
	}
	if ((r = evloop_create(&s->lp)) < 0) {
		srv_free(s);
		free(s);
		return r;
	}
	if ((r = setup_signals(s)) < 0)
		goto out;
	hb_init(s->lp);

	if ((r = load_superblock(s)) < 0)
		goto out;
	r = wait_for_master(s);
	if (r == 0)
		log_info("stopped while standby");
	if (r <= 0)
		goto out_master;
	s->epoch = s->lm.lver;
	/* A previous master may have granted origin clients up to
	 * PROTO_GRANT_MS (all before its lease ended, which is before we got
	 * it): no snapshot commit until those grants have certainly run out.
	 * Lease version 1 is the first master the store ever had.  */
	if (s->lm.lver > 1)
		grants_takeover(s, csnap_now_ms() + PROTO_GRANT_WAIT_MS);
	if ((r = lease_master_check(&s->lm)) < 0)
		goto out_master;
	log_info("master lease acquired (lver %llu, host %u generation %llu): opening the store",
		 (unsigned long long)s->lm.lver, s->o.host_id, (unsigned long long)s->lm.generation);

	if ((r = open_store(s)) < 0)
		goto out_master;
	if ((r = start_listening(s)) < 0)
		goto out_master;

	/* Clients can come back only once the record is published: the
	 * re-upload window starts then (origin writes wait for it; until
	 * the record is out nobody can send one).  */
	s->grace_until_ms = s->o.grace_ms > 0 ? INT64_MAX : 0;
	if ((r = publish(s)) < 0) {
		err_prefix(-r, "publish lease-owner record");
		goto out_master;
	}
	if (s->o.grace_ms > 0)
		s->grace_until_ms = csnap_now_ms() + s->o.grace_ms;
	log_info("master for store %s at %s port %u (epoch %llu); %u data chunks, %llu free",
		 s->area.lockspace, s->address, s->port, (unsigned long long)s->epoch,
		 (unsigned)s->info.data_chunks, (unsigned long long)s->info.data_free);

	hb_serving(s->epoch);
	r = serve(s);
	hb_stopping();
	uint64_t copyouts, copy_jobs;
	copy_stats(s, &copyouts, &copy_jobs);
	log_info("served %llu requests; %llu chunks copied out in %llu reads; %llu commits "
		 "(%llu pipelined, %llu copy-outs started while one was in flight)",
		 (unsigned long long)s->stat_queries, (unsigned long long)copyouts,
		 (unsigned long long)copy_jobs, (unsigned long long)s->stat_commits,
		 (unsigned long long)s->stat_pipelined, (unsigned long long)copy_overlapped(s));
	if (s->fatal) {
		/* No writes at all: the lease may belong to someone else now. */
		close_all_conns(s);
		goto out_master;
	}
	/* Orderly: commit what is done, stop, hand over.  */
	stop_listening(s);
	copy_flush(s);
	copy_drain(s);
	if (!copy_failed(s))
		srv_commit_now(s);
	conn_flush_all(s);
	close_all_conns(s);
	if (!s->fatal) {
		srv_close_store(s);
		if ((ret = lease_record_clear(&s->area)) < 0)
			log_warn("clearing the lease-owner record: %s", err_get());
		if ((ret = lease_master_release(&s->lm)) < 0)
			log_warn("releasing the master lease: %s", err_get());
		else
			log_info("master lease released: orderly hand-over done");
	}
	r = s->fatal ? s->fatal_err : 0;
out_master:
	if (r < 0)
		log_error("%s", err_get());
	/* After a fatal stop the engine is not closed (store_close writes
	 * metadata home): its committed state is in the journal already and
	 * the next master replays it.  The process exits next.  */
	if (s->st && !s->fatal)
		srv_close_store(s);
	else if (s->st)
		fenced_store = s->st;	/* deliberately not freed: see above */
	evloop_watch_del(s->lp, &s->io_watch);
	if (s->eng)
		io_engine_destroy(s->eng);
	if (s->odev)
		io_dev_close(s->odev);
	lease_master_close(&s->lm);
out:
	stop_listening(s);
	hb_detach();
	evloop_signals_del(s->lp, &s->sigs);
	evloop_destroy(s->lp);
	srv_free(s);
	free(s);
	return r < 0 ? r : 0;
}
