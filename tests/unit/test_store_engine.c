/*
 * tests/unit/test_store_engine.c - the engine's contract, case by case:
 * one copy-out shared by every snapshot, copy-on-write of shared
 * exceptions on snapshot writes, delete + incremental cleanup, store-full
 * behaviour and the victim policy, usage and changed-chunk reports,
 * rename, and refusal of bad arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_testutil.h"
#include "utils/log.h"
#include "utils/progress.h"

#include <errno.h>
#include <unistd.h>

#define CH 4096

static struct store *open_new(const char *tag, uint64_t size, uint64_t origin_chunks,
			      uint32_t maxsnap, char **path)
{
	struct store *s;
	*path = tu_mkstore(tag, size, CH, origin_chunks * CH, maxsnap);
	TU_OK(store_open(*path, NULL, &s));
	return s;
}

static void test_shared_copy(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("eng1", 16 << 20, 64, 16, &path);
	struct store_copy cp[8];
	chunk_t loc[8], dst[8];
	uint32_t a, b, c, n;

	/* without snapshots an origin write needs nothing */
	TU_OK(store_origin_write(s, 0, 8, cp, &n));
	assert_int_equal(n, 0);
	TU_OK(store_snapshot_create(s, "a", 0, &a));
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	TU_OK(store_snapshot_create(s, "c", 0, &c));
	/* one copy for all three */
	TU_OK(store_origin_write(s, 5, 1, cp, &n));
	assert_int_equal(n, 1);
	assert_int_equal(cp[0].origin_chunk, 5);
	assert_int_equal(cp[0].src, STORE_ON_ORIGIN);
	chunk_t shared = cp[0].dst;
	TU_OK(store_commit(s));
	uint32_t ids[3] = { a, b, c };
	for (int i = 0; i < 3; i++) {
		TU_OK(store_snapshot_read(s, ids[i], 4, 3, loc));
		assert_int_equal(loc[0], STORE_ON_ORIGIN);
		assert_int_equal(loc[1], shared);
		assert_int_equal(loc[2], STORE_ON_ORIGIN);
	}
	/* already preserved: the second write needs no copy */
	TU_OK(store_origin_write(s, 4, 3, cp, &n));
	assert_int_equal(n, 2);
	assert_int_equal(cp[0].origin_chunk, 4);
	assert_int_equal(cp[1].origin_chunk, 6);
	TU_OK(store_origin_write(s, 4, 3, cp, &n));
	assert_int_equal(n, 0);

	/* snapshot write to the shared chunk: b gets its own copy of it */
	TU_OK(store_snapshot_write(s, b, 5, 1, dst, cp, &n));
	assert_int_equal(n, 1);
	assert_int_equal(cp[0].src, shared);
	assert_int_not_equal(dst[0], shared);
	chunk_t bown = dst[0];
	TU_OK(store_snapshot_read(s, b, 5, 1, loc));
	assert_int_equal(loc[0], bown);
	TU_OK(store_snapshot_read(s, a, 5, 1, loc));
	assert_int_equal(loc[0], shared);
	/* now exclusive: written in place */
	TU_OK(store_snapshot_write(s, b, 5, 1, dst, cp, &n));
	assert_int_equal(n, 0);
	assert_int_equal(dst[0], bown);
	/* snapshot write to a chunk still on the origin */
	TU_OK(store_snapshot_write(s, a, 10, 1, dst, cp, &n));
	assert_int_equal(n, 1);
	assert_int_equal(cp[0].src, STORE_ON_ORIGIN);
	/* a new snapshot sees the origin everywhere */
	uint32_t d;
	TU_OK(store_snapshot_create(s, "d", 0, &d));
	TU_OK(store_snapshot_read(s, d, 0, 8, loc));
	for (int i = 0; i < 8; i++)
		assert_int_equal(loc[i], STORE_ON_ORIGIN);
	/* and the origin write copies again, once, for d only */
	TU_OK(store_origin_write(s, 5, 1, cp, &n));
	assert_int_equal(n, 1);
	TU_OK(store_commit(s));

	/* usage: a, c share chunk 5 (shared), 4 and 6 (shared); b owns 5 */
	struct store_usage u[8];
	assert_int_equal(store_usage(s, u, 8), 4);
	assert_int_equal(u[0].id, a);
	assert_int_equal(u[0].unique, 1);	/* chunk 10 */
	assert_int_equal(u[0].shared, 3);
	assert_int_equal(u[1].id, b);
	assert_int_equal(u[1].unique, 1);
	assert_int_equal(u[1].shared, 2);
	assert_int_equal(u[3].unique, 1);	/* d: its copy of 5 */

	/* changed chunks */
	chunk_t cur = 0, ch[16];
	assert_int_equal(store_changed(s, a, b, &cur, ch, 16), 2);
	assert_int_equal(ch[0], 5);
	assert_int_equal(ch[1], 10);
	assert_int_equal(cur, STORE_CHUNK_END);
	cur = 0;
	assert_int_equal(store_changed(s, a, STORE_ORIGIN_ID, &cur, ch, 16), 4);
	assert_int_equal(ch[0], 4);
	cur = 0;
	assert_int_equal(store_changed(s, a, STORE_ORIGIN_ID, &cur, ch, 3), 3);
	assert_int_equal(cur, 10);
	assert_int_equal(store_changed(s, a, STORE_ORIGIN_ID, &cur, ch, 3), 1);
	assert_int_equal(ch[0], 10);
	cur = 0;
	assert_int_equal(store_changed(s, a, c, &cur, ch, 16), 1);
	/* a cursor past the last exception: nothing more, and done (this
	 * dereferenced a NULL entry, found by fuzz_store_meta) */
	cur = 1000;
	assert_int_equal(store_changed(s, a, STORE_ORIGIN_ID, &cur, ch, 16), 0);
	assert_int_equal(cur, STORE_CHUNK_END);
	tu_close_check_remove(s, path);
}

