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
/* Our place in line for a freed master lease (lease/turn.c): how many
 * live hosts in HS come before host ME in host_id order after LAST_OWNER.  */
int lease_turn_rank(uint32_t me, uint64_t last_owner, const struct sanlk_host *hs, int n);
/* The master lease as the disk shows it: released (leader timestamp 0,
 * or the owner's dblock flagged released for the leader's version).  */
struct lease_free_disk {
	bool released;
	uint64_t lver, owner_id, owner_generation;
};
int lease_master_free_disk(const struct lease_area *a, struct lease_free_disk *f);
uint32_t lease_sanlock_size_flags(const struct lease_area *a);

/* Checks the daemon named by $SANLOCK_RUN_DIR answers.  */
int lease_daemon_check(void);

/* The lease-owner record (lease/record.c), LEASE_RECORD_SIZE bytes,
 * little-endian, the rest zero.  */
enum {
	R_MAGIC = 0,		/* le64 LEASE_RECORD_MAGIC */
	R_VERSION = 8,		/* le32 LEASE_RECORD_VERSION */
	R_CSUM = 12,		/* le32 crc32c of the record with this field 0 */
	R_OFFSET = 16,		/* le64 where it lives */
	R_LVER = 24,		/* le64 */
	R_HOST = 32,		/* le64 host_id */
	R_GEN = 40,		/* le64 generation */
	R_EPOCH = 48,		/* le64 */
	R_SEQ = 56,		/* le64 write_seq */
	R_PORT = 64,		/* le16 */
	R_ZERO = 66,		/* le16 + le32, zero */
	R_ADDR = 72,		/* char[LEASE_ADDR_LEN] NUL-padded, NUL-terminated */
	R_LS = 136,		/* char[LEASE_NAME_LEN] lockspace, likewise */
	R_END = R_LS + LEASE_NAME_LEN,
};

/* sanlock's leader record (sanlock's leader.h struct leader_record,
 * on-disk, little-endian): the first sector of each delta lease and of a
 * paxos lease.  sanlock writes it; lease_leader_decode() reads it and
 * lease_leader_encode() (tests, tools) writes the fields we model.  */
#define SANLOCK_DELTA_MAGIC	0x12212010u
#define SANLOCK_PAXOS_MAGIC	0x06152010u
enum {
	LDR_MAGIC = 0,		/* le32 SANLOCK_DELTA_MAGIC / SANLOCK_PAXOS_MAGIC */
	LDR_VERSION = 4,	/* le32 */
	LDR_FLAGS = 8,		/* le32 */
	LDR_SECTOR_SIZE = 12,	/* le32 */
	LDR_NUM_HOSTS = 16,	/* le64 */
	LDR_MAX_HOSTS = 24,	/* le64 */
	LDR_OWNER_ID = 32,	/* le64 host_id of the owner */
	LDR_OWNER_GEN = 40,	/* le64 its generation (0: never joined) */
	LDR_LVER = 48,		/* le64 lease version */
	LDR_SPACE_NAME = 56,	/* char[LEASE_NAME_LEN] lockspace */
	LDR_RESOURCE_NAME = 104,	/* char[LEASE_NAME_LEN] resource / host name */
	LDR_TIMESTAMP = 152,	/* le64 last renewal, monotonic seconds; 0: free */
	LDR_CSUM = 168,		/* le32 sanlock's crc32c of bytes [0, LDR_CSUM) */
	LDR_IO_TIMEOUT = 174,	/* le16 seconds */
	LDR_WRITE_ID = 176,	/* le64 host_id that wrote the record (not
				 * checksummed: information only) */
};
#define SANLOCK_LEADER_CSUM_LEN	LDR_CSUM	/* bytes covered by the checksum */

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
	uint64_t write_id;
};

/* sanlock's paxos "dblock" (paxos_dblock.h): one sector per host after
 * the master lease's leader and request records (host_id N at sector
 * N + 1), its ballot state.  A host that releases the lease while the
 * leader record was last written by another host (two standbys ran the
 * same ballot) cannot clear the leader; it sets DBLOCK_FL_RELEASED in its
 * own dblock instead, and the lease is free.  */
enum {
	DBL_LVER = 40,		/* le64 lease version of the ballot */
	DBL_CSUM = 48,		/* le32 checksum of bytes [0, DBL_CSUM) */
	DBL_FLAGS = 52,		/* le32 DBLOCK_FL_* (not checksummed) */
};
#define DBLOCK_CHECKSUM_LEN	DBL_CSUM
#define DBLOCK_FL_RELEASED	0x1u

/* Decodes one sector.  -EBADMSG if not a leader record with a good
 * checksum.  */
int lease_leader_decode(const uint8_t *sec, struct sanlock_leader *l);
/* Writes L's fields into the leader record SEC (bytes we do not model
 * are left as they are) and seals it with sanlock's checksum:
 * decode(encode(l)) == l.  */
void lease_leader_encode(const struct sanlock_leader *l, uint8_t *sec);
/* Reads and decodes the master paxos lease's leader record; -EBADMSG if
 * it is not one with a good checksum.  */
int lease_master_leader_read(const struct lease_area *a, struct sanlock_leader *l);
/* sanlock's checksum of a leader record (its crc32c variant).  */
uint32_t lease_leader_checksum(const uint8_t *sec);

#endif
