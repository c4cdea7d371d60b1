/*
 * src/cli/admin_util.c - see admin_util.h.
 */
#include "src/cli/admin_util.h"
#include "src/cli/cli.h"
#include "utils/clock.h"
#include "utils/config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CALL_MIN_MS	120000

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
		{ nargs & ADMIN_FROM ? "from" : "-", required_argument, NULL, 'F' },
		{ nargs & ADMIN_DELETE ? "delete" : "-", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	uint64_t n;
	bool opt_last = nargs & ADMIN_OPTIONAL_LAST, names = nargs & ADMIN_NAMES;

	nargs &= ~(ADMIN_OPTIONAL_LAST | ADMIN_NAMES | ADMIN_FROM | ADMIN_DELETE);
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
		case 'F':
			if (!proto_name_valid(optarg))
				return cli_usage("invalid snapshot name '%s' (--from)", optarg);
			a->from = optarg;
			break;
		case 'D': a->delete_snap = true; break;
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
	for (int i = 0; i < have; i++) {
		a->args[i] = argv[optind + i];
		if (names && i > 0 && !proto_name_valid(a->args[i]))
			return cli_usage("invalid snapshot name '%s'", a->args[i]);
	}
	a->nargs = have;
	return 0;
}

int admin_open(int argc, char **argv, int nargs, struct admin_args *a,
	       const char *intopt, int64_t *intval, struct admin_conn *ac)
{
	int r = admin_parse(argc, argv, nargs, a, intopt, intval);

	if (r)
		return r;
	return admin_connect(a, ac) ? 1 : 0;
}

int admin_call_ok(const struct admin_args *a, struct admin_conn *ac, struct proto_msg *req,
		  struct proto_msg *rep, const char *what, bool retry_sent)
{
	if (admin_call(a, ac, req, rep, what, retry_sent))
		return 1;
	if (rep->status) {
		cli_error("%s: %s", what, rep->error[0] ? rep->error : strerror((int)rep->status));
		proto_msg_free(rep);
		return 1;
	}
	return 0;
}

/* Failures that a master change explains: the old master is gone or
 * going, the new one not there yet, or this node's view of the lease is
 * being rebuilt (its sanlock daemon was frozen and rejoins).  Anything
 * else (bad store path, wrong secret, refused request) is final.  */
static bool transient(int err)
{
	switch (-err) {
	case ECONNREFUSED: case ECONNRESET: case ECONNABORTED: case EPIPE:
	case ENOTCONN: case EHOSTUNREACH: case ENETUNREACH: case ETIMEDOUT:
	case EAGAIN: case ESHUTDOWN: case EINPROGRESS:
		return true;
	default:
		return false;
	}
}

/* Says once per distinct reason what we wait for (stderr).  */
static void say_wait(void *arg, const char *why)
{
	struct admin_conn *ac = arg;
	if (!strcmp(ac->said, why))
		return;
	snprintf(ac->said, sizeof ac->said, "%s", why);
	fprintf(stderr, "csnap: %s: waiting for the master of store %s (%s); up to %d s more\n",
		ac->what, ac->name, why, (int)((ac->deadline_ms - csnap_now_ms() + 999) / 1000));
}

static int connect_once(const struct admin_args *a, struct admin_conn *ac, int timeout_ms)
{
	static struct config cfg;	/* large: keep it off the stack */

	if (config_load_default(a->conf, &cfg) < 0)
		return -EINVAL;	/* final: the message is set */
	const struct config_store *cs = config_find_store(&cfg, a->args[0]);
	snprintf(ac->store, sizeof ac->store, "%s", cs ? cs->device : a->args[0]);

	struct locate_opts lo = {
		.store_path = ac->store,
		.address = a->master_addr[0] ? a->master_addr : NULL,
		.port = a->master_port,
		.timeout_ms = timeout_ms,
		.on_wait = say_wait,
		.wait_arg = ac,
	};
	int r = locate_connect(&lo, &ac->loc, &ac->c);
	if (r < 0)
		return r;
	char name[96];
	char host[64] = "?";
	gethostname(host, sizeof host - 1);
	snprintf(name, sizeof name, "%s/admin pid %d", host, (int)getpid());
	r = proto_client_identify(ac->c, PROTO_VOL_ADMIN, NULL, (uint16_t)cfg.host_id, name, 0, &ac->id);
	if (r < 0) {
		proto_client_close(ac->c);
		ac->c = NULL;
		return r;
	}
	ac->chunk_size = ac->id.chunk_size;
	return 0;
}

