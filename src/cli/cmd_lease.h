/*
 * src/cli/cmd_lease.h - lease glue other commands use: the store's lease
 * area from its superblock, and `lease init` for `csnap mkstore`.
 */
#ifndef CSNAP_CLI_CMD_LEASE_H
#define CSNAP_CLI_CMD_LEASE_H

#include "lease/lease.h"

#include <stdbool.h>
#include <stdint.h>

/* Reads STORE's superblock and fills the lease area (offsets, alignment,
 * sector size, lockspace from the store uuid).  */
int cli_lease_area(const char *store, struct lease_area *a);
/* Offline tools (mkstore --force, upgrade): -EBUSY with a one-line
 * message when any host holds STORE's delta lease or never released it
 * (it may have crashed while using the store: `csnap lease init --force`
 * clears that deliberately); 0 when none does or there is no readable
 * lease area.  OLD is the store's superblock.  */
struct csnap_sb;
int cli_refuse_if_leases_held(const char *path, const struct csnap_sb *old);
/* `csnap lease init` on a store whose superblock is written: lockspace,
 * master lease and empty owner record.  mkstore calls it last.  */
int cli_lease_init_store(const char *store, uint32_t io_timeout, bool force);
/* io_timeout to write: csnap.conf's (CONF, else $CSNAP_CONF, else
 * /etc/csnap/csnap.conf if present), else the built-in default.  */
int cli_lease_io_timeout(const char *conf, uint32_t *io_timeout);

/* The hook `csnap mkstore` calls once the superblock is written (declared
 * in cmd_mkstore.c): lease init with io_timeout from csnap.conf
 * ($CSNAP_CONF or /etc/csnap/csnap.conf, else the default), never forced.  */
struct csnap_sb;
int mkstore_init_leases(const char *store_path, const struct csnap_sb *sb);

#endif
