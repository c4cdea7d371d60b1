/*
 * tests/fuzz/fuzz_store_journal.c - journal replay (src/store/journal.c)
 * on store images whose journal an input rewrote: descriptors, block
 * images, their sequence numbers and home block numbers, and the
 * checkpointed tail the superblock points replay at.
 *
 * Besides "no crash": replay must be deterministic and agree with itself.
 * The image is opened read-only (replay into memory) and then read-write
 * (replay written home, tail checkpointed), and then read-write again
 * (nothing left to replay): when the first open succeeds, every open must,
 * and all three must show the same snapshots and mappings (fi_digest).
 * Nothing may be written outside the engine's metadata (fi_check_untouched).
 *
 * Input: byte 0 flags (bit 0: raw, no checksum repair), byte 1 a shift of
 * the superblock's journal tail (signed), byte 2 a shift of its tail
 * sequence, byte 3 the number of patches (mod 32), then patches as in
 * fuzz_store_meta.c but with block indexes into the journal.
 */
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/store_image.h"

static struct fimg img;

static void cleanup(void)
{
	fi_cleanup(&img);
}

static void make_seeds(const char *dir)
{
	uint64_t t = img.sb.engine.journal_tail;
	/* {tail shift, seq shift, journal block offset from the tail, byte
	 * offset, value} */
	static const int8_t p[][5] = {
		{ 0, 0, -1, 0, 0 },	/* unpatched: replay as found */
		{ 0, 1, -1, 0, 0 },	/* tail seq ahead: nothing to replay */
		{ 0, -1, -1, 0, 0 },	/* tail seq behind */
		{ 1, 0, -1, 0, 0 },	/* tail not on a descriptor */
		{ 0, 0, 0, 32, 9 },	/* descriptor: more entries */
		{ 0, 0, 0, 36, 0 },	/* descriptor: not the last */
		{ 0, 0, 0, 40, 1 },	/* descriptor: index */
		{ 0, 0, 0, 48, 2 },	/* first entry's home block */
		{ 0, 0, 1, 8, 3 },	/* image: its block number */
		{ 0, 0, 1, 16, 7 },	/* image: its sequence */
		{ 0, 0, 2, 100, 1 },	/* image contents */
	};

	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
		uint8_t b[16];
		size_t n = 0;

		b[n++] = 0;
		b[n++] = (uint8_t)p[i][0];
		b[n++] = (uint8_t)p[i][1];
		b[n++] = p[i][2] >= 0;
		if (p[i][2] >= 0) {
			uint64_t j = (t + (uint64_t)p[i][2]) % img.sb.engine.journal_blocks;

			b[n++] = (uint8_t)j;
			b[n++] = (uint8_t)(j >> 8);
			b[n++] = (uint8_t)p[i][3];
			b[n++] = 0;
			b[n++] = 0;
			b[n++] = (uint8_t)p[i][4];
		}
		fuzz_write_seed(dir, (int)i, b, n);
	}
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup("fuzz_store_journal");
	fi_build(&img);
	atexit(cleanup);
	if (getenv("CSNAP_FUZZ_SEEDS"))
		make_seeds(getenv("CSNAP_FUZZ_SEEDS"));
	return 0;
}

/* Moves the superblock's journal tail and tail sequence.  */
static void shift_tail(int8_t dt, int8_t ds)
{
	struct csnap_sb sb = img.sb;
	uint64_t n = sb.engine.journal_blocks;

	if (!dt && !ds)
		return;
	sb.engine.journal_tail = (sb.engine.journal_tail + n + (uint64_t)(int64_t)dt % n) % n;
	sb.engine.journal_tail_seq += (uint64_t)(int64_t)ds;
	csnap_sb_encode(&sb, CSNAP_SB_OFFSET / META_BLOCK_SIZE, img.w_sb[0]);
	csnap_sb_encode(&sb, CSNAP_SB_BACKUP_OFFSET / META_BLOCK_SIZE, img.w_sb[1]);
}

static int open_digest(bool ro, uint32_t *digest)
{
	struct store_open_opts o = { .cache_bytes = 1 << 20, .readonly = ro };
	struct store *s;
	int r = store_open(img.path, &o, &s);

	if (r < 0)
		return r;
	*digest = fi_digest(s);
	if (!ro)
		(void)store_check_open(s, NULL);
	store_close(s);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t flags = fuzz_u8(&in);
	int8_t dt = (int8_t)fuzz_u8(&in), ds = (int8_t)fuzz_u8(&in);
	uint8_t np = fuzz_u8(&in) % 32;
	uint64_t jfirst = img.sb.engine.journal_start - img.meta_first;
	uint32_t d_ro, d_rw, d_again;
	int r;

	fi_reset(&img);
	shift_tail(dt, ds);
	for (uint8_t k = 0; k < np; k++) {
		uint64_t j = fuzz_u16(&in) % img.sb.engine.journal_blocks;
		uint16_t off = fuzz_u16(&in);
		uint8_t bytes[64];
		size_t len = fuzz_bytes(&in, bytes, 1 + fuzz_u8(&in) % 64);

		fi_patch(&img, 2 + jfirst + j, off, bytes, len);
	}
	if (!(flags & 1))
		fi_fix(&img);
	fi_write(&img);
	if (open_digest(true, &d_ro) < 0) {
		FUZZ_CHECK(err_get()[0] && !strchr(err_get(), '\n'), "refusal without a reason");
		fi_check_untouched(&img);
		return 0;
	}
	r = open_digest(false, &d_rw);
	FUZZ_CHECK(r == 0, "opens read-only but not read-write: %s", err_get());
	r = open_digest(false, &d_again);
	FUZZ_CHECK(r == 0, "does not open again after replay: %s", err_get());
	FUZZ_CHECK(d_ro == d_rw, "read-only and read-write replay disagree");
	FUZZ_CHECK(d_rw == d_again, "contents changed by closing and opening again");
	fi_check_untouched(&img);
	return 0;
}
