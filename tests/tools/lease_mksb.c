/*
 * tests/tools/lease_mksb.c - writes a bare csnap superblock (engine not yet
 * laid out, as during mkstore) so `csnap lease init/status` can be tested
 * on a file without the store engine:
 *
 *   lease_mksb PATH [SECTOR]     prints the new store's uuid
 *
 * SECTOR (512 or 4096) picks the lease geometry (1 MiB or 8 MiB align).
 */
#include "ioengine/ioengine.h"
#include "src/store/superblock.h"
#include "utils/err.h"
#include "utils/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct io_dev *dev;
	struct csnap_sb sb;
	struct csnap_uuid u;
	char text[CSNAP_UUID_STR_LEN];

	if (argc < 2) {
		fprintf(stderr, "usage: lease_mksb PATH [SECTOR]\n");
		return 2;
	}
	if (io_dev_open(argv[1], IO_DEV_RDWR, &dev) < 0) {
		fprintf(stderr, "lease_mksb: %s\n", err_get());
		return 1;
	}
	memset(&sb, 0, sizeof(sb));
	sb.version = CSNAP_FORMAT_VERSION;
	csnap_uuid_generate(&u);
	memcpy(sb.uuid, u.b, sizeof(sb.uuid));
	sb.chunk_size = CSNAP_CHUNK_DEFAULT;
	sb.meta_block_size = CSNAP_META_BLOCK_SIZE;
	sb.store_size = io_dev_size(dev);
	sb.max_snapshots = CSNAP_MAX_SNAPSHOTS_DEFAULT;
	if (csnap_sb_lease_layout(&sb, argc > 2 ? (unsigned)atoi(argv[2]) : 512) < 0) {
		fprintf(stderr, "lease_mksb: %s\n", err_get());
		return 1;
	}
	sb.meta_offset = sb.lease_offset + csnap_lease_area_size(sb.lease_align);
	if (csnap_sb_write(dev, &sb) < 0) {
		fprintf(stderr, "lease_mksb: %s\n", err_get());
		return 1;
	}
	io_dev_close(dev);
	csnap_uuid_unparse(&u, text);
	printf("%s\n", text);
	return 0;
}
