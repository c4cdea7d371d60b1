/*
 * src/store/dump.c - human-readable dump of a store (csnap dump):
 * superblock, engine layout, journal position, snapshot table and tree
 * statistics.  Never prints the secret.
 */
#include "src/store/store_int.h"

#include "utils/uuid.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

struct tstats {
	uint64_t leaves, internals, entries;
	uint32_t leaf_cap;
	struct store *s;
};

static void count_node(void *arg, uint64_t blocknr)
{
	struct tstats *t = arg;
	struct bm_block *b;

	if (bm_get(t->s->bm, blocknr, 0, &b) < 0)
		return;
	if (bm_block_type(b) == META_T_LEAF)
		t->leaves++;
	else
		t->internals++;
	bm_put(t->s->bm, b);
}

static void count_entry(void *arg, const uint8_t *e)
{
	(void)e;
	((struct tstats *)arg)->entries++;
}

int store_dump(struct store *s, FILE *out)
{
	const struct csnap_sb *sb = &s->sb;
	const struct csnap_sb_engine *e = &sb->engine;
	char uuid[CSNAP_UUID_STR_LEN];
	struct store_info info;

	store_get_info(s, &info);
	csnap_uuid_unparse((const struct csnap_uuid *)sb->uuid, uuid);
	fprintf(out, "superblock:\n");
	fprintf(out, "  uuid              %s\n", uuid);
	fprintf(out, "  label             %s\n", sb->label[0] ? sb->label : "(none)");
	fprintf(out, "  format version    %u (engine %u)\n", sb->version, e->version);
	fprintf(out, "  sequence          %" PRIu64 "%s\n", sb->seq,
		s->bad_sb_copies ? "  (one copy INVALID)" : "");
	fprintf(out, "  created           %" PRIu64 "\n", sb->ctime);
	fprintf(out, "  chunk size        %u\n", sb->chunk_size);
	fprintf(out, "  store size        %" PRIu64 "\n", sb->store_size);
	fprintf(out, "  origin size       %" PRIu64 " (%" PRIu64 " chunks)\n", sb->origin_size, info.origin_chunks);
	fprintf(out, "  origin id         %s\n", sb->origin_id);
	fprintf(out, "  max snapshots     %u (mask %u bits)\n", sb->max_snapshots, sb->mask_bits);
	fprintf(out, "  lease area        offset %" PRIu64 ", align %u, sector %u\n",
		sb->lease_offset, sb->lease_align, sb->lease_sector_size);
	fprintf(out, "  metadata offset   %" PRIu64 "\n", sb->meta_offset);
	fprintf(out, "layout (4 KiB blocks):\n");
	fprintf(out, "  journal           %" PRIu64 " +%" PRIu64 " (tail %" PRIu64 ", tail seq %" PRIu64 ")\n",
		e->journal_start, e->journal_blocks, e->journal_tail, e->journal_tail_seq);
	fprintf(out, "  engine header     %" PRIu64 "\n", e->header_block);
	fprintf(out, "  snapshot table    %" PRIu64 " +%" PRIu64 "\n", e->table_start, e->table_blocks);
	fprintf(out, "  data bitmap       %" PRIu64 " +%" PRIu64 "\n", e->dbitmap_start, e->dbitmap_blocks);
	fprintf(out, "  tree bitmap       %" PRIu64 " +%" PRIu64 "\n", e->mbitmap_start, e->mbitmap_blocks);
	fprintf(out, "  tree area         %" PRIu64 " +%" PRIu64 " (%" PRIu64 " free)\n",
		e->meta_start, e->meta_blocks, info.meta_free);
	fprintf(out, "  data              offset %" PRIu64 ", %" PRIu64 " chunks (%" PRIu64 " free)\n",
		e->data_offset, e->data_chunks, info.data_free);
	fprintf(out, "  last transaction  %" PRIu64 "\n", info.txn_seq);
	fprintf(out, "  usage counters    %s", store_counters_state(s));
	for (uint32_t i = 0; (s->cnt.valid || s->cnt.damaged) && i < s->cnt.nblocks && i < CNT_BLOCKS_MAX; i++)
		fprintf(out, "%s%" PRIu64, i ? " " : ", blocks ", s->cnt.block[i]);
	fprintf(out, "\n");

	int n = store_snapshot_list(s, NULL, 0);
	struct store_snapshot *list = n > 0 ? calloc((size_t)n, sizeof *list) : NULL;
	if (list)
		store_snapshot_list(s, list, (unsigned)n);
	fprintf(out, "snapshots: %u live, %u being deleted, %u being cloned\n", info.snapshots,
		info.snapshots_deleting, info.snapshots_cloning);
	if (n > 0)
		fprintf(out, "  %6s %4s %-8s %5s %4s %12s %6s  %s\n", "id", "bit", "state", "prio", "use",
			"ctime", "parent", "name");
	for (int i = 0; list && i < n; i++)
		fprintf(out, "  %6u %4u %-8s %5d %4u %12" PRIu64 " %6u  %s\n", list[i].id, list[i].bit,
			list[i].flags & STORE_SNAP_LIVE ? "live" :
			list[i].flags & STORE_SNAP_CLONING ? "cloning" : "deleting", list[i].priority,
			list[i].usecount, list[i].ctime, list[i].parent_id, list[i].name);
	free(list);
	struct store_rollback rb;
	store_rollback_get(s, &rb);
	if (rb.active)
		fprintf(out, "rollback: to snapshot %u \"%s\" (bit %d), started %" PRIu64 ", chunk %" PRIu64
			" of %" PRIu64 "\n", rb.snap_id, rb.name, s->rb_slot, rb.started, rb.cursor,
			rb.origin_chunks);

	struct tstats t = { .s = s };
	btree_verify(&s->tree, NULL, count_node, count_entry, &t);
	uint32_t cap = s->tree.leaf_cap;
	fprintf(out, "tree:\n");
	fprintf(out, "  height            %u\n", s->tree.height);
	fprintf(out, "  exceptions        %" PRIu64 "\n", t.entries);
	fprintf(out, "  leaves            %" PRIu64 " (capacity %u entries, %.1f%% full)\n", t.leaves, cap,
		t.leaves ? 100.0 * (double)t.entries / (double)(t.leaves * cap) : 0.0);
	fprintf(out, "  internal nodes    %" PRIu64 "\n", t.internals);
	return 0;
}
