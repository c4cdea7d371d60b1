/*
 * src/store/journal.c - circular metadata journal: commit, checkpoint,
 * replay.  See journal.h for the on-disk protocol.
 *
 * Invariants (checked by CSNAP_ASSERT in the debug build): head/tail are
 * indexes into the journal area; `used` blocks from tail hold transactions
 * not yet known to be home and end at head; a commit never overwrites them
 * (checkpoint first); commit sequences follow on one by one; the
 * superblock tail is moved only after a flush made the home writes durable.
 */
#include "src/store/journal.h"

#include "ioengine/ioengine.h"
#include "utils/assert.h"
#include "utils/crc32c.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct journal {
	struct bm *bm;
	struct io_dev *dev;
	struct csnap_sb *sb;
	bool readonly;
	uint64_t start, nblocks;	/* area */
	uint64_t head, tail, used;
	uint64_t last_seq;
	uint64_t replayed;
	/* staging for one commit */
	uint8_t *stage;
	size_t stage_cap, stage_n;
	bool inflight;		/* journal_commit_begin() without its end */
	bool failed;		/* a begun commit failed: no more commits */
	/* replay reads the log through this window of neighbouring blocks
	 * (REPLAY_READ_BLOCKS per read instead of one at a time) */
	uint8_t *win;
	uint64_t win_first;	/* journal position of win's first block */
	uint64_t win_n;		/* blocks in win; 0: empty */
};

#define REPLAY_READ_BLOCKS 64	/* 256 KiB per journal read */
#define REPLAY_WRITE_BLOCKS 64	/* at most 256 KiB per home write */

/* head, tail and used agree (a read-only journal does not track used).  */
static bool positions_ok(const struct journal *j)
{
	return j->head < j->nblocks && j->tail < j->nblocks && j->used <= j->nblocks &&
	       (j->readonly || (j->tail + j->used) % j->nblocks == j->head);
}

uint64_t journal_last_seq(const struct journal *j) { return j->last_seq; }
uint64_t journal_replayed(const struct journal *j) { return j->replayed; }
uint64_t journal_used(const struct journal *j) { return j->used; }

/* One journal block at POS (wrapping) into BUF, through the window.  */
static int jread(struct journal *j, uint64_t pos, void *buf)
{
	uint64_t p = pos % j->nblocks;

	if (!j->win && !(j->win = io_buf_alloc((size_t)REPLAY_READ_BLOCKS * META_BLOCK_SIZE)))
		return -ENOMEM;
	if (p < j->win_first || p >= j->win_first + j->win_n) {
		/* the window never wraps: it ends at the journal's end */
		uint64_t n = j->nblocks - p < REPLAY_READ_BLOCKS ? j->nblocks - p : REPLAY_READ_BLOCKS;
		j->win_n = 0;
		int ret = io_dev_pread(j->dev, j->win, n * META_BLOCK_SIZE,
				       (j->start + p) * META_BLOCK_SIZE);
		if (ret < 0)
			return ret;
		j->win_first = p;
		j->win_n = n;
	}
	CSNAP_ASSERT(p >= j->win_first && p - j->win_first < j->win_n && j->win_n <= REPLAY_READ_BLOCKS);
	memcpy(buf, j->win + (p - j->win_first) * META_BLOCK_SIZE, META_BLOCK_SIZE);
	return 0;
}

/* A block image in the log is a sealed metadata block of this store
 * whose home is in the engine's metadata after the journal: anything
 * else would make the read-write replay write home what no reader
 * accepts (or write outside the metadata), while a read-only replay
 * installs it in memory; so it ends the log like any other mismatch.  */
static bool image_ok(const struct journal *j, const uint8_t *im)
{
	const struct csnap_sb_engine *e = &j->sb->engine;
	uint64_t home = get_le64(im + META_BLOCKNR);

	/* engine metadata: from the header to the end of the tree area, or
	 * the data bitmap where `csnap grow` moved it (behind the data) */
	return get_le32(im + META_CSUM) == crc32c(0, im + 4, META_BLOCK_SIZE - 4) &&
	       get_le64(im + META_TAG) == bm_tag(j->bm) &&
	       ((home >= e->header_block && home < e->meta_start + e->meta_blocks) ||
		(home >= e->dbitmap_start && home < e->dbitmap_start + e->dbitmap_blocks));
}

/* Reads and verifies one transaction at *pos with sequence seq.  On
 * success images[] (count *n) holds its blocks and *pos is advanced.  */
