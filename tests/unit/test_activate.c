/*
 * tests/unit/test_activate.c - kernel-side names of csnap volumes
 * (src/activate/names.c): LVM-style hyphen doubling in dm names and its
 * unambiguous split back, dm uuids from the store uuid and the snapshot's
 * immutable id, nbd backend identifiers, dm-linear tables, and every limit
 * (invalid names, lengths that exactly fit and one more that does not);
 * and the NBD client handshake (src/activate/nbdclient.c) against hostile
 * servers that never end their option replies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/activate/names.h"
#include "src/activate/nbdclient.h"
#include "src/export/nbd.h"
#include "utils/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define UUIDS "0f8e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
#define UUIDHEX "0f8e1a2b3c4d4e5f8a9b0c1d2e3f4a5b"

static struct csnap_uuid store_uuid(void)
{
	struct csnap_uuid u;
	assert_int_equal(csnap_uuid_parse(UUIDS, &u), 0);
	return u;
}

static void test_name_valid(void **state)
{
	(void)state;
	assert_true(act_name_valid("origin"));
	assert_true(act_name_valid("Mon_2026.11-30+x"));
	assert_true(act_name_valid("a-"));
	assert_false(act_name_valid(""));
	assert_false(act_name_valid(NULL));
	assert_false(act_name_valid("-a"));
	assert_false(act_name_valid("."));
	assert_false(act_name_valid(".."));
	assert_false(act_name_valid("..."));
	assert_false(act_name_valid(".hidden"));
	assert_true(act_name_valid("mon@host:1"));
	assert_false(act_name_valid("a/b"));
	assert_false(act_name_valid("a b"));
	assert_false(act_name_valid("é"));
}

static void check_name(const char *store, const char *vol, const char *want)
{
	char out[ACT_DM_NAME_MAX], s[ACT_DM_NAME_MAX], v[ACT_DM_NAME_MAX];

	assert_int_equal(act_dm_name(store, vol, out, sizeof out), 0);
	assert_string_equal(out, want);
	assert_int_equal(act_dm_name_split(out, s, sizeof s, v, sizeof v), 0);
	assert_string_equal(s, store);
	assert_string_equal(v, vol);
}

static void test_dm_name(void **state)
{
	(void)state;
	check_name("data", "origin", "csnap-data-origin");
	check_name("my-store", "mon-day", "csnap-my--store-mon--day");
	check_name("a-", "b", "csnap-a---b");		/* trailing hyphen in the store */
	check_name("a", "-b" + 1, "csnap-a-b");
	check_name("x--y", "z---", "csnap-x----y-z------");
	/* two different pairs never give one name */
	char n1[ACT_DM_NAME_MAX], n2[ACT_DM_NAME_MAX];
	assert_int_equal(act_dm_name("a-b", "c", n1, sizeof n1), 0);
	assert_int_equal(act_dm_name("a", "b-c", n2, sizeof n2), 0);
	assert_string_not_equal(n1, n2);
	/* invalid names */
	assert_int_equal(act_dm_name("a/b", "c", n1, sizeof n1), -EINVAL);
	assert_string_equal(n1, "");
	assert_int_equal(act_dm_name("a", "", n1, sizeof n1), -EINVAL);
	assert_int_equal(act_dm_name("a", "-x", n1, sizeof n1), -EINVAL);
}

static void test_dm_name_limits(void **state)
{
	char out[ACT_DM_NAME_MAX], store[64], vol[64], s2[ACT_DM_NAME_MAX], v2[ACT_DM_NAME_MAX];
	(void)state;

	/* "csnap-" + store (1 + 28 doubled hyphens = 57) + "-" + 63-byte
	 * volume = 127 bytes: exactly fits with the NUL */
	store[0] = 'a';
	memset(store + 1, '-', 28);
	store[29] = 0;
	memset(vol, 'v', 63);
	vol[63] = 0;
	assert_int_equal(act_dm_name(store, vol, out, sizeof out), 0);
	assert_int_equal(strlen(out), 127);
	assert_int_equal(act_dm_name_split(out, s2, sizeof s2, v2, sizeof v2), 0);
	assert_string_equal(s2, store);
	assert_string_equal(v2, vol);
	/* a hyphen counts twice: one more does not fit */
	vol[62] = '-';
	assert_int_equal(act_dm_name(store, vol, out, sizeof out), -ENAMETOOLONG);
	assert_string_equal(out, "");
	/* longer than a name may be at all */
	char big[80];
	memset(big, 'v', 64);
	big[64] = 0;
	assert_int_equal(act_dm_name("s", big, out, sizeof out), -EINVAL);
	/* tiny buffers */
	assert_int_equal(act_dm_name("s", "v", out, 6), -ENAMETOOLONG);
	assert_int_equal(act_dm_name("s", "v", out, 9), -ENAMETOOLONG);
	assert_int_equal(act_dm_name("s", "v", out, 10), 0);
	assert_string_equal(out, "csnap-s-v");
}

