/*
 * ioengine/aio.c - the asynchronous engine: reads and writes through
 * libaio, completions signalled on an eventfd, callbacks run by
 * io_engine_reap(); flushes through a small worker thread (flush.c).
 *
 * Life of a request: queued (FIFO) -> in flight in the kernel (at most
 * `depth`) -> complete -> callback.  Requests are submitted in batches by
 * io_engine_submit(), when a batch fills, and by io_engine_reap() (which
 * also refills the freed slots).  A short transfer goes back to the front
 * of the queue for the remainder; the callback sees the full length or an
 * error, never a short count.
 *
 * Invariants:
 *  - One thread drives an engine (queue, submit, reap, callbacks); only
 *    the flush worker runs beside it, and it touches just the worker lists
 *    under eng->lock (flush.c).
 *  - eng->all lists every request not yet handed to its callback, in the
 *    order it was queued; a flush waits until no write to its device is
 *    ahead of it there, then fdatasyncs.  So a flush covers every write to
 *    that device queued before it, whether or not it had completed.
 *  - Anything completed outside the kernel (injected faults, submission
 *    errors, zero-length requests, finished flushes) writes the eventfd,
 *    so an epoll loop never misses it.
 *  - Recording happens at completion, before the callback runs.
 */
#include "ioengine/aio.h"
#include "utils/err.h"
#include "utils/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define IO_BATCH_MAX  64	/* iocbs per io_submit() */
#define IO_EVENTS_MAX 128	/* events per io_getevents() */

size_t io_test_async_max_io;

