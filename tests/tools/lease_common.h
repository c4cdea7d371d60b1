/*
 * tests/tools/lease_common.h - argument parsing shared by the lease test
 * tools: a lease area given explicitly (path, offset, align, sector size,
 * uuid), so the tools work on raw files before and without a superblock.
 */
#ifndef CSNAP_TESTS_LEASE_COMMON_H
#define CSNAP_TESTS_LEASE_COMMON_H

#include "lease/lease.h"
#include "utils/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Area from the environment: LEASE_PATH, LEASE_OFFSET (default 1 MiB),
 * LEASE_ALIGN (1 MiB), LEASE_SECTOR (512), LEASE_UUID.  */
static inline int area_from_env(struct lease_area *a)
{
	const char *path = getenv("LEASE_PATH"), *u = getenv("LEASE_UUID");
	const char *off = getenv("LEASE_OFFSET"), *al = getenv("LEASE_ALIGN");
	const char *sec = getenv("LEASE_SECTOR");
	struct csnap_uuid uuid;

	if (!path || !u || csnap_uuid_parse(u, &uuid) < 0) {
		fprintf(stderr, "set LEASE_PATH and LEASE_UUID (and LEASE_OFFSET/ALIGN/SECTOR)\n");
		return -1;
	}
	if (lease_area_setup(a, path, off ? strtoull(off, NULL, 0) : 1048576,
			     al ? (uint32_t)strtoul(al, NULL, 0) : 1048576,
			     sec ? (uint32_t)strtoul(sec, NULL, 0) : 512, &uuid) < 0) {
		fprintf(stderr, "lease area: %s\n", err_get());
		return -1;
	}
	return 0;
}

#endif
