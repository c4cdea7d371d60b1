/*
 * tests/unit/test_store_rollback.c - the rollback contract of the engine,
 * case by case (the random mix is in test_store_model and
 * test_store_replay): the origin reads the snapshot's content from the
 * start; steps move only the chunks the snapshot has; the snapshot keeps
 * its id, name and content (or ends with --delete); other snapshots keep
 * theirs; refusals (second rollback, delete of the snapshot, no slot to
 * keep it) with a message; the source is not a snapshot
 * (not listed, not a victim, survives cleanup); the state survives a
 * reopen and an aborted transaction takes back a start or a step's half;
 * the end frees the source slot and check stays clean throughout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "utils/log.h"

#include <errno.h>
#include <unistd.h>

#define CH 4096
#define NCH 64

static void check_clean(struct store *s)
{
	TU_OK(store_commit(s));
	assert_int_equal(store_check_open(s, stderr), 0);
}

/* A whole step over LIST, without data (the data path is the model's). */
static void step(struct store *s, const chunk_t *list, uint32_t n, chunk_t advance,
		 uint32_t want_copies)
{
	struct store_copy cp[NCH], mv[NCH];
	uint32_t ncp, nmv;

	TU_OK(store_rollback_prepare(s, list, n, cp, &ncp, mv, &nmv));
	assert_int_equal(ncp, want_copies);
	TU_OK(store_commit(s));
	TU_OK(store_rollback_finish(s, mv, nmv, advance));
	TU_OK(store_commit(s));
}

