/*
 * src/export/session.c - connection to the master for one volume: find,
 * connect, identify (helper thread), then non-blocking requests with
 * re-send after a master change.  See session.h.
 *
 * States: IDLE -> CONNECTING (thread running) -> UP -> (error) -> IDLE
 * with a retry timer (at once after a loss, then 20 ms doubling to 250 ms).  The thread touches
 * only its own result fields until it signals the eventfd; the loop joins
 * it before reading them.
 */
#include "src/export/session.h"

#include "src/locate/locate.h"
#include "src/export/loop.h"
#include "src/proto/client.h"
#include "utils/clock.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* After losing the master the first look is immediate; then the new one
 * is looked for every 20 ms for about a second, then doubling to 250 ms:
 * a hand-over takes 0.1-0.5 s, and each look is cheap (one agent question or one record read).
 * Reads whose locks are re-uploaded after the master's grace period are
 * restarted if needed, so the retry period is about latency only.  */
#define BACKOFF_MIN_MS	20
#define BACKOFF_MAX_MS	250
#define BACKOFF_FAST_LOOKS	50	/* ~1-2 s of looks every 20 ms */

enum sess_state { SESS_IDLE, SESS_CONNECTING, SESS_UP, SESS_REFUSED };

struct session {
	struct evloop *lp;
	const struct master_target *tgt;
	uint8_t volume;
	char snapshot[PROTO_NAME_MAX + 1];
	const struct session_ops *ops;
	void *arg;
	char what[PROTO_NAME_MAX + 16];		/* for messages */

	enum sess_state state;
	struct proto_client *pc;
	struct evloop_watch watch;
	struct evloop_timer retry;
	unsigned backoff_ms;
	unsigned looks;			/* failed looks since the last loss */
	bool want_up;			/* session_start() without session_stop() */
	bool lost;			/* the last connection broke (not stopped) */
	bool passive;			/* identify with PROTO_F_PASSIVE from now on */
	bool conn_passive;		/* the connection (being) made did */
	uint64_t generation;

	/* connector thread */
	pthread_t thread;
	bool thread_live;
	int efd;
	struct evloop_watch efd_watch;
	int res_err;			/* 0, or -errno */
	bool res_refused;		/* identify failed: do not retry */
	char res_why[256];
	char last_why[256];		/* last reason logged */
	struct proto_client *res_pc;
	struct proto_identify_ok res_ok;
	char res_where[128];

	struct sreq *inflight, **inflight_tail;	/* sent on this connection */
	struct sreq *queued, **queued_tail;	/* waiting for a connection */
	unsigned npending;
};

static void sess_io(void *arg, uint32_t events);

/* ---- connector thread ------------------------------------------------- */

