/*
 * src/cli/cmd_server.c - `csnap server`: run the metadata server of one
 * store on this node (standby until it wins the master lease).
 *
 * Settings come from csnap.conf ([global] host_id, address, io_timeout,
 * node_name; [store NAME] device, origin, server_port, store_full,
 * cache_size) and may be overridden on the command line.
 */
#include "src/cli/cli.h"
#include "src/server/server.h"
#include "utils/config.h"
#include "utils/err.h"
#include "utils/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static int cmd_server(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "origin", required_argument, NULL, 'o' },
		{ "host-id", required_argument, NULL, 'i' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "node-name", required_argument, NULL, 'n' },
		{ "io-timeout", required_argument, NULL, 't' },
		{ "store-full", required_argument, NULL, 'f' },
		{ "grace-ms", required_argument, NULL, 'g' },
		{ "barrier-timeout-ms", required_argument, NULL, 'b' },
		{ "no-join", no_argument, NULL, 'J' },
		{ "debug", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL;
	static struct config cfg;	/* large (PATH_MAX paths): off the stack */
	struct server_opts o;
	uint64_t n;
	char origin[CONFIG_PATH_MAX] = "", store[CONFIG_PATH_MAX] = "";
	char address[CONFIG_NAME_MAX] = "", node[CONFIG_NAME_MAX] = "";
	int c;

	server_opts_defaults(&o);
	config_defaults(&cfg);
	struct server_opts cmdline = o;
	bool have_host = false, have_port = false, have_full = false, have_tmo = false;
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'o': snprintf(origin, sizeof origin, "%s", optarg); break;
		case 'i':
			if (parse_u64(optarg, 1, 2000, &n))
				return cli_usage("--host-id must be 1..2000");
			cmdline.host_id = (uint32_t)n;
			have_host = true;
			break;
		case 'a': snprintf(address, sizeof address, "%s", optarg); break;
		case 'p':
			if (parse_u64(optarg, 0, 65535, &n))
				return cli_usage("--port must be 0..65535");
			cmdline.port = (uint16_t)n;
			have_port = true;
			break;
		case 'n': snprintf(node, sizeof node, "%s", optarg); break;
		case 't':
			if (parse_u64(optarg, 1, 300, &n))
				return cli_usage("--io-timeout must be 1..300 seconds");
			cmdline.io_timeout = (uint32_t)n;
			have_tmo = true;
			break;
		case 'f':
			if (!strcmp(optarg, "release"))
				cmdline.store_full = STORE_FULL_RELEASE;
			else if (!strcmp(optarg, "fail"))
				cmdline.store_full = STORE_FULL_FAIL;
			else
				return cli_usage("--store-full is release or fail");
			have_full = true;
			break;
		case 'g':
			if (parse_u64(optarg, 0, 3600000, &n))
				return cli_usage("--grace-ms must be 0..3600000");
			o.grace_ms = (int)n;
			break;
		case 'b':
			if (parse_u64(optarg, 100, 3600000, &n))
				return cli_usage("--barrier-timeout-ms must be 100..3600000");
			o.barrier_timeout_ms = (int)n;
			break;
		case 'J': o.join = false; break;
		case 'd': log_set_level(LOG_LEVEL_DEBUG); break;
		default: return cli_usage(NULL);
		}
	}
	if (optind != argc - 1)
		return cli_usage("one STORE (a [store NAME] of csnap.conf, or a store path)");
	const char *arg = argv[optind];

	if (config_load_default(conf, &cfg) < 0)
		return cli_error("%s", err_get());
	const struct config_store *cs = config_find_store(&cfg, arg);
	if (cs) {
		snprintf(store, sizeof store, "%s", cs->device);
		if (!origin[0])
			snprintf(origin, sizeof origin, "%s", cs->origin);
		o.port = cs->server_port;
		o.store_full = cs->store_full;
		o.cache_bytes = cs->cache_bytes;
		if (!cs->server)
			return cli_error("store %s: this node is not a server (server = no)", arg);
	} else {
		snprintf(store, sizeof store, "%s", arg);
	}
	if (!strncmp(store, "UUID=", 5) || !strncmp(store, "LABEL=", 6))
		return cli_error("store %s: give the device path (UUID= and LABEL= are resolved by the agent)", store);
	o.host_id = cfg.host_id;
	o.io_timeout = cfg.io_timeout;
	if (!address[0] && cfg.address[0])
		snprintf(address, sizeof address, "%s", cfg.address);
	if (!node[0])
		snprintf(node, sizeof node, "%s", cfg.node_name[0] ? cfg.node_name : "");
	if (have_host) o.host_id = cmdline.host_id;
	if (have_port) o.port = cmdline.port;
	if (have_full) o.store_full = cmdline.store_full;
	if (have_tmo) o.io_timeout = cmdline.io_timeout;
	if (!o.host_id)
		return cli_usage("no host_id (csnap.conf [global] host_id or --host-id)");
	if (!origin[0])
		return cli_usage("no origin (csnap.conf origin = or --origin)");
	if (!address[0])
		snprintf(address, sizeof address, "127.0.0.1");
	if (!node[0])
		snprintf(node, sizeof node, "host%u", o.host_id);
	o.store_path = store;
	o.origin_path = origin;
	o.address = address;
	o.node_name = node;

	/* A daemon logs at info unless -q/-v or the config say otherwise. */
	enum log_level lvl = log_get_level();
	log_init("csnap server", lvl == LOG_LEVEL_WARN ? (enum log_level)cfg.log_level : lvl);
	int r = server_run(&o);
	if (r < 0)
		return cli_error("server: %s", err_get());
	return 0;
}

CLI_COMMAND(server, "server",
	    "[-c CONF] [--origin PATH] [--host-id N] [--address A] [--port P] "
	    "[--node-name NAME] [--io-timeout S] [--store-full release|fail] [--grace-ms MS] "
	    "[--barrier-timeout-ms MS] [--no-join] [--debug] STORE",
	    "run the store's metadata server (standby until master)", cmd_server)
