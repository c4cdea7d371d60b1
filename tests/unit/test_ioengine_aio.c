/*
 * tests/unit/test_ioengine_aio.c - the asynchronous engine on real files:
 * concurrent verified reads/writes, more requests than the queue depth,
 * continuation of short transfers, flush ordering, fault injection,
 * eventfd + epoll, the buffered path (tmpfs), write gates (asked at
 * submission) and power-cut replay of a recorded async workload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ioengine/aio.h"
#define IOT_NAME "ioengine-aio"
#include "tests/unit/ioengine_testutil.h"
#include "utils/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLK 4096u

/* What a completion saw.  */
struct done {
	ssize_t result;
	int order;		/* completion rank, from 1 */
	char msg[512];		/* err_get() at a failed completion */
	struct io_engine *eng;	/* to check the depth bound */
};

static int completions;

static void on_done(void *arg, ssize_t result)
{
	struct done *d = arg;

	assert_int_equal(d->order, 0);	/* exactly one callback per request */
	d->result = result;
	d->order = ++completions;
	if (result < 0)
		snprintf(d->msg, sizeof d->msg, "%s", err_get());
	if (d->eng)
		assert_true(d->eng->inflight <= d->eng->depth);
}

static void reap_all(struct io_engine *eng)
{
	assert_int_equal(io_engine_submit(eng), 0);
	while (io_engine_pending(eng) > 0)
		assert_true(io_engine_reap(eng, -1) >= 0);
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

static void fill(void *buf, size_t len, unsigned seed)
{
	uint32_t *p = buf;

	for (size_t i = 0; i < len / 4; i++)
		p[i] = seed * 2654435761u + (uint32_t)i;
}

/* Many concurrent writes then reads and writes mixed, more requests than
 * the depth, checked against synchronous pread.  */
static void run_concurrent(struct io_dev *dev, unsigned depth, size_t nblk)
{
	struct io_engine *eng;
	unsigned char *data = io_buf_alloc(nblk * BLK), *back = io_buf_alloc(nblk * BLK);
	unsigned char *rbuf = io_buf_alloc(nblk * BLK);
	struct done *d = calloc(nblk * 2, sizeof *d);
	size_t nd = 0;

	assert_int_equal(io_engine_create(depth, &eng), 0);
	completions = 0;
	/* phase 1: every block written once, in random-sized runs */
	for (size_t b = 0; b < nblk;) {
		size_t run = 1 + rnd() % 8;

		if (b + run > nblk)
			run = nblk - b;
		fill(data + b * BLK, run * BLK, (unsigned)b + 1);
		d[nd].eng = eng;
		assert_int_equal(io_engine_write(eng, dev, data + b * BLK, run * BLK, b * BLK,
						 on_done, &d[nd]), 0);
		nd++;
		b += run;
	}
	assert_int_equal(io_engine_pending(eng), nd);
	reap_all(eng);
	for (size_t i = 0; i < nd; i++)
		assert_true(d[i].result > 0 && d[i].result % BLK == 0);
	assert_int_equal(completions, (int)nd);
	assert_int_equal(io_dev_pread(dev, back, nblk * BLK, 0), 0);
	assert_memory_equal(back, data, nblk * BLK);

	/* phase 2: reads of odd blocks while even blocks are rewritten */
	memset(d, 0, nblk * 2 * sizeof *d);
	completions = 0;
	nd = 0;
	for (size_t b = 0; b < nblk; b++) {
		d[nd].eng = eng;
		if (b % 2) {
			assert_int_equal(io_engine_read(eng, dev, rbuf + b * BLK, BLK, b * BLK,
							on_done, &d[nd]), 0);
		} else {
			fill(data + b * BLK, BLK, (unsigned)(b + 7777));
			assert_int_equal(io_engine_write(eng, dev, data + b * BLK, BLK, b * BLK,
							 on_done, &d[nd]), 0);
		}
		nd++;
		if (rnd() % 16 == 0)
			assert_true(io_engine_reap(eng, 0) >= 0);
	}
	reap_all(eng);
	assert_int_equal(completions, (int)nd);
	for (size_t b = 0; b < nblk; b++) {
		assert_int_equal(d[b].result, BLK);
		if (b % 2)
			assert_memory_equal(rbuf + b * BLK, data + b * BLK, BLK);
	}
	assert_int_equal(io_dev_pread(dev, back, nblk * BLK, 0), 0);
	assert_memory_equal(back, data, nblk * BLK);

	io_engine_destroy(eng);
	free(d);
	io_buf_free(data);
	io_buf_free(back);
	io_buf_free(rbuf);
}

static void test_concurrent_direct(void **state)
{
	struct io_dev *dev = open_new("conc", 1024 * BLK);

	(void)state;
	assert_true(io_dev_is_direct(dev));
	run_concurrent(dev, 32, 1024);
	run_concurrent(dev, 1, 64);
	io_dev_close(dev);
}

/* tmpfs, and a file forced onto the buffered path.  */
static void test_buffered(void **state)
{
	char path[256];
	struct io_dev *dev;

	(void)state;
	snprintf(path, sizeof path, "/dev/shm/ioengine-aio-%d", (int)getpid());
	dev = open_path(path, 256 * BLK);
	run_concurrent(dev, 16, 256);
	io_dev_close(dev);
	unlink(path);

	snprintf(path, sizeof path, "%s/buffered", tmpdir);
	io_test_refuse_direct_once = true;
	dev = open_path(path, 256 * BLK);
	assert_false(io_dev_is_direct(dev));
	run_concurrent(dev, 16, 256);

	/* unaligned is fine when buffered, and flush works */
	struct io_engine *eng;
	struct done d[3] = { { 0 } };
	char msg[] = "unaligned hello", back[sizeof msg];
	completions = 0;
	assert_int_equal(io_engine_create(4, &eng), 0);
	assert_int_equal(io_engine_write(eng, dev, msg, sizeof msg, 7, on_done, &d[0]), 0);
	assert_int_equal(io_engine_flush(eng, dev, on_done, &d[1]), 0);
	assert_int_equal(io_engine_read(eng, dev, back, sizeof back, 7, on_done, &d[2]), 0);
	reap_all(eng);
	assert_int_equal(d[0].result, sizeof msg);
	assert_int_equal(d[1].result, 0);
	assert_true(d[1].order > d[0].order);
	io_engine_destroy(eng);
	io_dev_close(dev);
}

/* Every kernel submission limited to one block: requests complete only
 * through the continuation of short transfers.  */
static void test_short_transfers(void **state)
{
	struct io_dev *dev = open_new("short", 64 * BLK);

	(void)state;
	io_test_async_max_io = BLK;
	run_concurrent(dev, 8, 64);
	io_test_async_max_io = 0;

	/* reading across the end: the remainder finds EOF, an error */
	struct io_engine *eng;
	struct done d = { 0 };
	void *buf = io_buf_alloc(4 * BLK);
	assert_int_equal(io_engine_create(4, &eng), 0);
	completions = 0;
	assert_int_equal(io_engine_read(eng, dev, buf, 4 * BLK, 62 * BLK, on_done, &d), 0);
	reap_all(eng);
	assert_int_equal(d.result, -EIO);
	assert_non_null(strstr(d.msg, "end of device"));
	assert_non_null(strstr(d.msg, "/short"));
	assert_non_null(strstr(d.msg, "offset 262144"));	/* where it stopped */
	io_engine_destroy(eng);
	io_buf_free(buf);
	io_dev_close(dev);
}

/* Gated writes: the gate is asked when the write goes to the kernel, not
 * when it is queued; a refusal writes nothing (more) and fails the write
 * with EKEYEXPIRED; a short write's remainder asks again.  */
struct gate { int allow_calls; int calls; };

static bool gate_fn(void *arg)
{
	struct gate *g = arg;

	return g->calls++ < g->allow_calls;
}

static void test_gate(void **state)
{
	struct io_dev *dev = open_new("gate", 16 * BLK);
	struct io_engine *eng;
	unsigned char *buf = io_buf_alloc(4 * BLK), *back = io_buf_alloc(4 * BLK);
	unsigned char zero[BLK] = { 0 };

	(void)state;
	assert_int_equal(io_engine_create(4, &eng), 0);
	memset(buf, 0xab, 4 * BLK);

	/* Open when queued, closed when submitted: refused, nothing written. */
	struct gate g = { .allow_calls = 0 };
	struct done d = { 0 };
	completions = 0;
	assert_int_equal(io_engine_write_gated(eng, dev, buf, BLK, 0, gate_fn, &g, on_done, &d), 0);
	assert_int_equal(g.calls, 0);		/* not asked at queueing */
	reap_all(eng);
	assert_int_equal(g.calls, 1);
	assert_int_equal(d.result, -EKEYEXPIRED);
	assert_non_null(strstr(d.msg, "not issued"));
	assert_int_equal(io_dev_pread(dev, back, BLK, 0), 0);
	assert_memory_equal(back, zero, BLK);

	/* Allowed at submission: written.  */
	g = (struct gate){ .allow_calls = 1 };
	d = (struct done){ 0 };
	assert_int_equal(io_engine_write_gated(eng, dev, buf, BLK, BLK, gate_fn, &g, on_done, &d), 0);
	reap_all(eng);
	assert_int_equal(d.result, BLK);
	assert_int_equal(io_dev_pread(dev, back, BLK, BLK), 0);
	assert_memory_equal(back, buf, BLK);

	/* A short write: its first piece goes, the gate closes, the rest
	 * is not issued.  */
	io_test_async_max_io = BLK;
	g = (struct gate){ .allow_calls = 1 };
	d = (struct done){ 0 };
	assert_int_equal(io_engine_write_gated(eng, dev, buf, 4 * BLK, 4 * BLK, gate_fn, &g,
					       on_done, &d), 0);
	reap_all(eng);
	io_test_async_max_io = 0;
	assert_int_equal(g.calls, 2);
	assert_int_equal(d.result, -EKEYEXPIRED);
	assert_int_equal(io_dev_pread(dev, back, 4 * BLK, 4 * BLK), 0);
	assert_memory_equal(back, buf, BLK);
	for (int k = 1; k < 4; k++)
		assert_memory_equal(back + k * BLK, zero, BLK);

	/* Ungated requests of the same batch are not affected.  */
	g = (struct gate){ .allow_calls = 0 };
	struct done d1 = { 0 }, d2 = { 0 };
	assert_int_equal(io_engine_write_gated(eng, dev, buf, BLK, 8 * BLK, gate_fn, &g,
					       on_done, &d1), 0);
	assert_int_equal(io_engine_write(eng, dev, buf, BLK, 9 * BLK, on_done, &d2), 0);
	reap_all(eng);
	assert_int_equal(d1.result, -EKEYEXPIRED);
	assert_int_equal(d2.result, BLK);

	io_engine_destroy(eng);
	io_buf_free(buf);
	io_buf_free(back);
	io_dev_close(dev);
}

static struct io_engine *nested_eng;
static int nested_result;

static void on_done_nested(void *arg, ssize_t result)
{
	on_done(arg, result);
	nested_result = io_engine_reap(nested_eng, 0);
}

static void test_argument_errors(void **state)
{
	struct io_dev *dev = open_new("args", 16 * BLK);
	struct io_engine *eng;
	unsigned char *buf = io_buf_alloc(2 * BLK);
	struct done d = { 0 };

	(void)state;
	assert_int_equal(io_engine_create(0, &eng), -EINVAL);
	assert_null(eng);
	assert_int_equal(io_engine_create(8, &eng), 0);
	assert_int_equal(io_engine_read(eng, dev, buf + 1, BLK, 0, on_done, &d), -EINVAL);
	assert_non_null(strstr(err_get(), "misaligned"));
	assert_int_equal(io_engine_write(eng, dev, buf, 100, 0, on_done, &d), -EINVAL);
	assert_int_equal(io_engine_write(eng, dev, buf, BLK, 513, on_done, &d), -EINVAL);
	assert_int_equal(io_engine_pending(eng), 0);
	/* nothing pending: reap returns at once, whatever the timeout */
	assert_int_equal(io_engine_reap(eng, 0), 0);
	assert_int_equal(io_engine_reap(eng, -1), 0);
	assert_int_equal(io_engine_reap(eng, 5), 0);
	/* zero length completes with 0 */
	completions = 0;
	assert_int_equal(io_engine_read(eng, dev, buf, 0, 0, on_done, &d), 0);
	reap_all(eng);
	assert_int_equal(d.order, 1);
	assert_int_equal(d.result, 0);
	/* reaping from a callback is refused, not a corruption */
	memset(&d, 0, sizeof d);
	nested_eng = eng;
	assert_int_equal(io_engine_read(eng, dev, buf, BLK, 0, on_done_nested, &d), 0);
	reap_all(eng);
	assert_int_equal(d.result, BLK);
	assert_int_equal(nested_result, -EDEADLK);
	/* destroy completes what is still pending */
	struct done late[3] = { { 0 } };
	for (int i = 0; i < 3; i++)
		assert_int_equal(io_engine_write(eng, dev, buf, BLK, (uint64_t)i * BLK,
						 on_done, &late[i]), 0);
	io_engine_destroy(eng);
	for (int i = 0; i < 3; i++)
		assert_int_equal(late[i].result, BLK);
	io_buf_free(buf);
	io_dev_close(dev);
}

/* A flush completes after every write queued before it; writes queued
 * after it are not waited for.  */
static void test_flush_ordering(void **state)
{
	struct io_dev *a = open_new("fa", 256 * BLK), *b = open_new("fb", 16 * BLK);
	struct io_engine *eng;
	unsigned char *buf = io_buf_alloc(256 * BLK);
	struct done w[256], f[4], wb = { 0 };
	struct io_log *log = io_log_new();

	(void)state;
	memset(w, 0, sizeof w);
	memset(f, 0, sizeof f);
	completions = 0;
	assert_int_equal(io_engine_create(8, &eng), 0);
	io_dev_set_log(a, log);
	for (int i = 0; i < 100; i++)
		assert_int_equal(io_engine_write(eng, a, buf + i * BLK, BLK, (uint64_t)i * BLK,
						 on_done, &w[i]), 0);
	/* a flush of another device does not wait for a's writes */
	assert_int_equal(io_engine_flush(eng, b, on_done, &f[0]), 0);
	assert_int_equal(io_engine_flush(eng, a, on_done, &f[1]), 0);
	for (int i = 100; i < 200; i++)
		assert_int_equal(io_engine_write(eng, a, buf + i * BLK, BLK, (uint64_t)i * BLK,
						 on_done, &w[i]), 0);
	assert_int_equal(io_engine_write(eng, b, buf, BLK, 0, on_done, &wb), 0);
	assert_int_equal(io_engine_flush(eng, a, on_done, &f[2]), 0);
	reap_all(eng);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(w[i].result, BLK);
		if (i < 100)
			assert_true(w[i].order < f[1].order);
		assert_true(w[i].order < f[2].order);
	}
	assert_int_equal(f[0].result, 0);
	assert_int_equal(f[1].result, 0);
	assert_int_equal(f[2].result, 0);
	/* the log agrees: 100 writes, then a flush, ... then the last flush */
	size_t e1 = io_log_flush_end(log, 1);
	assert_true(e1 >= 101);
	for (size_t i = 0; i < e1 - 1; i++)
		assert_int_equal(io_log_get(log, i)->op, IO_LOG_WRITE);
	assert_int_equal(io_log_flushes(log), 2);
	assert_int_equal(io_log_flush_end(log, 2), io_log_count(log));
	assert_int_equal(io_log_count(log), 202);

	/* a write failing ahead of a flush still releases it */
	memset(w, 0, sizeof w);
	memset(f, 0, sizeof f);
	io_dev_inject_fault(a, IO_FAULT_WRITE, 3, 1, EIO);
	for (int i = 0; i < 10; i++)
		assert_int_equal(io_engine_write(eng, a, buf, BLK, (uint64_t)i * BLK,
						 on_done, &w[i]), 0);
	assert_int_equal(io_engine_flush(eng, a, on_done, &f[0]), 0);
	reap_all(eng);
	assert_int_equal(w[3].result, -EIO);
	assert_int_equal(f[0].result, 0);
	for (int i = 0; i < 10; i++)
		assert_true(w[i].order < f[0].order);

	io_dev_set_log(a, NULL);
	io_log_free(log);
	io_engine_destroy(eng);
	io_buf_free(buf);
	io_dev_close(a);
	io_dev_close(b);
}