/* Connects, waiting while the master changes, until ac->deadline_ms.  */
static int connect_retry(const struct admin_args *a, struct admin_conn *ac)
{
	for (;;) {
		int64_t left = ac->deadline_ms - csnap_now_ms();
		int r = connect_once(a, ac, left > 0 ? (int)left : 0);
		if (r == 0 || !transient(r) || csnap_now_ms() >= ac->deadline_ms)
			return r;
		say_wait(ac, err_get());
		usleep(200000);
	}
}

int admin_connect(const struct admin_args *a, struct admin_conn *ac)
{
	memset(ac, 0, sizeof *ac);
	ac->what = "admin";
	ac->name = a->args[0];
	ac->deadline_ms = csnap_now_ms() + a->timeout_ms;
	if (connect_retry(a, ac) < 0)
		return cli_error("%s", err_get());
	return 0;
}

int admin_call(const struct admin_args *a, struct admin_conn *ac, struct proto_msg *req,
	       struct proto_msg *rep, const char *what, bool retry_sent)
{
	ac->what = what;
	ac->said[0] = '\0';
	ac->deadline_ms = csnap_now_ms() + a->timeout_ms;	/* per request */
	for (;;) {
		int r = ac->c ? 0 : connect_retry(a, ac);
		if (r < 0)
			return cli_error("%s: %s", what, err_get());
		/* A request in the master's hands may take long (a create
		 * waits for every origin client's barrier acknowledgement, up
		 * to the server's --barrier-timeout-ms, 30 s): wait for it at
		 * least CALL_MIN_MS.  A master that dies or is killed for not
		 * answering its agent breaks the connection sooner.  */
		int64_t left = ac->deadline_ms - csnap_now_ms();
		r = proto_client_call_timeout(ac->c, req, rep,
					      left > CALL_MIN_MS ? (int)left : CALL_MIN_MS);
		if (r == 0)
			return 0;
		proto_client_close(ac->c);
		ac->c = NULL;
		if (!transient(r) || csnap_now_ms() >= ac->deadline_ms)
			return cli_error("%s: %s", what, err_get());
		if (!retry_sent)
			return cli_error("%s: %s: the master changed while the request was in flight; "
					 "it may or may not have been done (check with `csnap snapshot list`)",
					 what, err_get());
		ac->retried = true;
		say_wait(ac, err_get());
	}
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

/* Usage columns: the master's counters, or "unknown" (JSON: null and
 * "usage_known": false) when the store has none yet - never a number that
 * may be wrong.  */
void admin_print_snapshots(const struct proto_snap_list *l, uint32_t chunk_size, bool json, FILE *f)
{
	if (json) {
		fprintf(f, "[");
		for (uint32_t i = 0; i < l->n; i++) {
			const struct proto_snapinfo *s = &l->s[i];
			bool known = !(s->flags & PROTO_SNAP_USAGE_UNKNOWN);
			fprintf(f, "%s\n  {\"id\": %u, \"name\": ", i ? "," : "", s->id);
			admin_json_str(f, s->name);
			fprintf(f, ", \"ctime\": %llu, \"priority\": %d, \"usecount\": %u, ",
				(unsigned long long)s->ctime, s->priority, s->usecount);
			if (known)
				fprintf(f, "\"unique_chunks\": %llu, \"shared_chunks\": %llu, "
					"\"unique_bytes\": %llu, \"shared_bytes\": %llu, ",
					(unsigned long long)s->unique_chunks, (unsigned long long)s->shared_chunks,
					(unsigned long long)(s->unique_chunks * chunk_size),
					(unsigned long long)(s->shared_chunks * chunk_size));
			else
				fprintf(f, "\"unique_chunks\": null, \"shared_chunks\": null, "
					"\"unique_bytes\": null, \"shared_bytes\": null, ");
			fprintf(f, "\"usage_known\": %s, \"parent_id\": ", known ? "true" : "false");
			if (s->flags & PROTO_SNAP_PARENT)
				fprintf(f, "%u}", s->parent_id);
			else
				fprintf(f, "null}");
		}
		fprintf(f, "%s]\n", l->n ? "\n" : "");
		return;
	}
	fprintf(f, "%-5s %-24s %-20s %8s %5s %12s %12s %14s %14s %s\n", "ID", "NAME", "CREATED (UTC)",
		"PRIORITY", "USE", "UNIQUE", "SHARED", "UNIQUE_CHUNKS", "SHARED_CHUNKS", "FROM");
	for (uint32_t i = 0; i < l->n; i++) {
		const struct proto_snapinfo *s = &l->s[i];
		char when[32] = "?", ub[24] = "unknown", sb[24] = "unknown", uc[24] = "unknown", sc[24] = "unknown";
		time_t t = (time_t)s->ctime;
		struct tm tm;
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
		if (!(s->flags & PROTO_SNAP_USAGE_UNKNOWN)) {
			admin_fmt_bytes(ub, sizeof ub, s->unique_chunks * chunk_size);
			admin_fmt_bytes(sb, sizeof sb, s->shared_chunks * chunk_size);
			snprintf(uc, sizeof uc, "%llu", (unsigned long long)s->unique_chunks);
			snprintf(sc, sizeof sc, "%llu", (unsigned long long)s->shared_chunks);
		}
		/* FROM: the snapshot it was made from ("origin" for a snapshot
		 * of the origin; "#ID" once that snapshot has been deleted) */
		char from[PROTO_NAME_MAX + 16] = "origin";
		if (s->flags & PROTO_SNAP_PARENT) {
			snprintf(from, sizeof from, "#%u", s->parent_id);
			for (uint32_t k = 0; k < l->n; k++)
				if (l->s[k].id == s->parent_id)
					snprintf(from, sizeof from, "%s", l->s[k].name);
		}
		fprintf(f, "%-5u %-24s %-20s %8d %5u %12s %12s %14s %14s %s\n", s->id, s->name, when,
			s->priority, s->usecount, ub, sb, uc, sc, from);
	}
}

int admin_changed_ranges(const struct admin_args *a, struct admin_conn *ac, const char *from, const char *to,
			 struct proto_range **out, size_t *nout)
{
	struct proto_range *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t next = 0;
	int r = 0;
	while (next != UINT64_MAX && !r) {
		struct proto_msg m, rep;
		proto_msg_init(&m, PROTO_CHANGED, 0);
		snprintf(m.u.changed.from, sizeof m.u.changed.from, "%s", from);
		snprintf(m.u.changed.to, sizeof m.u.changed.to, "%s", to ? to : "");
		m.u.changed.start = next;
		m.u.changed.max_ranges = PROTO_MAX_RANGES;
		if (admin_call(a, ac, &m, &rep, "snapshot changed", true))
			break;
		if (rep.status) {
			r = cli_error("snapshot changed %s %s: %s", from, to ? to : "(origin)",
				      rep.error[0] ? rep.error : strerror((int)rep.status));
			proto_msg_free(&rep);
			break;
		}
		const struct proto_ranges *rs = &rep.u.changed_reply.ranges;
		for (uint32_t i = 0; i < rs->n && !r; i++) {
			struct proto_range *last = n ? &v[n - 1] : NULL;
			if (last && last->start + last->count == rs->r[i].start &&
			    (uint64_t)last->count + rs->r[i].count <= UINT32_MAX) {
				last->count += rs->r[i].count;
				continue;
			}
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct proto_range *nv = realloc(v, nc * sizeof *nv);
				if (!nv) {
					r = cli_error("out of memory");
					break;
				}
				v = nv;
				cap = nc;
			}
			v[n++] = rs->r[i];
		}
		uint64_t nx = rep.u.changed_reply.next;
		if (!r && nx != UINT64_MAX && nx <= next)
			r = cli_error("snapshot changed: the master's cursor does not advance");
		next = nx;
		proto_msg_free(&rep);
	}
	if (next != UINT64_MAX && !r)
		r = 1;	/* admin_call printed it */
	if (r) {
		free(v);
		return r;
	}
	*out = v;
	*nout = n;
	return 0;
}
