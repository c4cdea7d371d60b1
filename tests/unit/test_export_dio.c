/*
 * tests/unit/test_export_dio.c - the export data path's building blocks
 * on a real O_DIRECT file with the real async ioengine: dio's
 * read-modify-write and sector locks under concurrent unaligned writes,
 * zeroing, failure propagation (injected faults) without leaked locks,
 * gated writes (refused at issue, nothing written, lock released);
 * and the chunk bitmap / location map caches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ioengine/ioengine.h"
#include "src/export/chunkmap.h"
#include "src/export/dio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEV_SIZE (1024 * 1024)

struct env {
	char path[64];
	struct io_dev *dev;
	struct io_engine *eng;
	struct dio *d;
	unsigned char *model;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	int fd;

	snprintf(e->path, sizeof e->path, "/var/tmp/export-dio-test.XXXXXX");
	fd = mkstemp(e->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DEV_SIZE), 0);
	close(fd);
	assert_int_equal(io_dev_open(e->path, IO_DEV_RDWR, &e->dev), 0);
	assert_int_equal(io_engine_create(64, &e->eng), 0);
	assert_int_equal(dio_create(e->eng, e->dev, &e->d), 0);
	e->model = calloc(1, DEV_SIZE);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	dio_destroy(e->d);
	io_engine_destroy(e->eng);
	io_dev_close(e->dev);
	unlink(e->path);
	free(e->model);
	free(e);
	return 0;
}

struct done {
	int calls;
	int err;
};

static void on_done(void *arg, int err)
{
	struct done *d = arg;

	d->calls++;
	if (err)
		d->err = err;
}

static void drain(struct env *e)
{
	while (dio_inflight(e->d)) {
		assert_true(io_engine_submit(e->eng) >= 0);
		assert_true(io_engine_reap(e->eng, 1000) >= 0);
	}
}

static void check_all(struct env *e)
{
	unsigned char *buf = io_buf_alloc(DEV_SIZE);
	struct done d = { 0 };

	dio_read(e->d, buf, DEV_SIZE, 0, on_done, &d);
	drain(e);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.err, 0);
	assert_memory_equal(buf, e->model, DEV_SIZE);
	io_buf_free(buf);
}

/* Many writes sharing sectors but not bytes, all in flight at once: a
 * read-modify-write without the sector lock would lose some of them.  */
static void test_adjacent_unaligned_writes(void **state)
{
	struct env *e = *state;
	unsigned seed = 1;

	for (int round = 0; round < 50; round++) {
		uint64_t pos = (uint64_t)(rand_r(&seed) % (DEV_SIZE - 70000));
		struct done d = { 0 };
		unsigned char *bufs[40];
		int n = 0;

		while (n < 40) {
			size_t len = 1 + (size_t)(rand_r(&seed) % 3000);

			bufs[n] = malloc(len);	/* unaligned source on purpose */
			for (size_t i = 0; i < len; i++)
				bufs[n][i] = (unsigned char)rand_r(&seed);
			memcpy(e->model + pos, bufs[n], len);
			dio_write(e->d, bufs[n], len, pos, round % 7 == 0 ? DIO_FUA : 0, on_done, &d);
			pos += len;
			n++;
		}
		drain(e);
		assert_int_equal(d.calls, n);
		assert_int_equal(d.err, 0);
		for (int i = 0; i < n; i++)
			free(bufs[i]);
	}
	check_all(e);
}

static void test_unaligned_reads_and_zero(void **state)
{
	struct env *e = *state;
	unsigned seed = 7;
	struct done d = { 0 };
	unsigned char *big = malloc(200000);

	for (size_t i = 0; i < 200000; i++)
		big[i] = (unsigned char)(i * 13 + 1);
	memcpy(e->model + 1000, big, 200000);
	dio_write(e->d, big, 200000, 1000, 0, on_done, &d);
	drain(e);
	memset(e->model + 3333, 0, 150001);
	dio_zero(e->d, 150001, 3333, DIO_FUA, on_done, &d);
	drain(e);
	assert_int_equal(d.calls, 2);
	assert_int_equal(d.err, 0);
	for (int i = 0; i < 200; i++) {
		uint64_t off = (uint64_t)(rand_r(&seed) % (DEV_SIZE - 10000));
		size_t len = 1 + (size_t)(rand_r(&seed) % 9999);
		unsigned char *buf = malloc(len);
		struct done r = { 0 };

		dio_read(e->d, buf, len, off, on_done, &r);
		drain(e);
		assert_int_equal(r.err, 0);
		assert_memory_equal(buf, e->model + off, len);
		free(buf);
	}
	free(big);
	check_all(e);
}

/* A failed write reports the error and releases its sector lock: a
 * conflicting write queued behind it still runs.  */
