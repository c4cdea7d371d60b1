/*
 * tests/unit/test_lease.c - lease/ without a sanlock daemon: area geometry,
 * the lease-owner record's encoding and every way a record is rejected, the
 * trust rules of lease_validate(), the mapping of every sanlock return code,
 * sanlock's leader checksum (against leases libsanlock itself writes, which
 * also proves our crc32c does not interpose libsanlock's), lease_init's
 * refusal to overwrite leases in use, and the fencing/commit rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lease/lease.h"
#include "lease/lease_internal.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <fcntl.h>
#include <sanlock_admin.h>
#include <sanlock_rv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

static struct csnap_uuid test_uuid(void)
{
	struct csnap_uuid u;

	assert_int_equal(csnap_uuid_parse("0123abcd-4567-89ef-0123-456789abcdef", &u), 0);
	return u;
}

static void test_area_geometry(void **state)
{
	struct csnap_uuid u = test_uuid(), null;
	struct lease_area a;
	(void)state;

	assert_int_equal(lease_area_setup(&a, "/dev/x", MiB, MiB, 512, &u), 0);
	assert_string_equal(a.lockspace, "csnap-0123abcd456789ef0123456789abcdef");
	assert_true(strlen(a.lockspace) <= LEASE_NAME_LEN);
	assert_int_equal(lease_area_lockspace_offset(&a), MiB);
	assert_int_equal(lease_area_master_offset(&a), 2 * MiB);
	assert_int_equal(lease_area_record_offset(&a), 3 * MiB);
	for (uint32_t al = MiB; al <= 8 * MiB; al *= 2)
		assert_int_equal(lease_area_setup(&a, "/dev/x", 8 * MiB, al, 4096, &u), 0);
	assert_int_equal(lease_area_record_offset(&a), 8 * MiB + 16 * MiB);
	assert_int_equal(lease_area_setup(&a, "/dev/x", MiB, 2 * MiB, 512, &u), -EINVAL);
	assert_int_equal(lease_area_setup(&a, "/dev/x", MiB, MiB, 1024, &u), -EINVAL);
	assert_int_equal(lease_area_setup(&a, "/dev/x", MiB, 3 * MiB, 4096, &u), -EINVAL);
	assert_int_equal(lease_area_setup(&a, "/dev/x", MiB + 512, MiB, 512, &u), -EINVAL);
	assert_non_null(strstr(err_get(), "multiple"));
	assert_int_equal(lease_area_setup(&a, "", MiB, MiB, 512, &u), -EINVAL);
	memset(&null, 0, sizeof(null));
	assert_int_equal(lease_area_setup(&a, "/dev/x", MiB, MiB, 512, &null), -EINVAL);
}

static struct lease_record master_record(void)
{
	struct lease_record r;

	memset(&r, 0, sizeof(r));
	r.lver = 7;
	r.host_id = 3;
	r.generation = 2;
	r.epoch = 99;
	r.write_seq = 5;
	r.port = 40123;
	strcpy(r.address, "127.0.0.13");
	strcpy(r.lockspace, "csnap-0123abcd456789ef0123456789abcdef");
	return r;
}

static void test_record_roundtrip(void **state)
{
	struct lease_record r = master_record(), back;
	uint8_t buf[LEASE_RECORD_SIZE];
	(void)state;

	assert_int_equal(lease_record_encode(&r, 3 * MiB, buf), 0);
	assert_int_equal(get_le64(buf), LEASE_RECORD_MAGIC);
	assert_int_equal(lease_record_decode(buf, 3 * MiB, &back), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	assert_false(lease_record_is_empty(&back));

	memset(&r, 0, sizeof(r));
	strcpy(r.lockspace, "csnap-x");
	assert_int_equal(lease_record_encode(&r, 0, buf), 0);
	assert_int_equal(lease_record_decode(buf, 0, &back), 0);
	assert_true(lease_record_is_empty(&back));
}

static void reseal(uint8_t *buf)
{
	put_le32(buf + 12, 0);
	put_le32(buf + 12, crc32c(0, buf, LEASE_RECORD_SIZE));
}

static void test_record_rejects(void **state)
{
	struct lease_record r = master_record(), back;
	uint8_t good[LEASE_RECORD_SIZE], buf[LEASE_RECORD_SIZE];
	(void)state;

	assert_int_equal(lease_record_encode(&r, 4096, good), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(lease_record_decode(buf, 4096, &back), -ENODATA);
	assert_non_null(strstr(err_get(), "lease init"));
	/* Any flipped bit anywhere: checksum (or magic) catches it.  */
	for (size_t i = 0; i < LEASE_RECORD_SIZE; i += 7) {
		memcpy(buf, good, sizeof(buf));
		buf[i] ^= 0x10;
		assert_int_equal(lease_record_decode(buf, 4096, &back), -EBADMSG);
	}
	memcpy(buf, good, sizeof(buf));
	assert_int_equal(lease_record_decode(buf, 8192, &back), -EIO);	/* misdirected */
	assert_non_null(strstr(err_get(), "misdirected"));
	memcpy(buf, good, sizeof(buf));
	put_le32(buf + 8, 2);
	reseal(buf);
	assert_int_equal(lease_record_decode(buf, 4096, &back), -EBADMSG);	/* version */
	memcpy(buf, good, sizeof(buf));
	buf[300] = 1;
	reseal(buf);
	assert_int_equal(lease_record_decode(buf, 4096, &back), -EBADMSG);	/* reserved */
	memcpy(buf, good, sizeof(buf));
	memset(buf + 72, 'a', LEASE_ADDR_LEN);
	reseal(buf);
	assert_int_equal(lease_record_decode(buf, 4096, &back), -EBADMSG);	/* unterminated */
	memcpy(buf, good, sizeof(buf));
	put_le64(buf + 32, 2001);
	reseal(buf);
	assert_int_equal(lease_record_decode(buf, 4096, &back), -EBADMSG);	/* host_id */
	memcpy(buf, good, sizeof(buf));
	put_le16(buf + 64, 0);
	reseal(buf);
	assert_int_equal(lease_record_decode(buf, 4096, &back), -EBADMSG);	/* no port */
	memcpy(buf, good, sizeof(buf));
	put_le64(buf + 24, 0);
	reseal(buf);
	assert_int_equal(lease_record_decode(buf, 4096, &back), -EBADMSG);	/* no lver */
	memcpy(buf, good, sizeof(buf));
	memset(buf + 136, 0, LEASE_NAME_LEN);
	reseal(buf);
	assert_int_equal(lease_record_decode(buf, 4096, &back), -EBADMSG);	/* no lockspace */

	/* Encoder refuses what the decoder would refuse.  */
	r.port = 0;
	assert_int_equal(lease_record_encode(&r, 0, buf), -EINVAL);
	r = master_record();
	memset(r.address, 'a', sizeof(r.address));
	assert_int_equal(lease_record_encode(&r, 0, buf), -EINVAL);
	r = master_record();
	r.host_id = 2001;
	assert_int_equal(lease_record_encode(&r, 0, buf), -EINVAL);
	r = master_record();
	r.lockspace[0] = 0;
	assert_int_equal(lease_record_encode(&r, 0, buf), -EINVAL);
}

