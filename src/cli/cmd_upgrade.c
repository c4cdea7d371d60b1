/*
 * src/cli/cmd_upgrade.c - `csnap upgrade STORE`: move a store of an older
 * format version up to this csnap's (src/store/upgrade.c does the work,
 * crash-safely: a cut leaves the old version or the new one).
 *
 * Offline, like mkstore --force: refused while any host holds the store's
 * delta lease or never released it (a running or crashed node), and the
 * store is opened exclusively (O_EXCL on a block device).  A store already
 * at the current version is left untouched (exit 0); a newer one is
 * refused by the superblock reader.
 */
#include "src/cli/cli.h"
#include "src/cli/cmd_lease.h"

#include "ioengine/ioengine.h"
#include "src/store/store.h"
#include "utils/err.h"
#include "utils/escape.h"

#include <stdio.h>

static void print_step(void *arg, const char *line)
{
	printf("%s: %s\n", ESC((const char *)arg), line);
}

static int cmd_upgrade(int argc, char **argv)
{
	if (argc != 2)
		return cli_usage("need STORE");
	const char *path = argv[1];
	struct csnap_sb sb;
	if (csnap_sb_read_path(path, &sb) < 0)
		return cli_error("%s", err_get());
	if (sb.version == CSNAP_FORMAT_VERSION) {
		printf("%s: already at format version %u\n", ESC(path), sb.version);
		return 0;
	}
	if (cli_refuse_if_leases_held(path, &sb) < 0)
		return cli_error("%s", err_get());
	struct io_dev *dev;
	if (io_dev_open(path, IO_DEV_RDWR | IO_DEV_EXCL, &dev) < 0)
		return cli_error("%s", err_get());
	uint32_t from = 0;
	int r = store_upgrade_dev(dev, &from, print_step, (void *)path);
	io_dev_close(dev);
	if (r < 0)
		return cli_error("upgrade: %s", err_get());
	printf("%s: upgraded from format version %u to %u\n", ESC(path), from, CSNAP_FORMAT_VERSION);
	return 0;
}

CLI_COMMAND(upgrade, "upgrade", "STORE",
	    "upgrade a snapshot store to this csnap's on-disk format (cluster stopped)", cmd_upgrade)
