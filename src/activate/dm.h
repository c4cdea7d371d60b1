/*
 * src/activate/dm.h - the device-mapper half of an activated volume,
 * through libdevmapper (never by running dmsetup).
 *
 * Devices are created and removed with a udev cookie and dm_udev_wait(),
 * so /dev/mapper and /dev/csnap links exist when activation returns.  With
 * udevd running, DM_UDEV_DISABLE_LIBRARY_FALLBACK leaves node creation to
 * the rules (contrib/11-dm-csnap.rules); without it (an initramfs, a
 * container) libdevmapper makes /dev/mapper/NAME itself and the caller
 * makes the /dev/csnap link, as LVM does.
 */
#ifndef CSNAP_ACTIVATE_DM_H
#define CSNAP_ACTIVATE_DM_H

#include <stdbool.h>
#include <stdint.h>

struct act_dm_info {
	bool exists;
	uint32_t open_count;
	unsigned major, minor;
	char uuid[129];
};

/* 0 if device-mapper works (after `modprobe dm-mod` if it did not), else
 * -ENODEV with err_set() saying so.  */
int act_dm_available(void);
/* True when udevd runs here and libdevmapper syncs with it.  */
bool act_dm_udev_running(void);
int act_dm_info(const char *name, struct act_dm_info *info);
/* A dm-linear device NAME/UUID over MAJOR:MINOR, SIZE bytes; snapshot
 * volumes get DM_UDEV_LOW_PRIORITY_FLAG (a snapshot carries its origin's
 * filesystem UUID: by-uuid links must stay on the origin).  */
int act_dm_create_linear(const char *name, const char *uuid, uint64_t size,
			 unsigned major, unsigned minor, bool low_priority);
/* Grows NAME, one linear target over MAJOR:MINOR, to SIZE bytes (in
 * whole sectors): the longer table is loaded, then the device suspended
 * and resumed.  1 with nothing done if it is that long already;
 * -EINVAL if its table is not what act_dm_create_linear() made.  */
int act_dm_grow_linear(const char *name, uint64_t size, unsigned major, unsigned minor);
/* Removes NAME.  FORCE on an open device: its table is first replaced by
 * an error target (I/O fails from now on) and the removal is deferred
 * until the last closer.  Without FORCE an open device is -EBUSY.  */
int act_dm_remove(const char *name, bool force);
/* Calls FN(name, uuid) for every dm device; stops at a non-zero return. */
int act_dm_for_each(int (*fn)(const char *name, const char *uuid, void *arg), void *arg);

#endif
