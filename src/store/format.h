/*
 * src/store/format.h - the csnap snapshot store's on-disk format.
 *
 * Defined once, here: every on-disk structure of the store is a list of
 * named byte offsets below, and each has one encoder/decoder pair that
 * reads and writes it field by field with get_le64()/put_le64() and kin from
 * utils/endian.h (little-endian on any host):
 *   superblock           csnap_sb_encode/decode      superblock.c
 *   meta block header    bm_seal/bm_validate         bm.c
 *   engine header        store_header_encode/decode  header.c
 *   journal descriptor   (commit / read_txn)         journal.c
 *   snapshot table slot  encode/decode               snaptable.c
 *   space map block      (bits after SM_HDR_SIZE)    spacemap.c
 *   b-tree node, entries node and entry accessors    btree.h/btree.c
 * The lease area's records are sanlock's (lease/leader.c) and the
 * lease-owner record's (lease/record.c).  Every metadata block carries a
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
 *                  +2*align  lease-owner record (lease/record.c)
 *                lease_offset = 1 MiB for 512 B sectors (align 1 MiB),
 *                8 MiB for 4 KiB sectors (align 8 MiB).
 *   meta_offset  engine metadata and data chunks (see mkfs.c): journal,
 *                engine header, snapshot table, data bitmap, tree
 *                bitmap, tree area, then the data chunks; chunk-aligned.
 *
 * The superblock's fields are read by lease/, src/server/ and the CLI (as
 * the decoded struct csnap_sb); the engine owns the region from
 * meta_offset on.  Changing any offset here changes the format: the unit
 * tests pin them (test_store_superblock, test_store_header).
 */
#ifndef CSNAP_STORE_FORMAT_H
#define CSNAP_STORE_FORMAT_H

#include "utils/endian.h"

#include <stdint.h>

#define CSNAP_SB_MAGIC		0x3142534b414e5343ULL	/* "CSNAKSB1" little-endian */
/* Format versions (SB_VERSION).  This code writes CSNAP_FORMAT_VERSION and
 * reads CSNAP_FORMAT_VERSION_MIN..CSNAP_FORMAT_VERSION; a store of an older
 * version opens read-only until `csnap upgrade` (src/store/upgrade.c, one
 * step per structure a version adds) moves it up; a newer one is refused.
 *   1  the format until this session
 *   2  additions of this session; every field added is such that all-zero
 *      means "absent / as version 1 had it", so an upgrade at most
 *      initialises structures (upgrade.c lists the steps); among them
 *      a snapshot of a snapshot being made: slot flag STORE_SNAP_CLONING
 *      (0x8) and its cursor SL_CLONE_NEXT (zero in version 1: no step)
 * The engine area's own version (E_VERSION, CSNAP_ENGINE_VERSION) names
 * the encoding of the engine layout fields and has not changed; it is not
 * the format version.  */
#define CSNAP_FORMAT_VERSION	2u
#define CSNAP_FORMAT_VERSION_MIN	1u
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

/* Superblock (CSNAP_META_BLOCK_SIZE bytes; unnamed bytes are zero).  */
enum {
	SB_MAGIC = 0,		/* le64 CSNAP_SB_MAGIC */
	SB_VERSION = 8,		/* le32 CSNAP_FORMAT_VERSION */
	SB_CSUM = 12,		/* le32 crc32c of the block with this field 0 */
	SB_BLOCKNR = 16,	/* le64 byte offset / 4096 where this copy lives */
	SB_SEQ = 24,		/* le64 incremented on every rewrite */
	SB_UUID = 32,		/* u8[16] store identity; names the lockspace */
	SB_SECRET = 48,		/* u8[CSNAP_SECRET_LEN] cluster key for client auth */
	SB_CTIME = 80,		/* le64 mkstore time, seconds since the epoch */
	SB_CHUNK_SIZE = 88,	/* le32 bytes, power of two, CSNAP_CHUNK_MIN..MAX */
	SB_META_BLOCK_SIZE = 92,	/* le32 CSNAP_META_BLOCK_SIZE */
	SB_STORE_SIZE = 96,	/* le64 bytes of the store device at mkstore/grow */
	SB_ORIGIN_SIZE = 104,	/* le64 bytes of the origin volume */
	SB_ORIGIN_ID = 112,	/* char[CSNAP_ORIGIN_ID_LEN] NUL-padded identity of
				 * the origin (blkid UUID, or "size:<bytes>") */
	SB_MAX_SNAPSHOTS = 176,	/* le32 snapshot table capacity */
	SB_MASK_BITS = 180,	/* le32 width of exception share masks */
	SB_LEASE_SECTOR = 184,	/* le32 512 or 4096 */
	SB_LEASE_ALIGN = 188,	/* le32 1 MiB (512) or 8 MiB (4096) */
	SB_LEASE_OFFSET = 192,	/* le64 start of the lease area */
	SB_META_OFFSET = 200,	/* le64 first byte owned by the engine */
	SB_FLAGS = 208,		/* le32 */
	SB_ENGINE = 216,	/* SB_ENGINE_SIZE bytes: the engine layout (E_*) */
	SB_ENGINE_SIZE = 3840,
	SB_LABEL = 4056,	/* char[CSNAP_LABEL_LEN] the store's name (mkstore
				 * --name), NUL-padded; all zero: unnamed.  Was
				 * reserved (zero) before, so older stores read
				 * as unnamed and the version is unchanged */
	SB_END = SB_LABEL + CSNAP_LABEL_LEN,	/* 8 reserved bytes follow */
};
_Static_assert((int)SB_ENGINE + (int)SB_ENGINE_SIZE == (int)SB_LABEL && SB_END <= CSNAP_META_BLOCK_SIZE,
	       "superblock fields must fit one metadata block");

