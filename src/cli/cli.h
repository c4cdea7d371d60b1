/*
 * src/cli/cli.h - how subcommands of the `csnap` binary are declared.
 *
 * Each subcommand lives in its own src/cli/cmd_*.c and registers itself
 * with CLI_COMMAND(); main.c dispatches on the first one or two words
 * ("mkstore", "lease init", "snapshot create", "server", ...).  The
 * registered commands are the one table: dispatch, `csnap --help`, `csnap
 * NAME --help`, group listings ("csnap snapshot") and the bash completion
 * (`csnap --command-table`) all read it, so adding a command is one
 * CLI_COMMAND() in its own file.  The synopsis names every long option
 * (completion offers those).
 *
 * Conventions for commands: return an exit status (0 success, 1 failure,
 * 2 usage error); print errors as one line through cli_error() ("csnap:
 * WHAT: WHY"); put machine-readable output on stdout only.
 */
#ifndef CSNAP_CLI_H
#define CSNAP_CLI_H

struct cli_command {
	const char *name;	/* "mkstore" or "lease init" */
	const char *synopsis;	/* one line: arguments */
	const char *summary;	/* one line: what it does */
	int (*run)(int argc, char **argv);	/* argv[0] is the last word of name */
	struct cli_command *next;
};

void cli_register(struct cli_command *cmd);

#define CLI_COMMAND(ident, name_, synopsis_, summary_, fn_)			\
	static struct cli_command cli_cmd_##ident = {				\
		.name = name_, .synopsis = synopsis_, .summary = summary_,	\
		.run = fn_ };							\
	__attribute__((constructor)) static void cli_register_##ident(void)	\
	{ cli_register(&cli_cmd_##ident); }

/* "csnap: " + message, one line on stderr.  Returns 1.  */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print usage of the running command and return 2.  */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
