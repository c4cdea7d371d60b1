/*
 * ioengine/wlog.c - the cross-process write log for whole-cluster power-cut
 * tests (format and guarantees: ioengine/wlog.h).  Off unless the
 * environment variable CSNAP_WRITELOG names a directory when a device is
 * opened for writing; then each device opened for writing gets
 * dev->wlog_id >= 0 and every write on it (when issued and when done) and
 * every completed flush is appended to DIR/<pid>.wlog.
 *
 * Invariants:
 *  - Off costs one branch per I/O (dev->wlog_id < 0) and one
 *    getenv() per open.
 *  - The log file is opened once per process (pthread_once), O_APPEND; each
 *    record is written by one write(2) under wl_lock, so records of the
 *    I/O thread and the flush worker never interleave.
 *  - A failure to log is reported once and turns logging off for the
 *    process: the replay then sees a log that ends early, never a wrong one.
 */
#include "ioengine/internal.h"
#include "ioengine/wlog.h"
#include "utils/crc32c.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_once_t wl_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t wl_lock = PTHREAD_MUTEX_INITIALIZER;
static int wl_fd = -1;
static int wl_next_dev;
static uint64_t wl_seq;		/* WRITE records so far (under wl_lock) */

static void wl_open(void)
{
	const char *dir = getenv(IO_WLOG_ENV);
	char path[4096];

	if (!dir || !*dir)
		return;
	snprintf(path, sizeof path, "%s/%d.wlog", dir, (int)getpid());
	wl_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (wl_fd < 0)
		log_error("%s: cannot open the write log: %s", path, strerror(errno));
}

/* Called with wl_lock held.  */
static void wl_append(struct io_wlog_rec *h, const void *data)
{
	struct iovec iov[2] = { { h, sizeof *h }, { (void *)data, h->datalen } };
	size_t want = sizeof *h + h->datalen;
	ssize_t n;

	h->magic = IO_WLOG_MAGIC;
	h->pid = (uint32_t)getpid();
	h->crc = 0;
	h->crc = crc32c(crc32c(0, h, sizeof *h), data, h->datalen);
	do
		n = writev(wl_fd, iov, data ? 2 : 1);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)want) {
		log_error("write log: %s; logging stops here",
			  n < 0 ? strerror(errno) : "short write");
		close(wl_fd);
		wl_fd = -1;
	}
}

void io_wlog_dev_opened(struct io_dev *dev, const struct stat *st)
{
	struct io_wlog_rec h = { .type = IO_WLOG_DEV };

	dev->wlog_id = -1;
	if (!dev->writable || !getenv(IO_WLOG_ENV))
		return;
	pthread_once(&wl_once, wl_open);
	pthread_mutex_lock(&wl_lock);
	if (wl_fd >= 0) {
		dev->wlog_id = wl_next_dev++;
		h.dev = (uint32_t)dev->wlog_id;
		h.off = S_ISBLK(st->st_mode) ? (uint64_t)st->st_rdev : (uint64_t)st->st_dev;
		h.len = S_ISBLK(st->st_mode) ? 0 : (uint64_t)st->st_ino;
		h.datalen = (uint32_t)strlen(dev->path);
		wl_append(&h, dev->path);
	}
	pthread_mutex_unlock(&wl_lock);
}

uint64_t io_wlog_issue(struct io_dev *dev, const void *buf, size_t len, uint64_t off)
{
	struct io_wlog_rec h = {
		.type = IO_WLOG_WRITE, .dev = (uint32_t)dev->wlog_id, .off = off, .len = len,
		.t0 = csnap_now_ns(), .datalen = (uint32_t)len,
	};

	pthread_mutex_lock(&wl_lock);
	if (wl_fd >= 0) {
		h.seq = ++wl_seq;
		wl_append(&h, buf);
	}
	pthread_mutex_unlock(&wl_lock);
	return h.seq;
}

void io_wlog_io(struct io_dev *dev, enum io_wlog_type type, uint64_t seq,
		size_t len, uint64_t off, int64_t t0)
{
	struct io_wlog_rec h = {
		.type = type, .dev = (uint32_t)dev->wlog_id, .off = off, .len = len,
		.t0 = t0, .t1 = csnap_now_ns(), .seq = seq,
	};

	pthread_mutex_lock(&wl_lock);
	if (wl_fd >= 0)
		wl_append(&h, NULL);
	pthread_mutex_unlock(&wl_lock);
}
