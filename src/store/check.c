/*
 * src/store/check.c - full consistency check of a store (csnap check).
 *
 * Verifies, on the committed state (journal replayed in memory): both
 * superblock copies; the snapshot table; b-tree structure, order, bounds,
 * checksums and counts; that every exception's store chunk is inside the
 * data area and used by exactly one exception; that no tree block is
 * reachable twice; that masks are non-empty, name only snapshots in the
 * table, and give each snapshot at most one exception per origin chunk;
 * that the cleanup cursor's promise holds; that a running clone (clone.c)
 * has a live parent and, beyond its cursor, its bit only beside the
 * parent's; that no exception below a running rollback's cursor still
 * carries its source's bit; that the usage counters equal what the walk
 * counts; and that both bitmaps match exactly what the tree and the
 * counter blocks reference.
 */
#include "src/store/store_int.h"

#include "utils/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct chk {
	struct store *s;
	FILE *out;
	long problems;
	uint8_t *dseen, *mseen;		/* bitmaps: referenced data chunks / tree blocks */
	uint64_t allowed[MASK_WORDS_MAX];	/* bits owned by some table slot */
	uint64_t cleaning[MASK_WORDS_MAX];
	uint64_t acc[MASK_WORDS_MAX];	/* bits seen for the current origin chunk */
	uint64_t cur_origin;
	bool have_cur;
	int clone_bit, clone_parent;	/* running clone's and parent's bits, -1 */
	uint64_t clone_next;
	uint64_t nodes;
	uint64_t *uniq, *shared, multi, uncounted;	/* usage counters as the walk finds them */
};

__attribute__((format(printf, 2, 3)))
static void problem(struct chk *k, const char *fmt, ...)
{
	va_list ap;

	k->problems++;
	if (!k->out || k->problems > 200)
		return;
	va_start(ap, fmt);
	vfprintf(k->out, fmt, ap);
	va_end(ap);
	fputc('\n', k->out);
	if (k->problems == 200)
		fprintf(k->out, "(more problems not listed)\n");
}

static bool test_set(uint8_t *bits, uint64_t i)
{
	bool was = bits[i / 8] & (1u << (i % 8));
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
	return was;
}

static void on_node(void *arg, uint64_t blocknr)
{
	struct chk *k = arg;
	uint64_t u = blocknr - k->s->sb.engine.meta_start;

	k->nodes++;
	if (test_set(k->mseen, u))
		problem(k, "tree block %llu is reachable twice", (unsigned long long)blocknr);
}

static void on_entry(void *arg, const uint8_t *e)
{
	struct chk *k = arg;
	struct store *s = k->s;
	uint64_t o = be_origin(e), st = be_store(e);
	bool empty = true;

	if (o >= s->origin_chunks)
		problem(k, "exception for origin chunk %llu beyond the origin (%llu chunks)",
			(unsigned long long)o, (unsigned long long)s->origin_chunks);
	if (st >= s->sb.engine.data_chunks)
		problem(k, "origin chunk %llu: store chunk %llu outside the data area",
			(unsigned long long)o, (unsigned long long)st);
	else if (test_set(k->dseen, st))
		problem(k, "store chunk %llu is referenced twice (again by origin chunk %llu)",
			(unsigned long long)st, (unsigned long long)o);
	if (!k->have_cur || o != k->cur_origin) {
		memset(k->acc, 0, sizeof k->acc);
		k->cur_origin = o;
		k->have_cur = true;
	}
	if (s->rb_slot >= 0 && mask_test(e + BE_MASK, (uint32_t)s->rb_slot) &&
	    o < s->st.slot[s->rb_slot].rb_cursor)
		problem(k, "origin chunk %llu: rollback source's bit left behind the rollback cursor (%llu)",
			(unsigned long long)o, (unsigned long long)s->st.slot[s->rb_slot].rb_cursor);
	bool behind = s->cleanup_active &&
		(o < s->cur_o || (o == s->cur_o && st < s->cur_s));
	for (uint32_t w = 0; w < s->mask_words; w++) {
		uint64_t m = mask_word(e + BE_MASK, w);
		empty &= m == 0;
		if (m & ~k->allowed[w])
			problem(k, "origin chunk %llu, store chunk %llu: mask names bit %d, which no snapshot owns",
				(unsigned long long)o, (unsigned long long)st,
				(int)(w * 64 + (uint32_t)__builtin_ctzll(m & ~k->allowed[w])));
		if (m & k->acc[w])
			problem(k, "origin chunk %llu: snapshot bit %d is in two exceptions",
				(unsigned long long)o, (int)(w * 64 + (uint32_t)__builtin_ctzll(m & k->acc[w])));
		if (m & s->users[w]) {
			for (uint64_t b = m & s->users[w]; b; b &= b - 1) {
				uint32_t slot = w * 64 + (uint32_t)__builtin_ctzll(b);
				if (o >= store_snap_chunks(s, slot))
					problem(k, "origin chunk %llu: exception for snapshot %u, which "
						"covers only %llu chunks", (unsigned long long)o,
						s->st.slot[slot].id,
						(unsigned long long)store_snap_chunks(s, slot));
			}
		}
		if (behind && (m & k->cleaning[w]))
			problem(k, "origin chunk %llu: deleted snapshot's bit left behind the cleanup cursor",
				(unsigned long long)o);
		k->acc[w] |= m;
	}
	if (k->clone_bit >= 0 && o >= k->clone_next && mask_test(e + BE_MASK, (uint32_t)k->clone_bit) &&
	    (k->clone_parent < 0 || !mask_test(e + BE_MASK, (uint32_t)k->clone_parent)))
		problem(k, "origin chunk %llu, store chunk %llu: the snapshot being cloned has its bit "
			"beyond its walk without its parent's", (unsigned long long)o, (unsigned long long)st);
	if (empty)
		problem(k, "origin chunk %llu, store chunk %llu: exception with an empty share mask",
			(unsigned long long)o, (unsigned long long)st);
	cnt_account(k->uniq, k->shared, &k->multi, &k->uncounted, e + BE_MASK, s->mask_words,
		    s->st.nslots, +1, NULL, NULL);
}