static void tune_socket(int fd)
{
	int one = 1, idle = 5, intvl = 2, cnt = 3;
	unsigned timeout_ms = 15000;

	/* A master host that vanishes without a reset must be noticed in
	 * seconds, not after TCP's default of hours.  */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void *connect_thread(void *arg)
{
	struct session *s = arg;
	const struct master_target *t = s->tgt;
	char address[LEASE_ADDR_LEN];
	const char *from = NULL;
	uint16_t port;
	int rc;

	if (t->fixed_address[0]) {
		snprintf(address, sizeof address, "%s", t->fixed_address);
		port = t->fixed_port;
	} else {
		struct lease_master_info mi;

		rc = locate_where(&t->area, &t->uuid, t->agent_socket, &mi, &from);
		if (rc < 0) {
			s->res_err = rc;
			snprintf(s->res_why, sizeof s->res_why, "finding the master: %s", err_get());
			goto out;
		}
		if (mi.state != LEASE_MASTER_VALID) {
			s->res_err = -EAGAIN;
			snprintf(s->res_why, sizeof s->res_why, "no master yet (%s, %s: %s)", from,
				 lease_master_state_name(mi.state), mi.why);
			goto out;
		}
		snprintf(address, sizeof address, "%s", mi.address);
		port = mi.port;
	}
	snprintf(s->res_where, sizeof s->res_where, "%s:%u%s%s%s", address, port,
		 from ? " (" : "", from ? from : "", from ? ")" : "");
	rc = proto_client_connect(address, port, &t->uuid, t->secret, t->connect_timeout_ms,
				  &s->res_pc);
	if (rc < 0) {
		s->res_err = rc;
		snprintf(s->res_why, sizeof s->res_why, "connect to master %s: %s",
			 s->res_where, err_get());
		goto out;
	}
	tune_socket(proto_client_fd(s->res_pc));
	rc = proto_client_identify(s->res_pc, s->volume,
				   s->volume == PROTO_VOL_SNAPSHOT ? s->snapshot : NULL,
				   t->host_id, t->client_name,
				   (s->lost ? PROTO_F_RECONNECT : 0) |
				   (s->conn_passive ? PROTO_F_PASSIVE : 0) |
				   /* volume_origin.c asks before reads while a
				    * rollback runs */
				   (s->volume == PROTO_VOL_ORIGIN ? PROTO_F_ROLLBACK_OK : 0), &s->res_ok);
	if (rc < 0) {
		s->res_err = rc;
		/* A reply that refuses (ENOENT: no such snapshot) is final;
		 * a broken connection is not.  */
		s->res_refused = rc != -ECONNRESET && rc != -ETIMEDOUT && rc != -EPIPE &&
				 rc != -EPROTO && rc != -EIO && rc != -EAGAIN;
		snprintf(s->res_why, sizeof s->res_why, "identify at %s: %s", s->res_where,
			 err_get());
		proto_client_close(s->res_pc);
		s->res_pc = NULL;
	}
out:
	{
		uint64_t one = 1;

		if (write(s->efd, &one, sizeof one) < 0)
			log_error("session: eventfd: %s", strerror(errno));
	}
	return NULL;
}

static void start_connect(struct session *s)
{
	int rc;

	if (s->state != SESS_IDLE)
		return;
	s->res_err = 0;
	s->res_refused = false;
	s->res_why[0] = 0;
	s->res_pc = NULL;
	s->conn_passive = s->passive;	/* read by the thread */
	rc = pthread_create(&s->thread, NULL, connect_thread, s);
	if (rc) {
		log_error("%s: cannot start connector thread: %s", s->what, strerror(rc));
		evloop_timer_arm(s->lp, &s->retry, BACKOFF_MAX_MS);
		return;
	}
	s->thread_live = true;
	s->state = SESS_CONNECTING;
}

static void retry_fn(void *arg)
{
	start_connect(arg);
}

static void schedule_retry(struct session *s)
{
	s->state = SESS_IDLE;
	if (!s->want_up && !s->npending)
		return;
	evloop_timer_arm(s->lp, &s->retry, s->backoff_ms);
	/* Every BACKOFF_MIN_MS for the first looks (a hand-over is due any
	 * moment), then slower.  */
	if (++s->looks >= BACKOFF_FAST_LOOKS)
		s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
								   : s->backoff_ms * 2;
}

/* ---- sending ---------------------------------------------------------- */

static void append(struct sreq ***tail, struct sreq *rq)
{
	rq->next = NULL;
	**tail = rq;
	*tail = &rq->next;
}

static void free_oneway(struct sreq *rq)
{
	free(rq->msg.u.ranges.r);
	free(rq);
}

static void sess_fail(struct session *s, const char *why);

static void update_events(struct session *s)
{
	uint32_t ev = EPOLLIN;

	if (s->state != SESS_UP)
		return;
	if (proto_client_want_write(s->pc))
		ev |= EPOLLOUT;
	evloop_watch_mod(s->lp, &s->watch, ev);
}

static int put_on_wire(struct session *s, struct sreq *rq)
{
	int rc;

	/* Before the bytes leave: a grant counted from here ends no later
	 * than the master believes (proto.h).  */
	rq->sent_ns = csnap_boot_ns();
	rc = proto_client_send(s->pc, &rq->msg);

	if (rc < 0)
		return rc;
	append(&s->inflight_tail, rq);
	return 0;
}

static void enqueue(struct session *s, struct sreq *rq)
{
	s->npending++;
	if (s->state == SESS_REFUSED) {
		s->npending--;
		rq->done(rq, NULL, -EIO);
		return;
	}
	if (s->state != SESS_UP) {
		append(&s->queued_tail, rq);
		if (s->state == SESS_IDLE && !s->retry.armed)
			start_connect(s);	/* connect on demand */
		return;
	}
	if (put_on_wire(s, rq) < 0) {
		char why[256];

		snprintf(why, sizeof why, "%s", err_get());
		if (rq->oneway) {
			/* Meant for this connection only.  */
			s->npending--;
			rq->done(rq, NULL, -ECONNRESET);
		} else {
			append(&s->queued_tail, rq);
		}
		sess_fail(s, why);
		return;
	}
	update_events(s);
}

void session_send_once(struct session *s, struct sreq *rq)
{
	if (s->state != SESS_UP) {
		rq->done(rq, NULL, -ENOTCONN);
		return;
	}
	rq->oneway = true;
	enqueue(s, rq);
}

void session_send(struct session *s, struct sreq *rq)
{
	rq->oneway = false;
	enqueue(s, rq);
}

static void oneway_done(struct sreq *rq, const struct proto_msg *reply, int err)
{
	(void)reply; (void)err;
	free_oneway(rq);
}

void session_send_oneway(struct session *s, const struct proto_msg *m)
{
	struct sreq *rq;

	if (s->state != SESS_UP)
		return;		/* the new master never knew of it */
	rq = calloc(1, sizeof *rq);
	if (!rq)
		return;
	rq->msg = *m;
	if (m->u.ranges.n) {
		rq->msg.u.ranges.r = malloc(m->u.ranges.n * sizeof *m->u.ranges.r);
		if (!rq->msg.u.ranges.r) {
			free(rq);
			return;
		}
		memcpy(rq->msg.u.ranges.r, m->u.ranges.r, m->u.ranges.n * sizeof *m->u.ranges.r);
	}
	rq->oneway = true;
	rq->done = oneway_done;
	enqueue(s, rq);
}

void session_reply(struct session *s, const struct proto_msg *m)
{
	if (s->state != SESS_UP)
		return;
	if (proto_client_reply(s->pc, m) < 0) {
		sess_fail(s, err_get());
		return;
	}
	update_events(s);
}

/* ---- connection life -------------------------------------------------- */

static void sess_fail(struct session *s, const char *why)
{
	struct sreq *keep = NULL, **keep_tail = &keep;

	if (s->state != SESS_UP)
		return;
	log_warn("%s: lost the master: %s; reconnecting", s->what, why);
	evloop_watch_del(s->lp, &s->watch);
	proto_client_close(s->pc);
	s->pc = NULL;
	s->state = SESS_IDLE;
	/* Unanswered requests go back in front of the queue, in order;
	 * one-way ones are dropped.  */
	while (s->inflight) {
		struct sreq *rq = s->inflight;

		s->inflight = rq->next;
		if (rq->oneway) {
			s->npending--;
			rq->done(rq, NULL, -ECONNRESET);
		} else {
			append(&keep_tail, rq);
		}
	}
	s->inflight_tail = &s->inflight;
	if (keep) {
		*keep_tail = s->queued;
		if (!s->queued)
			s->queued_tail = keep_tail;
		s->queued = keep;
	}
	s->lost = true;
	s->ops->disconnected(s->arg);
	s->backoff_ms = BACKOFF_MIN_MS;
	s->looks = 0;
	/* Look for the new master at once (the connector thread).  */
	if (s->want_up || s->npending)
		start_connect(s);
	else
		s->state = SESS_IDLE;
}

static void connected(struct session *s)
{
	struct proto_identify_ok ok = s->res_ok;
	bool again = s->lost;
	int rc;

	s->pc = s->res_pc;
	s->res_pc = NULL;
	rc = evloop_watch_add(s->lp, &s->watch, proto_client_fd(s->pc), EPOLLIN, sess_io, s);
	if (rc < 0) {
		log_error("%s: %s", s->what, err_get());
		proto_client_close(s->pc);
		s->pc = NULL;
		schedule_retry(s);
		return;
	}
	s->state = SESS_UP;
	s->lost = false;
	s->last_why[0] = 0;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->looks = 0;
	if (again && ok.generation != s->generation)
		log_info("%s: new master at %s (generation %llu)", s->what, s->res_where,
			 (unsigned long long)ok.generation);
	else
		log_info("%s: connected to master at %s", s->what, s->res_where);
	s->generation = ok.generation;
	s->ops->connected(s->arg, &ok, again);
	if (s->state != SESS_UP)
		return;
	if (again && s->queued) {
		unsigned n = 0;

		for (struct sreq *rq = s->queued; rq; rq = rq->next)
			n++;
		log_info("%s: re-sending %u unanswered requests", s->what, n);
	}
	while (s->queued) {
		struct sreq *rq = s->queued;

		s->queued = rq->next;
		if (!s->queued)
			s->queued_tail = &s->queued;
		if (put_on_wire(s, rq) < 0) {
			rq->next = s->queued;
			s->queued = rq;
			if (!rq->next)
				s->queued_tail = &rq->next;
			sess_fail(s, err_get());
			return;
		}
	}
	update_events(s);
}

static void fail_list(struct session *s, struct sreq *list, int err)
{
	while (list) {
		struct sreq *rq = list;

		list = rq->next;
		s->npending--;
		rq->done(rq, NULL, err);
	}
}

static void thread_done(void *arg, uint32_t events)
{
	struct session *s = arg;
	uint64_t v;

	(void)events;
	if (read(s->efd, &v, sizeof v) < 0 || !s->thread_live)
		return;
	pthread_join(s->thread, NULL);
	s->thread_live = false;
	if (!s->want_up && !s->npending) {
		/* Stopped while connecting.  */
		if (s->res_pc)
			proto_client_close(s->res_pc);
		s->res_pc = NULL;
		s->state = SESS_IDLE;
		return;
	}
	if (s->res_err == 0) {
		connected(s);
		return;
	}
	if (s->res_refused) {
		struct sreq *list = s->queued;

		log_error("%s: %s", s->what, s->res_why);
		s->state = SESS_REFUSED;
		s->queued = NULL;
		s->queued_tail = &s->queued;
		s->ops->refused(s->arg, s->res_err, s->res_why);
		fail_list(s, list, -EIO);
		return;
	}
	/* Say why once per reason, not once per retry.  */
	if (strcmp(s->last_why, s->res_why)) {
		log_info("%s: %s", s->what, s->res_why);
		snprintf(s->last_why, sizeof s->last_why, "%s", s->res_why);
	} else {
		log_debug("%s: %s", s->what, s->res_why);
	}
	schedule_retry(s);
}

static struct sreq *take_inflight(struct session *s, uint64_t id)
{
	for (struct sreq **p = &s->inflight; *p; p = &(*p)->next) {
		struct sreq *rq = *p;

		if (rq->msg.id == id) {
			*p = rq->next;
			if (!*p)
				s->inflight_tail = p;
			return rq;
		}
	}
	return NULL;
}

static void sess_io(void *arg, uint32_t events)
{
	struct session *s = arg;
	int rc;

	if (events & EPOLLOUT) {
		rc = proto_client_flush(s->pc, false);
		if (rc < 0 && rc != -EAGAIN) {
			sess_fail(s, err_get());
			return;
		}
	}
	while (s->state == SESS_UP) {
		struct proto_msg m;

		rc = proto_client_recv(s->pc, &m, false);
		if (rc == 0)
			break;
		if (rc < 0) {
			sess_fail(s, err_get());
			return;
		}
		if (m.type & PROTO_REPLY) {
			struct sreq *rq = take_inflight(s, m.id);

			if (!rq) {
				proto_msg_free(&m);
				sess_fail(s, "reply to a request never sent");
				return;
			}
			s->npending--;
			rq->done(rq, &m, 0);
		} else {
			s->ops->server_request(s->arg, &m);
		}
		proto_msg_free(&m);
	}
	update_events(s);
}

/* ---- lifetime --------------------------------------------------------- */

int session_create(struct evloop *lp, const struct master_target *tgt, uint8_t volume,
		   const char *snapshot, const struct session_ops *ops, void *arg,
		   struct session **out)
{
	struct session *s = calloc(1, sizeof *s);
	int rc;

	if (!s)
		return err_set(ENOMEM, "out of memory");
	s->lp = lp;
	s->tgt = tgt;
	s->volume = volume;
	if (snapshot)
		snprintf(s->snapshot, sizeof s->snapshot, "%s", snapshot);
	snprintf(s->what, sizeof s->what, "%s%s", volume == PROTO_VOL_SNAPSHOT ? "snapshot " :
		 volume == PROTO_VOL_ORIGIN ? "origin" : "admin",
		 volume == PROTO_VOL_SNAPSHOT ? s->snapshot : "");
	s->ops = ops;
	s->arg = arg;
	s->inflight_tail = &s->inflight;
	s->queued_tail = &s->queued;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->retry.fn = retry_fn;
	s->retry.arg = s;
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		rc = err_set(errno, "eventfd: %s", strerror(errno));
		free(s);
		return rc;
	}
	rc = evloop_watch_add(lp, &s->efd_watch, s->efd, EPOLLIN, thread_done, s);
	if (rc < 0) {
		close(s->efd);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void session_start(struct session *s)
{
	s->want_up = true;
	start_connect(s);
}

void session_set_passive(struct session *s, bool passive) { s->passive = passive; }

bool session_is_passive(const struct session *s)
{
	return s->conn_passive && (s->state == SESS_UP || s->state == SESS_CONNECTING);
}

void session_stop(struct session *s)
{
	s->want_up = false;
	if (s->npending)
		return;		/* stays up until they are answered */
	evloop_timer_cancel(s->lp, &s->retry);
	if (s->state == SESS_UP) {
		log_debug("%s: idle, disconnecting from the master", s->what);
		evloop_watch_del(s->lp, &s->watch);
		proto_client_close(s->pc);
		s->pc = NULL;
		s->state = SESS_IDLE;
	}
}

void session_destroy(struct session *s)
{
	struct sreq *a, *b;

	if (!s)
		return;
	if (s->thread_live) {
		pthread_join(s->thread, NULL);
		if (s->res_pc)
			proto_client_close(s->res_pc);
	}
	evloop_timer_cancel(s->lp, &s->retry);
	evloop_watch_del(s->lp, &s->efd_watch);
	close(s->efd);
	if (s->pc) {
		evloop_watch_del(s->lp, &s->watch);
		proto_client_close(s->pc);
	}
	a = s->inflight;
	b = s->queued;
	s->inflight = s->queued = NULL;
	s->state = SESS_REFUSED;
	fail_list(s, a, -ESHUTDOWN);
	fail_list(s, b, -ESHUTDOWN);
	free(s);
}

bool session_up(const struct session *s)
{
	return s->state == SESS_UP;
}

unsigned session_pending(const struct session *s)
{
	return s->npending;
}

uint64_t session_generation(const struct session *s)
{
	return s->generation;
}
