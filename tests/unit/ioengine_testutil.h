/*
 * tests/unit/ioengine_testutil.h - what the ioengine tests
 * (test_ioengine.c, test_ioengine_aio.c) share: a scratch directory under
 * /var/tmp (ext4, so O_DIRECT is real) made by setup and removed by
 * teardown, new files in it, and reading a file back through a separate
 * buffered descriptor.
 *
 * The including test defines IOT_NAME (the directory's prefix) first.
 */
#ifndef CSNAP_TESTS_IOENGINE_TESTUTIL_H
#define CSNAP_TESTS_IOENGINE_TESTUTIL_H

#ifndef IOT_NAME
#error "define IOT_NAME before including ioengine_testutil.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ioengine/ioengine.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/var/tmp/" IOT_NAME "-XXXXXX";

static void path_in_tmp(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

/* A new file at PATH (replacing any), of SIZE bytes (sparse).  */
static struct io_dev *open_path(const char *path, uint64_t size)
{
	struct io_dev *dev;

	unlink(path);
	assert_int_equal(io_dev_open(path, IO_DEV_RDWR | IO_DEV_CREATE, &dev), 0);
	if (size) {
		assert_int_equal(ftruncate(io_dev_fd(dev), (off_t)size), 0);
		assert_int_equal(io_dev_refresh_size(dev), 0);
	}
	return dev;
}

/* The same, named NAME in the scratch directory.  */
static struct io_dev *open_new(const char *name, uint64_t size)
{
	char path[256];

	path_in_tmp(path, sizeof path, name);
	return open_path(path, size);
}

/* Whole file contents through a separate buffered descriptor (malloc'd,
 * one byte spare).  */
static void *slurp(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	void *buf;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, *len, 0), (ssize_t)*len);
	close(fd);
	return buf;
}

static int tmpdir_setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return -1;
	}
	return 0;
}

static int tmpdir_remove(void)
{
	char cmd[300];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