static void test_dm_name_split_bad(void **state)
{
	char s[64], v[64];
	(void)state;

	assert_int_equal(act_dm_name_split("lvm-a-b", s, sizeof s, v, sizeof v), -EINVAL);
	assert_int_equal(act_dm_name_split("csnap-ab", s, sizeof s, v, sizeof v), -EINVAL);
	assert_int_equal(act_dm_name_split("csnap--a-b", s, sizeof s, v, sizeof v), -EINVAL);
	assert_int_equal(act_dm_name_split("csnap-a-", s, sizeof s, v, sizeof v), -EINVAL);
	assert_int_equal(act_dm_name_split("csnap-a-b-c", s, sizeof s, v, sizeof v), -EINVAL);
	assert_int_equal(act_dm_name_split("csnap-a-b/c", s, sizeof s, v, sizeof v), -EINVAL);
	assert_int_equal(act_dm_name_split("csnap-a-b", s, 2, v, sizeof v), 0);
	assert_int_equal(act_dm_name_split("csnap-ab-c", s, 2, v, sizeof v), -EINVAL);
}

static void test_dm_uuid(void **state)
{
	struct csnap_uuid u = store_uuid(), other;
	char out[ACT_DM_UUID_MAX];
	(void)state;

	assert_int_equal(act_dm_uuid(&u, ACT_ORIGIN_ID, out, sizeof out), 0);
	assert_string_equal(out, "CSNAP-" UUIDHEX "-origin");
	assert_true(act_dm_uuid_is_csnap(out, &u));
	assert_true(act_dm_uuid_is_csnap(out, NULL));
	assert_int_equal(act_dm_uuid(&u, 7, out, sizeof out), 0);
	assert_string_equal(out, "CSNAP-" UUIDHEX "-7");
	assert_true(act_dm_uuid_is_csnap(out, &u));
	assert_int_equal(act_dm_uuid(&u, 4294967295u, out, sizeof out), 0);
	assert_string_equal(out, "CSNAP-" UUIDHEX "-4294967295");
	assert_int_equal(act_dm_uuid(&u, 7, out, 40), -ENAMETOOLONG);
	assert_string_equal(out, "");
	other = u;
	other.b[15] ^= 1;
	assert_int_equal(act_dm_uuid(&u, 7, out, sizeof out), 0);
	assert_false(act_dm_uuid_is_csnap(out, &other));
	struct csnap_uuid back;
	assert_int_equal(act_dm_uuid_store(out, &back), 0);
	assert_true(csnap_uuid_equal(&back, &u));
	assert_int_equal(act_dm_uuid_store("CSNAP-" UUIDHEX "-origin", &back), 0);
	assert_true(csnap_uuid_equal(&back, &u));
	assert_int_equal(act_dm_uuid_store("CSNAP-0F8E1A2B3C4D4E5F8A9B0C1D2E3F4A5B-1", &back), -EINVAL);
	assert_int_equal(act_dm_uuid_store("LVM-" UUIDHEX "-1", &back), -EINVAL);
	assert_false(act_dm_uuid_is_csnap("LVM-abc", NULL));
	assert_false(act_dm_uuid_is_csnap("CSNAP-" UUIDHEX, NULL));
	assert_false(act_dm_uuid_is_csnap(NULL, NULL));
}

