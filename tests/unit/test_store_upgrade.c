/*
 * tests/unit/test_store_upgrade.c - format versions (format.h) and
 * store_upgrade() (src/store/upgrade.c):
 *  - a version-1 store opens read-only (reads work) and a read-write open
 *    is refused with one line naming `csnap upgrade`;
 *  - a store newer than the code is refused, read-only too;
 *  - upgrade moves 1 -> CSNAP_FORMAT_VERSION, keeps the contents, and the
 *    store then opens read-write and checks clean; a second upgrade writes
 *    nothing;
 *  - crash safety: every write and flush of an upgrade is recorded, and a
 *    power cut at every flush boundary (and between the writes of the
 *    superblock copies) leaves a store that is either still version 1 or
 *    fully upgraded, with the same contents and a clean check.
 * The version-1 stores are made by relabelling a fresh store's superblock
 * (test_store_golden pins that version-1 bytes are what version 1 wrote).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "utils/crc32c.h"
#include "utils/log.h"

#include <errno.h>

#define CHUNK		4096
#define OCHUNKS		256
#define STORE_SIZE	(8u << 20)

/* Rewrites the superblock of PATH with format version V.  */
static void set_version(const char *path, uint32_t v)
{
	struct io_dev *dev;
	struct csnap_sb sb;

	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	TU_OK(csnap_sb_read(dev, &sb, NULL));
	sb.version = v;
	TU_OK(csnap_sb_write(dev, &sb));
	io_dev_close(dev);
}

static uint32_t sb_version(const char *path, uint64_t *seq)
{
	struct csnap_sb sb;

	TU_OK(csnap_sb_read_path(path, &sb));
	if (seq)
		*seq = sb.seq;
	return sb.version;
}

/* Snapshot table and every snapshot's mapping.  */
static uint32_t digest(struct store *s)
{
	struct store_snapshot list[16];
	chunk_t map[OCHUNKS];
	uint32_t h = 0;
	int n = store_snapshot_list(s, list, 16);

	assert_true(n >= 0 && n <= 16);
	for (int i = 0; i < n; i++) {
		h = crc32c(h, &list[i].id, sizeof list[i].id);
		h = crc32c(h, list[i].name, strlen(list[i].name));
		TU_OK(store_snapshot_read(s, list[i].id, 0, OCHUNKS, map));
		h = crc32c(h, map, sizeof map);
	}
	return h;
}

/* A store with snapshots and exceptions, relabelled version 1; returns
 * the digest of its contents.  */
static char *v1_store(uint32_t *dg)
{
	char *path = tu_mkstore("upgrade", STORE_SIZE, CHUNK, (uint64_t)OCHUNKS * CHUNK, 16);
	struct store *s;
	struct store_copy cp[8];
	chunk_t dst[8];
	uint32_t id[3], n;

	TU_OK(store_open(path, NULL, &s));
	for (int k = 0; k < 3; k++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", k);
		TU_OK(store_snapshot_create(s, name, 0, &id[k]));
		for (uint32_t c = 0; c < 40; c++)
			TU_OK(store_origin_write(s, (c * 37 + (uint32_t)k) % (OCHUNKS - 8), 4, cp, &n));
		TU_OK(store_snapshot_write(s, id[k], 10 + (uint32_t)k * 8, 8, dst, cp, &n));
		TU_OK(store_commit(s));
	}
	*dg = digest(s);
	store_close(s);
	set_version(path, 1);
	return path;
}

