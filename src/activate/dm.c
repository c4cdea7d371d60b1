/*
 * src/activate/dm.c - device-mapper through libdevmapper (see dm.h).
 * libdevmapper's own log lines go to csnap's debug log; the last error is
 * kept so a failed call explains itself through err_get().
 */
#include "src/activate/dm.h"

#include "src/activate/names.h"
#include "src/activate/sysdev.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libdevmapper.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static __thread char dm_last[256];

static void dm_log(int level, const char *file, int line, int dm_errno, const char *f, ...)
{
	char buf[256];
	va_list ap;

	(void)file; (void)line; (void)dm_errno;
	va_start(ap, f);
	vsnprintf(buf, sizeof buf, f, ap);
	va_end(ap);
	if ((level & 7) <= 3)	/* _LOG_ERR */
		snprintf(dm_last, sizeof dm_last, "%s", buf);
	log_debug("libdevmapper: %s", buf);
}

static void dm_setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	dm_log_with_errno_init(dm_log);
}

static int dm_fail(int err, const char *what, const char *name)
{
	return err_set(err, "device-mapper %s %s: %s", what, name,
		       dm_last[0] ? dm_last : strerror(err));
}

/* /proc/misc lists "device-mapper" once dm-mod is loaded (or built in). */
static bool dm_in_kernel(void)
{
	FILE *f = fopen("/proc/misc", "re");
	char line[128];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, " device-mapper") != NULL;
	fclose(f);
	return found;
}

int act_dm_available(void)
{
	char version[64];

	dm_setup();
	if (!dm_in_kernel())
		act_modprobe("dm-mod");
	if (!dm_in_kernel())
		return err_set(ENODEV, "device-mapper missing: no \"device-mapper\" in /proc/misc "
			       "(`modprobe dm-mod` did not add it)");
	/* libdevmapper creates /dev/mapper/control from /proc/misc if needed */
	dm_last[0] = 0;
	if (!dm_driver_version(version, sizeof version))
		return err_set(ENODEV, "device-mapper: cannot reach the kernel driver through "
			       "/dev/mapper/control%s%s", dm_last[0] ? ": " : "", dm_last);
	return 0;
}

bool act_dm_udev_running(void)
{
	dm_setup();
	/* udevd listens on this socket while it runs; libdevmapper's own
	 * check needs the same */
	return access("/run/udev/control", F_OK) == 0 && dm_udev_get_sync_support();
}

int act_dm_info(const char *name, struct act_dm_info *info)
{
	struct dm_task *dmt;
	struct dm_info di;
	int rc = 0;

	dm_setup();
	memset(info, 0, sizeof *info);
	dm_last[0] = 0;
	if (!(dmt = dm_task_create(DM_DEVICE_INFO)))
		return err_set(ENOMEM, "dm_task_create failed");
	if (!dm_task_set_name(dmt, name) || !dm_task_run(dmt) || !dm_task_get_info(dmt, &di)) {
		rc = dm_fail(EIO, "info", name);
		goto out;
	}
	if (di.exists) {
		const char *u = dm_task_get_uuid(dmt);
		info->exists = true;
		info->open_count = (uint32_t)di.open_count;
		info->major = di.major;
		info->minor = di.minor;
		snprintf(info->uuid, sizeof info->uuid, "%s", u ? u : "");
	}
out:
	dm_task_destroy(dmt);
	return rc;
}

static uint16_t udev_flags(bool low_priority)
{
	uint16_t f = low_priority ? DM_UDEV_LOW_PRIORITY_FLAG : 0;

	if (act_dm_udev_running())
		f |= DM_UDEV_DISABLE_LIBRARY_FALLBACK;
	return f;
}

