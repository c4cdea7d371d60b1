/*
 * src/cli/send_util.h - what `csnap send` and `csnap receive` share:
 * option parsing on top of the admin options, the store's NBD export
 * endpoint from csnap.conf, the snapshot list with request ids, the
 * changed ranges between two snapshots (paged), and the progress meter.
 */
#ifndef CSNAP_CLI_SEND_UTIL_H
#define CSNAP_CLI_SEND_UTIL_H

#include "src/cli/admin_util.h"

#include <stdbool.h>
#include <stdint.h>

struct xfer_args {
	struct admin_args a;		/* -c, --master, --timeout, positionals */
	const char *from;		/* send --from A */
	bool compress;			/* send --compress */
	const char *export_at;		/* --export SOCKET|ADDR:PORT */
	const char *resume;		/* send --resume TOKEN */
	bool token;			/* receive --token */
};

/* Parses the common admin options, --export, and (for send) --from and
 * --compress, and exactly NARGS positionals.  0, or a cli exit code.  */
int xfer_parse(int argc, char **argv, int nargs, bool send, struct xfer_args *x);

/* The store's NBD export: --export, else csnap.conf's export setting for
 * STORE.  ADDR gets a socket path (*PORT 0) or a host (*PORT the port).  */
int xfer_endpoint(const struct xfer_args *x, char *addr, size_t n, uint16_t *port);

/* Where `csnap receive` records a cut receive of STORE on this node:
 * RUN_DIR/receive-NAME.state (csnap.conf's run_dir); "" when STORE is not
 * a store of csnap.conf (then nothing is recorded).  */
int xfer_state_path(const struct xfer_args *x, char *path, size_t n);

/* Every live snapshot, with request ids where the master gives them
 * (*IDS_KNOWN false: an older master that does not).  Error printed.  */
int xfer_snapshots(struct xfer_args *x, struct admin_conn *ac, struct proto_msg *rep,
		   bool *ids_known);
const struct proto_snapinfo *xfer_find(const struct proto_msg *list, const char *name);


/* Progress on stderr: a line redrawn on a terminal, a plain line every
 * 10 s otherwise (and a summary at the end either way).  */
struct xfer_meter {
	const char *what;
	uint64_t total;			/* 0: unknown */
	int64_t start_ms, last_ms;
	bool tty, drawn;
};
void xfer_meter_start(struct xfer_meter *m, const char *what, uint64_t total);
void xfer_meter_update(struct xfer_meter *m, uint64_t done);
void xfer_meter_end(struct xfer_meter *m, uint64_t done, uint64_t stream_bytes);

#endif
