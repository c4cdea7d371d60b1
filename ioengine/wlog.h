/*
 * ioengine/wlog.h - the cross-process write log: the record format that
 * ioengine/wlog.c appends and the power-cut replay (tests/tools/wlog_replay.c)
 * reads.  A test harness, not a feature: it is on only when the environment
 * variable CSNAP_WRITELOG names a directory (docs/ioengine.md,
 * docs/RELIABILITY.md "Whole-cluster power cuts").
 *
 * Every process (master server, exports, CLI) that opens a device for
 * writing appends to its own file DIR/<pid>.wlog: a DEV record per device
 * opened for writing, then a WRITE record (with its data) as each write is
 * handed to the kernel and a DONE record once it completed, and a FLUSH
 * record per completed flush.  Times are CLOCK_MONOTONIC nanoseconds, one
 * clock for every process on the host.
 *
 * Invariants (what makes a replay sound):
 *  - WRITE t0 is read before the write is handed to the kernel, and its
 *    DONE record's t1 after it completed (before the caller is told): the
 *    write was in flight only inside [t0, t1].  A WRITE without a DONE
 *    (its process was killed, or the write failed) may or may not have
 *    reached the device, and never durably as far as anyone was told.
 *  - FLUSH t0 is read immediately before fdatasync() is called and t1
 *    after it returned (before the caller is told).  So every write to the
 *    same file whose t1 < a flush's t0 was complete before that
 *    fdatasync started: it is durable once the flush's t1 has passed, no
 *    matter which process wrote it.
 *  - A record is one write(2) of header + data with a CRC-32C over both;
 *    a process killed in the middle leaves at most a torn last record,
 *    which readers recognise and ignore.  The WRITE is logged before the
 *    write is issued, so no write that reached the device is missing.
 *  - seq numbers a process's WRITE records 1, 2, 3... in file order; a
 *    DONE names the WRITE it completes by seq.
 */
#ifndef CSNAP_IOENGINE_WLOG_H
#define CSNAP_IOENGINE_WLOG_H

#include <stdint.h>

#define IO_WLOG_ENV	"CSNAP_WRITELOG"
#define IO_WLOG_MAGIC	0x4c57534eu	/* "NSWL" */

enum io_wlog_type {
	IO_WLOG_DEV = 1,	/* off = st_dev (st_rdev for a block device),
				 * len = st_ino (0 for a block device),
				 * data = the path as opened */
	IO_WLOG_WRITE = 2,	/* issued; data = the bytes written at off */
	IO_WLOG_FLUSH = 3,
	IO_WLOG_DONE = 4,	/* the WRITE numbered seq completed (t1) */
};

struct io_wlog_rec {
	uint32_t magic;
	uint32_t type;		/* enum io_wlog_type */
	uint32_t pid;
	uint32_t dev;		/* the process's device number (its DEV record) */
	uint64_t off;
	uint64_t len;
	int64_t t0, t1;		/* CLOCK_MONOTONIC ns, see above */
	uint64_t seq;		/* WRITE, DONE: see above */
	uint32_t datalen;	/* bytes that follow the header */
	uint32_t crc;		/* CRC-32C of header (crc = 0) and data */
};

#endif
