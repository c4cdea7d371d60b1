/*
 * lease/leader.c - decoder (and, for tests and tools, encoder) of
 * sanlock's own on-disk leader records (layout LDR_* in lease_internal.h) (one per delta lease sector, one at the head of a paxos lease).
 * We read them for two things sanlock's API does not give: host names for
 * `csnap lease status`, and whether leases are in use before `lease init`
 * overwrites them.  Only records whose sanlock checksum verifies are used.
 */
#include "lease/lease_internal.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* sanlock computes a plain reflected CRC-32C register seeded with ~1 and
 * no final inversion.  utils/crc32c inverts on entry and exit, so seeding
 * it with 1 and inverting the result gives the same value.  */
uint32_t lease_leader_checksum(const uint8_t *sec)
{
	return ~crc32c(1, sec, SANLOCK_LEADER_CSUM_LEN);
}

int lease_leader_decode(const uint8_t *sec, struct sanlock_leader *l)
{
	memset(l, 0, sizeof(*l));
	l->magic = get_le32(sec + LDR_MAGIC);
	if (l->magic != SANLOCK_DELTA_MAGIC && l->magic != SANLOCK_PAXOS_MAGIC)
		return -EBADMSG;
	if (get_le32(sec + LDR_CSUM) != lease_leader_checksum(sec))
		return -EBADMSG;
	l->version = get_le32(sec + LDR_VERSION);
	l->sector_size = get_le32(sec + LDR_SECTOR_SIZE);
	l->max_hosts = get_le64(sec + LDR_MAX_HOSTS);
	l->owner_id = get_le64(sec + LDR_OWNER_ID);
	l->owner_generation = get_le64(sec + LDR_OWNER_GEN);
	l->lver = get_le64(sec + LDR_LVER);
	memcpy(l->space_name, sec + LDR_SPACE_NAME, LEASE_NAME_LEN);
	memcpy(l->resource_name, sec + LDR_RESOURCE_NAME, LEASE_NAME_LEN);
	l->timestamp = get_le64(sec + LDR_TIMESTAMP);
	l->io_timeout = get_le16(sec + LDR_IO_TIMEOUT);
	l->write_id = get_le64(sec + LDR_WRITE_ID);
	return 0;
}

void lease_leader_encode(const struct sanlock_leader *l, uint8_t *sec)
{
	put_le32(sec + LDR_MAGIC, l->magic);
	put_le32(sec + LDR_VERSION, l->version);
	put_le32(sec + LDR_SECTOR_SIZE, l->sector_size);
	put_le64(sec + LDR_MAX_HOSTS, l->max_hosts);
	put_le64(sec + LDR_OWNER_ID, l->owner_id);
	put_le64(sec + LDR_OWNER_GEN, l->owner_generation);
	put_le64(sec + LDR_LVER, l->lver);
	memset(sec + LDR_SPACE_NAME, 0, LEASE_NAME_LEN);
	memcpy(sec + LDR_SPACE_NAME, l->space_name, strnlen(l->space_name, LEASE_NAME_LEN));
	memset(sec + LDR_RESOURCE_NAME, 0, LEASE_NAME_LEN);
	memcpy(sec + LDR_RESOURCE_NAME, l->resource_name, strnlen(l->resource_name, LEASE_NAME_LEN));
	put_le64(sec + LDR_TIMESTAMP, l->timestamp);
	put_le16(sec + LDR_IO_TIMEOUT, (uint16_t)l->io_timeout);
	put_le64(sec + LDR_WRITE_ID, l->write_id);
	put_le32(sec + LDR_CSUM, lease_leader_checksum(sec));
}

int lease_master_leader_read(const struct lease_area *a, struct sanlock_leader *l)
{
	uint8_t *sec = lease_io_alloc(a->sector_size);
	int rc;

	if (!sec)
		return err_set(ENOMEM, "out of memory");
	rc = lease_io_read(a->path, lease_area_master_offset(a), sec, a->sector_size);
	if (rc == 0 && (lease_leader_decode(sec, l) < 0 || l->magic != SANLOCK_PAXOS_MAGIC))
		rc = err_set(EBADMSG, "master lease leader record is damaged");
	free(sec);
	return rc;
}
