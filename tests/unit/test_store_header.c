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
	/* counters absent: all zero, as in a store made before them */
	for (unsigned i = 88; i < 136; i++)
		assert_int_equal(blk[i], 0);
	assert_int_equal(blk[136], 0xee);		/* nothing past the header */
	store_header_decode(blk, &out);
	assert_false(out.cnt_valid);
	assert_int_equal(out.cnt_nblocks, 0);
	assert_memory_equal(&out.root, &h.root, sizeof h.root);
	assert_int_equal(out.height, h.height);
	assert_int_equal(out.count, h.count);
	assert_int_equal(out.nodes, h.nodes);
	assert_int_equal(out.next_id, h.next_id);
	assert_true(out.cleanup_active);
	assert_int_equal(out.cur_o, 5);
	assert_int_equal(out.cur_s, 6);

	/* the counter fields, at the offsets format.h states */
	h.cnt_valid = true;
	h.cnt_nblocks = 2;
	h.cnt_multi = 0x0102030405ULL;
	h.cnt_block[0] = 140;
	h.cnt_block[1] = 141;
	store_header_encode(blk, &h);
	assert_int_equal(get_le32(blk + 88), 1);
	assert_int_equal(get_le32(blk + 92), 2);
	assert_int_equal(get_le64(blk + 96), 0x0102030405ULL);
	assert_int_equal(get_le64(blk + 104), 140);
	assert_int_equal(get_le64(blk + 112), 141);
	assert_int_equal(get_le64(blk + 120), 0);
	store_header_decode(blk, &out);
	assert_true(out.cnt_valid);
	assert_int_equal(out.cnt_nblocks, 2);
	assert_int_equal(out.cnt_multi, h.cnt_multi);
	assert_int_equal(out.cnt_block[1], 141);
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
	h.height = 2;
	/* usage counters: valid with blocks in the tree area, else all zero */
	h.cnt_valid = true;
	h.cnt_nblocks = 1;
	h.cnt_block[0] = 130;
	h.cnt_multi = 4;
	TU_OK(store_header_check(&h, &e));
	h.cnt_block[0] = 99;			/* outside the tree area */
	assert_int_equal(store_header_check(&h, &e), -EIO);
	h.cnt_block[0] = 130;
	h.cnt_block[1] = 131;			/* listed past nblocks */
	assert_int_equal(store_header_check(&h, &e), -EIO);
	h.cnt_block[1] = 0;
	h.cnt_multi = 11;			/* more shared exceptions than exceptions */
	assert_int_equal(store_header_check(&h, &e), -EIO);
	h.cnt_multi = 4;
	h.cnt_flags_raw = 2;			/* unknown flag */
	assert_int_equal(store_header_check(&h, &e), -EIO);
	h.cnt_flags_raw = 1;
	h.cnt_valid = false;			/* absent but set */
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
