/*
 * tests/unit/test_store_spacemap.c - bitmap allocator: exhaustion, padding
 * bits, deferred frees (never reused before they are applied), counts
 * recomputed from disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "src/store/spacemap.h"

#include <errno.h>

static void test_alloc_free(void **state)
{
	(void)state;
	const uint64_t nbits = SM_BITS_PER_BLOCK + 1000;	/* two blocks, padding in the 2nd */
	char *path = tu_tmpfile("sm", 1 << 20);
	struct io_dev *dev;
	struct bm *bm;
	struct spacemap *sm;
	uint64_t u;
	bool used;

	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	TU_OK(bm_create(dev, 9, 64, false, &bm));
	TU_OK(sm_format(bm, META_T_DBITMAP, 4, nbits, bm_flush_home, bm));
	TU_OK(bm_flush_home(bm));
	TU_OK(sm_open(bm, META_T_DBITMAP, 4, nbits, &sm));
	assert_int_equal(sm_free_count(sm), nbits);

	uint8_t *seen = calloc(nbits, 1);
	for (uint64_t i = 0; i < nbits; i++) {
		TU_OK(sm_alloc(sm, &u));
		assert_true(u < nbits);
		assert_false(seen[u]);
		seen[u] = 1;
	}
	assert_int_equal(sm_free_count(sm), 0);
	assert_int_equal(sm_alloc(sm, &u), -ENOSPC);

	/* deferred: freed units stay allocated until applied */
	TU_OK(sm_free(sm, 77));
	TU_OK(sm_free(sm, nbits - 1));
	assert_int_equal(sm_alloc(sm, &u), -ENOSPC);
	TU_OK(sm_test(sm, 77, &used));
	assert_true(used);
	assert_int_equal(sm_pending_frees(sm), 2);
	TU_OK(sm_apply_frees(sm));
	assert_int_equal(sm_free_count(sm), 2);
	TU_OK(sm_test(sm, 77, &used));
	assert_false(used);
	TU_OK(sm_alloc(sm, &u));
	TU_OK(sm_alloc(sm, &u));
	assert_int_equal(sm_alloc(sm, &u), -ENOSPC);
	assert_int_equal(sm_take(sm, 5), -EEXIST);
	assert_int_equal(sm_free(sm, nbits), -EINVAL);
	TU_OK(sm_free(sm, 5));
	TU_OK(sm_apply_frees(sm));
	TU_OK(bm_flush_home(bm));
	sm_close(sm);

	/* counts come back from disk */
	bm_destroy(bm);
	TU_OK(bm_create(dev, 9, 64, false, &bm));
	TU_OK(sm_open(bm, META_T_DBITMAP, 4, nbits, &sm));
	assert_int_equal(sm_free_count(sm), 1);
	TU_OK(sm_take(sm, 5));
	assert_int_equal(sm_free_count(sm), 0);
	sm_close(sm);
	bm_destroy(bm);
	free(seen);
	io_dev_close(dev);
	unlink(path);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
