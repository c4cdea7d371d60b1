/*
 * ioengine/internal.h - what the ioengine source files share with each
 * other (and with its unit tests); not part of the public interface.
 *
 * Invariants:
 *  - dev->lock guards dev->log and the fault rules; the I/O paths take it
 *    only briefly (to count a fault or append to a log), never across a
 *    system call that moves data.
 *  - io_dev_fault_check() is called exactly once per operation, before any
 *    byte moves, so a faulted operation never touches the device.
 *  - Recording happens after an operation completed successfully and
 *    copies the data, so the caller may reuse its buffer at once.
 */
#ifndef CSNAP_IOENGINE_INTERNAL_H
#define CSNAP_IOENGINE_INTERNAL_H

#include "ioengine/ioengine.h"
#include "ioengine/wlog.h"
#include "utils/clock.h"

#include <pthread.h>

#define IO_FAULT_MAX 8		/* concurrent fault rules per device */

struct io_fault {
	int ops;		/* IO_FAULT_* mask */
	unsigned skip;		/* matching ops still to let through */
	unsigned count;		/* failures still to inject, if !forever */
	bool forever;
	int errnum;		/* positive */
};

struct io_dev {
	char *path;
	int fd;
	bool writable;
	bool direct;
	bool blockdev;
	unsigned align;
	uint64_t size;

	pthread_mutex_t lock;
	struct io_log *log;
	unsigned nfaults;	/* read without the lock as a fast path */
	unsigned async_pending;	/* engine requests not yet completed (atomic) */
	int wlog_id;		/* >= 0: in the write log (ioengine/wlog.c) */
	struct io_fault faults[IO_FAULT_MAX];
};

/* Test hook: when set, the next io_dev_open() behaves as if open(O_DIRECT)
 * had failed with EINVAL (as on file systems without direct I/O), so the
 * buffered fallback can be tested where tmpfs accepts O_DIRECT.  Cleared
 * by the open that consumes it.  */
extern bool io_test_refuse_direct_once;

/* Returns 0, or -errnum when an injected fault fires for this operation
 * (op: one IO_FAULT_* bit).  */
int io_dev_fault_check(struct io_dev *dev, int op);

/* Append a completed write / flush to the device's log, if any, and to
 * the write log (WSEQ: what io_wlog_issue() returned right before the
 * write was handed to the kernel, 0 if the device is not logged; T0:
 * io_wlog_t0() taken right before the fdatasync was called).  */
void io_dev_record_write(struct io_dev *dev, const void *buf, size_t len, uint64_t off,
			 uint64_t wseq);
void io_dev_record_flush(struct io_dev *dev, int64_t t0);

/* The cross-process write log (wlog.c, format in wlog.h).  */
struct stat;
void io_wlog_dev_opened(struct io_dev *dev, const struct stat *st);
/* A WRITE record (with the data) for a write about to be issued on a
 * logged device; returns its seq (0 if logging stopped).  */
uint64_t io_wlog_issue(struct io_dev *dev, const void *buf, size_t len, uint64_t off);
/* A DONE (seq) or FLUSH (t0) record, t1 = now.  */
void io_wlog_io(struct io_dev *dev, enum io_wlog_type type, uint64_t seq,
		size_t len, uint64_t off, int64_t t0);
/* The clock for a write log record's t0; 0 (and no clock read) when the
 * device is not logged.  */
static inline int64_t io_wlog_t0(const struct io_dev *dev)
{
	return dev->wlog_id >= 0 ? csnap_now_ns() : 0;
}

/* Validate a transfer: bounds, writability and, for direct devices, the
 * alignment of buffer, length and offset.  0 or -errno with err_set().  */
int io_dev_check_rw(const struct io_dev *dev, const void *buf, size_t len,
		    uint64_t off, bool write);

/* Describe the outcome of an injected fault in err_set().  */
int io_fault_err(const struct io_dev *dev, const char *what, size_t len,
		 uint64_t off, int errnum);

#endif