/* The usage counters' blocks are tree-area blocks too; their figures must
 * be exactly what the walk counted (counters.h).  Absent counters (a
 * store made before they existed) are not damage: `store_counters_state`
 * says so and check --repair-counters builds them.  */
static void check_counters(struct chk *k)
{
	struct store *s = k->s;
	const struct store_counters *c = &s->cnt;

	/* (the header check keeps the listed blocks inside the tree area) */
	for (uint32_t i = 0; (c->valid || c->damaged) && i < c->nblocks && i < CNT_BLOCKS_MAX; i++)
		if (test_set(k->mseen, c->block[i] - s->sb.engine.meta_start))
			problem(k, "usage counter block %llu is also used by the tree",
				(unsigned long long)c->block[i]);
	if (c->damaged) {
		problem(k, "usage counters: %s", c->why);
		return;
	}
	if (!c->valid)
		return;
	uint32_t bad = 0;
	for (uint32_t i = 0; i < s->st.nslots; i++) {
		if (c->uniq[i] == k->uniq[i] && c->shared[i] == k->shared[i])
			continue;
		if (++bad <= 10)
			problem(k, "usage counters: slot %u (snapshot id %u) records %llu unique, %llu shared; the tree holds %llu unique, %llu shared",
				i, s->st.slot[i].id, (unsigned long long)c->uniq[i],
				(unsigned long long)c->shared[i], (unsigned long long)k->uniq[i],
				(unsigned long long)k->shared[i]);
	}
	if (bad > 10)
		problem(k, "usage counters: %u slots wrong in all", bad);
	if (c->multi != k->multi)
		problem(k, "usage counters: %llu shared exceptions recorded, the tree holds %llu",
			(unsigned long long)c->multi, (unsigned long long)k->multi);
}

static void check_table(struct chk *k)
{
	struct store *s = k->s;
	uint32_t maxid = 0;

	for (uint32_t i = 0; i < s->st.nslots; i++) {
		const struct store_snapshot *a = &s->st.slot[i];
		if (!a->id)
			continue;
		k->allowed[i / 64] |= 1ULL << (i % 64);
		if (a->flags & STORE_SNAP_CLONING) {
			if (k->clone_bit >= 0)
				problem(k, "two snapshots are being cloned (\"%s\" and \"%s\")",
					s->st.slot[k->clone_bit].name, a->name);
			k->clone_bit = (int)i;
			k->clone_next = a->clone_next;
			k->clone_parent = store_snap_slot(s, a->parent_id, true);
			if (k->clone_parent < 0)
				problem(k, "snapshot \"%s\" is being cloned from snapshot %u, which is not live",
					a->name, a->parent_id);
			if (a->clone_next > s->origin_chunks)
				problem(k, "snapshot \"%s\": clone cursor %llu beyond the origin", a->name,
					(unsigned long long)a->clone_next);
		}
		if (a->flags & ST_CLEANING)
			k->cleaning[i / 64] |= 1ULL << (i % 64);
		if (a->id > maxid)
			maxid = a->id;
		for (uint32_t j = i + 1; j < s->st.nslots; j++) {
			const struct store_snapshot *b = &s->st.slot[j];
			if (b->id == a->id)
				problem(k, "snapshot id %u appears twice in the table", a->id);
			if (b->id && (a->flags & (STORE_SNAP_LIVE | STORE_SNAP_CLONING)) &&
			    (b->flags & (STORE_SNAP_LIVE | STORE_SNAP_CLONING)) && !strcmp(a->name, b->name))
				problem(k, "snapshot name \"%s\" appears twice", a->name);
		}
	}
	if (s->rb_slot >= 0) {
		const struct store_snapshot *rb = &s->st.slot[s->rb_slot];
		if (rb->rb_cursor > s->origin_chunks)
			problem(k, "rollback cursor %llu beyond the origin (%llu chunks)",
				(unsigned long long)rb->rb_cursor, (unsigned long long)s->origin_chunks);
		if (rb->parent_id >= rb->id)
			problem(k, "rollback source %u names snapshot %u, which is not older", rb->id,
				rb->parent_id);
	}
	if (maxid >= s->next_id)
		problem(k, "snapshot id %u is not below the next id %u", maxid, s->next_id);
	bool any_cleaning = false;
	for (uint32_t w = 0; w < MASK_WORDS_MAX; w++)
		any_cleaning |= k->cleaning[w] != 0;
	if (any_cleaning && !s->cleanup_active)
		problem(k, "snapshots marked for cleanup but no cleanup pass is recorded");
}

