/*
 * src/cli/cmd_activate.c - `csnap activate` and `csnap deactivate`: csnap
 * volumes as kernel block devices, /dev/csnap/<store>/<volume>, the LVM
 * way (docs/activate.md).
 *
 *   csnap activate [-c CONF] [--wait SECONDS] STORE [VOLUME...]
 *   csnap activate [-c CONF] [--wait SECONDS] --all
 *   csnap deactivate [-c CONF] [--force] STORE [VOLUME...]
 *   csnap deactivate [--force] --all
 *
 * This file resolves names (csnap.conf, the store's superblock, snapshot
 * ids from the master); src/activate/ does the kernel work.  Every volume
 * is tried; the exit status is 1 if any failed.
 */
#include "src/cli/cli.h"

#include "src/activate/activate.h"
#include "src/activate/dm.h"
#include "src/activate/nbdnl.h"
#include "src/agent/agent.h"
#include "src/cli/admin_util.h"
#include "src/store/superblock.h"
#include "utils/config.h"
#include "utils/err.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_CONF "/etc/csnap/csnap.conf"
#define MAX_VOLS 256

static const char *conf_path(const char *conf)
{
	if (conf)
		return conf;
	return getenv("CSNAP_CONF") ? getenv("CSNAP_CONF") : DEFAULT_CONF;
}

static int load_config(const char *conf, struct config **out)
{
	struct config *cfg = calloc(1, sizeof *cfg);

	if (!cfg)
		return cli_error("out of memory");
	if (config_load(conf_path(conf), cfg) < 0) {
		free(cfg);
		return cli_error("%s", err_get());
	}
	*out = cfg;
	return 0;
}

static int store_uuid(const struct config_store *st, struct csnap_uuid *u)
{
	char path[CONFIG_PATH_MAX];
	struct csnap_sb sb;

	if (agent_locate_store(st->device, path, sizeof path, &sb) < 0)
		return cli_error("store %s: %s", st->name, err_get());
	memcpy(u->b, sb.uuid, sizeof u->b);
	return 0;
}

/* STORE as given: a [store NAME], its device as written, or any path,
 * UUID=<uuid> or LABEL=<name> of the same store (the config entry whose superblock uuid
 * matches): one store is one device stack whatever it is called.  */
static const struct config_store *find_store(const struct config *cfg, const char *arg)
{
	const struct config_store *st = config_find_store(cfg, arg);
	char path[CONFIG_PATH_MAX];
	struct csnap_sb want, sb;

	if (st)
		return st;
	if (!strchr(arg, '/') && strncmp(arg, "UUID=", 5) && strncmp(arg, "LABEL=", 6)) {
		cli_error("%s: no [store %s] in csnap.conf", arg, arg);
		return NULL;
	}
	if (agent_locate_store(arg, path, sizeof path, &want) < 0) {
		cli_error("%s: %s", arg, err_get());
		return NULL;
	}
	for (int i = 0; i < cfg->nstores; i++)
		if (agent_locate_store(cfg->stores[i].device, path, sizeof path, &sb) == 0 &&
		    !memcmp(sb.uuid, want.uuid, sizeof sb.uuid))
			return &cfg->stores[i];
	cli_error("%s: store found, but no [store NAME] of csnap.conf uses it", arg);
	return NULL;
}

/* With systemd, an export that is not running is started (its unit
 * requires the agent); otherwise activation waits for it.  */