/* The engine layout inside the superblock, from SB_ENGINE (all le64 block
 * numbers or counts unless marked).  */
enum {
	E_VERSION = 0,		/* le32 CSNAP_ENGINE_VERSION; 0: never formatted */
	E_LEAF_ENTRY = 4,	/* le32 b-tree leaf entry size */
	E_JSTART = 8, E_JBLOCKS = 16,	/* journal area */
	E_JTAIL = 24, E_JTAIL_SEQ = 32,	/* oldest live transaction */
	E_HEADER = 40,		/* engine header block */
	E_TSTART = 48, E_TBLOCKS = 56,	/* snapshot table */
	E_DBSTART = 64, E_DBBLOCKS = 72,	/* data chunk bitmap */
	E_MBSTART = 80, E_MBBLOCKS = 88,	/* tree area bitmap */
	E_MSTART = 96, E_MBLOCKS = 104,	/* tree area */
	E_DOFF = 112,		/* byte offset of the first data chunk */
	E_DCHUNKS = 120,	/* data chunks */
	E_END = 128,
};
_Static_assert((int)E_END <= (int)SB_ENGINE_SIZE, "engine layout must fit its field");

/* Every engine metadata block (4 KiB) starts with this header; bm.c seals
 * and validates it.  */
enum {
	META_CSUM = 0,		/* le32 crc32c of bytes [4, 4096) */
	META_TYPE = 4,		/* le32 META_T_* */
	META_BLOCKNR = 8,	/* le64 where this block lives (home location) */
	META_SEQ = 16,		/* le64 transaction that last wrote it */
	META_TAG = 24,		/* le64 store identity, csnap_sb_tag() */
	META_HDR_SIZE = 32,
};

enum meta_type {
	META_T_JDESC	= 0x4a44534e,	/* journal descriptor */
	META_T_HEADER	= 0x4844534e,	/* engine state */
	META_T_TABLE	= 0x5442534e,	/* snapshot table */
	META_T_DBITMAP	= 0x4244534e,	/* data chunk bitmap */
	META_T_MBITMAP	= 0x424d534e,	/* tree area bitmap */
	META_T_LEAF	= 0x464c534e,	/* b-tree leaf */
	META_T_INTERNAL	= 0x4e49534e,	/* b-tree internal node */
	META_T_COUNTERS	= 0x4e43534e,	/* per-snapshot usage counters */
};

/* Engine header block (META_T_HEADER), after the meta header.  */
enum {
	HDR_ROOT = 32,		/* le64 tree root block */
	HDR_HEIGHT = 40,	/* le32 tree levels (44: le32 reserved, zero) */
	HDR_COUNT = 48,		/* le64 exceptions */
	HDR_NODES = 56,		/* le64 tree blocks in use */
	HDR_NEXT_ID = 64,	/* le32 next snapshot id */
	HDR_CLEANUP = 68,	/* le32 cleanup pass running (0/1) */
	HDR_CUR_O = 72,		/* le64 cleanup cursor: origin chunk */
	HDR_CUR_S = 80,		/* le64 cleanup cursor: store chunk */
	/* Usage counters (counters.h).  All zero in a store made before
	 * they existed: "absent", until check --repair-counters builds them. */
	HDR_CNT_FLAGS = 88,	/* le32 HDR_CNT_VALID; other bits zero */
	HDR_CNT_NBLOCKS = 92,	/* le32 counter blocks (cnt_blocks_for(max_snapshots)) */
	HDR_CNT_MULTI = 96,	/* le64 exceptions whose mask has two bits or more */
	HDR_CNT_BLOCK = 104,	/* le64[CNT_BLOCKS_MAX] counter blocks (tree area) */
	HDR_END = 136,
};
#define HDR_CNT_VALID	0x1

