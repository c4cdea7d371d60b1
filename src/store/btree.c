/*
 * src/store/btree.c - exception b-tree (see btree.h).
 *
 * Invariants: all leaves are at level 0 and at the same depth; entries in
 * a node are strictly ascending, except an internal node's key_0, which is
 * never used (child 0 takes every key below key_1, so key_0 goes stale
 * when child 0 receives smaller keys); the keys of child i lie in
 * [key_i, key_{i+1}) for i >= 1 and below key_1 for child 0;
 * only the root may be empty (an empty tree is one empty leaf).
 */
#include "src/store/btree.h"
#include "src/store/btree_int.h"

#include "utils/assert.h"
#include "utils/err.h"
#include "utils/progress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Debug check for the results of insert and delete: the entries around
 * POS of node D (NR entries of size ES) are in strictly increasing key
 * order.  An internal node's first key is not used, so it is skipped.
 * Every node is ordered when read (get_node), so a change must keep it so
 * where the code alone decides the order: a removal, and an insert into a
 * leaf at the position its own search found.  (An internal node's new key
 * comes from a child, so its order there rests on the tree's data, which
 * btree_verify checks.)  */
static bool ordered_at(const uint8_t *d, uint32_t es, uint32_t nr, uint32_t pos)
{
	uint32_t lo = pos ? pos - 1 : 0, hi = pos + 1 < nr ? pos + 1 : nr ? nr - 1 : 0;

	if (nlevel(d) && lo == 0)
		lo = 1;
	for (uint32_t k = lo; k < hi; k++) {
		const uint8_t *a = d + BTREE_NODE_HDR + (size_t)k * es, *b = a + es;
		if (kcmp(be_origin(a), be_store(a), be_origin(b), be_store(b)) >= 0)
			return false;
	}
	return true;
}

void btree_init(struct btree *t, struct bm *bm, struct spacemap *sm,
		uint64_t meta_start, uint32_t mask_bytes)
{
	memset(t, 0, sizeof *t);
	t->bm = bm;
	t->sm = sm;
	t->meta_start = meta_start;
	t->mask_bytes = mask_bytes;
	t->esize = BE_MASK + mask_bytes;
	t->leaf_cap = (META_BLOCK_SIZE - BTREE_NODE_HDR) / t->esize;
}

static int alloc_node(struct btree *t, uint32_t level, struct bm_block **out)
{
	uint64_t u;
	int ret = sm_alloc(t->sm, &u);

	if (ret < 0)
		return ret == -ENOSPC ? err_set(ENOSPC, "metadata area full") : ret;
	ret = bm_get_new(t->bm, t->meta_start + u, level ? META_T_INTERNAL : META_T_LEAF, out);
	if (ret < 0)
		return ret;
	put_le32((*out)->data + BT_LEVEL, level);
	t->nodes++;
	t->changed = true;
	return 0;
}

static int free_node(struct btree *t, uint64_t blocknr)
{
	t->gen++;	/* the block may be cached still: fingers to it go stale */
	t->nodes--;
	t->changed = true;
	return sm_free(t->sm, blocknr - t->meta_start);
}

int btree_create(struct btree *t)
{
	struct bm_block *b;
	int ret = alloc_node(t, 0, &b);

	if (ret < 0)
		return ret;
	t->root = b->blocknr;
	t->height = 1;
	t->count = 0;
	bm_put(t->bm, b);
	return 0;
}

/* Keys of node D (NR entries of size ES) strictly ascending, as search,
 * insert and remove assume; an internal node's unused first key aside.
 * A node written by csnap always is; one that is not came from a bug or
 * a forged checksum, and is refused like a torn block.  */
static bool node_ordered(const uint8_t *d, uint32_t es, uint32_t nr)
{
	for (uint32_t k = nlevel(d) ? 1 : 0; k + 1 < nr; k++) {
		const uint8_t *a = d + BTREE_NODE_HDR + (size_t)k * es, *b = a + es;
		if (kcmp(be_origin(a), be_store(a), be_origin(b), be_store(b)) >= 0)
			return false;
	}
	return true;
}

