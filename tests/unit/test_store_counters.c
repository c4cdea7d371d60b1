/*
 * tests/unit/test_store_counters.c - the per-snapshot usage counters
 * (src/store/counters.h): exact figures through copy-out, unsharing,
 * delete and cleanup, abort and reopen, a clone's walk; several counter blocks; a store
 * without counters (as made before they existed) reads as "unknown",
 * checks clean and gets exact counters from store_counters_rebuild(),
 * as a version-1 store does from `csnap upgrade`;
 * counters that disagree with the tree are reported by check and fixed by
 * a rebuild.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "src/store/store_int.h"
#include "utils/log.h"

#include <errno.h>
#include <unistd.h>

#define CH 4096

static struct store *open_new(const char *tag, uint64_t origin_chunks, uint32_t maxsnap, char **path)
{
	struct store *s;
	*path = tu_mkstore(tag, 16 << 20, CH, origin_chunks * CH, maxsnap);
	TU_OK(store_open(*path, NULL, &s));
	return s;
}

static void reopen(struct store **s, const char *path)
{
	TU_OK(store_commit(*s));
	store_close(*s);
	TU_OK(store_open(path, NULL, s));
}

/* unique/shared of snapshot ID as store_usage() reports it */
static void usage_of(struct store *s, uint32_t id, uint64_t *u, uint64_t *sh, bool *known)
{
	static struct store_usage us[CSNAP_MAX_SNAPSHOTS_LIMIT];
	int n = store_usage(s, us, CSNAP_MAX_SNAPSHOTS_LIMIT);

	assert_true(n >= 0 && n <= CSNAP_MAX_SNAPSHOTS_LIMIT);
	for (int i = 0; i < n; i++)
		if (us[i].id == id) {
			*u = us[i].unique;
			*sh = us[i].shared;
			*known = us[i].known;
			return;
		}
	fail_msg("snapshot %u not in the usage report", id);
}

static void expect(struct store *s, uint32_t id, uint64_t u, uint64_t sh)
{
	uint64_t gu, gs;
	bool known;

	usage_of(s, id, &gu, &gs, &known);
	assert_true(known);
	if (gu != u || gs != sh)
		fail_msg("snapshot %u: %llu unique, %llu shared; expected %llu, %llu", id,
			 (unsigned long long)gu, (unsigned long long)gs,
			 (unsigned long long)u, (unsigned long long)sh);
	assert_int_equal(store_counters_verify(s, stderr), 0);
}

static void test_figures(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("cnt1", 64, 8, &path);
	struct store_copy cp[16];
	chunk_t dst[16];
	uint32_t a, b, n;

	TU_OK(store_snapshot_create(s, "a", 0, &a));
	expect(s, a, 0, 0);
	TU_OK(store_origin_write(s, 0, 10, cp, &n));		/* {a} x 10 */
	expect(s, a, 10, 0);
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	TU_OK(store_origin_write(s, 5, 10, cp, &n));		/* {b} x 5, {a,b} x 5 */
	assert_int_equal(n, 10);
	expect(s, a, 10, 5);
	expect(s, b, 5, 5);
	reopen(&s, path);					/* persisted */
	expect(s, a, 10, 5);
	expect(s, b, 5, 5);
	TU_OK(store_snapshot_write(s, b, 12, 1, dst, cp, &n));	/* unshare chunk 12 */
	expect(s, a, 11, 4);
	expect(s, b, 6, 4);
	TU_OK(store_snapshot_write(s, b, 12, 1, dst, cp, &n));	/* in place: no change */
	assert_int_equal(n, 0);
	expect(s, b, 6, 4);
	TU_OK(store_abort(s));					/* back to the commit */
	expect(s, a, 10, 5);
	expect(s, b, 5, 5);
	TU_OK(store_snapshot_write(s, b, 12, 1, dst, cp, &n));
	TU_OK(store_commit(s));
	/* delete a: the masks, hence the figures, change as the cleanup
	 * passes; at its end b holds everything alone */
	TU_OK(store_snapshot_delete(s, a));
	expect(s, b, 6, 4);
	while ((n = (uint32_t)store_cleanup(s, 3)) == 1)
		assert_int_equal(store_counters_verify(s, stderr), 0);
	expect(s, b, 10, 0);
	reopen(&s, path);
	expect(s, b, 10, 0);
	tu_close_check_remove(s, path);
}

/* A clone's walk sets its bit beside its parent's: {a} becomes {a,c}
 * (a's unique chunks turn shared), {a,b} becomes {a,b,c}.  */
