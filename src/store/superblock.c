/*
 * src/store/superblock.c - encode, decode, validate, read and write the
 * superblock and its backup copy.  See superblock.h for the update rule
 * (primary, flush, backup, flush; readers take the valid copy with the
 * highest seq).
 */
#include "src/store/superblock.h"
#include "utils/snapname.h"

#include "ioengine/ioengine.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static uint32_t sb_csum(const uint8_t *block)
{
	uint8_t tmp[CSNAP_META_BLOCK_SIZE];

	memcpy(tmp, block, sizeof tmp);
	put_le32(tmp + SB_CSUM, 0);
	return crc32c(0, tmp, sizeof tmp);
}

void csnap_sb_encode(const struct csnap_sb *sb, uint64_t blocknr, void *block)
{
	const struct csnap_sb_engine *e = &sb->engine;
	uint8_t *d = block, *p = d + SB_ENGINE;

	memset(d, 0, CSNAP_META_BLOCK_SIZE);
	put_le64(d + SB_MAGIC, CSNAP_SB_MAGIC);
	put_le32(d + SB_VERSION, sb->version);
	put_le64(d + SB_BLOCKNR, blocknr);
	put_le64(d + SB_SEQ, sb->seq);
	memcpy(d + SB_UUID, sb->uuid, sizeof sb->uuid);
	memcpy(d + SB_SECRET, sb->secret, CSNAP_SECRET_LEN);
	put_le64(d + SB_CTIME, sb->ctime);
	put_le32(d + SB_CHUNK_SIZE, sb->chunk_size);
	put_le32(d + SB_META_BLOCK_SIZE, sb->meta_block_size);
	put_le64(d + SB_STORE_SIZE, sb->store_size);
	put_le64(d + SB_ORIGIN_SIZE, sb->origin_size);
	memcpy(d + SB_ORIGIN_ID, sb->origin_id, strnlen(sb->origin_id, CSNAP_ORIGIN_ID_LEN));
	memcpy(d + SB_LABEL, sb->label, strnlen(sb->label, CSNAP_LABEL_LEN - 1));
	put_le32(d + SB_MAX_SNAPSHOTS, sb->max_snapshots);
	put_le32(d + SB_MASK_BITS, sb->mask_bits);
	put_le32(d + SB_LEASE_SECTOR, sb->lease_sector_size);
	put_le32(d + SB_LEASE_ALIGN, sb->lease_align);
	put_le64(d + SB_LEASE_OFFSET, sb->lease_offset);
	put_le64(d + SB_META_OFFSET, sb->meta_offset);
	put_le32(d + SB_FLAGS, sb->flags);

	put_le32(p + E_VERSION, e->version);
	put_le32(p + E_LEAF_ENTRY, e->leaf_entry_size);
	put_le64(p + E_JSTART, e->journal_start);
	put_le64(p + E_JBLOCKS, e->journal_blocks);
	put_le64(p + E_JTAIL, e->journal_tail);
	put_le64(p + E_JTAIL_SEQ, e->journal_tail_seq);
	put_le64(p + E_HEADER, e->header_block);
	put_le64(p + E_TSTART, e->table_start);
	put_le64(p + E_TBLOCKS, e->table_blocks);
	put_le64(p + E_DBSTART, e->dbitmap_start);
	put_le64(p + E_DBBLOCKS, e->dbitmap_blocks);
	put_le64(p + E_MBSTART, e->mbitmap_start);
	put_le64(p + E_MBBLOCKS, e->mbitmap_blocks);
	put_le64(p + E_MSTART, e->meta_start);
	put_le64(p + E_MBLOCKS, e->meta_blocks);
	put_le64(p + E_DOFF, e->data_offset);
	put_le64(p + E_DCHUNKS, e->data_chunks);

	put_le32(d + SB_CSUM, sb_csum(d));
}

static bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

