/*
 * src/activate/sysdev.c - recognising csnap volumes in sysfs (see
 * sysdev.h).  Only sysfs is read, never the device.
 */
#include "src/activate/sysdev.h"

#include "src/activate/names.h"

#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

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

void act_modprobe(const char *mod)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("modprobe", "modprobe", "-q", mod, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}
