/*
 * tests/unit/test_store_bm.c - block manager: validation of every header
 * field, bounded cache with eviction, pins, no-steal for dirty blocks and
 * the committed image kept for checkpoints, the child-pointer cache (a
 * stale pointer never confirms), and (debug build) that a broken pin count
 * stops the program at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "src/store/bm.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int noop(void *a, struct bm_block *b) { (void)a; (void)b; return 0; }

static void commit_home(struct bm *bm, uint64_t seq)
{
	TU_OK(bm_for_each_dirty(bm, seq, noop, NULL));
	bm_mark_committed(bm);
	bm_set_committed_seq(bm, seq);
	TU_OK(bm_write_home(bm));
}

static void test_validate(void **state)
{
	(void)state;
	char *path = tu_tmpfile("bm", 1 << 20);
	struct io_dev *dev;
	struct bm *bm;
	struct bm_block *b;

	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	TU_OK(bm_create(dev, 42, 64, false, &bm));
	TU_OK(bm_get_new(bm, 10, META_T_HEADER, &b));
	memset(b->data + 100, 0x5a, 100);
	bm_put(bm, b);
	commit_home(bm, 3);
	bm_destroy(bm);

	/* a fresh cache reads and validates it */
	TU_OK(bm_create(dev, 42, 64, false, &bm));
	bm_set_committed_seq(bm, 3);
	TU_OK(bm_get(bm, 10, META_T_HEADER, &b));
	assert_int_equal(b->data[150], 0x5a);
	bm_put(bm, b);
	bm_destroy(bm);

	uint8_t *raw = io_buf_alloc(4096);
	TU_OK(io_dev_pread(dev, raw, 4096, 10 * 4096));
	TU_OK(bm_create(dev, 42, 64, false, &bm));
	bm_set_committed_seq(bm, 3);
	assert_int_equal(bm_validate(bm, raw, 10, META_T_HEADER), 0);
	assert_int_equal(bm_validate(bm, raw, 11, META_T_HEADER), -EIO);	/* misdirected */
	assert_non_null(strstr(err_get(), "misdirected"));
	assert_int_equal(bm_validate(bm, raw, 10, META_T_LEAF), -EIO);	/* wrong type */
	bm_set_committed_seq(bm, 2);
	assert_int_equal(bm_validate(bm, raw, 10, META_T_HEADER), -EIO);	/* from the future */
	bm_set_committed_seq(bm, 3);
	raw[2000] ^= 1;
	assert_int_equal(bm_validate(bm, raw, 10, META_T_HEADER), -EIO);	/* bit flip */
	assert_non_null(strstr(err_get(), "checksum"));
	raw[2000] ^= 1;
	/* a corrupt block on disk is refused by bm_get and not cached */
	raw[2000] ^= 1;
	TU_OK(io_dev_pwrite(dev, raw, 4096, 10 * 4096));
	assert_int_equal(bm_get(bm, 10, META_T_HEADER, &b), -EIO);
	assert_int_equal(bm_get(bm, 10, META_T_HEADER, &b), -EIO);
	bm_destroy(bm);
	/* another store's block */
	TU_OK(bm_create(dev, 43, 64, false, &bm));
	raw[2000] ^= 1;
	assert_int_equal(bm_validate(bm, raw, 10, META_T_HEADER), -EIO);
	assert_non_null(strstr(err_get(), "another store"));
	bm_destroy(bm);
	io_buf_free(raw);
	io_dev_close(dev);
	unlink(path);
	free(path);
}

