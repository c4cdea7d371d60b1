/*
 * lease/leader.c - read-only decoding of sanlock's own on-disk leader
 * records (one per delta lease sector, one at the head of a paxos lease).
 * We read them for two things sanlock's API does not give: host names for
 * `csnap lease status`, and whether leases are in use before `lease init`
 * overwrites them.  Only records whose sanlock checksum verifies are used.
 */
#include "lease/lease_internal.h"
#include "utils/crc32c.h"
#include "utils/endian.h"

#include <errno.h>
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
	l->magic = get_le32(sec + 0);
	if (l->magic != SANLOCK_DELTA_MAGIC && l->magic != SANLOCK_PAXOS_MAGIC)
		return -EBADMSG;
	if (get_le32(sec + 168) != lease_leader_checksum(sec))
		return -EBADMSG;
	l->version = get_le32(sec + 4);
	l->sector_size = get_le32(sec + 12);
	l->max_hosts = get_le64(sec + 24);
	l->owner_id = get_le64(sec + 32);
	l->owner_generation = get_le64(sec + 40);
	l->lver = get_le64(sec + 48);
	memcpy(l->space_name, sec + 56, LEASE_NAME_LEN);
	memcpy(l->resource_name, sec + 104, LEASE_NAME_LEN);
	l->timestamp = get_le64(sec + 152);
	l->io_timeout = get_le16(sec + 174);
	return 0;
}
