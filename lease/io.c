/*
 * lease/io.c - sector I/O on the lease area with O_DIRECT, so what we read
 * is what other hosts see on the shared device (no page cache), and writes
 * are durable when they return (O_DSYNC).
 */
#include "lease/lease_internal.h"
#include "utils/err.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

void *lease_io_alloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len ? len : 4096))
		return NULL;
	memset(p, 0, len);
	return p;
}

static int open_direct(const char *path, int flags)
{
	int fd = open(path, flags | O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		return err_set(errno, "%s: %s", path, strerror(errno));
	return fd;
}

int lease_io_read(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open_direct(path, O_RDONLY);
	size_t done = 0;

	if (fd < 0)
		return fd;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			return err_set(e, "%s: read at %llu: %s", path,
				       (unsigned long long)(off + done),
				       n < 0 ? strerror(e) : "beyond the end of the device");
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
}

int lease_io_write(const char *path, uint64_t off, const void *buf, size_t len)
{
	int fd = open_direct(path, O_WRONLY | O_DSYNC);
	size_t done = 0;

	if (fd < 0)
		return fd;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			return err_set(e, "%s: write at %llu: %s", path,
				       (unsigned long long)(off + done), strerror(e));
		}
		done += (size_t)n;
	}
	if (close(fd) < 0)
		return err_set(errno, "%s: close after write: %s", path, strerror(errno));
	return 0;
}

int lease_io_size(const char *path, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_set(errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return err_set(e, "%s: stat: %s", path, strerror(e));
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t bytes = 0;
		if (ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
			int e = errno;
			close(fd);
			return err_set(e, "%s: size: %s", path, strerror(e));
		}
		*size = bytes;
	} else {
		*size = (uint64_t)st.st_size;
	}
	close(fd);
	return 0;
}
