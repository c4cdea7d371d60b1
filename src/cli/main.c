/*
 * src/cli/main.c - the `csnap` binary: global options, dispatch, help and
 * the completion table, all from one table: the commands that registered
 * themselves (cli.h).  A multi-word name ("snapshot create") makes its
 * first word a group: `csnap GROUP` alone or with --help lists the group's
 * subcommands; every command answers --help (anywhere before "--") with its
 * usage and summary on stdout and exit 0; `csnap --command-table` prints
 * the table for contrib/csnap.bash-completion.  Adding a command is one
 * CLI_COMMAND() in its own file: help, dispatch and completion follow.
 */
#include "src/cli/cli.h"
#include "utils/escape.h"
#include "utils/fdlimit.h"
#include "utils/log.h"

#include <stdarg.h>
#include <stdbool.h>
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

/* "csnap: MESSAGE" on one line: control characters that came in with a
 * name or path are escaped (utils/escape.h).  */
static void print_error(const char *fmt, va_list ap)
{
	char msg[2048], esc[2048];

	vsnprintf(msg, sizeof msg, fmt, ap);
	fprintf(stderr, "csnap: %s\n", str_escape(esc, sizeof esc, msg));
}

int cli_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_error(fmt, ap);
	va_end(ap);
	return 1;
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt && *fmt) {
		va_start(ap, fmt);
		print_error(fmt, ap);
		va_end(ap);
	}
	if (running)
		fprintf(stderr, "usage: csnap %s %s\n", running->name, running->synopsis);
	return 2;
}

/* The space between a command's name and its synopsis, if it has one.  */
static const char *sep(const struct cli_command *c)
{
	return *c->synopsis ? " " : "";
}

static void print_help(FILE *f)
{
	fprintf(f,
		"usage: csnap [--verbose|--quiet] COMMAND [ARGS...]\n"
		"       csnap COMMAND --help\n"
		"\n"
		"csnap: cluster snapshots of a shared block device, coordinated by\n"
		"sanlock leases on the snapshot store.\n"
		"\n"
		"commands:\n");
	for (const struct cli_command *c = commands; c; c = c->next)
		fprintf(f, "  %s%s%s\n      %s\n", c->name, sep(c), c->synopsis, c->summary);
	fprintf(f, "\nSee csnap(8) for details.\n");
}

/* Length of NAME's first word.  */
static size_t first_word_len(const char *name)
{
	return strcspn(name, " ");
}

/* Is C a subcommand of GROUP ("snapshot create" of "snapshot")?  */
static bool in_group(const struct cli_command *c, const char *group)
{
	size_t n = strlen(group);

	return first_word_len(c->name) == n && c->name[n] == ' ' && !strncmp(c->name, group, n);
}

static bool is_group(const char *word)
{
	for (const struct cli_command *c = commands; c; c = c->next)
		if (in_group(c, word))
			return true;
	return false;
}

/* The subcommands of GROUP, as help lists them.  */
static void print_subcommands(FILE *f, const char *group)
{
	fprintf(f, "\nsubcommands:\n");
	for (const struct cli_command *c = commands; c; c = c->next)
		if (in_group(c, group))
			fprintf(f, "  %s%s%s\n      %s\n", c->name + strlen(group) + 1,
				sep(c), c->synopsis, c->summary);
}

static void print_group_help(FILE *f, const char *group)
{
	fprintf(f, "usage: csnap %s SUBCOMMAND [ARGS...]\n", group);
	print_subcommands(f, group);
}

/* A command's own help; a command that is also a group ("agent") lists its
 * subcommands too.  */
static void print_command_help(FILE *f, const struct cli_command *c)
{
	fprintf(f, "usage: csnap %s%s%s\n  %s\n", c->name, sep(c), c->synopsis, c->summary);
	if (!strchr(c->name, ' ') && is_group(c->name))
		print_subcommands(f, c->name);
}

