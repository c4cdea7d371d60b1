/*
 * src/store/mkfs.c - store_format(): lay out and write an empty engine.
 *
 * Layout from meta_offset, in 4 KiB blocks: journal, engine header,
 * snapshot table, data bitmap, tree bitmap, tree area; then the data
 * chunks from the next chunk boundary.  The tree area is sized for the
 * worst case (every data chunk an exception, leaves a third full), so it
 * cannot run out before the data area does; the usage counter blocks
 * (at most CNT_BLOCKS_MAX = 4) come out of its spare 2 * BTREE_MAX_DEPTH
 * blocks, so the layout is the same as version 1's.
 *
 * Order: both old superblock copies are zeroed first, every engine block
 * is written home and flushed, and only then the new superblock - an
 * interrupted mkstore leaves no valid store behind.
 */
#include "src/store/store_int.h"

#include "ioengine/ioengine.h"
#include "utils/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

static int layout(struct csnap_sb *sb)
{
	struct csnap_sb_engine *e = &sb->engine;
	uint64_t bs = META_BLOCK_SIZE, first = sb->meta_offset / bs;
	uint64_t total = sb->store_size / bs, C = sb->chunk_size;
	uint32_t esize = BE_MASK + sb->mask_bits / 8, leaf_cap = (META_BLOCK_SIZE - BTREE_NODE_HDR) / esize;

	if (total <= first + 64)
		return err_set(ENOSPC, "store too small: %llu bytes, need well over %llu",
			       (unsigned long long)sb->store_size, (unsigned long long)sb->meta_offset);
	e->version = CSNAP_ENGINE_VERSION;
	e->leaf_entry_size = esize;
	e->journal_start = first;
	/* ~1/16 of the store up to 64 MiB: big enough for large group commits */
	e->journal_blocks = (total - first) / 16;
	if (e->journal_blocks < 64)
		e->journal_blocks = 64;
	if (e->journal_blocks > 16384)
		e->journal_blocks = 16384;
	e->journal_tail = 0;
	e->journal_tail_seq = 1;
	e->header_block = e->journal_start + e->journal_blocks;
	e->table_start = e->header_block + 1;
	e->table_blocks = st_blocks_for(sb->max_snapshots);
	uint64_t fixed_end = e->table_start + e->table_blocks;
	if (fixed_end >= total)
		return err_set(ENOSPC, "store too small for its journal and snapshot table");
	/* blocks per data chunk, scaled by 1024 to stay in integers */
	uint64_t per = C / bs * 1024 + div_up(3 * 1024, leaf_cap) + 1;
	uint64_t n = (total - fixed_end) * 1024 / per;
	for (;;) {
		uint64_t leaves = div_up(n * 3, leaf_cap) + 1;
		uint64_t meta = leaves + div_up(leaves * 3, BTREE_INT_CAP) + 2 * BTREE_MAX_DEPTH + leaves / 8;
		e->dbitmap_start = fixed_end;
		e->dbitmap_blocks = sm_blocks_for(n ? n : 1);
		e->mbitmap_start = e->dbitmap_start + e->dbitmap_blocks;
		e->mbitmap_blocks = sm_blocks_for(meta);
		e->meta_start = e->mbitmap_start + e->mbitmap_blocks;
		e->meta_blocks = meta;
		e->data_offset = div_up((e->meta_start + meta) * bs, C) * C;
		if (n && e->data_offset + n * C <= sb->store_size)
			break;
		if (n == 0)
			return err_set(ENOSPC, "store too small to hold any data chunk");
		uint64_t over = e->data_offset + n * C > sb->store_size ?
			(e->data_offset + n * C - sb->store_size) / C : 0;
		n -= over ? (over < n ? over : n) : 1;
	}
	e->data_chunks = n;
	return 0;
}

int store_format(struct io_dev *dev, struct csnap_sb *sb)
{
	return store_format_as(dev, sb, CSNAP_FORMAT_VERSION);
}

