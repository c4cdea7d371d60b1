/*
 * ioengine/ioengine.h - block I/O for csnap: devices opened O_DIRECT,
 * aligned buffers, synchronous helpers, an asynchronous engine on libaio
 * whose completions are signalled on an eventfd (so it plugs into an epoll
 * loop), recording of writes/flushes for power-cut tests, and fault
 * injection.
 *
 * ioengine knows no on-disk format: it moves bytes at offsets.
 *
 * Invariants:
 *  - Every buffer, offset and length given to a direct device is a multiple
 *    of io_dev_align(dev) (the logical sector size, at least 512).  Buffers
 *    from io_buf_alloc() are 4096-aligned and always acceptable.
 *  - O_DIRECT is used whenever the file system accepts it; the buffered
 *    fallback (tmpfs) is taken only when open(O_DIRECT) fails with EINVAL,
 *    and io_dev_flush() then does fdatasync so durability holds either way.
 *  - All calls return 0 / bytes on success or a negative errno, with
 *    err_set() describing the failure.  Short transfers are retried until
 *    complete or an error occurs; they are never returned as success.
 */
#ifndef CSNAP_IOENGINE_H
#define CSNAP_IOENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct io_dev;
struct io_engine;
struct io_log;

/* ---- devices ---------------------------------------------------------- */

#define IO_DEV_RDONLY  0x1
#define IO_DEV_RDWR    0x2
#define IO_DEV_CREATE  0x4	/* create a regular file if missing */
#define IO_DEV_EXCL    0x8	/* O_EXCL for block devices (exclusive open) */

int io_dev_open(const char *path, int flags, struct io_dev **out);
void io_dev_close(struct io_dev *dev);
const char *io_dev_path(const struct io_dev *dev);
int io_dev_fd(const struct io_dev *dev);
/* Size in bytes (block device size or file length at open time).  */
uint64_t io_dev_size(const struct io_dev *dev);
/* Re-read the size (after growing a file or device).  */
int io_dev_refresh_size(struct io_dev *dev);
/* Logical sector size: required alignment for direct I/O (512 or 4096). */
unsigned io_dev_align(const struct io_dev *dev);
bool io_dev_is_direct(const struct io_dev *dev);
bool io_dev_is_blockdev(const struct io_dev *dev);

/* Synchronous, full-length transfers: 0 when every byte moved, else a
 * negative errno (reading past the end of the device is -EIO).  */
int io_dev_pread(struct io_dev *dev, void *buf, size_t len, uint64_t off);
int io_dev_pwrite(struct io_dev *dev, const void *buf, size_t len, uint64_t off);
/* Durable: everything written before is on stable storage when it returns. */
int io_dev_flush(struct io_dev *dev);

/* 4096-aligned, zero-filled.  NULL on failure (err_set).  */
void *io_buf_alloc(size_t len);
void io_buf_free(void *buf);

/* ---- asynchronous engine ---------------------------------------------- */

/* Completion: result is the full byte count on success (0 for a flush) or
 * a negative errno, with err_get() naming device and offset while the
 * callback runs.  Called from io_engine_reap(), on the thread that reaps.
 * A callback may queue new I/O and call io_engine_submit(), but must not
 * call io_engine_reap() (-EDEADLK) or io_engine_destroy().
 *
 * One thread drives an engine; its buffers must stay valid until the
 * callback.  Misaligned or out-of-range requests are refused at once by
 * io_engine_read/write (-EINVAL); device errors arrive in the callback.  */
typedef void (*io_done_fn)(void *arg, ssize_t result);

/* depth: maximum I/Os in flight; more submissions are queued internally.
 * io_engine_destroy() first completes everything pending (callbacks run). */
int io_engine_create(unsigned depth, struct io_engine **out);
void io_engine_destroy(struct io_engine *eng);
/* An eventfd that becomes readable when completions are ready.  */
int io_engine_eventfd(const struct io_engine *eng);

/* Queue an I/O.  Queued requests are submitted in batches by
 * io_engine_submit() (or automatically when the batch fills).  */
int io_engine_read(struct io_engine *eng, struct io_dev *dev, void *buf,
		   size_t len, uint64_t off, io_done_fn done, void *arg);
int io_engine_write(struct io_engine *eng, struct io_dev *dev, const void *buf,
		    size_t len, uint64_t off, io_done_fn done, void *arg);