/* For the bash completion (contrib/csnap.bash-completion): one line per
 * command, its name, a tab, and the long options its synopsis names.  */
static void print_command_table(void)
{
	for (const struct cli_command *c = commands; c; c = c->next) {
		const char *p = c->synopsis;

		printf("%s\t--help", c->name);
		while ((p = strstr(p, "--"))) {
			size_t n = 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz0123456789-");

			if (n > 2)
				printf(" %.*s", (int)n, p);
			p += n;
		}
		printf("\n");
	}
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

static bool is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

/* Does the command line ask for help ("--help" or "-h" before any "--")?  */
static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--"); i++)
		if (is_help(argv[i]))
			return true;
	return false;
}

/* The command ARGV names, and how many of its words it took; NULL if none. */
static const struct cli_command *find_command(int argc, char **argv, int *words)
{
	const struct cli_command *best = NULL;

	*words = 0;
	for (const struct cli_command *c = commands; c; c = c->next) {
		int w = command_matches(c, argc, argv);

		if (w > *words) {
			best = c;
			*words = w;
		}
	}
	return best;
}

/* `csnap help [COMMAND...]`.  */
static int help_command(int argc, char **argv)
{
	const struct cli_command *c;
	int words;

	if (!argc) {
		print_help(stdout);
		return 0;
	}
	c = find_command(argc, argv, &words);
	if (c && words == argc) {
		print_command_help(stdout, c);
		return 0;
	}
	if (argc == 1 && is_group(argv[0])) {
		print_group_help(stdout, argv[0]);
		return 0;
	}
	fprintf(stderr, "csnap: no command '%s' (try csnap --help)\n", argv[0]);
	return 2;
}

int main(int argc, char **argv)
{
	const struct cli_command *best;
	int best_words;

	log_init("csnap", LOG_LEVEL_WARN);
	/* Servers must not run out of descriptors at the default soft
	 * limit (1024) while the administrator allows more.  */
	fd_limit_raise();
	argc--, argv++;
	while (argc && argv[0][0] == '-') {
		if (is_help(argv[0])) {
			print_help(stdout);
			return 0;
		} else if (!strcmp(argv[0], "--version") || !strcmp(argv[0], "-V")) {
			printf("csnap %s\n", CSNAP_VERSION);
			return 0;
		} else if (!strcmp(argv[0], "--verbose") || !strcmp(argv[0], "-v")) {
			log_set_level(log_get_level() == LOG_LEVEL_INFO ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
		} else if (!strcmp(argv[0], "--quiet") || !strcmp(argv[0], "-q")) {
			log_set_level(LOG_LEVEL_ERROR);
		} else if (!strcmp(argv[0], "--command-table")) {
			print_command_table();
			return 0;
		} else {
			cli_error("unknown option '%s'", argv[0]);
			print_help(stderr);
			return 2;
		}
		argc--, argv++;
	}
	if (!argc) {
		print_help(stderr);
		return 2;
	}
	if (!strcmp(argv[0], "help"))
		return help_command(argc - 1, argv + 1);
	best = find_command(argc, argv, &best_words);
	if (!best && is_group(argv[0])) {
		/* "csnap snapshot", "csnap snapshot --help", "csnap snapshot nosuch" */
		if (argc > 1 && is_help(argv[1])) {
			print_group_help(stdout, argv[0]);
			return 0;
		}
		if (argc > 1)
			fprintf(stderr, "csnap: unknown %s subcommand '%s'\n", argv[0], argv[1]);
		print_group_help(stderr, argv[0]);
		return 2;
	}
	if (!best) {
		cli_error("unknown command '%s' (try csnap --help)", argv[0]);
		return 2;
	}
	if (wants_help(argc - best_words, argv + best_words)) {
		print_command_help(stdout, best);
		return 0;
	}
	running = best;
	/* The command sees argv[0] = its last word, so getopt works as usual. */
	return best->run(argc - best_words + 1, argv + best_words - 1);
}
