/*
 * src/cli/cmd_mkstore.c - `csnap mkstore`: create a snapshot store.
 *
 *   csnap mkstore [--chunk-size SIZE] [--max-snapshots N] [--force] STORE ORIGIN
 *
 * Always refuses a STORE that is its ORIGIN under another name or lies on
 * or under it (src/store/overlap.h: links, loop devices, dm slaves).
 * Refuses (unless --force) a STORE where libblkid finds a filesystem, RAID
 * or LVM signature or that already holds a csnap store; always refuses an
 * ORIGIN that cannot be read or is smaller than one chunk.  Records the
 * origin's size and identity (src/store/origin_id.h; a file origin gets
 * the xattr user.csnap.store) for servers, exports and check to verify;
 * refuses (unless --force) an origin already marked by another store.  Generates the
 * store uuid and a random 32-byte cluster secret (libsodium), derives the
 * lease area from the store's logical sector size (512 B: 1 MiB aligned
 * at 1 MiB; 4 KiB: 8 MiB at 8 MiB), puts the engine metadata after the
 * lease area on a chunk boundary, and formats the engine.
 */
#include "src/cli/cli.h"
#include "utils/snapname.h"
#include "src/cli/cmd_lease.h"

#include "ioengine/ioengine.h"
#include "src/store/origin_id.h"
#include "src/store/overlap.h"
#include "src/store/store.h"
#include "utils/config.h"
#include "utils/err.h"
#include "utils/escape.h"
#include "utils/uuid.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* libblkid's verdict on PATH: 1 and *type set if a signature was found,
 * 0 if none, negative if it could not probe.  */
static int probe_signature(const char *path, char *type, size_t len)
{
	blkid_probe pr = blkid_new_probe_from_filename(path);
	const char *v;
	int found = 0;

	if (!pr)
		return -EIO;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID);
	blkid_probe_enable_partitions(pr, 1);
	int r = blkid_do_safeprobe(pr);
	if (r == 0) {
		found = 1;
		if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0)
			snprintf(type, len, "%s", v);
		else if (blkid_probe_lookup_value(pr, "PTTYPE", &v, NULL) == 0)
			snprintf(type, len, "%s partition table", v);
		else
			snprintf(type, len, "unknown");
	} else if (r == -2) {
		found = 1;
		snprintf(type, len, "several (ambiguous)");
	}
	blkid_free_probe(pr);
	return found;
}

