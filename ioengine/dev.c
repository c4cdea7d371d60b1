/*
 * ioengine/dev.c - devices (block devices or regular files), aligned
 * buffers and synchronous full-length I/O.
 *
 * Invariants:
 *  - A device is opened O_DIRECT; only if that open fails with EINVAL (a
 *    file system without direct I/O) is it reopened buffered.  Durability
 *    never depends on the mode: io_dev_flush() always does fdatasync.
 *  - io_dev_align() is the logical sector size: BLKSSZGET for block
 *    devices; for files statx(STATX_DIOALIGN), else the logical block size
 *    of the backing device from sysfs, else 512.  Always a power of two in
 *    [512, 4096], so 4096-aligned buffers from io_buf_alloc() always fit.
 *  - io_dev_pread/pwrite either move every byte or fail: short transfers
 *    are continued, EINTR retried, end of device reported as an error.
 */
#include "ioengine/internal.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define IO_BUF_ALIGN 4096u

bool io_test_refuse_direct_once;

static bool valid_align(unsigned long a)
{
	return a >= 512 && a <= IO_BUF_ALIGN && (a & (a - 1)) == 0;
}

/* Logical block size of the block device holding a file, from sysfs.  A
 * partition has no queue/ of its own: its parent directory does.  */
static unsigned sysfs_logical_block_size(dev_t devno)
{
	for (int parent = 0; parent < 2; parent++) {
		char path[128];
		unsigned long v = 0;
		FILE *f;

		snprintf(path, sizeof path, "/sys/dev/block/%u:%u/%squeue/logical_block_size",
			 major(devno), minor(devno), parent ? "../" : "");
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
		if (valid_align(v))
			return (unsigned)v;
	}
	return 0;
}

