/*
 * tests/unit/test_store_btree.c - the exception b-tree against a sorted
 * model: random inserts (deep trees, splits at every level), duplicate
 * refusal, seeks, full scans, random deletes with merges and root
 * collapse, and btree_verify after each phase - also after the blocks
 * were written home and read back through a small cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "src/store/btree.h"

#include <errno.h>

#define NKEYS 60000
#define MASKB 8

struct key { uint64_t o, s; };
static struct key keys[NKEYS];
static bool present[NKEYS];

static int kcmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	if (x->o != y->o)
		return x->o < y->o ? -1 : 1;
	return (x->s > y->s) - (x->s < y->s);
}

/* The tree holds exactly the present keys, in order, with their masks. */
static void scan_equals_model(struct btree *t)
{
	struct btree_cursor c;
	size_t i = 0;

	TU_OK(btree_seek(t, 0, 0, &c));
	while (c.valid) {
		while (i < NKEYS && !present[i])
			i++;
		assert_true(i < NKEYS);
		uint8_t *e = btree_entry(t, &c);
		assert_int_equal(be_origin(e), keys[i].o);
		assert_int_equal(be_store(e), keys[i].s);
		assert_int_equal(get_le64(e + 16), keys[i].o ^ keys[i].s);
		i++;
		TU_OK(btree_next(t, &c));
	}
	btree_cursor_put(t, &c);
	while (i < NKEYS && !present[i])
		i++;
	assert_int_equal(i, NKEYS);
	assert_int_equal(btree_verify(t, stderr, NULL, NULL, NULL), 0);
}

/* A b-tree on a scratch file: its nodes in the META_BLOCKS blocks from
 * block META_START, their space map at block 2, a block cache of CACHE.  */
#define META_START 16
struct bt_env {
	char *path;
	uint64_t meta_blocks;
	struct io_dev *dev;
	struct bm *bm;
	struct spacemap *sm;
	struct btree t;
};

static void bt_open(struct bt_env *e, const char *name, uint64_t meta_blocks, uint32_t cache)
{
	e->meta_blocks = meta_blocks;
	e->path = tu_tmpfile(name, (META_START + meta_blocks) * 4096);
	TU_OK(io_dev_open(e->path, IO_DEV_RDWR, &e->dev));
	TU_OK(bm_create(e->dev, 5, cache, false, &e->bm));
	TU_OK(sm_format(e->bm, META_T_MBITMAP, 2, meta_blocks, NULL, NULL));
	TU_OK(bm_flush_home(e->bm));
	TU_OK(sm_open(e->bm, META_T_MBITMAP, 2, meta_blocks, &e->sm));
	btree_init(&e->t, e->bm, e->sm, META_START, MASKB);
	TU_OK(btree_create(&e->t));
}

/* Everything written home, and the same tree under a new cache of CACHE
 * blocks (what the old one held is gone).  */
static void bt_recache(struct bt_env *e, uint32_t cache)
{
	TU_OK(sm_apply_frees(e->sm));
	TU_OK(bm_flush_home(e->bm));
	sm_close(e->sm);
	bm_destroy(e->bm);
	TU_OK(bm_create(e->dev, 5, cache, false, &e->bm));
	TU_OK(sm_open(e->bm, META_T_MBITMAP, 2, e->meta_blocks, &e->sm));
	e->t.bm = e->bm;
	e->t.sm = e->sm;
}

static void bt_close(struct bt_env *e)
{
	btree_release(&e->t);
	sm_close(e->sm);
	bm_destroy(e->bm);
	io_dev_close(e->dev);
	unlink(e->path);
	free(e->path);
}