static void test_delete_cleanup(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("eng2", 16 << 20, 512, 4, &path);
	struct store_copy cp[64];
	struct store_info i0, i1;
	uint32_t ids[4], n;
	chunk_t loc[1];

	store_get_info(s, &i0);
	for (int k = 0; k < 4; k++) {
		char name[8];
		snprintf(name, sizeof name, "s%d", k);
		TU_OK(store_snapshot_create(s, name, 0, &ids[k]));
		for (uint64_t c = 0; c < 512; c += 64)
			TU_OK(store_origin_write(s, c + (uint64_t)k, 60, cp, &n));
	}
	TU_OK(store_commit(s));
	uint32_t x;
	assert_int_equal(store_snapshot_create(s, "s9", 0, &x), -ENOSPC);
	TU_OK(store_snapshot_delete(s, ids[1]));
	assert_int_equal(store_snapshot_read(s, ids[1], 0, 1, loc), -ENOENT);
	assert_int_equal(store_snapshot_create(s, "s9", 0, &x), -EBUSY);
	assert_int_equal(store_snapshot_delete(s, ids[1]), -ENOENT);
	/* small budgets, commits and a reopen in the middle of the pass */
	int r, steps = 0;
	while ((r = store_cleanup(s, 7)) > 0) {
		if (++steps == 20) {
			TU_OK(store_commit(s));
			store_close(s);
			TU_OK(store_open(path, NULL, &s));
			assert_int_equal(store_check_open(s, stderr), 0);
		}
	}
	TU_OK(r);
	assert_true(steps > 20);
	TU_OK(store_commit(s));
	TU_OK(store_snapshot_create(s, "s9", 0, &x));	/* the bit is free again */
	for (int k = 0; k < 4; k++)
		if (k != 1)
			TU_OK(store_snapshot_delete(s, ids[k]));
	TU_OK(store_snapshot_delete(s, x));
	while ((r = store_cleanup(s, 1000)) > 0)
		;
	TU_OK(r);
	TU_OK(store_commit(s));
	store_get_info(s, &i1);
	assert_int_equal(i1.exceptions, 0);
	assert_int_equal(i1.data_free, i0.data_free);
	assert_int_equal(i1.meta_free, i0.meta_free);
	assert_int_equal(store_cleanup(s, 10), 0);
	tu_close_check_remove(s, path);
}

