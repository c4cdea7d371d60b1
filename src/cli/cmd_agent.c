/*
 * src/cli/cmd_agent.c - `csnap agent` (the per-node daemon, see
 * src/agent/agent.h), `csnap agent where` (ask it where a store's master
 * is, or follow the answer with --watch) and `csnap agent status`.
 *
 * `where` prints the agent's protocol line as is (docs/agent.md), so
 * scripts can parse "MASTER <uuid> host_id=... address=... port=..." and
 * exits 0 for MASTER, 3 for NONE, 4 for CHANGING, 1 for errors.
 */
#include "src/agent/agent.h"
#include "src/agent/agent_client.h"
#include "src/cli/cli.h"
#include "utils/config.h"
#include "utils/err.h"
#include "utils/log.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONF "/etc/csnap/csnap.conf"

static const char *conf_default(void)
{
	const char *e = getenv("CSNAP_CONF");

	return e && *e ? e : DEFAULT_CONF;
}

static int parse_ms(const char *s, const char *what, int min, int *out)
{
	uint64_t v;

	if (parse_u64(s, (uint64_t)min, 3600000, &v) < 0)
		return cli_usage("%s must be %d..3600000 (milliseconds)", what, min);
	*out = (int)v;
	return 0;
}

static int cmd_agent(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "server-cmd", required_argument, NULL, 's' },
		{ "poll-ms", required_argument, NULL, 'p' },
		{ "stop-timeout-ms", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct agent_opts o = { 0 };
	struct config *cfg;
	const char *conf = conf_default();
	int c, r;

	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 's': o.server_cmd = optarg; break;
		case 'p':
			if (parse_ms(optarg, "--poll-ms", 20, &o.poll_ms))
				return 2;
			break;
		case 't':
			if (parse_ms(optarg, "--stop-timeout-ms", 100, &o.stop_timeout_ms))
				return 2;
			break;
		default: return cli_usage(NULL);
		}
	}
	if (optind != argc)
		return cli_usage("unexpected argument '%s'", argv[optind]);
	cfg = malloc(sizeof *cfg);
	if (!cfg)
		return cli_error("out of memory");
	if (config_load(conf, cfg) < 0) {
		cli_error("%s", err_get());
		free(cfg);
		return 1;
	}
	if ((int)cfg->log_level > (int)log_get_level())
		log_set_level((enum log_level)cfg->log_level);
	char abs[4096];
	o.conf_path = realpath(conf, abs) ? abs : conf;	/* servers may run elsewhere */
	o.cfg = cfg;
	r = agent_run(&o);
	if (r < 0)
		cli_error("agent: %s", err_get());
	free(cfg);
	return r < 0 ? 1 : 0;
}

CLI_COMMAND(agent, "agent", "[-c CONF] [--server-cmd CMD] [--poll-ms MS] [--stop-timeout-ms MS]",
	    "run the node agent (lockspaces, local server, master lookups)", cmd_agent)

/* Opens the agent of CONF's run_dir.  */
static int open_agent(const char *conf, int timeout_ms, struct agent_client **ac)
{
	struct config *cfg = malloc(sizeof *cfg);
	char path[CONFIG_PATH_MAX + 16];
	int r;

	if (!cfg)
		return cli_error("out of memory");
	r = config_load(conf, cfg);
	if (r == 0)
		r = agent_socket_path(cfg->run_dir, path, sizeof path);
	free(cfg);
	if (r == 0)
		r = agent_client_connect(path, timeout_ms, ac);
	if (r < 0)
		return cli_error("%s", err_get());
	return 0;
}

static int state_status(enum agent_master_state s)
{
	return s == AGENT_MASTER_VALID ? 0 : s == AGENT_MASTER_NONE ? 3 : 4;
}

static int cmd_agent_where(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "watch", no_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = conf_default();
	struct agent_client *ac;
	struct agent_master m;
	char line[AGENT_LINE_MAX];
	int c, timeout = 10000, count = -1, r;
	bool watch = false;
	uint64_t v;

	while ((c = getopt_long(argc, argv, "c:t:wn:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 't':
			if (parse_ms(optarg, "--timeout-ms", 0, &timeout))
				return 2;
			break;
		case 'w': watch = true; break;
		case 'n':
			if (parse_u64(optarg, 1, 1000000, &v) < 0)
				return cli_usage("--count must be 1..1000000");
			count = (int)v;
			break;
		default: return cli_usage(NULL);
		}
	}
	if (optind != argc - 1)
		return cli_usage("one STORE (uuid, [store NAME] or device)");
	if (open_agent(conf, timeout, &ac))
		return 1;
	if (!watch) {
		r = agent_client_where(ac, argv[optind], &m, timeout);
		if (r < 0) {
			cli_error("%s", err_get());
			agent_client_close(ac);
			return 1;
		}
		if (agent_format_master(&m, false, line, sizeof line) > 0)
			fputs(line, stdout);
		agent_client_close(ac);
		return state_status(m.state);
	}
	/* --watch: the current state, then every change, one line each, until
	 * --count lines were printed, or the agent goes away.  */
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = agent_client_watch(ac, argv[optind], NULL, timeout);
	while (r == 0 && count != 0) {
		r = agent_client_next_notice(ac, &m, -1);
		if (r == 0 && agent_format_master(&m, false, line, sizeof line) > 0) {
			fputs(line, stdout);
			if (count > 0)
				count--;
		}
	}
	if (r < 0)
		cli_error("%s", err_get());
	agent_client_close(ac);
	return r < 0 ? 1 : state_status(m.state);
}

CLI_COMMAND(agent_where, "agent where", "[-c CONF] [--timeout-ms MS] [--watch [--count N]] STORE",
	    "ask this node's agent where a store's master is", cmd_agent_where)

static int cmd_agent_status(int argc, char **argv)
{
	const char *conf = conf_default();
	struct agent_client *ac;
	char line[AGENT_LINE_MAX];
	int c, r;

	while ((c = getopt(argc, argv, "c:")) != -1) {
		if (c != 'c')
			return cli_usage(NULL);
		conf = optarg;
	}
	if (optind != argc)
		return cli_usage("unexpected argument '%s'", argv[optind]);
	if (open_agent(conf, 10000, &ac))
		return 1;
	printf("agent node=%s host_id=%u\n", agent_client_node(ac), agent_client_host_id(ac));
	r = agent_client_request(ac, "STORES", line, sizeof line, 10000);
	while (r == 0 && strcmp(line, "END")) {
		printf("%s\n", line);
		r = agent_client_read_line(ac, line, sizeof line, 10000);
	}
	if (r < 0)
		cli_error("%s", err_get());
	agent_client_close(ac);
	return r < 0 ? 1 : 0;
}

CLI_COMMAND(agent_status, "agent status", "[-c CONF]",
	    "show this node's agent and its stores", cmd_agent_status)