/* Reads a node expected at LEVEL and checks what search relies on.  */
static int get_node(struct btree *t, uint64_t blocknr, uint32_t level, struct bm_block **out)
{
	struct bm_block *b;
	int ret;

	if (blocknr < t->meta_start || blocknr - t->meta_start >= sm_nbits(t->sm))
		return err_set(EIO, "b-tree: node pointer %llu outside the tree area",
			       (unsigned long long)blocknr);
	ret = bm_get(t->bm, blocknr, level ? META_T_INTERNAL : META_T_LEAF, &b);
	if (ret < 0)
		return ret;
	if (nlevel(b->data) != level || nnr(b->data) > (level ? BTREE_INT_CAP : t->leaf_cap)) {
		bm_put(t->bm, b);
		return err_set(EIO, "b-tree: node %llu is corrupt (level %u, %u entries)",
			       (unsigned long long)blocknr, nlevel(b->data), nnr(b->data));
	}
	if (!node_ordered(b->data, level ? BTREE_INT_ESIZE : t->esize, nnr(b->data))) {
		bm_put(t->bm, b);
		return err_set(EIO, "b-tree: node %llu has its keys out of order",
			       (unsigned long long)blocknr);
	}
	*out = b;
	return 0;
}

/* First i in [0, n) whose key is >= (strict: >) KEY, or n.  Entries of
 * size ES from BASE, ascending.  Origin chunk numbers are usually dense,
 * so the search starts at an interpolated guess and gallops from there:
 * typically two or three cache lines per node instead of seven.  */
uint32_t btree_search_hint(const uint8_t *base, uint32_t es, uint32_t n,
			   uint64_t o, uint64_t s, bool strict, const uint64_t *range)
{
#define P(i) (strict ? kcmp(be_origin(base + (size_t)(i) * es), be_store(base + (size_t)(i) * es), o, s) > 0 \
		     : kcmp(be_origin(base + (size_t)(i) * es), be_store(base + (size_t)(i) * es), o, s) >= 0)
	if (n == 0)
		return 0;
	/* the guess: from the origin range the parent promised for this node
	 * when known (no extra cache lines), else from the first and last
	 * entries */
	uint64_t o0, on;
	uint32_t span;
	if (range && range[1] > range[0]) {
		o0 = range[0];
		on = range[1];
		span = n;
	} else {
		o0 = be_origin(base);
		on = be_origin(base + (size_t)(n - 1) * es);
		span = n - 1;
	}
	uint32_t g, lo, hi, step = 1;
	if (o <= o0)
		g = 0;
	else if (o >= on)
		g = n - 1;
	else
		g = (uint32_t)((unsigned __int128)(o - o0) * span / (on - o0));
	if (g >= n)
		g = n - 1;
	if (P(g)) {
		hi = g;
		while (hi >= step && P(hi - step)) {
			hi -= step;
			step <<= 1;
		}
		lo = hi >= step ? hi - step + 1 : 0;
	} else {
		lo = g + 1;
		while (lo + step - 1 < n && !P(lo + step - 1)) {
			lo += step;
			step <<= 1;
		}
		hi = lo + step - 1 < n ? lo + step - 1 : n;
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (P(mid))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
#undef P
}

static inline uint32_t search(const uint8_t *base, uint32_t es, uint32_t n,
			      uint64_t o, uint64_t s, bool strict)
{
	return btree_search_hint(base, es, n, o, s, strict, NULL);
}

/* Largest i >= 1 with key_i <= key, else 0.  */
static uint32_t int_search(uint8_t *d, uint64_t o, uint64_t s)
{
	uint32_t nr = nnr(d);

	if (nr <= 1)
		return 0;
	return search(ient(d, 1), BTREE_INT_ESIZE, nr - 1, o, s, true);
}

/* First i with key_i >= key.  */
static uint32_t leaf_search(const struct btree *t, const uint8_t *d, uint64_t o, uint64_t s)
{
	return search(d + BTREE_NODE_HDR, t->esize, nnr(d), o, s, false);
}