int store_format_as(struct io_dev *dev, struct csnap_sb *sb, uint32_t version)
{
	struct bm *bm = NULL;
	struct spacemap *msm = NULL;
	struct btree t = { 0 };
	uint8_t *zero = NULL;
	int ret;

	if (version < CSNAP_FORMAT_VERSION_MIN || version > CSNAP_FORMAT_VERSION)
		return err_set(EINVAL, "cannot format version %u", version);
	sb->version = version;
	sb->meta_block_size = CSNAP_META_BLOCK_SIZE;
	sb->mask_bits = (sb->max_snapshots + 63) / 64 * 64;
	sb->seq = 0;
	if (sb->store_size > io_dev_size(dev))
		return err_set(EINVAL, "store size %llu exceeds the device (%llu bytes)",
			       (unsigned long long)sb->store_size, (unsigned long long)io_dev_size(dev));
	memset(&sb->engine, 0, sizeof sb->engine);
	if (sb->store_size <= sb->meta_offset)
		return err_set(ENOSPC, "store too small: %llu bytes, the lease area alone needs %llu",
			       (unsigned long long)sb->store_size, (unsigned long long)sb->meta_offset);
	ret = csnap_sb_decode_check_common(sb);
	if (ret < 0)
		return ret;
	ret = layout(sb);
	if (ret < 0)
		return ret;

	zero = io_buf_alloc(CSNAP_META_BLOCK_SIZE);
	if (!zero)
		return -ENOMEM;
	ret = io_dev_pwrite(dev, zero, CSNAP_META_BLOCK_SIZE, CSNAP_SB_OFFSET);
	if (ret >= 0)
		ret = io_dev_pwrite(dev, zero, CSNAP_META_BLOCK_SIZE, CSNAP_SB_BACKUP_OFFSET);
	if (ret >= 0)
		ret = io_dev_flush(dev);
	io_buf_free(zero);
	if (ret < 0)
		return err_prefix(-ret, "clearing old superblocks");

	const struct csnap_sb_engine *e = &sb->engine;
	ret = bm_create(dev, csnap_sb_tag(sb), 4096, false, &bm);
	if (ret < 0)
		return ret;
	ret = st_format(bm, e->table_start, sb->max_snapshots);
	if (ret >= 0)
		ret = sm_format(bm, META_T_DBITMAP, e->dbitmap_start, e->data_chunks, bm_flush_home, bm);
	if (ret >= 0)
		ret = sm_format(bm, META_T_MBITMAP, e->mbitmap_start, e->meta_blocks, bm_flush_home, bm);
	if (ret >= 0)
		ret = bm_flush_home(bm);
	if (ret >= 0)
		ret = sm_open(bm, META_T_MBITMAP, e->mbitmap_start, e->meta_blocks, &msm);
	if (ret >= 0) {
		btree_init(&t, bm, msm, e->meta_start, sb->mask_bits / 8);
		ret = btree_create(&t);
	}
	/* usage counters (version 2): all zero for an empty tree, valid from
	 * the start; version 1 had none */
	struct store_header hdr = { .next_id = 1, .cnt_valid = version >= 2,
				    .cnt_nblocks = version >= 2 ? cnt_blocks_for(sb->max_snapshots) : 0 };
	for (uint32_t i = 0; ret >= 0 && i < hdr.cnt_nblocks; i++) {
		uint64_t u;
		struct bm_block *cb;
		ret = sm_alloc(msm, &u);
		if (ret >= 0)
			ret = bm_get_new(bm, e->meta_start + u, META_T_COUNTERS, &cb);
		if (ret >= 0) {
			hdr.cnt_block[i] = e->meta_start + u;
			bm_put(bm, cb);
		}
	}
	if (ret >= 0) {
		struct bm_block *h;
		ret = bm_get_new(bm, e->header_block, META_T_HEADER, &h);
		if (ret >= 0) {
			hdr.root = t.root;
			hdr.height = t.height;
			hdr.nodes = t.nodes;
			store_header_encode(h->data, &hdr);
			bm_put(bm, h);
		}
	}
	if (ret >= 0)
		ret = bm_flush_home(bm);
	if (ret >= 0)
		ret = io_dev_flush(dev);
	if (ret >= 0)
		ret = csnap_sb_write(dev, sb);
	sm_close(msm);
	bm_destroy(bm);
	if (ret < 0)
		return err_prefix(-ret, "formatting store");
	return 0;
}
