/*
 * src/server/locate.c - see locate.h.
 */
#include "src/server/locate.h"

#include "lease/lease.h"
#include "src/store/superblock.h"
#include "utils/err.h"
#include "utils/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
		r = lease_find_master(&res->area, &mi);
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