static void test_v1_readonly(void **state)
{
	(void)state;
	uint32_t dg;
	char *path = v1_store(&dg);
	struct store_open_opts ro = { .readonly = true };
	struct store *s;

	/* read-only: opens, reads, checks */
	TU_OK(store_open(path, &ro, &s));
	assert_int_equal(digest(s), dg);
	assert_int_equal(store_check_open(s, stderr), 0);
	store_close(s);
	/* read-write: refused, one line naming the command, nothing written */
	uint64_t seq0, seq1;
	assert_int_equal(sb_version(path, &seq0), 1);
	assert_int_equal(store_open(path, NULL, &s), -EROFS);
	const char *msg = err_get();
	assert_non_null(strstr(msg, "csnap upgrade"));
	assert_non_null(strstr(msg, "format version 1"));
	assert_null(strchr(msg, '\n'));
	assert_int_equal(sb_version(path, &seq1), 1);
	assert_int_equal(seq1, seq0);

	/* upgrade: contents kept, read-write works, check clean */
	uint32_t from = 0;
	TU_OK(store_upgrade(path, &from, NULL, NULL));
	assert_int_equal(from, 1);
	assert_int_equal(sb_version(path, &seq0), CSNAP_FORMAT_VERSION);
	TU_OK(store_open(path, NULL, &s));
	assert_int_equal(digest(s), dg);
	struct store_copy cp[4];
	uint32_t n;
	TU_OK(store_origin_write(s, OCHUNKS - 4, 4, cp, &n));
	assert_true(n > 0);
	TU_OK(store_commit(s));
	store_close(s);
	assert_int_equal(store_check(path, stderr), 0);

	/* twice: a no-op that writes nothing */
	assert_int_equal(sb_version(path, &seq0), CSNAP_FORMAT_VERSION);
	TU_OK(store_upgrade(path, &from, NULL, NULL));
	assert_int_equal(from, CSNAP_FORMAT_VERSION);
	assert_int_equal(sb_version(path, &seq1), CSNAP_FORMAT_VERSION);
	assert_int_equal(seq1, seq0);
	unlink(path);
	free(path);
}

static void test_future_refused(void **state)
{
	(void)state;
	uint32_t dg, from;
	char *path = v1_store(&dg);
	struct store_open_opts ro = { .readonly = true };
	struct store *s;

	set_version(path, CSNAP_FORMAT_VERSION + 1);
	assert_int_equal(store_open(path, &ro, &s), -EINVAL);
	assert_non_null(strstr(err_get(), "newer than this csnap"));
	assert_null(strstr(err_get(), "backup"));	/* said once, not per copy */
	assert_int_equal(store_open(path, NULL, &s), -EINVAL);
	assert_true(store_upgrade(path, &from, NULL, NULL) < 0);
	assert_non_null(strstr(err_get(), "newer than this csnap"));
	unlink(path);
	free(path);
}

/* Replays the first END entries of LOG onto a copy of BASE and requires a
 * version-1 or fully upgraded store with contents DG and a clean check.
 * Returns the version found.  */
static uint32_t cut_at(struct tu_cuts *c, size_t end, uint32_t dg)
{
	const char *target = c->target;
	struct store *s;
	struct store_open_opts ro = { .readonly = true };

	tu_cut(c, end);
	uint32_t v = sb_version(target, NULL);
	assert_true(v == 1 || v == CSNAP_FORMAT_VERSION);
	TU_OK(store_open(target, &ro, &s));
	assert_int_equal(digest(s), dg);
	assert_int_equal(store_check_open(s, stderr), 0);
	store_close(s);
	if (v == 1) {	/* and the next upgrade finishes the job */
		uint32_t from;
		TU_OK(store_upgrade(target, &from, NULL, NULL));
		assert_int_equal(from, 1);
		assert_int_equal(sb_version(target, NULL), CSNAP_FORMAT_VERSION);
	}
	TU_OK(store_open(target, NULL, &s));
	assert_int_equal(digest(s), dg);
	store_close(s);
	assert_int_equal(store_check(target, stderr), 0);
	return v;
}

static void test_upgrade_cuts(void **state)
{
	(void)state;
	uint32_t dg;
	char *path = v1_store(&dg);
	struct tu_cuts cuts;
	uint32_t from;
	struct io_dev *dev = tu_cuts_start(&cuts, path);
	TU_OK(store_upgrade_dev(dev, &from, NULL, NULL));
	tu_cuts_stop(dev);
	assert_int_equal(from, 1);

	/* every flush boundary, and every write (a cut between the two
	 * superblock copies' writes included) */
	unsigned seen[CSNAP_FORMAT_VERSION + 1] = { 0 };
	size_t n = io_log_count(cuts.log);
	for (size_t end = 0; end <= n; end++)
		seen[cut_at(&cuts, end, dg)]++;
	print_message("%zu cut points: %u left version 1, %u version %u\n", n + 1, seen[1],
		      seen[CSNAP_FORMAT_VERSION], CSNAP_FORMAT_VERSION);
	assert_true(seen[1] > 0 && seen[CSNAP_FORMAT_VERSION] > 0);
	tu_cuts_free(&cuts);
	unlink(path);
	free(path);
}

int main(void)
{
	log_set_level(LOG_LEVEL_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_readonly),
		cmocka_unit_test(test_future_refused),
		cmocka_unit_test(test_upgrade_cuts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
