/*
 * src/activate/activate.h - one csnap volume as a kernel block device:
 *
 *   /dev/csnap/<store>/<volume> -> /dev/mapper/csnap-<store>-<volume>
 *        dm-linear, uuid CSNAP-<store uuid>-<id>
 *     over /dev/nbdN, backend csnap:<store uuid>:<volume>
 *        whose socket the kernel holds, connected to `csnap export`.
 *
 * Built bottom-up and torn down top-down, so no step ever leaves a
 * dm device over a missing nbd device: a failed dm create disconnects the
 * nbd device it just attached; a refused dm remove (device open) leaves
 * everything as it was.  The caller resolves names and ids (config,
 * superblock, master); this file only talks to the kernel.
 */
#ifndef CSNAP_ACTIVATE_ACTIVATE_H
#define CSNAP_ACTIVATE_ACTIVATE_H

#include "src/activate/names.h"

#include <stdbool.h>
#include <stdint.h>

#define ACT_DEV_DIR	"/dev/csnap"

struct act_vol {
	const char *store;		/* store name (csnap.conf section) */
	struct csnap_uuid uuid;		/* store uuid (superblock) */
	const char *volume;		/* "origin" or a snapshot name */
	uint32_t id;			/* ACT_ORIGIN_ID or the snapshot id */
	const char *export_addr;	/* unix socket path, or TCP address ... */
	uint16_t export_port;		/* ... with this port (0: unix) */
	unsigned timeout;		/* nbd request timeout, seconds (0: none) */
	unsigned dead_timeout;		/* seconds I/O waits for the export */
	int wait_ms;			/* how long to wait for the export */
};

struct act_made {
	char dm_name[ACT_DM_NAME_MAX];
	char link[256];			/* /dev/csnap/<store>/<volume> */
	int nbd_index;
	uint64_t size;
	bool existed;			/* was already active */
};

/* 0 when this kernel has nbd and device-mapper (loading their modules if
 * needed); else -ENODEV with a message naming what is missing.  */
int act_kernel_check(void);
int act_up(const struct act_vol *v, struct act_made *m);
/* Tears VOLUME of STORE down: dm device, its /dev/csnap link, then the nbd
 * device (whose disconnect closes the export's connection).  -EBUSY and
 * nothing removed when the dm device is open and !FORCE.  Returns 1 when
 * there was nothing to remove.  */
int act_down(const char *store, const struct csnap_uuid *uuid, const char *volume, bool force);
/* The origin of store UUID grew to SIZE bytes: its nbd device here gets
 * the new size (RECONFIGURE, connection untouched), then its dm-linear
 * table the new length (load, suspend, resume).  Never shrinks; snapshot
 * volumes are not touched.  0 when a device grew; 1 when nothing changed
 * (not activated here, or already that large).  */
int act_grow_origin(const struct csnap_uuid *uuid, uint64_t size);
/* "/dev/csnap/<store>/<volume>".  */
void act_link_path(const char *store, const char *volume, char *out, size_t n);

#endif
