/*
 * tests/unit/test_store_superblock.c - superblock encode/decode,
 * validation, the backup copy and the lease layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "utils/log.h"

#include <errno.h>

static void test_roundtrip(void **state)
{
	(void)state;
	struct csnap_sb sb, out;
	uint8_t blk[4096];

	tu_sb_defaults(&sb, 64 << 20, 65536, 1 << 30, 256);
	sb.version = CSNAP_FORMAT_VERSION;
	sb.meta_block_size = 4096;
	sb.mask_bits = 256;
	sb.seq = 7;
	memset(sb.secret, 0xab, sizeof sb.secret);
	csnap_sb_encode(&sb, 0, blk);
	TU_OK(csnap_sb_decode(blk, 0, &out));
	assert_int_equal(out.seq, 7);
	assert_memory_equal(out.uuid, sb.uuid, 16);
	assert_memory_equal(out.secret, sb.secret, 32);
	assert_int_equal(out.chunk_size, 65536);
	assert_int_equal(out.lease_offset, 1 << 20);
	assert_string_equal(out.origin_id, "size:test");
	/* fixed offsets others rely on */
	assert_int_equal(get_le64(blk + 0), CSNAP_SB_MAGIC);
	assert_int_equal(get_le32(blk + 88), 65536);		/* chunk size */
	assert_int_equal(get_le64(blk + 192), 1 << 20);		/* lease offset */
	assert_memory_equal(blk + 32, sb.uuid, 16);

	/* wrong block number: a misdirected copy */
	assert_int_equal(csnap_sb_decode(blk, 16, &out), -EINVAL);
	assert_non_null(strstr(err_get(), "claims block"));
	/* every single-bit flip is caught */
	for (size_t byte = 0; byte < 4096; byte += 97) {
		blk[byte] ^= 4;
		assert_true(csnap_sb_decode(blk, 0, &out) < 0);
		blk[byte] ^= 4;
	}
	blk[0] ^= 1;
	assert_int_equal(csnap_sb_decode(blk, 0, &out), -EINVAL);
	assert_non_null(strstr(err_get(), "magic"));
	blk[0] ^= 1;
	/* a checksummed but insane field */
	sb.chunk_size = 3000;
	csnap_sb_encode(&sb, 0, blk);
	assert_int_equal(csnap_sb_decode(blk, 0, &out), -EINVAL);
	assert_non_null(strstr(err_get(), "chunk size"));
}

/* Checksummed geometry whose areas overlap (the engine would write one
 * over the other) is refused.  */
static void test_overlapping_areas(void **state)
{
	(void)state;
	char *path = tu_mkstore("sbov", 16 << 20, 4096, 1 << 24, 16);
	struct csnap_sb sb, bad, out;
	uint8_t blk[4096];

	TU_OK(csnap_sb_read_path(path, &sb));
	csnap_sb_encode(&sb, 0, blk);
	TU_OK(csnap_sb_decode(blk, 0, &out));
	bad = sb;	/* data chunks on top of the journal */
	bad.engine.data_offset = sb.meta_offset;
	csnap_sb_encode(&bad, 0, blk);
	assert_int_equal(csnap_sb_decode(blk, 0, &out), -EINVAL);
	assert_non_null(strstr(err_get(), "journal area overlaps the data area"));
	bad = sb;	/* the tree area after the data (only the data bitmap may be) */
	bad.engine.data_chunks = 1;
	bad.engine.meta_start = sb.engine.data_offset / 4096 + sb.chunk_size / 4096;
	csnap_sb_encode(&bad, 0, blk);
	assert_int_equal(csnap_sb_decode(blk, 0, &out), -EINVAL);
	assert_non_null(strstr(err_get(), "tree area lies after the data area"));
	bad = sb;	/* ...which store_grow does with the data bitmap */
	bad.engine.data_chunks = 1;
	bad.engine.dbitmap_start = sb.engine.data_offset / 4096 + sb.chunk_size / 4096;
	csnap_sb_encode(&bad, 0, blk);
	TU_OK(csnap_sb_decode(blk, 0, &out));
	bad = sb;	/* a lease area whose end wraps past 2^64 to before the metadata */
	bad.lease_offset = 0 - (uint64_t)sb.lease_align;
	csnap_sb_encode(&bad, 0, blk);
	assert_int_equal(csnap_sb_decode(blk, 0, &out), -EINVAL);
	assert_non_null(strstr(err_get(), "invalid metadata offset"));
	bad = sb;	/* the snapshot table inside the journal */
	bad.engine.table_start = sb.engine.journal_start + 1;
	csnap_sb_encode(&bad, 0, blk);
	assert_int_equal(csnap_sb_decode(blk, 0, &out), -EINVAL);
	assert_non_null(strstr(err_get(), "overlap"));
	unlink(path);
	free(path);
}

static void test_backup_copy(void **state)
{
	(void)state;
	char *path = tu_mkstore("sb", 16 << 20, 4096, 1 << 20, 16);
	struct io_dev *dev;
	struct csnap_sb sb, sb2;
	unsigned bad;

	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	TU_OK(csnap_sb_read(dev, &sb, &bad));
	assert_int_equal(bad, 0);
	assert_int_equal(sb.mask_bits, 64);
	/* newer seq wins; both copies written */
	TU_OK(csnap_sb_write(dev, &sb));
	TU_OK(csnap_sb_read(dev, &sb2, &bad));
	assert_int_equal(sb2.seq, sb.seq);
	/* corrupt the primary: the backup is used and reported */
	uint8_t *buf = io_buf_alloc(4096);
	TU_OK(io_dev_pread(dev, buf, 4096, 0));
	buf[300] ^= 0x40;
	TU_OK(io_dev_pwrite(dev, buf, 4096, 0));
	TU_OK(csnap_sb_read(dev, &sb2, &bad));
	assert_int_equal(bad, 1);
	assert_memory_equal(sb2.uuid, sb.uuid, 16);
	/* both gone: a clear error */
	TU_OK(io_dev_pread(dev, buf, 4096, 65536));
	buf[300] ^= 0x40;
	TU_OK(io_dev_pwrite(dev, buf, 4096, 65536));
	assert_int_equal(csnap_sb_read(dev, &sb2, &bad), -EINVAL);
	assert_int_equal(bad, 3);
	assert_non_null(strstr(err_get(), "checksum"));
	io_buf_free(buf);
	io_dev_close(dev);
	unlink(path);
	free(path);
}

static void test_lease_layout(void **state)
{
	(void)state;
	struct csnap_sb sb = { 0 };
	TU_OK(csnap_sb_lease_layout(&sb, 512));
	assert_int_equal(sb.lease_align, 1 << 20);
	assert_int_equal(sb.lease_offset, 1 << 20);
	TU_OK(csnap_sb_lease_layout(&sb, 4096));
	assert_int_equal(sb.lease_align, 8 << 20);
	assert_int_equal(sb.lease_offset, 8 << 20);
	assert_int_equal(sb.lease_sector_size, 4096);
	assert_int_equal(csnap_sb_lease_layout(&sb, 1024), -EINVAL);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_backup_copy),
		cmocka_unit_test(test_overlapping_areas),
		cmocka_unit_test(test_lease_layout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
