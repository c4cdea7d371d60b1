/*
 * src/cli/main.c - the `csnap` binary: global options and dispatch to the
 * subcommands that registered themselves (see cli.h).
 */
#include "src/cli/cli.h"
#include "utils/fdlimit.h"
#include "utils/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cli_command *commands;
static const struct cli_command *running;

void cli_register(struct cli_command *cmd)
{
	struct cli_command **p = &commands;

	/* keep sorted for help output */
	while (*p && strcmp((*p)->name, cmd->name) < 0)
		p = &(*p)->next;
	cmd->next = *p;
	*p = cmd;
}

int cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("csnap: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt && *fmt) {
		fputs("csnap: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	if (running)
		fprintf(stderr, "usage: csnap %s %s\n", running->name, running->synopsis);
	return 2;
}

static void print_help(FILE *f)
{
	fprintf(f,
		"usage: csnap [--verbose|--quiet] COMMAND [ARGS...]\n"
		"\n"
		"csnap: cluster snapshots of a shared block device, coordinated by\n"
		"sanlock leases on the snapshot store.\n"
		"\n"
		"commands:\n");
	for (const struct cli_command *c = commands; c; c = c->next)
		fprintf(f, "  %s %s\n      %s\n", c->name, c->synopsis, c->summary);
	fprintf(f, "\nSee csnap(8) for details.\n");
}

/* Words of a command name: "lease init" matches argv "lease" "init".  */
static int command_matches(const struct cli_command *c, int argc, char **argv)
{
	char buf[64];
	int words = 0;
	char *save, *w;

	snprintf(buf, sizeof buf, "%s", c->name);
	for (w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (words >= argc || strcmp(argv[words], w))
			return 0;
		words++;
	}
	return words;
}

int main(int argc, char **argv)
{
	const struct cli_command *best = NULL;
	int best_words = 0;

	log_init("csnap", LOG_LEVEL_WARN);
	/* Servers must not run out of descriptors at the default soft
	 * limit (1024) while the administrator allows more.  */
	fd_limit_raise();
	argc--, argv++;
	while (argc && argv[0][0] == '-') {
		if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
			print_help(stdout);
			return 0;
		} else if (!strcmp(argv[0], "--version") || !strcmp(argv[0], "-V")) {
			printf("csnap %s\n", CSNAP_VERSION);
			return 0;
		} else if (!strcmp(argv[0], "--verbose") || !strcmp(argv[0], "-v")) {
			log_set_level(log_get_level() == LOG_LEVEL_INFO ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
		} else if (!strcmp(argv[0], "--quiet") || !strcmp(argv[0], "-q")) {
			log_set_level(LOG_LEVEL_ERROR);
		} else {
			fprintf(stderr, "csnap: unknown option '%s'\n", argv[0]);
			print_help(stderr);
			return 2;
		}
		argc--, argv++;
	}
	if (!argc) {
		print_help(stderr);
		return 2;
	}
	if (!strcmp(argv[0], "help")) {
		print_help(stdout);
		return 0;
	}
	for (const struct cli_command *c = commands; c; c = c->next) {
		int w = command_matches(c, argc, argv);
		if (w > best_words) {
			best = c;
			best_words = w;
		}
	}
	if (!best) {
		fprintf(stderr, "csnap: unknown command '%s' (try csnap --help)\n", argv[0]);
		return 2;
	}
	running = best;
	/* The command sees argv[0] = its last word, so getopt works as usual. */
	return best->run(argc - best_words + 1, argv + best_words - 1);
}
