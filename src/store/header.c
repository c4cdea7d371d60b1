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
}

int store_header_check(const struct store_header *h, const struct csnap_sb_engine *e)
{
	if (h->root < e->meta_start || h->root - e->meta_start >= e->meta_blocks ||
	    h->height < 1 || h->height > BTREE_MAX_DEPTH ||
	    h->nodes > e->meta_blocks || h->count > e->data_chunks || h->next_id == 0)
		return err_set(EIO, "engine header is corrupt (root %llu, height %u)",
			       (unsigned long long)h->root, h->height);
	return 0;
}