static void test_eviction_and_no_steal(void **state)
{
	(void)state;
	char *path = tu_tmpfile("bm2", 4 << 20);
	struct io_dev *dev;
	struct bm *bm;
	struct bm_block *b, *pinned;
	struct bm_stats st;

	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	TU_OK(bm_create(dev, 1, 16, false, &bm));
	for (uint64_t i = 0; i < 200; i++) {
		TU_OK(bm_get_new(bm, 100 + i, META_T_LEAF, &b));
		put_le64(b->data + 64, i * 3);
		bm_put(bm, b);
	}
	/* dirty blocks are never evicted (or written) before commit */
	bm_get_stats(bm, &st);
	assert_int_equal(st.cached, 200);
	assert_int_equal(st.home_writes, 0);
	assert_int_equal(bm_dirty_count(bm), 200);
	commit_home(bm, 1);
	bm_get_stats(bm, &st);
	assert_int_equal(st.home_writes, 200);
	/* a fresh cache of 16 reading all 200 stays at its capacity, but
	 * never drops a pinned block */
	bm_destroy(bm);
	TU_OK(bm_create(dev, 1, 16, false, &bm));
	bm_set_committed_seq(bm, 1);
	TU_OK(bm_get(bm, 100, META_T_LEAF, &pinned));
	for (uint64_t i = 1; i < 200; i++) {
		TU_OK(bm_get(bm, 100 + i, META_T_LEAF, &b));
		assert_int_equal(get_le64(b->data + 64), i * 3);
		bm_put(bm, b);
	}
	bm_get_stats(bm, &st);
	assert_true(st.cached <= 17);
	assert_true(st.evictions > 150);
	assert_int_equal(get_le64(pinned->data + 64), 0);
	bm_put(bm, pinned);

	/* committed image kept aside when re-dirtied before checkpoint */
	TU_OK(bm_get(bm, 150, META_T_LEAF, &b));
	bm_dirty(bm, b);
	TU_OK(bm_for_each_dirty(bm, 2, noop, NULL));
	bm_mark_committed(bm);		/* seq 2 committed: home pending */
	bm_set_committed_seq(bm, 2);
	bm_dirty(bm, b);		/* open txn 3 changes it again */
	put_le64(b->data + 64, 999);
	bm_put(bm, b);
	TU_OK(bm_write_home(bm));	/* checkpoint: must write txn 2's image */
	uint8_t *raw = io_buf_alloc(4096);
	TU_OK(io_dev_pread(dev, raw, 4096, 150 * 4096));
	assert_int_equal(get_le64(raw + 64), 50 * 3);
	TU_OK(bm_validate(bm, raw, 150, META_T_LEAF));
	io_buf_free(raw);
	bm_destroy(bm);
	io_dev_close(dev);
	unlink(path);
	free(path);
}

static void test_child_cache(void **state)
{
	(void)state;
	char *path = tu_tmpfile("bm", 1 << 20);
	struct io_dev *dev;
	struct bm *bm;
	struct bm_block *p, *c;

	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	TU_OK(bm_create(dev, 1, 16, false, &bm));
	TU_OK(bm_get_new(bm, 10, META_T_INTERNAL, &p));
	TU_OK(bm_get_new(bm, 11, META_T_LEAF, &c));
	assert_null(bm_child_guess(bm, p->data, 3));
	bm_child_remember(bm, p->data, 3, 8, c->data);
	assert_ptr_equal(bm_child_guess(bm, p->data, 3), c->data);
	assert_null(bm_child_guess(bm, p->data, 2));
	/* a hint rides along in the pointer's alignment bits */
	unsigned hint = 99;
	assert_ptr_equal(bm_child_guess_hint(bm, p->data, 3, &hint), c->data);
	assert_int_equal(hint, 0);
	bm_child_remember_hint(bm, p->data, 3, 8, c->data, BM_CHILD_HINT_MAX - 1);
	assert_ptr_equal(bm_child_guess_hint(bm, p->data, 3, &hint), c->data);
	assert_int_equal(hint, BM_CHILD_HINT_MAX - 1);
	assert_ptr_equal(bm_child_guess(bm, p->data, 3), c->data);
	assert_true(bm_child_confirm(bm, c->data, 11));
	assert_false(bm_child_confirm(bm, c->data, 12));	/* not that block */
	bm_child_forget(bm, p->data);
	assert_null(bm_child_guess(bm, p->data, 3));
	bm_child_remember(bm, p->data, 3, 8, c->data);
	bm_put(bm, c);
	commit_home(bm, 1);
	/* the child leaves the cache: the remembered pointer stays readable
	 * but no longer confirms (its buffer's block number is cleared or
	 * names another block) */
	for (uint64_t i = 0; i < 40; i++) {
		struct bm_block *b;
		TU_OK(bm_get_new(bm, 100 + i, META_T_LEAF, &b));
		bm_put(bm, b);
		commit_home(bm, 2 + i);
	}
	const uint8_t *g = bm_child_guess(bm, p->data, 3);
	assert_non_null(g);
	assert_false(bm_child_confirm(bm, g, 11));
	bm_put(bm, p);
	bm_destroy(bm);
	io_dev_close(dev);
	unlink(path);
	free(path);
}

