/*
 * src/store/grow.c - store_grow(): add the space of an extended store
 * device to the data area (`csnap grow`).
 *
 * Data chunk c lives at data_offset + c * chunk_size, so new chunks are
 * appended to the data area; what must change is the data bitmap, which
 * mkfs sized for the chunks it laid out (its last block's bits past the
 * end are set, so never handed out).  It cannot grow in place, because
 * the tree bitmap follows it, and its bits and the superblock's
 * data_chunks could not change atomically.  So the bitmap moves: a new
 * one, covering the new chunk count, is written to the end of the device
 * (chunk aligned, after the new data area), then one superblock write
 * switches to it:
 *
 *   0. nothing uncommitted; the journal is checkpointed (empty), so no
 *      replay can write an old bitmap image after the switch;
 *   1. the new bitmap (old bits copied, the new chunks clear, the bits
 *      past the new count set) is written home and flushed, in space no
 *      live structure uses: beyond the old data area and the old bitmap;
 *   2. the superblock (store_size, data bitmap position, data_chunks) is
 *      written: atomic (two copies, the higher valid seq wins).
 * A cut before 2 leaves the old store (the new bitmap is unused space); a
 * cut after leaves the grown one.  The old bitmap's blocks become unused:
 * in front of the data area after the first grow (a few blocks per 2 GiB
 * of data at 64 KiB chunks), and data chunks after a later one.
 *
 * The tree area does not grow: mkfs sized it for the worst case of its
 * data area (every chunk an exception, leaves a third full), which covers
 * about twice as many chunks at the usual fill.  Beyond that a store may
 * run out of tree blocks before data chunks: reported as
 * STORE_SHORT_META and handled by the full-store policy like a full data
 * area, never as a failure.
 */
#include "src/store/store_int.h"

#include "ioengine/ioengine.h"
#include "utils/err.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* Writes the data bitmap for NEW_N chunks at block NSTART: bits of units
 * below OLD_N from the current one, the rest clear up to NEW_N, set past
 * it.  Home and flushed, outside the journal (nothing else is pending).  */
static int write_bitmap(struct store *s, uint64_t nstart, uint64_t old_n, uint64_t new_n)
{
	const struct csnap_sb_engine *e = &s->sb.engine;
	uint64_t nblocks = sm_blocks_for(new_n);
	int ret = 0;

	for (uint64_t i = 0; i < nblocks && ret >= 0; i++) {
		struct bm_block *nb, *ob = NULL;
		if (i < e->dbitmap_blocks && (ret = bm_get(s->bm, e->dbitmap_start + i,
							    META_T_DBITMAP, &ob)) < 0)
			break;
		if ((ret = bm_get_new(s->bm, nstart + i, META_T_DBITMAP, &nb)) < 0) {
			bm_put(s->bm, ob);
			break;
		}
		uint8_t *d = nb->data + SM_HDR_SIZE;
		if (ob)
			memcpy(d, ob->data + SM_HDR_SIZE, META_BLOCK_SIZE - SM_HDR_SIZE);
		bm_put(s->bm, ob);
		uint64_t first = i * SM_BITS_PER_BLOCK;
		for (uint64_t b = 0; b < SM_BITS_PER_BLOCK; b++) {
			uint64_t u = first + b;
			uint8_t m = (uint8_t)(1u << (b % 8));
			if (u >= new_n)
				d[b / 8] |= m;
			else if (u >= old_n)
				d[b / 8] &= (uint8_t)~m;
		}
		bm_put(s->bm, nb);
		if ((i + 1) % 512 == 0)
			ret = bm_flush_home(s->bm);
	}
	if (ret >= 0)
		ret = bm_flush_home(s->bm);
	if (ret >= 0)
		ret = io_dev_flush(s->dev);
	return ret;
}

int store_grow(struct store *s, uint64_t *added)
{
	struct csnap_sb *sb = &s->sb;
	struct csnap_sb_engine *e = &sb->engine;
	uint64_t bs = META_BLOCK_SIZE, C = sb->chunk_size;
	int ret;

	*added = 0;
	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (store_txn_pending(s) || store_commit_inflight(s))
		return err_set(EBUSY, "the store has uncommitted changes: commit first");
	if ((ret = io_dev_refresh_size(s->dev)) < 0)
		return ret;
	uint64_t dsize = io_dev_size(s->dev);
	if (dsize < sb->store_size)
		return err_set(EINVAL, "the store device shrank (%" PRIu64 " bytes, the store has %"
			       PRIu64 "): a store cannot shrink", dsize, sb->store_size);
	/* first chunk no live structure uses: past the data area and past a
	 * bitmap an earlier grow put behind it */
	uint64_t free_from = e->data_chunks;
	uint64_t bm_end = (e->dbitmap_start + e->dbitmap_blocks) * bs;
	if (bm_end > e->data_offset && div_up(bm_end - e->data_offset, C) > free_from)
		free_from = div_up(bm_end - e->data_offset, C);
	uint64_t total = (dsize - e->data_offset) / C;	/* chunks the device holds */
	uint64_t k = div_up(sm_blocks_for(total) * bs, C);	/* the new bitmap's chunks */
	uint64_t n = total > k ? total - k : 0;
	if (n <= free_from || n <= e->data_chunks) {
		if (dsize == sb->store_size)
			return 0;	/* nothing to add */
		uint64_t need = free_from + 1 + k;
		return err_set(ENOSPC, "the store device grew by too little to add data chunks "
			       "(at least %" PRIu64 " more bytes are needed)",
			       (need > total ? need - total : 1) * C);
	}
	if ((ret = store_checkpoint(s)) < 0)
		return err_prefix(-ret, "grow: checkpoint");
	uint64_t nstart = (e->data_offset + n * C) / bs;
	if ((ret = write_bitmap(s, nstart, e->data_chunks, n)) < 0)
		return err_prefix(-ret, "grow: writing the new data bitmap");
	struct csnap_sb old = *sb;
	sb->store_size = dsize;
	e->dbitmap_start = nstart;
	e->dbitmap_blocks = sm_blocks_for(n);
	e->data_chunks = n;
	if ((ret = csnap_sb_write(s->dev, sb)) < 0) {
		/* on disk: the old layout or the new one, both whole */
		*sb = old;
		return err_prefix(-ret, "grow: writing the superblock");
	}
	struct spacemap *dsm;
	if ((ret = sm_open(s->bm, META_T_DBITMAP, e->dbitmap_start, e->data_chunks, &dsm)) < 0)
		return err_prefix(-ret, "grow: the new data bitmap (reopen the store)");
	sm_close(s->dsm);
	s->dsm = dsm;
	*added = n - old.engine.data_chunks;
	return 0;
}
