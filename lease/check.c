/*
 * lease/check.c - lease_check_area(): is the lease area on disk intact?
 *
 * sanlock trusts only records whose magic and checksum verify, and a
 * damaged record silently drops out of everything that reads the area
 * (lease_hosts() skips it, a damaged master lease cannot be acquired).
 * This reads the whole area once and names each damaged record:
 *  - every delta lease sector (host_id 1..LEASE_MAX_HOSTS): a sanlock
 *    leader with the delta magic, a good checksum and our lockspace name
 *    (`lease init` writes all of them);
 *  - the master paxos lease: its leader (paxos magic, checksum, our
 *    lockspace, resource "master"), its request record (magic), and every
 *    host's dblock that was ever written (checksum over its first 48 bytes,
 *    sanlock's paxos_dblock.h; an all-zero dblock was never written);
 *  - the lease-owner record (its own crc32c and lockspace; empty is fine).
 * Consecutive delta sectors with the same fault make one line.
 */
#include "lease/lease_internal.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SANLOCK_REQUEST_MAGIC	0x08292011u

enum fault { LF_OK, LF_BLANK, LF_MAGIC, LF_CSUM, LF_SPACE, LF_NAME };

static const char *fault_text(enum fault f)
{
	switch (f) {
	case LF_BLANK: return "zeroed: no sanlock record (overwritten?)";
	case LF_MAGIC: return "not a sanlock record (wrong magic: overwritten?)";
	case LF_CSUM:  return "sanlock checksum mismatch (corrupted)";
	case LF_SPACE: return "names another lockspace";
	case LF_NAME:  return "names another resource";
	default:      return "ok";
	}
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static enum fault leader_fault(const uint8_t *sec, size_t len, uint32_t magic,
			       const char *space, const char *resource)
{
	struct sanlock_leader l;

	if (all_zero(sec, len))
		return LF_BLANK;
	if (get_le32(sec + LDR_MAGIC) != magic)
		return LF_MAGIC;
	if (lease_leader_decode(sec, &l) < 0)
		return LF_CSUM;
	if (strncmp(l.space_name, space, LEASE_NAME_LEN) != 0)
		return LF_SPACE;
	if (resource && strncmp(l.resource_name, resource, LEASE_NAME_LEN) != 0)
		return LF_NAME;
	return LF_OK;
}

static void say(void (*problem)(void *, const char *), void *arg, long *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void say(void (*problem)(void *, const char *), void *arg, long *n, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	problem(arg, msg);
	(*n)++;
}

long lease_check_area(const struct lease_area *a, void (*problem)(void *arg, const char *msg),
		 void *arg)
{
	size_t ss = a->sector_size, len = a->align;
	uint8_t *buf = lease_io_alloc(len);
	long n = 0;
	int rc;

	if (!buf)
		return err_set(ENOMEM, "out of memory");
	/* delta leases */
	uint64_t base = lease_area_lockspace_offset(a);
	rc = lease_io_read(a->path, base, buf, len);
	if (rc < 0)
		goto out;
	uint32_t hosts = LEASE_MAX_HOSTS;
	if ((size_t)hosts * ss > len)
		hosts = (uint32_t)(len / ss);
	if (all_zero(buf, (size_t)hosts * ss)) {
		say(problem, arg, &n, "lease area (offset %llu): never initialised: no lockspace "
		    "(run `csnap lease init`)", (unsigned long long)base);
		goto out;
	}
	for (uint32_t i = 0; i < hosts;) {
		enum fault f = leader_fault(buf + i * ss, ss, SANLOCK_DELTA_MAGIC, a->lockspace, NULL);
		uint32_t j = i + 1;
		if (f == LF_OK) {
			i = j;
			continue;
		}
		while (j < hosts &&
		       leader_fault(buf + j * ss, ss, SANLOCK_DELTA_MAGIC, a->lockspace, NULL) == f)
			j++;
		if (j == i + 1)
			say(problem, arg, &n, "lease area: delta lease of host_id %u (offset %llu): %s",
			    i + 1, (unsigned long long)(base + i * ss), fault_text(f));
		else
			say(problem, arg, &n, "lease area: delta leases of host_ids %u-%u (offset %llu, "
			    "%zu bytes): %s", i + 1, j, (unsigned long long)(base + i * ss),
			    (size_t)(j - i) * ss, fault_text(f));
		i = j;
	}
	/* the master paxos lease */
	base = lease_area_master_offset(a);
	rc = lease_io_read(a->path, base, buf, len);
	if (rc < 0)
		goto out;
	enum fault f = leader_fault(buf, ss, SANLOCK_PAXOS_MAGIC, a->lockspace, "master");
	if (f != LF_OK)
		say(problem, arg, &n, "lease area: master lease leader record (offset %llu): %s",
		    (unsigned long long)base, fault_text(f));
	if (get_le32(buf + ss) != SANLOCK_REQUEST_MAGIC)	/* its first field */
		say(problem, arg, &n, "lease area: master lease request record (offset %llu): %s",
		    (unsigned long long)(base + ss),
		    fault_text(all_zero(buf + ss, ss) ? LF_BLANK : LF_MAGIC));
	for (uint32_t i = 0; i < hosts && (i + 3) * ss <= len; i++) {
		const uint8_t *d = buf + (i + 2) * ss;
		if (all_zero(d, DBLOCK_CHECKSUM_LEN + 4))
			continue;	/* this host never bid for the lease */
		if (get_le32(d + DBLOCK_CHECKSUM_LEN) != ~csnap_crc32c(1, d, DBLOCK_CHECKSUM_LEN))
			say(problem, arg, &n, "lease area: master lease block of host_id %u "
			    "(offset %llu): %s", i + 1, (unsigned long long)(base + (i + 2) * ss),
			    fault_text(LF_CSUM));
	}
	/* the lease-owner record */
	struct lease_record r;
	if (lease_record_read(a, &r) < 0)
		say(problem, arg, &n, "lease area: lease-owner record (offset %llu): %s",
		    (unsigned long long)lease_area_record_offset(a), err_get());
	rc = 0;
out:
	free(buf);
	return rc < 0 ? rc : n;
}
