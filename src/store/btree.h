/*
 * src/store/btree.h - the exception b-tree: ordered map from the key
 * (origin chunk, store chunk) to a share mask, in 4 KiB metadata blocks
 * allocated from the tree area's space map.
 *
 * All exceptions of one origin chunk are adjacent (same first key half),
 * so a range of origin chunks is one descent plus a forward scan.  Leaf
 * entries are {le64 origin, le64 store, mask[mask_bytes]}; internal entries
 * {le64 origin, le64 store, le64 child}, where an entry's key is a lower
 * bound of its child's keys (the first entry's key is not used at all and
 * may be stale).
 *
 * Node and entry layouts (BT_*, BE_*) are in format.h: meta header, entry
 * count, level (0 = leaf), entries from BTREE_NODE_HDR.  Nodes change in place through the
 * journal.  Deletion removes empty nodes, merges a leaf into a sibling when
 * both together are at most half full, and collapses a single-child root.
 */
#ifndef CSNAP_STORE_BTREE_H
#define CSNAP_STORE_BTREE_H

#include "src/store/bm.h"
#include "src/store/format.h"
#include "src/store/spacemap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define BTREE_INT_CAP	((META_BLOCK_SIZE - BTREE_NODE_HDR) / BTREE_INT_ESIZE)
#define BTREE_MAX_DEPTH	16
#define CSNAP_MAX_MASK_BYTES	(CSNAP_MAX_SNAPSHOTS_LIMIT / 8)

struct btree {
	struct bm *bm;
	struct spacemap *sm;	/* tree area: unit u is block meta_start + u */
	uint64_t meta_start;
	uint32_t esize;		/* leaf entry size: BE_MASK + mask_bytes */
	uint32_t mask_bytes;
	uint32_t leaf_cap;
	/* persistent state (the engine saves it in its header block) */
	uint64_t root;
	uint32_t height;	/* levels; 1 = root is a leaf */
	uint64_t count;		/* entries */
	uint64_t nodes;		/* blocks in use */
	bool changed;		/* state above changed since the engine saved it */
	/* lookup fingers (btree_peek.c): in memory only */
	uint64_t gen;		/* bumped whenever a node is freed */
	struct btree_finger *fingers;	/* NULL until the first lookup */
	size_t finger_mask;
};

struct btree_cursor {
	struct bm_block *leaf;	/* pinned while valid */
	uint32_t idx;
	uint32_t depth;
	uint64_t path[BTREE_MAX_DEPTH];	/* blocknr per level, root first */
	uint32_t pidx[BTREE_MAX_DEPTH];	/* child index taken per level */
	bool valid;
};

static inline uint64_t be_origin(const uint8_t *e) { return get_le64(e + BE_ORIGIN); }
static inline uint64_t be_store(const uint8_t *e) { return get_le64(e + BE_STORE); }
static inline uint8_t *be_mask(uint8_t *e) { return e + BE_MASK; }
static inline const uint8_t *be_cmask(const uint8_t *e) { return e + BE_MASK; }
static inline uint64_t be_child(const uint8_t *e) { return get_le64(e + BE_CHILD); }

void btree_init(struct btree *t, struct bm *bm, struct spacemap *sm,
		uint64_t meta_start, uint32_t mask_bytes);
/* Frees what lookups allocated (the fingers).  */
void btree_release(struct btree *t);
/* Allocates an empty root leaf.  */
int btree_create(struct btree *t);

/* Positions C at the first entry >= (origin, store).  c->valid is false at
 * the end of the tree.  Release with btree_cursor_put().  */
int btree_seek(struct btree *t, uint64_t origin, uint64_t store, struct btree_cursor *c);
int btree_next(struct btree *t, struct btree_cursor *c);
/* Lookup fast path through cached blocks only, pinning nothing: the leaf
 * where (origin, store) belongs and in *idx the first entry >= it (*nr
 * entries).  NULL when some block on the way is not cached (use
 * btree_seek).  Valid only until the next call that may load a block.
 * A finger (btree_peek.c) remembers the leaf a window of origin chunks
 * was last found in, so most lookups go straight to the leaf.  */
const uint8_t *btree_peek(struct btree *t, uint64_t origin, uint64_t store,
			  uint32_t *idx, uint32_t *nr);
/* Where btree_peek will first look for ORIGIN (its finger), or NULL: for a
 * caller to prefetch while it does other work first.  Only an address.  */
const void *btree_peek_first_line(const struct btree *t, uint64_t origin);
void btree_cursor_put(struct btree *t, struct btree_cursor *c);
static inline uint8_t *btree_entry(const struct btree *t, const struct btree_cursor *c)
{ return c->leaf->data + BTREE_NODE_HDR + (size_t)c->idx * t->esize; }
/* Call before changing the mask of the cursor's entry in place.  */
void btree_cursor_dirty(struct btree *t, struct btree_cursor *c);

/* -EEXIST if the key is present.  */
int btree_insert(struct btree *t, uint64_t origin, uint64_t store, const uint8_t *mask);
/* -ENOENT if absent.  */
int btree_delete(struct btree *t, uint64_t origin, uint64_t store);

/* Full structural check: key order and bounds, levels, counts, node types
 * and checksums.  Calls NODE for each node block and ENTRY for each leaf
 * entry; prints problems to REPORT; returns the number found.  */
long btree_verify(struct btree *t, FILE *report,
		  void (*node)(void *arg, uint64_t blocknr),
		  void (*entry)(void *arg, const uint8_t *e), void *arg);

#endif
