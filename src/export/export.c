/*
 * src/export/export.c - the `csnap export` daemon (csnap store mode).
 */
#include "src/export/export.h"

#include <stdio.h>

int export_run(const char *conf, const char *store, const char *sock, const char *tcp)
{
	(void)conf; (void)sock; (void)tcp;
	fprintf(stderr, "csnap: export: store mode for %s is not built yet; use --file\n", store);
	return 1;
}
