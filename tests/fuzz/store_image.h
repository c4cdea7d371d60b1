/*
 * tests/fuzz/store_image.h - a small snapshot store image for the store
 * fuzz targets (fuzz_store_meta.c, fuzz_store_journal.c): built once per
 * process, then copied to a scratch file before every input, patched by
 * the input, its checksums made right again, and opened.
 *
 * The image: 8 MiB store, 4 KiB chunks, 1,024-chunk origin, room for 16
 * snapshots; three snapshots (one deleted, its cleanup half done), a few
 * hundred exceptions (a two-level b-tree), all checkpointed; then a few
 * more transactions committed to the journal but not written home, as
 * after a crash, so every open replays the journal.
 *
 * Patched blocks get a correct checksum again (superblock csum, metadata
 * crc32c, and the crc32c a journal descriptor keeps for each image it
 * lists), unless the input asks for raw bytes: a checksum failure is the
 * easy, well-tested refusal; the fuzzer is after the checks behind it.
 * The scratch file lives in /dev/shm (tmpfs: the ioengine's buffered
 * fallback, no disk I/O) and is truncated and rewritten every time, so a
 * write an input provoked anywhere never leaks into the next input.
 */
#ifndef CSNAP_TESTS_FUZZ_STORE_IMAGE_H
#define CSNAP_TESTS_FUZZ_STORE_IMAGE_H

#include "tests/fuzz/fuzz.h"

#include "ioengine/ioengine.h"
#include "src/store/bm.h"
#include "src/store/store.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FI_CHUNK	4096u
#define FI_OCHUNKS	1024u
#define FI_MAXSNAP	16u

struct fimg {
	char path[128];
	uint64_t store_size;
	struct csnap_sb sb;		/* as formatted (engine layout) */
	/* template: the two superblock copies, then the engine metadata
	 * blocks [meta_first, meta_first + nmeta) */
	uint8_t *sbc[2];
	uint64_t meta_first, nmeta;
	uint8_t *meta;
	/* the working copy an input patches */
	uint8_t *w_sb[2], *w_meta;
	uint8_t *patched;		/* per block index (0,1 = sb copies) */
	int fd;
};

static inline uint64_t fi_nblocks(const struct fimg *f) { return 2 + f->nmeta; }

static inline uint8_t *fi_block(struct fimg *f, uint64_t i)
{
	return i < 2 ? f->w_sb[i] : f->w_meta + (i - 2) * META_BLOCK_SIZE;
}

/* Block number on the device of block index I.  */
static inline uint64_t fi_blocknr(const struct fimg *f, uint64_t i)
{
	return i == 0 ? CSNAP_SB_OFFSET / META_BLOCK_SIZE :
	       i == 1 ? CSNAP_SB_BACKUP_OFFSET / META_BLOCK_SIZE : f->meta_first + i - 2;
}

static inline void fi_die(const char *what)
{
	fprintf(stderr, "store image: %s: %s\n", what, err_get());
	abort();
}

static inline void fi_ok(int r, const char *what)
{
	if (r < 0)
		fi_die(what);
}

static inline void fi_read_template(struct fimg *f)
{
	for (int c = 0; c < 2; c++)
		if (pread(f->fd, f->sbc[c], META_BLOCK_SIZE,
			  c ? CSNAP_SB_BACKUP_OFFSET : CSNAP_SB_OFFSET) != META_BLOCK_SIZE)
			abort();
	if (pread(f->fd, f->meta, f->nmeta * META_BLOCK_SIZE,
		  (off_t)(f->meta_first * META_BLOCK_SIZE)) != (ssize_t)(f->nmeta * META_BLOCK_SIZE))
		abort();
}

/* Some exceptions, snapshots and a half-done cleanup.  */
static inline void fi_populate(struct store *s, uint32_t *ids)
{
	struct store_copy cp[8];
	chunk_t dst[8];
	uint32_t n;

	fi_ok(store_snapshot_create(s, "a", 0, &ids[0]), "create a");
	for (chunk_t c = 0; c < 200; c += 8)
		fi_ok(store_origin_write(s, c, 8, cp, &n), "origin write");
	fi_ok(store_commit(s), "commit");
	fi_ok(store_snapshot_create(s, "b", 5, &ids[1]), "create b");
	fi_ok(store_snapshot_create(s, "c", -1, &ids[2]), "create c");
	for (chunk_t c = 100; c < 300; c += 8)
		fi_ok(store_origin_write(s, c, 8, cp, &n), "origin write");
	fi_ok(store_snapshot_write(s, ids[1], 40, 8, dst, cp, &n), "snapshot write");
	fi_ok(store_commit(s), "commit");
	fi_ok(store_snapshot_delete(s, ids[2]), "delete c");
	fi_ok(store_cleanup(s, 50), "cleanup");
	fi_ok(store_commit(s), "commit");
}

