/*
 * src/cli/admin_util.c - see admin_util.h.
 */
#include "src/cli/admin_util.h"
#include "src/cli/cli.h"
#include "utils/config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONF "/etc/csnap/csnap.conf"

int admin_parse(int argc, char **argv, int nargs, struct admin_args *a,
		const char *intopt, int64_t *intval)
{
	const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "config", required_argument, NULL, 'c' },
		{ "master", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "use", no_argument, NULL, 'u' },
		{ "unuse", no_argument, NULL, 'U' },
		{ intopt ? intopt : "-", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	uint64_t n;
	bool opt_last = nargs & ADMIN_OPTIONAL_LAST;

	nargs &= ~ADMIN_OPTIONAL_LAST;
	memset(a, 0, sizeof *a);
	a->timeout_ms = 30000;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'j': a->json = true; break;
		case 'c': a->conf = optarg; break;
		case 'm': {
			const char *colon = strrchr(optarg, ':');
			if (!colon || colon == optarg || (size_t)(colon - optarg) >= sizeof a->master_addr ||
			    parse_u64(colon + 1, 1, 65535, &n))
				return cli_usage("--master takes ADDRESS:PORT");
			memcpy(a->master_addr, optarg, (size_t)(colon - optarg));
			a->master_addr[colon - optarg] = '\0';
			a->master_port = (uint16_t)n;
			break;
		}
		case 't':
			if (parse_u64(optarg, 0, 3600, &n))
				return cli_usage("--timeout takes seconds (0..3600)");
			a->timeout_ms = (int)n * 1000;
			break;
		case 'u': a->usecount_set = true; a->usecount_delta = 1; break;
		case 'U': a->usecount_set = true; a->usecount_delta = -1; break;
		case 'P': {
			char *end;
			errno = 0;
			long long v = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || v < INT32_MIN || v > INT32_MAX)
				return cli_usage("--%s takes an integer", intopt);
			*intval = v;
			break;
		}
		default:
			return cli_usage(NULL);
		}
	}
	int have = argc - optind;
	if (have != nargs && !(opt_last && have == nargs - 1))
		return cli_usage("expected %s%d argument%s", opt_last ? "up to " : "", nargs,
				 nargs == 1 ? "" : "s");
	for (int i = 0; i < have; i++)
		a->args[i] = argv[optind + i];
	a->nargs = have;
	return 0;
}

int admin_connect(const struct admin_args *a, struct admin_conn *ac)
{
	static struct config cfg;	/* large: keep it off the stack */
	char store[CONFIG_PATH_MAX];
	const char *conf = a->conf;

	memset(ac, 0, sizeof *ac);
	config_defaults(&cfg);
	if (!conf && getenv("CSNAP_CONF"))
		conf = getenv("CSNAP_CONF");
	if (conf || access(DEFAULT_CONF, R_OK) == 0) {
		if (!conf)
			conf = DEFAULT_CONF;
		if (config_load(conf, &cfg) < 0)
			return cli_error("%s", err_get());
	}
	const struct config_store *cs = config_find_store(&cfg, a->args[0]);
	snprintf(store, sizeof store, "%s", cs ? cs->device : a->args[0]);

	struct locate_opts lo = {
		.store_path = store,
		.address = a->master_addr[0] ? a->master_addr : NULL,
		.port = a->master_port,
		.timeout_ms = a->timeout_ms,
	};
	int r = locate_connect(&lo, &ac->loc, &ac->c);
	if (r < 0)
		return cli_error("%s", err_get());
	char name[96];
	char host[64] = "?";
	gethostname(host, sizeof host - 1);
	snprintf(name, sizeof name, "%s/admin pid %d", host, (int)getpid());
	r = proto_client_identify(ac->c, PROTO_VOL_ADMIN, NULL, (uint16_t)cfg.host_id, name, 0, &ac->id);
	if (r < 0) {
		proto_client_close(ac->c);
		ac->c = NULL;
		return cli_error("%s", err_get());
	}
	ac->chunk_size = ac->id.chunk_size;
	return 0;
}

void admin_close(struct admin_conn *ac)
{
	proto_client_close(ac->c);
	ac->c = NULL;
}

void admin_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

void admin_fmt_bytes(char *buf, size_t n, uint64_t bytes)
{
	static const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	int i = 0;
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, n, "%.1f %s", v, u[i]);
}

void admin_print_snapshots(const struct proto_snap_list *l, uint32_t chunk_size, bool json, FILE *f)
{
	if (json) {
		fprintf(f, "[");
		for (uint32_t i = 0; i < l->n; i++) {
			const struct proto_snapinfo *s = &l->s[i];
			fprintf(f, "%s\n  {\"id\": %u, \"name\": ", i ? "," : "", s->id);
			admin_json_str(f, s->name);
			fprintf(f, ", \"ctime\": %llu, \"priority\": %d, \"usecount\": %u, "
				"\"unique_chunks\": %llu, \"shared_chunks\": %llu, "
				"\"unique_bytes\": %llu, \"shared_bytes\": %llu}",
				(unsigned long long)s->ctime, s->priority, s->usecount,
				(unsigned long long)s->unique_chunks, (unsigned long long)s->shared_chunks,
				(unsigned long long)(s->unique_chunks * chunk_size),
				(unsigned long long)(s->shared_chunks * chunk_size));
		}
		fprintf(f, "%s]\n", l->n ? "\n" : "");
		return;
	}
	fprintf(f, "%-5s %-24s %-20s %8s %5s %12s %12s\n", "ID", "NAME", "CREATED (UTC)",
		"PRIORITY", "USE", "UNIQUE", "SHARED");
	for (uint32_t i = 0; i < l->n; i++) {
		const struct proto_snapinfo *s = &l->s[i];
		char when[32] = "?", ub[24], sb[24];
		time_t t = (time_t)s->ctime;
		struct tm tm;
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
		admin_fmt_bytes(ub, sizeof ub, s->unique_chunks * chunk_size);
		admin_fmt_bytes(sb, sizeof sb, s->shared_chunks * chunk_size);
		fprintf(f, "%-5u %-24s %-20s %8d %5u %12s %12s\n", s->id, s->name, when,
			s->priority, s->usecount, ub, sb);
	}
}
