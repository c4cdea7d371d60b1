/*
 * src/store/txn.c - the engine's transactions: commit (plain, or pipelined
 * in two halves: store_commit_begin/end), abort, checkpoint, and what the
 * open transaction holds.  The journal (journal.c) does the staging, the
 * I/O and the replay; this file prepares the in-memory mirrors (queued
 * frees, counters, header) before a commit and reloads them after an abort.
 *
 * Invariants: at most one commit is in flight (journal_inflight), and
 * while it is, nothing is committed, checkpointed or written home (store.h);
 * a transaction that frees data chunks is never pipelined (its freed
 * chunks could be reused, and overwritten, before the free is durable).
 */
#include "src/store/store_int.h"

#include "utils/assert.h"
#include "utils/err.h"

#include <errno.h>
#include <string.h>

/* What every commit does before the journal stages the transaction:
 * queued frees into the bitmaps, the counters and the header into their
 * blocks.  */
static int commit_prepare(struct store *s)
{
	int ret;

	cnt_check_sum(s);
	ret = sm_apply_frees(s->dsm);
	if (ret >= 0)
		ret = sm_apply_frees(s->msm);
	if (ret >= 0)
		ret = cnt_save(s);
	if (ret >= 0 && (s->tree.changed || s->header_dirty))
		ret = store_save_header(s);
	return ret;
}

int store_commit(struct store *s)
{
	int ret;

	if (s->readonly)
		return bm_dirty_count(s->bm) ? err_set(EROFS, "store opened read-only") : 0;
	if (journal_inflight(s->j))
		return err_set(EBUSY, "a commit is in flight: end it first");
	ret = commit_prepare(s);
	if (ret >= 0)
		ret = journal_commit(s->j);
	return ret;
}

int store_commit_begin(struct store *s, struct store_commit_io *io)
{
	memset(io, 0, sizeof *io);
	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (journal_inflight(s->j))
		return err_set(EBUSY, "a commit is in flight: end it first");
	/* A data chunk freed here would be free for the next transaction's
	 * copy-outs before this one is durable: after a crash the last
	 * durable state would still use it, overwritten.  (A freed tree
	 * block is safe: its new content goes through the journal and home
	 * only after both commits.)  */
	if (sm_pending_frees(s->dsm))
		return err_set(EAGAIN, "the transaction frees data chunks: commit it with store_commit()");
	int ret = commit_prepare(s);
	if (ret < 0)
		return ret;
	struct journal_io jio;
	ret = journal_commit_begin(s->j, &jio);
	if (ret < 0)
		return ret;
	io->n = jio.n;
	for (unsigned i = 0; i < jio.n; i++) {
		io->buf[i] = jio.buf[i];
		io->len[i] = jio.len[i];
		io->off[i] = jio.off[i];
	}
	/* after the begin the open transaction is a new, empty one */
	CSNAP_ASSERT(!store_txn_pending(s));
	return 0;
}

int store_commit_end(struct store *s, int io_result)
{
	return journal_commit_end(s->j, io_result);
}

bool store_commit_inflight(const struct store *s)
{
	return s->j && journal_inflight(s->j);
}

int store_abort(struct store *s)
{
	const struct csnap_sb_engine *e = &s->sb.engine;
	int ret = bm_abort(s->bm);

	if (ret < 0)
		return ret;
	/* reload every in-memory mirror of metadata from the committed blocks */
	sm_close(s->dsm);
	sm_close(s->msm);
	s->dsm = s->msm = NULL;
	st_free(&s->st);
	ret = sm_open(s->bm, META_T_DBITMAP, e->dbitmap_start, e->data_chunks, &s->dsm);
	if (ret >= 0)
		ret = sm_open(s->bm, META_T_MBITMAP, e->mbitmap_start, e->meta_blocks, &s->msm);
	s->tree.sm = s->msm;	/* never the closed one, even when this fails */
	if (ret >= 0)
		ret = st_load(&s->st, s->bm, e->table_start, s->sb.max_snapshots);
	if (ret >= 0)
		ret = store_load_header(s);
	if (ret >= 0)
		ret = cnt_load(s);
	if (ret < 0)
		return err_prefix(-ret, "store abort");
	s->tree.changed = false;
	s->header_dirty = false;
	store_recompute_live(s);
	return 0;
}

int store_checkpoint(struct store *s)
{
	return journal_checkpoint(s->j);
}

unsigned store_txn_blocks(const struct store *s) { return (unsigned)bm_dirty_count(s->bm); }

unsigned store_txn_limit(const struct store *s)
{
	uint64_t n = s->sb.engine.journal_blocks;
	/* descriptors take one block per JOURNAL_DESC_ENTRIES, one block spare */
	return (unsigned)((n - 2) * JOURNAL_DESC_ENTRIES / (JOURNAL_DESC_ENTRIES + 1));
}

bool store_txn_pending(const struct store *s)
{
	return bm_dirty_count(s->bm) || sm_pending_frees(s->dsm) || sm_pending_frees(s->msm) ||
	       s->tree.changed || s->header_dirty;
}
