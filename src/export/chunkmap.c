/*
 * src/export/chunkmap.c - unique-chunk bitmap and snapshot location map.
 * See chunkmap.h.
 */
#include "src/export/chunkmap.h"

#include "utils/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int chunk_bitmap_init(struct chunk_bitmap *b, uint64_t nbits)
{
	b->nbits = nbits;
	b->nset = 0;
	b->w = calloc(nbits / 64 + 1, sizeof *b->w);
	if (!b->w)
		return err_set(ENOMEM, "out of memory for a %llu-chunk bitmap",
			       (unsigned long long)nbits);
	return 0;
}

void chunk_bitmap_free(struct chunk_bitmap *b)
{
	free(b->w);
	b->w = NULL;
}

void chunk_bitmap_set(struct chunk_bitmap *b, uint64_t start, uint64_t count)
{
	for (uint64_t i = start; i < start + count && i < b->nbits; i++) {
		uint64_t bit = 1ULL << (i % 64);

		if (!(b->w[i / 64] & bit)) {
			b->w[i / 64] |= bit;
			b->nset++;
		}
	}
}

void chunk_bitmap_clear_all(struct chunk_bitmap *b)
{
	if (b->nset)
		memset(b->w, 0, (b->nbits / 64 + 1) * sizeof *b->w);
	b->nset = 0;
}

int chunk_map_init(struct chunk_map *m, size_t max_entries)
{
	size_t cap = 64;

	m->keys = calloc(cap, sizeof *m->keys);
	m->vals = calloc(cap, sizeof *m->vals);
	if (!m->keys || !m->vals) {
		free(m->keys);
		free(m->vals);
		return err_set(ENOMEM, "out of memory for the chunk location cache");
	}
	m->cap = cap;
	m->used = 0;
	m->limit = max_entries < 16 ? 16 : max_entries;
	return 0;
}

/* Doubles the table (at most load 1/2); false if out of memory.  */
static bool grow(struct chunk_map *m)
{
	size_t ncap = m->cap * 2;
	uint64_t *nk = calloc(ncap, sizeof *nk), *nv = calloc(ncap, sizeof *nv);

	if (!nk || !nv) {
		free(nk);
		free(nv);
		return false;
	}
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;

		if (!m->keys[i])
			continue;
		j = (size_t)((m->keys[i] - 1) * 0x9e3779b97f4a7c15ULL >> 17) & (ncap - 1);
		while (nk[j])
			j = (j + 1) & (ncap - 1);
		nk[j] = m->keys[i];
		nv[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = nk;
	m->vals = nv;
	m->cap = ncap;
	return true;
}

void chunk_map_free(struct chunk_map *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = m->vals = NULL;
}

static size_t slot_of(uint64_t key, size_t cap)
{
	key *= 0x9e3779b97f4a7c15ULL;
	return (size_t)(key >> 17) & (cap - 1);
}

bool chunk_map_get(const struct chunk_map *m, uint64_t key, uint64_t *val)
{
	for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == 0)
			return false;
		if (m->keys[i] == key + 1) {
			*val = m->vals[i];
			return true;
		}
	}
}

void chunk_map_put(struct chunk_map *m, uint64_t key, uint64_t val)
{
	size_t i;

	for (i = slot_of(key, m->cap); m->keys[i]; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key + 1) {
			m->vals[i] = val;
			return;
		}
	}
	if (m->used >= m->limit) {
		chunk_map_clear(m);
		i = slot_of(key, m->cap);
	} else if ((m->used + 1) * 2 > m->cap) {
		if (!grow(m))
			chunk_map_clear(m);
		for (i = slot_of(key, m->cap); m->keys[i]; i = (i + 1) & (m->cap - 1))
			;
	}
	m->keys[i] = key + 1;
	m->vals[i] = val;
	m->used++;
}

void chunk_map_clear(struct chunk_map *m)
{
	memset(m->keys, 0, m->cap * sizeof *m->keys);
	m->used = 0;
}
