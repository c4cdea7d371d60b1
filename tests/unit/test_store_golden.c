/*
 * tests/unit/test_store_golden.c - the on-disk format does not drift: a
 * store formatted with a fixed identity and changed by a fixed sequence of
 * engine operations (snapshot creates, origin and snapshot writes, a
 * delete, commits, close) has exactly the metadata it had when this test
 * was written.  The constant was computed with the code before the
 * layouts moved into src/store/format.h (commit a03dd04) and with the code
 * after, which agree.  Hashed: every metadata block outside the journal
 * (whose content depends on transaction boundaries, covered by the replay
 * tests), with the snapshot creation times (wall clock) and the table
 * blocks' checksums over them zeroed.  A deliberate format change updates
 * GOLDEN_CRC and says so in docs/store.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "src/store/format.h"
#include "utils/crc32c.h"

#include <stdio.h>

/* Version 1: the store is formatted as version 1 made it
 * (store_format_as: no usage counters) and the operations run on it
 * opened with old_format: the bytes are exactly version 1's (GOLDEN_CRC
 * has not changed since version 1).  Version 2: the same on a store of
 * the current version (usage counters: HDR_CNT_*, one counter block).  */
#define GOLDEN_CRC 0x19ae579eu
#define GOLDEN_CRC_V2 0x9b398275u

static int golden_run(const char *path, uint32_t version, uint32_t *crc_out)
{
	struct io_dev *dev;
	struct csnap_sb sb;
	struct store *s;
	uint64_t size = 64ull << 20;
	int ret;

	if (truncate(path, 0) < 0 || truncate(path, (off_t)size) < 0)
		return -1;
	memset(&sb, 0, sizeof sb);
	for (int i = 0; i < 16; i++)
		sb.uuid[i] = (uint8_t)(i * 29 + 7);
	memset(sb.secret, 0x5a, sizeof sb.secret);
	sb.chunk_size = 64 << 10;
	sb.store_size = size;
	sb.origin_size = 48ull << 20;
	strcpy(sb.origin_id, "size:golden");
	sb.max_snapshots = 100;
	sb.ctime = 1000;
	csnap_sb_lease_layout(&sb, 512);
	sb.meta_offset = sb.lease_offset + csnap_lease_area_size(sb.lease_align);
	if ((ret = io_dev_open(path, IO_DEV_RDWR, &dev)) < 0 || (ret = store_format_as(dev, &sb, version)) < 0)
		return ret;
	if (version != sb.version) {	/* relabel: every other byte is the same */
		sb.version = version;
		sb.seq--;	/* as written once by format */
		if ((ret = csnap_sb_write(dev, &sb)) < 0)
			return ret;
	}
	io_dev_close(dev);
	struct store_open_opts oo = { .old_format = true };
	if ((ret = store_open(path, &oo, &s)) < 0)
		return ret;
	struct store_copy cp[64];
	chunk_t dst[64];
	uint32_t n, ids[4];
	for (int k = 0; k < 4 && ret >= 0; k++) {
		char name[16];
		snprintf(name, sizeof name, "g%d", k);
		ret = store_snapshot_create(s, name, k, &ids[k]);
		for (uint32_t c = 0; c < 300 && ret >= 0; c += 7)
			ret = store_origin_write(s, (c * 13 + (uint32_t)k * 5) % 700, 3, cp, &n);
		if (ret >= 0)
			ret = store_snapshot_write(s, ids[k], 100 + (uint32_t)k * 10, 5, dst, cp, &n);
		if (ret >= 0)
			ret = store_commit(s);
	}
	if (ret >= 0)
		ret = store_snapshot_delete(s, ids[1]);
	if (ret >= 0)
		ret = store_commit(s);
	store_close(s);
	if (ret < 0)
		return ret;
	/* hash [0, data_offset) minus the journal, ctime fields zeroed */
	if ((ret = csnap_sb_read_path(path, &sb)) < 0)
		return ret;
	const struct csnap_sb_engine *e = &sb.engine;
	FILE *f = fopen(path, "r");
	uint8_t blk[4096];
	uint32_t crc = 0;
	for (uint64_t b = 0; f && b < e->data_offset / 4096; b++) {
		if (fread(blk, 1, sizeof blk, f) != sizeof blk)
			break;
		if (b >= e->journal_start && b < e->journal_start + e->journal_blocks)
			continue;
		if (b >= e->table_start && b < e->table_start + e->table_blocks) {
			memset(blk + META_CSUM, 0, 4);	/* its checksum covers the times */
			for (size_t o = ST_HDR_SIZE; o + ST_SLOT_SIZE <= sizeof blk; o += ST_SLOT_SIZE)
				memset(blk + o + SL_CTIME, 0, 8);
		}
		crc = crc32c(crc, blk, sizeof blk);
	}
	if (f)
		fclose(f);
	*crc_out = crc;
	return 0;
}

static void golden(uint32_t version, uint32_t want)
{
	char *path = tu_tmpfile("golden", 0);
	uint32_t crc = 0;

	TU_OK(golden_run(path, version, &crc));
	unlink(path);
	free(path);
	if (crc != want)
		fail_msg("version %u store metadata crc %#x, format says %#x: the on-disk format changed",
			 version, crc, want);
}

static void test_golden_v1(void **state)
{
	(void)state;
	golden(1, GOLDEN_CRC);
}

static void test_golden_v2(void **state)
{
	(void)state;
	golden(2, GOLDEN_CRC_V2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_v1),
		cmocka_unit_test(test_golden_v2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
