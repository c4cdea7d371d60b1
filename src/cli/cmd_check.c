/*
 * src/cli/cmd_check.c - `csnap check STORE [ORIGIN]`: full consistency
 * check.  Read-only (a journal that needs replay is replayed in memory).
 * Prints each problem on stdout; with ORIGIN also verifies that it is the
 * origin the store was made for (size and identity, src/store/origin_id.h).
 * A STORE that is ORIGIN (or lies on or under it, src/store/overlap.h) is
 * refused before anything is read.
 * Exit 0 only when the store is clean and the origin (if given) matches.
 */
#include "src/cli/cli.h"
#include "src/cli/cmd_lease.h"

#include "ioengine/ioengine.h"
#include "src/store/origin_id.h"
#include "src/store/overlap.h"
#include "src/store/store.h"
#include "utils/err.h"
#include "utils/escape.h"

#include <inttypes.h>
#include <stdio.h>

static void print_line(void *arg, const char *msg) { fprintf(arg, "%s\n", msg); }

static int cmd_check(int argc, char **argv)
{
	if (argc != 2 && argc != 3)
		return cli_usage("need STORE [ORIGIN]");
	if (argc == 3) {
		char why[512];
		/* a path that cannot be examined (missing, say) is reported
		 * with its role by the opens below */
		int r = storage_overlap(argv[1], argv[2], why, sizeof why);
		if (r > 0)
			return cli_error("store and origin overlap: %s", why);
	}
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
	/* the sanlock lease area: damage there is as fatal as in the engine
	 * (no master can be elected, liveness is unknown) */
	struct lease_area la;
	long ln = cli_lease_area(argv[1], &la);
	if (ln >= 0)
		ln = lease_check_area(&la, print_line, stdout);
	if (ln < 0)
		printf("lease area: cannot be checked: %s\n", err_get());
	n += ln < 0 ? 1 : ln;
	int bad_origin = 0;
	if (argc == 3) {
		struct io_dev *od;
		if (io_dev_open(argv[2], IO_DEV_RDONLY, &od) < 0) {
			bad_origin = cli_error("origin: %s", err_get());
		} else {
			if (origin_id_verify(argv[2], io_dev_size(od), &info.sb) < 0)
				bad_origin = cli_error("%s", err_get());
			else
				printf("%s: the store's origin (%" PRIu64 " bytes, id %s)\n", ESC(argv[2]),
				       info.sb.origin_size, info.sb.origin_id);
			io_dev_close(od);
		}
	}
	if (n > 0)
		return cli_error("check %s: %ld problem%s found", argv[1], n, n == 1 ? "" : "s");
	if (bad_origin)
		return bad_origin;
	printf("%s: clean (%" PRIu64 " exceptions, %u snapshots, %" PRIu64 "/%" PRIu64 " chunks free)\n",
	       ESC(argv[1]), info.exceptions, info.snapshots, info.data_free, info.data_chunks);
	return 0;
}

CLI_COMMAND(check, "check", "STORE [ORIGIN]",
	    "check a snapshot store for consistency (and that ORIGIN is its origin)", cmd_check)