void btree_cursor_put(struct btree *t, struct btree_cursor *c)
{
	if (c->leaf)
		bm_put(t->bm, c->leaf);
	c->leaf = NULL;
	c->valid = false;
}

void btree_cursor_dirty(struct btree *t, struct btree_cursor *c)
{
	bm_dirty(t->bm, c->leaf);
}

/* Descend from internal level index D (path[D] set, pidx[D] chosen) to
 * the leftmost leaf below child pidx[D].  */
static int descend_left(struct btree *t, struct btree_cursor *c, uint32_t d)
{
	struct bm_block *b;
	int ret = get_node(t, c->path[d], t->height - 1 - d, &b);

	if (ret < 0)
		return ret;
	uint64_t child = be_child(ient(b->data, c->pidx[d]));
	bm_put(t->bm, b);
	for (uint32_t k = d + 1; k < c->depth; k++) {
		ret = get_node(t, child, t->height - 1 - k, &b);
		if (ret < 0)
			return ret;
		c->path[k] = child;
		c->pidx[k] = 0;
		child = be_child(ient(b->data, 0));
		bm_put(t->bm, b);
	}
	ret = get_node(t, child, 0, &c->leaf);
	if (ret < 0)
		return ret;
	c->idx = 0;
	return 0;
}

/* Moves C to the first entry of the next non-empty leaf.  That entry
 * must come after (O, S) (strictly after when STRICT): a walk sees keys
 * in order even on a tree whose nodes are each sane but disagree with
 * each other (a bug or a forged checksum), so callers that index arrays
 * by the key's distance from where they started stay in bounds.  */
static int next_leaf(struct btree *t, struct btree_cursor *c, uint64_t o, uint64_t s,
		     bool strict)
{
	btree_cursor_put(t, c);
	for (;;) {
		int d;
		for (d = (int)c->depth - 1; d >= 0; d--) {
			struct bm_block *b;
			int ret = get_node(t, c->path[d], t->height - 1 - (uint32_t)d, &b);
			if (ret < 0)
				return ret;
			uint32_t nr = nnr(b->data);
			bm_put(t->bm, b);
			if (c->pidx[d] + 1 < nr) {
				c->pidx[d]++;
				break;
			}
		}
		if (d < 0)
			return 0;	/* end: c->valid stays false */
		int ret = descend_left(t, c, (uint32_t)d);
		if (ret < 0)
			return ret;
		if (nnr(c->leaf->data)) {
			const uint8_t *e = c->leaf->data + BTREE_NODE_HDR;
			int cmp = kcmp(be_origin(e), be_store(e), o, s);

			if (cmp < 0 || (strict && cmp == 0)) {
				uint64_t blk = c->leaf->blocknr;

				btree_cursor_put(t, c);
				return err_set(EIO, "b-tree: leaf %llu is out of order with the "
					       "leaf before it", (unsigned long long)blk);
			}
			c->valid = true;
			return 0;
		}
		bm_put(t->bm, c->leaf);	/* empty non-root leaf: skip it */
		c->leaf = NULL;
	}
}

int btree_seek(struct btree *t, uint64_t o, uint64_t s, struct btree_cursor *c)
{
	uint64_t blk = t->root;
	struct bm_block *b;
	int ret;

	c->leaf = NULL;
	c->valid = false;
	c->depth = t->height - 1;
	if (t->height < 1 || t->height > BTREE_MAX_DEPTH)
		return err_set(EIO, "b-tree: invalid height %u", t->height);
	for (uint32_t d = 0; d < c->depth; d++) {
		uint32_t level = t->height - 1 - d;
		/* hot path: a cached, sane node is read without pinning */
		uint8_t *nd = (uint8_t *)bm_peek(t->bm, blk, META_T_INTERNAL);
		if (nd && nlevel(nd) == level && nnr(nd) && nnr(nd) <= BTREE_INT_CAP) {
			c->path[d] = blk;
			c->pidx[d] = int_search(nd, o, s);
			blk = be_child(ient(nd, c->pidx[d]));
			continue;
		}
		ret = get_node(t, blk, level, &b);
		if (ret < 0)
			return ret;
		if (nnr(b->data) == 0) {
			bm_put(t->bm, b);
			return err_set(EIO, "b-tree: empty internal node %llu", (unsigned long long)blk);
		}
		c->path[d] = blk;
		c->pidx[d] = int_search(b->data, o, s);
		blk = be_child(ient(b->data, c->pidx[d]));
		bm_put(t->bm, b);
	}
	ret = get_node(t, blk, 0, &c->leaf);
	if (ret < 0)
		return ret;
	c->idx = leaf_search(t, c->leaf->data, o, s);
	if (c->idx < nnr(c->leaf->data)) {
		c->valid = true;
		return 0;
	}
	return next_leaf(t, c, o, s, false);
}

