/*
 * src/export/dio.c - unaligned-safe asynchronous I/O with sector range
 * locks.  See dio.h for the rules; this file only implements them.
 *
 * A write goes: lock (maybe wait) -> [read edges] -> write -> unlock ->
 * [flush if FUA] -> done.  Zeroing is a window of writes from a shared
 * zero buffer.
 */
#include "src/export/dio.h"

#include "ioengine/ioengine.h"
#include "src/export/loop.h"
#include "utils/assert.h"
#include "utils/err.h"
#include "utils/freelist.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define DIO_ZERO_BUF	(1024 * 1024)	/* bytes per zeroing write */
#define DIO_ZERO_WINDOW	8		/* zeroing writes in flight */

struct dio_op;

struct dio {
	struct io_engine *eng;
	struct io_dev *dev;
	unsigned align;
	void *zero;			/* DIO_ZERO_BUF zeroes, lazily */
	struct dio_op *active;		/* writes holding sector locks */
	struct dio_op *waiting;		/* FIFO of writes waiting for locks */
	struct freelist free_ops;	/* recycled ops */
	unsigned inflight;
};

enum dio_kind { DIO_OP_READ, DIO_OP_WRITE, DIO_OP_ZERO, DIO_OP_FLUSH };

struct dio_op {
	struct dio *d;
	enum dio_kind kind;
	unsigned flags;
	const void *src;		/* write source */
	void *dst;			/* read destination */
	uint64_t off, len;
	dio_done_fn done;
	void *arg;
	io_gate_fn gate;		/* writes: asked right before issue */
	void *gate_arg;
	int err;
	unsigned pending;		/* sub-I/Os outstanding */
	/* sector lock */
	uint64_t lk_start, lk_end;
	bool rmw;
	struct dio_op *next;		/* active / waiting / free list */
	/* bounce buffer covering [lk_start, lk_end) or the read extent */
	void *bounce;
	uint64_t bstart;
	/* zeroing progress */
	uint64_t zpos;
	bool issuing;			/* zero_next() is on the stack */
};

/* The engine to queue on: the running loop thread's (loop.h: with several
 * loop threads, the I/O completes on the thread that queued it), else
 * the one the dio was created with.  The locks and lists here are shared
 * state: the export lock guards them.  */
static struct io_engine *eng_of(const struct dio *d)
{
	struct io_engine *e = loop_thread_io();

	CSNAP_ASSERT(loop_locked());
	return e ? e : d->eng;
}

static uint64_t down(uint64_t x, unsigned a) { return x - x % a; }
static uint64_t up(uint64_t x, unsigned a) { return down(x + a - 1, a); }

int dio_create(struct io_engine *eng, struct io_dev *dev, struct dio **out)
{
	struct dio *d = calloc(1, sizeof *d);

	if (!d)
		return err_set(ENOMEM, "out of memory");
	d->eng = eng;
	d->dev = dev;
	d->align = io_dev_align(dev);
	if (d->align < 512)
		d->align = 512;
	*out = d;
	return 0;
}

void dio_destroy(struct dio *d)
{
	if (!d)
		return;
	freelist_drain(&d->free_ops);
	io_buf_free(d->zero);
	free(d);
}

struct io_dev *dio_dev(const struct dio *d) { return d->dev; }
unsigned dio_align(const struct dio *d) { return d->align; }
unsigned dio_inflight(const struct dio *d) { return d->inflight; }

static struct dio_op *op_new(struct dio *d, enum dio_kind kind, dio_done_fn done, void *arg)
{
	struct dio_op *op = freelist_get(&d->free_ops, sizeof *op);

	if (!op)
		return NULL;
	op->d = d;
	op->kind = kind;
	op->done = done;
	op->arg = arg;
	d->inflight++;
	return op;
}

static void op_finish(struct dio_op *op, int err)
{
	struct dio *d = op->d;
	dio_done_fn done = op->done;
	void *arg = op->arg;

	io_buf_free(op->bounce);
	op->bounce = NULL;
	freelist_push(&d->free_ops, op);
	d->inflight--;
	done(arg, err);
}

static int io_result(ssize_t res, size_t want)
{
	if (res < 0)
		return (int)res;
	if ((size_t)res != want)
		return -EIO;
	return 0;
}

/* ---- reads ------------------------------------------------------------ */

static void read_done(void *arg, ssize_t res)
{
	struct dio_op *op = arg;
	int err = io_result(res, op->bounce ? up(op->off + op->len, op->d->align) - op->bstart
				    : op->len);

	if (!err && op->bounce)
		memcpy(op->dst, (char *)op->bounce + (op->off - op->bstart), op->len);
	op_finish(op, err);
}

void dio_read(struct dio *d, void *buf, size_t len, uint64_t off,
	      dio_done_fn done, void *arg)
{
	dio_read_gated(d, buf, len, off, NULL, NULL, done, arg);
}