static void start_export_unit(const char *store)
{
	char unit[128];
	pid_t pid;

	if (access("/run/systemd/system", F_OK) < 0)
		return;
	snprintf(unit, sizeof unit, "csnap-export@%s.service", store);
	pid = fork();
	if (pid == 0) {
		execlp("systemctl", "systemctl", "start", "--no-block", unit, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

/* Snapshot ids by name from the master; waits for one.  */
static int snapshot_ids(const char *conf, const struct config_store *st, int wait_s,
			char **vols, int nvols, uint32_t *ids)
{
	struct admin_args a;
	struct admin_conn ac;
	struct proto_msg m, rep;
	int rc = 0;

	memset(&a, 0, sizeof a);
	a.args[0] = st->name;
	a.nargs = 1;
	a.conf = conf_path(conf);
	a.timeout_ms = wait_s * 1000;
	fprintf(stderr, "csnap: activate: store %s: asking the master for snapshot ids "
		"(waiting up to %d s for one)...\n", st->name, wait_s);
	if (admin_connect(&a, &ac))
		return 1;
	proto_msg_init(&m, PROTO_SNAP_LIST, 0);
	if (proto_client_call(ac.c, &m, &rep) < 0) {
		admin_close(&ac);
		return cli_error("store %s: snapshot list: %s", st->name, err_get());
	}
	for (int i = 0; i < nvols; i++) {
		if (!strcmp(vols[i], "origin"))
			continue;
		bool found = false;
		for (uint32_t j = 0; j < rep.u.snap_list.n && !found; j++)
			if (!strcmp(rep.u.snap_list.s[j].name, vols[i])) {
				ids[i] = rep.u.snap_list.s[j].id;
				found = true;
			}
		if (!found)
			rc = cli_error("store %s: no snapshot named %s", st->name, vols[i]);
	}
	proto_msg_free(&rep);
	admin_close(&ac);
	return rc;
}

static int activate_store(const char *conf, const struct config_store *st, char **argv_vols,
			  int nvols, int wait_s)
{
	char listbuf[CONFIG_PATH_MAX], *vols[MAX_VOLS], *save = NULL;
	uint32_t ids[MAX_VOLS] = { 0 };
	struct csnap_uuid uuid = { { 0 } };
	bool snaps = false;
	int rc = 0;

	if (!nvols) {
		snprintf(listbuf, sizeof listbuf, "%s", st->activate);
		for (char *w = strtok_r(listbuf, " \t,", &save); w && nvols < MAX_VOLS;
		     w = strtok_r(NULL, " \t,", &save))
			vols[nvols++] = w;
	} else {
		for (int i = 0; i < nvols; i++)
			vols[i] = argv_vols[i];
	}
	for (int i = 0; i < nvols; i++)
		if (strcmp(vols[i], "origin"))
			snaps = true;
	if (store_uuid(st, &uuid))
		return 1;
	if (snaps && snapshot_ids(conf, st, wait_s, vols, nvols, ids))
		return 1;
	start_export_unit(st->name);
	for (int i = 0; i < nvols; i++) {
		struct act_vol v = {
			.store = st->name, .uuid = uuid, .volume = vols[i], .id = ids[i],
			.export_addr = config_export_local_unix(st) ? st->export_socket
								    : st->export_address,
			.export_port = config_export_local_unix(st) ? 0 : st->export_port,
			.timeout = st->nbd_timeout, .dead_timeout = st->nbd_dead_timeout,
			.wait_ms = wait_s * 1000,
		};
		struct act_made made;

		if (v.export_port && !strcmp(v.export_addr, "0.0.0.0"))
			v.export_addr = "127.0.0.1";
		if (act_up(&v, &made) < 0) {
			rc = cli_error("activate %s/%s: %s", st->name, vols[i], err_get());
			continue;
		}
		printf("%s %s %s nbd%d %llu\n", made.link, made.dm_name,
		       made.existed ? "already-active" : "activated", made.nbd_index,
		       (unsigned long long)made.size);
	}
	return rc;
}

static int cmd_activate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "all", no_argument, NULL, 'a' },
		{ "wait", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL;
	struct config *cfg;
	bool all = false;
	uint64_t wait_s = 60;
	int c, rc = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'a': all = true; break;
		case 'w':
			if (parse_u64(optarg, 0, 3600, &wait_s))
				return cli_usage("--wait takes seconds (0..3600)");
			break;
		default: return cli_usage(NULL);
		}
	}
	if (all ? optind != argc : optind >= argc)
		return cli_usage(all ? "--all takes no STORE" : "which store?");
	if (act_kernel_check() < 0)
		return cli_error("activate: %s", err_get());
	if (load_config(conf, &cfg))
		return 1;
	if (all) {
		for (int i = 0; i < cfg->nstores; i++)
			rc |= activate_store(conf, &cfg->stores[i], NULL, 0, (int)wait_s);
	} else {
		const struct config_store *st = find_store(cfg, argv[optind]);
		if (!st)
			rc = 1;
		else
			rc = activate_store(conf, st, argv + optind + 1, argc - optind - 1, (int)wait_s);
	}
	free(cfg);
	return rc ? 1 : 0;
}