static inline void fi_build(struct fimg *f)
{
	struct store_open_opts o = { .cache_bytes = 1 << 20 };
	struct io_dev *dev;
	struct store *s;
	uint32_t ids[3];
	struct store_copy cp[8];
	chunk_t dst[8];
	uint32_t n;
	struct csnap_sb *sb = &f->sb;
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	fuzz_scratch_path(f->path, sizeof f->path, dir, "csnap-fuzz-store");
	f->store_size = 8u << 20;
	f->fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f->fd < 0 || ftruncate(f->fd, (off_t)f->store_size) < 0)
		abort();
	memset(sb, 0, sizeof *sb);
	for (int i = 0; i < 16; i++)
		sb->uuid[i] = (uint8_t)(i * 37 + 1);
	sb->chunk_size = FI_CHUNK;
	sb->store_size = f->store_size;
	sb->origin_size = (uint64_t)FI_OCHUNKS * FI_CHUNK;
	strcpy(sb->origin_id, "size:fuzz");
	sb->max_snapshots = FI_MAXSNAP;
	sb->ctime = 1;
	fi_ok(csnap_sb_lease_layout(sb, 512), "lease layout");
	sb->meta_offset = sb->lease_offset + csnap_lease_area_size(sb->lease_align);
	fi_ok(io_dev_open(f->path, IO_DEV_RDWR, &dev), "open");
	fi_ok(store_format(dev, sb), "format");
	io_dev_close(dev);

	fi_ok(store_open(f->path, &o, &s), "open store");
	fi_populate(s, ids);
	fi_ok(store_checkpoint(s), "checkpoint");
	/* committed, not home: what replay finds after a crash */
	fi_ok(store_snapshot_set_priority(s, ids[0], 7), "set priority");
	fi_ok(store_commit(s), "commit");
	for (chunk_t c = 500; c < 540; c += 8) {
		fi_ok(store_origin_write(s, c, 8, cp, &n), "origin write");
		fi_ok(store_commit(s), "commit");
	}
	fi_ok(store_snapshot_write(s, ids[0], 3, 2, dst, cp, &n), "snapshot write");
	fi_ok(store_commit(s), "commit");

	f->meta_first = sb->engine.journal_start;
	f->nmeta = sb->engine.data_offset / META_BLOCK_SIZE - f->meta_first;
	f->sbc[0] = malloc(META_BLOCK_SIZE);
	f->sbc[1] = malloc(META_BLOCK_SIZE);
	f->w_sb[0] = malloc(META_BLOCK_SIZE);
	f->w_sb[1] = malloc(META_BLOCK_SIZE);
	f->meta = malloc(f->nmeta * META_BLOCK_SIZE);
	f->w_meta = malloc(f->nmeta * META_BLOCK_SIZE);
	f->patched = malloc(fi_nblocks(f));
	if (!f->sbc[0] || !f->sbc[1] || !f->w_sb[0] || !f->w_sb[1] || !f->meta || !f->w_meta ||
	    !f->patched)
		abort();
	fi_read_template(f);	/* the crash image: the store is still open */
	/* the layout as the superblock now says (journal tail moved) */
	fi_ok(csnap_sb_decode(f->sbc[0], 0, &f->sb), "decode superblock");
	store_close(s);
}

/* Starts an input: working copy = template.  */
static inline void fi_reset(struct fimg *f)
{
	memcpy(f->w_sb[0], f->sbc[0], META_BLOCK_SIZE);
	memcpy(f->w_sb[1], f->sbc[1], META_BLOCK_SIZE);
	memcpy(f->w_meta, f->meta, f->nmeta * META_BLOCK_SIZE);
	memset(f->patched, 0, fi_nblocks(f));
}

/* Writes LEN bytes of the input at OFF in block index I (wrapping in the
 * block).  */
static inline void fi_patch(struct fimg *f, uint64_t i, uint32_t off, const uint8_t *p, size_t len)
{
	uint8_t *b = fi_block(f, i);

	for (size_t k = 0; k < len; k++)
		b[(off + k) % META_BLOCK_SIZE] = p[k];
	f->patched[i] = 1;
}

static inline void fi_fix_meta(uint8_t *b)
{
	put_le32(b + META_CSUM, crc32c(0, b + 4, META_BLOCK_SIZE - 4));
}

static inline void fi_fix_sb(uint8_t *b)
{
	put_le32(b + SB_CSUM, 0);
	put_le32(b + SB_CSUM, crc32c(0, b, META_BLOCK_SIZE));
}

