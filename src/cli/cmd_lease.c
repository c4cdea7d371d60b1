/*
 * src/cli/cmd_lease.c - `csnap lease init` and `csnap lease status`.
 *
 * Both find the lease area through the store's superblock (lease_offset,
 * lease_align, lease_sector_size, uuid), so the CLI never guesses offsets.
 * status reads sanlock's records straight from the store and asks the local
 * sanlock daemon about liveness; on a node that has not joined the store's
 * lockspace it says so instead of guessing who is alive.
 */
#include "src/cli/cli.h"
#include "src/cli/cmd_lease.h"
#include "src/store/superblock.h"
#include "utils/config.h"
#include "utils/err.h"
#include "utils/escape.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_lease_area(const char *store, struct lease_area *a)
{
	struct csnap_sb sb;
	struct csnap_uuid uuid;
	int rc;

	rc = csnap_sb_read_path(store, &sb);
	if (rc < 0)
		return err_prefix(-rc, "%s", store);
	memcpy(uuid.b, sb.uuid, sizeof(uuid.b));
	rc = lease_area_setup(a, store, sb.lease_offset, sb.lease_align,
			      sb.lease_sector_size, &uuid);
	return rc < 0 ? err_prefix(-rc, "%s: superblock", store) : 0;
}

/* An existing store's lease area: refuse (-EBUSY) when any host holds its
 * delta lease or never released it, naming the host and what to run there
 * (`csnap lease leave`; a host that crashed for good: `csnap lease init
 * --force` clears that deliberately).  */
int cli_refuse_if_leases_held(const char *path, const struct csnap_sb *old)
{
	struct lease_area a;
	struct lease_host *hosts = NULL;
	int n = 0, rc;

	rc = lease_area_setup(&a, path, old->lease_offset, old->lease_align,
			      old->lease_sector_size, (const struct csnap_uuid *)old->uuid);
	if (rc == 0)
		rc = lease_hosts(&a, &hosts, &n);
	if (rc < 0)
		return 0;	/* no readable lease area: nothing to protect */
	for (int i = 0; i < n; i++) {
		if (hosts[i].timestamp) {
			rc = err_set(EBUSY, "%s: host_id %u (%s) holds or did not release its lease "
				     "in this store: stop csnap on that host and run `csnap lease "
				     "leave %s` there first (a host gone for good: `csnap lease "
				     "init --force %s` clears every lease)", path, hosts[i].host_id,
				     hosts[i].name[0] ? hosts[i].name : "name unknown", path, path);
			break;
		}
	}
	free(hosts);
	return rc < 0 ? rc : 0;
}

/* csnap.conf: CONF, else $CSNAP_CONF, else /etc/csnap/csnap.conf; with
 * REQUIRED unset, a missing default file just leaves the defaults.  */
static int load_config(const char *conf, bool required, struct config *cfg)
{
	const char *path = conf ? conf : getenv("CSNAP_CONF");

	if (!path && (required || access("/etc/csnap/csnap.conf", R_OK) == 0))
		path = "/etc/csnap/csnap.conf";
	config_defaults(cfg);
	return path ? config_load(path, cfg) : 0;
}

int cli_lease_io_timeout(const char *conf, uint32_t *io_timeout)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	int rc;

	if (!cfg)
		return err_set(ENOMEM, "out of memory");
	rc = load_config(conf, false, cfg);
	if (rc == 0)
		*io_timeout = cfg->io_timeout;
	free(cfg);
	return rc;
}

int cli_lease_init_store(const char *store, uint32_t io_timeout, bool force)
{
	struct lease_area a;
	int rc = cli_lease_area(store, &a);

	if (rc < 0)
		return rc;
	rc = lease_init(&a, io_timeout, force);
	return rc < 0 ? err_prefix(-rc, "%s: lease init", store) : 0;
}

int mkstore_init_leases(const char *store_path, const struct csnap_sb *sb)
{
	struct csnap_uuid uuid;
	struct lease_area a;
	uint32_t io_timeout;
	int rc;

	memcpy(uuid.b, sb->uuid, sizeof(uuid.b));
	rc = lease_area_setup(&a, store_path, sb->lease_offset, sb->lease_align,
			      sb->lease_sector_size, &uuid);
	if (rc == 0)
		rc = cli_lease_io_timeout(NULL, &io_timeout);
	if (rc == 0)
		rc = lease_init(&a, io_timeout, false);
	return rc;
}