/* ---- deactivate ------------------------------------------------------- */

struct down_ctx {
	const struct csnap_uuid *only;	/* NULL: every store */
	bool force;
	int failed, done;
};

static void down_one(struct down_ctx *d, const char *store, const struct csnap_uuid *u,
		     const char *vol)
{
	int rc = act_down(store, u, vol, d->force);

	if (rc < 0) {
		cli_error("deactivate %s/%s: %s", store, vol, err_get());
		d->failed++;
	} else if (rc == 0) {
		printf("%s/%s deactivated\n", store, vol);
		d->done++;
	}
}

static int down_dm_cb(const char *name, const char *uuid, void *arg)
{
	struct down_ctx *d = arg;
	char store[ACT_DM_NAME_MAX], vol[ACT_DM_NAME_MAX];
	struct csnap_uuid u;

	if (act_dm_uuid_store(uuid, &u) < 0 || (d->only && !csnap_uuid_equal(&u, d->only)))
		return 0;
	if (act_dm_name_split(name, store, sizeof store, vol, sizeof vol) < 0)
		return 0;
	down_one(d, store, &u, vol);
	return 0;
}

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return true;
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	return empty;
}

/* nbd devices of csnap left without their dm device (a deactivation cut
 * short): nothing holds them, so they are only disconnected.  */
static int down_nbd_cb(int index, const char *backend, void *arg)
{
	struct down_ctx *d = arg;
	char vol[ACT_BACKEND_MAX], holders[64];
	struct csnap_uuid u;

	if (act_backend_split(backend, &u, vol, sizeof vol) < 0 ||
	    (d->only && !csnap_uuid_equal(&u, d->only)))
		return 0;
	snprintf(holders, sizeof holders, "/sys/block/nbd%d/holders", index);
	if (!dir_empty(holders))
		return 0;
	if (nbdnl_disconnect(index) < 0) {
		cli_error("deactivate nbd%d (%s): %s", index, vol, err_get());
		d->failed++;
	} else {
		printf("nbd%d (%s) disconnected\n", index, vol);
		d->done++;
	}
	return 0;
}

static int cmd_deactivate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "all", no_argument, NULL, 'a' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL;
	struct down_ctx d = { 0 };
	struct csnap_uuid uuid;
	bool all = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:f", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'a': all = true; break;
		case 'f': d.force = true; break;
		default: return cli_usage(NULL);
		}
	}
	if (all ? optind != argc : optind >= argc)
		return cli_usage(all ? "--all takes no STORE" : "which store?");
	if (act_kernel_check() < 0)
		return cli_error("deactivate: %s", err_get());
	if (!all) {
		struct config *cfg;
		const struct config_store *st;

		if (load_config(conf, &cfg))
			return 1;
		st = find_store(cfg, argv[optind]);
		if (!st) {
			free(cfg);
			return 1;
		}
		if (store_uuid(st, &uuid)) {
			free(cfg);
			return 1;
		}
		d.only = &uuid;
		if (optind + 1 < argc) {
			for (int i = optind + 1; i < argc; i++)
				down_one(&d, st->name, &uuid, argv[i]);
			free(cfg);
			return d.failed ? 1 : 0;
		}
		free(cfg);
	}
	act_dm_for_each(down_dm_cb, &d);
	nbd_for_each_backend(down_nbd_cb, &d);
	if (!d.done && !d.failed)
		printf("nothing active\n");
	return d.failed ? 1 : 0;
}

CLI_COMMAND(activate, "activate",
	    "[-c CONF] [--wait SECONDS] STORE [VOLUME...] | --all",
	    "make volumes kernel block devices /dev/csnap/STORE/VOLUME (nbd + device-mapper)",
	    cmd_activate)
CLI_COMMAND(deactivate, "deactivate",
	    "[-c CONF] [--force] STORE [VOLUME...] | --all",
	    "remove activated volumes (dm device, then nbd); refuses an open one without --force",
	    cmd_deactivate)
