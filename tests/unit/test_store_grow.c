/*
 * tests/unit/test_store_grow.c - store_grow() (src/store/grow.c):
 *  - a full store whose device is extended takes new exceptions after the
 *    grow, its contents unchanged, check clean, and again after a second
 *    grow (the bitmap moves from behind the data area this time);
 *  - refusals: a grow with uncommitted changes, a device that shrank, one
 *    that grew too little; a device that did not grow adds nothing;
 *  - crash safety: every write and flush of a grow is recorded and a cut
 *    after each write leaves either the old store or the grown one, with
 *    the same contents and a clean check;
 *  - store_origin_resize's refusals (shrink, an origin that is not a whole
 *    number of chunks), its no-op, a "size:" identity following the size,
 *    and the size surviving a reopen.  (Resizes among random operations:
 *    test_store_model and test_store_replay.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "utils/crc32c.h"
#include "utils/log.h"

#include <errno.h>
#include <sys/stat.h>

#define CHUNK		4096
#define OCHUNKS		4096
#define STORE_SIZE	(8u << 20)

static uint32_t digest(struct store *s)
{
	struct store_snapshot list[16];
	static chunk_t map[OCHUNKS];
	uint32_t h = 0;
	int n = store_snapshot_list(s, list, 16);

	assert_true(n >= 0 && n <= 16);
	for (int i = 0; i < n; i++) {
		h = crc32c(h, &list[i].id, sizeof list[i].id);
		TU_OK(store_snapshot_read(s, list[i].id, 0, OCHUNKS, map));
		h = crc32c(h, map, sizeof map);
	}
	return h;
}

static uint64_t data_chunks(struct store *s)
{
	struct store_info info;
	store_get_info(s, &info);
	return info.data_chunks;
}

/* Origin writes until the data area is full; returns how many copies.  */
static uint64_t fill(struct store *s, uint64_t from)
{
	struct store_copy cp[16];
	uint32_t n;
	uint64_t copies = 0;

	for (uint64_t c = from; c + 16 <= OCHUNKS; c += 16) {
		int r = store_origin_write(s, c, 16, cp, &n);
		if (r == -ENOSPC)
			break;
		TU_OK(r);
		copies += n;
		TU_OK(store_commit(s));
	}
	return copies;
}

static void grow_file(const char *path, uint64_t by)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size + (off_t)by), 0);
}

static void test_grow(void **state)
{
	(void)state;
	char *path = tu_mkstore("grow", STORE_SIZE, CHUNK, (uint64_t)OCHUNKS * CHUNK, 16);
	struct store *s;
	uint32_t id;
	uint64_t added, n0, got;

	TU_OK(store_open(path, NULL, &s));
	TU_OK(store_snapshot_create(s, "a", 0, &id));
	n0 = data_chunks(s);
	got = fill(s, 0);
	assert_true(got > 0 && got <= n0);
	uint32_t dg = digest(s);

	/* refusals, and no growth */
	TU_OK(store_grow(s, &added));
	assert_int_equal(added, 0);
	struct store_copy cp[1];
	uint32_t n;
	TU_OK(store_snapshot_create(s, "b", 0, &id));
	assert_int_equal(store_grow(s, &added), -EBUSY);
	TU_OK(store_commit(s));
	dg = digest(s);
	grow_file(path, CHUNK);
	assert_int_equal(store_grow(s, &added), -ENOSPC);
	assert_non_null(strstr(err_get(), "more bytes are needed"));

	/* first grow: the bitmap moves behind the data area */
	grow_file(path, 4u << 20);
	TU_OK(store_grow(s, &added));
	assert_true(added > 900);
	assert_int_equal(data_chunks(s), n0 + added);
	assert_int_equal(digest(s), dg);
	uint64_t more = fill(s, (OCHUNKS / 2) & ~15ull);
	assert_true(more > 0);
	TU_OK(store_commit(s));
	assert_int_equal(store_check_open(s, stderr), 0);
	store_close(s);
	assert_int_equal(store_check(path, stderr), 0);

	/* second grow, after a reopen: the bitmap moves again and its old
	 * place becomes data chunks */
	TU_OK(store_open(path, NULL, &s));
	dg = digest(s);
	uint64_t n1 = data_chunks(s);
	grow_file(path, 4u << 20);
	TU_OK(store_grow(s, &added));
	assert_true(added > 1000);
	assert_int_equal(digest(s), dg);
	TU_OK(store_origin_write(s, 0, 1, cp, &n));
	TU_OK(store_commit(s));
	assert_true(data_chunks(s) == n1 + added);
	store_close(s);
	assert_int_equal(store_check(path, stderr), 0);

	/* a device that shrank below the store: refused */
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	TU_OK(store_open(path, NULL, &s));
	assert_int_equal(truncate(path, st.st_size - CHUNK), 0);
	assert_int_equal(store_grow(s, &added), -EINVAL);
	assert_non_null(strstr(err_get(), "cannot shrink"));
	store_close(s);
	unlink(path);
	free(path);
}