static int read_txn(struct journal *j, uint64_t *pos, uint64_t seq,
		    uint8_t **images, size_t *n)
{
	uint8_t *desc = io_buf_alloc(2 * META_BLOCK_SIZE), *bounce;
	uint64_t p = *pos, consumed = 0;
	size_t cnt = 0, cap = 0;
	uint8_t *img = NULL;
	int ret = -EINVAL;

	if (!desc)
		return -ENOMEM;
	bounce = desc + META_BLOCK_SIZE;
	for (uint32_t idx = 0;; idx++) {
		if (consumed + 1 > j->nblocks || jread(j, p, desc) < 0)
			goto out;
		if (bm_validate(j->bm, desc, j->start + p % j->nblocks, META_T_JDESC) < 0 ||
		    get_le64(desc + META_SEQ) != seq || get_le32(desc + JD_INDEX) != idx)
			goto out;
		uint32_t nr = get_le32(desc + JD_NR);
		if (nr == 0 || nr > JOURNAL_DESC_ENTRIES || consumed + 1 + nr > j->nblocks)
			goto out;
		if (cnt + nr > cap) {
			cap = (cnt + nr) * 2;
			uint8_t *ni = realloc(img, cap * META_BLOCK_SIZE);
			if (!ni) {
				ret = -ENOMEM;
				goto out;
			}
			img = ni;
		}
		p++;
		consumed++;
		for (uint32_t i = 0; i < nr; i++, p++, consumed++) {
			const uint8_t *e = desc + JD_ENTRIES + JE_SIZE * i;
			uint8_t *dst = img + (cnt + i) * META_BLOCK_SIZE;
			if (jread(j, p, bounce) < 0)	/* O_DIRECT wants aligned memory */
				goto out;
			memcpy(dst, bounce, META_BLOCK_SIZE);
			if (crc32c(0, dst, META_BLOCK_SIZE) != get_le32(e + JE_CSUM) ||
			    get_le64(dst + META_BLOCKNR) != get_le64(e + JE_BLOCKNR) ||
			    get_le64(dst + META_SEQ) != seq ||
			    !image_ok(j, dst))
				goto out;
		}
		cnt += nr;
		if (get_le32(desc + JD_FLAGS) & JD_LAST)
			break;
	}
	*images = img;
	img = NULL;
	*n = cnt;
	*pos = p % j->nblocks;
	ret = 0;
out:
	free(img);
	io_buf_free(desc);
	return ret;
}

static int write_sb_tail(struct journal *j)
{
	j->sb->engine.journal_tail = j->head;
	j->sb->engine.journal_tail_seq = j->last_seq + 1;
	return csnap_sb_write(j->dev, j->sb);
}

/* The newest image of each home block a read-write replay writes.  A
 * killed master leaves hundreds of transactions, mostly rewriting the
 * same few blocks (engine header, bitmap, the leaves in use): each home
 * is written once, with its last image, in block order, neighbours in
 * one write.  The result on disk is what writing every transaction in
 * turn gives; the journal is not touched, so a replay cut short is simply
 * run again.  Open addressing on home + 1 (0 = empty slot).  */
struct replay_set {
	uint64_t *keys;		/* home + 1 */
	uint32_t *idx;		/* its image in images */
	size_t cap;		/* power of two, at least twice n */
	uint8_t *images;
	size_t n, icap;
};

static size_t set_pos(const struct replay_set *rs, uint64_t home)
{
	size_t m = rs->cap - 1, i = (size_t)((home * 0x9e3779b97f4a7c15ull) >> 17) & m;

	while (rs->keys[i] && rs->keys[i] != home + 1)
		i = (i + 1) & m;
	return i;
}

static int set_grow(struct replay_set *rs)
{
	struct replay_set o = *rs;
	size_t cap = o.cap ? o.cap * 2 : 1024;

	rs->keys = calloc(cap, sizeof *rs->keys);
	rs->idx = malloc(cap * sizeof *rs->idx);
	if (!rs->keys || !rs->idx) {
		free(rs->keys);
		free(rs->idx);
		rs->keys = o.keys;
		rs->idx = o.idx;
		return -ENOMEM;
	}
	rs->cap = cap;
	for (size_t i = 0; i < o.cap; i++)
		if (o.keys[i]) {
			size_t p = set_pos(rs, o.keys[i] - 1);
			rs->keys[p] = o.keys[i];
			rs->idx[p] = o.idx[i];
		}
	free(o.keys);
	free(o.idx);
	return 0;
}

