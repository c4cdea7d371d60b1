/*
 * tests/unit/test_ioengine.c - devices, synchronous I/O, recording/replay
 * and fault injection of ioengine, on real files: O_DIRECT files under
 * /var/tmp (ext4) and tmpfs files under /dev/shm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ioengine/internal.h"
#define IOT_NAME "ioengine-test"
#include "tests/unit/ioengine_testutil.h"
#include "utils/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void fill(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((i * 131 + seed * 7919 + (i >> 9)) & 0xff);
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	void *buf = slurp(from, &len);
	int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
	close(fd);
	free(buf);
}

static void test_open_properties(void **state)
{
	struct io_dev *dev;
	char path[256];

	(void)state;
	dev = open_new("props", 0);
	path_in_tmp(path, sizeof path, "props");
	assert_string_equal(io_dev_path(dev), path);
	assert_true(io_dev_is_direct(dev));	/* ext4 under /var/tmp */
	assert_false(io_dev_is_blockdev(dev));
	assert_true(io_dev_fd(dev) >= 0);
	assert_int_equal(io_dev_size(dev), 0);
	assert_true(io_dev_align(dev) == 512 || io_dev_align(dev) == 4096);

	void *buf = io_buf_alloc(8192);
	assert_non_null(buf);
	assert_int_equal((uintptr_t)buf % 4096, 0);
	for (size_t i = 0; i < 8192; i++)
		assert_int_equal(((unsigned char *)buf)[i], 0);
	assert_int_equal(io_dev_pwrite(dev, buf, 8192, 65536), 0);
	assert_int_equal(io_dev_size(dev), 0);		/* size as of open */
	assert_int_equal(io_dev_refresh_size(dev), 0);
	assert_int_equal(io_dev_size(dev), 65536 + 8192);
	io_buf_free(buf);
	io_dev_close(dev);
}

static void test_open_errors(void **state)
{
	struct io_dev *dev = (void *)1;
	char path[256];

	(void)state;
	path_in_tmp(path, sizeof path, "missing");
	assert_int_equal(io_dev_open(path, IO_DEV_RDWR, &dev), -ENOENT);
	assert_null(dev);
	assert_non_null(strstr(err_get(), path));

	assert_int_equal(io_dev_open(path, IO_DEV_RDWR | IO_DEV_RDONLY, &dev), -EINVAL);
	assert_int_equal(io_dev_open(path, IO_DEV_CREATE, &dev), -EINVAL);
	assert_int_equal(io_dev_open(path, IO_DEV_RDWR | 0x100, &dev), -EINVAL);
	assert_int_equal(io_dev_open("", IO_DEV_RDONLY, &dev), -EINVAL);
	/* a directory is neither a file nor a block device */
	assert_int_equal(io_dev_open(tmpdir, IO_DEV_RDONLY, &dev), -EINVAL);
	assert_null(dev);
	assert_non_null(strstr(err_get(), tmpdir));
	/* character devices are refused */
	assert_int_equal(io_dev_open("/dev/null", IO_DEV_RDONLY, &dev), -EINVAL);
	assert_non_null(strstr(err_get(), "/dev/null"));
}

static void test_roundtrip_and_eof(void **state)
{
	struct io_dev *dev = open_new("rt", 1 << 20);
	size_t sizes[] = { 512, 4096, 65536, 512 * 1023 };
	void *w = io_buf_alloc(1 << 20), *r = io_buf_alloc(1 << 20);

	(void)state;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		uint64_t off = (i * 77 * 512) % ((1 << 20) - sizes[i]);

		off -= off % 512;
		fill(w, sizes[i], (unsigned)i + 1);
		assert_int_equal(io_dev_pwrite(dev, w, sizes[i], off), 0);
		memset(r, 0xee, sizes[i]);
		assert_int_equal(io_dev_pread(dev, r, sizes[i], off), 0);
		assert_memory_equal(r, w, sizes[i]);
	}
	assert_int_equal(io_dev_pread(dev, r, 0, 0), 0);
	/* reading across the end is an error, never a silent short read */
	assert_int_equal(io_dev_pread(dev, r, 8192, (1 << 20) - 4096), -EIO);
	assert_non_null(strstr(err_get(), "end of device"));
	assert_non_null(strstr(err_get(), "/rt"));
	assert_int_equal(io_dev_flush(dev), 0);
	io_buf_free(w);
	io_buf_free(r);
	io_dev_close(dev);
}

