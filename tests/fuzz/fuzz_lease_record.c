/*
 * tests/fuzz/fuzz_lease_record.c - the lease-owner record (lease/record.c)
 * as read from the shared disk: any sector must decode or be refused, and
 * whatever decodes must encode again and decode to the same record.
 *
 * Input: the record sector.  By default the harness writes the right
 * crc32c into it (else nearly every input would stop at the checksum);
 * an input whose byte 12 (the low crc byte) is 0xff keeps its own.
 * Bytes after the sector describe sanlock's view of the master lease, fed
 * with the decoded record to the trust rule lease_validate().
 *
 * CSNAP_FUZZ_SEEDS=DIR writes seed inputs (an empty record, a master's
 * record, each with a matching sanlock view) and exits.
 */
#include "tests/fuzz/fuzz.h"

#include "lease/lease_internal.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <string.h>

#define OFFSET (2u << 20)	/* any offset: the record names its own */

static void make_seeds(const char *dir)
{
	struct lease_record r = { .lver = 3, .host_id = 2, .generation = 5, .epoch = 9,
				  .write_seq = 1, .port = 4000, .address = "127.0.0.12",
				  .lockspace = "csnap-0123456789abcdef0123456789abcdef" };
	uint8_t b[LEASE_RECORD_SIZE + 34];

	for (int i = 0; i < 2; i++) {
		if (i == 0)
			r.host_id = r.lver = r.generation = r.port = 0, r.address[0] = 0;
		else
			r.host_id = 2, r.lver = 3, r.generation = 5, r.port = 4000,
			strcpy(r.address, "127.0.0.12");
		if (lease_record_encode(&r, OFFSET, b) < 0)
			exit(1);
		/* the view: owned, lver, host_id, generation, state LIVE, host gen */
		memset(b + LEASE_RECORD_SIZE, 0, sizeof b - LEASE_RECORD_SIZE);
		b[LEASE_RECORD_SIZE] = 1;
		put_le64(b + LEASE_RECORD_SIZE + 1, 3);
		put_le64(b + LEASE_RECORD_SIZE + 9, 2);
		put_le64(b + LEASE_RECORD_SIZE + 17, 5);
		b[LEASE_RECORD_SIZE + 25] = LEASE_HOST_LIVE;
		put_le64(b + LEASE_RECORD_SIZE + 26, 5);
		fuzz_write_seed(dir, i, b, sizeof b);
	}
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup("fuzz_lease_record");
	if (getenv("CSNAP_FUZZ_SEEDS"))
		make_seeds(getenv("CSNAP_FUZZ_SEEDS"));
	return 0;
}

static bool same(const struct lease_record *a, const struct lease_record *b)
{
	return a->lver == b->lver && a->host_id == b->host_id &&
	       a->generation == b->generation && a->epoch == b->epoch &&
	       a->write_seq == b->write_seq && a->port == b->port &&
	       !strcmp(a->address, b->address) && !strcmp(a->lockspace, b->lockspace);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t sec[LEASE_RECORD_SIZE] = { 0 }, again[LEASE_RECORD_SIZE];
	struct lease_record r, r2;
	uint64_t off = OFFSET;
	int rc;

	memcpy(sec, data, size < sizeof sec ? size : sizeof sec);
	if (size > 16 && !(sec[8] & 0x80))	/* mostly: found where it says it lives */
		off = get_le64(sec + R_OFFSET);
	if (sec[R_CSUM] != 0xff) {
		uint8_t tmp[LEASE_RECORD_SIZE];

		memcpy(tmp, sec, sizeof tmp);
		put_le32(tmp + R_CSUM, 0);
		put_le32(sec + R_CSUM, crc32c(0, tmp, sizeof tmp));
	}
	rc = lease_record_decode(sec, off, &r);
	if (size > sizeof sec) {
		struct fuzz_in in = { data + sizeof sec, size - sizeof sec };
		struct lease_owner_view v;
		char why[160];
		enum lease_master_state st;

		v.owned = fuzz_u8(&in) & 1;
		v.lver = fuzz_u64(&in);
		v.host_id = fuzz_u64(&in);
		v.generation = fuzz_u64(&in);
		v.host_state = (enum lease_host_state)(fuzz_u8(&in) % 8);
		v.host_generation = fuzz_u64(&in);
		memset(why, 'x', sizeof why);
		st = lease_validate(&r, rc, &v, why, sizeof why);
		FUZZ_CHECK(memchr(why, 0, sizeof why), "why not terminated");
		FUZZ_CHECK(st != LEASE_MASTER_VALID || (rc == 0 && r.host_id == v.host_id &&
							r.lver == v.lver && v.owned &&
							r.generation == v.generation),
			   "an unproven record was trusted");
	}
	if (rc < 0)
		return 0;
	FUZZ_CHECK(strlen(r.address) < sizeof r.address && strlen(r.lockspace) < sizeof r.lockspace,
		   "decoded strings unterminated");
	FUZZ_CHECK(lease_record_encode(&r, off, again) == 0, "decoded record does not encode: %s",
		   err_get());
	FUZZ_CHECK(lease_record_decode(again, off, &r2) == 0, "re-encoded record refused: %s",
		   err_get());
	FUZZ_CHECK(same(&r, &r2), "record changed in a round trip");
	return 0;
}
