/*
 * ioengine/aio.h - the asynchronous engine's internals, shared by aio.c
 * (queueing, libaio submission, reaping) and flush.c (flush ordering and
 * the fdatasync worker).  Not a public interface.
 */
#ifndef CSNAP_IOENGINE_AIO_H
#define CSNAP_IOENGINE_AIO_H

#include "ioengine/internal.h"
#include "utils/freelist.h"
#include "utils/log.h"

#include <libaio.h>

enum io_req_type { IO_REQ_READ, IO_REQ_WRITE, IO_REQ_FLUSH };

enum io_req_state {
	IO_REQ_NEW,
	IO_REQ_QUEUED,		/* in eng->queue, waiting for a kernel slot */
	IO_REQ_INFLIGHT,	/* submitted to the kernel */
	IO_REQ_FLUSH_WAIT,	/* flush: writes queued before it still pending */
	IO_REQ_FLUSH_RUN,	/* flush: handed to the worker */
	IO_REQ_DONE,		/* result known, callback not yet run */
};

struct io_req {
	struct iocb iocb;
	struct io_engine *eng;
	struct io_dev *dev;
	enum io_req_type type;
	enum io_req_state state;
	char *buf;
	size_t len;
	uint64_t off;
	size_t done;		/* bytes already transferred */
	ssize_t result;
	io_done_fn fn;
	void *arg;
	io_gate_fn gate;	/* may it still go?  Asked right before
				 * each io_submit of it */
	void *gate_arg;
	uint64_t seq;		/* queue order */
	int64_t t0;		/* flush: its fdatasync started (write log) */
	uint64_t wseq;		/* write: its WRITE record (write log), once issued */
	unsigned writes_ahead;	/* flush: pending writes to dev queued before */
	bool counted;		/* write: went to the kernel queue (a flush may wait) */
	bool fault, submit_err, eof, gated;	/* how it failed, for the message */
	struct io_req *prev, *next;	/* eng->all */
	struct io_req *qnext;		/* queue, done, flush-wait or worker list */
};

struct io_list {
	struct io_req *head, *tail;
};

struct io_engine {
	io_context_t ctx;
	int efd;
	unsigned depth;
	unsigned batch;		/* max iocbs per io_submit */
	unsigned nevents;
	unsigned inflight;	/* in the kernel */
	unsigned nqueued;	/* queued since the last pump */
	unsigned npending;	/* length of all */
	uint64_t seq;
	struct iocb **iocbs;
	struct io_event *events;

	struct io_req *all_head, *all_tail;	/* every pending request */
	struct io_list queue;			/* waiting for submission */
	struct io_list done;			/* finished outside the kernel */
	struct io_list flush_wait;		/* flushes waiting on writes */
	unsigned nflush_wait;
	bool reaping;				/* inside io_engine_reap */
	/* io_engine_submit_unlocked(): around io_submit, during that call */
	void (*sys_unlock)(void *arg);
	void (*sys_lock)(void *arg);
	void *sys_arg;
	struct freelist free;			/* recycled requests */

	/* flush worker: wq and wdone are guarded by lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t worker;
	bool worker_started, worker_stop;
	unsigned flush_running;	/* handed to the worker, not yet collected */
	struct io_list wq, wdone;
};

/* Test hook (internal.h explains the pattern): when nonzero, every kernel
 * submission moves at most this many bytes, so the engine's continuation
 * of short transfers is exercised.  */
extern size_t io_test_async_max_io;

void io_list_push(struct io_list *l, struct io_req *req);
void io_engine_kick(struct io_engine *eng);
void io_engine_pump(struct io_engine *eng);
void io_req_finish_later(struct io_engine *eng, struct io_req *req, ssize_t result);

/* flush.c */
void io_flush_queued(struct io_engine *eng, struct io_req *flush);
void io_flush_write_done(struct io_engine *eng, struct io_req *write);
void io_flush_worker_collect(struct io_engine *eng, struct io_list *out);
void io_flush_worker_stop(struct io_engine *eng);

#endif
