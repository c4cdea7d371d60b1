/*
 * src/activate/sysdev.c - recognising csnap volumes in sysfs (see
 * sysdev.h).  Only sysfs is read, never the device.
 */
#include "src/activate/sysdev.h"

#include "src/activate/names.h"

#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>

static bool attr_starts(unsigned maj, unsigned min, const char *attr, const char *prefix)
{
	char path[96], buf[160];
	FILE *f;
	bool yes = false;

	snprintf(path, sizeof path, "/sys/dev/block/%u:%u/%s", maj, min, attr);
	if (!(f = fopen(path, "re")))
		return false;
	if (fgets(buf, sizeof buf, f))
		yes = !strncmp(buf, prefix, strlen(prefix));
	fclose(f);
	return yes;
}

bool act_is_csnap_volume(dev_t rdev)
{
	unsigned maj = major(rdev), min = minor(rdev);

	return attr_starts(maj, min, "backend", ACT_BACKEND_PREFIX) ||
	       attr_starts(maj, min, "dm/uuid", ACT_UUID_PREFIX);
}
