/*
 * src/cli/cmd_export.c - `csnap export`: the data path daemon.
 *
 *   csnap export [-c CONF] [--socket PATH | --tcp [ADDR:]PORT]
 *                [--master ADDR:PORT] STORE
 *       serve STORE's origin and every snapshot by name over NBD, as
 *       configured in csnap.conf ([store NAME] export=unix|tcp, ...);
 *       --socket/--tcp override the configured listener, --master skips
 *       finding the master through the lease-owner record.
 *   csnap export --file PATH [--name NAME] [--readonly]
 *                [--socket PATH] [--tcp [ADDR:]PORT]
 *       serve a plain file or device as it is (no store, no snapshots).
 *   Both take --threads N (loop threads serving the connections; the
 *   store's export_threads) and --tls off|on|require, --tls-psk FILE, --tls-certificates DIR
 *   and --tls-verify-peer (TLS on the TCP listener), which override the
 *   store's export_tls* settings key by key.
 *
 * Runs in the foreground until SIGINT or SIGTERM, then closes every
 * connection after its in-flight I/O finishes.
 */
#include "src/cli/cli.h"

#include "src/export/export.h"

#include "utils/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "file", required_argument, NULL, 'f' },
		{ "name", required_argument, NULL, 'n' },
		{ "readonly", no_argument, NULL, 'r' },
		{ "socket", required_argument, NULL, 's' },
		{ "tcp", required_argument, NULL, 't' },
		{ "master", required_argument, NULL, 'm' },
		{ "tls", required_argument, NULL, 'T' },
		{ "tls-psk", required_argument, NULL, 'P' },
		{ "tls-certificates", required_argument, NULL, 'C' },
		{ "tls-verify-peer", no_argument, NULL, 'V' },
		{ "threads", required_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	static struct config_tls tls;	/* large (paths): off the stack */
	const char *key;
	const char *conf = NULL, *file = NULL, *name = "origin";
	const char *sock = NULL, *tcp = NULL, *master = NULL;
	struct export_opts eo;
	struct export_file_opts fo;
	bool readonly = false;
	unsigned threads = 0;
	char *end;
	unsigned long n;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:f:n:rs:t:m:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'f': file = optarg; break;
		case 'n': name = optarg; break;
		case 'r': readonly = true; break;
		case 's': sock = optarg; break;
		case 't': tcp = optarg; break;
		case 'm': master = optarg; break;
		case 'j':
			n = strtoul(optarg, &end, 10);
			if (end == optarg || *end || n < 1 || n > EXPORT_THREADS_MAX)
				return cli_usage("--threads takes 1 to 64");
			threads = (unsigned)n;
			break;
		case 'T': key = "export_tls"; goto tls_key;
		case 'P': key = "export_tls_psk"; goto tls_key;
		case 'C': key = "export_tls_certificates"; goto tls_key;
		case 'V': key = "export_tls_verify_peer"; optarg = "yes";
		tls_key:
			switch (config_tls_key(&tls, key, optarg)) {
			case 0: break;
			case -ENAMETOOLONG: return cli_usage("path too long");
			default: return cli_usage("--tls takes off, on or require");
			}
			break;
		default: return cli_usage(NULL);
		}
	}
	if (file) {
		if (optind != argc)
			return cli_usage("--file takes no STORE argument");
		if (!sock && !tcp)
			return cli_usage("--file needs --socket PATH or --tcp [ADDRESS:]PORT");
		fo = (struct export_file_opts){ .path = file, .name = name, .readonly = readonly,
						.sock = sock, .tcp = tcp, .tls = &tls,
						.threads = threads };
		return export_run_file(&fo);
	}
	if (optind != argc - 1)
		return cli_usage("which store?");
	if (!conf)
		conf = getenv("CSNAP_CONF") ? getenv("CSNAP_CONF") : "/etc/csnap/csnap.conf";
	eo = (struct export_opts){ .conf = conf, .store = argv[optind], .sock = sock,
				   .tcp = tcp, .master = master, .tls = &tls,
				   .threads = threads };
	return export_run(&eo);
}

CLI_COMMAND(export, "export",
	    "[-c CONF] [--socket PATH|--tcp [ADDR:]PORT] [--master ADDR:PORT] [--threads N] [TLS] STORE | --file PATH [--name NAME] [--readonly] --socket PATH|--tcp [ADDR:]PORT [--threads N] [TLS]; TLS: [--tls off|on|require] [--tls-psk FILE] [--tls-certificates DIR] [--tls-verify-peer]",
	    "serve the origin and snapshots (or a plain file) over NBD", cmd_export)
