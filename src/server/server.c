/*
 * src/server/server.c - election, start-up, the epoll loop, group commit
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
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS			250
#define BATCH_MAX_MS		10
#define BATCH_MAX_COPIES	8192
#define FENCE_SIGNAL		SIGUSR1

/* The engine of a fenced master: kept (reachable, so leak checkers stay
 * quiet) instead of closed, because closing writes metadata.  */
static struct store *volatile fenced_store;

/* epoll tags for the non-connection fds */
static char tag_listen, tag_signal, tag_timer, tag_io, tag_hb;

void server_opts_defaults(struct server_opts *o)
{
	memset(o, 0, sizeof *o);
	o->io_timeout = 10;
	o->address = "127.0.0.1";
	o->node_name = "";
	o->store_full = STORE_FULL_RELEASE;
	o->grace_ms = 100;
	o->standby_retry_ms = 50;
	o->barrier_timeout_ms = 30000;
	o->drain_timeout_ms = 10000;
	o->copy_depth = 64;
	o->join = true;
}

/* ---- request lists ----------------------------------------------------- */

void req_list_push(struct req_list *l, struct req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

void req_list_remove(struct req_list *l, struct req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->next = r->prev = NULL;
	l->n--;
}

struct req *req_list_pop(struct req_list *l)
{
	struct req *r = l->head;
	if (r)
		req_list_remove(l, r);
	return r;
}

void srv_park(struct srv *s, struct req *r)
{
	r->parked = true;
	req_list_push(&s->waiting, r);
}

void srv_kick(struct srv *s)
{
	s->kick = true;
}

void srv_req_done(struct srv *s, struct req *r)
{
	inval_req_gone(s, r);
	free(r->reply);
	proto_msg_free(&r->m);
	if (r->c)
		conn_put(r->c);
	free(r);
}

bool srv_batch_open(struct srv *s)
{
	if (s->quiesce || s->barrier_active || s->copy_failed)
		return false;
	if (!s->copies_in_batch)
		return true;
	return s->copies_in_batch < BATCH_MAX_COPIES &&
	       csnap_now_ms() - s->batch_start_ms < BATCH_MAX_MS;
}

unsigned srv_origin_clients(const struct srv *s)
{
	unsigned n = 0;
	for (const struct conn *c = s->conns; c; c = c->next)
		if (c->state == CONN_READY && c->volume == PROTO_VOL_ORIGIN)
			n++;
	return n;
}

void srv_fatal(struct srv *s, int err, const char *why)
{
	if (!s->fatal) {
		log_error("stopping at once, no further writes: %s", why);
		s->fatal = true;
		s->fatal_err = err < 0 ? err : -EIO;
	}
}

/* ---- commit ------------------------------------------------------------ */

/* Asks sanlock about our lease.  A shortage of our own (no descriptor or
 * memory to open a socket to sanlock, say because peers hold them all)
 * says nothing about the lease: it is not taken for a lost lease.  The
 * lease's validity then simply is not extended, so commits wait (see
 * lease_ok) until a check succeeds.  Other failures: < 0.  */
static int lease_check(struct srv *s)
{
	static struct log_limit said;
	int r = lease_master_check(&s->lm);
	if (r < 0 && fd_shortage(-r) && !lease_fenced()) {
		log_limited(&said, LOG_LEVEL_WARN,
			    "cannot check the master lease now (%s): commits wait for the next check",
			    err_get());
		return 0;
	}
	return r;
}

/* May we commit?  A late delta-lease renewal (a busy host, slow storage)
 * is not a lost lease: wait for it rather than fail over.  If the lease is
 * really gone, sanlock fences us or the inquiry says so.  */
static int lease_ok(struct srv *s)
{
	if (lease_may_commit(&s->lm) == 0)
		goto ok;
	int r = lease_check(s);
	if (r < 0) {
		srv_fatal(s, r, err_get());
		return r;
	}
	if (lease_may_commit(&s->lm) == 0)
		goto ok;
	if (lease_fenced()) {
		srv_fatal(s, -ENOLCK, "fenced");
		return -ENOLCK;
	}
	if (!s->lease_late)
		log_warn("master lease renewal is late: holding commits until sanlock renews it");
	s->lease_late = true;
	return err_set(EAGAIN, "master lease renewal is late");
ok:
	if (s->lease_late)
		log_info("master lease renewed: commits resume");
	s->lease_late = false;
	return 0;
}

void srv_reply_after_commit(struct srv *s, struct req *r, const struct proto_msg *m)
{
	r->reply = malloc(sizeof *r->reply);
	if (!r->reply) {
		conn_reply_error(r->c, &r->m, ENOMEM, "server out of memory");
		srv_req_done(s, r);
		return;
	}
	*r->reply = *m;
	req_list_push(&s->after_commit, r);
}

int srv_commit_now(struct srv *s)
{
	int r;
	if (copy_pending(s))
		return err_set(EBUSY, "copy-outs in flight");
	if (s->fatal)
		return err_set(ENOLCK, "server is stopping after a fatal error");
	if (store_txn_pending(s->st)) {
		if ((r = lease_ok(s)) < 0)
			return r;
		if ((r = io_dev_flush(s->sdev)) < 0) {
			srv_fatal(s, r, err_get());
			return r;
		}
		if ((r = store_commit(s->st)) < 0) {
			srv_fatal(s, r, err_get());
			return r;
		}
		s->commits++;
		s->stat_commits++;
		s->txn_unsafe = false;
		store_get_info(s->st, &s->info);
	}
	if (s->busy.used)
		chunkset_clear(&s->busy);
	s->copies_in_batch = 0;
	struct req *q;
	while ((q = req_list_pop(&s->after_commit))) {
		conn_send(q->c, q->reply);
		srv_req_done(s, q);
	}
	srv_kick(s);
	return 0;
}

void srv_abort_txn(struct srv *s, int err)
{
	(void)err;
	s->copy_failed = true;
}

/* The open transaction has exceptions without their data: throw it away
 * by reopening the engine, and fail the writes that waited for it.  */
static void do_abort(struct srv *s)
{
	log_error("copy-out failed: discarding the open transaction and failing its writes");
	store_close(s->st);
	s->st = NULL;
	struct store_open_opts so = { .cache_bytes = s->o.cache_bytes };
	int r = store_open(s->o.store_path, &so, &s->st);
	if (r < 0) {
		srv_fatal(s, r, err_get());
		return;
	}
	s->sdev = store_dev(s->st);
	store_get_info(s->st, &s->info);
	struct req_list keep = { 0 };
	struct req *q;
	while ((q = req_list_pop(&s->waiting))) {
		if (q->m.type == PROTO_ORIGIN_WRITE || q->m.type == PROTO_SNAP_WRITE) {
			conn_reply_error(q->c, &q->m, EIO, "copy-out to the snapshot store failed");
			srv_req_done(s, q);
		} else {
			req_list_push(&keep, q);
		}
	}
	s->waiting = keep;
	chunkset_clear(&s->busy);
	s->txn_unsafe = false;
	s->copy_failed = false;
	s->copies_in_batch = 0;
	srv_kick(s);
}

static void commit_step(struct srv *s)
{
	if (copy_pending(s) || s->fatal)
		return;
	if (s->copy_failed) {
		do_abort(s);
		return;
	}
	if (store_txn_pending(s->st) || s->busy.used || s->after_commit.n)
		srv_commit_now(s);
}

static void reprocess(struct srv *s)
{
	for (int rounds = 0; s->kick && rounds < 4 && !s->fatal; rounds++) {
		s->kick = false;
		s->quiesce = 0;
		struct req_list l = s->waiting;
		memset(&s->waiting, 0, sizeof s->waiting);
		struct req *r;
		while ((r = req_list_pop(&l))) {
			r->parked = false;
			if (s->fatal) {
				srv_req_done(s, r);
				continue;
			}
			route_process(s, r);
		}
		copy_flush(s);
		commit_step(s);
	}
}

/* ---- signals, timer ----------------------------------------------------- */

static int setup_signals(struct srv *s)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sigfd < 0)
		return err_set(errno, "signalfd: %s", strerror(errno));
	return 0;
}

