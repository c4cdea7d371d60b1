/*
 * src/cli/cmd_check.c - `csnap check [--repair-counters] STORE [ORIGIN]`:
 * full consistency check.  Read-only (a journal that needs replay is
 * replayed in memory), except --repair-counters: first, offline like
 * upgrade (refused while a host holds the store's delta lease, exclusive
 * open), the usage counters are recounted from a walk of the tree and
 * committed; then the check runs as usual.
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

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void print_line(void *arg, const char *msg) { fprintf(arg, "%s\n", msg); }

/* Recounts the usage counters of the store at PATH (not in use: the
 * cluster stopped) and commits them.  */
static int repair_counters(const char *path)
{
	struct csnap_sb sb;
	struct io_dev *dev;
	struct store *s;

	if (csnap_sb_read_path(path, &sb) < 0 || cli_refuse_if_leases_held(path, &sb) < 0)
		return cli_error("%s", err_get());
	if (io_dev_open(path, IO_DEV_RDWR | IO_DEV_EXCL, &dev) < 0)
		return cli_error("%s", err_get());
	if (store_open_dev(dev, NULL, &s) < 0) {
		io_dev_close(dev);
		return cli_error("%s", err_get());
	}
	char was[160];
	snprintf(was, sizeof was, "%s", store_counters_state(s));
	long wrong = store_counters_valid(s) ? store_counters_verify(s, NULL) : 0;
	int r = wrong < 0 ? (int)wrong : store_counters_rebuild(s);
	if (r >= 0)
		r = store_commit(s);
	if (r < 0) {
		store_close_nockpt(s);
		io_dev_close(dev);
		return cli_error("repair counters: %s", err_get());
	}
	struct store_info info;
	store_get_info(s, &info);
	store_close(s);
	io_dev_close(dev);
	if (strcmp(was, "valid") != 0)
		printf("%s: usage counters were %s; counted %" PRIu64 " exceptions\n", ESC(path), was,
		       info.exceptions);
	else
		printf("%s: usage counters recounted from %" PRIu64 " exceptions (%ld figure%s differed)\n",
		       ESC(path), info.exceptions, wrong, wrong == 1 ? "" : "s");
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair-counters", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	bool repair = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'r')
			return cli_usage(NULL);
		repair = true;
	}
	argc -= optind - 1;
	argv += optind - 1;
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
	if (repair && repair_counters(argv[1]))
		return 1;
	struct store_open_opts o = { .readonly = true, .cache_bytes = 64u << 20 };
	struct store *s;
	if (store_open(argv[1], &o, &s) < 0)
		return cli_error("%s", err_get());
	long n = store_check_open(s, stdout);
	struct store_info info;
	store_get_info(s, &info);
	bool counted = store_counters_valid(s);
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
	if (!counted)	/* not damage: a store made before the counters */
		printf("%s: no usage counters (snapshot usage shows as unknown): run %s with the cluster stopped\n",
		       ESC(argv[1]), info.sb.version < CSNAP_FORMAT_VERSION ? "csnap upgrade"
									: "csnap check --repair-counters");
	return 0;
}

CLI_COMMAND(check, "check", "[--repair-counters] STORE [ORIGIN]",
	    "check a snapshot store for consistency (and that ORIGIN is its origin)", cmd_check)