static void test_clone(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("cnt7", 64, 8, &path);
	struct store_copy cp[16];
	uint32_t a, b, c, n;

	TU_OK(store_snapshot_create(s, "a", 0, &a));
	TU_OK(store_origin_write(s, 0, 10, cp, &n));		/* {a} x 10 */
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	TU_OK(store_origin_write(s, 5, 10, cp, &n));		/* {b} x 5, {a,b} x 5 */
	TU_OK(store_snapshot_clone(s, "c", a, 0, NULL, &c));
	int r;
	while ((r = store_clone_step(s, 3)) > 0)
		assert_int_equal(store_counters_verify(s, stderr), 0);
	TU_OK(r);
	expect(s, a, 0, 15);
	expect(s, b, 5, 5);
	expect(s, c, 0, 15);
	reopen(&s, path);
	expect(s, c, 0, 15);
	tu_close_check_remove(s, path);
}

/* 400 snapshots: two counter blocks, slots past the first block's 338 */
static void test_many_blocks(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("cnt2", 64, 400, &path);
	struct store_copy cp[16];
	chunk_t dst[16];
	uint32_t id[400], n;

	assert_int_equal(s->cnt.nblocks, 2);
	for (int i = 0; i < 400; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", i);
		TU_OK(store_snapshot_create(s, name, 0, &id[i]));
	}
	TU_OK(store_origin_write(s, 0, 4, cp, &n));		/* 4 x all 400 */
	TU_OK(store_snapshot_write(s, id[399], 1, 1, dst, cp, &n));
	reopen(&s, path);
	expect(s, id[0], 0, 4);
	expect(s, id[398], 0, 4);
	expect(s, id[399], 1, 3);
	/* a rebuild of valid counters (upgrade run again after a cut) keeps
	 * their blocks: check finds no leaked tree block */
	uint64_t b0 = s->cnt.block[0];
	TU_OK(store_counters_rebuild(s));
	reopen(&s, path);
	assert_int_equal(s->cnt.block[0], b0);
	expect(s, id[399], 1, 3);
	tu_close_check_remove(s, path);
}

/* Makes S look like a store made before the counters existed: header
 * fields zero, no counter block allocated.  */
static void make_old(struct store *s)
{
	for (uint32_t i = 0; i < s->cnt.nblocks; i++)
		TU_OK(sm_free(s->msm, s->cnt.block[i] - s->sb.engine.meta_start));
	memset(s->cnt.block, 0, sizeof s->cnt.block);
	s->cnt.nblocks = 0;
	s->cnt.multi = 0;
	s->cnt.valid = false;
	s->header_dirty = true;
	TU_OK(store_commit(s));
}

static void test_absent_then_rebuilt(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("cnt3", 64, 8, &path);
	struct store_copy cp[16];
	chunk_t dst[16];
	uint32_t a, b, n;
	uint64_t u, sh;
	bool known;

	TU_OK(store_snapshot_create(s, "a", 0, &a));
	TU_OK(store_origin_write(s, 0, 10, cp, &n));
	make_old(s);
	reopen(&s, path);
	assert_false(store_counters_valid(s));
	assert_string_equal(store_counters_state(s), "absent");
	usage_of(s, a, &u, &sh, &known);
	assert_false(known);		/* "unknown", never a wrong number */
	assert_int_equal(u, 0);
	/* the engine runs on without them, and check is clean */
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	TU_OK(store_origin_write(s, 5, 10, cp, &n));
	TU_OK(store_snapshot_write(s, b, 12, 1, dst, cp, &n));
	TU_OK(store_commit(s));
	assert_int_equal(store_check_open(s, stderr), 0);
	TU_OK(store_counters_rebuild(s));
	reopen(&s, path);
	assert_true(store_counters_valid(s));
	expect(s, a, 11, 4);
	expect(s, b, 6, 4);
	tu_close_check_remove(s, path);
}

