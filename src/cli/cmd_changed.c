/*
 * src/cli/cmd_changed.c - `csnap snapshot changed STORE A [B] [--json]`:
 * the origin chunks whose content differs between snapshot A and snapshot
 * B, or between A and the live origin when B is left out (what an
 * incremental backup or replication must copy).  Asks the master (CHANGED,
 * paged with its continuation cursor) and prints merged ranges of chunks
 * with their byte offsets, the last range clipped to the origin's size.
 * Against the live origin the list is a snapshot in time: writes after
 * the reply are not in it.
 */
#include "src/cli/cli.h"
#include "src/cli/admin_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_ranges(const struct proto_range *r, size_t n, const char *from, const char *to,
			 uint32_t cs, uint64_t origin_size, bool json)
{
	uint64_t chunks = 0, bytes = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t off = r[i].start * cs, len = (uint64_t)r[i].count * cs;
		if (off + len > origin_size)
			len = origin_size > off ? origin_size - off : 0;
		chunks += r[i].count;
		bytes += len;
		if (json) {
			printf("%s{\"start\": %" PRIu64 ", \"count\": %u, \"offset\": %" PRIu64
			       ", \"length\": %" PRIu64 "}", i ? ", " : "", r[i].start, r[i].count,
			       off, len);
		} else {
			if (i == 0)
				printf("%12s %10s %16s %14s\n", "first-chunk", "chunks", "offset", "bytes");
			printf("%12" PRIu64 " %10u %16" PRIu64 " %14" PRIu64 "\n", r[i].start,
			       r[i].count, off, len);
		}
	}
	if (json) {
		printf("], \"chunks\": %" PRIu64 ", \"bytes\": %" PRIu64 "}\n", chunks, bytes);
		return;
	}
	printf("%" PRIu64 " chunk%s (%" PRIu64 " bytes) in %zu range%s changed between %s and %s%s "
	       "(chunk size %u)\n", chunks, chunks == 1 ? "" : "s", bytes, n, n == 1 ? "" : "s",
	       from, to ? "snapshot " : "", to ? to : "the origin", cs);
}

static int cmd_changed(int argc, char **argv)
{
	struct admin_args a;
	struct admin_conn ac;
	int r = admin_open(argc, argv, 3 | ADMIN_OPTIONAL_LAST | ADMIN_NAMES, &a, NULL, NULL, &ac);
	if (r)
		return r;
	const char *from = a.args[1], *to = a.nargs == 3 ? a.args[2] : NULL;
	struct proto_range *v = NULL;
	size_t n = 0;
	r = admin_changed_ranges(&a, &ac, from, to, &v, &n);
	if (!r) {
		if (a.json) {
			printf("{\"from\": ");
			admin_json_str(stdout, from);
			printf(", \"to\": ");
			if (to)
				admin_json_str(stdout, to);
			else
				printf("null");
			printf(", \"chunk_size\": %u, \"ranges\": [", ac.chunk_size);
		}
		print_ranges(v, n, from, to, ac.chunk_size, ac.id.origin_size, a.json);
	}
	free(v);
	admin_close(&ac);
	return r;
}

CLI_COMMAND(snap_changed, "snapshot changed", "STORE A [B] [--json] [--master ADDR:PORT]",
	    "list the chunks that differ between snapshots A and B (B left out: the origin)",
	    cmd_changed)