static int cmd_lease_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "io-timeout", required_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'f' },
		{ "config", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL;
	uint64_t t = 0;
	uint32_t io_timeout;
	bool force = false;
	int c;

	while ((c = getopt_long(argc, argv, "t:fc:", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_u64(optarg, 1, 300, &t) < 0)
				return cli_usage("--io-timeout: seconds, 1..300");
			break;
		case 'f': force = true; break;
		case 'c': conf = optarg; break;
		default: return cli_usage(NULL);
		}
	}
	if (optind != argc - 1)
		return cli_usage("expected one STORE");
	if (t)
		io_timeout = (uint32_t)t;
	else if (cli_lease_io_timeout(conf, &io_timeout) < 0)
		return cli_error("%s", err_get());
	if (cli_lease_init_store(argv[optind], io_timeout, force) < 0)
		return cli_error("%s", err_get());
	printf("lease area of %s initialised (io_timeout %u s)\n", ESC(argv[optind]), io_timeout);
	return 0;
}

/* STORE as given on the command line: a [store NAME] of csnap.conf, its
 * device, or a path.  */
static int store_path(const struct config *cfg, const char *arg, const char **path)
{
	const struct config_store *st = config_find_store(cfg, arg);

	*path = st ? st->device : arg;
	if (!strncmp(*path, "UUID=", 5) || !strncmp(*path, "LABEL=", 6))
		return err_set(ENOTSUP, "%s: finding a store by UUID= or LABEL= is not supported "
			       "here yet; give its device path", *path);
	return 0;
}

static int cmd_lease_join_leave(int argc, char **argv, bool join)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct config *cfg;
	struct lease_area a;
	const char *conf = NULL, *path;
	bool force = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:f", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'f': force = true; break;
		default: return cli_usage(NULL);
		}
	}
	if (optind != argc - 1)
		return cli_usage("expected one STORE");
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return cli_error("out of memory");
	rc = load_config(conf, true, cfg);
	if (rc == 0)
		rc = store_path(cfg, argv[optind], &path);
	if (rc == 0)
		rc = cli_lease_area(path, &a);
	if (rc == 0 && join) {
		/* Long enough for sanlock to decide a host_id is in use.  */
		int timeout_ms = (int)(8 * cfg->io_timeout + 60 + 30) * 1000;
		rc = lease_join(&a, cfg->host_id, cfg->io_timeout, timeout_ms);
		if (rc == 0)
			printf("joined lockspace %s as host_id %u\n", a.lockspace, cfg->host_id);
	} else if (rc == 0) {
		rc = lease_leave(&a, cfg->host_id, !force);
		if (rc == 0)
			printf("left lockspace %s\n", a.lockspace);
	}
	free(cfg);
	if (rc == -EBUSY && !join)
		return cli_error("%s (--force leaves anyway: sanlock kills the holders)", err_get());
	return rc < 0 ? cli_error("%s", err_get()) : 0;
}

static int cmd_lease_join(int argc, char **argv) { return cmd_lease_join_leave(argc, argv, true); }
static int cmd_lease_leave(int argc, char **argv) { return cmd_lease_join_leave(argc, argv, false); }

CLI_COMMAND(lease_join, "lease join", "[-c CONF] STORE",
	    "join the store's lockspace with this node's host_id (the agent does this)",
	    cmd_lease_join)
CLI_COMMAND(lease_leave, "lease leave", "[-c CONF] [--force] STORE",
	    "leave the store's lockspace (refused while leases are held, unless --force)",
	    cmd_lease_leave)

CLI_COMMAND(lease_init, "lease init", "[--io-timeout S] [--force] [-c CONF] STORE",
	    "write the store's sanlock lockspace, master lease and owner record", cmd_lease_init)

/* JSON string: quotes, backslashes and control characters escaped.  */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *host_name(const struct lease_host *h, int n, uint64_t id)
{
	for (int i = 0; i < n; i++)
		if (h[i].host_id == id)
			return h[i].name;
	return "";
}

