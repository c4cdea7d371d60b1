/*
 * tests/tools/store_legacy_name.c - plant a snapshot under a name that
 * creation now refuses (a reserved one such as "origin"), as a store
 * written before the rule may hold one:
 *   store_legacy_name STORE NAME
 * Creates a snapshot under a placeholder name, renames its table slot
 * behind the engine's name check and commits.  Only for tests: the store
 * must not be open elsewhere.
 */
#include "src/store/store_int.h"
#include "src/store/snaptable.h"
#include "utils/err.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct store *s;
	uint32_t id;

	if (argc != 3 || strlen(argv[2]) > STORE_SNAP_NAME_MAX) {
		fprintf(stderr, "usage: store_legacy_name STORE NAME\n");
		return 2;
	}
	if (store_open(argv[1], NULL, &s) < 0 ||
	    store_snapshot_create(s, "legacy-placeholder", 0, &id) < 0)
		goto fail;
	for (uint32_t i = 0; i < s->st.nslots; i++) {
		if (s->st.slot[i].id != id)
			continue;
		memset(s->st.slot[i].name, 0, sizeof s->st.slot[i].name);
		memcpy(s->st.slot[i].name, argv[2], strlen(argv[2]));
		if (st_save(&s->st, i) < 0)
			goto fail;
	}
	if (store_commit(s) < 0)
		goto fail;
	store_close(s);
	printf("snapshot %u named %s\n", id, argv[2]);
	return 0;
fail:
	fprintf(stderr, "store_legacy_name: %s\n", err_get());
	return 1;
}
