/*
 * src/export/export.h - the `csnap export` daemon: serves a store's origin
 * and snapshots over NBD, reading and writing the shared devices directly
 * and asking the store's master only metadata questions.
 */
#ifndef CSNAP_EXPORT_EXPORT_H
#define CSNAP_EXPORT_EXPORT_H

/* Runs until SIGINT/SIGTERM.  CONF: csnap.conf; STORE: a [store NAME]
 * section (or its device).  SOCK / TCP ("[ADDR:]PORT") override the
 * configured listener when not NULL.  Returns an exit status.  */
int export_run(const char *conf, const char *store, const char *sock, const char *tcp);

#endif
