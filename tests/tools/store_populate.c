/*
 * tests/tools/store_populate.c - fill a store's metadata for CLI tests:
 *   store_populate STORE NSNAPSHOTS NWRITES [SEED]
 * Creates NSNAPSHOTS snapshots spread over NWRITES random origin and
 * snapshot writes (metadata only: no data is copied), deletes one
 * snapshot, runs its cleanup and commits.
 */
#include "src/store/store.h"
#include "utils/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: store_populate STORE NSNAPSHOTS NWRITES [SEED]\n");
		return 2;
	}
	unsigned nsnap = (unsigned)atoi(argv[2]), nwrites = (unsigned)atoi(argv[3]);
	srand(argc > 4 ? (unsigned)atoi(argv[4]) : 1);
	struct store *s;
	if (store_open(argv[1], NULL, &s) < 0) {
		fprintf(stderr, "store_populate: %s\n", err_get());
		return 1;
	}
	struct store_info info;
	store_get_info(s, &info);
	uint32_t ids[1024], n = 0;
	for (unsigned i = 0; i < nwrites; i++) {
		if (n < nsnap && i % (nwrites / (nsnap ? nsnap : 1) + 1) == 0) {
			char name[32];
			snprintf(name, sizeof name, "snap%u", n);
			if (store_snapshot_create(s, name, (int)(n % 3), &ids[n]) < 0)
				goto fail;
			n++;
		}
		uint64_t c = (uint64_t)rand() % info.origin_chunks;
		struct store_copy cp[1];
		chunk_t dst[1];
		uint32_t ncp;
		int r = (n && rand() % 4 == 0)
			? store_snapshot_write(s, ids[rand() % n], c, 1, dst, cp, &ncp)
			: store_origin_write(s, c, 1, cp, &ncp);
		if (r == -ENOSPC)
			break;
		if (r < 0)
			goto fail;
		if (store_txn_blocks(s) > store_txn_limit(s) / 2 && store_commit(s) < 0)
			goto fail;
	}
	if (n > 1) {
		if (store_snapshot_delete(s, ids[0]) < 0)
			goto fail;
		while (store_cleanup(s, 100) > 0)
			;
	}
	if (store_commit(s) < 0)
		goto fail;
	store_get_info(s, &info);
	printf("%llu exceptions, %u snapshots, tree height %u\n",
	       (unsigned long long)info.exceptions, info.snapshots, info.tree_height);
	store_close(s);
	return 0;
fail:
	fprintf(stderr, "store_populate: %s\n", err_get());
	store_close(s);
	return 1;
}