static void test_faults(void **state)
{
	struct io_dev *dev = open_new("faults", 16 * BLK);
	struct io_engine *eng;
	unsigned char *buf = io_buf_alloc(16 * BLK), *back = io_buf_alloc(BLK);
	struct done d[16], fl = { 0 };
	char want[64];

	(void)state;
	memset(d, 0, sizeof d);
	completions = 0;
	assert_int_equal(io_engine_create(4, &eng), 0);
	memset(buf, 0xab, 16 * BLK);
	io_dev_inject_fault(dev, IO_FAULT_WRITE, 3, 2, ENOSPC);
	for (int i = 0; i < 8; i++)
		assert_int_equal(io_engine_write(eng, dev, buf + i * BLK, BLK, (uint64_t)i * BLK,
						 on_done, &d[i]), 0);
	reap_all(eng);
	for (int i = 0; i < 8; i++) {
		if (i == 3 || i == 4) {
			assert_int_equal(d[i].result, -ENOSPC);
			assert_non_null(strstr(d[i].msg, "injected"));
			assert_non_null(strstr(d[i].msg, "/faults"));
			snprintf(want, sizeof want, "offset %d", i * (int)BLK);
			assert_non_null(strstr(d[i].msg, want));
		} else {
			assert_int_equal(d[i].result, BLK);
		}
		/* the faulted writes did not reach the file */
		assert_int_equal(io_dev_pread(dev, back, BLK, (uint64_t)i * BLK), 0);
		assert_int_equal(back[0], (i == 3 || i == 4) ? 0 : 0xab);
	}
	/* reads and flushes */
	memset(d, 0, sizeof d);
	io_dev_inject_fault(dev, IO_FAULT_READ, 1, 1, EIO);
	io_dev_inject_fault(dev, IO_FAULT_FLUSH, 0, 1, EROFS);
	for (int i = 0; i < 3; i++)
		assert_int_equal(io_engine_read(eng, dev, buf + i * BLK, BLK, 0, on_done, &d[i]), 0);
	assert_int_equal(io_engine_flush(eng, dev, on_done, &fl), 0);
	reap_all(eng);
	assert_int_equal(d[0].result, BLK);
	assert_int_equal(d[1].result, -EIO);
	assert_non_null(strstr(d[1].msg, "read"));
	assert_int_equal(d[2].result, BLK);
	assert_int_equal(fl.result, -EROFS);
	assert_non_null(strstr(fl.msg, "flush"));
	assert_non_null(strstr(fl.msg, "/faults"));
	io_engine_destroy(eng);
	io_buf_free(buf);
	io_buf_free(back);
	io_dev_close(dev);
}