/* Compare a space map's bitmap blocks with the set of referenced units.  */
static void check_bitmap(struct chk *k, const char *what, uint32_t type, uint64_t start,
			 uint64_t nbits, const uint8_t *seen)
{
	uint64_t mismatches = 0;

	for (uint64_t b = 0; b < sm_blocks_for(nbits); b++) {
		struct bm_block *blk;
		if (bm_get(k->s->bm, start + b, type, &blk) < 0) {
			problem(k, "%s: %s", what, err_get());
			continue;
		}
		const uint8_t *p = blk->data + SM_HDR_SIZE;
		for (uint64_t i = 0; i < SM_BITS_PER_BLOCK; i++) {
			uint64_t u = b * SM_BITS_PER_BLOCK + i;
			bool set = p[i / 8] & (1u << (i % 8));
			if (u >= nbits) {
				if (!set) {
					problem(k, "%s: padding bit %llu is clear", what, (unsigned long long)u);
					break;
				}
				continue;
			}
			bool ref = seen[u / 8] & (1u << (u % 8));
			if (set != ref && ++mismatches <= 10)
				problem(k, "%s: unit %llu is %s but %s", what, (unsigned long long)u,
					set ? "allocated" : "free", ref ? "referenced" : "not referenced");
		}
		bm_put(k->s->bm, blk);
	}
	if (mismatches > 10)
		problem(k, "%s: %llu mismatches in all", what, (unsigned long long)mismatches);
}

long store_check_open(struct store *s, FILE *report)
{
	struct chk k = { .s = s, .out = report, .clone_bit = -1, .clone_parent = -1 };
	const struct csnap_sb_engine *e = &s->sb.engine;

	if (s->bad_sb_copies)
		problem(&k, "superblock: %s copy is invalid",
			s->bad_sb_copies & 1 ? "primary" : "backup");
	if (store_txn_pending(s))
		problem(&k, "uncommitted changes are pending (checking the in-memory state)");
	k.dseen = calloc(e->data_chunks / 8 + 1, 1);
	k.mseen = calloc(e->meta_blocks / 8 + 1, 1);
	k.uniq = calloc(s->st.nslots, sizeof *k.uniq);
	k.shared = calloc(s->st.nslots, sizeof *k.shared);
	if (!k.dseen || !k.mseen || !k.uniq || !k.shared) {
		free(k.dseen);
		free(k.mseen);
		free(k.uniq);
		free(k.shared);
		return err_set(ENOMEM, "out of memory");
	}
	check_table(&k);
	k.problems += btree_verify(&s->tree, report, on_node, on_entry, &k);
	if (k.nodes != s->tree.nodes)
		problem(&k, "tree has %llu blocks, header says %llu",
			(unsigned long long)k.nodes, (unsigned long long)s->tree.nodes);
	check_counters(&k);
	check_bitmap(&k, "data bitmap", META_T_DBITMAP, e->dbitmap_start, e->data_chunks, k.dseen);
	check_bitmap(&k, "tree bitmap", META_T_MBITMAP, e->mbitmap_start, e->meta_blocks, k.mseen);
	free(k.dseen);
	free(k.mseen);
	free(k.uniq);
	free(k.shared);
	return k.problems;
}

long store_check(const char *path, FILE *report)
{
	struct store_open_opts o = { .readonly = true, .cache_bytes = 64u << 20 };
	struct store *s;
	int ret = store_open(path, &o, &s);

	if (ret < 0)
		return ret;
	long n = store_check_open(s, report);
	store_close(s);
	return n;
}