static void test_misaligned_direct(void **state)
{
	struct io_dev *dev = open_new("mis", 1 << 16);
	unsigned char *buf = io_buf_alloc(16384);
	unsigned a = io_dev_align(dev);

	(void)state;
	assert_int_equal(io_dev_pread(dev, buf + 1, a, 0), -EINVAL);
	assert_non_null(strstr(err_get(), "misaligned"));
	assert_non_null(strstr(err_get(), "/mis"));
	assert_int_equal(io_dev_pread(dev, buf, a + 1, 0), -EINVAL);
	assert_int_equal(io_dev_pwrite(dev, buf, a, 100), -EINVAL);
	assert_non_null(strstr(err_get(), "offset 100"));
	assert_int_equal(io_dev_pwrite(dev, buf, a, UINT64_MAX - 4095), -EINVAL);
	io_buf_free(buf);
	io_dev_close(dev);
}

static void test_readonly(void **state)
{
	struct io_dev *dev = open_new("ro", 8192);
	char path[256];
	void *buf = io_buf_alloc(4096);

	(void)state;
	io_dev_close(dev);
	path_in_tmp(path, sizeof path, "ro");
	assert_int_equal(io_dev_open(path, IO_DEV_RDONLY, &dev), 0);
	assert_int_equal(io_dev_size(dev), 8192);
	assert_int_equal(io_dev_pread(dev, buf, 4096, 4096), 0);
	assert_int_equal(io_dev_pwrite(dev, buf, 4096, 0), -EBADF);
	assert_non_null(strstr(err_get(), "read-only"));
	io_buf_free(buf);
	io_dev_close(dev);
}

/* The buffered path: forced with the test hook (this kernel's tmpfs takes
 * O_DIRECT), and tmpfs as it comes.  */
static void test_buffered_fallback(void **state)
{
	char path[256];
	struct io_dev *dev;
	char small[100], back[100];

	(void)state;
	path_in_tmp(path, sizeof path, "buffered");
	unlink(path);
	io_test_refuse_direct_once = true;
	assert_int_equal(io_dev_open(path, IO_DEV_RDWR | IO_DEV_CREATE, &dev), 0);
	assert_false(io_test_refuse_direct_once);
	assert_false(io_dev_is_direct(dev));
	assert_true(io_dev_align(dev) >= 512);
	/* alignment is not required for buffered I/O */
	memset(small, 'x', sizeof small);
	assert_int_equal(io_dev_pwrite(dev, small, sizeof small, 3), 0);
	assert_int_equal(io_dev_pread(dev, back, sizeof back, 3), 0);
	assert_memory_equal(small, back, sizeof small);
	assert_int_equal(io_dev_flush(dev), 0);
	io_dev_close(dev);

	snprintf(path, sizeof path, "/dev/shm/ioengine-test-%d", (int)getpid());
	unlink(path);
	assert_int_equal(io_dev_open(path, IO_DEV_RDWR | IO_DEV_CREATE, &dev), 0);
	void *w = io_buf_alloc(8192), *r = io_buf_alloc(8192);
	fill(w, 8192, 9);
	assert_int_equal(io_dev_pwrite(dev, w, 8192, 4096), 0);
	assert_int_equal(io_dev_pread(dev, r, 8192, 4096), 0);
	assert_memory_equal(w, r, 8192);
	assert_int_equal(io_dev_flush(dev), 0);
	io_buf_free(w);
	io_buf_free(r);
	io_dev_close(dev);
	unlink(path);
}

