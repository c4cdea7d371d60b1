/*
 * src/cli/cmd_scan.c - `csnap scan [-c CONF] [--json]`: every csnap store
 * on this node's block devices, with its uuid, its name in csnap.conf (if
 * a [store NAME] section points at it, by path or UUID=), its origin's
 * identity and its size.
 *
 * Candidates are those of UUID= lookups (agent_scan_stores: /dev/disk/by-id,
 * /proc/partitions, $CSNAP_SCAN); libblkid cannot recognise csnap's format,
 * so csnap reads its own superblock.  A device seen under several names
 * (by-id links, kernel name, /dev/mapper) is one line; csnap's own
 * activated volumes are never read.
 */
#include "src/cli/cli.h"

#include "src/activate/sysdev.h"
#include "src/agent/agent.h"
#include "src/cli/admin_util.h"
#include "src/store/superblock.h"
#include "utils/config.h"
#include "utils/err.h"
#include "utils/uuid.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCAN_MAX 256

struct found {
	char path[CONFIG_PATH_MAX];
	dev_t dev;
	ino_t ino;		/* 0 for block devices */
	struct csnap_sb sb;
};

struct scan_out {
	struct found f[SCAN_MAX];
	int n;
};

static void on_store(const char *path, const struct stat *st, const struct csnap_sb *sb, void *arg)
{
	struct scan_out *o = arg;
	dev_t dev = S_ISBLK(st->st_mode) ? st->st_rdev : st->st_dev;
	ino_t ino = S_ISBLK(st->st_mode) ? 0 : st->st_ino;

	for (int i = 0; i < o->n; i++)
		if (o->f[i].dev == dev && o->f[i].ino == ino) {
			/* the same device again: keep the kernel's short name
			 * (/dev/sdb, /dev/dm-3) over a by-id link */
			if (!strchr(path + 5, '/'))
				snprintf(o->f[i].path, sizeof o->f[i].path, "%s", path);
			return;
		}
	if (o->n == SCAN_MAX)
		return;
	struct found *f = &o->f[o->n++];
	snprintf(f->path, sizeof f->path, "%s", path);
	f->dev = dev;
	f->ino = ino;
	f->sb = *sb;
}

/* The csnap.conf section that names this store, or "-".  */
static const char *conf_name(const struct config *cfg, const struct found *f)
{
	char u[CSNAP_UUID_STR_LEN];
	struct stat st;

	if (!cfg)
		return "-";
	csnap_uuid_unparse((const struct csnap_uuid *)f->sb.uuid, u);
	for (int i = 0; i < cfg->nstores; i++) {
		const char *d = cfg->stores[i].device;
		if (!strncasecmp(d, "UUID=", 5)) {
			if (!strcasecmp(d + 5, u))
				return cfg->stores[i].name;
		} else if (!strncmp(d, "LABEL=", 6)) {
			if (f->sb.label[0] && !strcmp(d + 6, f->sb.label))
				return cfg->stores[i].name;
		} else if (stat(d, &st) == 0) {
			dev_t dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
			ino_t ino = S_ISBLK(st.st_mode) ? 0 : st.st_ino;
			if (dev == f->dev && ino == f->ino)
				return cfg->stores[i].name;
		}
	}
	return "-";
}

/* `csnap scan --udev DEVNODE`, for contrib/69-csnap-autoactivate.rules:
 * udev environment lines for a device holding a csnap store, nothing (exit
 * 0) for any other device.  Never reads csnap's own volumes.  */
static int scan_udev(const struct config *cfg, const char *devnode)
{
	struct found f;
	struct stat st;
	char u[CSNAP_UUID_STR_LEN];
	const char *name;

	if (stat(devnode, &st) < 0 || !S_ISBLK(st.st_mode) || act_is_csnap_volume(st.st_rdev))
		return 0;
	memset(&f, 0, sizeof f);
	if (csnap_sb_read_path(devnode, &f.sb) < 0)
		return 0;
	snprintf(f.path, sizeof f.path, "%s", devnode);
	f.dev = st.st_rdev;
	csnap_uuid_unparse((const struct csnap_uuid *)f.sb.uuid, u);
	printf("CSNAP_STORE_UUID=%s\n", u);
	if (f.sb.label[0])
		printf("CSNAP_STORE_LABEL=%s\n", f.sb.label);
	name = conf_name(cfg, &f);
	if (strcmp(name, "-")) {
		const struct config_store *cs = config_find_store(cfg, name);
		printf("CSNAP_STORE_NAME=%s\n", name);
		if (cs && cs->autoactivate)
			printf("CSNAP_AUTOACTIVATE=1\n");
	}
	return 0;
}

static int cmd_scan(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "udev", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL, *udev = NULL;
	struct config *cfg = NULL;
	struct scan_out *o;
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'j': json = true; break;
		case 'u': udev = optarg; break;
		default: return cli_usage(NULL);
		}
	}
	if (optind != argc)
		return cli_usage("scan takes no arguments");
	if (!conf)
		conf = getenv("CSNAP_CONF") ? getenv("CSNAP_CONF") : "/etc/csnap/csnap.conf";
	if (access(conf, R_OK) == 0) {
		cfg = calloc(1, sizeof *cfg);
		if (!cfg || config_load(conf, cfg) < 0) {
			free(cfg);
			return cli_error("%s", err_get());
		}
	}
	if (udev) {
		int rc = scan_udev(cfg, udev);
		free(cfg);
		return rc;
	}
	o = calloc(1, sizeof *o);
	if (!o) {
		free(cfg);
		return cli_error("out of memory");
	}
	agent_scan_stores(on_store, o);
	if (json)
		printf("[");
	else
		printf("%-24s %-36s %-12s %-12s %-24s %s\n", "DEVICE", "UUID", "LABEL", "CONF",
		       "ORIGIN", "SIZE");
	for (int i = 0; i < o->n; i++) {
		const struct found *f = &o->f[i];
		char u[CSNAP_UUID_STR_LEN], size[32];

		csnap_uuid_unparse((const struct csnap_uuid *)f->sb.uuid, u);
		if (json) {
			printf("%s\n  {\"device\": ", i ? "," : "");
			admin_json_str(stdout, f->path);
			printf(", \"uuid\": \"%s\", \"label\": ", u);
			admin_json_str(stdout, f->sb.label);
			printf(", \"name\": ");
			admin_json_str(stdout, conf_name(cfg, f));
			printf(", \"origin\": ");
			admin_json_str(stdout, f->sb.origin_id);
			printf(", \"origin_size\": %llu, \"size\": %llu, \"chunk_size\": %u}",
			       (unsigned long long)f->sb.origin_size,
			       (unsigned long long)f->sb.store_size, f->sb.chunk_size);
		} else {
			admin_fmt_bytes(size, sizeof size, f->sb.store_size);
			printf("%-24s %-36s %-12s %-12s %-24s %s\n", f->path, u,
			       f->sb.label[0] ? f->sb.label : "-", conf_name(cfg, f),
			       f->sb.origin_id[0] ? f->sb.origin_id : "-", size);
		}
	}
	if (json)
		printf("%s]\n", o->n ? "\n" : "");
	free(o);
	free(cfg);
	return 0;
}

CLI_COMMAND(scan, "scan", "[-c CONF] [--json] | --udev DEVNODE",
	    "list the csnap stores on this node's block devices (uuid, name, origin, size)",
	    cmd_scan)