/* Everything a reader relies on, checked once here.  */
static int sb_sanity(const struct csnap_sb *sb)
{
	const struct csnap_sb_engine *e = &sb->engine;
	uint64_t bs = CSNAP_META_BLOCK_SIZE;

	if (sb->meta_block_size != CSNAP_META_BLOCK_SIZE)
		return err_set(EINVAL, "metadata block size %u is not %u",
			       sb->meta_block_size, CSNAP_META_BLOCK_SIZE);
	if (!is_pow2(sb->chunk_size) || sb->chunk_size < CSNAP_CHUNK_MIN ||
	    sb->chunk_size > CSNAP_CHUNK_MAX)
		return err_set(EINVAL, "invalid chunk size %u", sb->chunk_size);
	if (sb->max_snapshots < 1 || sb->max_snapshots > CSNAP_MAX_SNAPSHOTS_LIMIT)
		return err_set(EINVAL, "invalid max_snapshots %u", sb->max_snapshots);
	if (sb->label[0] && (strnlen(sb->label, CSNAP_LABEL_LEN) == CSNAP_LABEL_LEN ||
			     !snap_name_valid(sb->label)))
		return err_set(EINVAL, "invalid store label");
	if (sb->mask_bits && (sb->mask_bits < sb->max_snapshots || sb->mask_bits % 64 ||
			      sb->mask_bits > CSNAP_MAX_SNAPSHOTS_LIMIT))
		return err_set(EINVAL, "invalid mask width %u", sb->mask_bits);
	if (sb->lease_sector_size != 512 && sb->lease_sector_size != 4096)
		return err_set(EINVAL, "invalid lease sector size %u", sb->lease_sector_size);
	if (!is_pow2(sb->lease_align) || sb->lease_offset % sb->lease_align ||
	    sb->lease_offset < CSNAP_SB_BACKUP_OFFSET + bs)
		return err_set(EINVAL, "invalid lease area (offset %llu, align %u)",
			       (unsigned long long)sb->lease_offset, sb->lease_align);
	/* (a difference, not a sum: a lease offset near 2^64 wrapped the
	 * lease area's end to below the metadata) */
	if (sb->meta_offset < sb->lease_offset ||
	    sb->meta_offset - sb->lease_offset < csnap_lease_area_size(sb->lease_align) ||
	    sb->meta_offset % sb->chunk_size || sb->meta_offset > sb->store_size)
		return err_set(EINVAL, "invalid metadata offset %llu",
			       (unsigned long long)sb->meta_offset);
	if (e->version == 0)	/* engine not laid out yet (mkstore in progress) */
		return 0;
	if (e->version != CSNAP_ENGINE_VERSION)
		return err_set(EINVAL, "unsupported engine version %u", e->version);
	uint64_t first = sb->meta_offset / bs, last = sb->store_size / bs;
	const struct { const char *what; uint64_t start, n; bool may_follow_data; } areas[] = {
		{ "journal", e->journal_start, e->journal_blocks, false },
		{ "engine header", e->header_block, 1, false },
		{ "snapshot table", e->table_start, e->table_blocks, false },
		{ "data bitmap", e->dbitmap_start, e->dbitmap_blocks, true },
		{ "tree bitmap", e->mbitmap_start, e->mbitmap_blocks, false },
		{ "tree", e->meta_start, e->meta_blocks, false },
	};
	for (size_t i = 0; i < sizeof areas / sizeof areas[0]; i++)
		if (areas[i].start < first || areas[i].n == 0 || areas[i].n > last ||
		    areas[i].start > last - areas[i].n)
			return err_set(EINVAL, "%s area out of bounds", areas[i].what);
	/* Checked first: the overlap test below multiplies data_chunks. */
	if (e->data_offset % sb->chunk_size || e->data_offset < sb->meta_offset ||
	    e->data_offset > sb->store_size ||
	    e->data_chunks > (sb->store_size - e->data_offset) / sb->chunk_size)
		return err_set(EINVAL, "data area out of bounds");
	/* The engine writes each area believing it owns it: areas that
	 * overlap each other or the data chunks would overwrite each other.
	 * mkstore lays every area out before the data chunks and only
	 * `csnap grow` moves one, the data bitmap, behind them: any other
	 * layout is not one csnap writes, so it is damage. */
	uint64_t dfirst = e->data_offset / bs;
	uint64_t dend = dfirst + e->data_chunks * (sb->chunk_size / bs);
	for (size_t i = 0; i < sizeof areas / sizeof areas[0]; i++) {
		for (size_t k = i + 1; k < sizeof areas / sizeof areas[0]; k++)
			if (areas[i].start < areas[k].start + areas[k].n &&
			    areas[k].start < areas[i].start + areas[i].n)
				return err_set(EINVAL, "%s and %s areas overlap", areas[i].what,
					       areas[k].what);
		if (!e->data_chunks)
			continue;
		if (areas[i].start + areas[i].n > dfirst &&
		    !(areas[i].may_follow_data && areas[i].start >= dend))
			return err_set(EINVAL, "%s area %s the data area", areas[i].what,
				       areas[i].start < dend ? "overlaps" : "lies after");
	}
	if (e->journal_blocks < 8 || e->journal_tail >= e->journal_blocks)
		return err_set(EINVAL, "invalid journal geometry");
	if (sb->mask_bits == 0)
		return err_set(EINVAL, "mask width is zero");
	if (e->leaf_entry_size != BE_MASK + sb->mask_bits / 8)
		return err_set(EINVAL, "leaf entry size %u does not match mask width %u",
			       e->leaf_entry_size, sb->mask_bits);
	return 0;
}

