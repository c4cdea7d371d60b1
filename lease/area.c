/*
 * lease/area.c - geometry of a store's lease area and the sanlock structs
 * that point into it.  Invariant: a lease_area that lease_area_setup()
 * accepted has an allowed (sector_size, align) pair and an offset that is a
 * multiple of align, so every region starts where sanlock expects it.
 */
#include "lease/lease_internal.h"
#include "utils/err.h"

#include <errno.h>
#include <sanlock_admin.h>
#include <sanlock_resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1024u * 1024u)

void lease_lockspace_name(const struct csnap_uuid *uuid, char out[LEASE_NAME_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(LEASE_LOCKSPACE_PREFIX);

	memcpy(out, LEASE_LOCKSPACE_PREFIX, n);
	for (int i = 0; i < 16; i++) {
		out[n++] = hex[uuid->b[i] >> 4];
		out[n++] = hex[uuid->b[i] & 15];
	}
	out[n] = '\0';
}

static bool geometry_ok(uint32_t sector, uint32_t align)
{
	if (sector == 512)
		return align == 1 * MiB;
	if (sector == 4096)
		return align == 1 * MiB || align == 2 * MiB || align == 4 * MiB || align == 8 * MiB;
	return false;
}

int lease_area_setup(struct lease_area *a, const char *path, uint64_t offset,
		     uint32_t align, uint32_t sector_size, const struct csnap_uuid *uuid)
{
	memset(a, 0, sizeof(*a));
	if (!path || !*path || strlen(path) >= sizeof(a->path))
		return err_set(EINVAL, "lease area: bad device path");
	if (!geometry_ok(sector_size, align))
		return err_set(EINVAL, "lease area: sector size %u with alignment %u bytes is not "
			       "one sanlock supports (512/1M, 4096/1M..8M)", sector_size, align);
	if (offset % align)
		return err_set(EINVAL, "lease area: offset %llu is not a multiple of its alignment %u",
			       (unsigned long long)offset, align);
	if (csnap_uuid_is_null(uuid))
		return err_set(EINVAL, "lease area: null store uuid");
	snprintf(a->path, sizeof(a->path), "%s", path);
	a->offset = offset;
	a->align = align;
	a->sector_size = sector_size;
	lease_lockspace_name(uuid, a->lockspace);
	return 0;
}

uint64_t lease_area_lockspace_offset(const struct lease_area *a) { return a->offset; }
uint64_t lease_area_master_offset(const struct lease_area *a) { return a->offset + a->align; }
uint64_t lease_area_record_offset(const struct lease_area *a) { return a->offset + 2ull * a->align; }

uint32_t lease_sanlock_size_flags(const struct lease_area *a)
{
	/* SANLK_LSF_* and SANLK_RES_* share values (sanlock.h says so).  */
	uint32_t f = a->sector_size == 4096 ? SANLK_RES_SECTOR4K : SANLK_RES_SECTOR512;

	switch (a->align) {
	case 2 * MiB: f |= SANLK_RES_ALIGN2M; break;
	case 4 * MiB: f |= SANLK_RES_ALIGN4M; break;
	case 8 * MiB: f |= SANLK_RES_ALIGN8M; break;
	default:      f |= SANLK_RES_ALIGN1M; break;
	}
	return f;
}

void lease_fill_lockspace(const struct lease_area *a, uint32_t host_id,
			  struct sanlk_lockspace *ls)
{
	memset(ls, 0, sizeof(*ls));
	memcpy(ls->name, a->lockspace, strlen(a->lockspace));
	ls->host_id = host_id;
	snprintf(ls->host_id_disk.path, sizeof(ls->host_id_disk.path), "%s", a->path);
	ls->host_id_disk.offset = lease_area_lockspace_offset(a);
}

void lease_fill_master(const struct lease_area *a, struct sanlk_resource *res)
{
	memset(res, 0, sizeof(*res) + sizeof(struct sanlk_disk));
	memcpy(res->lockspace_name, a->lockspace, strlen(a->lockspace));
	memcpy(res->name, LEASE_RESOURCE_MASTER, strlen(LEASE_RESOURCE_MASTER));
	res->num_disks = 1;
	snprintf(res->disks[0].path, sizeof(res->disks[0].path), "%s", a->path);
	res->disks[0].offset = lease_area_master_offset(a);
}

int lease_daemon_check(void)
{
	uint32_t version = 0, proto = 0;
	int rv = sanlock_version(0, &version, &proto);
	const char *dir = getenv("SANLOCK_RUN_DIR");

	if (rv < 0)
		return err_set(ENOTCONN, "cannot reach the sanlock daemon (run dir %s): %s",
			       dir ? dir : "/run/sanlock", strerror(-rv > 0 && -rv < 200 ? -rv : EIO));
	return 0;
}
