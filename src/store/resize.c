/*
 * src/store/resize.c - store_origin_resize(): record that the origin
 * volume grew (`csnap resize`).
 *
 * The origin size lives in the superblock (SB_ORIGIN_SIZE), which every
 * reader outside the engine (server at start, exports, check, scan) takes
 * it from, so the new size is written there directly: csnap_sb_write is
 * atomic by itself (two copies, the higher valid seq wins), and it is
 * durable before the call returns, hence before any exception in the new
 * range can be committed.  A cut leaves the old size or the new one;
 * with the old one nothing refers to the new range.
 *
 * Invariants: the origin never shrinks; every snapshot keeps the chunks
 * it had (its table slot's origin_chunks, store_snap_chunks()); the new
 * chunks belong to no older snapshot (engine.c drop_short: no copy-out
 * for one there; check.c: no mask bit of one there).  The current size
 * must be a multiple of the chunk size: otherwise the last, partial chunk
 * of the snapshots taken so far would grow with the origin.
 */
#include "src/store/store_int.h"

#include "src/store/origin_id.h"
#include "utils/err.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

int store_origin_resize(struct store *s, uint64_t new_size)
{
	struct csnap_sb *sb = &s->sb;
	uint64_t old = sb->origin_size;

	if (s->readonly)
		return err_set(EROFS, "store opened read-only");
	if (store_commit_inflight(s))
		return err_set(EBUSY, "a commit is in flight: end it first");
	if (new_size < old)
		return err_set(EINVAL, "the origin cannot shrink (%" PRIu64 " -> %" PRIu64 " bytes)",
			       old, new_size);
	if (new_size == old)
		return 0;
	if (old % sb->chunk_size)
		return err_set(EINVAL, "the origin's size (%" PRIu64 " bytes) is not a multiple of the "
			       "chunk size (%u): its snapshots' last chunk would grow with it",
			       old, sb->chunk_size);
	if (new_size % 512)
		return err_set(EINVAL, "the origin's new size (%" PRIu64 " bytes) is not a multiple of "
			       "512: its last bytes could not be read or written with O_DIRECT", new_size);
	if (new_size > (UINT64_MAX >> 2))
		return err_set(EINVAL, "origin size %" PRIu64 " is too large", new_size);
	char old_id[sizeof sb->origin_id];
	memcpy(old_id, sb->origin_id, sizeof old_id);
	sb->origin_size = new_size;
	origin_id_resized(sb->origin_id, new_size);
	int ret = csnap_sb_write(s->dev, sb);
	if (ret < 0) {
		/* on disk: the old size or the new one; nothing uses the new
		 * range yet, so either is consistent */
		sb->origin_size = old;
		memcpy(sb->origin_id, old_id, sizeof old_id);
		return err_prefix(-ret, "recording the origin size");
	}
	s->origin_chunks = (new_size + sb->chunk_size - 1) / sb->chunk_size;
	store_recompute_live(s);	/* short_min */
	return 0;
}