static int cmd_mkstore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "max-snapshots", required_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "name", required_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	const char *label = "";
	uint64_t chunk = CSNAP_CHUNK_DEFAULT, maxsnap = CSNAP_MAX_SNAPSHOTS_DEFAULT;
	bool force = false;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:n:f", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (parse_size(optarg, &chunk) < 0 || chunk < CSNAP_CHUNK_MIN ||
			    chunk > CSNAP_CHUNK_MAX || (chunk & (chunk - 1)))
				return cli_usage("--chunk-size must be a power of two from 4K to 1M");
			break;
		case 'n':
			if (parse_u64(optarg, 1, CSNAP_MAX_SNAPSHOTS_LIMIT, &maxsnap) < 0)
				return cli_usage("--max-snapshots must be 1..%d", CSNAP_MAX_SNAPSHOTS_LIMIT);
			break;
		case 'f':
			force = true;
			break;
		case 'N':
			if (strlen(optarg) >= CSNAP_LABEL_LEN || !snap_name_valid(optarg))
				return cli_usage("--name takes 1-%d of A-Z a-z 0-9 . _ + : @ -, "
						 "not starting with . or -", CSNAP_LABEL_LEN - 1);
			label = optarg;
			break;
		default:
			return cli_usage(NULL);
		}
	}
	if (argc - optind != 2)
		return cli_usage("need STORE and ORIGIN");
	const char *store_path = argv[optind], *origin_path = argv[optind + 1];

	/* the origin: readable, at least a chunk */
	struct io_dev *origin, *dev;
	if (io_dev_open(origin_path, IO_DEV_RDONLY, &origin) < 0)
		return cli_error("origin: %s", err_get());
	uint64_t origin_size = io_dev_size(origin);
	void *buf = io_buf_alloc(CSNAP_CHUNK_MIN);
	ret = buf ? io_dev_pread(origin, buf, CSNAP_CHUNK_MIN, 0) : -ENOMEM;
	io_buf_free(buf);
	io_dev_close(origin);
	if (origin_size < chunk)
		return cli_error("origin %s: too small (%" PRIu64 " bytes, chunk size %" PRIu64 ")",
				 origin_path, origin_size, chunk);
	if (ret < 0)
		return cli_error("origin %s: unreadable: %s", origin_path, err_get());
	/* O_DIRECT moves whole sectors: a file origin ending inside one
	 * could not have its last bytes read or written (a block device
	 * always is whole sectors) */
	if (origin_size % 512)
		return cli_error("origin %s: its size (%" PRIu64 " bytes) is not a multiple of 512; "
				 "pad a file origin first: truncate -s %" PRIu64 " %s",
				 origin_path, origin_size, (origin_size + 511) / 512 * 512, origin_path);

	/* formatting a store on (or under) its own origin destroys the
	 * origin; --force does not change that */
	char why[512];
	ret = storage_overlap(store_path, origin_path, why, sizeof why);
	if (ret < 0)
		return cli_error("%s", err_get());
	if (ret > 0)
		return cli_error("refusing to make a store on its own origin: %s", why);

	/* the store: nothing on it we would destroy */
	char type[64] = "";
	int sig = probe_signature(store_path, type, sizeof type);
	if (sig > 0 && !force)
		return cli_error("%s holds a %s signature; use --force to overwrite it", store_path, type);
	if (io_dev_open(store_path, IO_DEV_RDWR | IO_DEV_EXCL, &dev) < 0)
		return cli_error("store: %s", err_get());
	struct csnap_sb old;
	if (csnap_sb_read(dev, &old, NULL) == 0) {
		char u[CSNAP_UUID_STR_LEN];
		csnap_uuid_unparse((const struct csnap_uuid *)old.uuid, u);
		if (!force) {
			io_dev_close(dev);
			return cli_error("%s already holds a csnap store (uuid %s); use --force to overwrite it",
					 store_path, u);
		}
		/* Even --force never formats a store some host still uses:
		 * check its leases before anything is written.  */
		if (cli_refuse_if_leases_held(store_path, &old) < 0) {
			io_dev_close(dev);
			return cli_error("%s", err_get());
		}
	}

	/* An origin already marked by another store: making a second store
	 * for it would make the first one's servers refuse it.  */
	char mark[CSNAP_ORIGIN_ID_LEN + 1];
	origin_id_of_kind(origin_path, "mark", mark, sizeof mark);
	if (mark[0] && !force) {
		io_dev_close(dev);
		return cli_error("origin %s is marked as the origin of store %s (xattr %s); "
				 "use --force to make a new store for it", origin_path, mark + 5,
				 ORIGIN_ID_XATTR);
	}

	struct csnap_sb sb;
	memset(&sb, 0, sizeof sb);
	csnap_uuid_generate((struct csnap_uuid *)sb.uuid);
	if (sodium_init() < 0) {
		io_dev_close(dev);
		return cli_error("libsodium failed to initialise");
	}
	randombytes_buf(sb.secret, sizeof sb.secret);
	sb.ctime = (uint64_t)time(NULL);
	snprintf(sb.label, sizeof sb.label, "%s", label);
	sb.chunk_size = (uint32_t)chunk;
	sb.store_size = io_dev_size(dev) / CSNAP_META_BLOCK_SIZE * CSNAP_META_BLOCK_SIZE;
	sb.origin_size = origin_size;
	bool weak_id;
	if (origin_id_record(origin_path, origin_size, sb.uuid, sb.origin_id, &weak_id) < 0) {
		io_dev_close(dev);
		return cli_error("%s", err_get());
	}
	sb.max_snapshots = (uint32_t)maxsnap;
	if (csnap_sb_lease_layout(&sb, io_dev_align(dev) > 512 ? 4096 : 512) < 0) {
		io_dev_close(dev);
		return cli_error("store %s: %s", store_path, err_get());
	}
	uint64_t lease_end = sb.lease_offset + csnap_lease_area_size(sb.lease_align);
	sb.meta_offset = (lease_end + chunk - 1) / chunk * chunk;
	ret = store_format(dev, &sb);
	io_dev_close(dev);
	if (ret < 0)
		return cli_error("mkstore %s: %s", store_path, err_get());

	if (mkstore_init_leases(store_path, &sb) < 0)
		return cli_error("mkstore %s: lease area: %s", store_path, err_get());

	char u[CSNAP_UUID_STR_LEN];
	csnap_uuid_unparse((const struct csnap_uuid *)sb.uuid, u);
	printf("store %s\n", ESC(store_path));
	printf("  uuid %s\n", u);
	if (label[0])
		printf("  name %s\n", label);
	printf("  chunk size %u, %" PRIu64 " data chunks, up to %u snapshots\n",
	       sb.chunk_size, sb.engine.data_chunks, sb.max_snapshots);
	printf("  origin %s (%" PRIu64 " bytes, id %s)\n", ESC(origin_path), origin_size, sb.origin_id);
	if (weak_id)
		fprintf(stderr, "csnap: warning: origin %s has no stable identity (no dm uuid, wwid, serial "
			"or partition uuid; no xattr support for a file): only its size will be checked\n",
			ESC(origin_path));
	return 0;
}

CLI_COMMAND(mkstore, "mkstore", "[--chunk-size SIZE] [--max-snapshots N] [--name NAME] [--force] STORE ORIGIN",
	    "create a snapshot store for ORIGIN on STORE", cmd_mkstore)