static int set_put(struct replay_set *rs, const uint8_t *im)
{
	uint64_t home = get_le64(im + META_BLOCKNR);

	if (2 * (rs->n + 1) > rs->cap && set_grow(rs) < 0)
		return -ENOMEM;
	size_t p = set_pos(rs, home);
	if (!rs->keys[p]) {
		if (rs->n == rs->icap) {
			size_t ic = rs->icap ? rs->icap * 2 : 256;
			uint8_t *ni = realloc(rs->images, ic * META_BLOCK_SIZE);
			if (!ni)
				return -ENOMEM;
			rs->images = ni;
			rs->icap = ic;
		}
		rs->keys[p] = home + 1;
		rs->idx[p] = (uint32_t)rs->n++;
	}
	memcpy(rs->images + (size_t)rs->idx[p] * META_BLOCK_SIZE, im, META_BLOCK_SIZE);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Writes every home in the set, in block order, runs of neighbours
 * (at most REPLAY_WRITE_BLOCKS) in one write.  */
static int set_write(struct journal *j, struct replay_set *rs)
{
	uint64_t *homes = malloc((rs->n ? rs->n : 1) * sizeof *homes);
	uint8_t *buf = io_buf_alloc((size_t)REPLAY_WRITE_BLOCKS * META_BLOCK_SIZE);
	size_t k = 0;
	int ret = 0;

	if (!homes || !buf) {
		free(homes);
		io_buf_free(buf);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rs->cap; i++)
		if (rs->keys[i])
			homes[k++] = rs->keys[i] - 1;
	CSNAP_ASSERT(k == rs->n);
	qsort(homes, k, sizeof *homes, cmp_u64);
	for (size_t i = 0; i < k && ret >= 0;) {
		size_t run = 0;
		while (i + run < k && run < REPLAY_WRITE_BLOCKS &&
		       homes[i + run] == homes[i] + run) {
			const uint8_t *im = rs->images +
				(size_t)rs->idx[set_pos(rs, homes[i + run])] * META_BLOCK_SIZE;
			CSNAP_ASSERT(get_le64(im + META_BLOCKNR) == homes[i + run]);
			memcpy(buf + run * META_BLOCK_SIZE, im, META_BLOCK_SIZE);
			run++;
		}
		ret = io_dev_pwrite(j->dev, buf, run * META_BLOCK_SIZE, homes[i] * META_BLOCK_SIZE);
		i += run;
	}
	free(homes);
	io_buf_free(buf);
	return ret;
}

static void set_free(struct replay_set *rs)
{
	free(rs->keys);
	free(rs->idx);
	free(rs->images);
}

static int replay(struct journal *j)
{
	uint64_t pos = j->tail, seq = j->sb->engine.journal_tail_seq;
	struct replay_set rs = { 0 };
	int ret = 0;

	bm_set_committed_seq(j->bm, UINT64_MAX);
	for (;;) {
		uint8_t *images = NULL;
		size_t n = 0;
		if (read_txn(j, &pos, seq, &images, &n) < 0)
			break;
		for (size_t i = 0; i < n && ret >= 0; i++) {
			uint8_t *im = images + i * META_BLOCK_SIZE;
			if (j->readonly)
				ret = bm_install(j->bm, get_le64(im + META_BLOCKNR), im);
			else
				ret = set_put(&rs, im);
		}
		free(images);
		if (ret < 0)
			break;
		j->replayed++;
		seq++;
		if (j->replayed > j->nblocks)	/* cannot happen with sane seqs */
			break;
	}
	io_buf_free(j->win);
	j->win = NULL;
	j->win_n = 0;
	if (ret >= 0 && rs.n)
		ret = set_write(j, &rs);
	set_free(&rs);
	if (ret < 0)
		return err_prefix(-ret, "journal replay");
	j->last_seq = seq - 1;
	j->head = pos;
	bm_set_committed_seq(j->bm, j->last_seq);
	if (j->replayed && !j->readonly) {
		ret = io_dev_flush(j->dev);
		if (ret < 0)
			return err_prefix(-ret, "journal replay");
		ret = write_sb_tail(j);
		if (ret < 0)
			return ret;
		j->tail = j->head;
	}
	if (j->replayed)
		log_info("store: replayed %llu journal transaction(s), last %llu",
			 (unsigned long long)j->replayed, (unsigned long long)j->last_seq);
	return 0;
}

int journal_open(struct bm *bm, struct csnap_sb *sb, bool readonly,
		 struct journal **out)
{
	struct journal *j = calloc(1, sizeof *j);
	int ret;

	if (!j)
		return err_set(ENOMEM, "out of memory");
	j->bm = bm;
	j->dev = bm_dev(bm);
	j->sb = sb;
	j->readonly = readonly;
	j->start = sb->engine.journal_start;
	j->nblocks = sb->engine.journal_blocks;
	j->tail = j->head = sb->engine.journal_tail;
	ret = replay(j);
	if (ret < 0) {
		free(j);
		return ret;
	}
	j->used = j->readonly ? 0 : (j->head + j->nblocks - j->tail) % j->nblocks;
	CSNAP_ASSERT(positions_ok(j));
	*out = j;
	return 0;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	io_buf_free(j->stage);
	io_buf_free(j->win);
	free(j);
}

int journal_checkpoint(struct journal *j)
{
	int ret;

	if (j->readonly)
		return err_set(EROFS, "store opened read-only");
	if (j->inflight || j->failed)
		return err_set(EBUSY, "journal checkpoint: %s",
			       j->failed ? "an earlier commit failed" : "a commit is in flight");
	if (j->used == 0)
		return 0;
	ret = bm_write_home(j->bm);
	if (ret >= 0)
		ret = io_dev_flush(j->dev);
	if (ret >= 0)
		ret = write_sb_tail(j);
	if (ret < 0)
		return err_prefix(-ret, "journal checkpoint");
	j->tail = j->head;
	j->used = 0;
	CSNAP_ASSERT(j->sb->engine.journal_tail == j->tail && positions_ok(j));
	return 0;
}

struct stage_ctx {
	struct journal *j;
	uint8_t *desc;		/* current descriptor in the stage */
	uint32_t nr;
	uint32_t idx;
};

static int stage_block(void *arg, struct bm_block *b)
{
	struct stage_ctx *c = arg;
	struct journal *j = c->j;

	if (!c->desc || c->nr == JOURNAL_DESC_ENTRIES) {
		if (c->desc)
			c->idx++;
		c->desc = j->stage + j->stage_n++ * META_BLOCK_SIZE;
		memset(c->desc, 0, META_BLOCK_SIZE);
		put_le32(c->desc + JD_INDEX, c->idx);
		c->nr = 0;
	}
	uint8_t *e = c->desc + JD_ENTRIES + JE_SIZE * c->nr++;
	put_le64(e + JE_BLOCKNR, b->blocknr);
	put_le32(e + JE_CSUM, crc32c(0, b->data, META_BLOCK_SIZE));
	put_le32(c->desc + JD_NR, c->nr);
	memcpy(j->stage + j->stage_n++ * META_BLOCK_SIZE, b->data, META_BLOCK_SIZE);
	return 0;
}

/* Stages the open transaction as sequence last_seq + 1 at the head
 * (checkpointing first if the journal lacks room): descriptors and block
 * images in j->stage, sealed.  *N gets its dirty blocks (0: nothing to
 * commit, nothing staged).  */
static int stage_txn(struct journal *j, size_t *n_out)
{
	size_t n = bm_dirty_count(j->bm);
	size_t ndesc = (n + JOURNAL_DESC_ENTRIES - 1) / JOURNAL_DESC_ENTRIES;
	size_t total = n + ndesc;
	uint64_t seq = j->last_seq + 1;
	int ret;

	*n_out = n;
	if (n == 0)
		return 0;
	if (j->readonly)
		return err_set(EROFS, "store opened read-only");
	if (j->failed)
		return err_set(EIO, "an earlier commit failed: the store must be reopened");
	if (j->inflight)
		return err_set(EBUSY, "a commit is in flight");
	if (total > j->nblocks - 1)
		return err_set(EFBIG, "transaction of %zu blocks exceeds the journal (%llu blocks)",
			       n, (unsigned long long)j->nblocks);
	if (total > j->nblocks - j->used) {
		ret = journal_checkpoint(j);
		if (ret < 0)
			return ret;
	}
	if (total > j->stage_cap) {
		io_buf_free(j->stage);
		j->stage_cap = total + total / 4 < j->nblocks ? total + total / 4 : j->nblocks;
		j->stage = io_buf_alloc(j->stage_cap * META_BLOCK_SIZE);
		if (!j->stage) {
			j->stage_cap = 0;
			return err_set(ENOMEM, "out of memory");
		}
	}
	j->stage_n = 0;
	struct stage_ctx c = { .j = j };
	ret = bm_for_each_dirty(j->bm, seq, stage_block, &c);
	if (ret < 0)
		return ret;
	/* every dirty block and its descriptors staged; room for them all
	 * without overwriting a transaction that is not home yet */
	CSNAP_ASSERT(j->stage_n == total && j->stage_n <= j->stage_cap);
	CSNAP_ASSERT(j->used + j->stage_n <= j->nblocks);
	/* seal descriptors now that their entries are final */
	for (size_t i = 0; i < j->stage_n; i++) {
		uint8_t *blk = j->stage + i * META_BLOCK_SIZE;
		if (blk == c.desc)
			put_le32(blk + JD_FLAGS, JD_LAST);
	}
	for (size_t i = 0; i < j->stage_n; i++) {
		uint8_t *blk = j->stage + i * META_BLOCK_SIZE;
		uint64_t at = j->start + (j->head + i) % j->nblocks;
		/* descriptors are the staged blocks whose type is not yet set */
		if (get_le32(blk + META_TYPE) == 0)
			bm_seal(j->bm, blk, at, META_T_JDESC, seq);
	}
	return 0;
}

/* The writes of the staged transaction: at most two pieces (wrap-around). */
static void stage_io(const struct journal *j, struct journal_io *io)
{
	uint64_t first = j->nblocks - j->head;

	memset(io, 0, sizeof *io);
	if (first > j->stage_n)
		first = j->stage_n;
	io->buf[0] = j->stage;
	io->len[0] = first * META_BLOCK_SIZE;
	io->off[0] = (j->start + j->head) * META_BLOCK_SIZE;
	io->n = 1;
	if (first < j->stage_n) {
		io->buf[1] = j->stage + first * META_BLOCK_SIZE;
		io->len[1] = (j->stage_n - first) * META_BLOCK_SIZE;
		io->off[1] = j->start * META_BLOCK_SIZE;
		io->n = 2;
	}
}

/* The staged transaction is durable: it is the last committed one.  */
static int txn_durable(struct journal *j)
{
	uint64_t seq = j->last_seq + 1;

	j->last_seq = seq;
	bm_set_committed_seq(j->bm, seq);
	j->head = (j->head + j->stage_n) % j->nblocks;
	j->used += j->stage_n;
	CSNAP_ASSERT(positions_ok(j));
	if (j->used > j->nblocks / 2)
		return journal_checkpoint(j);
	return 0;
}

int journal_commit(struct journal *j)
{
	size_t n;
	struct journal_io io;
	int ret = stage_txn(j, &n);

	if (ret < 0 || n == 0)
		return ret;
	stage_io(j, &io);
	for (unsigned i = 0; i < io.n && ret >= 0; i++)
		ret = io_dev_pwrite(j->dev, io.buf[i], io.len[i], io.off[i]);
	if (ret >= 0)
		ret = io_dev_flush(j->dev);
	if (ret < 0)
		return err_prefix(-ret, "journal commit %llu", (unsigned long long)(j->last_seq + 1));
	bm_mark_committed(j->bm);
	CSNAP_ASSERT(bm_dirty_count(j->bm) == 0);
	return txn_durable(j);
}

int journal_commit_begin(struct journal *j, struct journal_io *io)
{
	size_t n;
	int ret = stage_txn(j, &n);

	memset(io, 0, sizeof *io);
	if (ret < 0 || n == 0)
		return ret;
	stage_io(j, io);
	/* The images are in the stage: the blocks may change again, in the
	 * next transaction, but none may go home before this one is
	 * durable (write-ahead).  */
	bm_mark_committed(j->bm);
	bm_hold_home(j->bm, true);
	j->inflight = true;
	return 0;
}

int journal_commit_end(struct journal *j, int result)
{
	CSNAP_ASSERT(j->inflight);
	j->inflight = false;
	if (result < 0) {
		/* The blocks are marked committed in memory but may not be
		 * on disk: nothing of it may go home, and nothing more may be
		 * committed; the next opener replays what is durable.  */
		j->failed = true;
		return err_set(-result, "journal commit %llu failed: %s",
			       (unsigned long long)(j->last_seq + 1), strerror(-result));
	}
	bm_hold_home(j->bm, false);
	return txn_durable(j);
}

bool journal_inflight(const struct journal *j) { return j->inflight; }