int btree_next(struct btree *t, struct btree_cursor *c)
{
	csnap_progress();	/* long walks: the master keeps answering */
	if (!c->valid)
		return 0;
	if (++c->idx < nnr(c->leaf->data))
		return 0;
	c->valid = false;
	const uint8_t *last = c->leaf->data + BTREE_NODE_HDR + (size_t)(c->idx - 1) * t->esize;
	return next_leaf(t, c, be_origin(last), be_store(last), true);
}

/* Pins the path to the leaf where KEY belongs.  nodes[0] = root.  */
static int pin_path(struct btree *t, uint64_t o, uint64_t s,
		    struct bm_block **nodes, uint32_t *idxs)
{
	uint64_t blk = t->root;

	if (t->height < 1 || t->height > BTREE_MAX_DEPTH)
		return err_set(EIO, "b-tree: invalid height %u", t->height);
	for (uint32_t d = 0; d < t->height; d++) {
		int ret = get_node(t, blk, t->height - 1 - d, &nodes[d]);
		if (ret < 0) {
			while (d--)
				bm_put(t->bm, nodes[d]);
			return ret;
		}
		if (d + 1 < t->height) {
			if (nnr(nodes[d]->data) == 0) {
				for (uint32_t k = 0; k <= d; k++)
					bm_put(t->bm, nodes[k]);
				return err_set(EIO, "b-tree: empty internal node %llu",
					       (unsigned long long)blk);
			}
			idxs[d] = int_search(nodes[d]->data, o, s);
			blk = be_child(ient(nodes[d]->data, idxs[d]));
		}
	}
	return 0;
}

static void unpin_path(struct btree *t, struct bm_block **nodes, uint32_t n)
{
	for (uint32_t d = 0; d < n; d++)
		bm_put(t->bm, nodes[d]);
}

/* Insert raw entry E (size ES) at POS of node D with capacity CAP; if full,
 * split and return the new right node in *right (pinned).  */
static int node_insert(struct btree *t, struct bm_block *b, uint32_t es, uint32_t cap,
		       uint32_t pos, const uint8_t *e, struct bm_block **right)
{
	uint8_t *d = b->data;
	uint32_t nr = nnr(d);
	int ret;

	*right = NULL;
	bm_dirty(t->bm, b);
	bm_child_forget(t->bm, d);		/* child pointers shift */
	if (nr < cap) {
		uint8_t *at = d + BTREE_NODE_HDR + (size_t)pos * es;
		memmove(at + es, at, (size_t)(nr - pos) * es);
		memcpy(at, e, es);
		set_nr(d, nr + 1);
		CSNAP_ASSERT(nlevel(d) != 0 || ordered_at(d, es, nr + 1, pos));
		return 0;
	}
	ret = alloc_node(t, nlevel(d), right);
	if (ret < 0)
		return ret;
	uint8_t *rd = (*right)->data;
	/* appending at the end (sequential writes): leave the left node full */
	uint32_t mid = pos == nr ? nr : nr / 2;
	memcpy(rd + BTREE_NODE_HDR, d + BTREE_NODE_HDR + (size_t)mid * es, (size_t)(nr - mid) * es);
	set_nr(rd, nr - mid);
	set_nr(d, mid);
	struct bm_block *into = b;
	if (pos > mid || pos == nr) {
		into = *right;
		pos -= mid;
	}
	uint8_t *id = into->data, *at = id + BTREE_NODE_HDR + (size_t)pos * es;
	uint32_t inr = nnr(id);
	memmove(at + es, at, (size_t)(inr - pos) * es);
	memcpy(at, e, es);
	set_nr(id, inr + 1);
	/* a split: both halves changed in this transaction, every entry kept;
	 * in a leaf, the new entry in order and the right half above the left */
	CSNAP_ASSERT(bm_block_dirty(b) && bm_block_dirty(*right));
	CSNAP_ASSERT(nnr(d) + nnr(rd) == nr + 1 && nnr(d) <= cap && nnr(rd) <= cap);
	CSNAP_ASSERT(nlevel(d) != 0 || ordered_at(id, es, inr + 1, pos));
	CSNAP_ASSERT(nlevel(d) != 0 || !nnr(d) || kcmp(be_origin(d + BTREE_NODE_HDR + (size_t)(nnr(d) - 1) * es),
				     be_store(d + BTREE_NODE_HDR + (size_t)(nnr(d) - 1) * es),
				     be_origin(rd + BTREE_NODE_HDR), be_store(rd + BTREE_NODE_HDR)) < 0);
	return 0;
}

