/*
 * tests/tools/store_set_version.c - relabel a store's format version, for
 * tests of version handling (a store "from the future", or one written by
 * an older csnap when no image of it is at hand):
 *   store_set_version STORE VERSION
 * Rewrites both superblock copies with VERSION and nothing else changed.
 * Only for tests: the store must not be in use.
 */
#include "ioengine/ioengine.h"
#include "src/store/superblock.h"
#include "utils/err.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	struct io_dev *dev;
	struct csnap_sb sb;

	if (argc != 3) {
		fprintf(stderr, "usage: store_set_version STORE VERSION\n");
		return 2;
	}
	if (io_dev_open(argv[1], IO_DEV_RDWR, &dev) < 0 || csnap_sb_read(dev, &sb, NULL) < 0)
		goto fail;
	sb.version = (uint32_t)strtoul(argv[2], NULL, 0);
	if (csnap_sb_write(dev, &sb) < 0)
		goto fail;
	io_dev_close(dev);
	return 0;
fail:
	fprintf(stderr, "store_set_version: %s\n", err_get());
	return 1;
}