/* Returns true if a stop was requested.  */
static bool read_signals(struct srv *s)
{
	struct signalfd_siginfo si;
	bool stop = false;
	while (read(s->sigfd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_info("signal %u: orderly shutdown", si.ssi_signo);
			stop = true;
		}
	}
	return stop;
}

/* ---- standby ------------------------------------------------------------ */

static int load_superblock(struct srv *s)
{
	struct io_dev *dev;
	struct csnap_sb sb;
	int r = csnap_sb_read_path(s->o.store_path, &sb);
	if (r < 0)
		return r;	/* the message names the path */
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
	for (;;) {
		r = lease_master_acquire(&s->lm);
		if (r == 0)
			return 1;
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
		struct epoll_event ev;
		int n = epoll_wait(s->epfd, &ev, 1, s->o.standby_retry_ms > 0 ? s->o.standby_retry_ms : 50);
		if (n > 0 && ev.data.ptr == &tag_signal && read_signals(s))
			return 0;
		if (lease_fenced())
			return err_set(ENOLCK, "fenced while standby");
	}
}

/* ---- master ------------------------------------------------------------- */

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
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_io };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->iofd, &ev) < 0)
		return err_set(errno, "epoll_ctl: %s", strerror(errno));
	return 0;
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
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_listen };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) < 0)
		return err_set(errno, "epoll_ctl: %s", strerror(errno));
	s->listen_tag = &tag_listen;
	conn_listen_init(s);
	return 0;
}

