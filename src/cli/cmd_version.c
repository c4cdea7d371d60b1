/*
 * src/cli/cmd_version.c - `csnap version`.
 */
#include "src/cli/cli.h"

#include <stdio.h>

static int cmd_version(int argc, char **argv)
{
	(void)argc; (void)argv;
	printf("csnap %s\n", CSNAP_VERSION);
	return 0;
}

CLI_COMMAND(version, "version", "", "print the version", cmd_version)
