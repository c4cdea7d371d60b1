/*
 * src/locate/locate.c - see locate.h.
 */
#include "src/locate/locate.h"

#include "lease/lease.h"
#include "src/agent/agent_client.h"
#include "src/store/superblock.h"
#include "utils/err.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The agent's answer for the store, as the record lookup gives it.
 * -ENOENT: no agent there (look at the record instead).  */
static int ask_agent(const char *socket_path, const struct csnap_uuid *uuid,
		     struct lease_master_info *out)
{
	struct agent_client *ac;
	struct agent_master m;
	char text[CSNAP_UUID_STR_LEN];
	int r = agent_client_connect(socket_path, 1000, &ac);

	if (r == -ENOENT || r == -ECONNREFUSED)
		return -ENOENT;
	if (r < 0)
		return err_prefix(-r, "asking the agent");
	csnap_uuid_unparse(uuid, text);
	r = agent_client_where(ac, text, &m, 5000);
	agent_client_close(ac);
	if (r < 0)
		return err_prefix(-r, "asking the agent");
	memset(out, 0, sizeof *out);
	out->state = m.state == AGENT_MASTER_VALID  ? LEASE_MASTER_VALID
		     : m.state == AGENT_MASTER_NONE ? LEASE_MASTER_NONE
						    : LEASE_MASTER_CHANGING;
	out->host_id = m.host_id;
	out->generation = m.generation;
	out->lver = m.lver;
	out->epoch = m.epoch;
	snprintf(out->address, sizeof out->address, "%s", m.address);
	out->port = m.port;
	snprintf(out->why, sizeof out->why, "%s", m.why);
	return 0;
}

int locate_where(const struct lease_area *area, const struct csnap_uuid *uuid,
		 const char *agent_socket, struct lease_master_info *out, const char **from)
{
	int r = -ENOENT;

	if (agent_socket && agent_socket[0]) {
		*from = "told by the agent";
		r = ask_agent(agent_socket, uuid, out);
	}
	if (r == -ENOENT) {
		*from = "from the lease-owner record";
		r = lease_find_master(area, out);
	}
	if (r < 0)
		return r;
	if (out->state == LEASE_MASTER_VALID &&
	    (!out->address[0] || strpbrk(out->address, " ="))) {
		out->state = LEASE_MASTER_CHANGING;
		snprintf(out->why, sizeof out->why,
			 "master host_id %llu published an unusable address",
			 (unsigned long long)out->host_id);
	}
	return 0;
}

int locate_read_store(const char *store_path, struct locate_result *out)
{
	struct csnap_sb sb;
	int r = csnap_sb_read_path(store_path, &sb);
	if (r < 0)
		return r;	/* the message names the path */
	memset(out, 0, sizeof *out);
	memcpy(out->uuid.b, sb.uuid, 16);
	memcpy(out->secret, sb.secret, PROTO_SECRET_LEN);
	return lease_area_setup(&out->area, store_path, sb.lease_offset, sb.lease_align,
				sb.lease_sector_size, &out->uuid);
}

int locate_connect(const struct locate_opts *o, struct locate_result *res,
		   struct proto_client **out)
{
	int r = locate_read_store(o->store_path, res);
	if (r < 0)
		return r;
	if (o->address) {
		snprintf(res->address, sizeof res->address, "%s", o->address);
		res->port = o->port;
		return proto_client_connect(res->address, res->port, &res->uuid, res->secret,
					    o->timeout_ms < 0 ? 10000 : o->timeout_ms, out);
	}
	int64_t deadline = csnap_now_ms() + (o->timeout_ms < 0 ? 0 : o->timeout_ms);
	for (;;) {
		struct lease_master_info mi;
		const char *from;
		r = locate_where(&res->area, &res->uuid, o->agent_socket, &mi, &from);
		if (r < 0)
			return err_prefix(-r, "finding the master of %s", o->store_path);
		if (mi.state == LEASE_MASTER_VALID) {
			snprintf(res->address, sizeof res->address, "%s", mi.address);
			res->port = mi.port;
			res->host_id = mi.host_id;
			r = proto_client_connect(res->address, res->port, &res->uuid, res->secret,
						 10000, out);
			/* A master that just stopped: look again.  */
			if (r == -ECONNREFUSED && csnap_now_ms() < deadline) {
				if (o->on_wait)
					o->on_wait(o->wait_arg, err_get());
				usleep(200000);
				continue;
			}
			return r;
		}
		if (csnap_now_ms() >= deadline)
			return err_set(EHOSTUNREACH, "no master for store %s: %s", o->store_path,
				       mi.why[0] ? mi.why : lease_master_state_name(mi.state));
		if (o->on_wait)
			o->on_wait(o->wait_arg, mi.why[0] ? mi.why : lease_master_state_name(mi.state));
		usleep(200000);
	}
}
