/*
 * src/server/chunkset.h - a hash multiset of chunk numbers (chunkset.c):
 * the server's read-lock counts and busy (uncommitted copy-out) chunks.
 * A value type: embed it, chunkset_init() it, chunkset_free() it.
 */
#ifndef CSNAP_SERVER_CHUNKSET_H
#define CSNAP_SERVER_CHUNKSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chunkset {
	uint64_t *keys;
	uint32_t *counts;	/* 0 = empty slot */
	size_t cap;		/* power of two */
	size_t used;		/* slots with count > 0 */
	size_t tomb;		/* deleted slots (count 0, key ~0) */
	uint64_t total;		/* sum of counts */
};

void chunkset_init(struct chunkset *cs);
void chunkset_free(struct chunkset *cs);
void chunkset_clear(struct chunkset *cs);
/* Adds n to key's count.  0 or -ENOMEM.  */
int chunkset_add(struct chunkset *cs, uint64_t key, uint32_t n);
/* Subtracts up to n from key's count; returns how much was subtracted. */
uint32_t chunkset_sub(struct chunkset *cs, uint64_t key, uint32_t n);
uint32_t chunkset_get(const struct chunkset *cs, uint64_t key);
/* Any key in [start, start+count) present?  */
bool chunkset_any(const struct chunkset *cs, uint64_t start, uint64_t count);
/* Iterate: pass *pos = 0 first; returns false at the end.  */
bool chunkset_next(const struct chunkset *cs, size_t *pos, uint64_t *key, uint32_t *count);

#endif