static char tmpfile_path[128];

static int make_file(uint64_t size)
{
	int fd;

	snprintf(tmpfile_path, sizeof(tmpfile_path), "/var/tmp/lease-unit.XXXXXX");
	fd = mkstemp(tmpfile_path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
	return 0;
}

static void test_record_io(void **state)
{
	struct csnap_uuid u = test_uuid();
	struct lease_record r = master_record(), back;
	struct lease_area a, other;
	(void)state;

	make_file(4 * MiB);
	assert_int_equal(lease_area_setup(&a, tmpfile_path, MiB, MiB, 512, &u), 0);
	assert_int_equal(lease_record_read(&a, &back), -ENODATA);
	assert_int_equal(lease_record_write(&a, &r), 0);
	assert_int_equal(lease_record_read(&a, &back), 0);
	assert_int_equal(back.lver, 7);
	assert_string_equal(back.address, "127.0.0.13");
	/* Same offsets, another store: never read as ours.  */
	u.b[0] ^= 1;
	assert_int_equal(lease_area_setup(&other, tmpfile_path, MiB, MiB, 512, &u), 0);
	assert_int_equal(lease_record_read(&other, &back), -EBADMSG);
	assert_non_null(strstr(err_get(), "belongs to lockspace"));
	assert_int_equal(lease_record_clear(&a), 0);
	assert_int_equal(lease_record_read(&a, &back), 0);
	assert_true(lease_record_is_empty(&back));
	unlink(tmpfile_path);
}

struct vcase {
	const char *name;
	struct lease_owner_view v;
	int rec_rc;
	uint64_t rec_lver, rec_host, rec_gen;
	enum lease_master_state want;
	const char *why;
};

static void test_validate_rules(void **state)
{
	const struct lease_owner_view live = { true, 7, 3, 2, LEASE_HOST_LIVE, 2 };
	const struct vcase cases[] = {
		{ "match", live, 0, 7, 3, 2, LEASE_MASTER_VALID, "matches" },
		{ "free", { false, 7, 0, 0, LEASE_HOST_LIVE, 0 }, 0, 7, 3, 2, LEASE_MASTER_NONE, "free" },
		{ "stale lver", live, 0, 6, 3, 2, LEASE_MASTER_CHANGING, "stale" },
		{ "future lver", live, 0, 8, 3, 2, LEASE_MASTER_CHANGING, "unconfirmed" },
		{ "other host", live, 0, 7, 4, 2, LEASE_MASTER_CHANGING, "names host_id 4" },
		{ "other gen", live, 0, 7, 3, 1, LEASE_MASTER_CHANGING, "generation 1" },
		{ "empty", live, 0, 0, 0, 0, LEASE_MASTER_CHANGING, "not published" },
		{ "unreadable", live, -EBADMSG, 7, 3, 2, LEASE_MASTER_CHANGING, "unreadable" },
		{ "failing", { true, 7, 3, 2, LEASE_HOST_FAIL, 2 }, 0, 7, 3, 2,
		  LEASE_MASTER_CHANGING, "failing" },
		{ "unknown", { true, 7, 3, 2, LEASE_HOST_UNKNOWN, 2 }, 0, 7, 3, 2,
		  LEASE_MASTER_CHANGING, "unknown" },
		{ "dead", { true, 7, 3, 2, LEASE_HOST_DEAD, 2 }, 0, 7, 3, 2,
		  LEASE_MASTER_NONE, "dead" },
		{ "left", { true, 7, 3, 2, LEASE_HOST_FREE, 2 }, 0, 7, 3, 2,
		  LEASE_MASTER_NONE, "free" },
		{ "restarted", { true, 7, 3, 2, LEASE_HOST_LIVE, 3 }, 0, 7, 3, 2,
		  LEASE_MASTER_NONE, "restarted" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lease_record r = master_record();
		char why[160];

		r.lver = cases[i].rec_lver;
		r.host_id = cases[i].rec_host;
		r.generation = cases[i].rec_gen;
		if (cases[i].rec_rc < 0)
			memset(&r, 0, sizeof(r));
		enum lease_master_state got = lease_validate(&r, cases[i].rec_rc, &cases[i].v,
							     why, sizeof(why));
		if (got != cases[i].want || !strstr(why, cases[i].why))
			fail_msg("case %s: state %d (%s), want %d with '%s'", cases[i].name, got,
				 why, cases[i].want, cases[i].why);
	}
	assert_string_equal(lease_master_state_name(LEASE_MASTER_CHANGING), "master changing");
}

static void test_sanlock_errors(void **state)
{
	static const int all[] = {
		SANLK_ERROR, SANLK_AIO_TIMEOUT, SANLK_WD_ERROR, SANLK_DBLOCK_READ,
		SANLK_DBLOCK_WRITE, SANLK_DBLOCK_LVER, SANLK_DBLOCK_MBAL, SANLK_DBLOCK_CHECKSUM,
		SANLK_LEADER_READ, SANLK_LEADER_WRITE, SANLK_LEADER_DIFF, SANLK_LEADER_MAGIC,
		SANLK_LEADER_VERSION, SANLK_LEADER_SECTORSIZE, SANLK_LEADER_LOCKSPACE,
		SANLK_LEADER_RESOURCE, SANLK_LEADER_NUMHOSTS, SANLK_LEADER_CHECKSUM,
		SANLK_ADDLS_SIZES, SANLK_ADDLS_INVALID_HOSTID, SANLK_ACQUIRE_LVER,
		SANLK_ACQUIRE_LOCKSPACE, SANLK_ACQUIRE_IDDISK, SANLK_ACQUIRE_IDLIVE,
		SANLK_ACQUIRE_OWNED, SANLK_ACQUIRE_OTHER, SANLK_ACQUIRE_SHRETRY,
		SANLK_ACQUIRE_OWNED_RETRY, SANLK_RELEASE_LVER, SANLK_RELEASE_OWNER,
		SANLK_RENEW_OWNER, SANLK_RENEW_DIFF, SANLK_HOSTID_BUSY, SANLK_REQUEST_MAGIC,
		SANLK_REQUEST_VERSION, SANLK_REQUEST_OLD, SANLK_REQUEST_LVER, SANLK_RINDEX_MAGIC,
		SANLK_RINDEX_VERSION, SANLK_RINDEX_LOCKSPACE, SANLK_RINDEX_OFFSET,
		SANLK_RINDEX_DIFF,
		-ECONNREFUSED, -EEXIST, -EINPROGRESS, -ENOENT, -EAGAIN, -EBUSY, -ETIMEDOUT,
		-ENOSPC, -EPERM, -EACCES, -EINVAL, -ENOMEM,
	};
	char buf[32];
	(void)state;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *msg = lease_sanlock_strerror(all[i]);
		int e = lease_sanlock_error(all[i], "doing it");

		if (strstr(msg, "unknown"))
			fail_msg("sanlock code %d has no message", all[i]);
		assert_true(e < 0);
		snprintf(buf, sizeof(buf), "(sanlock %d)", all[i]);
		assert_non_null(strstr(err_get(), buf));
		assert_non_null(strstr(err_get(), "doing it: "));
		assert_non_null(strstr(err_get(), msg));
	}
	/* The ones callers branch on.  */
	assert_int_equal(lease_sanlock_error(SANLK_ACQUIRE_IDLIVE, "x"), -EBUSY);
	assert_int_equal(lease_sanlock_error(SANLK_ACQUIRE_OWNED_RETRY, "x"), -EAGAIN);
	assert_int_equal(lease_sanlock_error(SANLK_HOSTID_BUSY, "x"), -EADDRINUSE);
	assert_non_null(strstr(err_get(), "own host_id"));
	assert_int_equal(lease_sanlock_error(SANLK_ACQUIRE_LOCKSPACE, "x"), -ENOTCONN);
	assert_int_equal(lease_sanlock_error(SANLK_RELEASE_OWNER, "x"), -ENOLCK);
	assert_int_equal(lease_sanlock_error(SANLK_LEADER_MAGIC, "x"), -EBADMSG);
	/* Unknown codes: EIO, plain errno values pass through.  */
	assert_int_equal(lease_sanlock_error(-299, "x"), -EIO);
	assert_string_equal(lease_sanlock_strerror(-299), "unknown sanlock error");
	assert_int_equal(lease_sanlock_error(-ENOTDIR, "x"), -ENOTDIR);
}

/* Sets the u64 field MEMBER (offsetof in struct sanlock_leader) of the
 * sanlock leader sector at OFF, resealed with sanlock's checksum.  */
#define forge(off, member, v) forge_at(off, offsetof(struct sanlock_leader, member), v)
static void forge_at(uint64_t off, size_t member, uint64_t v)
{
	uint8_t *sec = lease_io_alloc(512);
	struct sanlock_leader l;

	assert_int_equal(lease_io_read(tmpfile_path, off, sec, 512), 0);
	assert_int_equal(lease_leader_decode(sec, &l), 0);
	memcpy((char *)&l + member, &v, sizeof v);
	lease_leader_encode(&l, sec);
	assert_int_equal(lease_io_write(tmpfile_path, off, sec, 512), 0);
	free(sec);
}

static void test_init_and_leaders(void **state)
{
	struct csnap_uuid u = test_uuid();
	struct lease_area a;
	struct sanlock_leader l;
	struct lease_host *hosts;
	struct lease_record r;
	uint8_t *sec = lease_io_alloc(512);
	int n;
	(void)state;

	make_file(4 * MiB - 512);
	assert_int_equal(lease_area_setup(&a, tmpfile_path, MiB, MiB, 512, &u), 0);
	assert_int_equal(lease_init(&a, 1, false), -ENOSPC);	/* needs 1 + 3 MiB */
	assert_int_equal(truncate(tmpfile_path, 4 * MiB), 0);
	assert_int_equal(lease_init(&a, 0, false), -EINVAL);
	assert_int_equal(lease_init(&a, 1, false), 0);

	/* libsanlock wrote these: our decoder must verify its checksums.  */
	assert_int_equal(lease_io_read(tmpfile_path, MiB, sec, 512), 0);
	assert_int_equal(lease_leader_decode(sec, &l), 0);
	assert_int_equal(l.magic, SANLOCK_DELTA_MAGIC);
	assert_string_equal(l.space_name, a.lockspace);
	assert_int_equal(l.io_timeout, 1);
	assert_int_equal(l.timestamp, 0);
	sec[100] ^= 1;
	assert_int_equal(lease_leader_decode(sec, &l), -EBADMSG);
	assert_int_equal(lease_io_read(tmpfile_path, 2 * MiB, sec, 512), 0);
	assert_int_equal(lease_leader_decode(sec, &l), 0);
	assert_int_equal(l.magic, SANLOCK_PAXOS_MAGIC);
	assert_string_equal(l.resource_name, "master");
	assert_int_equal(lease_record_read(&a, &r), 0);
	assert_true(lease_record_is_empty(&r));

	/* A host whose delta lease is held: init refuses, hosts lists it.  */
	assert_int_equal(lease_io_read(tmpfile_path, MiB + 4 * 512, sec, 512), 0);
	assert_int_equal(lease_leader_decode(sec, &l), 0);
	l.owner_generation = 1;
	strcpy(l.resource_name, "nodeE");	/* host name */
	lease_leader_encode(&l, sec);
	/* the encoder writes sanlock's layout: pinned at its byte offsets */
	assert_int_equal(get_le64(sec + 40), 1);
	assert_memory_equal(sec + 104, "nodeE", 6);
	assert_int_equal(get_le32(sec + 168), lease_leader_checksum(sec));
	assert_int_equal(lease_io_write(tmpfile_path, MiB + 4 * 512, sec, 512), 0);
	forge(MiB + 4 * 512, timestamp, 1234);	/* timestamp */
	assert_int_equal(lease_hosts(&a, &hosts, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(hosts[0].host_id, 5);
	assert_string_equal(hosts[0].name, "nodeE");
	assert_int_equal(hosts[0].state, LEASE_HOST_NOT_JOINED);	/* no daemon here */
	free(hosts);
	assert_int_equal(lease_init(&a, 1, false), -EBUSY);
	assert_non_null(strstr(err_get(), "host_id 5 (nodeE)"));
	forge(MiB + 4 * 512, timestamp, 0);
	assert_int_equal(lease_hosts(&a, &hosts, &n), 0);
	assert_int_equal(hosts[0].state, LEASE_HOST_FREE);
	free(hosts);

	/* A held master lease: refused too; --force overrides.  */
	forge(2 * MiB, owner_id, 3);		/* owner_id */
	forge(2 * MiB, timestamp, 77);
	assert_int_equal(lease_init(&a, 1, false), -EBUSY);
	assert_non_null(strstr(err_get(), "master lease"));
	assert_int_equal(lease_init(&a, 1, true), 0);
	assert_int_equal(lease_init(&a, 1, false), 0);	/* freshly written: unused */
	free(sec);
	unlink(tmpfile_path);
}

static void test_no_daemon(void **state)
{
	struct csnap_uuid u = test_uuid();
	struct lease_area a;
	struct lease_master m;
	struct lease_master_info mi;
	(void)state;

	assert_int_equal(lease_area_setup(&a, "/nonexistent", MiB, MiB, 512, &u), 0);
	assert_int_equal(lease_join_start(&a, 1, 1), -ENOTCONN);
	assert_non_null(strstr(err_get(), "sanlock daemon"));
	assert_int_equal(lease_find_master(&a, &mi), -ENOTCONN);
	assert_int_equal(lease_master_open(&m, &a, 1, SIGUSR1), -ENOTCONN);
}

static int64_t mono_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Last: fencing is irreversible for the process.  */
/* When a standby asks sanlock: at once when its turn for a freed lease
 * has come (rank x turn after it first saw that version freed), once a
 * second while a live host holds it, at every poll otherwise.  */
static void test_turn_ask(void **state)
{
	(void)state;
	struct lease_turns w = { 0 };
	struct lease_turn held = { .owner_live = true, .lver = 7, .rank = 1 };
	struct lease_turn freed = { .takeable = true, .lver = 7, .rank = 1 };
	struct lease_turn failing = { .lver = 7, .rank = 1 };

	/* held by a live host: the first poll asks, then once a second */
	assert_true(lease_turn_ask(&w, &held, 1000, 250, 1000));
	assert_false(lease_turn_ask(&w, &held, 1050, 250, 1000));
	assert_false(lease_turn_ask(&w, &held, 1999, 250, 1000));
	assert_true(lease_turn_ask(&w, &held, 2000, 250, 1000));
	/* freed: rank 1 waits one turn from when it first saw it */
	assert_false(lease_turn_ask(&w, &freed, 2100, 250, 1000));
	assert_false(lease_turn_ask(&w, &freed, 2349, 250, 1000));
	assert_true(lease_turn_ask(&w, &freed, 2350, 250, 1000));
	/* rank 0 asks at once */
	freed.rank = 0;
	freed.lver = 8;
	assert_true(lease_turn_ask(&w, &freed, 2400, 250, 1000));
	/* a new freed version starts a new wait */
	freed.rank = 2;
	freed.lver = 9;
	assert_false(lease_turn_ask(&w, &freed, 3000, 250, 1000));
	assert_false(lease_turn_ask(&w, &freed, 3499, 250, 1000));
	assert_true(lease_turn_ask(&w, &freed, 3500, 250, 1000));
	/* the owner failing or unknown, or nothing could be read: every poll */
	assert_true(lease_turn_ask(&w, &failing, 3550, 250, 1000));
	assert_true(lease_turn_ask(&w, &failing, 3560, 250, 1000));
	assert_true(lease_turn_ask(&w, NULL, 3570, 250, 1000));
	/* held again: counted from the last ask */
	assert_false(lease_turn_ask(&w, &held, 4000, 250, 1000));
	assert_true(lease_turn_ask(&w, &held, 4570, 250, 1000));
}

/* Writes sector SEC of the master lease (0 leader, 1 request, N+1 host
 * N's dblock).  */
static void put_master_sector(const struct lease_area *a, uint64_t sec, const uint8_t *buf)
{
	int fd = open(a->path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, 512, (off_t)(lease_area_master_offset(a) + sec * 512)), 512);
	close(fd);
}

static void put_dblock(const struct lease_area *a, uint64_t host, uint64_t lver, uint32_t flags)
{
	uint8_t d[512];

	memset(d, 0, sizeof d);
	put_le64(d, 4003);			/* mbal */
	put_le64(d + DBL_LVER, lver);
	put_le32(d + DBL_CSUM, ~crc32c(1, d, DBLOCK_CHECKSUM_LEN));
	put_le32(d + DBL_FLAGS, flags);
	put_master_sector(a, host + 1, d);
}

/* Whether the master lease looks free on disk: a released leader, or a
 * leader still naming an owner that released through its own dblock
 * (what sanlock does when another host wrote the leader, e.g. after two
 * standbys ran the same ballot: the soak's first master change hung on
 * this when it was not recognised).  */
static void test_free_on_disk(void **state)
{
	struct csnap_uuid u = test_uuid();
	struct lease_area a;
	struct lease_free_disk f;
	struct sanlock_leader l;
	uint8_t sec[512];
	(void)state;

	make_file(4 * MiB);
	assert_int_equal(lease_area_setup(&a, tmpfile_path, MiB, MiB, 512, &u), 0);
	assert_int_equal(lease_master_free_disk(&a, &f), -EBADMSG);	/* no leader yet */

	memset(&l, 0, sizeof l);
	l.magic = SANLOCK_PAXOS_MAGIC;
	l.version = 0x00060001;
	l.sector_size = 512;
	l.max_hosts = LEASE_MAX_HOSTS;
	l.owner_id = 1;
	l.owner_generation = 1;
	l.lver = 5;
	snprintf(l.space_name, sizeof l.space_name, "%s", a.lockspace);
	snprintf(l.resource_name, sizeof l.resource_name, "master");
	l.timestamp = 994;
	l.write_id = 3;			/* host 3 committed host 1 as owner */
	memset(sec, 0, sizeof sec);
	lease_leader_encode(&l, sec);
	put_master_sector(&a, 0, sec);
	assert_int_equal(lease_master_free_disk(&a, &f), 0);
	assert_false(f.released);
	assert_int_equal(f.lver, 5);
	assert_int_equal(f.owner_id, 1);

	put_dblock(&a, 1, 5, 0);		/* owner's ballot, not released */
	assert_int_equal(lease_master_free_disk(&a, &f), 0);
	assert_false(f.released);
	put_dblock(&a, 1, 4, DBLOCK_FL_RELEASED);	/* released an older version */
	assert_int_equal(lease_master_free_disk(&a, &f), 0);
	assert_false(f.released);
	put_dblock(&a, 1, 5, DBLOCK_FL_RELEASED);
	assert_int_equal(lease_master_free_disk(&a, &f), 0);
	assert_true(f.released);

	/* a damaged dblock is not taken as a release */
	sec[0] = 0;
	int fd = open(a.path, O_RDWR);
	assert_int_equal(pread(fd, sec, 512, (off_t)(lease_area_master_offset(&a) + 2 * 512)), 512);
	sec[0] ^= 1;
	assert_int_equal(pwrite(fd, sec, 512, (off_t)(lease_area_master_offset(&a) + 2 * 512)), 512);
	close(fd);
	assert_int_equal(lease_master_free_disk(&a, &f), 0);
	assert_false(f.released);

	/* the owner wrote the leader itself: it clears the leader to release */
	put_dblock(&a, 1, 5, DBLOCK_FL_RELEASED);
	l.write_id = 1;
	lease_leader_encode(&l, sec);
	put_master_sector(&a, 0, sec);
	assert_int_equal(lease_master_free_disk(&a, &f), 0);
	assert_false(f.released);
	l.timestamp = 0;
	lease_leader_encode(&l, sec);
	put_master_sector(&a, 0, sec);
	assert_int_equal(lease_master_free_disk(&a, &f), 0);
	assert_true(f.released);
	unlink(tmpfile_path);
}

/* The order in which standbys try for a freed master lease: live hosts
 * after the last owner, wrapping, the last owner's host last; hosts that
 * are not live do not hold anyone up.  */
static void test_turn_rank(void **state)
{
	(void)state;
	struct sanlk_host hs[] = {
		{ .host_id = 1, .flags = SANLK_HOST_LIVE },
		{ .host_id = 2, .flags = SANLK_HOST_LIVE },
		{ .host_id = 3, .flags = SANLK_HOST_LIVE },
		{ .host_id = 7, .flags = SANLK_HOST_FAIL },
		{ .host_id = LEASE_MAX_HOSTS, .flags = SANLK_HOST_LIVE },
	};
	int n = (int)(sizeof hs / sizeof hs[0]);

	/* master 1 gone: 2 first, then 3, then 2000, 1 (the old master) last */
	assert_int_equal(lease_turn_rank(2, 1, hs, n), 0);
	assert_int_equal(lease_turn_rank(3, 1, hs, n), 1);
	assert_int_equal(lease_turn_rank(LEASE_MAX_HOSTS, 1, hs, n), 2);
	assert_int_equal(lease_turn_rank(1, 1, hs, n), 3);
	/* a failing host holds nobody up: 8 comes right after 3 */
	assert_int_equal(lease_turn_rank(8, 3, hs, n), 0);
	/* wrapping: after 2000 comes 1 */
	assert_int_equal(lease_turn_rank(1, LEASE_MAX_HOSTS, hs, n), 0);
	assert_int_equal(lease_turn_rank(3, LEASE_MAX_HOSTS, hs, n), 2);
	/* never held (owner 0): lowest host_id first */
	assert_int_equal(lease_turn_rank(1, 0, hs, n), 0);
	assert_int_equal(lease_turn_rank(2, 0, hs, n), 1);
	/* we are not in the daemon's list yet: still ranked among the others */
	assert_int_equal(lease_turn_rank(5, 3, hs, n), 0);
	assert_int_equal(lease_turn_rank(5, 1, hs, n), 2);
	/* not in the list and after every live host: rank n */
	struct sanlk_host live2[] = {
		{ .host_id = 1, .flags = SANLK_HOST_LIVE },
		{ .host_id = 2, .flags = SANLK_HOST_LIVE },
	};
	assert_int_equal(lease_turn_rank(9, 0, live2, 2), 2);
	/* every rank is distinct among the live hosts */
	static const uint64_t lasts[] = { 0, 1, 2, 3, 4, 7, 1999, LEASE_MAX_HOSTS };
	for (size_t k = 0; k < sizeof lasts / sizeof lasts[0]; k++) {
		uint64_t last = lasts[k];
		int seen = 0;
		for (int i = 0; i < n; i++)
			if (hs[i].flags == SANLK_HOST_LIVE)
				seen |= 1 << lease_turn_rank((uint32_t)hs[i].host_id, last, hs, n);
		assert_int_equal(seen, 0xf);
	}
}

static void test_commit_and_fencing(void **state)
{
	struct lease_master m;
	(void)state;

	/* Renewal at t, io_timeout 10: sanlock recovers from t + 80 s; we stop
	 * one io_timeout earlier.  */
	assert_int_equal(lease_deadline_ns(1000, 10), (int64_t)1070 * 1000000000);
	memset(&m, 0, sizeof(m));
	m.sock = -1;
	assert_int_equal(lease_may_commit(&m), -ENOLCK);	/* not held */
	m.held = true;
	m.valid_until_ns = mono_now_ns() + 60ll * 1000000000;
	assert_int_equal(lease_may_commit(&m), 0);
	m.valid_until_ns = mono_now_ns() - 1;
	assert_int_equal(lease_may_commit(&m), -ENOLCK);
	assert_non_null(strstr(err_get(), "may have expired"));
	m.valid_until_ns = mono_now_ns() + 60ll * 1000000000;

	assert_false(lease_fenced());
	assert_int_equal(lease_fence_install(SIGUSR2), 0);
	raise(SIGUSR2);
	assert_true(lease_fenced());
	assert_int_equal(lease_may_commit(&m), -ENOLCK);
	assert_non_null(strstr(err_get(), "fenced"));
	assert_int_equal(lease_master_check(&m), -ENOLCK);
	assert_false(m.held);
	assert_int_equal(lease_master_acquire(&m), -ENOLCK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_area_geometry),
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_record_rejects),
		cmocka_unit_test(test_record_io),
		cmocka_unit_test(test_validate_rules),
		cmocka_unit_test(test_sanlock_errors),
		cmocka_unit_test(test_init_and_leaders),
		cmocka_unit_test(test_no_daemon),
		cmocka_unit_test(test_commit_and_fencing),
		cmocka_unit_test(test_turn_rank),
		cmocka_unit_test(test_free_on_disk),
		cmocka_unit_test(test_turn_ask),
	};

	/* Never talk to a real daemon from unit tests.  */
	setenv("SANLOCK_RUN_DIR", "/nonexistent/lease-unit", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
