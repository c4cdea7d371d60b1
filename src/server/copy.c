/*
 * src/server/copy.c - copy-out jobs: read chunks from the origin (or from a
 * shared store chunk, for snapshot writes) and write them to the store
 * chunks the engine allocated, on the async ioengine.
 *
 * Copies are queued during a loop turn and started together at its end,
 * sorted, so neighbouring chunks are coalesced across requests: one read
 * covers a run of consecutive source chunks (up to COPY_JOB_BYTES), and
 * consecutive destination chunks within it are written with one write.  Many jobs are in flight at once
 * (the engine queues beyond its depth).  A job is done when its writes
 * completed; the commit step (server.c) flushes the store device once for
 * all finished jobs and only then commits the engine's transaction.
 *
 * Errors never lose data silently: a failed read or write marks the batch
 * failed and the server discards the whole open transaction.
 */
#include "src/server/srv.h"

#include "ioengine/ioengine.h"
#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define COPY_JOB_BYTES	(1u << 20)
/* The open batch closes after this long or this many copy-outs, so a
 * steady stream of them cannot postpone the commit forever.  */
#define BATCH_MAX_MS		10
#define BATCH_MAX_COPIES	8192

/* This file's state (struct srv points at it).  */
struct copy_state {
	unsigned jobs_inflight;		/* copy jobs not finished */
	struct store_copy *q;		/* copies queued this loop turn */
	size_t n, cap;
	unsigned in_batch;		/* copy-outs in the open transaction */
	int64_t batch_start_ms;		/* first copy of the open batch */
	bool failed;			/* a copy failed: abort the txn */
	uint64_t stat_copyouts, stat_jobs;
	uint64_t stat_overlap;		/* copy-outs queued while a commit was in flight */
};

int copy_init(struct srv *s)
{
	s->copy = calloc(1, sizeof *s->copy);
	return s->copy ? 0 : -ENOMEM;
}

void copy_free(struct srv *s)
{
	if (s->copy) {
		free(s->copy->q);
		free(s->copy);
		s->copy = NULL;
	}
}

struct copy_job {
	struct srv *s;
	void *buf;
	size_t len;		/* bytes of buf (n whole chunks) */
	uint32_t n;
	int pending;		/* I/Os in flight */
	int err;
	chunk_t dst[];		/* n destination store chunks */
};

static void job_finish(struct copy_job *j)
{
	struct srv *s = j->s;
	if (j->err) {
		log_error("copy-out of %u chunk(s) to store chunk %llu failed: %s",
			  j->n, (unsigned long long)j->dst[0], strerror(-j->err));
		s->copy->failed = true;
	} else {
		s->copy->stat_copyouts += j->n;
	}
	CSNAP_ASSERT(s->copy->jobs_inflight > 0);	/* counted in job_start */
	s->copy->jobs_inflight--;
	io_buf_free(j->buf);
	free(j);
}

static void write_done(void *arg, ssize_t result)
{
	struct copy_job *j = arg;
	if (result < 0 && !j->err)
		j->err = (int)result;
	if (--j->pending == 0)
		job_finish(j);
}

static void read_done(void *arg, ssize_t result)
{
	struct copy_job *j = arg;
	struct srv *s = j->s;

	j->pending--;
	if (result < 0) {
		j->err = (int)result;
		job_finish(j);
		return;
	}
	if (lease_fenced()) {
		j->err = -ENOLCK;
		job_finish(j);
		return;
	}
	uint32_t cs = s->chunk_size;
	for (uint32_t i = 0; i < j->n;) {
		uint32_t run = 1;
		while (i + run < j->n && j->dst[i + run] == j->dst[i] + run)
			run++;
		int r = io_engine_write(s->eng, s->sdev, (uint8_t *)j->buf + (size_t)i * cs,
					(size_t)run * cs, store_chunk_offset(s->st, j->dst[i]),
					write_done, j);
		if (r < 0) {
			j->err = r;
			break;
		}
		j->pending++;
		i += run;
	}
	if (j->pending == 0) {
		job_finish(j);
		return;
	}
	io_engine_submit(s->eng);
}

/* One job: copies[0..n) have consecutive sources of one kind.  */
static int job_start(struct srv *s, const struct store_copy *c, uint32_t n)
{
	uint32_t cs = s->chunk_size;
	struct copy_job *j = calloc(1, sizeof *j + n * sizeof(chunk_t));
	if (!j)
		return err_set(ENOMEM, "out of memory for a copy job");
	j->s = s;
	j->n = n;
	j->len = (size_t)n * cs;
	j->buf = io_buf_alloc(j->len);
	if (!j->buf) {
		free(j);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++)
		j->dst[i] = c[i].dst;

	struct io_dev *src;
	uint64_t off;
	size_t len = j->len;
	if (c[0].src == STORE_ON_ORIGIN) {
		src = s->odev;
		off = c[0].origin_chunk * cs;
		/* The last origin chunk may be partial: read what exists, the
		 * rest of the buffer stays zero.  */
		if (off + len > s->origin_size) {
			unsigned align = io_dev_align(src);
			len = (size_t)(s->origin_size - off) / align * align;
		}
	} else {
		src = s->sdev;
		off = store_chunk_offset(s->st, c[0].src);
	}
	s->copy->jobs_inflight++;
	s->copy->stat_jobs++;
	j->pending = 1;
	if (len == 0) {
		read_done(j, 0);
		return 0;
	}
	int r = io_engine_read(s->eng, src, j->buf, len, off, read_done, j);
	if (r < 0) {
		j->pending = 0;
		j->err = r;
		job_finish(j);
		return r;
	}
	return 0;
}

