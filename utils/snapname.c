/*
 * utils/snapname.c - see snapname.h.
 */
#include "utils/snapname.h"

#include "utils/err.h"
#include "utils/escape.h"

#include <errno.h>
#include <string.h>

bool snap_name_valid(const char *name)
{
	size_t n = strnlen(name, SNAP_NAME_MAX + 1);

	if (n == 0 || n > SNAP_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("._+:@-", c)))
			return false;
	}
	return true;
}

bool snap_name_reserved(const char *name)
{
	return !strcmp(name, "origin");
}

int snap_name_check(const char *name)
{
	if (!snap_name_valid(name))
		return err_set(EINVAL, "invalid snapshot name \"%s\" (1-%d of A-Z a-z 0-9 . _ + : @ -, "
			       "not starting with . or -)", ESC(name), SNAP_NAME_MAX);
	if (snap_name_reserved(name))
		return err_set(EINVAL, "snapshot name \"%s\" is reserved (it names the origin "
			       "volume's export)", name);
	return 0;
}
