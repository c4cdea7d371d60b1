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
	s->id = get_le32(p);
	s->bit = get_le32(p + 4);
	s->flags = get_le32(p + 8);
	s->usecount = get_le32(p + 12);
	s->ctime = get_le64(p + 16);
	s->priority = (int32_t)get_le32(p + 24);
	s->parent_id = get_le32(p + 28);
	s->origin_chunks = get_le64(p + 32);
	memcpy(s->name, p + 40, STORE_SNAP_NAME_MAX);
	s->name[STORE_SNAP_NAME_MAX] = 0;
	memcpy(s->req_id, p + 104, STORE_REQ_ID_LEN);
}

static void encode(uint8_t *p, const struct store_snapshot *s)
{
	memset(p, 0, ST_SLOT_SIZE);
	if (!s->id)
		return;
	put_le32(p, s->id);
	put_le32(p + 4, s->bit);
	put_le32(p + 8, s->flags);
	put_le32(p + 12, s->usecount);
	put_le64(p + 16, s->ctime);
	put_le32(p + 24, (uint32_t)s->priority);
	put_le32(p + 28, s->parent_id);
	put_le64(p + 32, s->origin_chunks);
	memcpy(p + 40, s->name, strnlen(s->name, STORE_SNAP_NAME_MAX));
	memcpy(p + 104, s->req_id, STORE_REQ_ID_LEN);
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
	for (uint32_t i = 0; i < nslots; i++) {
		struct bm_block *b;
		int ret = bm_get(bm, start + i / ST_SLOTS_PER_BLOCK, META_T_TABLE, &b);
		if (ret < 0) {
			st_free(st);
			return err_prefix(-ret, "snapshot table");
		}
		const uint8_t *p = b->data + ST_HDR_SIZE + (i % ST_SLOTS_PER_BLOCK) * ST_SLOT_SIZE;
		decode(p, &st->slot[i]);
		bool name_ok = memchr(p + 40, 0, 64) != NULL;
		bm_put(bm, b);
		struct store_snapshot *s = &st->slot[i];
		if (s->id && (s->bit != i || !name_ok || !s->flags || (s->flags & ~ST_KNOWN_FLAGS) ||
			      __builtin_popcount(s->flags) != 1)) {
			st_free(st);
			return err_set(EIO, "snapshot table: slot %u is corrupt", i);
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
