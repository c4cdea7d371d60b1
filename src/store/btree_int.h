/*
 * src/store/btree_int.h - node accessors and the in-node search shared by
 * the b-tree's files (btree.c: updates and cursors; btree_peek.c: the
 * lookup fast path).  Private to src/store/btree*.c.
 */
#ifndef CSNAP_STORE_BTREE_INT_H
#define CSNAP_STORE_BTREE_INT_H

#include "src/store/btree.h"

static inline uint32_t nnr(const uint8_t *d) { return get_le32(d + BT_NR); }
static inline void set_nr(uint8_t *d, uint32_t n) { put_le32(d + BT_NR, n); }
static inline uint32_t nlevel(const uint8_t *d) { return get_le32(d + BT_LEVEL); }
static inline uint8_t *ient(uint8_t *d, uint32_t i) { return d + BTREE_NODE_HDR + (size_t)i * BTREE_INT_ESIZE; }
static inline uint8_t *lent(const struct btree *t, uint8_t *d, uint32_t i)
{ return d + BTREE_NODE_HDR + (size_t)i * t->esize; }

static inline int kcmp(uint64_t o1, uint64_t s1, uint64_t o2, uint64_t s2)
{
	if (o1 != o2)
		return o1 < o2 ? -1 : 1;
	return s1 < s2 ? -1 : s1 > s2;
}

/* First i in [0, n) whose key is >= (strict: >) (O, S), or n, among N
 * ascending entries of size ES from BASE.  RANGE (or NULL): the origin
 * range [range[0], range[1]) the node is believed to cover, used only to
 * aim the first probe.  */
uint32_t btree_search_hint(const uint8_t *base, uint32_t es, uint32_t n,
			   uint64_t o, uint64_t s, bool strict, const uint64_t *range);

#endif
