/*
 * src/store/header.h - the engine header block (META_T_HEADER): the
 * b-tree's root and counts, the next snapshot id, the cleanup cursor and
 * where the usage counters live (counters.h).
 * One encoder and one decoder for it; mkfs writes the first one with
 * store_header_encode().
 * The layout (HDR_*) is in format.h.
 *
 * Invariant: decode(encode(h)) == h for every field; reserved bytes are
 * written as zero.
 */
#ifndef CSNAP_STORE_HEADER_H
#define CSNAP_STORE_HEADER_H

#include "src/store/format.h"
#include "src/store/superblock.h"

#include <stdbool.h>
#include <stdint.h>

struct store_header {
	uint64_t root;		/* tree root block */
	uint32_t height;	/* tree levels, 1 = the root is a leaf */
	uint64_t count;		/* exceptions */
	uint64_t nodes;		/* tree blocks in use */
	uint32_t next_id;	/* next snapshot id (never 0) */
	bool cleanup_active;
	uint64_t cur_o, cur_s;	/* cleanup cursor */
	/* usage counters (counters.h); all zero when absent */
	bool cnt_valid;
	uint32_t cnt_flags_raw;	/* as read (decode only), for the check */
	uint32_t cnt_nblocks;
	uint64_t cnt_multi;
	uint64_t cnt_block[CNT_BLOCKS_MAX];
};

/* Writes H into the header block's data D (the meta header is bm's).  */
void store_header_encode(uint8_t *d, const struct store_header *h);
void store_header_decode(const uint8_t *d, struct store_header *h);
/* 0 if H fits the layout E describes, else -EIO with a one-line reason. */
int store_header_check(const struct store_header *h, const struct csnap_sb_engine *e);

#endif