static bool in_use_one(void *arg, uint32_t id) { return id == *(uint32_t *)arg; }

static void test_full_and_victims(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("eng3", 6 << 20, 4096, 8, &path);
	struct store_copy cp[64];
	struct store_info info;
	uint32_t a, b, c, v, n;

	TU_OK(store_snapshot_create(s, "a", 5, &a));
	TU_OK(store_snapshot_create(s, "b", 1, &b));
	TU_OK(store_snapshot_create(s, "c", 1, &c));
	TU_OK(store_snapshot_set_usecount(s, b, 1));
	/* lowest priority unused first: c (b is in use) */
	TU_OK(store_pick_victim(s, NULL, NULL, &v));
	assert_int_equal(v, c);
	TU_OK(store_snapshot_set_usecount(s, b, 0));
	TU_OK(store_pick_victim(s, NULL, NULL, &v));
	assert_int_equal(v, b);	/* same priority: oldest */
	TU_OK(store_snapshot_set_priority(s, b, 9));
	TU_OK(store_pick_victim(s, NULL, NULL, &v));
	assert_int_equal(v, c);
	/* the first candidate in use (a client on it): the next one, not none */
	uint32_t busy = c;
	TU_OK(store_pick_victim(s, in_use_one, &busy, &v));
	assert_int_equal(v, a);
	busy = 0;
	TU_OK(store_pick_victim(s, in_use_one, &busy, &v));
	assert_int_equal(v, c);

	store_get_info(s, &info);
	uint64_t c0 = 0;
	int r = 0;
	while (c0 + 64 <= 4096 && (r = store_origin_write(s, c0, 64, cp, &n)) == 0) {
		c0 += 64;
		if (store_txn_blocks(s) > store_txn_limit(s) / 2)
			TU_OK(store_commit(s));
	}
	if (r != -ENOSPC)
		fail_msg("filled %llu chunks of %llu without ENOSPC (r %d)", (unsigned long long)c0,
			 (unsigned long long)info.data_chunks, r);
	assert_non_null(strstr(err_get(), "full"));
	while ((r = store_origin_write(s, c0, 1, cp, &n)) == 0)
		c0++;	/* use up the last free chunks */
	assert_int_equal(r, -ENOSPC);
	struct store_info before, after;
	store_get_info(s, &before);
	assert_int_equal(store_origin_write(s, c0, 64, cp, &n), -ENOSPC);
	assert_int_equal(n, 0);
	store_get_info(s, &after);
	assert_int_equal(after.exceptions, before.exceptions);	/* nothing changed */
	assert_int_equal(after.data_free, before.data_free);
	TU_OK(store_commit(s));
	assert_int_equal(store_check_open(s, stderr), 0);
	/* the policy: release the victim, clean up, commit, retry */
	TU_OK(store_pick_victim(s, NULL, NULL, &v));
	TU_OK(store_snapshot_delete(s, v));
	while ((r = store_cleanup(s, 100)) > 0)
		;
	TU_OK(store_commit(s));
	/* all exceptions were shared by a, b, c: nothing freed yet */
	assert_int_equal(store_origin_write(s, c0, 1, cp, &n), -ENOSPC);
	TU_OK(store_snapshot_delete(s, a));
	TU_OK(store_snapshot_delete(s, b));
	while ((r = store_cleanup(s, 100)) > 0)
		;
	TU_OK(store_commit(s));
	store_get_info(s, &after);
	assert_int_equal(after.data_free, info.data_free);
	tu_close_check_remove(s, path);
}