int act_dm_create_linear(const char *name, const char *uuid, uint64_t size,
			 unsigned major, unsigned minor, bool low_priority)
{
	char params[64];
	struct dm_task *dmt;
	uint32_t cookie = 0;
	int ok;

	dm_setup();
	dm_last[0] = 0;
	if (size / 512 == 0)
		return err_set(EINVAL, "%s: volume smaller than one sector", name);
	snprintf(params, sizeof params, "%u:%u 0", major, minor);
	if (!(dmt = dm_task_create(DM_DEVICE_CREATE)))
		return err_set(ENOMEM, "dm_task_create failed");
	ok = dm_task_set_name(dmt, name) && dm_task_set_uuid(dmt, uuid) &&
	     dm_task_add_target(dmt, 0, size / 512, "linear", params) &&
	     dm_task_set_cookie(dmt, &cookie, udev_flags(low_priority)) && dm_task_run(dmt);
	dm_task_destroy(dmt);
	/* the cookie is waited for either way: a failed create may have
	 * left udev events behind */
	if (cookie)
		dm_udev_wait(cookie);
	if (!ok)
		return dm_fail(EIO, "create", name);
	return 0;
}

/* NAME's live table: its length in sectors and, when it is one linear
 * target, its parameters in LINEAR (else LINEAR is "").  */
static int read_table(const char *name, uint64_t *total, char *linear, size_t ln)
{
	struct dm_task *dmt;
	uint64_t start, length;
	char *type, *params;
	unsigned targets = 0;
	int ok;

	*total = 0;
	linear[0] = 0;
	if (!(dmt = dm_task_create(DM_DEVICE_TABLE)))
		return -ENOMEM;
	ok = dm_task_set_name(dmt, name) && dm_task_run(dmt);
	if (ok) {
		void *next = NULL;
		do {
			next = dm_get_next_target(dmt, next, &start, &length, &type, &params);
			*total = start + length;
			if (type && params && !targets++ && !strcmp(type, "linear"))
				snprintf(linear, ln, "%s", params);
		} while (next);
	}
	dm_task_destroy(dmt);
	if (targets != 1)
		linear[0] = 0;
	if (!ok || !*total)
		return dm_fail(EIO, "table", name);
	return 0;
}

/* Replaces NAME's table with an error target of the same length.  */
static int load_error_table(const char *name)
{
	struct dm_task *dmt;
	char linear[64];
	uint64_t total;
	int ok, rc;

	if ((rc = read_table(name, &total, linear, sizeof linear)) < 0)
		return rc;

	uint32_t cookie = 0;
	if (!(dmt = dm_task_create(DM_DEVICE_RELOAD)))
		return -ENOMEM;
	ok = dm_task_set_name(dmt, name) && dm_task_add_target(dmt, 0, total, "error", "") &&
	     dm_task_run(dmt);
	dm_task_destroy(dmt);
	if (!ok)
		return dm_fail(EIO, "reload", name);
	if (!(dmt = dm_task_create(DM_DEVICE_RESUME)))
		return -ENOMEM;
	ok = dm_task_set_name(dmt, name) && dm_task_set_cookie(dmt, &cookie, udev_flags(false)) &&
	     dm_task_run(dmt);
	dm_task_destroy(dmt);
	if (cookie)
		dm_udev_wait(cookie);
	return ok ? 0 : dm_fail(EIO, "resume", name);
}

/* Runs a SUSPEND or RESUME of NAME (a resume with a udev cookie: it
 * changes the device's size, which udev hears of).  */
static bool suspend_resume(const char *name, int type)
{
	struct dm_task *dmt;
	uint32_t cookie = 0;
	int ok;

	if (!(dmt = dm_task_create(type)))
		return false;
	ok = dm_task_set_name(dmt, name) &&
	     (type != DM_DEVICE_RESUME || dm_task_set_cookie(dmt, &cookie, udev_flags(false))) &&
	     dm_task_run(dmt);
	dm_task_destroy(dmt);
	if (cookie)
		dm_udev_wait(cookie);
	return ok;
}

