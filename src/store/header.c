/*
 * src/store/header.c - encoder, decoder and sanity check of the engine
 * header block (layout in header.h).
 */
#include "src/store/header.h"

#include "src/store/btree.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <string.h>

void store_header_encode(uint8_t *d, const struct store_header *h)
{
	memset(d + HDR_ROOT, 0, HDR_END - HDR_ROOT);	/* (reserved too) */
	put_le64(d + HDR_ROOT, h->root);
	put_le32(d + HDR_HEIGHT, h->height);
	put_le64(d + HDR_COUNT, h->count);
	put_le64(d + HDR_NODES, h->nodes);
	put_le32(d + HDR_NEXT_ID, h->next_id);
	put_le32(d + HDR_CLEANUP, h->cleanup_active);
	put_le64(d + HDR_CUR_O, h->cur_o);
	put_le64(d + HDR_CUR_S, h->cur_s);
	put_le32(d + HDR_CNT_FLAGS, h->cnt_valid ? HDR_CNT_VALID : 0);
	put_le32(d + HDR_CNT_NBLOCKS, h->cnt_nblocks);
	put_le64(d + HDR_CNT_MULTI, h->cnt_multi);
	for (uint32_t i = 0; i < CNT_BLOCKS_MAX; i++)
		put_le64(d + HDR_CNT_BLOCK + 8 * i, h->cnt_block[i]);
}

void store_header_decode(const uint8_t *d, struct store_header *h)
{
	h->root = get_le64(d + HDR_ROOT);
	h->height = get_le32(d + HDR_HEIGHT);
	h->count = get_le64(d + HDR_COUNT);
	h->nodes = get_le64(d + HDR_NODES);
	h->next_id = get_le32(d + HDR_NEXT_ID);
	h->cleanup_active = get_le32(d + HDR_CLEANUP) != 0;
	h->cur_o = get_le64(d + HDR_CUR_O);
	h->cur_s = get_le64(d + HDR_CUR_S);
	h->cnt_flags_raw = get_le32(d + HDR_CNT_FLAGS);
	h->cnt_valid = (h->cnt_flags_raw & HDR_CNT_VALID) != 0;
	h->cnt_nblocks = get_le32(d + HDR_CNT_NBLOCKS);
	h->cnt_multi = get_le64(d + HDR_CNT_MULTI);
	for (uint32_t i = 0; i < CNT_BLOCKS_MAX; i++)
		h->cnt_block[i] = get_le64(d + HDR_CNT_BLOCK + 8 * i);
}

int store_header_check(const struct store_header *h, const struct csnap_sb_engine *e)
{
	if (h->root < e->meta_start || h->root - e->meta_start >= e->meta_blocks ||
	    h->height < 1 || h->height > BTREE_MAX_DEPTH ||
	    h->nodes > e->meta_blocks || h->count > e->data_chunks || h->next_id == 0)
		return err_set(EIO, "engine header is corrupt (root %llu, height %u)",
			       (unsigned long long)h->root, h->height);
	/* the counters: absent (all zero) or a complete, in-area block list */
	if (h->cnt_flags_raw & ~(uint32_t)HDR_CNT_VALID)
		return err_set(EIO, "engine header is corrupt (unknown counter flags %#x)", h->cnt_flags_raw);
	if (h->cnt_valid && (h->cnt_nblocks == 0 || h->cnt_nblocks > CNT_BLOCKS_MAX ||
			     h->cnt_multi > h->count))
		return err_set(EIO, "engine header is corrupt (%u usage counter blocks, %llu shared exceptions)",
			       h->cnt_nblocks, (unsigned long long)h->cnt_multi);
	for (uint32_t i = 0; i < CNT_BLOCKS_MAX; i++) {
		uint64_t b = h->cnt_block[i];
		bool used = h->cnt_valid && i < h->cnt_nblocks;
		if (used ? (b < e->meta_start || b - e->meta_start >= e->meta_blocks) : b != 0)
			return err_set(EIO, "engine header is corrupt (usage counter block %u at %llu)",
				       i, (unsigned long long)b);
	}
	if (!h->cnt_valid && (h->cnt_nblocks || h->cnt_multi))
		return err_set(EIO, "engine header is corrupt (usage counters marked absent but set)");
	return 0;
}