static void test_faults(void **state)
{
	struct io_dev *dev = open_new("faults", 1 << 16);
	unsigned char *buf = io_buf_alloc(4096), *back = io_buf_alloc(4096);

	(void)state;
	/* writes 3 and 4 fail with ENOSPC; reads unaffected */
	io_dev_inject_fault(dev, IO_FAULT_WRITE, 2, 2, ENOSPC);
	for (int i = 0; i < 6; i++) {
		memset(buf, 'a' + i, 4096);
		int r = io_dev_pwrite(dev, buf, 4096, (uint64_t)i * 4096);
		if (i == 2 || i == 3) {
			assert_int_equal(r, -ENOSPC);
			assert_non_null(strstr(err_get(), "injected"));
			assert_non_null(strstr(err_get(), "/faults"));
			char want[64];
			snprintf(want, sizeof want, "offset %d", i * 4096);
			assert_non_null(strstr(err_get(), want));
		} else {
			assert_int_equal(r, 0);
		}
		assert_int_equal(io_dev_pread(dev, back, 4096, (uint64_t)i * 4096), 0);
		/* a faulted write moves no byte */
		assert_int_equal(back[0], (i == 2 || i == 3) ? 0 : 'a' + i);
	}
	/* forever, on reads and flushes, until cleared */
	io_dev_inject_fault(dev, IO_FAULT_READ | IO_FAULT_FLUSH, 0, 0, EIO);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(io_dev_pread(dev, back, 4096, 0), -EIO);
		assert_int_equal(io_dev_flush(dev), -EIO);
	}
	assert_int_equal(io_dev_pwrite(dev, buf, 4096, 0), 0);
	io_dev_clear_faults(dev);
	assert_int_equal(io_dev_pread(dev, back, 4096, 0), 0);
	assert_int_equal(io_dev_flush(dev), 0);
	/* two rules count independently */
	io_dev_inject_fault(dev, IO_FAULT_READ, 1, 1, EIO);
	io_dev_inject_fault(dev, IO_FAULT_READ, 2, 1, EROFS);
	assert_int_equal(io_dev_pread(dev, back, 4096, 0), 0);
	assert_int_equal(io_dev_pread(dev, back, 4096, 0), -EIO);
	assert_int_equal(io_dev_pread(dev, back, 4096, 0), -EROFS);
	assert_int_equal(io_dev_pread(dev, back, 4096, 0), 0);
	io_buf_free(buf);
	io_buf_free(back);
	io_dev_close(dev);
}

static void test_record_replay(void **state)
{
	char path[256], base[256], copy[256];
	struct io_dev *dev, *target;
	struct io_log *log = io_log_new();
	unsigned char *buf = io_buf_alloc(65536);
	void *at_flush[3];
	size_t len[3];

	(void)state;
	dev = open_new("rec", 1 << 18);
	fill(buf, 65536, 1);
	assert_int_equal(io_dev_pwrite(dev, buf, 65536, 0), 0);	/* before recording */
	path_in_tmp(path, sizeof path, "rec");
	path_in_tmp(base, sizeof base, "rec.base");
	path_in_tmp(copy, sizeof copy, "rec.copy");
	copy_file(path, base);

	io_dev_set_log(dev, log);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 4; i++) {
			fill(buf, 8192, (unsigned)(round * 10 + i + 2));
			assert_int_equal(io_dev_pwrite(dev, buf, 8192,
						       (uint64_t)((round * 5 + i * 3) % 30) * 8192), 0);
			memset(buf, 0, 8192);	/* the log kept its own copy */
		}
		io_dev_inject_fault(dev, IO_FAULT_WRITE, 0, 1, EIO);
		assert_int_equal(io_dev_pwrite(dev, buf, 4096, 0), -EIO);	/* not recorded */
		assert_int_equal(io_dev_flush(dev), 0);
		at_flush[round] = slurp(path, &len[round]);
	}
	fill(buf, 4096, 99);
	assert_int_equal(io_dev_pwrite(dev, buf, 4096, 1 << 18), 0);	/* after last flush */
	io_dev_set_log(dev, NULL);
	assert_int_equal(io_dev_pwrite(dev, buf, 4096, 0), 0);	/* not recorded */

	assert_int_equal(io_log_count(log), 3 * 5 + 1);
	assert_int_equal(io_log_flushes(log), 3);
	assert_int_equal(io_log_flush_end(log, 1), 5);
	assert_int_equal(io_log_flush_end(log, 3), 15);
	assert_int_equal(io_log_flush_end(log, 4), 0);
	assert_int_equal(io_log_flush_end(log, 0), 0);
	assert_int_equal(io_log_get(log, 4)->op, IO_LOG_FLUSH);
	assert_null(io_log_get(log, 4)->data);
	assert_int_equal(io_log_get(log, 0)->op, IO_LOG_WRITE);
	assert_int_equal(io_log_get(log, 0)->len, 8192);
	assert_null(io_log_get(log, 16));

	for (int k = 1; k <= 3; k++) {
		size_t n;
		void *img;

		copy_file(base, copy);
		assert_int_equal(io_dev_open(copy, IO_DEV_RDWR, &target), 0);
		assert_int_equal(io_log_replay(log, target, io_log_flush_end(log, (size_t)k)), 0);
		io_dev_close(target);
		img = slurp(copy, &n);
		assert_int_equal(n, len[k - 1]);
		assert_memory_equal(img, at_flush[k - 1], n);
		free(img);
		free(at_flush[k - 1]);
	}
	copy_file(base, copy);
	assert_int_equal(io_dev_open(copy, IO_DEV_RDWR, &target), 0);
	assert_int_equal(io_log_replay(log, target, io_log_count(log) + 1), -EINVAL);
	assert_int_equal(io_log_replay(log, target, io_log_count(log)), 0);
	assert_int_equal(io_dev_refresh_size(target), 0);
	assert_int_equal(io_dev_size(target), (1 << 18) + 4096);
	io_dev_close(target);

	io_log_free(log);
	io_buf_free(buf);
	io_dev_close(dev);
}

