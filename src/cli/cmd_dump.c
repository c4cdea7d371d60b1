/*
 * src/cli/cmd_dump.c - `csnap dump STORE`: superblock, layout, snapshot
 * table and tree statistics.  Read-only.
 */
#include "src/cli/cli.h"

#include "src/store/store.h"
#include "utils/err.h"

#include <stdio.h>

static int cmd_dump(int argc, char **argv)
{
	if (argc != 2)
		return cli_usage("need STORE");
	struct store_open_opts o = { .readonly = true, .cache_bytes = 64u << 20 };
	struct store *s;
	if (store_open(argv[1], &o, &s) < 0)
		return cli_error("%s", err_get());
	int ret = store_dump(s, stdout);
	store_close(s);
	return ret < 0 ? cli_error("dump %s: %s", argv[1], err_get()) : 0;
}

CLI_COMMAND(dump, "dump", "STORE", "print a snapshot store's superblock, snapshots and tree statistics", cmd_dump)
