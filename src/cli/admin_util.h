/*
 * src/cli/admin_util.h - shared parts of the admin commands that talk to a
 * store's master (snapshot *, status): argument parsing, finding and
 * connecting to the master, printing snapshot tables.
 */
#ifndef CSNAP_CLI_ADMIN_UTIL_H
#define CSNAP_CLI_ADMIN_UTIL_H

#include "src/proto/client.h"
#include "src/locate/locate.h"
#include "utils/err.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct admin_args {
	const char *args[4];	/* positional: STORE [NAME] */
	int nargs;
	bool json;
	const char *conf;	/* -c CONF */
	char master_addr[64];	/* --master ADDR:PORT, "" = look up */
	uint16_t master_port;
	int timeout_ms;		/* --timeout SECONDS */
	const char *from;	/* --from SNAPSHOT (with ADMIN_FROM) */
	bool delete_snap;	/* --delete (with ADMIN_DELETE) */
	bool usecount_set;	/* --use / --unuse */
	int32_t usecount_delta;
};

/* NARGS | ADMIN_OPTIONAL_LAST: the last positional may be left out
 * (a->nargs says how many were given).  */
#define ADMIN_OPTIONAL_LAST	0x100
/* NARGS | ADMIN_NAMES: the positionals after STORE are names of existing
 * snapshots (checked before any connection: a usage error).  */
#define ADMIN_NAMES		0x200
/* NARGS | ADMIN_FROM: --from SNAPSHOT is accepted (a->from).  */
#define ADMIN_FROM		0x400
/* NARGS | ADMIN_DELETE: --delete is accepted (a->delete_snap).  */
#define ADMIN_DELETE		0x800

/* Parses options and exactly NARGS positionals.  INTOPT names one extra
 * integer option ("priority") stored in *INTVAL.  Returns 0, or a cli exit
 * code (usage printed).  */
int admin_parse(int argc, char **argv, int nargs, struct admin_args *a,
		const char *intopt, int64_t *intval);

struct admin_conn {
	struct proto_client *c;		/* NULL after a lost connection */
	struct locate_result loc;
	struct proto_identify_ok id;
	uint32_t chunk_size;
	char store[256];		/* the store's path */
	const char *name;		/* STORE as the user gave it */
	int64_t deadline_ms;		/* --timeout from admin_connect or
					 * the start of admin_call */
	const char *what;		/* for messages: "snapshot create" */
	char said[200];			/* last wait reason printed */
	bool retried;			/* admin_call sent its request again */
};

/* Resolves STORE (config name or path), finds the master and identifies as
 * an admin client, waiting up to --timeout while the master changes (a
 * line on stderr says for what).  Prints the error and returns 1 on
 * failure.  */
int admin_connect(const struct admin_args *a, struct admin_conn *ac);
/* admin_parse() then admin_connect(): 0 when connected, else the exit
 * code (usage or error printed).  */
int admin_open(int argc, char **argv, int nargs, struct admin_args *a,
	       const char *intopt, int64_t *intval, struct admin_conn *ac);
/* Sends REQ and waits for its reply (0: a reply came, check its status;
 * 1: error printed).  A lost connection (master killed or handing over)
 * is followed by finding the new master and, if RETRY_SENT (the request is
 * safe to repeat: read-only, or idempotent like a create with a request
 * id), sending REQ again, all within --timeout from the call; then
 * ac->retried is set.  Without RETRY_SENT a request that was sent is not
 * repeated: the error says its outcome is unknown.  */
int admin_call(const struct admin_args *a, struct admin_conn *ac, struct proto_msg *req,
	       struct proto_msg *rep, const char *what, bool retry_sent);
/* admin_call() that also prints a refusal ("WHAT: why"): 0 only for a
 * successful reply (the caller frees REP), else 1.  */
int admin_call_ok(const struct admin_args *a, struct admin_conn *ac, struct proto_msg *req,
		  struct proto_msg *rep, const char *what, bool retry_sent);
void admin_close(struct admin_conn *ac);
/* Chunk ranges that differ between FROM and TO (NULL: the live origin),
 * merged where the master's pages split a run; CHANGED requests paged with
 * the master's cursor, which must advance.  *OUT is malloc'd.  0, or 1
 * with the error printed.  */
int admin_changed_ranges(const struct admin_args *a, struct admin_conn *ac, const char *from, const char *to,
			 struct proto_range **out, size_t *nout);

void admin_print_snapshots(const struct proto_snap_list *l, uint32_t chunk_size,
			   bool json, FILE *f);
/* BYTES for people: "512 B", "1.5 GiB".  */
void admin_fmt_bytes(char *buf, size_t n, uint64_t bytes);
/* A JSON string literal (quotes and escapes).  */
void admin_json_str(FILE *f, const char *s);

#endif