void dio_read_gated(struct dio *d, void *buf, size_t len, uint64_t off,
		    io_gate_fn gate, void *gate_arg, dio_done_fn done, void *arg)
{
	struct dio_op *op = op_new(d, DIO_OP_READ, done, arg);
	unsigned a = d->align;
	int rc;

	if (!op) {
		done(arg, -ENOMEM);
		return;
	}
	op->dst = buf;
	op->off = off;
	op->len = len;
	if (off % a == 0 && len % a == 0 && (uintptr_t)buf % a == 0) {
		rc = io_engine_read_gated(eng_of(d), d->dev, buf, len, off, gate, gate_arg,
					  read_done, op);
	} else {
		uint64_t s = down(off, a), e = up(off + len, a);

		op->bstart = s;
		op->bounce = io_buf_alloc(e - s);
		if (!op->bounce) {
			op_finish(op, -ENOMEM);
			return;
		}
		rc = io_engine_read_gated(eng_of(d), d->dev, op->bounce, e - s, s, gate, gate_arg,
					  read_done, op);
	}
	if (rc < 0)
		op_finish(op, rc);
}

/* ---- sector locks ----------------------------------------------------- */

static bool conflicts(const struct dio_op *a, const struct dio_op *b)
{
	return a->lk_start < b->lk_end && b->lk_start < a->lk_end && (a->rmw || b->rmw);
}

static bool conflicts_any(const struct dio_op *op, const struct dio_op *list,
			  const struct dio_op *stop)
{
	for (const struct dio_op *o = list; o && o != stop; o = o->next)
		if (conflicts(op, o))
			return true;
	return false;
}

static void write_start(struct dio_op *op);

static void lock_or_wait(struct dio_op *op)
{
	struct dio *d = op->d;
	struct dio_op **p;

	if (!conflicts_any(op, d->active, NULL) && !conflicts_any(op, d->waiting, NULL)) {
		op->next = d->active;
		d->active = op;
		write_start(op);
		return;
	}
	for (p = &d->waiting; *p; p = &(*p)->next)
		;
	op->next = NULL;
	*p = op;
}

static void unlock(struct dio_op *op)
{
	struct dio *d = op->d;
	struct dio_op **p, *ready = NULL, **ready_tail = &ready;

	for (p = &d->active; *p; p = &(*p)->next) {
		if (*p == op) {
			*p = op->next;
			break;
		}
	}
	/* Waiters that no longer conflict with an active lock or with an
	 * earlier waiter go, in arrival order.  */
	p = &d->waiting;
	while (*p) {
		struct dio_op *w = *p;

		if (!conflicts_any(w, d->active, NULL) && !conflicts_any(w, d->waiting, w) &&
		    !conflicts_any(w, ready, NULL)) {
			*p = w->next;
			w->next = NULL;
			*ready_tail = w;
			ready_tail = &w->next;
		} else {
			p = &w->next;
		}
	}
	while (ready) {
		struct dio_op *w = ready;

		ready = w->next;
		w->next = d->active;
		d->active = w;
		write_start(w);
	}
}

/* ---- writes ----------------------------------------------------------- */

static void write_finish(struct dio_op *op, int err);

static void flush_done(void *arg, ssize_t res)
{
	struct dio_op *op = arg;

	op_finish(op, op->err ? op->err : (res < 0 ? (int)res : 0));
}

static void write_finish(struct dio_op *op, int err)
{
	int rc;

	unlock(op);
	io_buf_free(op->bounce);
	op->bounce = NULL;
	if (err || !(op->flags & DIO_FUA)) {
		op_finish(op, err);
		return;
	}
	rc = io_engine_flush(eng_of(op->d), op->d->dev, flush_done, op);
	if (rc < 0)
		op_finish(op, rc);
}

static void write_done(void *arg, ssize_t res)
{
	struct dio_op *op = arg;

	write_finish(op, io_result(res, op->lk_end - op->lk_start));
}

static void write_issue(struct dio_op *op)
{
	struct dio *d = op->d;
	const void *src = op->bounce ? op->bounce : op->src;
	int rc;

	rc = io_engine_write_gated(eng_of(d), d->dev, src, op->lk_end - op->lk_start,
				   op->lk_start, op->gate, op->gate_arg, write_done, op);
	if (rc < 0)
		write_finish(op, rc);
}

static void edge_done(void *arg, ssize_t res)
{
	struct dio_op *op = arg;
	int err = io_result(res, op->d->align);

	if (err && !op->err)
		op->err = err;
	if (--op->pending)
		return;
	if (op->err) {
		write_finish(op, op->err);
		return;
	}
	memcpy((char *)op->bounce + (op->off - op->bstart), op->src, op->len);
	write_issue(op);
}

