/*
 * tests/fuzz/fuzz_store_meta.c - every metadata block decoder of the
 * snapshot store (src/store): superblock copies, engine header, snapshot
 * table, data and tree-area bitmaps, b-tree leaves and internal nodes,
 * journal descriptors and images; through the real entry points: open
 * (validation, journal replay), the engine calls the server makes, and
 * check.
 *
 * Input: byte 0 flags (bit 0: keep patched bytes raw, no checksum
 * repair; bit 1: open read-only; bit 2: the program may use the later
 * operations, store_ops.h), byte 1 the number of patches (mod 32),
 * then per patch le16 block index (mod the image's metadata blocks: 0 and
 * 1 are the superblock copies), le16 offset, u8 length - 1 (mod 64) and
 * the bytes; the rest is a program of store operations (store_ops.h).
 * The image is store_image.h's.
 *
 * CSNAP_FUZZ_SEEDS=DIR writes seed inputs (one patch into each kind of
 * block, plus a patch-free run of every operation) and exits.
 */
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/store_image.h"
#include "tests/fuzz/store_ops.h"

#include "src/store/btree.h"
#include "src/store/snaptable.h"

static struct fimg img;

static void cleanup(void)
{
	fi_cleanup(&img);
}

static const uint8_t ops[] = {
	0, 10, 0, 3,		/* origin write 10..13 */
	2, 40, 0, 7, 0,		/* read snapshot #0 40..47 */
	1, 3, 0, 1, 1,		/* write snapshot #1 chunk 3..4 */
	3, 9, 0, 0,		/* create */
	4, 0, 0, 0, 2,		/* delete snapshot #2 */
	5, 0, 0, 9,		/* cleanup */
	6, 0, 0, 0,		/* commit */
	7, 0, 0, 0,		/* usage */
	8, 0, 0, 1, 0,		/* changed #0 vs origin */
	10, 1, 0, 0, 1,		/* priority, victim */
	9, 0, 0, 1,		/* checkpoint */
	11, 0, 0, 0,		/* info, check */
};

/* The later operations (flags bit 2): clone, rollback and the rest.  */
static const uint8_t later_ops[] = {
	3, 5, 0, 8,		/* create */
	0, 0, 0, 7,		/* origin write 0..7 */
	6, 0, 0, 0,		/* commit */
	14, 0, 0, 1, 0,		/* rollback to #0, keeping it */
	6, 0, 0, 0,
	14, 0, 0, 15,		/* rollback steps (no snapshot named) */
	14, 0, 0, 15,
	14, 0, 0, 15,
	15, 0, 0, 1,		/* origin read */
	12, 7, 0, 8, 1,		/* clone snapshot #1 */
	13, 0, 0, 15,		/* clone steps */
	6, 0, 0, 0,
	13, 0, 0, 15,
	15, 8, 0, 3,		/* origin resize by 8 chunks */
	15, 9, 0, 0, 0,		/* rename #0 */
	15, 1, 0, 2, 0,		/* use count of #0 */
	6, 0, 0, 0,
	11, 0, 0, 0,		/* info, check */
};

/* The pipelined commit (flags bit 2, op 6 with an even count): changes
 * while a commit is in flight, then its end.  */
static const uint8_t pipelined_ops[] = {
	0, 20, 0, 3,		/* origin write 20..23 */
	6, 0, 0, 1,		/* commit begin */
	0, 30, 0, 3,		/* origin write meanwhile */
	3, 6, 0, 8,		/* create meanwhile */
	6, 0, 0, 1,		/* commit end */
	1, 3, 0, 1, 1,		/* write snapshot #1 */
	6, 0, 0, 1,		/* begin */
	9, 0, 0, 1,		/* abort (the new transaction only) */
	6, 0, 0, 0,		/* end */
	6, 0, 0, 1,		/* begin, ended by the program's end */
};

