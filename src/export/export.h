/*
 * src/export/export.h - the `csnap export` daemon: serves a store's origin
 * and snapshots over NBD, reading and writing the shared devices directly
 * and asking the store's master only metadata questions.
 */
#ifndef CSNAP_EXPORT_EXPORT_H
#define CSNAP_EXPORT_EXPORT_H

#include <stdbool.h>

struct config_tls;

struct export_opts {
	const char *conf;	/* csnap.conf */
	const char *store;	/* [store NAME] (or its device as written) */
	const char *sock;	/* overrides the configured listener ... */
	const char *tcp;	/* ... "[ADDR:]PORT" */
	const char *master;	/* "ADDR:PORT": skip the lease lookup (tests) */
	/* --tls*: override the store's export_tls* key by key (NULL: none) */
	const struct config_tls *tls;
	unsigned threads;	/* --threads: overrides export_threads (0: no) */
};

/* Runs until SIGINT/SIGTERM.  Returns an exit status.  */
int export_run(const struct export_opts *o);

/* A plain file or device, no store: `csnap export --file`.  */
struct export_file_opts {
	const char *path;
	const char *name;	/* export name */
	bool readonly;
	const char *sock;	/* at least one of sock, tcp */
	const char *tcp;
	const struct config_tls *tls;	/* TLS on TCP (NULL: off) */
	unsigned threads;	/* loop threads (0: the default) */
};

int export_run_file(const struct export_file_opts *o);

/* Loop threads when neither the option nor the store says.  */
#define EXPORT_THREADS_DEFAULT	4

#endif