/* Issue 9, defect 2: a 128 MiB store's tree area is ~110 blocks; the old
 * room estimate wanted one block per chunk and refused an 8 MiB origin
 * write after one snapshot ("metadata area full") on an empty store.  With
 * an honest worst case, whole large requests fit; data space runs out
 * first and says so.  */
static void large_writes(uint32_t chunk, uint32_t piece, uint64_t total)
{
	char *path = tu_mkstore("room", 128 << 20, chunk, 64 << 20, 256);
	struct store *s;
	struct store_info i0, i1;
	uint32_t id, n, nsnap = 0;
	char name[16];
	struct store_copy *cp = calloc(piece, sizeof *cp);

	TU_OK(store_open(path, NULL, &s));
	store_get_info(s, &i0);
	assert_true(i0.meta_blocks < i0.data_chunks);	/* far fewer than one per chunk */
	/* one snapshot, then TOTAL bytes written from chunk 0, PIECE chunks a
	 * call (the server's piece), a new snapshot before each piece */
	for (uint64_t c = 0; c < total / chunk; c += piece) {
		snprintf(name, sizeof name, "s%u", nsnap++);
		TU_OK(store_snapshot_create(s, name, 0, &id));
		uint64_t mfree = 0;
		store_get_info(s, &i1);
		mfree = i1.meta_free;
		TU_OK(store_origin_write(s, c, piece, cp, &n));
		assert_int_equal(n, piece);
		store_get_info(s, &i1);
		/* the estimate bounds what the request really took */
		assert_true(mfree - i1.meta_free <= store_tree_need(s, piece, 2));
		TU_OK(store_commit(s));
	}
	store_get_info(s, &i1);
	assert_int_equal(i1.exceptions, total / chunk);
	assert_int_equal(i1.snapshots, nsnap);
	/* then snapshot after snapshot over the whole origin until the store
	 * is full: data space, not the tree area, is what runs out, and the
	 * error says so */
	uint64_t ochunks = (64u << 20) / chunk;
	int r = 0;
	for (int round = 0; r == 0 && round < 64; round++) {
		snprintf(name, sizeof name, "f%d", round);
		TU_OK(store_snapshot_create(s, name, 0, &id));
		for (uint64_t c = 0; c < ochunks && r == 0; c += piece) {
			r = store_origin_write(s, c, piece, cp, &n);
			if (r == 0)
				TU_OK(store_commit(s));
		}
	}
	assert_int_equal(r, -ENOSPC);
	assert_int_equal(store_enospc_kind(s), STORE_SHORT_DATA);
	assert_non_null(strstr(err_get(), "data area"));
	store_get_info(s, &i1);
	assert_true(i1.data_free < piece);
	TU_OK(store_commit(s));
	free(cp);
	tu_close_check_remove(s, path);
}

static void test_room_estimate(void **state)
{
	(void)state;
	large_writes(64 << 10, 128, 8 << 20);	/* one 8 MiB write */
	large_writes(64 << 10, 256, 32 << 20);	/* 16 MiB writes */
	large_writes(4 << 10, 4096, 32 << 20);	/* 4 KiB chunks, 16 MiB pieces */
}

/* A request whose worst case does not fit the journal is refused as
 * STORE_SHORT_TXN before it changes anything (committing it would fail
 * with EFBIG); its halves fit.  1024 snapshots: 28 entries per leaf.  */