int act_dm_grow_linear(const char *name, uint64_t size, unsigned major, unsigned minor)
{
	char want[64], linear[64];
	struct dm_task *dmt;
	uint64_t total;
	int ok, rc;

	dm_setup();
	dm_last[0] = 0;
	if ((rc = read_table(name, &total, linear, sizeof linear)) < 0)
		return rc;
	snprintf(want, sizeof want, "%u:%u 0", major, minor);
	if (strcmp(linear, want))
		return err_set(EINVAL, "%s: its table is not one linear target over %s; not resized",
			       name, want);
	if (total >= size / 512)
		return 1;	/* never shrinks */
	/* load the longer table (inactive), then suspend and resume to swap
	 * it in, as lvextend does */
	if (!(dmt = dm_task_create(DM_DEVICE_RELOAD)))
		return err_set(ENOMEM, "dm_task_create failed");
	ok = dm_task_set_name(dmt, name) &&
	     dm_task_add_target(dmt, 0, size / 512, "linear", want) && dm_task_run(dmt);
	dm_task_destroy(dmt);
	if (!ok)
		return dm_fail(EIO, "reload", name);
	if (!suspend_resume(name, DM_DEVICE_SUSPEND)) {
		rc = dm_fail(EIO, "suspend", name);
		/* drop the inactive table: the device keeps its old one */
		if ((dmt = dm_task_create(DM_DEVICE_CLEAR))) {
			if (dm_task_set_name(dmt, name))
				dm_task_run(dmt);
			dm_task_destroy(dmt);
		}
		return rc;
	}
	if (!suspend_resume(name, DM_DEVICE_RESUME))
		return dm_fail(EIO, "resume", name);
	return 0;
}

int act_dm_remove(const char *name, bool force)
{
	struct act_dm_info info;
	struct dm_task *dmt;
	uint32_t cookie = 0;
	int rc, ok;

	rc = act_dm_info(name, &info);
	if (rc < 0)
		return rc;
	if (!info.exists)
		return 0;
	if (info.open_count && !force)
		return err_set(EBUSY, "%s is open (%u opener%s: mounted or held); "
			       "unmount it, or --force", name, info.open_count,
			       info.open_count == 1 ? "" : "s");
	if (info.open_count && (rc = load_error_table(name)) < 0)
		return rc;
	dm_last[0] = 0;
	if (!(dmt = dm_task_create(DM_DEVICE_REMOVE)))
		return err_set(ENOMEM, "dm_task_create failed");
	ok = dm_task_set_name(dmt, name) &&
	     (!info.open_count || dm_task_deferred_remove(dmt)) &&
	     (info.open_count || dm_task_retry_remove(dmt)) &&
	     dm_task_set_cookie(dmt, &cookie, udev_flags(false)) && dm_task_run(dmt);
	dm_task_destroy(dmt);
	if (cookie)
		dm_udev_wait(cookie);
	if (!ok)
		return dm_fail(EBUSY, "remove", name);
	return 0;
}

int act_dm_for_each(int (*fn)(const char *name, const char *uuid, void *arg), void *arg)
{
	struct dm_task *dmt;
	struct dm_names *n;
	int rc = 0;

	dm_setup();
	if (!(dmt = dm_task_create(DM_DEVICE_LIST)))
		return err_set(ENOMEM, "dm_task_create failed");
	if (!dm_task_run(dmt) || !(n = dm_task_get_names(dmt))) {
		dm_task_destroy(dmt);
		return dm_fail(EIO, "list", "devices");
	}
	if (n->dev) {
		unsigned next;
		do {
			struct act_dm_info info;
			next = n->next;
			if (act_dm_info(n->name, &info) == 0 && info.exists)
				rc = fn(n->name, info.uuid, arg);
			n = (struct dm_names *)((char *)n + next);
		} while (!rc && next);
	}
	dm_task_destroy(dmt);
	return rc;
}