/* What an operator should know about host H, given the master lease on
 * disk (MD) and the verdict on the master (MI, when FIND_RC is 0).  */
static const char *host_role(const struct lease_host *h, const struct lease_master_disk *md,
			     int find_rc, const struct lease_master_info *mi)
{
	if (md->held && h->host_id == md->host_id && h->generation == md->generation) {
		if (find_rc == 0 && mi->state == LEASE_MASTER_VALID)
			return "master, serving";
		return "holds the master lease (see master: for why it is not serving)";
	}
	switch (h->state) {
	case LEASE_HOST_LIVE:
	case LEASE_HOST_RENEWING:
		return "not master: a standby, or no csnap server running there";
	case LEASE_HOST_STALE:
		return "not renewing its delta lease: node down, its sanlock daemon stopped, "
		       "or it lost access to the store";
	case LEASE_HOST_FAIL:
		return "stopped renewing: sanlock is recovering its leases";
	case LEASE_HOST_DEAD:
		return "dead: its leases are free";
	case LEASE_HOST_FREE:
		return "left the lockspace (agent stopped)";
	case LEASE_HOST_UNKNOWN:
		return "just joined: not watched long enough";
	default:
		return "liveness not known (not watched)";
	}
}

/* The master as the disk alone tells it: the record checked against the
 * master lease's leader and the owner's delta lease (watched).  */
static enum lease_master_state master_from_disk(const struct lease_master_disk *md,
						const struct lease_host *h, int n,
						const struct lease_record *rec, int rec_rc,
						char *why, size_t len)
{
	struct lease_owner_view v = {
		.owned = md->held, .lver = md->lver, .host_id = md->host_id,
		.generation = md->generation, .host_state = LEASE_HOST_FREE,
	};
	for (int i = 0; i < n; i++)
		if (h[i].host_id == md->host_id) {
			v.host_state = h[i].state == LEASE_HOST_RENEWING ? LEASE_HOST_LIVE :
				       h[i].state == LEASE_HOST_STALE ? LEASE_HOST_FAIL : h[i].state;
			v.host_generation = h[i].generation;
		}
	return lease_validate(rec, rec_rc, &v, why, len);
}

/* Problems lease_check_area() found, kept for the report.  */
struct problems {
	char **line;
	int n;
};

static void keep_problem(void *arg, const char *msg)
{
	struct problems *p = arg;
	char **nl = realloc(p->line, sizeof *nl * (size_t)(p->n + 1));

	if (nl && (nl[p->n] = strdup(msg))) {
		p->line = nl;
		p->n++;
	} else if (nl) {
		p->line = nl;
	}
}

