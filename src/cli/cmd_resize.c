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
#include <stdint.h>
#include <stdio.h>

/* What differs between resize and grow: the request and the words of the
 * answer (the formats stay literal: -Wformat-nonliteral).  */
struct grow_words {
	uint16_t type;		/* PROTO_ORIGIN_RESIZE or PROTO_STORE_GROW */
	const char *op;		/* in errors */
	const char *key;	/* JSON: old_KEY, new_KEY */
	const char *same;	/* "SAME unchanged: N bytesSAME_WHY" */
	const char *same_why;
	const char *changed;	/* "CHANGED from A to B bytes" */
};

static int grow_common(int argc, char **argv, const struct grow_words *w)
{
	struct admin_args a;
	struct admin_conn ac;
	int r = admin_open(argc, argv, 1, &a, NULL, NULL, &ac);
	if (r)
		return r;
	struct proto_msg m, rep;
	proto_msg_init(&m, w->type, 0);
	/* the master reads the device's size: sending it again is harmless */
	r = admin_call_ok(&a, &ac, &m, &rep, w->op, true);
	if (!r) {
		const struct proto_resize *z = &rep.u.resize;
		if (a.json)
			printf("{\"old_%s\": %" PRIu64 ", \"new_%s\": %" PRIu64 "}\n", w->key,
			       z->old_size, w->key, z->new_size);
		else if (z->new_size == z->old_size)
			printf("%s unchanged: %" PRIu64 " bytes%s\n", w->same, z->new_size, w->same_why);
		else
			printf("%s from %" PRIu64 " to %" PRIu64 " bytes\n", w->changed, z->old_size,
			       z->new_size);
		proto_msg_free(&rep);
	}
	admin_close(&ac);
	return r;
}

static int cmd_resize(int argc, char **argv)
{
	static const struct grow_words w = { PROTO_ORIGIN_RESIZE, "resize", "size", "origin size",
					     "", "origin resized" };

	return grow_common(argc, argv, &w);
}

static int cmd_grow(int argc, char **argv)
{
	static const struct grow_words w = { PROTO_STORE_GROW, "grow", "data_bytes", "data area",
					     " (the store device did not grow)", "data area grown" };

	return grow_common(argc, argv, &w);
}

CLI_COMMAND(grow, "grow", "STORE [--json] [--master ADDR:PORT]",
	    "add the space of the extended store device to the data area (cluster up, any node)",
	    cmd_grow)
CLI_COMMAND(resize, "resize", "STORE [--json] [--master ADDR:PORT]",
	    "record the size the origin device has grown to (cluster up, any node)", cmd_resize)