int csnap_sb_decode_check_common(const struct csnap_sb *sb)
{
	struct csnap_sb tmp = *sb;

	tmp.engine.version = 0;
	return sb_sanity(&tmp);
}

int csnap_sb_decode(const void *block, uint64_t blocknr, struct csnap_sb *out)
{
	const uint8_t *d = block, *p = d + SB_ENGINE;
	struct csnap_sb_engine *e = &out->engine;

	if (get_le64(d + SB_MAGIC) != CSNAP_SB_MAGIC)
		return err_set(EINVAL, "no csnap superblock (wrong magic)");
	if (get_le32(d + SB_CSUM) != sb_csum(d))
		return err_set(EINVAL, "superblock checksum mismatch");
	if (get_le64(d + SB_BLOCKNR) != blocknr)
		return err_set(EINVAL, "superblock claims block %llu, read from %llu",
			       (unsigned long long)get_le64(d + SB_BLOCKNR),
			       (unsigned long long)blocknr);
	memset(out, 0, sizeof *out);
	out->version = get_le32(d + SB_VERSION);
	if (out->version > CSNAP_FORMAT_VERSION)
		return err_set(EINVAL, "store format version %u is newer than this csnap's (%u): "
			       "use a newer csnap", out->version, CSNAP_FORMAT_VERSION);
	if (out->version < CSNAP_FORMAT_VERSION_MIN)
		return err_set(EINVAL, "unsupported format version %u", out->version);
	out->seq = get_le64(d + SB_SEQ);
	memcpy(out->uuid, d + SB_UUID, sizeof out->uuid);
	memcpy(out->secret, d + SB_SECRET, CSNAP_SECRET_LEN);
	out->ctime = get_le64(d + SB_CTIME);
	out->chunk_size = get_le32(d + SB_CHUNK_SIZE);
	out->meta_block_size = get_le32(d + SB_META_BLOCK_SIZE);
	out->store_size = get_le64(d + SB_STORE_SIZE);
	out->origin_size = get_le64(d + SB_ORIGIN_SIZE);
	memcpy(out->origin_id, d + SB_ORIGIN_ID, CSNAP_ORIGIN_ID_LEN);
	out->origin_id[CSNAP_ORIGIN_ID_LEN] = 0;
	/* a label is a name, NUL-padded to the end of its field */
	memcpy(out->label, d + SB_LABEL, CSNAP_LABEL_LEN);
	if (out->label[CSNAP_LABEL_LEN - 1])
		return err_set(EINVAL, "superblock label not terminated");
	for (size_t i = strlen(out->label); i < CSNAP_LABEL_LEN; i++)
		if (out->label[i])
			return err_set(EINVAL, "superblock label has bytes after its end");

	out->max_snapshots = get_le32(d + SB_MAX_SNAPSHOTS);
	out->mask_bits = get_le32(d + SB_MASK_BITS);
	out->lease_sector_size = get_le32(d + SB_LEASE_SECTOR);
	out->lease_align = get_le32(d + SB_LEASE_ALIGN);
	out->lease_offset = get_le64(d + SB_LEASE_OFFSET);
	out->meta_offset = get_le64(d + SB_META_OFFSET);
	out->flags = get_le32(d + SB_FLAGS);

	e->version = get_le32(p + E_VERSION);
	e->leaf_entry_size = get_le32(p + E_LEAF_ENTRY);
	e->journal_start = get_le64(p + E_JSTART);
	e->journal_blocks = get_le64(p + E_JBLOCKS);
	e->journal_tail = get_le64(p + E_JTAIL);
	e->journal_tail_seq = get_le64(p + E_JTAIL_SEQ);
	e->header_block = get_le64(p + E_HEADER);
	e->table_start = get_le64(p + E_TSTART);
	e->table_blocks = get_le64(p + E_TBLOCKS);
	e->dbitmap_start = get_le64(p + E_DBSTART);
	e->dbitmap_blocks = get_le64(p + E_DBBLOCKS);
	e->mbitmap_start = get_le64(p + E_MBSTART);
	e->mbitmap_blocks = get_le64(p + E_MBBLOCKS);
	e->meta_start = get_le64(p + E_MSTART);
	e->meta_blocks = get_le64(p + E_MBLOCKS);
	e->data_offset = get_le64(p + E_DOFF);
	e->data_chunks = get_le64(p + E_DCHUNKS);
	return sb_sanity(out);
}

