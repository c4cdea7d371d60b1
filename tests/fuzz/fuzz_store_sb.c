/*
 * tests/fuzz/fuzz_store_sb.c - the superblock decoder
 * (src/store/superblock.c), which every csnap command, the server and
 * lease/ run on whatever a device holds.  Whatever decodes must satisfy
 * the geometry the engine then trusts (regions inside the store, data
 * after the metadata; a journal tail inside the journal; chunk size a
 * power of two in range; mask bits for every snapshot), and must encode
 * and decode to the same superblock.
 *
 * Input: the 4 KiB block (zero-padded).  The harness writes the right
 * checksum unless the csum field is 0xffffffff.  The block is decoded at
 * the block number it names (bit 7 of byte 8, the version, set: at 0).
 *
 * CSNAP_FUZZ_SEEDS=DIR writes both superblock copies of store_image.h's
 * store and exits.
 */
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/store_image.h"

static void make_seeds(const char *dir)
{
	static struct fimg img;
	char path[512];
	FILE *f;

	fi_build(&img);
	for (int c = 0; c < 2; c++) {
		snprintf(path, sizeof path, "%s/seed-%02d", dir, c);
		f = fopen(path, "w");
		if (!f || fwrite(img.sbc[c], 1, META_BLOCK_SIZE, f) != META_BLOCK_SIZE || fclose(f)) {
			perror(path);
			exit(1);
		}
	}
	fi_cleanup(&img);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup("fuzz_store_sb");
	if (getenv("CSNAP_FUZZ_SEEDS"))
		make_seeds(getenv("CSNAP_FUZZ_SEEDS"));
	return 0;
}

static bool inside(uint64_t start, uint64_t n, uint64_t lo, uint64_t hi)
{
	return start >= lo && n <= hi - lo && start - lo <= hi - lo - n;
}

static void check_geometry(const struct csnap_sb *sb)
{
	const struct csnap_sb_engine *e = &sb->engine;
	uint64_t first = sb->meta_offset / META_BLOCK_SIZE, end = sb->store_size / META_BLOCK_SIZE;

	FUZZ_CHECK(sb->chunk_size >= CSNAP_CHUNK_MIN && sb->chunk_size <= CSNAP_CHUNK_MAX &&
		   !(sb->chunk_size & (sb->chunk_size - 1)), "chunk size %u", sb->chunk_size);
	FUZZ_CHECK(sb->meta_block_size == CSNAP_META_BLOCK_SIZE, "meta block size");
	FUZZ_CHECK(sb->max_snapshots >= 1 && sb->max_snapshots <= CSNAP_MAX_SNAPSHOTS_LIMIT,
		   "max snapshots %u", sb->max_snapshots);
	FUZZ_CHECK(sb->lease_offset >= CSNAP_SB_BACKUP_OFFSET + CSNAP_META_BLOCK_SIZE &&
		   inside(sb->lease_offset, csnap_lease_area_size(sb->lease_align), 0,
			  sb->meta_offset) &&
		   sb->meta_offset % META_BLOCK_SIZE == 0 && sb->meta_offset <= sb->store_size,
		   "lease area / meta offset");
	if (e->version == 0)	/* mkstore in progress: the engine refuses it */
		return;
	FUZZ_CHECK(sb->mask_bits >= sb->max_snapshots && sb->mask_bits <= CSNAP_MAX_SNAPSHOTS_LIMIT &&
		   sb->mask_bits % 64 == 0, "snapshots %u mask bits %u", sb->max_snapshots,
		   sb->mask_bits);
	FUZZ_CHECK(e->journal_blocks > 1 && inside(e->journal_start, e->journal_blocks, first, end) &&
		   e->journal_tail < e->journal_blocks, "journal");
	FUZZ_CHECK(inside(e->header_block, 1, first, end) &&
		   inside(e->table_start, e->table_blocks, first, end) &&
		   inside(e->dbitmap_start, e->dbitmap_blocks, first, end) &&
		   inside(e->mbitmap_start, e->mbitmap_blocks, first, end) &&
		   inside(e->meta_start, e->meta_blocks, first, end), "a region outside the store");
	FUZZ_CHECK(e->journal_start + e->journal_blocks <= e->header_block ||
		   e->header_block < e->journal_start, "journal and header overlap");
	FUZZ_CHECK(e->data_offset % sb->chunk_size == 0 &&
		   (!e->data_chunks || e->data_offset >= (e->meta_start + e->meta_blocks) * META_BLOCK_SIZE) &&
		   e->data_offset <= sb->store_size &&
		   e->data_chunks <= (sb->store_size - e->data_offset) / sb->chunk_size,
		   "data area");
	/* only the data bitmap (moved by store_grow) may lie behind the data */
	uint64_t dfirst = e->data_offset / META_BLOCK_SIZE;
	FUZZ_CHECK(!e->data_chunks ||
		   (e->journal_start + e->journal_blocks <= dfirst && e->header_block < dfirst &&
		    e->table_start + e->table_blocks <= dfirst &&
		    e->mbitmap_start + e->mbitmap_blocks <= dfirst &&
		    (e->dbitmap_start + e->dbitmap_blocks <= dfirst ||
		     e->dbitmap_start >= dfirst + e->data_chunks * (sb->chunk_size / META_BLOCK_SIZE))),
		   "an area inside or after the data");
	FUZZ_CHECK(e->leaf_entry_size == 16 + sb->mask_bits / 8, "leaf entry size");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t blk[META_BLOCK_SIZE], again[META_BLOCK_SIZE];
	struct csnap_sb sb, sb2;
	uint64_t blocknr;

	memset(blk, 0, sizeof blk);
	memcpy(blk, data, size < sizeof blk ? size : sizeof blk);
	if (get_le32(blk + SB_CSUM) != 0xffffffffu)
		fi_fix_sb(blk);
	blocknr = blk[SB_VERSION] & 0x80 ? 0 : get_le64(blk + SB_BLOCKNR);
	if (csnap_sb_decode(blk, blocknr, &sb) < 0) {
		FUZZ_CHECK(err_get()[0] && !strchr(err_get(), '\n'), "refusal without a reason");
		return 0;
	}
	FUZZ_CHECK(strlen(sb.origin_id) <= CSNAP_ORIGIN_ID_LEN, "origin id unterminated");
	check_geometry(&sb);
	/* bytes after the origin id's NUL are not part of it */
	memset(sb.origin_id + strlen(sb.origin_id), 0,
	       sizeof sb.origin_id - strlen(sb.origin_id));
	csnap_sb_encode(&sb, blocknr, again);
	FUZZ_CHECK(csnap_sb_decode(again, blocknr, &sb2) == 0, "re-encoded superblock refused: %s",
		   err_get());
	FUZZ_CHECK(!memcmp(&sb, &sb2, sizeof sb), "superblock changed in a round trip");
	return 0;
}
