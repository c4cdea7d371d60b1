/*
 * tests/unit/test_store_journal.c - the journal on its own: replay after a
 * crash (committed blocks never written home), a torn last transaction
 * ignored, wrap-around with automatic checkpoints, oversize transactions
 * refused, read-only replay in memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "src/store/journal.h"
#include "utils/log.h"

#include <errno.h>

struct env {
	char *path;
	struct io_dev *dev;
	struct csnap_sb sb;
	struct bm *bm;
	struct journal *j;
	uint64_t base;		/* first test block (tree area) */
};

static void env_open(struct env *e, bool readonly)
{
	unsigned bad;
	TU_OK(io_dev_open(e->path, IO_DEV_RDWR, &e->dev));
	TU_OK(csnap_sb_read(e->dev, &e->sb, &bad));
	TU_OK(bm_create(e->dev, csnap_sb_tag(&e->sb), 4096, readonly, &e->bm));
	TU_OK(journal_open(e->bm, &e->sb, readonly, &e->j));
	e->base = e->sb.engine.meta_start + 8;
}

/* Power cut: nothing more reaches the disk.  */
static void env_crash(struct env *e)
{
	journal_close(e->j);
	bm_destroy(e->bm);
	io_dev_close(e->dev);
}

static void put_val(struct env *e, uint64_t blk, uint64_t v)
{
	struct bm_block *b;
	TU_OK(bm_get_new(e->bm, e->base + blk, META_T_LEAF, &b));
	put_le64(b->data + 100, v);
	bm_put(e->bm, b);
}

static uint64_t get_val(struct env *e, uint64_t blk)
{
	struct bm_block *b;
	TU_OK(bm_get(e->bm, e->base + blk, META_T_LEAF, &b));
	uint64_t v = get_le64(b->data + 100);
	bm_put(e->bm, b);
	return v;
}

static void test_replay_after_crash(void **state)
{
	(void)state;
	struct env e = { .path = tu_mkstore("jr", 16 << 20, 4096, 1 << 20, 8) };

	env_open(&e, false);
	uint64_t seq0 = journal_last_seq(e.j);
	for (uint64_t t = 1; t <= 5; t++) {
		for (uint64_t b = 0; b < 2 * t; b++)
			put_val(&e, b, t * 1000 + b);
		TU_OK(journal_commit(e.j));
	}
	put_val(&e, 0, 424242);		/* never committed */
	assert_int_equal(journal_last_seq(e.j), seq0 + 5);
	env_crash(&e);

	/* read-only: replayed in memory, nothing written */
	env_open(&e, true);
	assert_int_equal(journal_replayed(e.j), 5);
	assert_int_equal(get_val(&e, 0), 5000);
	assert_int_equal(get_val(&e, 9), 5009);
	env_crash(&e);
	/* read-write: replayed to disk and checkpointed */
	env_open(&e, false);
	assert_int_equal(journal_replayed(e.j), 5);
	assert_int_equal(journal_last_seq(e.j), seq0 + 5);
	assert_int_equal(get_val(&e, 0), 5000);
	assert_int_equal(get_val(&e, 9), 5009);
	env_crash(&e);
	env_open(&e, false);
	assert_int_equal(journal_replayed(e.j), 0);	/* already home */
	assert_int_equal(get_val(&e, 9), 5009);
	env_crash(&e);
	unlink(e.path);
	free(e.path);
}

static void test_torn_last_transaction(void **state)
{
	(void)state;
	struct env e = { .path = tu_mkstore("jt", 16 << 20, 4096, 1 << 20, 8) };

	env_open(&e, false);
	put_val(&e, 1, 111);
	TU_OK(journal_commit(e.j));
	uint64_t pos = journal_used(e.j);	/* the 2nd transaction starts here */
	put_val(&e, 1, 222);
	put_val(&e, 2, 333);
	TU_OK(journal_commit(e.j));
	env_crash(&e);
	/* tear the second transaction's last block */
	struct io_dev *dev;
	uint8_t *buf = io_buf_alloc(4096);
	TU_OK(io_dev_open(e.path, IO_DEV_RDWR, &dev));
	uint64_t at = (e.sb.engine.journal_start + e.sb.engine.journal_tail + pos + 2) * 4096;
	TU_OK(io_dev_pread(dev, buf, 4096, at));
	buf[3000] ^= 0x80;
	TU_OK(io_dev_pwrite(dev, buf, 4096, at));
	io_dev_close(dev);
	io_buf_free(buf);
	env_open(&e, false);
	assert_int_equal(journal_replayed(e.j), 1);
	assert_int_equal(get_val(&e, 1), 111);
	struct bm_block *b;
	assert_true(bm_get(e.bm, e.base + 2, META_T_LEAF, &b) < 0);	/* never existed */
	env_crash(&e);
	unlink(e.path);
	free(e.path);
}

static void test_wrap_and_limits(void **state)
{
	(void)state;
	struct env e = { .path = tu_mkstore("jw", 16 << 20, 4096, 1 << 20, 8) };

	env_open(&e, false);
	uint64_t jb = e.sb.engine.journal_blocks;
	/* many more journal blocks than the journal holds */
	for (uint64_t t = 0; t < jb; t++) {
		put_val(&e, t % 50, t);
		put_val(&e, 50 + t % 7, t);
		TU_OK(journal_commit(e.j));
		assert_true(journal_used(e.j) <= jb / 2 + 3);
	}
	env_crash(&e);
	env_open(&e, false);
	for (uint64_t b = 0; b < 50; b++)
		assert_int_equal(get_val(&e, b), jb - 50 + ((b - jb % 50 + 50) % 50));
	/* a transaction larger than the journal is refused, not half-written */
	for (uint64_t b = 0; b < jb; b++)
		put_val(&e, 100 + b, b);
	assert_int_equal(journal_commit(e.j), -EFBIG);
	env_crash(&e);
	unlink(e.path);
	free(e.path);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_after_crash),
		cmocka_unit_test(test_torn_last_transaction),
		cmocka_unit_test(test_wrap_and_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