static void stop_listening(struct srv *s)
{
	if (s->lfd >= 0) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL);
		close(s->lfd);
		s->lfd = -1;
		conn_listen_done(s);
	}
}

/* End of the lock re-upload window after a takeover (checked every loop
 * turn: origin writes wait for it).  */
static void grace_check(struct srv *s)
{
	if (s->grace_until_ms && csnap_now_ms() >= s->grace_until_ms) {
		log_info("lock re-upload window over: serving origin writes");
		s->grace_until_ms = 0;
		srv_kick(s);
	}
}

/* A snapshot create deferred until the grant horizon: retry it then.  */
static void deferred_create_check(struct srv *s)
{
	if (s->create_deferred && csnap_now_ms() >= s->grant_horizon_ms) {
		s->create_deferred = false;
		srv_kick(s);
	}
}

/* epoll timeout: the tick, or sooner if the re-upload window ends or a
 * snapshot waits only for grants to expire.  */
static int loop_timeout(const struct srv *s)
{
	int64_t due = 0;

	if (s->grace_until_ms)
		due = s->grace_until_ms;
	if (((s->barrier_active && !s->barrier_pending) || s->create_deferred) &&
	    s->grant_horizon_ms && (!due || s->grant_horizon_ms < due))
		due = s->grant_horizon_ms;
	if (!due)
		return TICK_MS;
	int64_t left = due - csnap_now_ms();
	return left <= 0 ? 0 : left < TICK_MS ? (int)left : TICK_MS;
}

/* Between transactions, write committed metadata home and empty the
 * journal, so a master that dies replays only what it committed since
 * the last tick: takeover time stays short (a journal of a few thousand
 * transactions took ~0.6 s to replay).  Like a commit, only while the
 * lease certainly holds.  */
static void checkpoint_step(struct srv *s)
{
	if (s->commits == s->ckpt_commits || s->fatal || s->stopping || copy_pending(s) ||
	    store_txn_pending(s->st) || s->busy.used || s->after_commit.n)
		return;
	if (lease_ok(s) < 0)
		return;
	int r = store_checkpoint(s->st);
	if (r < 0) {
		srv_fatal(s, r, err_get());
		return;
	}
	s->ckpt_commits = s->commits;
}

static void tick(struct srv *s, unsigned n)
{
	uint64_t exp;
	while (read(s->timerfd, &exp, sizeof exp) == sizeof exp)
		;
	if (n % 4 == 0 && !s->fatal) {
		int r = lease_check(s);
		if (r < 0)
			srv_fatal(s, r, err_get());
		else
			log_debug("master lease valid for %lld ms more",
				  (long long)((s->lm.valid_until_ns - (int64_t)csnap_now_ms() * 1000000) / 1000000));
	}
	grace_check(s);
	/* Replies held back while the lease renewal was late.  */
	if (s->grant_held && lease_may_commit(&s->lm) == 0) {
		s->grant_held = false;
		srv_kick(s);
	}
	checkpoint_step(s);
	srv_ghost_tick(s);
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
		struct epoll_event ev;
		if (epoll_wait(s->epfd, &ev, 1, 250) > 0 && ev.data.ptr == &tag_signal && read_signals(s))
			return err_set(EINTR, "stopped while waiting to publish");
	}
}

static bool drained(struct srv *s, int64_t deadline)
{
	if (csnap_now_ms() >= deadline + 10000)
		return true;	/* the lease never came back: give up */
	if (copy_pending(s) || store_txn_pending(s->st) || s->after_commit.n)
		return false;
	if (!s->waiting.n)
		return true;
	return csnap_now_ms() >= deadline;
}