void io_engine_kick(struct io_engine *eng)
{
	uint64_t one = 1;

	/* Fails only if the counter would overflow: then it is readable. */
	if (write(eng->efd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warn("ioengine: eventfd write: %s", strerror(errno));
}

int io_engine_create(unsigned depth, struct io_engine **out)
{
	struct io_engine *eng;
	int r;

	*out = NULL;
	if (depth == 0 || depth > 65536)
		return err_set(EINVAL, "I/O queue depth %u out of range 1..65536", depth);
	eng = calloc(1, sizeof *eng);
	if (!eng)
		return err_set(ENOMEM, "out of memory for an I/O engine");
	eng->depth = depth;
	eng->batch = depth < IO_BATCH_MAX ? depth : IO_BATCH_MAX;
	eng->nevents = depth < IO_EVENTS_MAX ? depth : IO_EVENTS_MAX;
	eng->efd = -1;
	pthread_mutex_init(&eng->lock, NULL);
	pthread_cond_init(&eng->cond, NULL);
	eng->iocbs = calloc(eng->batch, sizeof *eng->iocbs);
	eng->events = calloc(eng->nevents, sizeof *eng->events);
	if (!eng->iocbs || !eng->events) {
		r = err_set(ENOMEM, "out of memory for an I/O engine");
		goto fail;
	}
	eng->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (eng->efd < 0) {
		r = err_set(errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	r = io_setup((int)depth, &eng->ctx);
	if (r < 0) {
		eng->ctx = 0;
		r = err_set(-r, "io_setup(%u): %s%s", depth, strerror(-r),
			    r == -EAGAIN ? " (raise fs.aio-max-nr?)" : "");
		goto fail;
	}
	*out = eng;
	return 0;
fail:
	io_engine_destroy(eng);
	return r;
}

void io_engine_destroy(struct io_engine *eng)
{
	if (!eng)
		return;
	/* Complete everything still pending: callbacks run.  */
	while (eng->ctx && io_engine_pending(eng) > 0)
		if (io_engine_reap(eng, -1) < 0) {
			log_error("ioengine: abandoning %u pending requests: %s",
				  io_engine_pending(eng), err_get());
			break;
		}
	io_flush_worker_stop(eng);
	if (eng->ctx)
		io_destroy(eng->ctx);
	if (eng->efd >= 0)
		close(eng->efd);
	freelist_drain(&eng->free);
	free(eng->iocbs);
	free(eng->events);
	pthread_cond_destroy(&eng->cond);
	pthread_mutex_destroy(&eng->lock);
	free(eng);
}

int io_engine_eventfd(const struct io_engine *eng)
{
	return eng->efd;
}

unsigned io_engine_pending(const struct io_engine *eng)
{
	return eng->npending;
}

/* ---- request lists ---------------------------------------------------- */

static struct io_req *req_new(struct io_engine *eng)
{
	return freelist_get(&eng->free, sizeof(struct io_req));
}

static void req_free(struct io_engine *eng, struct io_req *req)
{
	freelist_push(&eng->free, req);
}

static void all_append(struct io_engine *eng, struct io_req *req)
{
	__atomic_add_fetch(&req->dev->async_pending, 1, __ATOMIC_RELAXED);
	req->prev = eng->all_tail;
	req->next = NULL;
	if (eng->all_tail)
		eng->all_tail->next = req;
	else
		eng->all_head = req;
	eng->all_tail = req;
	eng->npending++;
}

static void all_remove(struct io_engine *eng, struct io_req *req)
{
	__atomic_sub_fetch(&req->dev->async_pending, 1, __ATOMIC_RELAXED);
	if (req->prev)
		req->prev->next = req->next;
	else
		eng->all_head = req->next;
	if (req->next)
		req->next->prev = req->prev;
	else
		eng->all_tail = req->prev;
	eng->npending--;
}

void io_list_push(struct io_list *l, struct io_req *req)
{
	req->qnext = NULL;
	if (l->tail)
		l->tail->qnext = req;
	else
		l->head = req;
	l->tail = req;
}

static void list_push_front(struct io_list *l, struct io_req *req)
{
	req->qnext = l->head;
	l->head = req;
	if (!l->tail)
		l->tail = req;
}

static struct io_req *list_pop(struct io_list *l)
{
	struct io_req *req = l->head;

	if (req) {
		l->head = req->qnext;
		if (!l->head)
			l->tail = NULL;
	}
	return req;
}

/* Complete outside the kernel: the callback runs at the next reap.  */
void io_req_finish_later(struct io_engine *eng, struct io_req *req, ssize_t result)
{
	req->state = IO_REQ_DONE;
	req->result = result;
	io_list_push(&eng->done, req);
	io_engine_kick(eng);
}

/* ---- queueing and submission ------------------------------------------ */

static int queue_rw(struct io_engine *eng, struct io_dev *dev, enum io_req_type type,
		    void *buf, size_t len, uint64_t off, io_gate_fn gate, void *gate_arg,
		    io_done_fn done, void *arg)
{
	bool write = type == IO_REQ_WRITE;
	struct io_req *req;
	int r;

	r = io_dev_check_rw(dev, buf, len, off, write);
	if (r < 0)
		return r;
	req = req_new(eng);
	if (!req)
		return err_set(ENOMEM, "%s: out of memory queueing a %s at offset %" PRIu64,
			       dev->path, write ? "write" : "read", off);
	req->eng = eng;
	req->dev = dev;
	req->type = type;
	req->buf = buf;
	req->len = len;
	req->off = off;
	req->fn = done;
	req->arg = arg;
	req->gate = gate;
	req->gate_arg = gate_arg;
	req->seq = ++eng->seq;
	all_append(eng, req);

	r = io_dev_fault_check(dev, write ? IO_FAULT_WRITE : IO_FAULT_READ);
	if (r < 0 || len == 0) {
		req->fault = r < 0;
		io_req_finish_later(eng, req, r);
		return 0;
	}
	req->state = IO_REQ_QUEUED;
	req->counted = true;
	io_list_push(&eng->queue, req);
	if (++eng->nqueued >= eng->batch)
		io_engine_pump(eng);
	return 0;
}

int io_engine_read(struct io_engine *eng, struct io_dev *dev, void *buf,
		   size_t len, uint64_t off, io_done_fn done, void *arg)
{
	return queue_rw(eng, dev, IO_REQ_READ, buf, len, off, NULL, NULL, done, arg);
}

int io_engine_write(struct io_engine *eng, struct io_dev *dev, const void *buf,
		    size_t len, uint64_t off, io_done_fn done, void *arg)
{
	/* The buffer is only read from; the cast keeps one request type.  */
	return queue_rw(eng, dev, IO_REQ_WRITE, (void *)buf, len, off, NULL, NULL, done, arg);
}

int io_engine_read_gated(struct io_engine *eng, struct io_dev *dev, void *buf,
			 size_t len, uint64_t off, io_gate_fn gate, void *gate_arg,
			 io_done_fn done, void *arg)
{
	return queue_rw(eng, dev, IO_REQ_READ, buf, len, off, gate, gate_arg, done, arg);
}

int io_engine_write_gated(struct io_engine *eng, struct io_dev *dev, const void *buf,
			  size_t len, uint64_t off, io_gate_fn gate, void *gate_arg,
			  io_done_fn done, void *arg)
{
	return queue_rw(eng, dev, IO_REQ_WRITE, (void *)buf, len, off, gate, gate_arg, done, arg);
}

int io_engine_flush(struct io_engine *eng, struct io_dev *dev,
		    io_done_fn done, void *arg)
{
	struct io_req *req = req_new(eng);
	int r;

	if (!req)
		return err_set(ENOMEM, "%s: out of memory queueing a flush", dev->path);
	req->eng = eng;
	req->dev = dev;
	req->type = IO_REQ_FLUSH;
	req->fn = done;
	req->arg = arg;
	req->seq = ++eng->seq;
	all_append(eng, req);
	r = io_dev_fault_check(dev, IO_FAULT_FLUSH);
	if (r < 0) {
		req->fault = true;
		io_req_finish_later(eng, req, r);
		return 0;
	}
	io_flush_queued(eng, req);
	return 0;
}

static void prep_iocb(struct io_engine *eng, struct io_req *req)
{
	size_t n = req->len - req->done;

	if (io_test_async_max_io && n > io_test_async_max_io)
		n = io_test_async_max_io;
	if (req->type == IO_REQ_READ)
		io_prep_pread(&req->iocb, req->dev->fd, req->buf + req->done, n,
			      (long long)(req->off + req->done));
	else
		io_prep_pwrite(&req->iocb, req->dev->fd, req->buf + req->done, n,
			       (long long)(req->off + req->done));
	io_set_eventfd(&req->iocb, eng->efd);
	req->iocb.data = req;
}

void io_engine_pump(struct io_engine *eng)
{
	eng->nqueued = 0;
	while (eng->queue.head && eng->inflight < eng->depth) {
		unsigned room = eng->depth - eng->inflight, n = 0, i;
		int r;

		if (room > eng->batch)
			room = eng->batch;
		while (n < room && eng->queue.head) {
			struct io_req *req = list_pop(&eng->queue);

			/* Last moment before the kernel has it.  */
			if (req->gate && !req->gate(req->gate_arg)) {
				req->gated = true;
				io_req_finish_later(eng, req, -EKEYEXPIRED);
				continue;
			}
			if (req->type == IO_REQ_WRITE && !req->wseq && req->dev->wlog_id >= 0)
				req->wseq = io_wlog_issue(req->dev, req->buf, req->len, req->off);
			prep_iocb(eng, req);
			eng->iocbs[n++] = &req->iocb;
		}
		if (n == 0)
			continue;
		/* The iocbs and the queue are this engine's, driven by this
		 * thread only: other threads may run meanwhile.  */
		if (eng->sys_unlock)
			eng->sys_unlock(eng->sys_arg);
		do
			r = io_submit(eng->ctx, (long)n, eng->iocbs);
		while (r == -EINTR);
		if (eng->sys_lock)
			eng->sys_lock(eng->sys_arg);
		i = r > 0 ? (unsigned)r : 0;
		for (unsigned k = 0; k < i; k++)
			((struct io_req *)eng->iocbs[k]->data)->state = IO_REQ_INFLIGHT;
		eng->inflight += i;
		if (r < 0 && (r != -EAGAIN || eng->inflight == 0)) {
			/* The first iocb is refused; the rest go back.  A lasting
			 * EAGAIN with nothing in flight would hang: fail it too. */
			struct io_req *bad = eng->iocbs[0]->data;

			bad->submit_err = true;
			io_req_finish_later(eng, bad, r);
			i = 1;
		}
		/* Unsubmitted ones return to the front, in order.  */
		for (unsigned k = n; k > i; k--)
			list_push_front(&eng->queue, eng->iocbs[k - 1]->data);
		if (r == -EAGAIN)
			break;	/* retry when something completes */
	}
}

int io_engine_submit_unlocked(struct io_engine *eng, void (*unlock)(void *arg),
			      void (*lock)(void *arg), void *arg)
{
	eng->sys_unlock = unlock;
	eng->sys_lock = lock;
	eng->sys_arg = arg;
	io_engine_pump(eng);
	eng->sys_unlock = NULL;
	eng->sys_lock = NULL;
	return 0;
}

int io_engine_submit(struct io_engine *eng)
{
	io_engine_pump(eng);
	return 0;
}

/* ---- completion --------------------------------------------------------- */

static int describe_error(struct io_req *req)
{
	static const char *const what[] = { "read", "write", "flush" };
	struct io_dev *dev = req->dev;
	int e = (int)-req->result;

	if (req->fault)
		return io_fault_err(dev, what[req->type], req->len, req->off, e);
	if (req->type == IO_REQ_FLUSH)
		return err_set(e, "%s: flush: %s", dev->path, strerror(e));
	if (req->gated)
		return err_set(e, "%s: %s of %zu bytes at offset %" PRIu64 " not issued: "
			       "its permission expired", dev->path, what[req->type],
			       req->len - req->done, req->off + req->done);
	return err_set(e, "%s: %s%s of %zu bytes at offset %" PRIu64 ": %s",
		       dev->path, req->submit_err ? "submitting " : "async ",
		       what[req->type], req->len - req->done, req->off + req->done,
		       req->eof ? (req->type == IO_REQ_READ ? "end of device"
				   : "device accepted nothing") : strerror(e));
}

/* Hand a finished request to its callback and recycle it.  */
static void req_complete(struct io_engine *eng, struct io_req *req)
{
	io_done_fn fn = req->fn;
	void *arg = req->arg;
	ssize_t result = req->result;

	all_remove(eng, req);
	if (result >= 0) {
		if (req->type == IO_REQ_WRITE)
			io_dev_record_write(req->dev, req->buf, req->len, req->off, req->wseq);
		else if (req->type == IO_REQ_FLUSH)
			io_dev_record_flush(req->dev, req->t0);
	}
	/* A finished write may let flushes queued behind it go.  */
	if (req->type == IO_REQ_WRITE && eng->nflush_wait)
		io_flush_write_done(eng, req);
	if (result < 0)
		describe_error(req);
	req_free(eng, req);
	if (fn)
		fn(arg, result);
}

/* One kernel completion: finished, failed, or short (resubmit the rest). */
static bool kernel_event(struct io_engine *eng, struct io_event *ev)
{
	struct io_req *req = ev->data;
	long res = (long)ev->res;

	eng->inflight--;
	if (res < 0) {
		req->result = res;
	} else if (res == 0) {
		req->eof = true;
		req->result = req->type == IO_REQ_READ ? -EIO : -ENOSPC;
	} else {
		req->done += (size_t)res;
		if (req->done < req->len) {
			req->state = IO_REQ_QUEUED;
			list_push_front(&eng->queue, req);
			return false;
		}
		req->result = (ssize_t)req->len;
	}
	req->state = IO_REQ_DONE;
	req_complete(eng, req);
	return true;
}

static int reap_kernel(struct io_engine *eng, int *handled)
{
	struct timespec zero = { 0, 0 };
	int n;

	do {
		n = io_getevents(eng->ctx, 0, (long)eng->nevents, eng->events, &zero);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return err_set(-n, "io_getevents: %s", strerror(-n));
		for (int i = 0; i < n; i++)
			*handled += kernel_event(eng, &eng->events[i]);
	} while (n == (int)eng->nevents || n == -EINTR);
	return 0;
}

/* Requests completed outside the kernel.  Only those present now: ones
 * that callbacks add wait for the next reap (the eventfd says so).  */
static int reap_done(struct io_engine *eng)
{
	struct io_list batch = eng->done;
	struct io_req *req;
	int handled = 0;

	eng->done.head = eng->done.tail = NULL;
	io_flush_worker_collect(eng, &batch);
	while ((req = list_pop(&batch))) {
		req_complete(eng, req);
		handled++;
	}
	return handled;
}

static int reap(struct io_engine *eng, int timeout_ms)
{
	int64_t deadline = timeout_ms > 0 ? csnap_now_ms() + timeout_ms : 0;
	int handled = 0;

	for (;;) {
		uint64_t cnt;
		int r;

		io_engine_pump(eng);
		/* Clear the eventfd before looking, so a completion arriving
		 * after the look makes it readable again.  */
		if (read(eng->efd, &cnt, sizeof cnt) < 0 && errno != EAGAIN)
			return err_set(errno, "ioengine: eventfd read: %s", strerror(errno));
		r = reap_kernel(eng, &handled);
		if (r < 0)
			return r;
		handled += reap_done(eng);
		io_engine_pump(eng);
		if (handled || timeout_ms == 0 || eng->npending == 0)
			return handled;

		int wait = -1;
		if (timeout_ms > 0) {
			int64_t left = deadline - csnap_now_ms();

			if (left <= 0)
				return 0;
			wait = (int)left;
		}
		/* Only the kernel can finish something: wait in io_getevents,
		 * which saves a poll and a wakeup (the eventfd count it leaves
		 * behind is cleared by the next reap).  */
		if (eng->inflight && !eng->flush_running && !eng->done.head) {
			struct timespec ts = { wait / 1000, (long)(wait % 1000) * 1000000 };
			int n = io_getevents(eng->ctx, 1, (long)eng->nevents, eng->events,
					     wait >= 0 ? &ts : NULL);

			if (n < 0 && n != -EINTR)
				return err_set(-n, "io_getevents: %s", strerror(-n));
			for (int i = 0; i < n; i++)
				handled += kernel_event(eng, &eng->events[i]);
			continue;
		}
		struct pollfd pfd = { .fd = eng->efd, .events = POLLIN };
		if (poll(&pfd, 1, wait) < 0 && errno != EINTR)
			return err_set(errno, "ioengine: poll: %s", strerror(errno));
	}
}

int io_engine_reap(struct io_engine *eng, int timeout_ms)
{
	int r;

	if (eng->reaping)
		return err_set(EDEADLK, "ioengine: reap called from a completion callback");
	eng->reaping = true;
	r = reap(eng, timeout_ms);
	eng->reaping = false;
	return r;
}
