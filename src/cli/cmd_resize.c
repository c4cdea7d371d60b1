/*
 * src/cli/cmd_resize.c - growing online, with the cluster up, from any
 * node (requests to the master, src/server/resize.c):
 *   csnap resize STORE   after the origin device was extended: record its
 *                        new size (src/store/resize.c).  The new range
 *                        belongs to no snapshot taken so far; shrinking
 *                        is refused.  Exports serve the new size as soon
 *                        as the master tells them (NBD clients see it
 *                        when they reconnect).
 *   csnap grow STORE     after the store device was extended: add its
 *                        space to the data area (src/store/grow.c).
 */
#include "src/cli/cli.h"
#include "src/cli/admin_util.h"

#include <inttypes.h>
#include <stdio.h>

static int cmd_resize(int argc, char **argv)
{
	struct admin_args a;
	struct admin_conn ac;
	int r = admin_open(argc, argv, 1, &a, NULL, NULL, &ac);
	if (r)
		return r;
	struct proto_msg m, rep;
	proto_msg_init(&m, PROTO_ORIGIN_RESIZE, 0);
	/* the master reads the device's size: sending it again is harmless */
	r = admin_call_ok(&a, &ac, &m, &rep, "resize", true);
	if (!r) {
		const struct proto_resize *z = &rep.u.resize;
		if (a.json)
			printf("{\"old_size\": %" PRIu64 ", \"new_size\": %" PRIu64 "}\n",
			       z->old_size, z->new_size);
		else if (z->new_size == z->old_size)
			printf("origin size unchanged: %" PRIu64 " bytes\n", z->new_size);
		else
			printf("origin resized from %" PRIu64 " to %" PRIu64 " bytes\n", z->old_size,
			       z->new_size);
		proto_msg_free(&rep);
	}
	admin_close(&ac);
	return r;
}

static int cmd_grow(int argc, char **argv)
{
	struct admin_args a;
	struct admin_conn ac;
	int r = admin_open(argc, argv, 1, &a, NULL, NULL, &ac);
	if (r)
		return r;
	struct proto_msg m, rep;
	proto_msg_init(&m, PROTO_STORE_GROW, 0);
	/* the master reads the device's size: sending it again is harmless */
	r = admin_call_ok(&a, &ac, &m, &rep, "grow", true);
	if (!r) {
		const struct proto_resize *z = &rep.u.resize;
		if (a.json)
			printf("{\"old_data_bytes\": %" PRIu64 ", \"new_data_bytes\": %" PRIu64 "}\n",
			       z->old_size, z->new_size);
		else if (z->new_size == z->old_size)
			printf("data area unchanged: %" PRIu64 " bytes (the store device did not grow)\n",
			       z->new_size);
		else
			printf("data area grown from %" PRIu64 " to %" PRIu64 " bytes\n", z->old_size,
			       z->new_size);
		proto_msg_free(&rep);
	}
	admin_close(&ac);
	return r;
}

CLI_COMMAND(grow, "grow", "STORE [--json] [--master ADDR:PORT]",
	    "add the space of the extended store device to the data area (cluster up, any node)",
	    cmd_grow)
CLI_COMMAND(resize, "resize", "STORE [--json] [--master ADDR:PORT]",
	    "record the size the origin device has grown to (cluster up, any node)", cmd_resize)