static int probe_file_align(struct io_dev *dev, const struct stat *st)
{
	struct statx sx;
	unsigned a = 0;

	if (statx(dev->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
		unsigned long need = sx.stx_dio_offset_align;

		if (sx.stx_dio_mem_align > need)
			need = sx.stx_dio_mem_align;
		if (need < 512)
			need = 512;
		if (!valid_align(need))
			return err_set(EINVAL, "%s: direct I/O needs %lu-byte alignment, "
				       "more than the supported 4096", dev->path, need);
		a = (unsigned)need;
	}
	if (!a)
		a = sysfs_logical_block_size(st->st_dev);
	if (!a)
		a = 512;
	dev->align = a;
	return 0;
}

static int probe_blockdev(struct io_dev *dev)
{
	uint64_t bytes;
	int ssz;

	if (ioctl(dev->fd, BLKSSZGET, &ssz) < 0)
		return err_set(errno, "%s: BLKSSZGET: %s", dev->path, strerror(errno));
	if (!valid_align((unsigned long)ssz))
		return err_set(EINVAL, "%s: unsupported logical sector size %d",
			       dev->path, ssz);
	if (ioctl(dev->fd, BLKGETSIZE64, &bytes) < 0)
		return err_set(errno, "%s: BLKGETSIZE64: %s", dev->path, strerror(errno));
	dev->align = (unsigned)ssz;
	dev->size = bytes;
	return 0;
}

int io_dev_refresh_size(struct io_dev *dev)
{
	struct stat st;

	if (dev->blockdev) {
		uint64_t bytes;

		if (ioctl(dev->fd, BLKGETSIZE64, &bytes) < 0)
			return err_set(errno, "%s: BLKGETSIZE64: %s", dev->path, strerror(errno));
		dev->size = bytes;
		return 0;
	}
	if (fstat(dev->fd, &st) < 0)
		return err_set(errno, "%s: stat: %s", dev->path, strerror(errno));
	dev->size = (uint64_t)st.st_size;
	return 0;
}

int io_dev_open(const char *path, int flags, struct io_dev **out)
{
	struct io_dev *dev;
	struct stat st;
	int oflags = O_CLOEXEC;
	int r;

	*out = NULL;
	if (!path || !*path)
		return err_set(EINVAL, "no device path given");
	if (!!(flags & IO_DEV_RDONLY) == !!(flags & IO_DEV_RDWR) ||
	    (flags & ~(IO_DEV_RDONLY | IO_DEV_RDWR | IO_DEV_CREATE | IO_DEV_EXCL)))
		return err_set(EINVAL, "%s: invalid open flags 0x%x", path, flags);

	oflags |= (flags & IO_DEV_RDWR) ? O_RDWR : O_RDONLY;
	if (flags & IO_DEV_CREATE)
		oflags |= O_CREAT;
	if (stat(path, &st) == 0) {
		/* Refuse early: open(O_DIRECT) of a directory or character
		 * device fails with EINVAL and would look like "no direct I/O". */
		if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
			return err_set(EINVAL, "%s: not a block device or regular file", path);
		/* O_EXCL is "exclusive open" only for block devices; for a
		 * file with O_CREAT it would mean "must not exist".  */
		if ((flags & IO_DEV_EXCL) && S_ISBLK(st.st_mode))
			oflags |= O_EXCL;
	}

	dev = calloc(1, sizeof *dev);
	if (!dev || !(dev->path = strdup(path))) {
		free(dev);
		return err_set(ENOMEM, "%s: out of memory", path);
	}
	pthread_mutex_init(&dev->lock, NULL);
	dev->writable = flags & IO_DEV_RDWR;
	dev->wlog_id = -1;

	if (io_test_refuse_direct_once) {
		io_test_refuse_direct_once = false;
		dev->fd = -1;
		errno = EINVAL;
	} else {
		dev->fd = open(path, oflags | O_DIRECT, 0600);
	}
	if (dev->fd >= 0) {
		dev->direct = true;
	} else if (errno == EINVAL) {
		dev->fd = open(path, oflags, 0600);
	}
	if (dev->fd < 0) {
		r = err_set(errno, "%s: open: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(dev->fd, &st) < 0) {
		r = err_set(errno, "%s: stat: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		dev->blockdev = true;
		r = probe_blockdev(dev);
	} else if (S_ISREG(st.st_mode)) {
		dev->size = (uint64_t)st.st_size;
		r = probe_file_align(dev, &st);
	} else {
		r = err_set(EINVAL, "%s: not a block device or regular file", path);
	}
	if (r < 0)
		goto fail;
	io_wlog_dev_opened(dev, &st);
	if (!dev->direct)
		log_info("%s: O_DIRECT refused, using buffered I/O (flushes still "
			 "fdatasync)", path);
	*out = dev;
	return 0;
fail:
	io_dev_close(dev);
	return r;
}

void io_dev_close(struct io_dev *dev)
{
	if (!dev)
		return;
	/* A caller bug that would become a use-after-free: say so loudly. */
	if (__atomic_load_n(&dev->async_pending, __ATOMIC_RELAXED))
		log_error("%s: closed with %u asynchronous requests pending",
			  dev->path, __atomic_load_n(&dev->async_pending, __ATOMIC_RELAXED));
	if (dev->fd >= 0 && close(dev->fd) < 0)
		log_warn("%s: close: %s", dev->path, strerror(errno));
	pthread_mutex_destroy(&dev->lock);
	free(dev->path);
	free(dev);
}

const char *io_dev_path(const struct io_dev *dev) { return dev->path; }
int io_dev_fd(const struct io_dev *dev) { return dev->fd; }
uint64_t io_dev_size(const struct io_dev *dev) { return dev->size; }
unsigned io_dev_align(const struct io_dev *dev) { return dev->align; }
bool io_dev_is_direct(const struct io_dev *dev) { return dev->direct; }
bool io_dev_is_blockdev(const struct io_dev *dev) { return dev->blockdev; }

int io_dev_check_rw(const struct io_dev *dev, const void *buf, size_t len,
		    uint64_t off, bool write)
{
	const char *what = write ? "write" : "read";
	uint64_t a = dev->align;

	if (write && !dev->writable)
		return err_set(EBADF, "%s: %s at offset %" PRIu64 ": device opened read-only",
			       dev->path, what, off);
	if (off > INT64_MAX || len > INT64_MAX - off)
		return err_set(EINVAL, "%s: %s of %zu bytes at offset %" PRIu64
			       " is out of range", dev->path, what, len, off);
	if (len && !buf)
		return err_set(EINVAL, "%s: %s at offset %" PRIu64 " without a buffer",
			       dev->path, what, off);
	if (dev->direct && ((uintptr_t)buf % a || len % a || off % a))
		return err_set(EINVAL, "%s: misaligned direct %s: buffer %p, length %zu, "
			       "offset %" PRIu64 " must be multiples of %u",
			       dev->path, what, buf, len, off, dev->align);
	return 0;
}

int io_dev_pread(struct io_dev *dev, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	int r;

	r = io_dev_check_rw(dev, buf, len, off, false);
	if (r < 0)
		return r;
	r = io_dev_fault_check(dev, IO_FAULT_READ);
	if (r < 0)
		return io_fault_err(dev, "read", len, off, -r);
	while (done < len) {
		ssize_t n = pread(dev->fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(errno, "%s: read of %zu bytes at offset %" PRIu64 ": %s",
				       dev->path, len - done, off + done, strerror(errno));
		if (n == 0)
			return err_set(EIO, "%s: read of %zu bytes at offset %" PRIu64
				       ": end of device", dev->path, len - done, off + done);
		done += (size_t)n;
	}
	return 0;
}

int io_dev_pwrite(struct io_dev *dev, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	uint64_t wseq;
	int r;

	r = io_dev_check_rw(dev, buf, len, off, true);
	if (r < 0)
		return r;
	r = io_dev_fault_check(dev, IO_FAULT_WRITE);
	if (r < 0)
		return io_fault_err(dev, "write", len, off, -r);
	wseq = dev->wlog_id >= 0 ? io_wlog_issue(dev, buf, len, off) : 0;
	while (done < len) {
		ssize_t n = pwrite(dev->fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(errno, "%s: write of %zu bytes at offset %" PRIu64 ": %s",
				       dev->path, len - done, off + done, strerror(errno));
		if (n == 0)
			return err_set(ENOSPC, "%s: write of %zu bytes at offset %" PRIu64
				       ": device accepted nothing", dev->path, len - done,
				       off + done);
		done += (size_t)n;
	}
	io_dev_record_write(dev, buf, len, off, wseq);
	return 0;
}

int io_dev_flush(struct io_dev *dev)
{
	int64_t t0;
	int r;

	r = io_dev_fault_check(dev, IO_FAULT_FLUSH);
	if (r < 0)
		return io_fault_err(dev, "flush", 0, 0, -r);
	t0 = io_wlog_t0(dev);
	if (fdatasync(dev->fd) < 0)
		return err_set(errno, "%s: fdatasync: %s", dev->path, strerror(errno));
	io_dev_record_flush(dev, t0);
	return 0;
}

void *io_buf_alloc(size_t len)
{
	void *p = NULL;
	int r;

	r = posix_memalign(&p, IO_BUF_ALIGN, len ? len : 1);
	if (r) {
		err_set(r, "cannot allocate a %zu-byte I/O buffer: %s", len, strerror(r));
		return NULL;
	}
	memset(p, 0, len);
	return p;
}

void io_buf_free(void *buf)
{
	free(buf);
}