static void test_txn_room(void **state)
{
	(void)state;
	char *path = tu_mkstore("txn", 16 << 20, 4096, 16 << 20, 1024);
	struct store *s;
	struct store_info i0, i1;
	uint32_t id, n;

	TU_OK(store_open(path, NULL, &s));
	store_get_info(s, &i0);
	uint32_t big = (uint32_t)(i0.data_chunks - 64);
	struct store_copy *cp = calloc(big, sizeof *cp);
	TU_OK(store_snapshot_create(s, "a", 0, &id));
	TU_OK(store_commit(s));
	assert_true(store_tree_need(s, big, 1) > store_txn_limit(s));	/* the premise */
	assert_int_equal(store_origin_write(s, 0, big, cp, &n), -ENOSPC);
	assert_int_equal(store_enospc_kind(s), STORE_SHORT_TXN);
	assert_non_null(strstr(err_get(), "journal"));
	store_get_info(s, &i1);
	assert_int_equal(i1.exceptions, 0);	/* nothing changed */
	assert_int_equal(i1.data_free, i0.data_free);
	TU_OK(store_origin_write(s, 0, big / 2, cp, &n));
	assert_int_equal(n, big / 2);
	TU_OK(store_commit(s));
	TU_OK(store_origin_write(s, big / 2, big - big / 2, cp, &n));
	TU_OK(store_commit(s));
	store_get_info(s, &i1);
	assert_int_equal(i1.exceptions, big);
	free(cp);
	tu_close_check_remove(s, path);
}

/* The bound is a bound: no request runs the tree area out halfway.  */
static void test_tree_need_bounds(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("need", 16 << 20, 2048, 64, &path);
	assert_int_equal(store_tree_need(s, 0, 1), 0);
	/* one insert into an empty tree: at most a split and a new root */
	assert_true(store_tree_need(s, 1, 1) <= 2);
	/* grows with the request, not one block per chunk */
	assert_true(store_tree_need(s, 4096, 1) < 4096 / 20);
	assert_true(store_tree_need(s, 4096, 1) >= 4096 / 84);
	/* every touched full leaf may split */
	assert_true(store_tree_need(s, 100, 100) >= 100);
	tu_close_check_remove(s, path);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("eng4", 16 << 20, 100, 4, &path);
	struct store_copy cp[4];
	chunk_t loc[4];
	uint32_t id, n;
	char longname[80];

	assert_int_equal(store_origin_write(s, 99, 2, cp, &n), -EINVAL);
	assert_int_equal(store_origin_write(s, 100, 1, cp, &n), -EINVAL);
	TU_OK(store_origin_write(s, 99, 1, cp, &n));
	assert_int_equal(store_snapshot_read(s, 42, 0, 1, loc), -ENOENT);
	assert_int_equal(store_snapshot_create(s, "", 0, &id), -EINVAL);
	assert_int_equal(store_snapshot_create(s, "a b", 0, &id), -EINVAL);
	assert_int_equal(store_snapshot_create(s, "a/b", 0, &id), -EINVAL);
	/* Reserved: the origin's export name (issue 10).  The server
	 * creates snapshots through here, so a raw client is refused too. */
	assert_int_equal(store_snapshot_create(s, "origin", 0, &id), -EINVAL);
	assert_int_equal(store_snapshot_create(s, "a\nb", 0, &id), -EINVAL);
	assert_null(strchr(err_get(), '\n'));
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	assert_int_equal(store_snapshot_create(s, longname, 0, &id), -EINVAL);
	TU_OK(store_snapshot_create(s, "ok", 0, &id));
	assert_int_equal(store_snapshot_create(s, "ok", 0, &id), -EEXIST);
	struct store_snapshot sn;
	TU_OK(store_snapshot_find(s, "ok", &sn));
	assert_int_equal(sn.id, id);
	assert_int_equal(sn.flags, STORE_SNAP_LIVE);
	TU_OK(store_commit(s));
	store_close(s);
	/* read-only: lookups yes, changes no */
	struct store_open_opts ro = { .readonly = true };
	TU_OK(store_open(path, &ro, &s));
	TU_OK(store_snapshot_read(s, id, 0, 4, loc));
	assert_int_equal(store_origin_write(s, 0, 1, cp, &n), -EROFS);
	assert_int_equal(store_snapshot_create(s, "z", 0, &id), -EROFS);
	tu_close_check_remove(s, path);
}

