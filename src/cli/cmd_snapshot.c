/*
 * src/cli/cmd_snapshot.c - `csnap snapshot create|delete|rename|rollback|list|set`: admin
 * requests sent to the store's master, found through the lease-owner
 * record (or given with --master ADDR:PORT).
 */
#include "src/cli/cli.h"
#include "src/cli/admin_util.h"

#include <errno.h>
#include <sodium.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One request through admin_call (see admin_util.h for RETRY_SENT).  */
static void new_request_id(uint8_t id[PROTO_REQ_ID_LEN])
{
	static const uint8_t zero[PROTO_REQ_ID_LEN];
	if (sodium_init() < 0)
		abort();	/* cannot happen on Linux (getrandom) */
	do
		randombytes_buf(id, PROTO_REQ_ID_LEN);
	while (!memcmp(id, zero, sizeof zero));
}

static int cmd_create(int argc, char **argv)
{
	struct admin_args a;
	int64_t prio = 0;
	int r = admin_parse(argc, argv, 2 | ADMIN_FROM, &a, "priority", &prio);
	if (r)
		return r;
	/* The rule the server applies too (utils/snapname.h): refused here
	 * without a round trip.  */
	if (snap_name_check(a.args[1]) < 0)
		return cli_usage("%s", err_get());
	struct admin_conn ac;
	if (admin_connect(&a, &ac))
		return 1;
	struct proto_msg m, rep;
	proto_msg_init(&m, PROTO_SNAP_CREATE, 0);
	snprintf(m.u.snap_create.name, sizeof m.u.snap_create.name, "%s", a.args[1]);
	m.u.snap_create.priority = (int32_t)prio;
	/* One random id for every attempt of this create: a retry after a
	 * lost connection finds the snapshot its first attempt made.  */
	m.flags |= PROTO_F_REQ_ID;
	new_request_id(m.u.snap_create.req_id);
	if (a.from) {
		/* a snapshot of that snapshot (its content now, then its own) */
		m.flags |= PROTO_F_FROM;
		snprintf(m.u.snap_create.from, sizeof m.u.snap_create.from, "%s", a.from);
	}
	r = admin_call_ok(&a, &ac, &m, &rep, "snapshot create", true);
	if (!r) {
		if (a.json)
			printf("{\"id\": %u, \"name\": \"%s\", \"priority\": %d}\n",
			       rep.u.snapinfo.id, rep.u.snapinfo.name, rep.u.snapinfo.priority);
		else
			printf("created snapshot %s (id %u)\n", rep.u.snapinfo.name, rep.u.snapinfo.id);
		proto_msg_free(&rep);
	}
	admin_close(&ac);
	return r;
}

static int cmd_delete(int argc, char **argv)
{
	struct admin_args a;
	struct admin_conn ac;
	int r = admin_open(argc, argv, 2 | ADMIN_NAMES, &a, NULL, NULL, &ac);
	if (r)
		return r;
	struct proto_msg m, rep;
	proto_msg_init(&m, PROTO_SNAP_DELETE, 0);
	snprintf(m.u.snap_name.name, sizeof m.u.snap_name.name, "%s", a.args[1]);
	if (admin_call(&a, &ac, &m, &rep, "snapshot delete", true)) {
		admin_close(&ac);
		return 1;
	}
	if (rep.status == ENOENT && ac.retried) {
		/* The attempt before the master changed deleted it.  */
		rep.status = 0;
	}
	r = 0;
	if (rep.status) {
		cli_error("snapshot delete: %s", rep.error[0] ? rep.error : strerror((int)rep.status));
		r = 1;
	} else if (!a.json) {
		printf("deleted snapshot %s\n", a.args[1]);
	}
	proto_msg_free(&rep);
	admin_close(&ac);
	return r;
}

static int cmd_rename(int argc, char **argv)
{
	struct admin_args a;
	int r = admin_parse(argc, argv, 3 | ADMIN_NAMES, &a, NULL, NULL);
	if (r)
		return r;
	/* The new name follows the create rule (utils/snapname.h).  */
	if (snap_name_check(a.args[2]) < 0)
		return cli_usage("%s", err_get());
	struct admin_conn ac;
	if (admin_connect(&a, &ac))
		return 1;
	struct proto_msg m, rep;
	proto_msg_init(&m, PROTO_SNAP_RENAME, 0);
	snprintf(m.u.snap_rename.name, sizeof m.u.snap_rename.name, "%s", a.args[1]);
	snprintf(m.u.snap_rename.new_name, sizeof m.u.snap_rename.new_name, "%s", a.args[2]);
	/* Not repeated after a lost connection: a retry of a rename that
	 * was done would find no OLD and mislead.  */
	r = admin_call_ok(&a, &ac, &m, &rep, "snapshot rename", false);
	if (!r) {
		if (a.json)
			printf("{\"id\": %u, \"name\": \"%s\"}\n", rep.u.snapinfo.id, rep.u.snapinfo.name);
		else
			printf("renamed snapshot %s to %s (id %u)\n", a.args[1], rep.u.snapinfo.name,
			       rep.u.snapinfo.id);
		proto_msg_free(&rep);
	}
	admin_close(&ac);
	return r;
}

