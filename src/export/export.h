/*
 * src/export/export.h - the `csnap export` daemon: serves a store's origin
 * and snapshots over NBD, reading and writing the shared devices directly
 * and asking the store's master only metadata questions.
 */
#ifndef CSNAP_EXPORT_EXPORT_H
#define CSNAP_EXPORT_EXPORT_H

struct export_opts {
	const char *conf;	/* csnap.conf */
	const char *store;	/* [store NAME] (or its device as written) */
	const char *sock;	/* overrides the configured listener ... */
	const char *tcp;	/* ... "[ADDR:]PORT" */
	const char *master;	/* "ADDR:PORT": skip the lease lookup (tests) */
};

/* Runs until SIGINT/SIGTERM.  Returns an exit status.  */
int export_run(const struct export_opts *o);

#endif