static void make_seeds(const char *dir)
{
	const struct csnap_sb_engine *e = &img.sb.engine;
	struct { uint64_t blocknr; uint16_t off; uint8_t byte; } p[] = {
		{ 0, 0, 0 },					/* none: ops only */
		{ 0, SB_ORIGIN_SIZE, 0x10 },			/* sb: origin size */
		{ 16, SB_META_OFFSET, 1 },			/* backup sb */
		{ e->header_block, HDR_HEIGHT, 3 },			/* tree height */
		{ e->header_block, HDR_NEXT_ID, 1 },		/* next id */
		{ e->table_start, ST_HDR_SIZE + SL_BIT, 9 },	/* slot 0: bit */
		{ e->table_start, ST_HDR_SIZE + ST_SLOT_SIZE + SL_FLAGS, 3 },	/* slot 1: flags */
		{ e->dbitmap_start, SM_HDR_SIZE, 0xff },		/* data bitmap */
		{ e->mbitmap_start, SM_HDR_SIZE, 0 },		/* tree bitmap */
		{ e->meta_start, BT_NR, 0xff },		/* a node's nr */
		{ e->meta_start + 1, BT_LEVEL, 1 },		/* a node's level */
		{ e->meta_start + 2, BTREE_NODE_HDR + BE_STORE, 0x40 },		/* an entry */
		{ e->journal_start + e->journal_tail, JD_NR, 2 },	/* descriptor nr */
		{ e->journal_start + e->journal_tail + 1, BTREE_NODE_HDR, 1 },	/* image */
	};
	uint8_t b[256];

	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
		size_t n = 0;
		uint64_t idx = p[i].blocknr == 0 ? 0 : p[i].blocknr == 16 ? 1 :
			       p[i].blocknr - img.meta_first + 2;

		b[n++] = 0;
		b[n++] = i ? 1 : 0;
		if (i) {
			b[n++] = (uint8_t)idx;
			b[n++] = (uint8_t)(idx >> 8);
			b[n++] = (uint8_t)p[i].off;
			b[n++] = (uint8_t)(p[i].off >> 8);
			b[n++] = 0;
			b[n++] = p[i].byte;
		}
		memcpy(b + n, ops, sizeof ops);
		n += sizeof ops;
		fuzz_write_seed(dir, (int)i, b, n);
	}
	b[0] = 4;
	b[1] = 0;
	memcpy(b + 2, later_ops, sizeof later_ops);
	fuzz_write_seed(dir, (int)(sizeof p / sizeof p[0]), b, 2 + sizeof later_ops);
	memcpy(b + 2, pipelined_ops, sizeof pipelined_ops);
	fuzz_write_seed(dir, (int)(sizeof p / sizeof p[0]) + 1, b, 2 + sizeof pipelined_ops);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup("fuzz_store_meta");
	fi_build(&img);
	atexit(cleanup);
	if (getenv("CSNAP_FUZZ_SEEDS"))
		make_seeds(getenv("CSNAP_FUZZ_SEEDS"));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct store_open_opts o = { .cache_bytes = 1 << 20 };
	uint8_t flags = fuzz_u8(&in), np = fuzz_u8(&in) % 32;
	struct store *s;

	fi_reset(&img);
	for (uint8_t k = 0; k < np; k++) {
		uint64_t i = fuzz_u16(&in) % fi_nblocks(&img);
		uint16_t off = fuzz_u16(&in);
		uint8_t bytes[64];
		size_t len = fuzz_bytes(&in, bytes, 1 + fuzz_u8(&in) % 64);

		fi_patch(&img, i, off, bytes, len);
	}
	if (!(flags & 1))
		fi_fix(&img);
	fi_write(&img);
	o.readonly = flags & 2;
	if (store_open(img.path, &o, &s) == 0) {
		if (fo_run(s, &in, flags & 4))
			store_close_nockpt(s);
		else
			store_close(s);
	} else {
		FUZZ_CHECK(err_get()[0] && !strchr(err_get(), '\n'), "refusal without a reason");
	}
	fi_check_untouched(&img);
	return 0;
}
