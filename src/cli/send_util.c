/*
 * src/cli/send_util.c - see send_util.h.
 */
#include "src/cli/send_util.h"

#include "src/cli/cli.h"
#include "utils/clock.h"
#include "utils/config.h"
#include "utils/err.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONF "/etc/csnap/csnap.conf"

int xfer_parse(int argc, char **argv, int nargs, bool send, struct xfer_args *x)
{
	/* Our own options first; the rest goes through admin_parse, so
	 * -c, --master and --timeout mean what they mean everywhere.  */
	char **rest = calloc((size_t)argc + 1, sizeof *rest);
	if (!rest)
		return cli_error("out of memory");
	int nrest = 0;
	memset(x, 0, sizeof *x);
	rest[nrest++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char *val = NULL;
		bool takes = !strcmp(o, "--export") ||
			     (send && (!strcmp(o, "--from") || !strcmp(o, "--resume")));
		if (!strncmp(o, "--export=", 9) ||
		    (send && (!strncmp(o, "--from=", 7) || !strncmp(o, "--resume=", 9)))) {
			val = strchr(o, '=') + 1;
		} else if (takes) {
			if (i + 1 >= argc) {
				free(rest);
				return cli_usage("%s needs a value", o);
			}
			val = argv[++i];
		}
		if (val) {
			if (!strncmp(o, "--export", 8))
				x->export_at = val;
			else if (!strncmp(o, "--resume", 8))
				x->resume = val;
			else
				x->from = val;
		} else if (send && !strcmp(o, "--compress")) {
			x->compress = true;
		} else if (!send && !strcmp(o, "--token")) {
			x->token = true;
		} else if (!strcmp(o, "--")) {
			for (; i < argc; i++)
				rest[nrest++] = argv[i];
		} else {
			rest[nrest++] = argv[i];
		}
	}
	int r = admin_parse(nrest, rest, nargs, &x->a, NULL, NULL);
	free(rest);
	if (r == 0 && x->a.json)
		return cli_usage("--json is not an option of this command");
	return r;
}

/* csnap.conf as the admin commands find it: *CS is STORE's section, NULL
 * when it has none (*CONF says which file was read, NULL: none).  0, or 1
 * with the error printed.  */
static int conf_store(const struct xfer_args *x, struct config *cfg, const char **confp,
		      const struct config_store **cs)
{
	const char *conf = x->a.conf ? x->a.conf : getenv("CSNAP_CONF");
	config_defaults(cfg);
	if (!conf && access(DEFAULT_CONF, R_OK) == 0)
		conf = DEFAULT_CONF;
	*confp = conf;
	*cs = NULL;
	if (conf && config_load(conf, cfg) < 0)
		return cli_error("%s", err_get());
	*cs = config_find_store(cfg, x->a.args[0]);
	return 0;
}

int xfer_state_path(const struct xfer_args *x, char *path, size_t n)
{
	static struct config cfg;
	const char *conf;
	const struct config_store *cs;
	path[0] = 0;
	if (conf_store(x, &cfg, &conf, &cs))
		return 1;
	if (cs && snprintf(path, n, "%s/receive-%s.state", cfg.run_dir, cs->name) >= (int)n)
		return cli_error("run_dir too long");
	return 0;
}

int xfer_endpoint(const struct xfer_args *x, char *addr, size_t n, uint16_t *port)
{
	*port = 0;
	if (x->export_at) {
		const char *colon = strrchr(x->export_at, ':');
		uint64_t p;
		if (!strchr(x->export_at, '/') && colon && colon != x->export_at &&
		    parse_u64(colon + 1, 1, 65535, &p) == 0) {
			snprintf(addr, n, "%.*s", (int)(colon - x->export_at), x->export_at);
			*port = (uint16_t)p;
		} else {
			snprintf(addr, n, "%s", x->export_at);
		}
		return 0;
	}
	static struct config cfg;	/* large: keep it off the stack */
	const char *conf;
	const struct config_store *cs;
	if (conf_store(x, &cfg, &conf, &cs))
		return 1;
	if (!cs)
		return cli_error("store %s is not in %s: name its export with --export SOCKET|ADDR:PORT",
				 x->a.args[0], conf ? conf : DEFAULT_CONF);
	if (!config_export_local_unix(cs)) {
		snprintf(addr, n, "%s", strcmp(cs->export_address, "0.0.0.0") ? cs->export_address
									       : "127.0.0.1");
		*port = cs->export_port;
	} else {
		snprintf(addr, n, "%s", cs->export_socket);
	}
	return 0;
}

