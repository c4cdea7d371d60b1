/*
 * src/store/superblock.h - reading, validating and writing the csnap
 * superblock (struct csnap_sb_disk in format.h) and its backup copy.
 *
 * Two copies live at CSNAP_SB_OFFSET and CSNAP_SB_BACKUP_OFFSET.  They are
 * identical except for blocknr.  A rewrite bumps seq and writes the primary,
 * flushes, then writes the backup and flushes, so a crash leaves at least
 * one valid copy; readers take the valid copy with the highest seq.
 *
 * The engine-owned `engine[]` area holds the layout of everything after
 * meta_offset and the journal checkpoint position; it is decoded into
 * struct csnap_sb_engine.  Others (lease/, server, CLI) need only the
 * common fields.
 */
#ifndef CSNAP_STORE_SUPERBLOCK_H
#define CSNAP_STORE_SUPERBLOCK_H

#include "src/store/format.h"
#include "utils/endian.h"

#include <stdbool.h>
#include <stdint.h>

struct io_dev;

#define CSNAP_ENGINE_VERSION	1

/* Decoded engine area.  Block numbers are absolute: byte offset / 4096. */
struct csnap_sb_engine {
	uint32_t version;		/* CSNAP_ENGINE_VERSION */
	uint32_t leaf_entry_size;	/* bytes per b-tree leaf entry */
	uint64_t journal_start;		/* first journal block */
	uint64_t journal_blocks;
	uint64_t journal_tail;		/* index (0..journal_blocks-1) of the
					 * oldest transaction replay needs */
	uint64_t journal_tail_seq;	/* its transaction sequence */
	uint64_t header_block;		/* engine state block (root, counts) */
	uint64_t table_start;		/* snapshot table blocks */
	uint64_t table_blocks;
	uint64_t dbitmap_start;		/* data chunk allocation bitmap */
	uint64_t dbitmap_blocks;
	uint64_t mbitmap_start;		/* b-tree node area bitmap */
	uint64_t mbitmap_blocks;
	uint64_t meta_start;		/* b-tree node area */
	uint64_t meta_blocks;
	uint64_t data_offset;		/* byte offset of store chunk 0 */
	uint64_t data_chunks;
};

/* Decoded superblock: host byte order.  */
struct csnap_sb {
	uint32_t version;
	uint64_t seq;
	uint8_t uuid[16];
	uint8_t secret[CSNAP_SECRET_LEN];
	uint64_t ctime;
	uint32_t chunk_size;
	uint32_t meta_block_size;
	uint64_t store_size;
	uint64_t origin_size;
	char origin_id[CSNAP_ORIGIN_ID_LEN + 1];	/* NUL-terminated */
	char label[CSNAP_LABEL_LEN];	/* store name, "" if none; a valid
					 * snapshot-style name (utils/snapname.h) */
	uint32_t max_snapshots;
	uint32_t mask_bits;
	uint32_t lease_sector_size;
	uint32_t lease_align;
	uint64_t lease_offset;
	uint64_t meta_offset;
	uint32_t flags;
	struct csnap_sb_engine engine;
};

/* Encode SB into a 4096-byte block destined for BLOCKNR (checksummed).  */
void csnap_sb_encode(const struct csnap_sb *sb, uint64_t blocknr, void *block);
/* Validate and decode one copy read from BLOCKNR.  -EINVAL (wrong magic,
 * checksum, blocknr, version, or insane fields) with err_set().  */
int csnap_sb_decode(const void *block, uint64_t blocknr, struct csnap_sb *out);

/* Sanity of the common (non-engine) fields, as decode checks them.  */
int csnap_sb_decode_check_common(const struct csnap_sb *sb);

/* 0 if this code may write a store with superblock SB (its format
 * version is the current one), else -EROFS with the one-line message
 * naming `csnap upgrade PATH` (older) that every writer gives.  */
int csnap_sb_writable(const struct csnap_sb *sb, const char *path);

/* Reads both copies, returns the valid one with the highest seq.
 * *bad_copies (may be NULL) gets a bit mask of invalid copies (1 = primary,
 * 2 = backup).  Fails only when neither copy is valid; the message then
 * gives the primary copy's reason.  */
int csnap_sb_read(struct io_dev *dev, struct csnap_sb *out, unsigned *bad_copies);
/* The same for a store named by path: opens it read-only, reads, closes.  */
int csnap_sb_read_path(const char *path, struct csnap_sb *out);
/* Bumps sb->seq and durably writes both copies (primary, flush, backup,
 * flush).  */
int csnap_sb_write(struct io_dev *dev, struct csnap_sb *sb);

/* The tag every metadata block of this store carries (bm.h: meta_hdr.tag),
 * derived from the store uuid.  Defined once, here.  */
static inline uint64_t csnap_sb_tag(const struct csnap_sb *sb)
{
	return get_le64(sb->uuid) ^ get_le64(sb->uuid + 8);
}

/* Lease area geometry for a store device with logical sector size SECTOR
 * (512 or 4096): fills lease_sector_size, lease_align, lease_offset.  */
int csnap_sb_lease_layout(struct csnap_sb *sb, unsigned sector);

#endif