static int cmd_rollback(int argc, char **argv)
{
	struct admin_args a;
	struct admin_conn ac;
	int r = admin_open(argc, argv, 2 | ADMIN_NAMES | ADMIN_DELETE, &a, NULL, NULL, &ac);
	if (r)
		return r;
	struct proto_msg m, rep;
	proto_msg_init(&m, PROTO_SNAP_ROLLBACK, 0);
	if (a.delete_snap)
		m.flags |= PROTO_F_DELETE;
	snprintf(m.u.snap_name.name, sizeof m.u.snap_name.name, "%s", a.args[1]);
	/* Not repeated after a lost connection: a retry of a rollback that
	 * started would be refused as "running" and mislead.  */
	r = admin_call_ok(&a, &ac, &m, &rep, "snapshot rollback", false);
	if (!r) {
		const struct proto_rollback *rb = &rep.u.rollback;
		if (a.json)
			printf("{\"snapshot\": \"%s\", \"deleted\": %s, \"origin_chunks\": %llu}\n",
			       rb->name, a.delete_snap ? "true" : "false",
			       (unsigned long long)rb->origin_chunks);
		else
			printf("rollback to snapshot %s started%s: the origin reads its content now; "
			       "its data moves back in the background (csnap status shows how far)\n",
			       rb->name, a.delete_snap ? " (snapshot deleted)" : "");
		proto_msg_free(&rep);
	}
	admin_close(&ac);
	return r;
}

static int cmd_set(int argc, char **argv)
{
	struct admin_args a;
	int64_t prio = INT64_MIN;
	int r = admin_parse(argc, argv, 2 | ADMIN_NAMES, &a, "priority", &prio);
	if (r)
		return r;
	if (prio == INT64_MIN && !a.usecount_set)
		return cli_usage("nothing to set (--priority P, --use / --unuse)");
	struct admin_conn ac;
	if (admin_connect(&a, &ac))
		return 1;
	struct proto_msg m, rep;
	proto_msg_init(&m, PROTO_SNAP_SET, 0);
	snprintf(m.u.snap_set.name, sizeof m.u.snap_set.name, "%s", a.args[1]);
	if (prio != INT64_MIN) {
		m.u.snap_set.mask |= PROTO_SET_PRIORITY;
		m.u.snap_set.priority = (int32_t)prio;
	}
	if (a.usecount_set) {
		m.u.snap_set.mask |= PROTO_SET_USECOUNT;
		m.u.snap_set.usecount_delta = a.usecount_delta;
	}
	/* A priority is set, not added: safe to repeat; a use count change
	 * is a delta and is never sent twice.  */
	r = admin_call_ok(&a, &ac, &m, &rep, "snapshot set", !a.usecount_set);
	if (!r) {
		printf("snapshot %s: priority %d, use count %u\n", rep.u.snapinfo.name,
		       rep.u.snapinfo.priority, rep.u.snapinfo.usecount);
		proto_msg_free(&rep);
	}
	admin_close(&ac);
	return r;
}

static int cmd_list(int argc, char **argv)
{
	struct admin_args a;
	struct admin_conn ac;
	int r = admin_open(argc, argv, 1, &a, NULL, NULL, &ac);
	if (r)
		return r;
	struct proto_msg m, rep;
	proto_msg_init(&m, PROTO_SNAP_LIST, 0);
	r = admin_call_ok(&a, &ac, &m, &rep, "snapshot list", true);
	if (!r) {
		admin_print_snapshots(&rep.u.snap_list, ac.chunk_size, a.json, stdout);
		proto_msg_free(&rep);
	}
	admin_close(&ac);
	return r;
}

CLI_COMMAND(snap_create, "snapshot create", "STORE NAME [--from SNAPSHOT] [--priority P] [--master ADDR:PORT]",
	    "create a snapshot of the origin (cluster-wide barrier), or with --from of a snapshot", cmd_create)
CLI_COMMAND(snap_delete, "snapshot delete", "STORE NAME [--master ADDR:PORT]",
	    "delete a snapshot", cmd_delete)
CLI_COMMAND(snap_rename, "snapshot rename", "STORE OLD NEW [--master ADDR:PORT]",
	    "rename a snapshot (exports serve it under NEW within a second)", cmd_rename)
CLI_COMMAND(snap_rollback, "snapshot rollback", "STORE NAME [--delete] [--master ADDR:PORT]",
	    "make the origin read a snapshot's content now (moved back in the background)", cmd_rollback)
CLI_COMMAND(snap_list, "snapshot list", "STORE [--json] [--master ADDR:PORT]",
	    "list snapshots with their usage", cmd_list)
CLI_COMMAND(snap_set, "snapshot set", "STORE NAME [--priority P] [--use|--unuse]",
	    "set a snapshot's priority or use count", cmd_set)