/* A real block device: a loop device with 4096-byte logical sectors, if
 * this machine lets us create one (root, /dev/loop-control).  */
static char loopdev[64];	/* detached by teardown if a test fails */

static void test_blockdev(void **state)
{
	char img[256], cmd[400];
	struct io_dev *dev, *second;
	FILE *p;

	(void)state;
	path_in_tmp(img, sizeof img, "loop.img");
	snprintf(cmd, sizeof cmd, "truncate -s 8M '%s' && losetup -f --show -b 4096 '%s' 2>/dev/null",
		 img, img);
	p = popen(cmd, "r");
	if (p) {
		if (!fgets(loopdev, sizeof loopdev, p))
			loopdev[0] = '\0';
		pclose(p);
	}
	loopdev[strcspn(loopdev, "\n")] = '\0';
	if (!loopdev[0]) {
		print_message("skip: cannot create a loop device here\n");
		skip();
	}

	assert_int_equal(io_dev_open(loopdev, IO_DEV_RDWR | IO_DEV_EXCL, &dev), 0);
	assert_true(io_dev_is_blockdev(dev));
	assert_true(io_dev_is_direct(dev));
	assert_int_equal(io_dev_align(dev), 4096);
	assert_int_equal(io_dev_size(dev), 8 << 20);
	/* exclusive: a second exclusive open is refused */
	assert_int_equal(io_dev_open(loopdev, IO_DEV_RDWR | IO_DEV_EXCL, &second), -EBUSY);
	assert_non_null(strstr(err_get(), loopdev));

	unsigned char *w = io_buf_alloc(8192), *r = io_buf_alloc(8192);
	fill(w, 8192, 5);
	assert_int_equal(io_dev_pwrite(dev, w, 512, 0), -EINVAL);	/* 512 < sector */
	assert_non_null(strstr(err_get(), "multiples of 4096"));
	assert_int_equal(io_dev_pwrite(dev, w, 8192, (8 << 20) - 8192), 0);
	assert_int_equal(io_dev_flush(dev), 0);
	assert_int_equal(io_dev_pread(dev, r, 8192, (8 << 20) - 8192), 0);
	assert_memory_equal(w, r, 8192);
	assert_true(io_dev_pread(dev, r, 8192, (8 << 20) - 4096) < 0);	/* past the end */
	assert_int_equal(io_dev_refresh_size(dev), 0);
	assert_int_equal(io_dev_size(dev), 8 << 20);
	io_buf_free(w);
	io_buf_free(r);
	io_dev_close(dev);
	snprintf(cmd, sizeof cmd, "losetup -d '%s'", loopdev);
	assert_int_equal(system(cmd), 0);
	loopdev[0] = '\0';
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	if (loopdev[0]) {
		snprintf(cmd, sizeof cmd, "losetup -d '%s'", loopdev);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot detach %s\n", loopdev);
	}
	return tmpdir_remove();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_properties),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_roundtrip_and_eof),
		cmocka_unit_test(test_misaligned_direct),
		cmocka_unit_test(test_readonly),
		cmocka_unit_test(test_buffered_fallback),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_record_replay),
		cmocka_unit_test(test_blockdev),
	};

	return cmocka_run_group_tests(tests, tmpdir_setup, teardown);
}
