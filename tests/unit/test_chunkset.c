/*
 * tests/unit/test_chunkset.c - the server's chunk multiset (read-lock
 * counts, busy chunks) against a simple reference model, with growth,
 * tombstones and range queries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/server/chunkset.h"

#include <stdlib.h>
#include <string.h>

#define KEYS 3000

static void test_model(void **state)
{
	static uint32_t model[KEYS];
	struct chunkset cs;
	(void)state;
	chunkset_init(&cs);
	srand(99);
	for (int it = 0; it < 200000; it++) {
		uint64_t k = (uint64_t)(rand() % KEYS);
		uint64_t key = k * 7919 + (k & 1 ? UINT64_MAX / 2 : 0);	/* spread, large values */
		if (rand() % 3) {
			uint32_t n = 1 + (uint32_t)(rand() % 3);
			assert_int_equal(chunkset_add(&cs, key, n), 0);
			model[k] += n;
		} else {
			uint32_t n = 1 + (uint32_t)(rand() % 4);
			uint32_t want = model[k] < n ? model[k] : n;
			assert_int_equal(chunkset_sub(&cs, key, n), want);
			model[k] -= want;
		}
		if (it % 1000 == 0) {
			uint64_t total = 0;
			size_t used = 0;
			for (int j = 0; j < KEYS; j++) {
				uint64_t kk = (uint64_t)j * 7919 + (j & 1 ? UINT64_MAX / 2 : 0);
				assert_int_equal(chunkset_get(&cs, kk), model[j]);
				total += model[j];
				used += model[j] != 0;
			}
			assert_true(cs.total == total);
			assert_int_equal(cs.used, used);
		}
	}
	/* iteration visits each live key once */
	size_t pos = 0, seen = 0;
	uint64_t key;
	uint32_t n;
	while (chunkset_next(&cs, &pos, &key, &n)) {
		assert_true(n > 0);
		seen++;
	}
	assert_int_equal(seen, cs.used);
	chunkset_clear(&cs);
	assert_int_equal(cs.used, 0);
	assert_int_equal(chunkset_get(&cs, 0), 0);
	chunkset_free(&cs);
}

static void test_ranges(void **state)
{
	struct chunkset cs;
	(void)state;
	chunkset_init(&cs);
	assert_false(chunkset_any(&cs, 0, UINT64_MAX));
	chunkset_add(&cs, 100, 1);
	chunkset_add(&cs, UINT64_MAX - 3, 1);
	assert_true(chunkset_any(&cs, 100, 1));
	assert_true(chunkset_any(&cs, 50, 51));
	assert_false(chunkset_any(&cs, 50, 50));
	assert_false(chunkset_any(&cs, 101, 1000));
	assert_true(chunkset_any(&cs, 0, 1ULL << 40));	/* large range: table scan */
	assert_true(chunkset_any(&cs, UINT64_MAX - 10, 10));
	assert_false(chunkset_any(&cs, UINT64_MAX - 10, 7));
	chunkset_sub(&cs, 100, 1);
	assert_false(chunkset_any(&cs, 0, 1ULL << 40));
	chunkset_free(&cs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_ranges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
