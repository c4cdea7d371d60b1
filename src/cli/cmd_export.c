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
 *
 * Runs in the foreground until SIGINT or SIGTERM, then closes every
 * connection after its in-flight I/O finishes.
 */
#include "src/cli/cli.h"

#include "src/export/export.h"
#include "src/export/loop.h"
#include "src/export/nbd_server.h"
#include "src/export/volume.h"
#include "utils/config.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct sig_watch {
	struct loop *lp;
	struct loop_watch watch;
	int fd;
};

static void on_signal(void *arg, uint32_t events)
{
	struct sig_watch *sw = arg;
	struct signalfd_siginfo si;

	(void)events;
	if (read(sw->fd, &si, sizeof si) == sizeof si)
		log_info("export: signal %u, shutting down", si.ssi_signo);
	loop_stop(sw->lp);
}

static int watch_signals(struct loop *lp, struct sig_watch *sw)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sw->lp = lp;
	sw->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sw->fd < 0)
		return err_set(errno, "signalfd: %m");
	return loop_watch_add(lp, &sw->watch, sw->fd, EPOLLIN, on_signal, sw);
}

/* "[ADDR:]PORT" -> address (may be empty) and port.  */
static int parse_tcp(const char *s, char *addr, size_t addrlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	uint64_t p;

	addr[0] = 0;
	if (colon) {
		size_t n = (size_t)(colon - s);

		if (n >= addrlen)
			return -EINVAL;
		memcpy(addr, s, n);
		addr[n] = 0;
		s = colon + 1;
	}
	if (parse_u64(s, 0, 65535, &p) < 0)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

static int run_file(const char *path, const char *name, bool readonly,
		    const char *sock, const char *tcp)
{
	struct loop *lp = NULL;
	struct nbd_server *srv = NULL;
	struct volume *vol = NULL;
	struct sig_watch sw = { .fd = -1 };
	char addr[CONFIG_NAME_MAX];
	uint16_t port = 0;
	int rc;

	if (tcp && parse_tcp(tcp, addr, sizeof addr, &port) < 0)
		return cli_usage("--tcp wants [ADDRESS:]PORT, not '%s'", tcp);
	if (!sock && !tcp)
		return cli_usage("--file needs --socket PATH or --tcp [ADDRESS:]PORT");
	if ((rc = loop_create(256, &lp)) < 0 ||
	    (rc = watch_signals(lp, &sw)) < 0 ||
	    (rc = nbd_server_create(lp, &srv)) < 0 ||
	    (rc = volume_file_open(lp, name, path, readonly, &vol)) < 0 ||
	    (rc = nbd_server_add(srv, vol)) < 0 ||
	    (sock && (rc = nbd_server_listen_unix(srv, sock)) < 0) ||
	    (tcp && (rc = nbd_server_listen_tcp(srv, addr, port)) < 0)) {
		cli_error("export: %s", err_get());
		goto out;
	}
	if (tcp)
		printf("tcp port %u\n", nbd_server_tcp_port(srv));
	if (sock)
		printf("unix socket %s\n", sock);
	fflush(stdout);
	log_info("export: serving %s as \"%s\"", path, name);
	rc = loop_run(lp);
	if (rc < 0)
		cli_error("export: %s", err_get());
out:
	volume_put(vol);
	nbd_server_destroy(srv);
	if (sw.fd >= 0) {
		loop_watch_del(lp, &sw.watch);
		close(sw.fd);
	}
	loop_destroy(lp);
	return rc < 0 ? 1 : 0;
}

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
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL, *file = NULL, *name = "origin";
	const char *sock = NULL, *tcp = NULL, *master = NULL;
	struct export_opts eo;
	bool readonly = false;
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
		default: return cli_usage(NULL);
		}
	}
	if (file) {
		if (optind != argc)
			return cli_usage("--file takes no STORE argument");
		return run_file(file, name, readonly, sock, tcp);
	}
	if (optind != argc - 1)
		return cli_usage("which store?");
	if (!conf)
		conf = getenv("CSNAP_CONF") ? getenv("CSNAP_CONF") : "/etc/csnap/csnap.conf";
	eo = (struct export_opts){ .conf = conf, .store = argv[optind], .sock = sock,
				   .tcp = tcp, .master = master };
	return export_run(&eo);
}

CLI_COMMAND(export, "export",
	    "[-c CONF] [--master ADDR:PORT] STORE | --file PATH [--name NAME] [--readonly]; [--socket PATH] [--tcp [ADDR:]PORT]",
	    "serve the origin and snapshots (or a plain file) over NBD", cmd_export)