static void test_btree_model(void **state)
{
	(void)state;
	srand(4242);
	struct bt_env e;
	struct btree *t = &e.t;

	/* origin chunks clustered (many exceptions per chunk), store unique */
	for (size_t i = 0; i < NKEYS; i++)
		keys[i] = (struct key){ (uint64_t)(rand() % 9000), i * 7 + 3 };
	qsort(keys, NKEYS, sizeof keys[0], kcmp);

	bt_open(&e, "bt", 8000, 100000);

	/* insert in random order */
	size_t *perm = malloc(NKEYS * sizeof *perm);
	for (size_t i = 0; i < NKEYS; i++)
		perm[i] = i;
	for (size_t i = NKEYS - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1), x = perm[i];
		perm[i] = perm[j];
		perm[j] = x;
	}
	for (size_t k = 0; k < NKEYS; k++) {
		size_t i = perm[k];
		uint8_t mask[MASKB];
		put_le64(mask, keys[i].o ^ keys[i].s);
		TU_OK(btree_insert(t, keys[i].o, keys[i].s, mask));
		present[i] = true;
		if (k % 20000 == 0)
			assert_int_equal(btree_verify(t, stderr, NULL, NULL, NULL), 0);
	}
	uint8_t m0[MASKB] = { 0 };
	assert_int_equal(btree_insert(t, keys[10].o, keys[10].s, m0), -EEXIST);
	assert_int_equal(t->count, NKEYS);
	assert_true(t->height >= 3);
	scan_equals_model(t);

	/* seeks land on the first key >= the probe */
	for (int n = 0; n < 2000; n++) {
		struct btree_cursor c;
		uint64_t o = (uint64_t)(rand() % 9100);
		TU_OK(btree_seek(t, o, 0, &c));
		struct key probe = { o, 0 };
		size_t lo = 0, hi = NKEYS;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (kcmp(&keys[mid], &probe) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == NKEYS)
			assert_false(c.valid);
		else {
			assert_true(c.valid);
			assert_int_equal(be_store(btree_entry(t, &c)), keys[lo].s);
		}
		btree_cursor_put(t, &c);
	}

	/* through the disk and a small cache */
	bt_recache(&e, 64);
	scan_equals_model(t);

	/* delete three quarters in random order (merges), then all */
	for (size_t k = 0; k < NKEYS; k++) {
		size_t i = perm[k];
		if (k < NKEYS * 3 / 4 || rand() % 2) {
			TU_OK(btree_delete(t, keys[i].o, keys[i].s));
			present[i] = false;
		}
		if (k % 15000 == 0)
			assert_int_equal(btree_verify(t, stderr, NULL, NULL, NULL), 0);
	}
	assert_int_equal(btree_delete(t, keys[perm[0]].o, keys[perm[0]].s), -ENOENT);
	scan_equals_model(t);
	for (size_t i = 0; i < NKEYS; i++)
		if (present[i]) {
			TU_OK(btree_delete(t, keys[i].o, keys[i].s));
			present[i] = false;
		}
	scan_equals_model(t);
	assert_int_equal(t->height, 1);
	assert_int_equal(t->count, 0);
	assert_int_equal(t->nodes, 1);
	TU_OK(sm_apply_frees(e.sm));
	assert_int_equal(sm_free_count(e.sm), e.meta_blocks - 1);	/* every node came back */

	free(perm);
	bt_close(&e);
}

/* An internal node's first key goes stale when its first child is removed
 * and smaller keys arrive later; search and verify must not depend on it. */