/* Pins the path to key (O, S) (pin_path) and returns the position of
 * that key in the leaf, the first entry not below it.  The key must be
 * there if PRESENT, else must not be: if it is not so, nothing stays
 * pinned and the result is -ENOENT or -EEXIST.  */
static int pin_find(struct btree *t, uint64_t o, uint64_t s, bool present,
		    struct bm_block **nodes, uint32_t *idxs, uint32_t *pos)
{
	int ret = pin_path(t, o, s, nodes, idxs);

	if (ret < 0)
		return ret;
	const uint8_t *leaf = nodes[t->height - 1]->data;
	bool found = false;
	*pos = leaf_search(t, leaf, o, s);
	if (*pos < nnr(leaf)) {
		const uint8_t *x = leaf + BTREE_NODE_HDR + (size_t)*pos * t->esize;
		found = be_origin(x) == o && be_store(x) == s;
	}
	if (found == present)
		return 0;
	unpin_path(t, nodes, t->height);
	return err_set(present ? ENOENT : EEXIST, "b-tree: exception %llu/%llu %s",
		       (unsigned long long)o, (unsigned long long)s, present ? "not found" : "exists");
}

int btree_insert(struct btree *t, uint64_t o, uint64_t s, const uint8_t *mask)
{
	struct bm_block *nodes[BTREE_MAX_DEPTH], *right = NULL;
	uint32_t idxs[BTREE_MAX_DEPTH], pos;
	uint8_t e[BE_MASK + CSNAP_MAX_MASK_BYTES];
	int ret = pin_find(t, o, s, false, nodes, idxs, &pos);

	if (ret < 0)
		return ret;
	uint32_t h = t->height;
	struct bm_block *leaf = nodes[h - 1];
	put_le64(e + BE_ORIGIN, o);
	put_le64(e + BE_STORE, s);
	memcpy(e + BE_MASK, mask, t->mask_bytes);
	ret = node_insert(t, leaf, t->esize, t->leaf_cap, pos, e, &right);
	for (int d = (int)h - 2; ret >= 0 && right; d--) {
		/* push (first key of right, right) into the parent */
		uint8_t ie[BTREE_INT_ESIZE];
		uint8_t *first = right->data + BTREE_NODE_HDR;
		memcpy(ie, first, 16);
		put_le64(ie + BE_CHILD, right->blocknr);
		bm_put(t->bm, right);
		right = NULL;
		if (d < 0) {
			struct bm_block *r;
			ret = alloc_node(t, h, &r);
			if (ret < 0)
				break;
			uint8_t *rd = r->data;
			memset(ient(rd, 0), 0, 16);
			put_le64(ient(rd, 0) + BE_CHILD, t->root);
			memcpy(ient(rd, 1), ie, BTREE_INT_ESIZE);
			set_nr(rd, 2);
			t->root = r->blocknr;
			t->height++;
			bm_put(t->bm, r);
			break;
		}
		ret = node_insert(t, nodes[d], BTREE_INT_ESIZE, BTREE_INT_CAP, idxs[d] + 1, ie, &right);
	}
	if (right)
		bm_put(t->bm, right);
	unpin_path(t, nodes, h);
	if (ret >= 0) {
		t->count++;
		t->changed = true;
	}
	CSNAP_ASSERT(t->height <= BTREE_MAX_DEPTH);
	return ret;
}