static int cmd_lease_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "watch", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	struct lease_area a;
	struct lease_host *hosts = NULL;
	struct lease_master_info mi;
	struct lease_master_disk md;
	struct lease_record rec;
	bool json = false;
	int nhosts = 0, c, rec_rc, find_rc, md_rc, watch_s = -1;
	char rec_err[200] = "";
	char find_err[200] = "";
	char md_err[200] = "";
	uint64_t w;

	while ((c = getopt_long(argc, argv, "jw:", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'w':
			if (parse_u64(optarg, 0, 600, &w) < 0)
				return cli_usage("--watch: seconds, 0..600");
			watch_s = (int)w;
			break;
		default: return cli_usage(NULL);
		}
	}
	if (optind != argc - 1)
		return cli_usage("expected one STORE");
	if (cli_lease_area(argv[optind], &a) < 0 || lease_hosts(&a, &hosts, &nhosts) < 0)
		return cli_error("%s", err_get());
	/* Hosts the local daemon cannot vouch for: watch their delta leases
	 * on disk (a node that has not joined sees every host this way).  */
	int wait_ms = watch_s >= 0 ? watch_s * 1000 : lease_watch_ms(hosts, nhosts);
	if (wait_ms > 0 && lease_watch_ms(hosts, nhosts) > 0) {
		fprintf(stderr, "csnap: watching the hosts' delta leases on disk for up to %d s "
			"(this node's sanlock cannot tell their liveness)\n", (wait_ms + 999) / 1000);
		if (lease_hosts_watch(&a, hosts, nhosts, wait_ms) < 0)
			fprintf(stderr, "csnap: watching the delta leases: %s\n", err_get());
	}
	md_rc = lease_master_disk(&a, hosts, nhosts, &md);
	if (md_rc < 0)
		snprintf(md_err, sizeof(md_err), "%s", err_get());
	rec_rc = lease_record_read(&a, &rec);
	if (rec_rc < 0)
		snprintf(rec_err, sizeof(rec_err), "%s", err_get());
	find_rc = lease_find_master(&a, &mi);
	if (find_rc < 0)
		snprintf(find_err, sizeof(find_err), "%s", err_get());
	/* No local daemon to ask: the disk's verdict (record vs. lease vs.
	 * the owner's renewals) instead of "unknown".  */
	bool from_disk = find_rc < 0 && md_rc == 0;
	if (from_disk) {
		memset(&mi, 0, sizeof mi);
		mi.state = master_from_disk(&md, hosts, nhosts, &rec, rec_rc, mi.why, sizeof mi.why);
		mi.host_id = md.held ? md.host_id : 0;
		mi.generation = md.generation;
		mi.lver = md.lver;
		if (mi.state == LEASE_MASTER_VALID) {
			snprintf(mi.address, sizeof mi.address, "%s", rec.address);
			mi.port = rec.port;
			mi.epoch = rec.epoch;
		}
	}
	bool have_master = find_rc == 0 || from_disk;
	/* damage in the area: named, and the exit status says so */
	struct problems pr = { NULL, 0 };
	long np = lease_check_area(&a, keep_problem, &pr);
	if (np < 0)
		keep_problem(&pr, err_get());

	if (json) {
		printf("{\"store\":");
		json_str(a.path);
		printf(",\"lockspace\":");
		json_str(a.lockspace);
		printf(",\"lease_offset\":%" PRIu64 ",\"lease_align\":%u,\"sector_size\":%u,\"hosts\":[",
		       a.offset, a.align, a.sector_size);
		for (int i = 0; i < nhosts; i++) {
			printf("%s{\"host_id\":%u,\"name\":", i ? "," : "", hosts[i].host_id);
			json_str(hosts[i].name);
			printf(",\"state\":\"%s\",\"generation\":%" PRIu64 ",\"role\":",
			       lease_host_state_name(hosts[i].state), hosts[i].generation);
			json_str(md_rc == 0 ? host_role(&hosts[i], &md, have_master ? 0 : -1, &mi) : "?");
			printf("}");
		}
		printf("],\"master_lease\":");
		if (md_rc < 0) {
			printf("{\"error\":");
			json_str(md_err);
			printf("}");
		} else {
			printf("{\"held\":%s,\"host_id\":%" PRIu64 ",\"generation\":%" PRIu64
			       ",\"lver\":%" PRIu64 ",\"held_for_s\":%lld}", md.held ? "true" : "false",
			       md.host_id, md.generation, md.lver, (long long)md.held_for_s);
		}
		printf(",\"master\":");
		if (!have_master) {
			printf("{\"state\":\"unknown\",\"why\":");
			json_str(find_err);
		} else {
			printf("{\"state\":\"%s\"", mi.state == LEASE_MASTER_VALID ? "valid" :
			       mi.state == LEASE_MASTER_NONE ? "none" : "changing");
			if (mi.host_id) {
				printf(",\"host_id\":%" PRIu64 ",\"name\":", mi.host_id);
				json_str(host_name(hosts, nhosts, mi.host_id));
				printf(",\"lver\":%" PRIu64 ",\"generation\":%" PRIu64, mi.lver,
				       mi.generation);
			}
			if (mi.state == LEASE_MASTER_VALID) {
				printf(",\"address\":");
				json_str(mi.address);
				printf(",\"port\":%u,\"epoch\":%" PRIu64, mi.port, mi.epoch);
			}
			printf(",\"why\":");
			json_str(mi.why);
			printf(",\"verified_by\":\"%s\"", from_disk ? "disk" : "sanlock");
		}
		printf("},\"record\":");
		if (rec_rc < 0) {
			printf("{\"error\":");
			json_str(rec_err);
			printf("}");
		} else {
			printf("{\"host_id\":%" PRIu64 ",\"lver\":%" PRIu64 ",\"generation\":%" PRIu64
			       ",\"address\":", rec.host_id, rec.lver, rec.generation);
			json_str(rec.address);
			printf(",\"port\":%u,\"epoch\":%" PRIu64 "}", rec.port, rec.epoch);
		}
		printf(",\"problems\":[");
		for (int i = 0; i < pr.n; i++) {
			printf("%s", i ? "," : "");
			json_str(pr.line[i]);
		}
		printf("]}\n");
	} else {
		printf("store:     %s\n", ESC(a.path));
		printf("lockspace: %s (lease area at %" PRIu64 ", align %u, sector %u)\n",
		       a.lockspace, a.offset, a.align, a.sector_size);
		printf("hosts:%s\n", nhosts ? "" : "     none has joined yet");
		for (int i = 0; i < nhosts; i++)
			printf("  %4u  %-20s %-12s generation %-4" PRIu64 " %s\n", hosts[i].host_id,
			       hosts[i].name, lease_host_state_name(hosts[i].state),
			       hosts[i].generation,
			       md_rc == 0 ? host_role(&hosts[i], &md, have_master ? 0 : -1, &mi) : "");
		if (md_rc < 0)
			printf("master lease: unreadable: %s\n", md_err);
		else if (md.held && md.held_for_s >= 0)
			printf("master lease: held by host_id %" PRIu64 " (%s) generation %" PRIu64
			       ", lver %" PRIu64 ", for about %lld s\n", md.host_id,
			       host_name(hosts, nhosts, md.host_id), md.generation, md.lver,
			       (long long)md.held_for_s);
		else if (md.held)
			printf("master lease: held by host_id %" PRIu64 " (%s) generation %" PRIu64
			       ", lver %" PRIu64 "\n", md.host_id, host_name(hosts, nhosts, md.host_id),
			       md.generation, md.lver);
		else
			printf("master lease: free (lver %" PRIu64 "%s)\n", md.lver,
			       md.lver ? ", released" : ", never taken");
		const char *how = from_disk ? " (from disk: this node's sanlock has not joined)" : "";
		if (!have_master)
			printf("master:    unknown: %s\n", find_err);
		else if (mi.state == LEASE_MASTER_VALID)
			printf("master:    host_id %" PRIu64 " (%s) at %s port %u, lver %" PRIu64
			       ", epoch %" PRIu64 "%s\n", mi.host_id,
			       host_name(hosts, nhosts, mi.host_id), mi.address, mi.port, mi.lver,
			       mi.epoch, how);
		else
			printf("master:    %s: %s%s\n", lease_master_state_name(mi.state), mi.why, how);
		if (rec_rc < 0)
			printf("record:    unreadable: %s\n", rec_err);
		else if (lease_record_is_empty(&rec))
			printf("record:    empty\n");
		else
			printf("record:    host_id %" PRIu64 " lver %" PRIu64 " generation %" PRIu64
			       " at %s port %u, epoch %" PRIu64 " (%s)\n", rec.host_id, rec.lver,
			       rec.generation, rec.address, rec.port, rec.epoch,
			       have_master && mi.state == LEASE_MASTER_VALID ? "valid" :
			       !have_master ? "cannot be verified here" : "not trusted");
		if (pr.n) {
			printf("lease area: DAMAGED, %d problem%s:\n", pr.n, pr.n == 1 ? "" : "s");
			for (int i = 0; i < pr.n; i++)
				printf("  %s\n", pr.line[i]);
		} else {
			printf("lease area: intact (every sanlock record verifies)\n");
		}
	}
	free(hosts);
	int bad = pr.n;
	for (int i = 0; i < pr.n; i++)
		free(pr.line[i]);
	free(pr.line);
	if (bad)
		return cli_error("%s: lease area damaged (%d problem%s)", a.path, bad,
				 bad == 1 ? "" : "s");
	return 0;
}

CLI_COMMAND(lease_status, "lease status", "STORE [--json] [--watch SECONDS]",
	    "show the store's lockspace, hosts, master and lease-owner record", cmd_lease_status)
