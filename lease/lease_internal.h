/*
 * lease/lease_internal.h - helpers shared by the files of lease/ only:
 * sector I/O with O_DIRECT, sanlock struct setup, and reading sanlock's
 * own on-disk leader records (to name hosts and to refuse re-initialising
 * leases in use).  Not part of the public API.
 */
#ifndef CSNAP_LEASE_INTERNAL_H
#define CSNAP_LEASE_INTERNAL_H

#include "lease/lease.h"

#include <sanlock.h>
#include <stdint.h>

/* Reads/writes LEN bytes at OFF with O_DIRECT (BUF aligned to 4096, LEN and
 * OFF multiples of the sector size).  Writes are O_DSYNC.  */
int lease_io_read(const char *path, uint64_t off, void *buf, size_t len);
int lease_io_write(const char *path, uint64_t off, const void *buf, size_t len);
/* Size of a file or block device.  */
int lease_io_size(const char *path, uint64_t *size);
/* 4096-aligned, zeroed buffer, or NULL.  */
void *lease_io_alloc(size_t len);

/* Fill sanlock structs for the area.  RES must have room for one disk.  */
void lease_fill_lockspace(const struct lease_area *a, uint32_t host_id,
			  struct sanlk_lockspace *ls);
void lease_fill_master(const struct lease_area *a, struct sanlk_resource *res);
uint32_t lease_sanlock_size_flags(const struct lease_area *a);

/* Checks the daemon named by $SANLOCK_RUN_DIR answers.  */
int lease_daemon_check(void);

/* sanlock's leader record (sanlock's leader.h, on-disk, little-endian).  */
#define SANLOCK_DELTA_MAGIC	0x12212010u
#define SANLOCK_PAXOS_MAGIC	0x06152010u
#define SANLOCK_LEADER_CSUM_LEN	168	/* bytes covered by the checksum */

struct sanlock_leader {
	uint32_t magic;
	uint32_t version;
	uint32_t sector_size;
	uint64_t max_hosts;
	uint64_t owner_id;
	uint64_t owner_generation;
	uint64_t lver;
	char space_name[LEASE_NAME_LEN + 1];
	char resource_name[LEASE_NAME_LEN + 1];
	uint64_t timestamp;
	uint32_t io_timeout;
};

/* Decodes one sector.  -EBADMSG if not a leader record with a good
 * checksum.  */
int lease_leader_decode(const uint8_t *sec, struct sanlock_leader *l);
/* sanlock's checksum of a leader record (its crc32c variant).  */
uint32_t lease_leader_checksum(const uint8_t *sec);

#endif