int copy_start(struct srv *s, const struct store_copy *copies, uint32_t n)
{
	if (lease_fenced())
		return err_set(ENOLCK, "fenced: no more copy-outs");
	struct copy_state *cs = s->copy;
	if (cs->n + n > cs->cap) {
		size_t cap = cs->cap ? cs->cap : 1024;
		while (cap < cs->n + n)
			cap *= 2;
		struct store_copy *q = realloc(cs->q, cap * sizeof *q);
		if (!q)
			return err_set(ENOMEM, "out of memory for the copy queue");
		cs->q = q;
		cs->cap = cap;
	}
	memcpy(cs->q + cs->n, copies, n * sizeof *copies);
	cs->n += n;
	if (srv_commit_inflight(s))
		cs->stat_overlap += n;
	if (!cs->in_batch)
		cs->batch_start_ms = csnap_now_ms();
	cs->in_batch += n;
	return 0;
}

bool copy_pending(const struct srv *s)
{
	return s->copy->jobs_inflight || s->copy->n;
}

bool copy_batch_open(const struct srv *s)
{
	const struct copy_state *cs = s->copy;

	if (cs->failed)
		return false;
	if (!cs->in_batch)
		return true;
	return cs->in_batch < BATCH_MAX_COPIES && csnap_now_ms() - cs->batch_start_ms < BATCH_MAX_MS;
}

void copy_batch_done(struct srv *s)
{
	/* Committed: every copy of the batch was finished first.  */
	CSNAP_ASSERT(!copy_pending(s));
	s->copy->in_batch = 0;
}

void copy_fail(struct srv *s)
{
	s->copy->failed = true;
}

bool copy_failed(const struct srv *s)
{
	return s->copy->failed;
}

void copy_batch_reset(struct srv *s)
{
	/* The transaction was thrown away with nothing in flight.  */
	CSNAP_ASSERT(!copy_pending(s));
	s->copy->failed = false;
	s->copy->in_batch = 0;
}

void copy_drain(struct srv *s)
{
	while (s->copy->jobs_inflight)
		if (io_engine_reap(s->eng, 1000) < 0)
			break;
}

void copy_stats(const struct srv *s, uint64_t *copyouts, uint64_t *jobs)
{
	*copyouts = s->copy->stat_copyouts;
	*jobs = s->copy->stat_jobs;
}

uint64_t copy_overlapped(const struct srv *s)
{
	return s->copy->stat_overlap;
}

/* Origin sources first, by origin chunk; then store sources by chunk.  */
static int copy_cmp(const void *a, const void *b)
{
	const struct store_copy *x = a, *y = b;
	bool xo = x->src == STORE_ON_ORIGIN, yo = y->src == STORE_ON_ORIGIN;
	if (xo != yo)
		return xo ? -1 : 1;
	uint64_t kx = xo ? x->origin_chunk : x->src, ky = yo ? y->origin_chunk : y->src;
	return kx < ky ? -1 : kx > ky;
}

void copy_flush(struct srv *s)
{
	struct copy_state *cs = s->copy;
	if (!cs->n)
		return;
	uint32_t max = COPY_JOB_BYTES / s->chunk_size;
	if (max < 1)
		max = 1;
	struct store_copy *c = cs->q;
	size_t n = cs->n;
	cs->n = 0;
	qsort(c, n, sizeof *c, copy_cmp);
	if (lease_fenced()) {
		cs->failed = true;
		return;
	}
	for (size_t i = 0; i < n;) {
		uint32_t run = 1;
		bool orig = c[i].src == STORE_ON_ORIGIN;
		while (i + run < n && run < max) {
			const struct store_copy *a = &c[i + run - 1], *b = &c[i + run];
			if (orig ? (b->src != STORE_ON_ORIGIN || b->origin_chunk != a->origin_chunk + 1)
				 : (b->src == STORE_ON_ORIGIN || b->src != a->src + 1))
				break;
			run++;
		}
		if (job_start(s, c + i, run) < 0) {
			log_error("copy-out: %s", err_get());
			cs->failed = true;
			break;
		}
		i += run;
	}
	if (io_engine_submit(s->eng) < 0) {
		log_error("copy-out submit: %s", err_get());
		cs->failed = true;
	}
}

int copy_mark_busy(struct srv *s, const struct store_copy *copies, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (chunkset_get(&s->busy, copies[i].origin_chunk))
			continue;
		int r = chunkset_add(&s->busy, copies[i].origin_chunk, 1);
		if (r < 0)
			return r;
	}
	return 0;
}

void copy_reap(struct srv *s)
{
	for (;;) {
		int r = io_engine_reap(s->eng, 0);
		if (r <= 0) {
			if (r < 0)
				log_error("ioengine: %s", err_get());
			return;
		}
	}
}