/* Every patched block checksummed again; journal descriptors get the
 * crc of the (patched) images they list, walking the log from the tail
 * the superblock names.  */
static inline void fi_fix(struct fimg *f)
{
	const struct csnap_sb_engine *e = &f->sb.engine;
	uint64_t jfirst = e->journal_start - f->meta_first, jn = e->journal_blocks;
	bool journal = false;

	for (uint64_t i = 2; i < fi_nblocks(f); i++) {
		if (!f->patched[i])
			continue;
		fi_fix_meta(fi_block(f, i));
		if (i - 2 >= jfirst && i - 2 < jfirst + jn)
			journal = true;
	}
	if (journal) {
		uint64_t p = e->journal_tail % jn, steps = 0;

		while (steps < jn) {
			uint8_t *d = f->w_meta + (jfirst + p) * META_BLOCK_SIZE;
			uint32_t nr = get_le32(d + JD_NR);

			if (get_le32(d + META_TYPE) != META_T_JDESC || nr == 0 || nr > JOURNAL_DESC_ENTRIES)
				break;
			for (uint32_t k = 0; k < nr; k++) {
				const uint8_t *im = f->w_meta +
					(jfirst + (p + 1 + k) % jn) * META_BLOCK_SIZE;

				put_le32(d + JD_ENTRIES + JE_SIZE * k + JE_CSUM, crc32c(0, im, META_BLOCK_SIZE));
			}
			fi_fix_meta(d);
			p = (p + 1 + nr) % jn;
			steps += 1 + nr;
		}
	}
	for (int c = 0; c < 2; c++)
		if (f->patched[c])
			fi_fix_sb(f->w_sb[c]);
}

/* Puts the working copy on the scratch file, nothing else on it.  */
static inline void fi_write(struct fimg *f)
{
	if (ftruncate(f->fd, 0) < 0 || ftruncate(f->fd, (off_t)f->store_size) < 0)
		abort();
	for (int c = 0; c < 2; c++)
		if (pwrite(f->fd, f->w_sb[c], META_BLOCK_SIZE,
			   c ? CSNAP_SB_BACKUP_OFFSET : CSNAP_SB_OFFSET) != META_BLOCK_SIZE)
			abort();
	if (pwrite(f->fd, f->w_meta, f->nmeta * META_BLOCK_SIZE,
		   (off_t)(f->meta_first * META_BLOCK_SIZE)) != (ssize_t)(f->nmeta * META_BLOCK_SIZE))
		abort();
}

/* The device must not grow, and nothing may be written outside the
 * engine's metadata blocks and the superblocks (the lease area and data
 * chunks are not the engine's to write on open, replay or commit).  */
static inline void fi_check_untouched(struct fimg *f)
{
	struct stat st;
	uint8_t buf[META_BLOCK_SIZE];
	static const uint8_t zero[META_BLOCK_SIZE];

	FUZZ_CHECK(fstat(f->fd, &st) == 0 && (uint64_t)st.st_size == f->store_size,
		   "the store file grew to %lld bytes", (long long)st.st_size);
	/* the lease area: one sample block per MiB plus the record sector */
	for (uint64_t off = f->sb.lease_offset; off < f->sb.meta_offset; off += 1u << 20) {
		FUZZ_CHECK(pread(f->fd, buf, sizeof buf, (off_t)off) == sizeof buf &&
			   !memcmp(buf, zero, sizeof buf), "lease area written at %llu",
			   (unsigned long long)off);
	}
}

static inline void fi_cleanup(struct fimg *f)
{
	unlink(f->path);
}

/* A digest of what the store says: snapshot table and every live
 * snapshot's mapping.  0 if some lookup failed.  */
static inline uint32_t fi_digest(struct store *s)
{
	struct store_snapshot list[FI_MAXSNAP * 2];
	static chunk_t map[FI_OCHUNKS];
	uint32_t h = 1;
	int n = store_snapshot_list(s, list, FI_MAXSNAP * 2);

	if (n < 0 || n > (int)(FI_MAXSNAP * 2))
		return 0;
	for (int i = 0; i < n; i++) {
		h = crc32c(h, &list[i].id, sizeof list[i].id);
		h = crc32c(h, &list[i].flags, sizeof list[i].flags);
		h = crc32c(h, &list[i].priority, sizeof list[i].priority);
		h = crc32c(h, list[i].name, strlen(list[i].name));
		if (!(list[i].flags & STORE_SNAP_LIVE))
			continue;
		if (store_snapshot_read(s, list[i].id, 0, FI_OCHUNKS, map) < 0)
			return 0;
		h = crc32c(h, map, sizeof map);
	}
	return h;
}

#endif
