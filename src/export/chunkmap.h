/*
 * src/export/chunkmap.h - the data path's small memories: a bitmap of
 * origin chunks known to be unique (written without asking the server
 * until the next snapshot barrier), and a bounded hash map from snapshot
 * chunk to store chunk.
 *
 * Both are caches: forgetting is always safe (the next request asks the
 * server again), remembering wrongly never is.  The map therefore drops
 * everything when it fills rather than growing without bound.
 */
#ifndef CSNAP_EXPORT_CHUNKMAP_H
#define CSNAP_EXPORT_CHUNKMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chunk_bitmap {
	uint64_t nbits;
	uint64_t *w;
	uint64_t nset;
};

int chunk_bitmap_init(struct chunk_bitmap *b, uint64_t nbits);
void chunk_bitmap_free(struct chunk_bitmap *b);
static inline bool chunk_bitmap_test(const struct chunk_bitmap *b, uint64_t i)
{
	return i < b->nbits && (b->w[i / 64] >> (i % 64)) & 1;
}
void chunk_bitmap_set(struct chunk_bitmap *b, uint64_t start, uint64_t count);
void chunk_bitmap_clear_all(struct chunk_bitmap *b);

struct chunk_map {
	uint64_t *keys;		/* chunk + 1; 0 = empty slot */
	uint64_t *vals;
	size_t cap;		/* power of two */
	size_t used;
	size_t limit;		/* entries before everything is dropped */
};

/* Grows on demand up to MAX_ENTRIES (about 32 bytes each), then starts
 * over empty.  */
int chunk_map_init(struct chunk_map *m, size_t max_entries);
void chunk_map_free(struct chunk_map *m);
bool chunk_map_get(const struct chunk_map *m, uint64_t key, uint64_t *val);
void chunk_map_put(struct chunk_map *m, uint64_t key, uint64_t val);
void chunk_map_clear(struct chunk_map *m);

#endif