static void test_backend(void **state)
{
	struct csnap_uuid u = store_uuid(), back;
	char out[ACT_BACKEND_MAX], vol[64];
	(void)state;

	assert_int_equal(act_backend_id(&u, "origin", out, sizeof out), 0);
	assert_string_equal(out, "csnap:" UUIDS ":origin");
	assert_int_equal(act_backend_split(out, &back, vol, sizeof vol), 0);
	assert_true(csnap_uuid_equal(&u, &back));
	assert_string_equal(vol, "origin");
	/* as read from sysfs */
	assert_int_equal(act_backend_split("csnap:" UUIDS ":mon-day\n", &back, vol, sizeof vol), 0);
	assert_string_equal(vol, "mon-day");
	assert_int_equal(act_backend_split("nbd-client", &back, vol, sizeof vol), -EINVAL);
	assert_int_equal(act_backend_split("csnap:" UUIDS, &back, vol, sizeof vol), -EINVAL);
	assert_int_equal(act_backend_split("csnap:" UUIDS ":", &back, vol, sizeof vol), -EINVAL);
	assert_int_equal(act_backend_split("csnap:0f8e:origin", &back, vol, sizeof vol), -EINVAL);
	assert_int_equal(act_backend_split("csnap:" UUIDS ":a/b", &back, vol, sizeof vol), -EINVAL);
	assert_int_equal(act_backend_split("csnap:" UUIDS ":origin", &back, vol, 6), -EINVAL);
	assert_int_equal(act_backend_id(&u, "a/b", out, sizeof out), -EINVAL);
	/* a ':' in the volume name: the uuid has a fixed length */
	assert_int_equal(act_backend_id(&u, "a:b", out, sizeof out), 0);
	assert_int_equal(act_backend_split(out, &back, vol, sizeof vol), 0);
	assert_string_equal(vol, "a:b");
	assert_int_equal(act_backend_id(&u, "origin", out, 20), -ENAMETOOLONG);
}

static void test_table(void **state)
{
	char out[ACT_TABLE_MAX];
	(void)state;

	assert_int_equal(act_linear_table(64ull << 20, 43, 0, out, sizeof out), 0);
	assert_string_equal(out, "0 131072 linear 43:0 0");
	/* a partial last sector is left out */
	assert_int_equal(act_linear_table(1023, 43, 32, out, sizeof out), 0);
	assert_string_equal(out, "0 1 linear 43:32 0");
	assert_int_equal(act_linear_table(511, 43, 0, out, sizeof out), -EINVAL);
	assert_int_equal(act_linear_table(UINT64_MAX, 4095, 1048575, out, sizeof out), 0);
	assert_string_equal(out, "0 36028797018963967 linear 4095:1048575 0");
	assert_int_equal(act_linear_table(1 << 20, 43, 0, out, 10), -ENAMETOOLONG);
	assert_string_equal(out, "");
}

/* ---- NBD client handshake against a hostile server ------------------- */

static void put_be64(uint8_t *p, uint64_t v) { for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v; }
static void put_be32(uint8_t *p, uint32_t v) { for (int i = 3; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v; }

/* A server (child process) that greets, then sends option replies to our
 * GO forever: REPLY_LEN-byte INFO replies of an unknown info type, until
 * the client goes away.  Returns the client's end.  */
static int hostile_server(uint32_t reply_len, pid_t *child)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	*child = fork();
	assert_true(*child >= 0);
	if (*child == 0) {
		uint8_t hello[18], rep[20 + 64];

		close(sv[0]);
		signal(SIGPIPE, SIG_DFL);
		put_be64(hello, NBD_MAGIC);
		put_be64(hello + 8, NBD_IHAVEOPT);
		hello[16] = 0;
		hello[17] = NBD_FLAG_FIXED_NEWSTYLE;
		if (write(sv[1], hello, sizeof hello) != sizeof hello)
			_exit(1);
		memset(rep, 0, sizeof rep);
		put_be64(rep, NBD_REP_MAGIC);
		put_be32(rep + 8, NBD_OPT_GO);
		put_be32(rep + 12, NBD_REP_INFO);
		put_be32(rep + 16, reply_len);
		rep[20] = 0x7f;		/* info type: unknown, skipped */
		size_t n = reply_len <= 64 ? 20 + reply_len : 20 + 64;
		for (;;)		/* the rest of a long reply: zeros */
			if (write(sv[1], rep, n) < 0)
				_exit(0);
	}
	close(sv[1]);
	return sv[0];
}

static void expect_refused(uint32_t reply_len, const char *why)
{
	struct nbdc_export ex;
	pid_t child;
	int fd = hostile_server(reply_len, &child), status;

	alarm(20);		/* before the limits, the client never returned */
	assert_int_equal(nbdc_go(fd, "origin", &ex), -EPROTO);
	alarm(0);
	assert_non_null(strstr(err_get(), why));
	close(fd);
	assert_int_equal(waitpid(child, &status, 0), child);
}

static void test_nbdc_endless_replies(void **state)
{
	(void)state;
	expect_refused(2, "option replies");
}

static void test_nbdc_huge_reply(void **state)
{
	(void)state;
	expect_refused(0xfffffff0u, "option reply of");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_dm_name),
		cmocka_unit_test(test_dm_name_limits),
		cmocka_unit_test(test_dm_name_split_bad),
		cmocka_unit_test(test_dm_uuid),
		cmocka_unit_test(test_backend),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_nbdc_endless_replies),
		cmocka_unit_test(test_nbdc_huge_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
