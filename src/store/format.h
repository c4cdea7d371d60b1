/*
 * src/store/format.h - the csnap snapshot store's on-disk format.
 *
 * Defined once, here.  Every integer is little-endian (le16/le32/le64 from
 * utils/endian.h; convert at each use).  Every metadata block carries a
 * crc32c, its own block number and a sequence number, so torn, stale and
 * misdirected writes are detected on read and never trusted.
 *
 * Store device layout (byte offsets):
 *
 *   0            superblock (one 4 KiB block)
 *   64 KiB       backup superblock (identical except blocknr)
 *   lease_offset lease area, csnap_lease_area_size(align) bytes:
 *                  +0        sanlock lockspace (delta leases)
 *                  +align    sanlock "master" paxos resource
 *                  +2*align  lease-owner record (lease/record.h)
 *                lease_offset = 1 MiB for 512 B sectors (align 1 MiB),
 *                8 MiB for 4 KiB sectors (align 8 MiB).
 *   meta_offset  engine metadata and data chunks (see the engine's files);
 *                chunk-aligned.
 *
 * Fields of struct csnap_sb_disk are read by lease/, src/server/ and the
 * CLI; the engine owns the region from meta_offset on.
 */
#ifndef CSNAP_STORE_FORMAT_H
#define CSNAP_STORE_FORMAT_H

#include "utils/endian.h"

#include <stdint.h>

#define CSNAP_SB_MAGIC		0x3142534b414e5343ULL	/* "CSNAKSB1" little-endian */
#define CSNAP_FORMAT_VERSION	1
#define CSNAP_META_BLOCK_SIZE	4096
#define CSNAP_SB_OFFSET		0
#define CSNAP_SB_BACKUP_OFFSET	(64 * 1024)

#define CSNAP_CHUNK_MIN		(4 * 1024)
#define CSNAP_CHUNK_MAX		(1024 * 1024)
#define CSNAP_CHUNK_DEFAULT	(64 * 1024)

#define CSNAP_MAX_SNAPSHOTS_DEFAULT	256
#define CSNAP_MAX_SNAPSHOTS_LIMIT	1024

#define CSNAP_SECRET_LEN	32
#define CSNAP_ORIGIN_ID_LEN	64
#define CSNAP_LABEL_LEN		32	/* bytes on disk; a label is at most 31 */

/* Lease area: three regions of `align` bytes each.  */
#define CSNAP_LEASE_REGIONS	3
static inline uint64_t csnap_lease_area_size(uint32_t align) { return (uint64_t)align * CSNAP_LEASE_REGIONS; }

struct csnap_sb_disk {
	le64 magic;
	le32 version;
	le32 csum;		/* crc32c of the 4 KiB block with csum = 0 */
	le64 blocknr;		/* byte offset / 4096 where this copy lives */
	le64 seq;		/* incremented on every superblock rewrite */
	uint8_t uuid[16];	/* store identity; names the sanlock lockspace */
	uint8_t secret[CSNAP_SECRET_LEN];	/* cluster key for client auth */
	le64 ctime;		/* mkstore time, seconds since the epoch */
	le32 chunk_size;	/* bytes, power of two, CSNAP_CHUNK_MIN..MAX */
	le32 meta_block_size;	/* CSNAP_META_BLOCK_SIZE */
	le64 store_size;	/* bytes of the store device at mkstore/grow */
	le64 origin_size;	/* bytes of the origin volume */
	uint8_t origin_id[CSNAP_ORIGIN_ID_LEN];	/* NUL-padded identity string of
						 * the origin (blkid UUID, or
						 * "size:<bytes>" for files) */
	le32 max_snapshots;	/* snapshot table capacity */
	le32 mask_bits;		/* width of exception share masks */
	le32 lease_sector_size;	/* 512 or 4096 */
	le32 lease_align;	/* bytes: 1 MiB (512) or 8 MiB (4096) */
	le64 lease_offset;	/* start of the lease area */
	le64 meta_offset;	/* first byte owned by the engine */
	le32 flags;
	le32 pad0;
	uint8_t engine[3840];	/* engine-owned layout description */
	char label[CSNAP_LABEL_LEN];	/* the store's name (mkstore --name),
					 * NUL-padded; all zero: unnamed.  Was
					 * reserved (written as zeroes) before,
					 * so older stores read as unnamed and
					 * the format version is unchanged */
	uint8_t reserved[4096 - 3840 - 216 - CSNAP_LABEL_LEN];
} __attribute__((packed));

_Static_assert(sizeof(struct csnap_sb_disk) == CSNAP_META_BLOCK_SIZE,
	       "superblock must be exactly one metadata block");

#endif
