/*
 * src/store/snaptable.c - load/save of the snapshot table (snaptable.h).
 */
#include "src/store/snaptable.h"

#include "utils/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int st_format(struct bm *bm, uint64_t start, uint32_t nslots)
{
	for (uint64_t i = 0; i < st_blocks_for(nslots); i++) {
		struct bm_block *b;
		int ret = bm_get_new(bm, start + i, META_T_TABLE, &b);
		if (ret < 0)
			return ret;
		bm_put(bm, b);
	}
	return 0;
}

static void decode(const uint8_t *p, struct store_snapshot *s)
{
	s->id = get_le32(p + SL_ID);
	s->bit = get_le32(p + SL_BIT);
	s->flags = get_le32(p + SL_FLAGS);
	s->usecount = get_le32(p + SL_USECOUNT);
	s->ctime = get_le64(p + SL_CTIME);
	s->priority = (int32_t)get_le32(p + SL_PRIORITY);
	s->parent_id = get_le32(p + SL_PARENT);
	s->origin_chunks = get_le64(p + SL_ORIGIN_CHUNKS);
	memcpy(s->name, p + SL_NAME, STORE_SNAP_NAME_MAX);
	s->name[STORE_SNAP_NAME_MAX] = 0;
	memcpy(s->req_id, p + SL_REQ_ID, STORE_REQ_ID_LEN);
	/* one cursor field, whose meaning the slot's kind gives */
	if (s->flags & ST_ROLLBACK)
		s->rb_cursor = get_le64(p + SL_RB_CURSOR);
	else
		s->clone_next = get_le64(p + SL_CLONE_NEXT);
}

static void encode(uint8_t *p, const struct store_snapshot *s)
{
	memset(p, 0, ST_SLOT_SIZE);
	if (!s->id)
		return;
	put_le32(p + SL_ID, s->id);
	put_le32(p + SL_BIT, s->bit);
	put_le32(p + SL_FLAGS, s->flags);
	put_le32(p + SL_USECOUNT, s->usecount);
	put_le64(p + SL_CTIME, s->ctime);
	put_le32(p + SL_PRIORITY, (uint32_t)s->priority);
	put_le32(p + SL_PARENT, s->parent_id);
	put_le64(p + SL_ORIGIN_CHUNKS, s->origin_chunks);
	memcpy(p + SL_NAME, s->name, strnlen(s->name, STORE_SNAP_NAME_MAX));
	memcpy(p + SL_REQ_ID, s->req_id, STORE_REQ_ID_LEN);
	if (s->flags & ST_ROLLBACK)
		put_le64(p + SL_RB_CURSOR, s->rb_cursor);
	else
		put_le64(p + SL_CLONE_NEXT, s->clone_next);
}

int st_load(struct snaptable *st, struct bm *bm, uint64_t start, uint32_t nslots)
{
	memset(st, 0, sizeof *st);
	st->bm = bm;
	st->start = start;
	st->nslots = nslots;
	st->slot = calloc(nslots, sizeof *st->slot);
	if (!st->slot)
		return err_set(ENOMEM, "out of memory");
	uint32_t rollbacks = 0;
	for (uint32_t i = 0; i < nslots; i++) {
		struct bm_block *b;
		int ret = bm_get(bm, start + i / ST_SLOTS_PER_BLOCK, META_T_TABLE, &b);
		if (ret < 0) {
			st_free(st);
			return err_prefix(-ret, "snapshot table");
		}
		const uint8_t *p = b->data + ST_HDR_SIZE + (i % ST_SLOTS_PER_BLOCK) * ST_SLOT_SIZE;
		decode(p, &st->slot[i]);
		bool name_ok = memchr(p + SL_NAME, 0, SL_NAME_SIZE) != NULL;
		bm_put(bm, b);
		struct store_snapshot *s = &st->slot[i];
		if (s->id && (s->bit != i || !name_ok || !s->flags || (s->flags & ~ST_KNOWN_FLAGS) ||
			      __builtin_popcount(s->flags) != 1 ||
			      (s->clone_next && !(s->flags & STORE_SNAP_CLONING)))) {
			st_free(st);
			return err_set(EIO, "snapshot table: slot %u is corrupt", i);
		}
		if (s->id && (s->flags & ST_ROLLBACK) && ++rollbacks > 1) {
			st_free(st);
			return err_set(EIO, "snapshot table: slot %u is a second rollback source", i);
		}
	}
	return 0;
}

void st_free(struct snaptable *st)
{
	free(st->slot);
	st->slot = NULL;
}

int st_save(struct snaptable *st, uint32_t i)
{
	struct bm_block *b;
	int ret = bm_get(st->bm, st->start + i / ST_SLOTS_PER_BLOCK, META_T_TABLE, &b);

	if (ret < 0)
		return ret;
	bm_dirty(st->bm, b);
	encode(b->data + ST_HDR_SIZE + (i % ST_SLOTS_PER_BLOCK) * ST_SLOT_SIZE, &st->slot[i]);
	bm_put(st->bm, b);
	return 0;
}
