/*
 * src/cli/cmd_check.c - `csnap check STORE`: full consistency check.
 * Read-only (a journal that needs replay is replayed in memory).  Prints
 * each problem on stdout; exit 0 only when the store is clean.
 */
#include "src/cli/cli.h"

#include "src/store/store.h"
#include "utils/err.h"

#include <inttypes.h>
#include <stdio.h>

static int cmd_check(int argc, char **argv)
{
	if (argc != 2)
		return cli_usage("need STORE");
	struct store_open_opts o = { .readonly = true, .cache_bytes = 64u << 20 };
	struct store *s;
	if (store_open(argv[1], &o, &s) < 0)
		return cli_error("%s", err_get());
	long n = store_check_open(s, stdout);
	struct store_info info;
	store_get_info(s, &info);
	store_close(s);
	if (n < 0)
		return cli_error("check %s: %s", argv[1], err_get());
	if (n > 0)
		return cli_error("check %s: %ld problem%s found", argv[1], n, n == 1 ? "" : "s");
	printf("%s: clean (%" PRIu64 " exceptions, %u snapshots, %" PRIu64 "/%" PRIu64 " chunks free)\n",
	       argv[1], info.exceptions, info.snapshots, info.data_free, info.data_chunks);
	return 0;
}

CLI_COMMAND(check, "check", "STORE", "check a snapshot store for consistency", cmd_check)
