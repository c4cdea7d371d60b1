/*
 * ioengine/fault.c - fault injection for tests: make the Nth read, write
 * or flush on a device fail with a chosen errno.
 *
 * Invariants:
 *  - Each rule counts only the operations it matches; a rule that fires
 *    makes the operation fail before any byte moves (nothing is written,
 *    nothing is recorded).
 *  - Several rules may be active; the first matching rule that fires
 *    decides the errno, but every matching rule counts the operation.
 *  - Counting happens when the operation is issued (for async requests:
 *    when queued), so the order of faults is deterministic.
 */
#include "ioengine/internal.h"
#include "utils/err.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

void io_dev_inject_fault(struct io_dev *dev, int ops, unsigned skip,
			 unsigned count, int errnum)
{
	struct io_fault *f;

	pthread_mutex_lock(&dev->lock);
	if (dev->nfaults == IO_FAULT_MAX) {
		/* Oldest rule gives way: tests set few rules.  */
		memmove(&dev->faults[0], &dev->faults[1],
			sizeof dev->faults[0] * (IO_FAULT_MAX - 1));
		dev->nfaults--;
	}
	f = &dev->faults[dev->nfaults];
	f->ops = ops;
	f->skip = skip;
	f->count = count;
	f->forever = count == 0;
	f->errnum = errnum > 0 ? errnum : (errnum < 0 ? -errnum : EIO);
	__atomic_store_n(&dev->nfaults, dev->nfaults + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&dev->lock);
}

void io_dev_clear_faults(struct io_dev *dev)
{
	pthread_mutex_lock(&dev->lock);
	__atomic_store_n(&dev->nfaults, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&dev->lock);
}

int io_dev_fault_check(struct io_dev *dev, int op)
{
	int fire = 0;

	if (!__atomic_load_n(&dev->nfaults, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&dev->lock);
	for (unsigned i = 0; i < dev->nfaults; i++) {
		struct io_fault *f = &dev->faults[i];

		if (!(f->ops & op))
			continue;
		if (f->skip) {
			f->skip--;
			continue;
		}
		if (!fire)
			fire = f->errnum;
		if (!f->forever && --f->count == 0) {
			memmove(f, f + 1, sizeof *f * (dev->nfaults - i - 1));
			dev->nfaults--;
			i--;
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return -fire;
}

int io_fault_err(const struct io_dev *dev, const char *what, size_t len,
		 uint64_t off, int errnum)
{
	return err_set(errnum, "%s: %s of %zu bytes at offset %" PRIu64
		       ": %s (injected fault)", dev->path, what, len, off,
		       strerror(errnum));
}
