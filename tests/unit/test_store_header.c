/*
 * tests/unit/test_store_header.c - the engine header block's codec
 * (src/store/header.c): every field survives encode/decode at the
 * documented offsets, reserved bytes are zeroed, and the sanity check
 * refuses a header that does not fit the store's layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "src/store/header.h"

#include <errno.h>

static void test_roundtrip(void **state)
{
	(void)state;
	uint8_t blk[4096];
	struct store_header h = {
		.root = 0x1122334455667788ULL, .height = 3, .count = 99, .nodes = 7,
		.next_id = 12, .cleanup_active = true, .cur_o = 5, .cur_s = 6,
	}, out;

	memset(blk, 0xee, sizeof blk);
	store_header_encode(blk, &h);
	assert_int_equal(get_le64(blk + 32), h.root);	/* the layout format.h states */
	assert_int_equal(get_le32(blk + 40), 3);
	assert_int_equal(get_le32(blk + 44), 0);	/* reserved */
	assert_int_equal(get_le64(blk + 80), 6);
	assert_int_equal(blk[88], 0xee);		/* nothing past the header */
	store_header_decode(blk, &out);
	assert_memory_equal(&out.root, &h.root, sizeof h.root);
	assert_int_equal(out.height, h.height);
	assert_int_equal(out.count, h.count);
	assert_int_equal(out.nodes, h.nodes);
	assert_int_equal(out.next_id, h.next_id);
	assert_true(out.cleanup_active);
	assert_int_equal(out.cur_o, 5);
	assert_int_equal(out.cur_s, 6);
}

static void test_check(void **state)
{
	(void)state;
	struct csnap_sb_engine e = { .meta_start = 100, .meta_blocks = 50, .data_chunks = 1000 };
	struct store_header h = { .root = 120, .height = 2, .count = 10, .nodes = 3, .next_id = 1 };

	TU_OK(store_header_check(&h, &e));
	h.root = 150;				/* past the tree area */
	assert_int_equal(store_header_check(&h, &e), -EIO);
	assert_non_null(strstr(err_get(), "engine header is corrupt"));
	h.root = 120;
	h.next_id = 0;
	assert_int_equal(store_header_check(&h, &e), -EIO);
	h.next_id = 1;
	h.height = 0;
	assert_int_equal(store_header_check(&h, &e), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
