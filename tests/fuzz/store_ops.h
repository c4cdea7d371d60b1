/*
 * tests/fuzz/store_ops.h - drives an open store with operations decoded
 * from fuzz input (the store fuzz targets run them on images whose
 * metadata an input patched): every public engine call the server makes,
 * on chunks and snapshots the input picks.  Errors are expected (the
 * metadata may be refused at any point); crashes, sanitizer reports and
 * broken invariants (CSNAP_ASSERT) are not.
 *
 * Program: per operation u8 op, le16 first chunk, u8 count, then the
 * snapshots it names (u8 each).  Ops 0-11 always; with EXTENDED (so that
 * inputs written before the later ops decode as they did) 12-15 too:
 * clone, clone step, rollback (start, or one step as the server takes
 * it: next, prepare, commit, finish) and by count % 4 origin resize,
 * rename, origin read, use count; and op 6 with an even count is the
 * pipelined commit: store_commit_begin(), the operations after it, then
 * at the next such op (or the program's end) its journal writes, flush
 * and store_commit_end().
 */
#ifndef CSNAP_TESTS_FUZZ_STORE_OPS_H
#define CSNAP_TESTS_FUZZ_STORE_OPS_H

#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/store_image.h"

#define FO_MAX_OPS	24
#define FO_MAX_COUNT	16

static inline uint32_t fo_snap(struct store *s, struct fuzz_in *in)
{
	struct store_snapshot list[FI_MAXSNAP * 2];
	int n = store_snapshot_list(s, list, FI_MAXSNAP * 2);
	uint8_t k = fuzz_u8(in);

	if (n <= 0)
		return k;
	if (n > (int)(FI_MAXSNAP * 2))
		n = FI_MAXSNAP * 2;
	return k < 0xf0 ? list[k % n].id : k;	/* mostly a real id */
}

/* Finishes a pipelined commit as the master does: the journal writes
 * store_commit_begin() staged, a flush, store_commit_end().  1 when it
 * left the store unusable.  */
static inline int fo_commit_end(struct store *s, const struct store_commit_io *io)
{
	int r = 0;

	for (unsigned i = 0; i < io->n && r >= 0; i++)
		r = io_dev_pwrite(store_dev(s), io->buf[i], io->len[i], io->off[i]);
	if (r >= 0)
		r = io_dev_flush(store_dev(s));
	return store_commit_end(s, r) < 0 || r < 0;
}

/* 1 when the store is left unusable (a failed abort): close it without
 * a checkpoint.  */
static inline int fo_run(struct store *s, struct fuzz_in *in, bool extended)
{
	struct store_copy cp[FO_MAX_COUNT], mv[FO_MAX_COUNT];
	struct store_rollback rb;
	struct store_commit_io cio;
	chunk_t dst[FO_MAX_COUNT], out[FO_MAX_COUNT];
	struct store_usage use[FI_MAXSNAP];
	struct store_info info;
	uint32_t n, id;

	for (int k = 0; k < FO_MAX_OPS && in->n; k++) {
		uint8_t op = fuzz_u8(in) % (extended ? 16 : 12);
		chunk_t first = fuzz_u16(in) % (FI_OCHUNKS + 4);
		uint32_t count = 1 + fuzz_u8(in) % FO_MAX_COUNT;
		char name[16];

		switch (op) {
		case 0:
			(void)store_origin_write(s, first, count, cp, &n);
			break;
		case 1:
			(void)store_snapshot_write(s, fo_snap(s, in), first, count, dst, cp, &n);
			break;
		case 2:
			(void)store_snapshot_read(s, fo_snap(s, in), first, count, out);
			break;
		case 3:
			snprintf(name, sizeof name, "f%u", (unsigned)first);
			(void)store_snapshot_create(s, name, (int32_t)count - 8, &id);
			break;
		case 4:
			(void)store_snapshot_delete(s, fo_snap(s, in));
			break;
		case 5:
			(void)store_cleanup(s, count * 8);
			break;
		case 6:
			if (extended && store_commit_inflight(s)) {
				if (fo_commit_end(s, &cio))
					return 1;
			} else if (extended && !(count & 1)) {
				(void)store_commit_begin(s, &cio);
			} else {
				(void)store_commit(s);
			}
			break;
		case 7:
			(void)store_usage(s, use, FI_MAXSNAP);
			break;
		case 8: {
			chunk_t cur = first;

			id = fo_snap(s, in);
			(void)store_changed(s, id, count & 1 ? STORE_ORIGIN_ID : fo_snap(s, in),
					    &cur, out, FO_MAX_COUNT);
			break;
		}
		case 9:
			if (count & 1)
				(void)store_checkpoint(s);
			else if (store_abort(s) < 0)
				return 1;	/* unusable: only a close may follow */
			break;
		case 10:
			(void)store_snapshot_set_priority(s, fo_snap(s, in), (int32_t)first);
			(void)store_pick_victim(s, NULL, NULL, &id);
			break;
		case 11:
			store_get_info(s, &info);
			(void)store_check_open(s, NULL);
			break;
		case 12:
			snprintf(name, sizeof name, "c%u", (unsigned)first);
			(void)store_snapshot_clone(s, name, fo_snap(s, in), (int32_t)count - 8, NULL,
						   &id);
			break;
		case 13:
			(void)store_clone_step(s, count * 4);
			break;
		case 14: {
			chunk_t adv;
			uint32_t nc, nm;

			store_rollback_get(s, &rb);
			if (!rb.active) {
				(void)store_rollback_start(s, fo_snap(s, in), count & 1);
				break;
			}
			if (store_rollback_next(s, out, count, &n, &adv) >= 0 &&
			    store_rollback_prepare(s, out, n, cp, &nc, mv, &nm) >= 0 &&
			    store_commit(s) >= 0)
				(void)store_rollback_finish(s, mv, nm, adv);
			break;
		}
		case 15:
			switch (count % 4) {
			case 0:
				store_get_info(s, &info);
				(void)store_origin_resize(s, info.sb.origin_size +
							     (uint64_t)(first % 64) * info.chunk_size);
				break;
			case 1:
				snprintf(name, sizeof name, "r%u", (unsigned)first);
				(void)store_snapshot_rename(s, fo_snap(s, in), name);
				break;
			case 2:
				(void)store_origin_read(s, first, count, out);
				break;
			case 3:
				(void)store_snapshot_set_usecount(s, fo_snap(s, in), first % 4);
				break;
			}
			break;
		}
	}
	if (store_commit_inflight(s))
		return fo_commit_end(s, &cio);
	return 0;
}

#endif