int xfer_snapshots(struct xfer_args *x, struct admin_conn *ac, struct proto_msg *rep,
		   bool *ids_known)
{
	struct proto_msg m;
	proto_msg_init(&m, PROTO_SNAP_LIST, 0);
	m.flags |= PROTO_F_NO_USAGE | PROTO_F_REQ_IDS;
	if (admin_call(&x->a, ac, &m, rep, "snapshot list", true))
		return 1;
	if (rep->status) {
		cli_error("snapshot list: %s", rep->error[0] ? rep->error : strerror((int)rep->status));
		proto_msg_free(rep);
		return 1;
	}
	/* A master that knows the flag marks every snapshot that has an id;
	 * one created by `snapshot create` always has one.  */
	*ids_known = false;
	for (uint32_t i = 0; i < rep->u.snap_list.n; i++)
		if (rep->u.snap_list.s[i].flags & PROTO_SNAP_REQ_ID)
			*ids_known = true;
	return 0;
}

const struct proto_snapinfo *xfer_find(const struct proto_msg *list, const char *name)
{
	for (uint32_t i = 0; i < list->u.snap_list.n; i++)
		if (!strcmp(list->u.snap_list.s[i].name, name))
			return &list->u.snap_list.s[i];
	return NULL;
}

/* ---- progress ------------------------------------------------------------ */

void xfer_meter_start(struct xfer_meter *m, const char *what, uint64_t total)
{
	memset(m, 0, sizeof *m);
	m->what = what;
	m->total = total;
	m->tty = isatty(STDERR_FILENO);
	m->start_ms = m->last_ms = csnap_now_ms();
}

static void meter_line(struct xfer_meter *m, uint64_t done, int64_t now, bool final)
{
	char d[32], t[32], rate[32], left[48] = "";
	double secs = (double)(now - m->start_ms) / 1000.0;
	double bps = secs > 0 ? (double)done / secs : 0;
	admin_fmt_bytes(d, sizeof d, done);
	admin_fmt_bytes(rate, sizeof rate, (uint64_t)bps);
	if (m->total) {
		admin_fmt_bytes(t, sizeof t, m->total);
		if (!final && bps > 0 && done < m->total) {
			uint64_t s = (uint64_t)((double)(m->total - done) / bps);
			snprintf(left, sizeof left, ", %" PRIu64 ":%02" PRIu64 " left", s / 60, s % 60);
		}
		fprintf(stderr, "%scsnap %s: %s of %s (%u%%), %s/s%s%s", m->tty ? "\r" : "", m->what,
			d, t, (unsigned)(done * 100 / m->total > 100 ? 100 : done * 100 / m->total),
			rate, left, m->tty ? "\033[K" : "\n");
	} else {
		fprintf(stderr, "%scsnap %s: %s, %s/s%s", m->tty ? "\r" : "", m->what, d, rate,
			m->tty ? "\033[K" : "\n");
	}
	m->drawn = m->tty;
}

void xfer_meter_update(struct xfer_meter *m, uint64_t done)
{
	int64_t now = csnap_now_ms();
	if (now - m->last_ms < (m->tty ? 250 : 10000))
		return;
	m->last_ms = now;
	meter_line(m, done, now, false);
}

void xfer_meter_end(struct xfer_meter *m, uint64_t done, uint64_t stream_bytes)
{
	int64_t now = csnap_now_ms();
	if (m->drawn)
		fputc('\r', stderr);
	char d[32], s[32];
	admin_fmt_bytes(d, sizeof d, done);
	admin_fmt_bytes(s, sizeof s, stream_bytes);
	fprintf(stderr, "csnap %s: %s of data, %s of stream, in %.1f s%s\n", m->what, d, s,
		(double)(now - m->start_ms) / 1000.0, m->tty ? "\033[K" : "");
}