static void test_rollback_contract(void **state)
{
	(void)state;
	char *path = tu_mkstore("rb1", 16 << 20, CH, NCH * CH, 4);
	struct store *s;
	struct store_copy cp[NCH];
	struct store_snapshot sn, list[8];
	struct store_rollback rb;
	chunk_t loc[NCH], dst[NCH], pend[NCH], adv, chg[NCH];
	uint32_t a, b, c, n, ncp;

	TU_OK(store_open(path, NULL, &s));
	store_rollback_get(s, &rb);
	assert_false(rb.active);
	assert_int_equal(store_rollback_next(s, pend, 4, &n, &adv), -ENOENT);

	/* a: taken first; chunks 10..13 written after it (a has copies) */
	TU_OK(store_snapshot_create(s, "a", 5, &a));
	TU_OK(store_origin_write(s, 10, 4, cp, &n));
	assert_int_equal(n, 4);
	chunk_t a_chunk10 = cp[0].dst;
	/* b: taken after; 12..13 written again (copies for b alone) */
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	TU_OK(store_origin_write(s, 12, 2, cp, &n));
	assert_int_equal(n, 2);
	/* a snapshot write into a at chunk 30 */
	TU_OK(store_snapshot_write(s, a, 30, 1, dst, cp, &ncp));
	check_clean(s);
	chunk_t changed_before = 0, cur = 0;
	int nc = store_changed(s, a, STORE_ORIGIN_ID, &cur, chg, NCH);
	assert_true(nc > 0);
	changed_before = (chunk_t)nc;	/* 10..13 and 30: 5 */
	assert_int_equal(changed_before, 5);

	/* 4 slots, 2 used: start keeps a */
	TU_OK(store_rollback_start(s, a, false));
	store_rollback_get(s, &rb);
	assert_true(rb.active);
	assert_int_equal(rb.snap_id, a);
	assert_string_equal(rb.name, "a");
	assert_int_equal(rb.cursor, 0);
	/* a keeps its id, name, priority; the source is not listed */
	TU_OK(store_snapshot_find(s, "a", &sn));
	assert_int_equal(sn.id, a);
	assert_int_equal(sn.priority, 5);
	assert_int_equal(store_snapshot_list(s, list, 8), 2);
	/* the origin reads a's chunks where a has them, the device elsewhere */
	TU_OK(store_origin_read(s, 0, NCH, loc));
	assert_int_equal(loc[10], a_chunk10);
	for (chunk_t i = 0; i < NCH; i++)
		assert_true((loc[i] != STORE_ON_ORIGIN) == ((i >= 10 && i <= 13) || i == 30));
	/* a reads the same as the origin: nothing changed between them */
	cur = 0;
	assert_int_equal(store_changed(s, a, STORE_ORIGIN_ID, &cur, chg, NCH), 0);
	/* refusals, nothing changed */
	assert_int_equal(store_rollback_start(s, b, false), -EBUSY);
	assert_non_null(strstr(err_get(), "rollback to snapshot \"a\" is running"));
	assert_int_equal(store_snapshot_delete(s, a), -EBUSY);
	assert_non_null(strstr(err_get(), "being rolled back"));
	uint32_t victim;
	TU_OK(store_pick_victim(s, NULL, NULL, &victim));
	assert_int_equal(victim, b);	/* a (priority 5 but in rollback) never */
	/* an origin write over a pending chunk is refused until rolled */
	assert_int_equal(store_origin_write(s, 9, 3, cp, &n), -EAGAIN);
	assert_non_null(strstr(err_get(), "still to be rolled back"));
	check_clean(s);

	/* survives a reopen */
	store_close(s);
	TU_OK(store_open(path, NULL, &s));
	store_rollback_get(s, &rb);
	assert_true(rb.active && rb.snap_id == a);
	/* csnap dump says where it is */
	char *dump = NULL;
	size_t dlen = 0;
	FILE *f = open_memstream(&dump, &dlen);
	TU_OK(store_dump(s, f));
	fclose(f);
	assert_non_null(strstr(dump, "rollback: to snapshot"));
	assert_non_null(strstr(dump, "\"a\""));
	assert_non_null(strstr(dump, "chunk 0 of 64"));
	free(dump);

	/* a write-triggered step on 10,11: b (taken after a's copies there)
	 * still reads the device and gets a copy-out; a reads the source */
	pend[0] = 10;
	pend[1] = 11;
	step(s, pend, 2, 0, 2);
	TU_OK(store_origin_read(s, 10, 2, loc));
	assert_true(loc[0] == STORE_ON_ORIGIN && loc[1] == STORE_ON_ORIGIN);
	TU_OK(store_origin_write(s, 10, 2, cp, &n));
	assert_int_equal(n, 2);	/* a reads the origin there now: its copy */

	/* background: 12,13 and 30 remain, from cursor 0 */
	TU_OK(store_rollback_next(s, pend, 2, &n, &adv));
	assert_int_equal(n, 2);
	assert_int_equal(pend[0], 12);
	assert_int_equal(pend[1], 13);
	assert_int_equal(adv, 30);
	step(s, pend, 2, adv, 0);	/* b has its own copies at 12,13 */
	store_rollback_get(s, &rb);
	assert_int_equal(rb.cursor, adv);
	check_clean(s);
	/* a snapshot created now reads the origin's content (a's) at 30 */
	TU_OK(store_snapshot_create(s, "c", 0, &c));
	TU_OK(store_snapshot_read(s, c, 30, 1, loc));
	TU_OK(store_origin_read(s, 30, 1, dst));
	assert_int_equal(loc[0], dst[0]);
	assert_true(loc[0] != STORE_ON_ORIGIN);
	/* the last chunk; b still read the device at 30 */
	TU_OK(store_rollback_next(s, pend, 8, &n, &adv));
	assert_int_equal(n, 1);
	assert_int_equal(pend[0], 30);
	assert_int_equal(adv, STORE_CHUNK_END);
	step(s, pend, 1, adv, 1);
	store_rollback_get(s, &rb);
	assert_false(rb.active);
	check_clean(s);
	/* the source's slot is free again; with the table full no rollback
	 * can keep its snapshot, --delete needs no slot */
	uint32_t d;
	TU_OK(store_snapshot_create(s, "d", 0, &d));
	assert_int_equal(store_rollback_start(s, b, false), -ENOSPC);
	assert_non_null(strstr(err_get(), "--delete"));
	TU_OK(store_rollback_start(s, b, true));
	assert_int_equal(store_snapshot_find(s, "b", &sn), -ENOENT);
	assert_int_equal(store_snapshot_list(s, list, 8), 3);
	check_clean(s);
	/* cleanup keeps the source's chunks while it runs */
	TU_OK(store_snapshot_delete(s, c));
	while ((nc = store_cleanup(s, 3)) > 0)
		;
	TU_OK(nc);
	check_clean(s);
	TU_OK(store_origin_read(s, 0, NCH, loc));
	n = 0;
	for (chunk_t i = 0; i < NCH; i++)
		n += loc[i] != STORE_ON_ORIGIN;
	assert_true(n > 0);
	while (store_rollback_next(s, pend, 3, &n, &adv) == 0) {
		step(s, pend, n, adv, n ? n : 0);
		store_rollback_get(s, &rb);
		if (!rb.active)
			break;
	}
	assert_false(rb.active);
	check_clean(s);
	store_close(s);
	tu_check_remove(path);
}

