/*
 * tests/unit/test_ioengine_wlog.c - the cross-process write log
 * (ioengine/wlog.h): with CSNAP_WRITELOG set before the first open, a
 * device opened for writing gets a DEV record naming its device and inode,
 * every write (synchronous or through the engine) a WRITE record with its
 * data when issued and a DONE record when complete, every flush a FLUSH
 * record whose t0 is after the DONE of every write it covers; a read-only
 * device logs nothing; each record's CRC holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ioengine/ioengine.h"
#include "ioengine/wlog.h"
#include "utils/crc32c.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/var/tmp/ioengine-wlog-XXXXXX";

struct rec { struct io_wlog_rec h; uint8_t *data; };

/* Every record of this process's log, CRC checked.  */
static size_t read_log(struct rec *out, size_t max)
{
	char path[256];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/%d.wlog", tmpdir, (int)getpid());
	f = fopen(path, "r");
	assert_non_null(f);
	while (n < max && fread(&out[n].h, sizeof out[n].h, 1, f) == 1) {
		uint32_t crc = out[n].h.crc;

		out[n].h.crc = 0;
		out[n].data = malloc(out[n].h.datalen + 1);
		assert_non_null(out[n].data);
		assert_int_equal(fread(out[n].data, 1, out[n].h.datalen, f), out[n].h.datalen);
		assert_int_equal(out[n].h.magic, IO_WLOG_MAGIC);
		assert_int_equal(out[n].h.pid, (uint32_t)getpid());
		assert_int_equal(crc32c(crc32c(0, &out[n].h, sizeof out[n].h), out[n].data,
					out[n].h.datalen), crc);
		n++;
	}
	fclose(f);
	return n;
}

static void make_file(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
}

static void done_cb(void *arg, ssize_t result)
{
	*(ssize_t *)arg = result;
}

static void test_wlog(void **state)
{
	char path[256], ro[256];
	struct io_dev *dev, *rdev;
	struct io_engine *eng;
	struct rec r[16];
	struct stat st;
	uint8_t *buf = io_buf_alloc(8192);
	ssize_t w = 1, fl = 1;
	size_t n;

	(void)state;
	snprintf(path, sizeof path, "%s/dev", tmpdir);
	snprintf(ro, sizeof ro, "%s/ro", tmpdir);
	make_file(path);
	make_file(ro);

	assert_int_equal(io_dev_open(ro, IO_DEV_RDONLY, &rdev), 0);
	assert_int_equal(io_dev_open(path, IO_DEV_RDWR, &dev), 0);
	assert_int_equal(stat(path, &st), 0);
	memset(buf, 'a', 8192);
	assert_int_equal(io_dev_pread(rdev, buf + 4096, 4096, 0), 0);
	memset(buf, 'a', 8192);
	assert_int_equal(io_dev_pwrite(dev, buf, 4096, 8192), 0);
	assert_int_equal(io_dev_flush(dev), 0);
	assert_int_equal(io_engine_create(4, &eng), 0);
	memset(buf, 'b', 8192);
	assert_int_equal(io_engine_write(eng, dev, buf, 8192, 65536, done_cb, &w), 0);
	assert_int_equal(io_engine_flush(eng, dev, done_cb, &fl), 0);
	assert_int_equal(io_engine_submit(eng), 0);
	while (io_engine_pending(eng))
		assert_true(io_engine_reap(eng, -1) >= 0);
	assert_int_equal(w, 8192);
	assert_int_equal(fl, 0);
	io_engine_destroy(eng);

	n = read_log(r, 16);
	assert_int_equal(n, 7);		/* the read-only device is not logged */
	assert_int_equal(r[0].h.type, IO_WLOG_DEV);
	assert_int_equal(r[0].h.off, (uint64_t)st.st_dev);
	assert_int_equal(r[0].h.len, (uint64_t)st.st_ino);
	r[0].data[r[0].h.datalen] = 0;
	assert_string_equal((char *)r[0].data, path);
	for (size_t i = 1; i < n; i++)
		assert_int_equal(r[i].h.dev, r[0].h.dev);
	/* synchronous: issued with its data, done, flushed after it was done */
	assert_int_equal(r[1].h.type, IO_WLOG_WRITE);
	assert_int_equal(r[1].h.seq, 1);
	assert_int_equal(r[1].h.off, 8192);
	assert_int_equal(r[1].h.len, 4096);
	assert_int_equal(r[1].h.datalen, 4096);
	assert_int_equal(r[1].data[0], 'a');
	assert_int_equal(r[1].data[4095], 'a');
	assert_true(r[1].h.t0 > 0);
	assert_int_equal(r[2].h.type, IO_WLOG_DONE);
	assert_int_equal(r[2].h.seq, 1);
	assert_int_equal(r[2].h.datalen, 0);
	assert_true(r[2].h.t1 >= r[1].h.t0);
	assert_int_equal(r[3].h.type, IO_WLOG_FLUSH);
	assert_true(r[3].h.t0 >= r[2].h.t1 && r[3].h.t1 >= r[3].h.t0);	/* it covers the write */
	/* through the engine: the same, and the flush waited for the write */
	assert_int_equal(r[4].h.type, IO_WLOG_WRITE);
	assert_int_equal(r[4].h.seq, 2);
	assert_int_equal(r[4].h.off, 65536);
	assert_int_equal(r[4].h.len, 8192);
	assert_int_equal(r[4].data[8191], 'b');
	assert_true(r[4].h.t0 >= r[3].h.t1);
	assert_int_equal(r[5].h.type, IO_WLOG_DONE);
	assert_int_equal(r[5].h.seq, 2);
	assert_true(r[5].h.t1 >= r[4].h.t0);
	assert_int_equal(r[6].h.type, IO_WLOG_FLUSH);
	assert_true(r[6].h.t0 >= r[5].h.t1 && r[6].h.t1 >= r[6].h.t0);
	for (size_t i = 0; i < n; i++)
		free(r[i].data);
	io_dev_close(dev);
	io_dev_close(rdev);
	io_buf_free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_wlog) };
	char cmd[300];
	int rc;

	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv(IO_WLOG_ENV, tmpdir, 1);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return rc;
}
