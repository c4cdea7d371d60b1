/*
 * src/cli/cmd_status.c - `csnap status STORE [--json]`: the store as its
 * master sees it: size, free space, chunk size, per-snapshot unique and
 * shared usage, the master's host and address, connected clients, and a
 * running rollback's progress.
 */
#include "src/cli/cli.h"
#include "src/cli/admin_util.h"

#include <stdio.h>
#include <string.h>

static const char *volume_name(uint8_t v)
{
	return v == PROTO_VOL_ORIGIN ? "origin" : v == PROTO_VOL_SNAPSHOT ? "snapshot" : "admin";
}

static int cmd_status(int argc, char **argv)
{
	struct admin_args a;
	struct admin_conn ac;
	int r = admin_open(argc, argv, 1, &a, NULL, NULL, &ac);
	if (r)
		return r;
	struct proto_msg m, st, sl;
	proto_msg_init(&m, PROTO_STATUS, 0);
	if (admin_call_ok(&a, &ac, &m, &st, "status", true)) {
		admin_close(&ac);
		return 1;
	}
	proto_msg_init(&m, PROTO_SNAP_LIST, 0);
	if (admin_call_ok(&a, &ac, &m, &sl, "status", true)) {
		proto_msg_free(&st);
		admin_close(&ac);
		return 1;
	}
	/* A running rollback (a master older than SNAP_ROLLBACK closes the
	 * connection: the error says so, the rest is still printed).  */
	struct proto_msg rq;
	struct proto_rollback rb = { 0 };
	proto_msg_init(&m, PROTO_SNAP_ROLLBACK, 0);
	m.flags = PROTO_F_QUERY;
	if (admin_call_ok(&a, &ac, &m, &rq, "status (rollback)", false) == 0) {
		rb = rq.u.rollback;
		proto_msg_free(&rq);
	}
	const struct proto_status *s = &st.u.status;
	char uuid[CSNAP_UUID_STR_LEN];
	csnap_uuid_unparse(&s->store, uuid);
	uint64_t cs = s->chunk_size;
	if (a.json) {
		printf("{\"store\": \"%s\", \"chunk_size\": %u, \"store_chunks\": %llu, "
		       "\"free_chunks\": %llu, \"store_bytes\": %llu, \"free_bytes\": %llu, "
		       "\"origin_size\": %llu, \"snapshots\": %u, \"max_snapshots\": %u,\n",
		       uuid, s->chunk_size, (unsigned long long)s->store_chunks,
		       (unsigned long long)s->free_chunks, (unsigned long long)(s->store_chunks * cs),
		       (unsigned long long)(s->free_chunks * cs), (unsigned long long)s->origin_size,
		       s->nsnapshots, s->max_snapshots);
		printf(" \"master\": {\"host_id\": %u, \"node\": ", s->master_host_id);
		admin_json_str(stdout, s->master_node);
		printf(", \"address\": ");
		admin_json_str(stdout, s->master_address);
		printf(", \"port\": %u, \"epoch\": %llu},\n \"clients\": [", s->master_port,
		       (unsigned long long)s->generation);
		for (uint32_t i = 0; i < s->nclients; i++) {
			const struct proto_client_info *c = &s->clients[i];
			printf("%s\n  {\"host_id\": %u, \"volume\": \"%s\", \"snapshot_id\": %u, \"name\": ",
			       i ? "," : "", c->host_id, volume_name(c->volume), c->snap_id);
			admin_json_str(stdout, c->name);
			printf(", \"peer\": ");
			admin_json_str(stdout, c->peer);
			printf("}");
		}
		printf("%s],\n \"rollback\": ", s->nclients ? "\n " : "");
		if (rb.flags & PROTO_RB_ACTIVE) {
			printf("{\"snapshot\": ");
			admin_json_str(stdout, rb.name);
			printf(", \"chunk\": %llu, \"chunks\": %llu, \"started\": %llu}",
			       (unsigned long long)rb.cursor, (unsigned long long)rb.origin_chunks,
			       (unsigned long long)rb.started);
		} else {
			printf("null");
		}
		printf(",\n \"snapshot_list\": ");
		admin_print_snapshots(&sl.u.snap_list, s->chunk_size, true, stdout);
		printf("}\n");
	} else {
		printf("store        %s\n", uuid);
		printf("chunk size   %u\n", s->chunk_size);
		char total[32], free_b[32], osz[32];
		admin_fmt_bytes(total, sizeof total, s->store_chunks * s->chunk_size);
		admin_fmt_bytes(free_b, sizeof free_b, s->free_chunks * s->chunk_size);
		admin_fmt_bytes(osz, sizeof osz, s->origin_size);
		printf("space        %llu chunks (%s), %llu free (%s, %.1f%% used)\n",
		       (unsigned long long)s->store_chunks, total, (unsigned long long)s->free_chunks, free_b,
		       s->store_chunks ? 100.0 * (double)(s->store_chunks - s->free_chunks) / (double)s->store_chunks : 0.0);
		printf("origin size  %llu bytes (%s)\n", (unsigned long long)s->origin_size, osz);
		printf("master       host %u (%s) at %s port %u, epoch %llu\n", s->master_host_id,
		       s->master_node, s->master_address, s->master_port,
		       (unsigned long long)s->generation);
		printf("snapshots    %u of %u\n", s->nsnapshots, s->max_snapshots);
		if (sl.u.snap_list.n)
			admin_print_snapshots(&sl.u.snap_list, s->chunk_size, false, stdout);
		if (rb.flags & PROTO_RB_ACTIVE)
			printf("rollback to %s: chunk %llu of %llu\n", rb.name,
			       (unsigned long long)rb.cursor, (unsigned long long)rb.origin_chunks);
		printf("clients      %u\n", s->nclients);
		for (uint32_t i = 0; i < s->nclients; i++) {
			const struct proto_client_info *c = &s->clients[i];
			printf("  host %-4u %-8s %-22s %s\n", c->host_id, volume_name(c->volume),
			       c->peer, c->name);
		}
	}
	proto_msg_free(&sl);
	proto_msg_free(&st);
	admin_close(&ac);
	return 0;
}

CLI_COMMAND(status, "status", "STORE [--json] [--master ADDR:PORT]",
	    "show the store, its snapshots, master and clients", cmd_status)
