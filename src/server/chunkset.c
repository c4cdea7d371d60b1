/*
 * src/server/chunkset.c - a hash multiset of chunk numbers: read-lock
 * counts and busy (uncommitted copy-out) chunks.
 *
 * Open addressing with linear probing.  A slot is empty (count 0, key
 * EMPTY), live (count > 0) or a tombstone (count 0, key TOMB).  The table
 * grows at 50% load (live + tombstones) and is rebuilt to drop tombstones.
 */
#include "src/server/chunkset.h"

#include "utils/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY	UINT64_MAX
#define TOMB	(UINT64_MAX - 1)

static size_t hash64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (size_t)k;
}

void chunkset_init(struct chunkset *cs)
{
	memset(cs, 0, sizeof *cs);
}

void chunkset_free(struct chunkset *cs)
{
	free(cs->keys);
	free(cs->counts);
	memset(cs, 0, sizeof *cs);
}

void chunkset_clear(struct chunkset *cs)
{
	if (cs->cap) {
		for (size_t i = 0; i < cs->cap; i++)
			cs->keys[i] = EMPTY;
		memset(cs->counts, 0, cs->cap * sizeof *cs->counts);
	}
	cs->used = cs->tomb = 0;
	cs->total = 0;
}

static int rehash(struct chunkset *cs, size_t cap)
{
	uint64_t *keys = malloc(cap * sizeof *keys);
	uint32_t *counts = calloc(cap, sizeof *counts);
	if (!keys || !counts) {
		free(keys);
		free(counts);
		return err_set(ENOMEM, "out of memory for a chunk table of %zu", cap);
	}
	for (size_t i = 0; i < cap; i++)
		keys[i] = EMPTY;
	for (size_t i = 0; i < cs->cap; i++) {
		if (!cs->counts[i])
			continue;
		size_t j = hash64(cs->keys[i]) & (cap - 1);
		while (keys[j] != EMPTY)
			j = (j + 1) & (cap - 1);
		keys[j] = cs->keys[i];
		counts[j] = cs->counts[i];
	}
	free(cs->keys);
	free(cs->counts);
	cs->keys = keys;
	cs->counts = counts;
	cs->cap = cap;
	cs->tomb = 0;
	return 0;
}

static size_t find(const struct chunkset *cs, uint64_t key)
{
	if (!cs->cap)
		return SIZE_MAX;
	size_t j = hash64(key) & (cs->cap - 1);
	for (size_t probes = 0; probes < cs->cap; probes++) {
		if (cs->keys[j] == EMPTY)
			return SIZE_MAX;
		if (cs->counts[j] && cs->keys[j] == key)
			return j;
		j = (j + 1) & (cs->cap - 1);
	}
	return SIZE_MAX;
}

int chunkset_add(struct chunkset *cs, uint64_t key, uint32_t n)
{
	if (!n)
		return 0;
	size_t i = find(cs, key);
	if (i != SIZE_MAX) {
		cs->counts[i] += n;
		cs->total += n;
		return 0;
	}
	if ((cs->used + cs->tomb + 1) * 2 > cs->cap) {
		size_t cap = 64;
		while (cap < (cs->used + 1) * 4)
			cap *= 2;
		int r = rehash(cs, cap);
		if (r < 0)
			return r;
	}
	size_t j = hash64(key) & (cs->cap - 1);
	while (cs->counts[j])
		j = (j + 1) & (cs->cap - 1);
	if (cs->keys[j] == TOMB)
		cs->tomb--;
	cs->keys[j] = key;
	cs->counts[j] = n;
	cs->used++;
	cs->total += n;
	return 0;
}

uint32_t chunkset_sub(struct chunkset *cs, uint64_t key, uint32_t n)
{
	size_t i = find(cs, key);
	if (i == SIZE_MAX)
		return 0;
	uint32_t take = cs->counts[i] < n ? cs->counts[i] : n;
	cs->counts[i] -= take;
	cs->total -= take;
	if (!cs->counts[i]) {
		cs->keys[i] = TOMB;
		cs->used--;
		cs->tomb++;
	}
	return take;
}

uint32_t chunkset_get(const struct chunkset *cs, uint64_t key)
{
	size_t i = find(cs, key);
	return i == SIZE_MAX ? 0 : cs->counts[i];
}

bool chunkset_any(const struct chunkset *cs, uint64_t start, uint64_t count)
{
	if (!cs->used)
		return false;
	if (count > cs->used * 4) {
		/* Large range, few entries: scan the table instead.  */
		for (size_t i = 0; i < cs->cap; i++)
			if (cs->counts[i] && cs->keys[i] >= start && cs->keys[i] - start < count)
				return true;
		return false;
	}
	for (uint64_t k = 0; k < count; k++)
		if (find(cs, start + k) != SIZE_MAX)
			return true;
	return false;
}

bool chunkset_next(const struct chunkset *cs, size_t *pos, uint64_t *key, uint32_t *count)
{
	for (; *pos < cs->cap; (*pos)++) {
		if (cs->counts[*pos]) {
			*key = cs->keys[*pos];
			*count = cs->counts[*pos];
			(*pos)++;
			return true;
		}
	}
	return false;
}