static void test_abort(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("eng5", 40 << 20, 2048, 8, &path);
	struct store_copy cp[64];
	chunk_t dst[64], before[2048], after[2048];
	struct store_info i0, i1;
	uint32_t a, b, n;

	TU_OK(store_snapshot_create(s, "a", 0, &a));
	for (uint64_t c = 0; c < 2048; c += 64)
		TU_OK(store_origin_write(s, c, 32, cp, &n));
	TU_OK(store_commit(s));
	TU_OK(store_snapshot_read(s, a, 0, 2048, before));
	store_get_info(s, &i0);
	/* a lot of uncommitted change: splits, a new snapshot, a delete + cleanup */
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	for (uint64_t c = 0; c < 2048; c += 64)
		TU_OK(store_origin_write(s, c, 64, cp, &n));
	TU_OK(store_snapshot_write(s, a, 100, 64, dst, cp, &n));
	TU_OK(store_snapshot_delete(s, a));
	while (store_cleanup(s, 50) > 0)
		;
	assert_true(store_txn_pending(s));
	TU_OK(store_abort(s));
	assert_false(store_txn_pending(s));
	store_get_info(s, &i1);
	assert_int_equal(i1.exceptions, i0.exceptions);
	assert_int_equal(i1.data_free, i0.data_free);
	assert_int_equal(i1.meta_free, i0.meta_free);
	assert_int_equal(i1.snapshots, 1);
	TU_OK(store_snapshot_read(s, a, 0, 2048, after));
	assert_memory_equal(before, after, sizeof before);
	assert_int_equal(store_check_open(s, stderr), 0);
	/* and the store goes on working */
	TU_OK(store_origin_write(s, 30, 10, cp, &n));
	assert_int_equal(n, 8);
	TU_OK(store_commit(s));
	tu_close_check_remove(s, path);
}

static int pulses;
static void count_pulse(void) { pulses++; }

/* Long walks pulse (utils/progress.h), so a watched master busy with one
 * keeps answering its agent's heartbeat.  */
static void test_progress_pulses(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("eng8", 16 << 20, 2048, 8, &path);
	struct store_copy cp[64];
	struct store_usage u[8];
	uint32_t a, n;

	TU_OK(store_snapshot_create(s, "a", 0, &a));
	for (chunk_t c0 = 0; c0 < 2048; c0 += 64)
		TU_OK(store_origin_write(s, c0, 64, cp, &n));
	TU_OK(store_commit(s));
	csnap_progress_hook = count_pulse;
	pulses = 0;
	usleep((CSNAP_PROGRESS_MS + 20) * 1000);
	chunk_t cursor = 0, *chg = calloc(2048, sizeof *chg);
	assert_int_equal(store_changed(s, a, STORE_ORIGIN_ID, &cursor, chg, 2048), 2048);	/* walks 2048 exceptions */
	csnap_progress_hook = NULL;
	assert_true(pulses >= 1);
	free(chg);
	assert_true(store_usage(s, u, 8) >= 1);	/* the counters: no walk */
	assert_true(u[0].known);
	assert_int_equal(u[0].unique, 2048);
	tu_close_check_remove(s, path);
}

/* A create's request id is kept with the snapshot, across reopening.  */
static void test_request_id(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("eng9", 16 << 20, 64, 8, &path);
	uint8_t rid[STORE_REQ_ID_LEN], zero[STORE_REQ_ID_LEN] = { 0 };
	struct store_snapshot sn;
	uint32_t a, b;

	memset(rid, 0xa7, sizeof rid);
	TU_OK(store_snapshot_create_req(s, "a", 0, rid, &a));
	TU_OK(store_snapshot_create(s, "b", 0, &b));
	TU_OK(store_commit(s));
	store_close(s);
	TU_OK(store_open(path, NULL, &s));
	TU_OK(store_snapshot_find(s, "a", &sn));
	assert_int_equal(sn.id, a);
	assert_memory_equal(sn.req_id, rid, sizeof rid);
	TU_OK(store_snapshot_find(s, "b", &sn));
	assert_memory_equal(sn.req_id, zero, sizeof zero);
	tu_close_check_remove(s, path);
}