int csnap_sb_writable(const struct csnap_sb *sb, const char *path)
{
	/* (a newer version never decodes: csnap_sb_decode refuses it) */
	if (sb->version < CSNAP_FORMAT_VERSION)
		return err_set(EROFS, "%s: store has format version %u (this csnap writes %u): "
			       "read-only until `csnap upgrade %s`", path, sb->version,
			       CSNAP_FORMAT_VERSION, path);
	return 0;
}

int csnap_sb_read_path(const char *path, struct csnap_sb *out)
{
	struct io_dev *dev;
	int r = io_dev_open(path, IO_DEV_RDONLY, &dev);

	if (r < 0)
		return r;
	r = csnap_sb_read(dev, out, NULL);
	io_dev_close(dev);
	return r;
}

int csnap_sb_read(struct io_dev *dev, struct csnap_sb *out, unsigned *bad_copies)
{
	static const uint64_t offs[2] = { CSNAP_SB_OFFSET, CSNAP_SB_BACKUP_OFFSET };
	struct csnap_sb copy[2];
	char why[2][256];
	bool ok[2] = { false, false };
	uint8_t *buf;
	int ret;

	if (io_dev_size(dev) < CSNAP_SB_BACKUP_OFFSET + CSNAP_META_BLOCK_SIZE)
		return err_set(EINVAL, "%s: too small to hold a csnap store (%llu bytes)",
			       io_dev_path(dev), (unsigned long long)io_dev_size(dev));
	buf = io_buf_alloc(CSNAP_META_BLOCK_SIZE);
	if (!buf)
		return -ENOMEM;
	for (int i = 0; i < 2; i++) {
		ret = io_dev_pread(dev, buf, CSNAP_META_BLOCK_SIZE, offs[i]);
		if (ret >= 0)
			ret = csnap_sb_decode(buf, offs[i] / CSNAP_META_BLOCK_SIZE, &copy[i]);
		ok[i] = ret >= 0;
		snprintf(why[i], sizeof why[i], "%s", ok[i] ? "" : err_get());
	}
	io_buf_free(buf);
	if (bad_copies)
		*bad_copies = (ok[0] ? 0 : 1) | (ok[1] ? 0 : 2);
	if (!ok[0] && !ok[1]) {
		if (strstr(why[0], "magic") && strstr(why[1], "magic"))
			return err_set(EINVAL, "%s: not a csnap store (no superblock magic)",
				       io_dev_path(dev));
		if (strcmp(why[0], why[1]) == 0)	/* e.g. both a newer version */
			return err_set(EINVAL, "%s: %s", io_dev_path(dev), why[0]);
		return err_set(EINVAL, "%s: %s; backup: %s", io_dev_path(dev), why[0], why[1]);
	}
	if (ok[0] && ok[1] && memcmp(copy[0].uuid, copy[1].uuid, 16) != 0)
		/* A backup left behind by an older store: trust the primary. */
		ok[1] = false;
	if (ok[0] && (!ok[1] || copy[0].seq >= copy[1].seq))
		*out = copy[0];
	else
		*out = copy[1];
	err_clear();
	return 0;
}

int csnap_sb_write(struct io_dev *dev, struct csnap_sb *sb)
{
	static const uint64_t offs[2] = { CSNAP_SB_OFFSET, CSNAP_SB_BACKUP_OFFSET };
	uint8_t *buf = io_buf_alloc(CSNAP_META_BLOCK_SIZE);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	sb->seq++;
	for (int i = 0; i < 2 && ret >= 0; i++) {
		csnap_sb_encode(sb, offs[i] / CSNAP_META_BLOCK_SIZE, buf);
		ret = io_dev_pwrite(dev, buf, CSNAP_META_BLOCK_SIZE, offs[i]);
		if (ret >= 0)
			ret = io_dev_flush(dev);
	}
	io_buf_free(buf);
	if (ret < 0)
		return err_prefix(-ret, "writing superblock");
	return 0;
}

int csnap_sb_lease_layout(struct csnap_sb *sb, unsigned sector)
{
	switch (sector) {
	case 512:
		sb->lease_sector_size = 512;
		sb->lease_align = 1u << 20;
		sb->lease_offset = 1u << 20;
		return 0;
	case 4096:
		sb->lease_sector_size = 4096;
		sb->lease_align = 8u << 20;
		sb->lease_offset = 8u << 20;
		return 0;
	default:
		return err_set(EINVAL, "unsupported logical sector size %u", sector);
	}
}
