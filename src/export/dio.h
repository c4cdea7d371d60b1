/*
 * src/export/dio.h - byte-granular asynchronous I/O on an O_DIRECT device.
 *
 * NBD clients may send any offset and length; O_DIRECT accepts only whole
 * sectors from aligned buffers.  dio turns arbitrary requests into aligned
 * ioengine requests:
 *  - aligned requests from aligned buffers go straight to the engine;
 *  - unaligned reads read the covering sectors into a bounce buffer;
 *  - unaligned writes read the partial edge sectors, merge, and write the
 *    covering sectors back (read-modify-write).
 *
 * Invariant (why the range locks exist): a read-modify-write rewrites
 * bytes it was not asked to write.  Two writes that touch the same sector
 * but not the same bytes must both survive, so every write holds a lock
 * on the sectors it covers while it runs; two writes conflict when their
 * sector ranges overlap and at least one of them is a read-modify-write.
 * Conflicting writes run one after another in arrival order.  Reads take
 * no lock: a concurrent read-modify-write rewrites neighbouring bytes with
 * the values they already have.
 *
 * Completion callbacks run from the ioengine's reap (the event loop), or
 * before the call returns when the request fails at once.
 */
#ifndef CSNAP_EXPORT_DIO_H
#define CSNAP_EXPORT_DIO_H

#include "ioengine/ioengine.h"

#include <stddef.h>
#include <stdint.h>

struct dio;
struct io_dev;
struct io_engine;

typedef void (*dio_done_fn)(void *arg, int err);

#define DIO_FUA	0x1	/* flush the device before completing the write */

/* DEV stays owned by the caller and must outlive the dio.  */
int dio_create(struct io_engine *eng, struct io_dev *dev, struct dio **out);
/* Only when no request is in flight.  */
void dio_destroy(struct dio *d);
struct io_dev *dio_dev(const struct dio *d);
unsigned dio_align(const struct dio *d);

void dio_read(struct dio *d, void *buf, size_t len, uint64_t off,
	      dio_done_fn done, void *arg);
void dio_write(struct dio *d, const void *buf, size_t len, uint64_t off,
	       unsigned flags, dio_done_fn done, void *arg);
/* Writes zeroes (no holes: the bytes read back as zero afterwards).  */
void dio_zero(struct dio *d, uint64_t len, uint64_t off, unsigned flags,
	      dio_done_fn done, void *arg);
/* The same with a gate (ioengine.h io_engine_write_gated): every device
 * read or write they make asks GATE(GATE_ARG) right before it is handed to the
 * kernel; a refusal fails the request with -EKEYEXPIRED.  Bytes of the
 * request already written stay written (as with any failed write).  */
void dio_read_gated(struct dio *d, void *buf, size_t len, uint64_t off,
		    io_gate_fn gate, void *gate_arg, dio_done_fn done, void *arg);
void dio_write_gated(struct dio *d, const void *buf, size_t len, uint64_t off,
		     unsigned flags, io_gate_fn gate, void *gate_arg,
		     dio_done_fn done, void *arg);
void dio_zero_gated(struct dio *d, uint64_t len, uint64_t off, unsigned flags,
		    io_gate_fn gate, void *gate_arg, dio_done_fn done, void *arg);
/* Every write that completed before this call is durable on completion. */
void dio_flush(struct dio *d, dio_done_fn done, void *arg);
/* Requests started and not yet completed.  */
unsigned dio_inflight(const struct dio *d);

#endif