static void test_stale_first_key(void **state)
{
	(void)state;
	struct bt_env e;
	struct btree *t = &e.t;
	uint8_t mask[MASKB] = { 1 };

	bt_open(&e, "bt2", 512, 4096);
	for (uint64_t k = 1000; k < 2000; k++)
		TU_OK(btree_insert(t, k, k, mask));
	assert_int_equal(t->height, 2);
	/* empty the first leaf (it held 1000 .. 1000+cap-1) */
	for (uint64_t k = 1000; k < 1000 + t->leaf_cap; k++)
		TU_OK(btree_delete(t, k, k));
	assert_int_equal(btree_verify(t, stderr, NULL, NULL, NULL), 0);
	/* keys below everything: all into child 0, then splits there */
	for (uint64_t k = 0; k < 2 * t->leaf_cap; k++)
		TU_OK(btree_insert(t, k, k, mask));
	assert_int_equal(btree_verify(t, stderr, NULL, NULL, NULL), 0);
	struct btree_cursor c;
	uint64_t n = 0, prev = 0;
	TU_OK(btree_seek(t, 0, 0, &c));
	while (c.valid) {
		uint64_t o = be_origin(btree_entry(t, &c));
		assert_true(n == 0 || o > prev);
		prev = o;
		n++;
		TU_OK(btree_next(t, &c));
	}
	btree_cursor_put(t, &c);
	assert_int_equal(n, t->count);
	for (uint64_t k = 0; k < 2000; k += 7) {
		uint32_t idx, nr;
		const uint8_t *lf = btree_peek(t, k, 0, &idx, &nr);
		bool there = k < 2 * t->leaf_cap || k >= 1000 + t->leaf_cap;
		assert_non_null(lf);
		if (there && idx < nr) {
			assert_int_equal(get_le64(lf + BTREE_NODE_HDR + (size_t)idx * t->esize), k);
		} else if (there) {
			/* (k, 0) sorts before the separator (k, k): the fast path
			 * may end at the leaf before; the cursor goes on */
			TU_OK(btree_seek(t, k, 0, &c));
			assert_true(c.valid);
			assert_int_equal(be_origin(btree_entry(t, &c)), k);
			btree_cursor_put(t, &c);
		}
	}
	bt_close(&e);
}

/* btree_peek (fingers or not) agrees with the model: its leaf holds the
 * first present key >= (o, 0) at idx, or idx == nr (the caller goes on
 * with a cursor).  Checked with a cursor, which never uses fingers.  */
static void peek_equals_model(struct btree *t, uint64_t nkeys, const bool *there)
{
	for (uint64_t k = 0; k < nkeys + 10; k++) {
		uint32_t idx, nr;
		const uint8_t *lf = btree_peek(t, k, 0, &idx, &nr);
		assert_non_null(lf);
		if (idx >= nr)
			continue;
		uint64_t want = k;
		while (want < nkeys && !there[want])
			want++;
		assert_true(want < nkeys);
		assert_int_equal(get_le64(lf + BTREE_NODE_HDR + (size_t)idx * t->esize), want);
	}
}

/* Fingers never answer from a leaf that left the tree: peek every key
 * (fingers remember every leaf), delete most keys in random order (merged
 * leaves are freed but stay cached with their old entries), peek again;
 * then the same through a new cache (the old one's pointers dangle).  */
static void test_peek_fingers(void **state)
{
	(void)state;
	enum { N = 6000 };
	static bool there[N];
	struct bt_env e;
	struct btree *t = &e.t;
	uint8_t mask[MASKB] = { 1 };

	srand(77);
	bt_open(&e, "bt3", 1024, 4096);
	for (uint64_t k = 0; k < N; k++) {
		TU_OK(btree_insert(t, k, k, mask));
		there[k] = true;
	}
	assert_true(t->height >= 2);
	peek_equals_model(t, N, there);
	peek_equals_model(t, N, there);	/* now through the fingers */
	uint64_t nodes0 = t->nodes;
	for (int round = 0; round < 4; round++) {
		for (uint64_t k = 0; k < N; k++)
			if (there[k] && rand() % 3) {
				TU_OK(btree_delete(t, k, k));
				there[k] = false;
			}
		peek_equals_model(t, N, there);
	}
	assert_true(t->nodes < nodes0 / 4);	/* leaves were merged and freed */
	assert_int_equal(btree_verify(t, stderr, NULL, NULL, NULL), 0);

	/* written home, a new cache under the same tree */
	bt_recache(&e, 4096);
	for (uint64_t k = 0; k < N; k++) {	/* load every node */
		struct btree_cursor c;
		TU_OK(btree_seek(t, k, 0, &c));
		btree_cursor_put(t, &c);
	}
	peek_equals_model(t, N, there);
	bt_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stale_first_key),
		cmocka_unit_test(test_btree_model),
		cmocka_unit_test(test_peek_fingers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