static void test_wrong_counters_reported(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("cnt4", 64, 8, &path);
	struct store_copy cp[16];
	uint32_t a, b, n;

	TU_OK(store_snapshot_create(s, "a", 0, &a));
	TU_OK(store_origin_write(s, 0, 10, cp, &n));
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	TU_OK(store_origin_write(s, 5, 10, cp, &n));
	/* a wrong figure that still adds up (so it loads): one unique chunk
	 * moved from a to b */
	s->cnt.uniq[0]--;
	s->cnt.uniq[1]++;
	s->cnt.dirty = 1;
	reopen(&s, path);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(store_check_open(s, f), 2);
	fclose(f);
	assert_non_null(strstr(buf, "usage counters: slot 0"));
	free(buf);
	assert_true(store_counters_verify(s, NULL) > 0);
	/* counters that do not add up are not used at all: written into
	 * the block behind the engine's back (its commit asserts they add up) */
	struct bm_block *blk;
	TU_OK(bm_get(s->bm, s->cnt.block[0], META_T_COUNTERS, &blk));
	bm_dirty(s->bm, blk);
	put_le32(blk->data + CNT_HDR_SIZE + CE_UNIQUE, 999);
	bm_put(s->bm, blk);
	reopen(&s, path);
	assert_false(store_counters_valid(s));
	assert_non_null(strstr(store_counters_state(s), "do not add up"));
	assert_true(store_check_open(s, NULL) > 0);
	TU_OK(store_counters_rebuild(s));	/* reuses the listed block */
	reopen(&s, path);
	expect(s, a, 10, 5);
	expect(s, b, 5, 5);
	tu_close_check_remove(s, path);
}

/* A version-1 store (no counters) used by the old code, then `csnap
 * upgrade`: exact counters from its step.  */
static void test_upgrade_builds_counters(void **state)
{
	(void)state;
	char *path = tu_tmpfile("cnt5", 16 << 20);
	struct io_dev *dev;
	struct csnap_sb sb;
	struct store *s;
	struct store_copy cp[16];
	chunk_t dst[16];
	uint32_t a, b, n, from = 0;
	uint64_t u, sh;
	bool known;

	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	tu_sb_defaults(&sb, 16 << 20, CH, 64 * CH, 8);
	TU_OK(store_format_as(dev, &sb, 1));
	io_dev_close(dev);
	struct store_open_opts old = { .old_format = true };
	TU_OK(store_open(path, &old, &s));
	assert_false(store_counters_valid(s));
	TU_OK(store_snapshot_create(s, "a", 0, &a));
	TU_OK(store_origin_write(s, 0, 10, cp, &n));
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	TU_OK(store_origin_write(s, 5, 10, cp, &n));
	TU_OK(store_snapshot_write(s, b, 12, 1, dst, cp, &n));
	TU_OK(store_commit(s));
	usage_of(s, a, &u, &sh, &known);
	assert_false(known);
	store_close(s);
	TU_OK(store_upgrade(path, &from, NULL, NULL));
	assert_int_equal(from, 1);
	TU_OK(store_open(path, NULL, &s));
	assert_true(store_counters_valid(s));
	expect(s, a, 11, 4);
	expect(s, b, 6, 4);
	tu_close_check_remove(s, path);
}

/* A forged exception naming only a bit past the snapshot table (mask 64
 * bits, 8 slots): counted for no slot (no write past the arrays under
 * ASan); loaded counters then do not add up and are not used; rebuilt,
 * they stay consistent while the cleanup drops it (the commit's
 * assertion); check reports it until then.  */
static void test_forged_bit(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("cnt6", 64, 8, &path);
	struct store_copy cp[16];
	uint8_t mask[8] = { 0 };
	uint32_t a, n;
	uint64_t d;

	TU_OK(store_snapshot_create(s, "a", 0, &a));
	TU_OK(store_origin_write(s, 0, 4, cp, &n));
	mask[5] = 0x01;					/* bit 40 */
	TU_OK(sm_alloc(s->dsm, &d));
	TU_OK(btree_insert(&s->tree, 10, d, mask));	/* behind the engine's back */
	TU_OK(store_counters_rebuild(s));		/* counts it as no slot's */
	assert_int_equal(s->cnt.uncounted, 1);
	expect(s, a, 4, 0);
	reopen(&s, path);
	/* loaded, they do not add up to the tree's count: not used */
	assert_false(store_counters_valid(s));
	assert_true(store_check_open(s, NULL) > 0);	/* the mask names no snapshot */
	TU_OK(store_counters_rebuild(s));
	uint32_t b;
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	TU_OK(store_snapshot_delete(s, b));
	while (store_cleanup(s, 2) > 0)
		;
	TU_OK(store_commit(s));				/* asserts the sums */
	expect(s, a, 4, 0);
	assert_int_equal(store_check_open(s, stderr), 0);	/* the forged one is gone */
	reopen(&s, path);
	expect(s, a, 4, 0);
	store_close(s);
	unlink(path);
	free(path);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_figures),
		cmocka_unit_test(test_clone),
		cmocka_unit_test(test_many_blocks),
		cmocka_unit_test(test_absent_then_rebuilt),
		cmocka_unit_test(test_wrong_counters_reported),
		cmocka_unit_test(test_upgrade_builds_counters),
		cmocka_unit_test(test_forged_bit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
