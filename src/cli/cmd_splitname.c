/*
 * src/cli/cmd_splitname.c - `csnap splitname DMNAME`: the store and volume
 * inside a csnap device-mapper name (hyphens undoubled), as udev
 * environment lines for contrib/11-dm-csnap.rules:
 *   CSNAP_STORE=<store>
 *   CSNAP_VOLUME=<volume>
 * Exit 1 (nothing printed) for a name that is not csnap's.
 */
#include "src/cli/cli.h"

#include "src/activate/names.h"

#include <stdio.h>

static int cmd_splitname(int argc, char **argv)
{
	char store[ACT_DM_NAME_MAX], volume[ACT_DM_NAME_MAX];

	if (argc != 2)
		return cli_usage("which device-mapper name?");
	if (act_dm_name_split(argv[1], store, sizeof store, volume, sizeof volume) < 0)
		return cli_error("splitname: %s is not a csnap device-mapper name", argv[1]);
	printf("CSNAP_STORE=%s\nCSNAP_VOLUME=%s\n", store, volume);
	return 0;
}

CLI_COMMAND(splitname, "splitname", "DMNAME",
	    "store and volume of a csnap device-mapper name (for udev rules)", cmd_splitname)