static int serve(struct srv *s)
{
	struct epoll_event evs[64];
	unsigned ticks = 0;
	int64_t drain_deadline = 0;

	while (!s->fatal) {
		if (s->stopping && drained(s, drain_deadline))
			break;
		int n = epoll_wait(s->epfd, evs, 64, loop_timeout(s));
		if (n < 0 && errno != EINTR)
			return err_set(errno, "epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n && !s->fatal; i++) {
			void *p = evs[i].data.ptr;
			if (p == &tag_listen) {
				conn_accept(s);
			} else if (p == &tag_signal) {
				if (read_signals(s) && !s->stopping) {
					s->stopping = true;
					drain_deadline = csnap_now_ms() + s->o.drain_timeout_ms;
					stop_listening(s);
				}
			} else if (p == &tag_timer) {
				tick(s, ++ticks);
			} else if (p == &tag_io) {
				copy_reap(s);
			} else if (p == &tag_hb) {
				hb_event();
			} else {
				conn_on_event(p, evs[i].events);
			}
		}
		if (lease_fenced())
			srv_fatal(s, -ENOLCK, "sanlock asked this master to stop (fenced)");
		if (s->fatal)
			break;
		grace_check(s);
		deferred_create_check(s);
		copy_flush(s);
		commit_step(s);
		admin_poll(s);
		reprocess(s);
		copy_flush(s);
		conn_flush_all(s);
	}
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
	if (s->barrier_req) {
		srv_req_done(s, s->barrier_req);
		s->barrier_req = NULL;
	}
	if (s->added_req) {
		srv_req_done(s, s->added_req);
		s->added_req = NULL;
	}
	srv_ghost_tick(s);	/* stopping: frees them all */
}

int server_run(const struct server_opts *o)
{
	struct srv *s = calloc(1, sizeof *s);
	int r, ret;

	if (!s)
		return err_set(ENOMEM, "out of memory");
	s->o = *o;
	s->lfd = s->sigfd = s->timerfd = s->iofd = -1;
	s->lm.sock = -1;
	s->fdres.spare = -1;
	chunkset_init(&s->locks);
	chunkset_init(&s->busy);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		free(s);
		return err_set(errno, "epoll_create1: %s", strerror(errno));
	}
	if ((r = setup_signals(s)) < 0)
		goto out;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_signal };
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev);
	hb_init(s->epfd, &tag_hb);

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
		s->grant_horizon_ms = s->takeover_grants_ms = csnap_now_ms() + PROTO_GRANT_WAIT_MS;
	if ((r = lease_master_check(&s->lm)) < 0)
		goto out_master;
	log_info("master lease acquired (lver %llu, host %u generation %llu): opening the store",
		 (unsigned long long)s->lm.lver, s->o.host_id, (unsigned long long)s->lm.generation);

	if ((r = open_store(s)) < 0)
		goto out_master;
	if ((r = start_listening(s)) < 0)
		goto out_master;
	s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = { .it_interval = { 0, TICK_MS * 1000000L }, .it_value = { 0, TICK_MS * 1000000L } };
	timerfd_settime(s->timerfd, 0, &its, NULL);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &tag_timer };
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->timerfd, &ev);

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
	log_info("served %llu requests; %llu chunks copied out in %llu reads; %llu commits",
		 (unsigned long long)s->stat_queries, (unsigned long long)s->stat_copyouts,
		 (unsigned long long)s->stat_copy_jobs, (unsigned long long)s->stat_commits);
	if (s->fatal) {
		/* No writes at all: the lease may belong to someone else now. */
		close_all_conns(s);
		goto out_master;
	}
	/* Orderly: commit what is done, stop, hand over.  */
	stop_listening(s);
	copy_flush(s);
	while (s->jobs_inflight)
		if (io_engine_reap(s->eng, 1000) < 0)
			break;
	if (!s->copy_failed)
		srv_commit_now(s);
	conn_flush_all(s);
	close_all_conns(s);
	if (!s->fatal) {
		store_close(s->st);
		s->st = NULL;
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
		store_close(s->st);
	else if (s->st)
		fenced_store = s->st;	/* deliberately not freed: see above */
	if (s->eng)
		io_engine_destroy(s->eng);
	if (s->odev)
		io_dev_close(s->odev);
	lease_master_close(&s->lm);
out:
	stop_listening(s);
	if (s->timerfd >= 0)
		close(s->timerfd);
	if (s->sigfd >= 0)
		close(s->sigfd);
	close(s->epfd);
	chunkset_free(&s->locks);
	chunkset_free(&s->busy);
	free(s->copyq);
	free(s);
	return r < 0 ? r : 0;
}
