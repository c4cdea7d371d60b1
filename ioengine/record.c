/*
 * ioengine/record.c - recording of completed writes and flushes, and their
 * replay onto a copy of the device, for power-cut tests.
 *
 * A test records a run, then for each flush k replays entries
 * [0, io_log_flush_end(log, k)) onto a copy of the device taken when
 * recording started: the result is the state the device is guaranteed to
 * have after a power cut right after flush k completed.
 *
 * Invariants:
 *  - Entries are in completion order; write data is copied into 4096-
 *    aligned buffers (so replay works onto a direct device).
 *  - If memory ran out while recording, the log is marked incomplete and
 *    replay refuses to run rather than produce a wrong image.
 *  - A log may be shared by several devices; it has its own lock.
 */
#include "ioengine/internal.h"
#include "utils/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct io_log {
	pthread_mutex_t lock;
	struct io_log_entry *e;
	size_t n, cap;
	size_t nflush;
	bool incomplete;
};

struct io_log *io_log_new(void)
{
	struct io_log *log = calloc(1, sizeof *log);

	if (!log) {
		err_set(ENOMEM, "out of memory for an I/O log");
		return NULL;
	}
	pthread_mutex_init(&log->lock, NULL);
	return log;
}

void io_log_free(struct io_log *log)
{
	if (!log)
		return;
	for (size_t i = 0; i < log->n; i++)
		io_buf_free((void *)log->e[i].data);
	free(log->e);
	pthread_mutex_destroy(&log->lock);
	free(log);
}

void io_dev_set_log(struct io_dev *dev, struct io_log *log)
{
	pthread_mutex_lock(&dev->lock);
	dev->log = log;
	pthread_mutex_unlock(&dev->lock);
}

/* Takes ownership of data (NULL for a flush).  */
static void log_append(struct io_log *log, enum io_log_op op, uint64_t off,
		       size_t len, void *data)
{
	pthread_mutex_lock(&log->lock);
	if (log->n == log->cap) {
		size_t cap = log->cap ? log->cap * 2 : 64;
		struct io_log_entry *e = realloc(log->e, cap * sizeof *e);

		if (!e) {
			log->incomplete = true;
			pthread_mutex_unlock(&log->lock);
			io_buf_free(data);
			return;
		}
		log->e = e;
		log->cap = cap;
	}
	log->e[log->n++] = (struct io_log_entry){ op, off, len, data };
	if (op == IO_LOG_FLUSH)
		log->nflush++;
	pthread_mutex_unlock(&log->lock);
}

void io_dev_record_write(struct io_dev *dev, const void *buf, size_t len, uint64_t off,
			 uint64_t wseq)
{
	struct io_log *log;
	void *copy;

	if (wseq)
		io_wlog_io(dev, IO_WLOG_DONE, wseq, len, off, 0);

	pthread_mutex_lock(&dev->lock);
	log = dev->log;
	pthread_mutex_unlock(&dev->lock);
	if (!log)
		return;
	copy = io_buf_alloc(len);
	if (!copy) {
		pthread_mutex_lock(&log->lock);
		log->incomplete = true;
		pthread_mutex_unlock(&log->lock);
		return;
	}
	memcpy(copy, buf, len);
	log_append(log, IO_LOG_WRITE, off, len, copy);
}

void io_dev_record_flush(struct io_dev *dev, int64_t t0)
{
	struct io_log *log;

	if (dev->wlog_id >= 0)
		io_wlog_io(dev, IO_WLOG_FLUSH, 0, 0, 0, t0);

	pthread_mutex_lock(&dev->lock);
	log = dev->log;
	pthread_mutex_unlock(&dev->lock);
	if (log)
		log_append(log, IO_LOG_FLUSH, 0, 0, NULL);
}

size_t io_log_count(const struct io_log *log)
{
	return log->n;
}

const struct io_log_entry *io_log_get(const struct io_log *log, size_t i)
{
	return i < log->n ? &log->e[i] : NULL;
}

size_t io_log_flushes(const struct io_log *log)
{
	return log->nflush;
}

size_t io_log_flush_end(const struct io_log *log, size_t k)
{
	size_t seen = 0;

	if (k == 0)
		return 0;
	for (size_t i = 0; i < log->n; i++)
		if (log->e[i].op == IO_LOG_FLUSH && ++seen == k)
			return i + 1;
	return 0;
}

int io_log_replay(const struct io_log *log, struct io_dev *target, size_t upto)
{
	if (log->incomplete)
		return err_set(ENOMEM, "I/O log is incomplete (out of memory while "
			       "recording); cannot replay onto %s", io_dev_path(target));
	if (upto > log->n)
		return err_set(EINVAL, "replay up to entry %zu, but the log has only %zu",
			       upto, log->n);
	for (size_t i = 0; i < upto; i++) {
		const struct io_log_entry *e = &log->e[i];
		int r;

		/* Flushes carry no data; a replayed image is made durable by
		 * the caller if it cares.  */
		if (e->op != IO_LOG_WRITE)
			continue;
		r = io_dev_pwrite(target, e->data, e->len, e->off);
		if (r < 0)
			return err_prefix(-r, "replaying log entry %zu", i);
	}
	return 0;
}
