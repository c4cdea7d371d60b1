/*
 * utils/snapname.h - the one rule for snapshot names, used by the CLI,
 * the metadata server, the store engine and the wire protocol.
 *
 * A name is 1..SNAP_NAME_MAX bytes of A-Z a-z 0-9 . _ + : @ -, not
 * starting with '.' or '-' (so it is a safe file name, NBD export name and
 * command-line argument).  A name that is valid may still be reserved:
 * "origin" is the export name of the origin volume, so an export could
 * never serve a snapshot under it.  Reserved names cannot be created;
 * snapshots made under them before this rule (old stores) can still be
 * listed and deleted.
 */
#ifndef CSNAP_UTILS_SNAPNAME_H
#define CSNAP_UTILS_SNAPNAME_H

#include <stdbool.h>

#define SNAP_NAME_MAX	63	/* bytes, without the NUL */

/* Well-formed (see above)?  */
bool snap_name_valid(const char *name);
/* Reserved for another use (see above)?  */
bool snap_name_reserved(const char *name);
/* May a snapshot be created under NAME?  0, or -EINVAL with a one-line
 * reason (err_set) that shows the name escaped.  */
int snap_name_check(const char *name);

#endif
