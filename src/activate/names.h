/*
 * src/activate/names.h - how a csnap volume is named in the kernel: the
 * device-mapper name and uuid, the nbd backend identifier and the dm-linear
 * table.  Pure functions (no I/O), unit-tested in tests/unit/test_activate.c.
 *
 *   dm name    csnap-<store>-<volume>, each '-' inside STORE and VOLUME
 *              doubled, as LVM builds <vg>-<lv>: so the split back is
 *              unambiguous (the first single '-' after "csnap-").
 *   dm uuid    CSNAP-<store uuid, 32 hex digits, no dashes>-<volume id>,
 *              the id being the snapshot's immutable id in decimal, or
 *              "origin": renaming a snapshot never breaks a link to it.
 *   backend    csnap:<store uuid with dashes>:<volume name>, the string
 *              the kernel's nbd driver shows in /sys/block/nbdN/backend;
 *              the export finds its devices again by it after a restart.
 *   table      "0 <sectors> linear <major>:<minor> 0".
 *
 * Names allowed for stores and volumes: those of utils/snapname.h
 * (A-Z a-z 0-9 . _ + : @ -, not starting with '.' or '-'): they become
 * path components under /dev/csnap.
 */
#ifndef CSNAP_ACTIVATE_NAMES_H
#define CSNAP_ACTIVATE_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "utils/uuid.h"

#define ACT_DM_PREFIX		"csnap-"
#define ACT_UUID_PREFIX		"CSNAP-"
#define ACT_BACKEND_PREFIX	"csnap:"
/* device-mapper limits (DM_NAME_LEN, DM_UUID_LEN), with the NUL.  */
#define ACT_DM_NAME_MAX		128
#define ACT_DM_UUID_MAX		129
/* the kernel keeps the backend string whole; ours are short.  */
#define ACT_BACKEND_MAX		256
#define ACT_TABLE_MAX		96
/* volume id of the origin in dm uuids */
#define ACT_ORIGIN_ID		0u

/* True if NAME may be a store or volume name under /dev/csnap.  */
bool act_name_valid(const char *name);

/* Each returns 0, or -EINVAL (invalid name) / -ENAMETOOLONG (does not fit
 * in N bytes).  OUT is always NUL-terminated when N > 0.  */
int act_dm_name(const char *store, const char *volume, char *out, size_t n);
/* ID: snapshot id (>= 1), or ACT_ORIGIN_ID for the origin.  */
int act_dm_uuid(const struct csnap_uuid *store, uint32_t id, char *out, size_t n);
int act_backend_id(const struct csnap_uuid *store, const char *volume, char *out, size_t n);
/* SIZE in bytes (rounded down to 512-byte sectors; must hold at least one
 * sector), over the block device MAJOR:MINOR.  */
int act_linear_table(uint64_t size, unsigned major, unsigned minor, char *out, size_t n);

/* The reverse of act_dm_name(): 0, or -EINVAL when DMNAME is not a csnap
 * dm name.  */
int act_dm_name_split(const char *dmname, char *store, size_t sn, char *volume, size_t vn);
/* True if DMUUID is a csnap volume's uuid of STORE (any volume when
 * STORE is NULL).  */
bool act_dm_uuid_is_csnap(const char *dmuuid, const struct csnap_uuid *store);
/* The store uuid inside a csnap dm uuid: 0 or -EINVAL.  */
int act_dm_uuid_store(const char *dmuuid, struct csnap_uuid *store);
/* Splits a backend identifier; 0 or -EINVAL.  */
int act_backend_split(const char *backend, struct csnap_uuid *store, char *volume, size_t vn);

#endif