/* A request the kernel refuses at io_submit: its callback gets the
 * errno with a message naming the device, and a flush queued behind it
 * still completes.  */
static void test_submit_error(void **state)
{
	char path[256];
	struct io_dev *dev = open_new("suberr", 16 * BLK);
	struct io_engine *eng;
	unsigned char *buf = io_buf_alloc(BLK);
	struct done w = { 0 }, ok = { 0 }, f = { 0 };
	int saved, ro;

	(void)state;
	snprintf(path, sizeof path, "%s/suberr", tmpdir);
	completions = 0;
	assert_int_equal(io_engine_create(4, &eng), 0);
	/* the device now looks writable to ioengine, but its fd is not */
	saved = dup(dev->fd);
	ro = open(path, O_RDONLY | O_DIRECT);
	assert_true(saved >= 0 && ro >= 0);
	assert_true(dup2(ro, dev->fd) >= 0);
	assert_int_equal(io_engine_write(eng, dev, buf, BLK, BLK, on_done, &w), 0);
	assert_int_equal(io_engine_submit(eng), 0);
	assert_true(dup2(saved, dev->fd) >= 0);
	assert_int_equal(io_engine_write(eng, dev, buf, BLK, 0, on_done, &ok), 0);
	assert_int_equal(io_engine_flush(eng, dev, on_done, &f), 0);
	reap_all(eng);
	assert_int_equal(w.result, -EBADF);
	assert_non_null(strstr(w.msg, "submitting write"));
	assert_non_null(strstr(w.msg, "/suberr"));
	assert_non_null(strstr(w.msg, "offset 4096"));
	assert_int_equal(ok.result, BLK);
	assert_int_equal(f.result, 0);
	assert_true(f.order > w.order && f.order > ok.order);
	close(ro);
	close(saved);
	io_engine_destroy(eng);
	io_buf_free(buf);
	io_dev_close(dev);
}

