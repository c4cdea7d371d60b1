/*
 * ioengine/flush.c - asynchronous flushes.  libaio's IOCB_CMD_FDSYNC is
 * refused by most file systems, so a flush is an fdatasync() on a small
 * worker thread, reported through the engine's eventfd like any other
 * completion.
 *
 * Ordering: a flush waits until every write to its device queued before
 * it (in this engine) has completed, then fdatasyncs.  Writes that
 * completed before it was queued -- in this engine, another one, or
 * synchronously -- are covered because the fdatasync starts later.
 *
 * Invariants:
 *  - flush->writes_ahead counts the writes to its device that were queued
 *    before it and have not yet been handed to their callback; it is set
 *    once when the flush is queued and only decremented, by the
 *    completions of exactly those writes (same device, smaller seq,
 *    counted), each of which happens exactly once.
 *  - The worker owns nothing but wq/wdone (under eng->lock) and the
 *    requests in them; it never runs callbacks.  One fdatasync serves all
 *    flushes of a device that were waiting when it started.
 */
#include "ioengine/aio.h"
#include "utils/err.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int sync_dev(struct io_dev *dev)
{
	return fdatasync(dev->fd) < 0 ? -errno : 0;
}

static void *flush_worker(void *arg)
{
	struct io_engine *eng = arg;

	pthread_mutex_lock(&eng->lock);
	for (;;) {
		struct io_list batch;

		while (!eng->wq.head && !eng->worker_stop)
			pthread_cond_wait(&eng->cond, &eng->lock);
		if (!eng->wq.head)
			break;
		batch = eng->wq;
		eng->wq.head = eng->wq.tail = NULL;
		pthread_mutex_unlock(&eng->lock);

		for (struct io_req *req = batch.head; req; req = req->qnext) {
			struct io_req *same = batch.head;

			while (same != req && same->dev != req->dev)
				same = same->qnext;
			if (same != req) {
				req->t0 = same->t0;
				req->result = same->result;
			} else {
				req->t0 = io_wlog_t0(req->dev);
				req->result = sync_dev(req->dev);
			}
			req->state = IO_REQ_DONE;
		}

		pthread_mutex_lock(&eng->lock);
		if (eng->wdone.tail)
			eng->wdone.tail->qnext = batch.head;
		else
			eng->wdone.head = batch.head;
		eng->wdone.tail = batch.tail;
		io_engine_kick(eng);
	}
	pthread_mutex_unlock(&eng->lock);
	return NULL;
}

/* A flush whose writes are done: to the worker (or, if no thread can be
 * started, fdatasync right here -- slower, never wrong).  */
static void flush_run(struct io_engine *eng, struct io_req *flush)
{
	flush->state = IO_REQ_FLUSH_RUN;
	pthread_mutex_lock(&eng->lock);
	if (!eng->worker_started) {
		int r = pthread_create(&eng->worker, NULL, flush_worker, eng);

		if (r) {
			pthread_mutex_unlock(&eng->lock);
			log_warn("ioengine: cannot start flush worker (%s); flushing inline",
				 strerror(r));
			flush->t0 = io_wlog_t0(flush->dev);
			io_req_finish_later(eng, flush, sync_dev(flush->dev));
			return;
		}
		eng->worker_started = true;
	}
	io_list_push(&eng->wq, flush);
	eng->flush_running++;
	pthread_cond_signal(&eng->cond);
	pthread_mutex_unlock(&eng->lock);
}

void io_flush_queued(struct io_engine *eng, struct io_req *flush)
{
	unsigned ahead = 0;

	for (struct io_req *r = eng->all_head; r && r != flush; r = r->next)
		if (r->type == IO_REQ_WRITE && r->dev == flush->dev && r->counted)
			ahead++;	/* even if done: its completion still comes */
	flush->writes_ahead = ahead;
	if (!ahead) {
		flush_run(eng, flush);
		return;
	}
	flush->state = IO_REQ_FLUSH_WAIT;
	io_list_push(&eng->flush_wait, flush);
	eng->nflush_wait++;
}

void io_flush_write_done(struct io_engine *eng, struct io_req *write)
{
	struct io_req **link = &eng->flush_wait.head, *prev = NULL;

	if (!write->counted)
		return;
	while (*link) {
		struct io_req *f = *link;

		if (f->dev == write->dev && f->seq > write->seq && --f->writes_ahead == 0) {
			*link = f->qnext;
			if (eng->flush_wait.tail == f)
				eng->flush_wait.tail = prev;
			eng->nflush_wait--;
			flush_run(eng, f);
			continue;
		}
		prev = f;
		link = &f->qnext;
	}
}

void io_flush_worker_collect(struct io_engine *eng, struct io_list *out)
{
	pthread_mutex_lock(&eng->lock);
	for (struct io_req *req = eng->wdone.head; req; req = req->qnext)
		eng->flush_running--;
	if (eng->wdone.head) {
		if (out->tail)
			out->tail->qnext = eng->wdone.head;
		else
			out->head = eng->wdone.head;
		out->tail = eng->wdone.tail;
		eng->wdone.head = eng->wdone.tail = NULL;
	}
	pthread_mutex_unlock(&eng->lock);
}

void io_flush_worker_stop(struct io_engine *eng)
{
	pthread_mutex_lock(&eng->lock);
	if (!eng->worker_started) {
		pthread_mutex_unlock(&eng->lock);
		return;
	}
	eng->worker_stop = true;
	pthread_cond_signal(&eng->cond);
	pthread_mutex_unlock(&eng->lock);
	pthread_join(eng->worker, NULL);
	eng->worker_started = false;
}