/* Completes after every write to DEV that completed before it was queued is
 * durable -- and also every write to DEV queued on this engine before it,
 * even if still in flight (the flush waits for them, then fdatasyncs on a
 * worker thread).  */
/* A write with a gate: GATE(GATE_ARG) is asked immediately before the
 * write is handed to the kernel (the io_submit that carries it, and again
 * before the rest of a short write is resubmitted); false fails the write
 * with -EKEYEXPIRED without moving its (remaining) bytes.  For writes
 * whose permission expires with time (the export's origin-write grant,
 * docs/RELIABILITY.md): the check is made at the moment of issue, not
 * when the write was queued, so time spent queued or stopped counts.  */
typedef bool (*io_gate_fn)(void *arg);
int io_engine_write_gated(struct io_engine *eng, struct io_dev *dev, const void *buf,
			  size_t len, uint64_t off, io_gate_fn gate, void *gate_arg,
			  io_done_fn done, void *arg);
/* The same for a read (whose result is trusted only while a permission
 * lasts: a snapshot location an export cached).  */
int io_engine_read_gated(struct io_engine *eng, struct io_dev *dev, void *buf,
			 size_t len, uint64_t off, io_gate_fn gate, void *gate_arg,
			 io_done_fn done, void *arg);
int io_engine_flush(struct io_engine *eng, struct io_dev *dev,
		    io_done_fn done, void *arg);
int io_engine_submit(struct io_engine *eng);
/* Run completion callbacks.  Waits up to timeout_ms (-1: until at least one
 * completes, 0: poll).  Returns the number of completions handled or a
 * negative errno; returns 0 at once if nothing is pending.  Also submits
 * whatever is queued, so requests beyond the depth need no extra call.  */
int io_engine_reap(struct io_engine *eng, int timeout_ms);
/* Requests queued or in flight.  */
unsigned io_engine_pending(const struct io_engine *eng);
/* io_engine_submit() for threads sharing their state under one lock, each
 * driving its own engine (the export's loop threads): UNLOCK(ARG) right
 * before each io_submit() system call, LOCK(ARG) right after, so the
 * others run while the kernel takes the batch (virtio: tens of
 * microseconds).  Gates are asked before UNLOCK.  Only from a point where
 * the caller holds nothing that the others could change under it (the
 * loop's after-turn hook), never from a completion callback.  */
int io_engine_submit_unlocked(struct io_engine *eng, void (*unlock)(void *arg),
			      void (*lock)(void *arg), void *arg);

/* ---- recording (power-cut tests) -------------------------------------- */

enum io_log_op { IO_LOG_WRITE = 1, IO_LOG_FLUSH = 2 };

struct io_log_entry {
	enum io_log_op op;
	uint64_t off;
	size_t len;
	const void *data;	/* owned by the log; NULL for flush */
};

struct io_log *io_log_new(void);
void io_log_free(struct io_log *log);
/* From now on every write and flush completed on DEV (sync or async) is
 * appended to LOG, in completion order.  NULL stops recording.  */
void io_dev_set_log(struct io_dev *dev, struct io_log *log);
size_t io_log_count(const struct io_log *log);
const struct io_log_entry *io_log_get(const struct io_log *log, size_t i);
/* Index just past the k-th flush (k from 1), or 0 if there is none.  */
size_t io_log_flush_end(const struct io_log *log, size_t k);
size_t io_log_flushes(const struct io_log *log);
/* Apply entries [0, upto) to TARGET (a copy of the device as it was when
 * recording started).  Flush entries are not replayed as fdatasync.  */
int io_log_replay(const struct io_log *log, struct io_dev *target, size_t upto);

/* ---- fault injection (tests) ------------------------------------------ */

enum io_fault_op { IO_FAULT_READ = 1, IO_FAULT_WRITE = 2, IO_FAULT_FLUSH = 4 };

/* After SKIP more matching operations succeed, fail the next COUNT of them
 * with -errnum (count 0 = forever).  A failed operation moves no data and
 * is not recorded.  Async operations are counted when queued.  Up to 8
 * rules per device; each counts the operations it matches.  */
void io_dev_inject_fault(struct io_dev *dev, int ops, unsigned skip,
			 unsigned count, int errnum);
void io_dev_clear_faults(struct io_dev *dev);

#endif