/* The memory budget (bm.h): however many blocks go through it, the cache
 * holds at most its capacity, beyond it only blocks it may not evict
 * (pinned, dirty), and its data buffers stay in the arenas the peak
 * needed.  (In the SAN build CSNAP_ASSERT checks the same at every
 * insertion.)  */
static void test_budget(void **state)
{
	(void)state;
	enum { CAP = 64, NBLK = 3000, BATCH = 32 };
	char *path = tu_tmpfile("bm", (size_t)NBLK * 4096);
	struct io_dev *dev;
	struct bm *bm;
	struct bm_stats st;
	uint64_t seq = 0;

	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	TU_OK(bm_create(dev, 3, CAP, false, &bm));
	/* write every block, BATCH per transaction */
	for (uint64_t b0 = 1; b0 < NBLK; b0 += BATCH) {
		for (uint64_t k = b0; k < b0 + BATCH && k < NBLK; k++) {
			struct bm_block *b;
			TU_OK(bm_get_new(bm, k, META_T_LEAF, &b));
			bm_put(bm, b);
		}
		bm_get_stats(bm, &st);
		assert_true(st.cached <= CAP + st.dirty);	/* over only by the open transaction */
		commit_home(bm, ++seq);
	}
	/* random reads of all of them: a hundred times the cache */
	srand(9);
	for (int i = 0; i < 100 * CAP; i++) {
		struct bm_block *b;
		TU_OK(bm_get(bm, 1 + (uint64_t)rand() % (NBLK - 1), META_T_LEAF, &b));
		bm_put(bm, b);
		bm_get_stats(bm, &st);
		assert_true(st.cached <= CAP);
	}
	assert_true(st.reads > 90 * CAP);	/* they really went through the cache */
	/* more blocks pinned at once than fit: over capacity by the pins only */
	struct bm_block *pins[2 * CAP];
	for (int i = 0; i < 2 * CAP; i++) {
		TU_OK(bm_get(bm, 1 + (uint64_t)i * 7, META_T_LEAF, &pins[i]));
		bm_get_stats(bm, &st);
		assert_true(st.cached <= CAP || st.cached <= st.pinned + 1);
		assert_int_equal(st.pinned, (size_t)i + 1);
	}
	for (int i = 0; i < 2 * CAP; i++)
		bm_put(bm, pins[i]);
	struct bm_block *b;
	TU_OK(bm_get(bm, NBLK - 1, META_T_LEAF, &b));
	bm_put(bm, b);
	bm_get_stats(bm, &st);
	assert_true(st.cached <= CAP);
	assert_int_equal(st.pinned, 0);
	/* 2 * CAP + BATCH blocks of 4 KiB at the peak: one 2 MiB arena */
	assert_int_equal(st.arenas, 1);
	bm_destroy(bm);
	io_dev_close(dev);
	unlink(path);
	free(path);
}

#ifdef CSNAP_DEBUG
/* CSNAP_ASSERT is on in this build: a second bm_put of one pin aborts
 * (in a child process) instead of corrupting the pin count.  */
static void test_assert_stops_double_put(void **state)
{
	(void)state;
	char *path = tu_tmpfile("bm", 1 << 20);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct io_dev *dev;
		struct bm *bm;
		struct bm_block *b;
		if (io_dev_open(path, IO_DEV_RDWR, &dev) < 0 ||
		    bm_create(dev, 1, 16, false, &bm) < 0 ||
		    bm_get_new(bm, 10, META_T_LEAF, &b) < 0)
			_exit(3);
		bm_put(bm, b);
		bm_put(bm, b);		/* the broken invariant */
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
	unlink(path);
	free(path);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_eviction_and_no_steal),
		cmocka_unit_test(test_child_cache),
		cmocka_unit_test(test_budget),
#ifdef CSNAP_DEBUG
		cmocka_unit_test(test_assert_stops_double_put),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