static void node_remove(struct btree *t, struct bm_block *b, uint32_t es, uint32_t pos)
{
	uint8_t *d = b->data, *at = d + BTREE_NODE_HDR + (size_t)pos * es;
	uint32_t nr = nnr(d);

	CSNAP_ASSERT(pos < nr);
	bm_dirty(t->bm, b);
	bm_child_forget(t->bm, d);
	memmove(at, at + es, (size_t)(nr - pos - 1) * es);
	set_nr(d, nr - 1);
	CSNAP_ASSERT(nr - 1 == 0 || ordered_at(d, es, nr - 1, pos < nr - 1 ? pos : pos - 1));
}

/* Leaf L (child idx of parent P) is small: merge it with a sibling when
 * both fit in half a leaf.  */
static int try_merge(struct btree *t, struct bm_block *p, uint32_t idx, struct bm_block *l)
{
	uint32_t pnr = nnr(p->data);

	if (pnr < 2)
		return 0;
	uint32_t li = idx + 1 < pnr ? idx : idx - 1;	/* merge li+1 into li */
	struct bm_block *a, *b;
	int ret;
	if (li == idx) {
		a = l;
		ret = get_node(t, be_child(ient(p->data, li + 1)), 0, &b);
		if (ret < 0)
			return ret;
	} else {
		b = l;
		ret = get_node(t, be_child(ient(p->data, li)), 0, &a);
		if (ret < 0)
			return ret;
	}
	uint32_t an = nnr(a->data), bn = nnr(b->data);
	if (an + bn <= t->leaf_cap / 2) {
		bm_dirty(t->bm, a);
		memcpy(lent(t, a->data, an), lent(t, b->data, 0), (size_t)bn * t->esize);
		set_nr(a->data, an + bn);
		ret = free_node(t, b->blocknr);
		node_remove(t, p, BTREE_INT_ESIZE, li + 1);
	}
	bm_put(t->bm, li == idx ? b : a);
	return ret;
}

int btree_delete(struct btree *t, uint64_t o, uint64_t s)
{
	struct bm_block *nodes[BTREE_MAX_DEPTH];
	uint32_t idxs[BTREE_MAX_DEPTH], pos;
	int ret = pin_find(t, o, s, true, nodes, idxs, &pos);

	if (ret < 0)
		return ret;
	uint32_t h = t->height;
	struct bm_block *leaf = nodes[h - 1];
	node_remove(t, leaf, t->esize, pos);
	t->count--;
	t->changed = true;
	if (h > 1) {
		if (nnr(leaf->data) == 0) {
			/* drop empty nodes upwards */
			int d = (int)h - 1;
			while (d > 0 && nnr(nodes[d]->data) == 0) {
				ret = free_node(t, nodes[d]->blocknr);
				if (ret < 0)
					break;
				node_remove(t, nodes[d - 1], BTREE_INT_ESIZE, idxs[d - 1]);
				d--;
			}
		} else if (nnr(leaf->data) < t->leaf_cap / 4) {
			ret = try_merge(t, nodes[h - 2], idxs[h - 2], leaf);
		}
	}
	unpin_path(t, nodes, h);
	/* collapse the root while it is an internal node with <= 1 child */
	while (ret >= 0 && t->height > 1) {
		struct bm_block *r;
		ret = get_node(t, t->root, t->height - 1, &r);
		if (ret < 0)
			break;
		uint32_t nr = nnr(r->data);
		uint64_t child = nr ? be_child(ient(r->data, 0)) : 0;
		bm_put(t->bm, r);
		if (nr > 1)
			break;	/* the result: a leaf root, or an internal one with >= 2 children */
		ret = free_node(t, t->root);
		if (ret < 0)
			break;
		if (nr == 0) {
			ret = btree_create(t);	/* everything went: fresh empty leaf */
			break;
		}
		t->root = child;
		t->height--;
	}
	return ret;
}