static void write_start(struct dio_op *op)
{
	struct dio *d = op->d;
	unsigned a = d->align;
	uint64_t s = op->lk_start, e = op->lk_end;
	bool head, tail;
	int rc;

	if (!op->rmw) {
		if ((uintptr_t)op->src % a) {
			op->bounce = io_buf_alloc(e - s);
			if (!op->bounce) {
				write_finish(op, -ENOMEM);
				return;
			}
			memcpy(op->bounce, op->src, op->len);
		}
		write_issue(op);
		return;
	}
	op->bounce = io_buf_alloc(e - s);
	if (!op->bounce) {
		write_finish(op, -ENOMEM);
		return;
	}
	op->bstart = s;
	head = op->off != s;
	tail = op->off + op->len != e && !(head && e - s == a);
	op->pending = (unsigned)head + (unsigned)tail;
	if (head) {
		rc = io_engine_read(eng_of(d), d->dev, op->bounce, a, s, edge_done, op);
		if (rc < 0) {
			op->pending -= 1 + tail;
			write_finish(op, rc);
			return;
		}
	}
	if (tail) {
		rc = io_engine_read(eng_of(d), d->dev, (char *)op->bounce + (e - a - s), a,
				    e - a, edge_done, op);
		if (rc < 0) {
			op->err = rc;
			if (--op->pending == 0)
				write_finish(op, rc);
			return;
		}
	}
}

static void write_queue(struct dio_op *op)
{
	unsigned a = op->d->align;

	op->lk_start = down(op->off, a);
	op->lk_end = up(op->off + op->len, a);
	op->rmw = op->off % a || op->len % a;
	lock_or_wait(op);
}

void dio_write_gated(struct dio *d, const void *buf, size_t len, uint64_t off,
		     unsigned flags, io_gate_fn gate, void *gate_arg,
		     dio_done_fn done, void *arg)
{
	struct dio_op *op = op_new(d, DIO_OP_WRITE, done, arg);

	if (!op) {
		done(arg, -ENOMEM);
		return;
	}
	op->src = buf;
	op->off = off;
	op->len = len;
	op->flags = flags;
	op->gate = gate;
	op->gate_arg = gate_arg;
	write_queue(op);
}

void dio_write(struct dio *d, const void *buf, size_t len, uint64_t off,
	       unsigned flags, dio_done_fn done, void *arg)
{
	dio_write_gated(d, buf, len, off, flags, NULL, NULL, done, arg);
}

/* ---- zeroes ----------------------------------------------------------- */

static void zero_next(struct dio_op *z);

static void zero_piece_done(void *arg, int err)
{
	struct dio_op *z = arg;

	if (err && !z->err)
		z->err = err;
	z->pending--;
	if (!z->issuing)
		zero_next(z);
}

/* Keeps up to DIO_ZERO_WINDOW piece writes in flight; each piece is one
 * dio_write() from the zero buffer, so edges get read-modify-write and
 * the middle goes out in aligned DIO_ZERO_BUF writes.  */
static void zero_next(struct dio_op *z)
{
	struct dio *d = z->d;
	uint64_t end = z->off + z->len;
	int rc;

	z->issuing = true;
	while (!z->err && z->zpos < end && z->pending < DIO_ZERO_WINDOW) {
		uint64_t n = end - z->zpos;

		if (z->zpos % d->align)
			n = n < d->align - z->zpos % d->align ? n : d->align - z->zpos % d->align;
		else if (n > DIO_ZERO_BUF)
			n = DIO_ZERO_BUF;
		else if (n > d->align && n % d->align)
			n -= n % d->align;
		z->pending++;
		z->zpos += n;
		dio_write_gated(d, d->zero, n, z->zpos - n, 0, z->gate, z->gate_arg,
				zero_piece_done, z);
	}
	z->issuing = false;
	if (z->pending)
		return;
	if (z->err || !(z->flags & DIO_FUA)) {
		op_finish(z, z->err);
		return;
	}
	rc = io_engine_flush(eng_of(d), d->dev, flush_done, z);
	if (rc < 0)
		op_finish(z, rc);
}

void dio_zero(struct dio *d, uint64_t len, uint64_t off, unsigned flags,
	      dio_done_fn done, void *arg)
{
	dio_zero_gated(d, len, off, flags, NULL, NULL, done, arg);
}

void dio_zero_gated(struct dio *d, uint64_t len, uint64_t off, unsigned flags,
		    io_gate_fn gate, void *gate_arg, dio_done_fn done, void *arg)
{
	struct dio_op *z;

	if (!d->zero && !(d->zero = io_buf_alloc(DIO_ZERO_BUF))) {
		done(arg, -ENOMEM);
		return;
	}
	z = op_new(d, DIO_OP_ZERO, done, arg);
	if (!z) {
		done(arg, -ENOMEM);
		return;
	}
	z->off = off;
	z->len = len;
	z->zpos = off;
	z->flags = flags;
	z->gate = gate;
	z->gate_arg = gate_arg;
	zero_next(z);
}

/* ---- flush ------------------------------------------------------------ */

void dio_flush(struct dio *d, dio_done_fn done, void *arg)
{
	struct dio_op *op = op_new(d, DIO_OP_FLUSH, done, arg);
	int rc;

	if (!op) {
		done(arg, -ENOMEM);
		return;
	}
	rc = io_engine_flush(eng_of(d), d->dev, flush_done, op);
	if (rc < 0)
		op_finish(op, rc);
}