/* An aborted transaction takes back a start, or a step's halves: the
 * store is where its last commit left it (the server aborts when a copy
 * fails).  */
static void test_rollback_abort(void **state)
{
	(void)state;
	char *path = tu_mkstore("rb3", 16 << 20, CH, NCH * CH, 4);
	struct store *s;
	struct store_copy cp[NCH], mv[NCH];
	struct store_rollback rb;
	struct store_snapshot sn;
	chunk_t loc[NCH], pend[NCH], adv;
	uint32_t a, b, n, ncp, nmv;

	TU_OK(store_open(path, NULL, &s));
	TU_OK(store_snapshot_create(s, "a", 0, &a));
	TU_OK(store_origin_write(s, 5, 3, cp, &n));
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	check_clean(s);
	/* a start, aborted */
	TU_OK(store_rollback_start(s, a, false));
	TU_OK(store_abort(s));
	store_rollback_get(s, &rb);
	assert_false(rb.active);
	TU_OK(store_snapshot_find(s, "a", &sn));
	assert_int_equal(sn.id, a);
	TU_OK(store_origin_read(s, 0, NCH, loc));
	for (chunk_t i = 0; i < NCH; i++)
		assert_int_equal(loc[i], STORE_ON_ORIGIN);
	assert_int_equal(store_check_open(s, stderr), 0);
	/* committed start; a prepare (b's copy-outs) aborted, then a finish
	 * aborted: the chunks stay pending, b keeps reading the device */
	TU_OK(store_rollback_start(s, a, true));
	check_clean(s);
	TU_OK(store_rollback_next(s, pend, 8, &n, &adv));
	assert_int_equal(n, 3);
	TU_OK(store_rollback_prepare(s, pend, n, cp, &ncp, mv, &nmv));
	assert_int_equal(ncp, 3);
	assert_int_equal(nmv, 3);
	TU_OK(store_abort(s));
	TU_OK(store_snapshot_read(s, b, 5, 3, loc));
	for (int i = 0; i < 3; i++)
		assert_int_equal(loc[i], STORE_ON_ORIGIN);
	TU_OK(store_rollback_prepare(s, pend, n, cp, &ncp, mv, &nmv));
	TU_OK(store_commit(s));
	TU_OK(store_rollback_finish(s, mv, nmv, adv));
	TU_OK(store_abort(s));
	store_rollback_get(s, &rb);
	assert_true(rb.active);
	TU_OK(store_origin_read(s, 5, 3, loc));
	for (int i = 0; i < 3; i++)
		assert_int_equal(loc[i], mv[i].src);
	assert_int_equal(store_check_open(s, stderr), 0);
	/* and the step again, to the end */
	TU_OK(store_rollback_finish(s, mv, nmv, adv));
	check_clean(s);
	store_rollback_get(s, &rb);
	assert_false(rb.active);
	store_close(s);
	tu_check_remove(path);
}

int main(void)
{
	log_set_level(LOG_LEVEL_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rollback_contract),
		cmocka_unit_test(test_rollback_abort),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