/* Usage counter block (META_T_COUNTERS, allocated in the tree area): per
 * snapshot table slot i, entry i % CNT_PER_BLOCK of counter block
 * i / CNT_PER_BLOCK holds the slot's unique and shared chunk counts.  */
enum {
	CNT_HDR_SIZE = 32,	/* the meta header; entries start here */
	CNT_ESIZE = 12,
	CE_UNIQUE = 0,		/* le48 exceptions whose mask is exactly {slot} */
	CE_SHARED = 6,		/* le48 exceptions naming the slot and another */
};
#define CNT_PER_BLOCK	((CSNAP_META_BLOCK_SIZE - CNT_HDR_SIZE) / CNT_ESIZE)
#define CNT_BLOCKS_MAX	((CSNAP_MAX_SNAPSHOTS_LIMIT + CNT_PER_BLOCK - 1) / CNT_PER_BLOCK)
_Static_assert((int)HDR_CNT_BLOCK + 8 * CNT_BLOCKS_MAX == (int)HDR_END, "counter block list fits the header");

/* Journal descriptor block (META_T_JDESC; its meta header's seq is the
 * transaction's), followed in the log by the JD_NR block images it lists
 * (each a sealed metadata block, written home on checkpoint).  */
enum {
	JD_NR = 32,		/* le32 images this descriptor lists */
	JD_FLAGS = 36,		/* le32 JD_LAST on a transaction's last one */
	JD_INDEX = 40,		/* le32 descriptor number within the transaction */
	JD_ENTRIES = 48,	/* entries of JE_SIZE bytes: */
	JE_BLOCKNR = 0,		/*   le64 home block of the image */
	JE_CSUM = 8,		/*   le32 crc32c of the whole image */
	JE_SIZE = 12,
};
#define JD_LAST		0x1
#define JOURNAL_DESC_ENTRIES ((CSNAP_META_BLOCK_SIZE - JD_ENTRIES) / JE_SIZE)

/* Snapshot table block (META_T_TABLE): ST_SLOT_SIZE-byte slots from
 * ST_HDR_SIZE; slot i describes the snapshot owning mask bit i.  */
enum {
	ST_HDR_SIZE = 64,
	ST_SLOT_SIZE = 128,
	SL_ID = 0,		/* le32 snapshot id, 0: free slot (all zero) */
	SL_BIT = 4,		/* le32 share mask bit */
	SL_FLAGS = 8,		/* le32 STORE_SNAP_* | ST_CLEANING */
	SL_USECOUNT = 12,	/* le32 */
	SL_CTIME = 16,		/* le64 seconds since the epoch */
	SL_PRIORITY = 24,	/* le32 (signed) */
	SL_PARENT = 28,		/* le32 parent snapshot id */
	SL_ORIGIN_CHUNKS = 32,	/* le64 origin size when taken, in chunks */
	SL_NAME = 40,		/* char[64] NUL-terminated and -padded */
	SL_NAME_SIZE = 64,
	SL_REQ_ID = 104,	/* u8[16] admin request that created it (0: none;
				 * older stores have zero) */
	SL_CLONE_NEXT = 120,	/* le64 snapshot of a snapshot being made
				 * (STORE_SNAP_CLONING): the first origin chunk
				 * its walk has not done yet; zero otherwise
				 * (was reserved, zero, before) */
	SL_RB_CURSOR = 120,	/* le64 the same bytes in the rollback source slot
				 * (ST_ROLLBACK, rollback.c): origin chunks below
				 * it are rolled back (the two kinds of slot
				 * exclude each other) */
};
#define ST_SLOTS_PER_BLOCK	((CSNAP_META_BLOCK_SIZE - ST_HDR_SIZE) / ST_SLOT_SIZE)

/* Space map block (META_T_DBITMAP / META_T_MBITMAP): bits from
 * SM_HDR_SIZE, as le64 words, bit u%64 of word u/64 (1: in use).  */
enum { SM_HDR_SIZE = 64 };
#define SM_BITS_PER_BLOCK	((CSNAP_META_BLOCK_SIZE - SM_HDR_SIZE) * 8)

/* B-tree node (META_T_LEAF / META_T_INTERNAL).  Leaf entries: key then the
 * share mask (mask_bits / 8 bytes); internal entries: key then child.  */
enum {
	BT_NR = 32,		/* le32 entries */
	BT_LEVEL = 36,		/* le32 0 = leaf */
	BTREE_NODE_HDR = 48,	/* entries start here */
	BE_ORIGIN = 0,		/* le64 key: origin chunk */
	BE_STORE = 8,		/* le64 key: store chunk */
	BE_MASK = 16,		/* leaf: u8[mask bytes] share mask (le64 words) */
	BE_CHILD = 16,		/* internal: le64 child block */
	BTREE_INT_ESIZE = 24,
};

#endif