static void test_grow_cuts(void **state)
{
	(void)state;
	char *path = tu_mkstore("growcut", STORE_SIZE, CHUNK, (uint64_t)OCHUNKS * CHUNK, 16);
	struct store *s;
	uint32_t id;
	uint64_t added;

	TU_OK(store_open(path, NULL, &s));
	TU_OK(store_snapshot_create(s, "a", 0, &id));
	fill(s, 0);
	uint32_t dg = digest(s);
	uint64_t n0 = data_chunks(s);
	store_close(s);
	grow_file(path, 4u << 20);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	struct tu_cuts cuts;
	struct io_dev *dev = tu_cuts_start(&cuts, path);
	TU_OK(store_open_dev(dev, NULL, &s));
	TU_OK(store_grow(s, &added));
	store_close(s);
	tu_cuts_stop(dev);
	assert_true(added > 0);

	unsigned old = 0, grown = 0;
	size_t nlog = io_log_count(cuts.log);
	for (size_t end = 0; end <= nlog; end++) {
		tu_cut(&cuts, end);
		assert_int_equal(truncate(cuts.target, st.st_size), 0);
		struct store_open_opts ro = { .readonly = true };
		TU_OK(store_open(cuts.target, &ro, &s));
		uint64_t n = data_chunks(s);
		assert_true(n == n0 || n == n0 + added);
		n == n0 ? old++ : grown++;
		assert_int_equal(digest(s), dg);
		assert_int_equal(store_check_open(s, stderr), 0);
		store_close(s);
		/* read-write: it takes new exceptions if it grew */
		TU_OK(store_open(cuts.target, NULL, &s));
		struct store_copy cp[16];
		uint32_t nc;
		int r = store_origin_write(s, OCHUNKS - 16, 16, cp, &nc);
		assert_true(r == 0 || (r == -ENOSPC && n == n0));
		TU_OK(store_commit(s));
		store_close(s);
		assert_int_equal(store_check(cuts.target, stderr), 0);
	}
	print_message("%zu cut points: %u left the old store, %u the grown one\n", nlog + 1, old, grown);
	assert_true(old > 0 && grown > 0);
	tu_cuts_free(&cuts);
	unlink(path);
	free(path);
}

static void test_resize_refusals(void **state)
{
	(void)state;
	/* an origin of 100.5 chunks */
	char *path = tu_mkstore("resize", STORE_SIZE, CHUNK, 100 * CHUNK + CHUNK / 2, 16);
	struct store *s;
	struct store_info info;

	TU_OK(store_open(path, NULL, &s));
	assert_int_equal(store_origin_resize(s, 200 * CHUNK), -EINVAL);
	assert_non_null(strstr(err_get(), "not a multiple of the chunk size"));
	TU_OK(store_origin_resize(s, 100 * CHUNK + CHUNK / 2));	/* same: no-op */
	store_close(s);
	unlink(path);
	free(path);

	path = tu_mkstore("resize", STORE_SIZE, CHUNK, 100 * CHUNK, 16);
	TU_OK(store_open(path, NULL, &s));
	assert_int_equal(store_origin_resize(s, 99 * CHUNK), -EINVAL);
	assert_non_null(strstr(err_get(), "cannot shrink"));
	TU_OK(store_origin_resize(s, 150 * CHUNK + 512));	/* any new size */
	store_get_info(s, &info);
	assert_int_equal(info.origin_chunks, 151);
	store_close(s);
	struct csnap_sb sb;
	TU_OK(csnap_sb_read_path(path, &sb));
	assert_int_equal(sb.origin_size, 150 * CHUNK + 512);
	char want[64];
	snprintf(want, sizeof want, "size:%u", 150 * CHUNK + 512);
	assert_string_equal(sb.origin_id, want);	/* tu_mkstore's "size:test" follows */
	/* read-only: refused */
	struct store_open_opts ro = { .readonly = true };
	TU_OK(store_open(path, &ro, &s));
	assert_int_equal(store_origin_resize(s, 200 * CHUNK), -EROFS);
	store_close(s);
	tu_check_remove(path);
}

int main(void)
{
	log_set_level(LOG_LEVEL_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_grow_cuts),
		cmocka_unit_test(test_resize_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
