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

struct range_list {
	struct proto_range *r;
	size_t n, cap;
};

static int add_range(struct range_list *l, uint64_t start, uint32_t count)
{
	struct proto_range *last = l->n ? &l->r[l->n - 1] : NULL;
	/* Pages may split a run: merge it back (counts are 32-bit).  */
	if (last && last->start + last->count == start && (uint64_t)last->count + count <= UINT32_MAX) {
		last->count += count;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct proto_range *nr = realloc(l->r, cap * sizeof *nr);
		if (!nr)
			return -ENOMEM;
		l->r = nr;
		l->cap = cap;
	}
	l->r[l->n++] = (struct proto_range){ start, count };
	return 0;
}

static void print_ranges(const struct range_list *l, const char *from, const char *to,
			 uint32_t cs, uint64_t origin_size, bool json)
{
	uint64_t chunks = 0, bytes = 0;
	for (size_t i = 0; i < l->n; i++) {
		uint64_t off = l->r[i].start * cs, len = (uint64_t)l->r[i].count * cs;
		if (off + len > origin_size)
			len = origin_size > off ? origin_size - off : 0;
		chunks += l->r[i].count;
		bytes += len;
		if (json) {
			printf("%s{\"start\": %" PRIu64 ", \"count\": %u, \"offset\": %" PRIu64
			       ", \"length\": %" PRIu64 "}", i ? ", " : "", l->r[i].start, l->r[i].count,
			       off, len);
		} else {
			if (i == 0)
				printf("%12s %10s %16s %14s\n", "first-chunk", "chunks", "offset", "bytes");
			printf("%12" PRIu64 " %10u %16" PRIu64 " %14" PRIu64 "\n", l->r[i].start,
			       l->r[i].count, off, len);
		}
	}
	if (json) {
		printf("], \"chunks\": %" PRIu64 ", \"bytes\": %" PRIu64 "}\n", chunks, bytes);
		return;
	}
	printf("%" PRIu64 " chunk%s (%" PRIu64 " bytes) in %zu range%s changed between %s and %s%s "
	       "(chunk size %u)\n", chunks, chunks == 1 ? "" : "s", bytes, l->n, l->n == 1 ? "" : "s",
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
	struct range_list l = { 0 };
	uint64_t next = 0;
	while (next != UINT64_MAX) {
		struct proto_msg m, rep;
		proto_msg_init(&m, PROTO_CHANGED, 0);
		snprintf(m.u.changed.from, sizeof m.u.changed.from, "%s", from);
		snprintf(m.u.changed.to, sizeof m.u.changed.to, "%s", to ? to : "");
		m.u.changed.start = next;
		m.u.changed.max_ranges = PROTO_MAX_RANGES;
		/* Read-only and cursor-driven: safe to resend after a master
		 * change.  */
		if (admin_call(&a, &ac, &m, &rep, "snapshot changed", true)) {
			r = 1;
			break;
		}
		if (rep.status) {
			r = cli_error("snapshot changed %s %s: %s", from, to ? to : "(origin)",
				      rep.error[0] ? rep.error : strerror((int)rep.status));
			proto_msg_free(&rep);
			break;
		}
		const struct proto_ranges *rs = &rep.u.changed_reply.ranges;
		for (uint32_t i = 0; i < rs->n && !r; i++)
			if (add_range(&l, rs->r[i].start, rs->r[i].count) < 0)
				r = cli_error("out of memory");
		/* The cursor must move forward, or a confused master loops us.  */
		uint64_t nx = rep.u.changed_reply.next;
		if (!r && nx != UINT64_MAX && rs->n == 0)
			r = cli_error("snapshot changed: the master's cursor does not advance");
		next = nx;
		proto_msg_free(&rep);
		if (r)
			break;
	}
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
		print_ranges(&l, from, to, ac.chunk_size, ac.id.origin_size, a.json);
	}
	free(l.r);
	admin_close(&ac);
	return r;
}

CLI_COMMAND(snap_changed, "snapshot changed", "STORE A [B] [--json] [--master ADDR:PORT]",
	    "list the chunks that differ between snapshots A and B (B left out: the origin)",
	    cmd_changed)