/* Rename keeps id, mapping and request id; it is refused for a taken,
 * invalid or reserved name and for a missing or deleted snapshot; it
 * survives reopening, and an uncommitted one is discarded.  */
static void test_rename(void **state)
{
	(void)state;
	char *path;
	struct store *s = open_new("eng10", 16 << 20, 256, 8, &path);
	struct store_copy cp[64];
	struct store_snapshot sn;
	chunk_t before[256], after[256];
	uint8_t rid[STORE_REQ_ID_LEN];
	uint32_t a, b, c, d, n;

	memset(rid, 0x5c, sizeof rid);
	TU_OK(store_snapshot_create_req(s, "k1", 0, rid, &a));
	TU_OK(store_origin_write(s, 10, 20, cp, &n));
	TU_OK(store_snapshot_create(s, "k2", 0, &b));
	TU_OK(store_snapshot_create(s, "gone", 0, &d));
	TU_OK(store_snapshot_delete(s, d));
	TU_OK(store_commit(s));
	TU_OK(store_snapshot_read(s, a, 0, 256, before));

	TU_OK(store_snapshot_rename(s, a, "monday"));
	assert_int_equal(store_snapshot_find(s, "k1", &sn), -ENOENT);
	TU_OK(store_snapshot_find(s, "monday", &sn));
	assert_int_equal(sn.id, a);
	assert_memory_equal(sn.req_id, rid, sizeof rid);
	/* refusals change nothing */
	assert_int_equal(store_snapshot_rename(s, a, "k2"), -EEXIST);
	assert_int_equal(store_snapshot_rename(s, a, "origin"), -EINVAL);
	assert_int_equal(store_snapshot_rename(s, a, "bad/name"), -EINVAL);
	assert_int_equal(store_snapshot_rename(s, a, ""), -EINVAL);
	assert_int_equal(store_snapshot_rename(s, a, NULL), -EINVAL);
	assert_int_equal(store_snapshot_rename(s, 999, "x"), -ENOENT);
	assert_int_equal(store_snapshot_rename(s, d, "x"), -ENOENT);
	TU_OK(store_snapshot_rename(s, a, "monday"));	/* its own name: no-op */
	TU_OK(store_snapshot_find(s, "k2", &sn));
	assert_int_equal(sn.id, b);
	/* the old name is free again */
	TU_OK(store_snapshot_create(s, "k1", 0, &c));
	assert_int_not_equal(c, a);
	TU_OK(store_commit(s));

	/* uncommitted: discarded by close */
	TU_OK(store_snapshot_rename(s, b, "tuesday"));
	store_close(s);
	TU_OK(store_open(path, NULL, &s));
	TU_OK(store_snapshot_find(s, "k2", &sn));
	assert_int_equal(sn.id, b);
	assert_int_equal(store_snapshot_find(s, "tuesday", &sn), -ENOENT);
	TU_OK(store_snapshot_find(s, "monday", &sn));
	assert_int_equal(sn.id, a);
	assert_memory_equal(sn.req_id, rid, sizeof rid);
	TU_OK(store_snapshot_read(s, a, 0, 256, after));
	assert_memory_equal(before, after, sizeof before);
	TU_OK(store_snapshot_find(s, "k1", &sn));
	assert_int_equal(sn.id, c);
	tu_close_check_remove(s, path);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_copy),
		cmocka_unit_test(test_delete_cleanup),
		cmocka_unit_test(test_full_and_victims),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_room_estimate),
		cmocka_unit_test(test_tree_need_bounds),
		cmocka_unit_test(test_txn_room),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_progress_pulses),
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_rename),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
