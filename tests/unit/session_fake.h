/*
 * tests/unit/session_fake.h - a link-level replacement of
 * src/export/session.c for the export's volume tests
 * (tests/unit/test_export_*.c): a test that includes it defines every
 * session_* function, so session.o is not linked.
 *
 * The fake records what the volume sends (log[]) and keeps every request
 * waiting for an answer in q[], oldest first; the test plays the master:
 * take() a request and answer it (answer_ok, answer_status, or its own),
 * fake_disconnect() breaks the connection (one-connection requests fail,
 * then ops->disconnected(), as session.c does) and fake_connect() makes a
 * new one (ops->connected(), then the unanswered requests count as
 * re-sent).  Replies to the master's requests (session_reply) are logged
 * as REPLIED.  PINGs are answered at once and not logged.  Only one
 * session exists at a time (the_sess).
 */
#ifndef CSNAP_TESTS_SESSION_FAKE_H
#define CSNAP_TESTS_SESSION_FAKE_H

#include "src/export/session.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdlib.h>

#define LOG_MAX 64

enum how { SENT, ONCE, ONEWAY, RESENT, REPLIED };

struct logent {
	uint16_t type;
	enum how how;
	uint64_t start;			/* first range */
	uint32_t count, n;
};

struct session {
	const struct session_ops *ops;
	void *arg;
	bool up, passive;
	struct sreq *q;			/* sent or waiting, oldest first */
	struct logent log[LOG_MAX];
	unsigned nlog;
};

static struct session *the_sess;

static inline void log_msg(struct session *s, const struct proto_msg *m, enum how how)
{
	struct logent *e;

	if ((m->type & ~PROTO_REPLY) == PROTO_PING)
		return;
	assert_true(s->nlog < LOG_MAX);
	e = &s->log[s->nlog++];
	e->type = m->type;
	e->how = how;
	e->n = m->u.ranges.n;
	e->start = e->n ? m->u.ranges.r[0].start : 0;
	e->count = e->n ? m->u.ranges.r[0].count : 0;
}

static inline void enqueue(struct session *s, struct sreq *rq)
{
	struct sreq **p = &s->q;

	while (*p)
		p = &(*p)->next;
	rq->next = NULL;
	*p = rq;
}

int session_create(struct evloop *lp, const struct master_target *tgt, uint8_t volume,
		   const char *snapshot, const struct session_ops *ops, void *arg,
		   struct session **out)
{
	struct session *s = calloc(1, sizeof *s);

	(void)lp;
	(void)tgt;
	(void)volume;
	(void)snapshot;
	if (!s)
		return -ENOMEM;
	s->ops = ops;
	s->arg = arg;
	the_sess = s;
	*out = s;
	return 0;
}

void session_destroy(struct session *s)
{
	if (!s)
		return;
	while (s->q) {
		struct sreq *rq = s->q;

		s->q = rq->next;
		rq->done(rq, NULL, -ESHUTDOWN);
	}
	if (the_sess == s)
		the_sess = NULL;
	free(s);
}

void session_start(struct session *s) { (void)s; }
void session_stop(struct session *s) { (void)s; }
void session_set_passive(struct session *s, bool passive) { s->passive = passive; }
bool session_is_passive(const struct session *s) { return s->passive; }
bool session_up(const struct session *s) { return s->up; }
uint64_t session_generation(const struct session *s) { (void)s; return 1; }

unsigned session_pending(const struct session *s)
{
	unsigned n = 0;

	for (const struct sreq *rq = s->q; rq; rq = rq->next)
		n++;
	return n;
}

void session_send(struct session *s, struct sreq *rq)
{
	rq->oneway = false;
	rq->sent_ns = csnap_boot_ns();
	log_msg(s, &rq->msg, SENT);
	enqueue(s, rq);
}

void session_send_once(struct session *s, struct sreq *rq)
{
	if (!s->up) {
		rq->done(rq, NULL, -ENOTCONN);
		return;
	}
	rq->oneway = true;	/* here: "belongs to this connection" */
	rq->sent_ns = csnap_boot_ns();
	if (rq->msg.type == PROTO_PING) {
		struct proto_msg r;

		proto_msg_init(&r, PROTO_PING | PROTO_REPLY, 0);
		rq->done(rq, &r, 0);
		return;
	}
	log_msg(s, &rq->msg, ONCE);
	enqueue(s, rq);
}

void session_send_oneway(struct session *s, const struct proto_msg *m)
{
	log_msg(s, m, ONEWAY);
}

void session_reply(struct session *s, const struct proto_msg *m)
{
	if (s->up)
		log_msg(s, m, REPLIED);
}

/* ---- master side, played by the tests ---------------------------------- */

/* Connects (again): ops->connected() first, then the unanswered requests
 * are re-sent in order, as session.c does.  */
static inline void fake_connect(struct session *s, const struct proto_identify_ok *ident, bool again)
{
	s->up = true;
	s->ops->connected(s->arg, ident, again);
	for (struct sreq *rq = s->q; rq; rq = rq->next)
		if (!rq->oneway && again) {
			rq->sent_ns = csnap_boot_ns();
			log_msg(s, &rq->msg, RESENT);
		}
}

/* The connection breaks: its one-connection requests fail, then
 * ops->disconnected(), as session.c does.  */
static inline void fake_disconnect(struct session *s)
{
	struct sreq **p = &s->q;

	s->up = false;
	while (*p) {
		struct sreq *rq = *p;

		if (rq->oneway) {
			*p = rq->next;
			rq->done(rq, NULL, -ECONNRESET);
		} else {
			p = &rq->next;
		}
	}
	s->ops->disconnected(s->arg);
}

/* The oldest request of TYPE waiting for an answer, taken off the queue. */
static inline struct sreq *take(struct session *s, uint16_t type)
{
	for (struct sreq **p = &s->q; *p; p = &(*p)->next)
		if ((*p)->msg.type == type) {
			struct sreq *rq = *p;

			*p = rq->next;
			return rq;
		}
	return NULL;
}

static inline bool waiting(struct session *s, uint16_t type)
{
	for (struct sreq *rq = s->q; rq; rq = rq->next)
		if (rq->msg.type == type)
			return true;
	return false;
}

static inline void answer_ok(struct sreq *rq)
{
	struct proto_msg r;

	proto_msg_init(&r, rq->msg.type | PROTO_REPLY, 0);
	rq->done(rq, &r, 0);
}

static inline void answer_status(struct sreq *rq, uint32_t status, const char *why)
{
	struct proto_msg r;

	proto_msg_error(&r, &rq->msg, status, why);
	rq->done(rq, &r, 0);
}

static inline unsigned count_log(const struct session *s, uint16_t type, enum how how)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->nlog; i++)
		if (s->log[i].type == type && s->log[i].how == how)
			n++;
	return n;
}

/* Index of the first log entry of TYPE/HOW at or after FROM, or -1. */
static inline int find_log(const struct session *s, unsigned from, uint16_t type, enum how how)
{
	for (unsigned i = from; i < s->nlog; i++)
		if (s->log[i].type == type && s->log[i].how == how)
			return (int)i;
	return -1;
}

#endif