struct verify_ctx {
	struct btree *t;
	FILE *report;
	void (*node)(void *arg, uint64_t blocknr);
	void (*entry)(void *arg, const uint8_t *e);
	void *arg;
	uint64_t count;
	long problems;
};

static void vproblem(struct verify_ctx *v, const char *msg, uint64_t blk)
{
	v->problems++;
	if (v->report)
		fprintf(v->report, "b-tree node %llu: %s\n", (unsigned long long)blk, msg);
}

static void verify_node(struct verify_ctx *v, uint64_t blk, uint32_t level,
			bool has_lo, uint64_t lo_o, uint64_t lo_s,
			bool has_hi, uint64_t hi_o, uint64_t hi_s, bool is_root)
{
	struct btree *t = v->t;
	struct bm_block *b;

	if (get_node(t, blk, level, &b) < 0) {
		vproblem(v, err_get(), blk);
		return;
	}
	if (v->node)
		v->node(v->arg, blk);
	uint8_t *d = b->data;
	uint32_t nr = nnr(d), es = level ? BTREE_INT_ESIZE : t->esize;
	if (nr == 0 && !is_root)
		vproblem(v, "empty non-root node", blk);
	for (uint32_t i = 0; i < nr; i++) {
		uint8_t *e = d + BTREE_NODE_HDR + (size_t)i * es;
		uint64_t o = be_origin(e), s = be_store(e);
		/* an internal node's first key is not used in search and may be
		 * stale (larger than the second) after inserts into child 0 */
		if (i > (level ? 1u : 0u)) {
			uint8_t *pe = e - es;
			if (kcmp(be_origin(pe), be_store(pe), o, s) >= 0) {
				char msg[160];
				snprintf(msg, sizeof msg, "keys out of order at entry %u of %u: %llu/%llu after %llu/%llu",
					 i, nr, (unsigned long long)o, (unsigned long long)s,
					 (unsigned long long)be_origin(pe), (unsigned long long)be_store(pe));
				vproblem(v, msg, blk);
			}
		}
		if ((level == 0 || i > 0) && has_lo && kcmp(o, s, lo_o, lo_s) < 0)
			vproblem(v, "key below the parent's bound", blk);
		if ((level == 0 || i > 0) && has_hi && kcmp(o, s, hi_o, hi_s) >= 0)
			vproblem(v, "key above the parent's bound", blk);
		if (level == 0) {
			v->count++;
			if (v->entry)
				v->entry(v->arg, e);
			continue;
		}
		bool clo = i > 0 ? true : has_lo;
		uint64_t co = i > 0 ? o : lo_o, cs = i > 0 ? s : lo_s;
		bool chi = i + 1 < nr ? true : has_hi;
		uint64_t ho = i + 1 < nr ? be_origin(e + es) : hi_o;
		uint64_t hs = i + 1 < nr ? be_store(e + es) : hi_s;
		verify_node(v, be_child(e), level - 1, clo, co, cs, chi, ho, hs, false);
	}
	bm_put(t->bm, b);
}

long btree_verify(struct btree *t, FILE *report,
		  void (*node)(void *arg, uint64_t blocknr),
		  void (*entry)(void *arg, const uint8_t *e), void *arg)
{
	struct verify_ctx v = { .t = t, .report = report, .node = node, .entry = entry, .arg = arg };

	if (t->height < 1 || t->height > BTREE_MAX_DEPTH) {
		if (report)
			fprintf(report, "b-tree: invalid height %u\n", t->height);
		return 1;
	}
	verify_node(&v, t->root, t->height - 1, false, 0, 0, false, 0, 0, true);
	if (v.count != t->count) {
		v.problems++;
		if (report)
			fprintf(report, "b-tree: holds %llu exceptions, header says %llu\n",
				(unsigned long long)v.count, (unsigned long long)t->count);
	}
	return v.problems;
}
