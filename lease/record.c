/*
 * lease/record.c - the lease-owner record: where the current master
 * listens.  One sector at lease offset + 2*align, written only by a process
 * that holds the master lease (right after acquiring, and cleared before an
 * orderly release), read by anyone.
 *
 * Encoding: R_* in lease_internal.h (little-endian, LEASE_RECORD_SIZE
 * bytes, rest zero).
 *
 * The record by itself proves nothing: lease_validate() trusts it only when
 * sanlock agrees about lver, owner and generation.  The checksum and offset
 * only keep torn or misdirected writes from being parsed at all.
 */
#include "lease/lease_internal.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool lease_record_is_empty(const struct lease_record *r)
{
	return r->host_id == 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

int lease_record_encode(const struct lease_record *r, uint64_t offset, uint8_t *buf)
{
	size_t alen = strnlen(r->address, sizeof(r->address));
	size_t llen = strnlen(r->lockspace, sizeof(r->lockspace));

	if (alen >= sizeof(r->address))
		return err_set(EINVAL, "lease record: address too long");
	if (llen == 0 || llen >= LEASE_NAME_LEN)
		return err_set(EINVAL, "lease record: bad lockspace name");
	if (r->host_id > LEASE_MAX_HOSTS)
		return err_set(EINVAL, "lease record: host_id %llu out of range",
			       (unsigned long long)r->host_id);
	if (!lease_record_is_empty(r) && (r->lver == 0 || r->generation == 0 ||
					 alen == 0 || r->port == 0))
		return err_set(EINVAL, "lease record: a master record needs lver, generation, "
			       "address and port");
	memset(buf, 0, LEASE_RECORD_SIZE);
	put_le64(buf + R_MAGIC, LEASE_RECORD_MAGIC);
	put_le32(buf + R_VERSION, LEASE_RECORD_VERSION);
	put_le64(buf + R_OFFSET, offset);
	put_le64(buf + R_LVER, r->lver);
	put_le64(buf + R_HOST, r->host_id);
	put_le64(buf + R_GEN, r->generation);
	put_le64(buf + R_EPOCH, r->epoch);
	put_le64(buf + R_SEQ, r->write_seq);
	put_le16(buf + R_PORT, r->port);
	memcpy(buf + R_ADDR, r->address, alen);
	memcpy(buf + R_LS, r->lockspace, llen);
	put_le32(buf + R_CSUM, crc32c(0, buf, LEASE_RECORD_SIZE));
	return 0;
}

int lease_record_decode(const uint8_t *buf, uint64_t offset, struct lease_record *r)
{
	uint8_t tmp[LEASE_RECORD_SIZE];

	memset(r, 0, sizeof(*r));
	if (all_zero(buf, LEASE_RECORD_SIZE))
		return err_set(ENODATA, "no lease-owner record (leases not initialised: "
			       "run csnap lease init)");
	if (get_le64(buf + R_MAGIC) != LEASE_RECORD_MAGIC)
		return err_set(EBADMSG, "lease-owner record: bad magic");
	if (get_le32(buf + R_VERSION) != LEASE_RECORD_VERSION)
		return err_set(EBADMSG, "lease-owner record: unsupported version %u",
			       get_le32(buf + R_VERSION));
	memcpy(tmp, buf, sizeof(tmp));
	put_le32(tmp + R_CSUM, 0);
	if (crc32c(0, tmp, sizeof(tmp)) != get_le32(buf + R_CSUM))
		return err_set(EBADMSG, "lease-owner record: checksum mismatch (torn write?)");
	if (get_le64(buf + R_OFFSET) != offset)
		return err_set(EIO, "lease-owner record: written for offset %llu, found at %llu "
			       "(misdirected write)",
			       (unsigned long long)get_le64(buf + R_OFFSET),
			       (unsigned long long)offset);
	if (get_le16(buf + R_ZERO) || get_le32(buf + R_ZERO + 2) ||
	    !all_zero(buf + R_END, LEASE_RECORD_SIZE - R_END))
		return err_set(EBADMSG, "lease-owner record: reserved bytes not zero");
	if (buf[R_ADDR + LEASE_ADDR_LEN - 1] || buf[R_LS + LEASE_NAME_LEN - 1])
		return err_set(EBADMSG, "lease-owner record: unterminated string");
	r->lver = get_le64(buf + R_LVER);
	r->host_id = get_le64(buf + R_HOST);
	r->generation = get_le64(buf + R_GEN);
	r->epoch = get_le64(buf + R_EPOCH);
	r->write_seq = get_le64(buf + R_SEQ);
	r->port = get_le16(buf + R_PORT);
	memcpy(r->address, buf + R_ADDR, LEASE_ADDR_LEN);
	memcpy(r->lockspace, buf + R_LS, LEASE_NAME_LEN);
	if (r->host_id > LEASE_MAX_HOSTS)
		return err_set(EBADMSG, "lease-owner record: host_id %llu out of range",
			       (unsigned long long)r->host_id);
	if (!lease_record_is_empty(r) && (r->lver == 0 || r->generation == 0 ||
					 !r->address[0] || r->port == 0))
		return err_set(EBADMSG, "lease-owner record: incomplete master entry");
	if (!r->lockspace[0])
		return err_set(EBADMSG, "lease-owner record: no lockspace name");
	return 0;
}

/* The record occupies one sector of the area's sector size.  */
static int record_io(const struct lease_area *a, uint8_t **sec)
{
	*sec = lease_io_alloc(a->sector_size);
	if (!*sec)
		return err_set(ENOMEM, "out of memory");
	return 0;
}

int lease_record_write(const struct lease_area *a, const struct lease_record *r)
{
	struct lease_record copy = *r;
	uint8_t *sec;
	int rc;

	snprintf(copy.lockspace, sizeof(copy.lockspace), "%s", a->lockspace);
	rc = record_io(a, &sec);
	if (rc < 0)
		return rc;
	rc = lease_record_encode(&copy, lease_area_record_offset(a), sec);
	if (rc == 0)
		rc = lease_io_write(a->path, lease_area_record_offset(a), sec, a->sector_size);
	free(sec);
	return rc;
}

int lease_record_read(const struct lease_area *a, struct lease_record *r)
{
	uint8_t *sec;
	int rc = record_io(a, &sec);

	if (rc < 0)
		return rc;
	rc = lease_io_read(a->path, lease_area_record_offset(a), sec, a->sector_size);
	if (rc == 0)
		rc = lease_record_decode(sec, lease_area_record_offset(a), r);
	free(sec);
	if (rc == 0 && strcmp(r->lockspace, a->lockspace) != 0)
		rc = err_set(EBADMSG, "lease-owner record belongs to lockspace %s, not %s",
			     r->lockspace, a->lockspace);
	return rc;
}

int lease_record_clear(const struct lease_area *a)
{
	struct lease_record r;

	memset(&r, 0, sizeof(r));
	return lease_record_write(a, &r);
}