static void test_failure_releases_lock(void **state)
{
	struct env *e = *state;
	struct done bad = { 0 }, good = { 0 };
	unsigned char a[100], b[100];

	memset(a, 0xaa, sizeof a);
	memset(b, 0xbb, sizeof b);
	io_dev_inject_fault(e->dev, IO_FAULT_WRITE, 0, 1, 5 /* EIO */);
	dio_write(e->d, a, sizeof a, 4096 + 10, 0, on_done, &bad);	/* RMW, fails */
	dio_write(e->d, b, sizeof b, 4096 + 200, 0, on_done, &good);	/* same sector */
	drain(e);
	io_dev_clear_faults(e->dev);
	assert_int_equal(bad.calls, 1);
	assert_int_equal(bad.err, -5);
	assert_int_equal(good.calls, 1);
	assert_int_equal(good.err, 0);
	memcpy(e->model + 4096 + 200, b, sizeof b);
	check_all(e);
}

static bool gate_closed(void *arg)
{
	int *calls = arg;

	(*calls)++;
	return false;
}

static bool gate_open(void *arg)
{
	int *calls = arg;

	(*calls)++;
	return true;
}

/* Gated writes (the export's grant): a closed gate fails an unaligned
 * write after its edge reads, writes nothing, releases its lock; gated
 * zeroing stops at its first piece; an open gate changes nothing.  */
static void test_gate(void **state)
{
	struct env *e = *state;
	struct done bad = { 0 }, good = { 0 }, z = { 0 }, ok = { 0 };
	unsigned char a[100], b[100], c[5000];
	int closed_calls = 0, open_calls = 0;

	memset(a, 0xaa, sizeof a);
	memset(b, 0xbb, sizeof b);
	memset(c, 0xcc, sizeof c);
	dio_write_gated(e->d, a, sizeof a, 8192 + 10, 0, gate_closed, &closed_calls,
			on_done, &bad);				/* RMW, refused */
	dio_write(e->d, b, sizeof b, 8192 + 200, 0, on_done, &good);	/* same sector */
	drain(e);
	assert_int_equal(bad.calls, 1);
	assert_int_equal(bad.err, -EKEYEXPIRED);
	assert_int_equal(closed_calls, 1);
	assert_int_equal(good.calls, 1);
	assert_int_equal(good.err, 0);
	memcpy(e->model + 8192 + 200, b, sizeof b);

	closed_calls = 0;
	dio_zero_gated(e->d, 300000, 12288 + 7, 0, gate_closed, &closed_calls,
		       on_done, &z);
	drain(e);
	assert_int_equal(z.calls, 1);
	assert_int_equal(z.err, -EKEYEXPIRED);
	assert_true(closed_calls >= 1);

	dio_write_gated(e->d, c, sizeof c, 20000, DIO_FUA, gate_open, &open_calls, on_done, &ok);
	drain(e);
	assert_int_equal(ok.err, 0);
	assert_int_equal(open_calls, 1);
	memcpy(e->model + 20000, c, sizeof c);
	check_all(e);
}

static void test_bitmap(void **state)
{
	struct chunk_bitmap b;

	(void)state;
	assert_int_equal(chunk_bitmap_init(&b, 1000), 0);
	assert_false(chunk_bitmap_test(&b, 5));
	chunk_bitmap_set(&b, 60, 10);
	assert_true(chunk_bitmap_test(&b, 60));
	assert_true(chunk_bitmap_test(&b, 69));
	assert_false(chunk_bitmap_test(&b, 70));
	assert_false(chunk_bitmap_test(&b, 59));
	chunk_bitmap_set(&b, 995, 100);		/* clipped at the end */
	assert_true(chunk_bitmap_test(&b, 999));
	assert_false(chunk_bitmap_test(&b, 1000));
	assert_int_equal(b.nset, 15);
	chunk_bitmap_clear_all(&b);
	assert_false(chunk_bitmap_test(&b, 60));
	assert_int_equal(b.nset, 0);
	chunk_bitmap_free(&b);
}

static void test_map(void **state)
{
	struct chunk_map m;
	uint64_t v;

	(void)state;
	assert_int_equal(chunk_map_init(&m, 5000), 0);
	for (uint64_t k = 0; k < 4000; k++)
		chunk_map_put(&m, k * 977, k + 1);	/* grows several times */
	for (uint64_t k = 0; k < 4000; k++) {
		assert_true(chunk_map_get(&m, k * 977, &v));
		assert_int_equal(v, k + 1);
	}
	assert_false(chunk_map_get(&m, 1, &v));
	chunk_map_put(&m, 977, 42);		/* update in place */
	assert_true(chunk_map_get(&m, 977, &v));
	assert_int_equal(v, 42);
	for (uint64_t k = 4000; k < 5001; k++)	/* past the bound: starts over */
		chunk_map_put(&m, k * 977, k);
	assert_true(m.used <= 5000);
	assert_true(chunk_map_get(&m, 5000 * 977, &v));
	assert_int_equal(v, 5000);
	chunk_map_clear(&m);
	assert_false(chunk_map_get(&m, 5000 * 977, &v));
	chunk_map_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_adjacent_unaligned_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unaligned_reads_and_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_releases_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gate, setup, teardown),
		cmocka_unit_test(test_bitmap),
		cmocka_unit_test(test_map),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
