/*
 * tests/tools/agent_fakestore.c - makes a file or device look like a csnap
 * store to the agent: a valid superblock (both copies; the engine area left
 * "not laid out yet", which the superblock reader accepts) with the given
 * uuid and the standard lease layout for 512-byte sectors, and an
 * initialised lease area.  For agent tests until `csnap mkstore` exists;
 * it writes nothing the agent does not read.
 *
 *   agent_fakestore PATH UUID [IO_TIMEOUT]
 */
#include "ioengine/ioengine.h"
#include "lease/lease.h"
#include "src/store/superblock.h"
#include "utils/err.h"
#include "utils/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
	struct csnap_uuid u;
	struct csnap_sb sb;
	struct io_dev *dev;
	struct lease_area a;
	uint32_t io_timeout = argc > 3 ? (uint32_t)atoi(argv[3]) : 1;

	if (argc < 3 || csnap_uuid_parse(argv[2], &u) < 0) {
		fprintf(stderr, "usage: agent_fakestore PATH UUID [IO_TIMEOUT]\n");
		return 2;
	}
	if (io_dev_open(argv[1], IO_DEV_RDWR, &dev) < 0) {
		fprintf(stderr, "agent_fakestore: %s\n", err_get());
		return 1;
	}
	memset(&sb, 0, sizeof sb);
	sb.version = CSNAP_FORMAT_VERSION;
	memcpy(sb.uuid, u.b, 16);
	sb.ctime = (uint64_t)time(NULL);
	sb.chunk_size = CSNAP_CHUNK_DEFAULT;
	sb.meta_block_size = CSNAP_META_BLOCK_SIZE;
	sb.store_size = io_dev_size(dev);
	sb.origin_size = sb.store_size;
	snprintf(sb.origin_id, sizeof sb.origin_id, "size:%llu", (unsigned long long)sb.origin_size);
	sb.max_snapshots = 64;
	sb.mask_bits = 64;
	csnap_sb_lease_layout(&sb, 512);
	sb.meta_offset = sb.lease_offset + csnap_lease_area_size(sb.lease_align);
	if (csnap_sb_write(dev, &sb) < 0) {
		fprintf(stderr, "agent_fakestore: %s\n", err_get());
		return 1;
	}
	io_dev_close(dev);
	if (lease_area_setup(&a, argv[1], sb.lease_offset, sb.lease_align, sb.lease_sector_size,
			     &u) < 0 || lease_init(&a, io_timeout, true) < 0) {
		fprintf(stderr, "agent_fakestore: lease area: %s\n", err_get());
		return 1;
	}
	return 0;
}