/* Drive the engine only from epoll: the eventfd must say when to reap,
 * for kernel completions, injected faults and flushes alike.  */
static void test_epoll(void **state)
{
	struct io_dev *dev = open_new("epoll", 64 * BLK);
	struct io_engine *eng;
	unsigned char *buf = io_buf_alloc(64 * BLK);
	struct done d[70];
	struct epoll_event ev = { .events = EPOLLIN }, out;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	(void)state;
	memset(d, 0, sizeof d);
	completions = 0;
	assert_true(ep >= 0);
	assert_int_equal(io_engine_create(16, &eng), 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, io_engine_eventfd(eng), &ev), 0);
	assert_int_equal(epoll_wait(ep, &out, 1, 0), 0);	/* idle: not readable */

	io_dev_inject_fault(dev, IO_FAULT_WRITE, 10, 1, EIO);
	for (int i = 0; i < 64; i++)
		assert_int_equal(io_engine_write(eng, dev, buf + i * BLK, BLK, (uint64_t)i * BLK,
						 on_done, &d[i]), 0);
	assert_int_equal(io_engine_flush(eng, dev, on_done, &d[64]), 0);
	assert_int_equal(io_engine_submit(eng), 0);
	while (io_engine_pending(eng) > 0) {
		assert_int_equal(epoll_wait(ep, &out, 1, -1), 1);
		assert_true(io_engine_reap(eng, 0) >= 0);
	}
	assert_int_equal(completions, 65);
	assert_int_equal(d[10].result, -EIO);
	assert_int_equal(d[64].result, 0);

	/* an injected fault alone (no kernel I/O) also wakes epoll */
	memset(d, 0, sizeof d);
	io_dev_inject_fault(dev, IO_FAULT_READ, 0, 1, EIO);
	assert_int_equal(io_engine_read(eng, dev, buf, BLK, 0, on_done, &d[0]), 0);
	assert_int_equal(epoll_wait(ep, &out, 1, -1), 1);
	assert_int_equal(io_engine_reap(eng, 0), 1);
	assert_int_equal(d[0].result, -EIO);

	close(ep);
	io_engine_destroy(eng);
	io_buf_free(buf);
	io_dev_close(dev);
}

struct snap_ctx {
	struct done d;
	const char *path;
	void *img;
	size_t len;
};

/* Flush callback: the file as it is now is what must survive a crash. */
static void on_flush_snapshot(void *arg, ssize_t result)
{
	struct snap_ctx *s = arg;

	on_done(&s->d, result);
	s->img = slurp(s->path, &s->len);
}

/* Record an async workload, then replay the log onto a copy of the
 * starting image up to each flush: each must equal the file as it was
 * when that flush completed.  */
static void test_powercut_replay(void **state)
{
	enum { ROUNDS = 6, NBLK = 128 };
	char path[256], base[256];
	struct io_dev *dev, *target;
	struct io_engine *eng;
	struct io_log *log = io_log_new();
	unsigned char *buf = io_buf_alloc(NBLK * BLK * ROUNDS);
	struct snap_ctx snap[ROUNDS];
	struct done d[NBLK];
	size_t len;

	(void)state;
	snprintf(path, sizeof path, "%s/pc", tmpdir);
	snprintf(base, sizeof base, "%s/pc.base", tmpdir);
	dev = open_new("pc", NBLK * BLK);
	fill(buf, NBLK * BLK, 4242);
	assert_int_equal(io_dev_pwrite(dev, buf, NBLK * BLK, 0), 0);
	void *img = slurp(path, &len);
	int fd = open(base, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(pwrite(fd, img, len, 0), (ssize_t)len);
	close(fd);
	free(img);

	assert_int_equal(io_engine_create(16, &eng), 0);
	io_dev_set_log(dev, log);
	memset(snap, 0, sizeof snap);
	for (int r = 0; r < ROUNDS; r++) {
		unsigned char *rb = buf + (size_t)r * NBLK * BLK;
		bool used[NBLK] = { false };
		int nw = 20 + (int)(rnd() % 40);

		memset(d, 0, sizeof d);
		/* distinct blocks within a round, some appending past the end */
		for (int i = 0; i < nw; i++) {
			unsigned blk = rnd() % NBLK;

			if (used[blk])
				continue;
			used[blk] = true;
			fill(rb + (size_t)i * BLK, BLK, (unsigned)(r * 1000 + i));
			uint64_t off = (uint64_t)blk * BLK + (r == 3 ? NBLK * BLK : 0);
			assert_int_equal(io_engine_write(eng, dev, rb + (size_t)i * BLK, BLK, off,
							 on_done, &d[i]), 0);
		}
		reap_all(eng);
		snap[r].path = path;
		assert_int_equal(io_engine_flush(eng, dev, on_flush_snapshot, &snap[r]), 0);
		reap_all(eng);
		assert_int_equal(snap[r].d.result, 0);
	}
	io_dev_set_log(dev, NULL);
	assert_int_equal(io_log_flushes(log), ROUNDS);

	for (int k = 1; k <= ROUNDS; k++) {
		img = slurp(base, &len);
		char copy[256];
		snprintf(copy, sizeof copy, "%s/pc.copy", tmpdir);
		fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_int_equal(pwrite(fd, img, len, 0), (ssize_t)len);
		close(fd);
		free(img);
		assert_int_equal(io_dev_open(copy, IO_DEV_RDWR, &target), 0);
		assert_int_equal(io_log_replay(log, target, io_log_flush_end(log, (size_t)k)), 0);
		io_dev_close(target);
		img = slurp(copy, &len);
		assert_int_equal(len, snap[k - 1].len);
		assert_memory_equal(img, snap[k - 1].img, len);
		free(img);
		free(snap[k - 1].img);
	}
	io_log_free(log);
	io_engine_destroy(eng);
	io_buf_free(buf);
	io_dev_close(dev);
}

/* Writes keep flowing while flushes are outstanding.  Each block is
 * written once, so whatever else a crash state holds, replaying up to
 * flush k must contain every write queued before flush k.  */
static void test_powercut_concurrent(void **state)
{
	enum { ROUNDS = 8, PER = 24, NBLK = ROUNDS * PER * 2 };
	struct io_dev *dev = open_new("pcc", NBLK * BLK), *target;
	struct io_engine *eng;
	struct io_log *log = io_log_new();
	unsigned char *data = io_buf_alloc(NBLK * BLK), *img = io_buf_alloc(NBLK * BLK);
	struct done w[NBLK], f[ROUNDS];
	int flush_after[ROUNDS];	/* writes queued before flush k */
	int nw = 0;
	char copy[256];

	(void)state;
	memset(w, 0, sizeof w);
	memset(f, 0, sizeof f);
	completions = 0;
	assert_int_equal(io_engine_create(8, &eng), 0);
	io_dev_set_log(dev, log);
	for (int r = 0; r < ROUNDS; r++) {
		for (int half = 0; half < 2; half++) {
			for (int i = 0; i < PER; i++, nw++) {
				fill(data + (size_t)nw * BLK, BLK, (unsigned)nw + 1);
				assert_int_equal(io_engine_write(eng, dev, data + (size_t)nw * BLK, BLK,
								 (uint64_t)nw * BLK, on_done, &w[nw]), 0);
			}
			if (half == 0) {
				flush_after[r] = nw;
				assert_int_equal(io_engine_flush(eng, dev, on_done, &f[r]), 0);
			}
			assert_true(io_engine_reap(eng, 0) >= 0);
		}
	}
	reap_all(eng);
	io_dev_set_log(dev, NULL);
	assert_int_equal(io_log_flushes(log), ROUNDS);

	snprintf(copy, sizeof copy, "%s/pcc.copy", tmpdir);
	for (int k = 1; k <= ROUNDS; k++) {
		assert_int_equal(f[k - 1].result, 0);
		target = open_path(copy, NBLK * BLK);	/* the start: all zeros */
		assert_int_equal(io_log_replay(log, target, io_log_flush_end(log, (size_t)k)), 0);
		assert_int_equal(io_dev_pread(target, img, NBLK * BLK, 0), 0);
		io_dev_close(target);
		for (int i = 0; i < nw; i++) {
			bool before = i < flush_after[k - 1];
			bool zero = img[(size_t)i * BLK] == 0 &&
				    !memcmp(img + (size_t)i * BLK, img + (size_t)i * BLK + 1, BLK - 1);

			if (before) {
				assert_true(w[i].order < f[k - 1].order);
				assert_memory_equal(img + (size_t)i * BLK, data + (size_t)i * BLK, BLK);
			} else if (!zero) {
				/* a later write that happened to complete first */
				assert_memory_equal(img + (size_t)i * BLK, data + (size_t)i * BLK, BLK);
			}
		}
	}
	io_log_free(log);
	io_engine_destroy(eng);
	io_buf_free(data);
	io_buf_free(img);
	io_dev_close(dev);
}

static int teardown(void **state)
{
	(void)state;
	return tmpdir_remove();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_direct),
		cmocka_unit_test(test_buffered),
		cmocka_unit_test(test_short_transfers),
		cmocka_unit_test(test_gate),
		cmocka_unit_test(test_argument_errors),
		cmocka_unit_test(test_flush_ordering),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_submit_error),
		cmocka_unit_test(test_epoll),
		cmocka_unit_test(test_powercut_replay),
		cmocka_unit_test(test_powercut_concurrent),
	};

	return cmocka_run_group_tests(tests, tmpdir_setup, teardown);
}
