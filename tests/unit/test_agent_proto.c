/*
 * tests/unit/test_agent_proto.c - the agent's text protocol: request
 * parsing (every verb, every way a line can be wrong), master lines
 * formatted and parsed back, greetings, and randomized input that must
 * never crash the parsers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/agent/agent_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID "0f8e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"

static int req(const char *line, struct agent_request *r, char *why)
{
	return agent_parse_request(line, strlen(line), r, why, 200);
}

static void test_request_good(void **state)
{
	struct agent_request r;
	char why[200];

	(void)state;
	assert_int_equal(req("PING", &r, why), 0);
	assert_int_equal(r.verb, AGENT_PING);
	assert_string_equal(r.arg, "");
	assert_int_equal(req("ping\r", &r, why), 0);	/* case, CRLF */
	assert_int_equal(r.verb, AGENT_PING);
	assert_int_equal(req("WHERE data", &r, why), 0);
	assert_int_equal(r.verb, AGENT_WHERE);
	assert_string_equal(r.arg, "data");
	assert_int_equal(req("Watch " UUID, &r, why), 0);
	assert_int_equal(r.verb, AGENT_WATCH);
	assert_string_equal(r.arg, UUID);
	assert_int_equal(req("UNWATCH /dev/disk/by-id/wwn-0x6", &r, why), 0);
	assert_int_equal(r.verb, AGENT_UNWATCH);
	assert_string_equal(r.arg, "/dev/disk/by-id/wwn-0x6");
	assert_int_equal(req("WHERE my store", &r, why), 0);	/* names may hold spaces */
	assert_string_equal(r.arg, "my store");
	assert_int_equal(req("STORES", &r, why), 0);
	assert_int_equal(r.verb, AGENT_STORES);
	assert_int_equal(req("QUIT", &r, why), 0);
	assert_int_equal(r.verb, AGENT_QUIT);
	/* exactly the longest store name allowed */
	char line[AGENT_LINE_MAX];
	snprintf(line, sizeof line, "WHERE %0*d", AGENT_ARG_MAX - 1, 7);
	assert_int_equal(req(line, &r, why), 0);
	assert_int_equal(strlen(r.arg), AGENT_ARG_MAX - 1);
}

static void expect_bad(const char *line, size_t len, const char *needle)
{
	struct agent_request r;
	char why[200] = "";

	assert_int_equal(agent_parse_request(line, len, &r, why, sizeof why), -EINVAL);
	if (!strstr(why, needle))
		fail_msg("'%s': reason '%s' lacks '%s'", line, why, needle);
}

static void test_request_bad(void **state)
{
	char line[2 * AGENT_LINE_MAX];

	(void)state;
	expect_bad("", 0, "empty");
	expect_bad("\r", 1, "empty");
	expect_bad("FOO bar", 7, "unknown verb 'FOO'");
	expect_bad("WHEREX s", 8, "unknown verb");
	expect_bad("AVERYLONGVERBINDEEDTHATGOESON x", 31, "unknown verb");
	expect_bad("WHERE", 5, "needs a store");
	expect_bad("WHERE ", 6, "needs a store");
	expect_bad("WHERE  s", 8, "spaces");
	expect_bad("WHERE s ", 8, "spaces");
	expect_bad("PING x", 6, "takes no argument");
	expect_bad("STORES all", 10, "takes no argument");
	expect_bad("WHERE a\tb", 9, "bad character 0x09");
	expect_bad("WHERE a\x7f", 8, "bad character 0x7f");
	expect_bad("WHERE \xc3\xa9", 8, "bad character 0xc3");
	expect_bad("WHERE a\0b", 9, "bad character 0x00");
	snprintf(line, sizeof line, "WHERE %0*d", AGENT_ARG_MAX, 7);
	expect_bad(line, strlen(line), "too long");
	memset(line, 'A', sizeof line);
	expect_bad(line, AGENT_LINE_MAX, "line too long");
	expect_bad(line, sizeof line, "line too long");
}

static void roundtrip(const struct agent_master *m, bool notice, const char *expect)
{
	char buf[AGENT_LINE_MAX];
	struct agent_master back;
	bool was_notice;
	int n = agent_format_master(m, notice, buf, sizeof buf);

	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	assert_int_equal(buf[n - 1], '\n');
	buf[n - 1] = 0;
	if (expect)
		assert_string_equal(buf, expect);
	assert_int_equal(agent_parse_master(buf, &back, &was_notice), 0);
	assert_int_equal(was_notice, notice);
	assert_true(agent_master_same(m, &back));
	if (m->state != AGENT_MASTER_VALID)
		assert_string_equal(back.why, m->why);
}

static void test_master_roundtrip(void **state)
{
	struct agent_master m = { .state = AGENT_MASTER_VALID, .uuid = UUID, .host_id = 3,
				  .generation = 7, .lver = 12, .epoch = 99,
				  .address = "127.0.0.13", .port = 41234 };

	(void)state;
	roundtrip(&m, false, "MASTER " UUID " host_id=3 address=127.0.0.13 port=41234 lver=12 "
		  "epoch=99 generation=7");
	roundtrip(&m, true, "NOTICE MASTER " UUID " host_id=3 address=127.0.0.13 port=41234 "
		  "lver=12 epoch=99 generation=7");
	m.lver = UINT64_MAX;
	m.epoch = UINT64_MAX;
	m.generation = UINT64_MAX;
	m.host_id = 2000;
	m.port = 65535;
	snprintf(m.address, sizeof m.address, "fe80::1%%eth0");
	roundtrip(&m, false, NULL);

	struct agent_master n = { .state = AGENT_MASTER_NONE, .uuid = UUID,
				  .why = "the master lease is free" };
	roundtrip(&n, false, "NONE " UUID " the master lease is free");
	n.state = AGENT_MASTER_CHANGING;
	snprintf(n.why, sizeof n.why, "host_id 4 holds the lease = not published");
	roundtrip(&n, true, "NOTICE CHANGING " UUID " host_id 4 holds the lease = not published");
}

static void test_master_format_refuses(void **state)
{
	char buf[AGENT_LINE_MAX];
	struct agent_master m = { .state = AGENT_MASTER_VALID, .uuid = UUID, .host_id = 1,
				  .address = "10.0.0.1", .port = 1 };

	(void)state;
	assert_true(agent_format_master(&m, false, buf, sizeof buf) > 0);
	assert_int_equal(agent_format_master(&m, false, buf, 20), -ENOSPC);
	snprintf(m.address, sizeof m.address, "10.0.0.1 port=9");	/* injection */
	assert_int_equal(agent_format_master(&m, false, buf, sizeof buf), -EINVAL);
	snprintf(m.address, sizeof m.address, "%s", "");
	assert_int_equal(agent_format_master(&m, false, buf, sizeof buf), -EINVAL);
	snprintf(m.address, sizeof m.address, "a=b");
	assert_int_equal(agent_format_master(&m, false, buf, sizeof buf), -EINVAL);
	snprintf(m.address, sizeof m.address, "10.0.0.1");
	m.host_id = 0;
	assert_int_equal(agent_format_master(&m, false, buf, sizeof buf), -EINVAL);
	m.host_id = 1;
	m.uuid[0] = 0;
	assert_int_equal(agent_format_master(&m, false, buf, sizeof buf), -EINVAL);
	m.state = 7;
	snprintf(m.uuid, sizeof m.uuid, UUID);
	assert_int_equal(agent_format_master(&m, false, buf, sizeof buf), -EINVAL);

	/* control characters in a reason never break the line */
	struct agent_master n = { .state = AGENT_MASTER_NONE, .uuid = UUID,
				  .why = "bad\nline\rhere\x01" };
	assert_true(agent_format_master(&n, false, buf, sizeof buf) > 0);
	assert_string_equal(buf, "NONE " UUID " bad?line?here?\n");
	n.why[0] = 0;
	assert_true(agent_format_master(&n, false, buf, sizeof buf) > 0);
	assert_string_equal(buf, "NONE " UUID " no reason given\n");
}

static void test_master_parse_bad(void **state)
{
	struct agent_master m;
	static const char *const bad[] = {
		"",
		"MASTER",
		"MASTER " UUID,
		"MASTER " UUID " host_id=1 address=a port=1 lver=1 epoch=1",	/* no generation */
		"MASTER " UUID " host_id=0 address=a port=1 lver=1 epoch=1 generation=1",
		"MASTER " UUID " host_id=1 address=a port=65536 lver=1 epoch=1 generation=1",
		"MASTER " UUID " host_id=1 address=a port=-1 lver=1 epoch=1 generation=1",
		"MASTER " UUID " host_id=1 address=a port=1 lver=18446744073709551616 epoch=1 "
			"generation=1",
		"MASTER " UUID " host_id=1 address=a port=1x lver=1 epoch=1 generation=1",
		"MASTER " UUID " host_id=1 address= port=1 lver=1 epoch=1 generation=1",
		"MASTER " UUID " host_id=4294967296 address=a port=1 lver=1 epoch=1 generation=1",
		"MASTER  host_id=1 address=a port=1 lver=1 epoch=1 generation=1",
		"BOSS " UUID " x",
		"NOTICE",
		"NOTICE NOTICE NONE " UUID " x",
		"NONE",
		"master " UUID " host_id=1 address=a port=1 lver=1 epoch=1 generation=1",
		"CHANGING 0123456789012345678901234567890123456789 too long a uuid",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (agent_parse_master(bad[i], &m, NULL) != -EPROTO)
			fail_msg("accepted: '%s'", bad[i]);
	}
	assert_int_equal(agent_parse_master("ERR unknown store 'x'", &m, NULL), -EREMOTEIO);
	assert_string_equal(m.why, "unknown store 'x'");
	assert_int_equal(agent_parse_master("ERR", &m, NULL), -EREMOTEIO);
	/* later minor versions may add keys, in any order */
	assert_int_equal(agent_parse_master("MASTER " UUID " future=1 generation=2 epoch=3 "
					    "lver=4 port=5 address=h host_id=6 more=x", &m, NULL), 0);
	assert_int_equal(m.host_id, 6);
	assert_int_equal(m.port, 5);
	assert_int_equal(m.lver, 4);
	assert_int_equal(m.epoch, 3);
	assert_int_equal(m.generation, 2);
	assert_string_equal(m.address, "h");
}

static void test_greeting(void **state)
{
	char buf[AGENT_LINE_MAX], node[AGENT_NAME_LEN];
	unsigned host;

	(void)state;
	assert_true(agent_format_greeting("node1", 7, buf, sizeof buf) > 0);
	assert_string_equal(buf, "CSNAP-AGENT 1 node=node1 host_id=7\n");
	buf[strlen(buf) - 1] = 0;
	assert_int_equal(agent_parse_greeting(buf, node, &host), 0);
	assert_string_equal(node, "node1");
	assert_int_equal(host, 7);
	assert_true(agent_format_greeting("a b=c\n", 1, buf, sizeof buf) > 0);
	assert_string_equal(buf, "CSNAP-AGENT 1 node=a_b_c? host_id=1\n");
	assert_int_equal(agent_parse_greeting("CSNAP-AGENT 2 node=x host_id=1", node, &host),
			 -EPROTONOSUPPORT);
	assert_int_equal(agent_parse_greeting("CSNAP-AGENT 1.3 node=x host_id=1", node, &host), 0);
	assert_int_equal(agent_parse_greeting("CSNAP-AGENT x", node, &host), -EPROTO);
	assert_int_equal(agent_parse_greeting("SSH-2.0-OpenSSH", node, &host), -EPROTO);
	assert_int_equal(agent_parse_greeting("CSNAP-AGENT", node, &host), -EPROTO);
	assert_int_equal(agent_parse_greeting("CSNAP-AGENT 1", node, &host), 0);
	assert_string_equal(node, "-");
	assert_int_equal(host, 0);
}

static void test_fields_and_errors(void **state)
{
	char v[32], buf[AGENT_LINE_MAX], big[3000];

	(void)state;
	assert_int_equal(agent_line_field("STORE name=s state=joined why=a b c", "state", v,
					  sizeof v), 0);
	assert_string_equal(v, "joined");
	assert_int_equal(agent_line_field("STORE name=s state=joined why=a b c", "why", v,
					  sizeof v), 0);
	assert_string_equal(v, "a b c");
	assert_int_equal(agent_line_field("STORE name=s", "nam", v, sizeof v), -ENOENT);
	assert_int_equal(agent_line_field("STORE name=0123456789012345678901234567890123456789",
					  "name", v, sizeof v), -ENOSPC);
	assert_true(agent_format_error(buf, sizeof buf, "unknown verb '%s'", "X\tY") > 0);
	assert_string_equal(buf, "ERR unknown verb 'X?Y'\n");
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = 0;
	int n = agent_format_error(buf, sizeof buf, "%s", big);	/* truncated, one line */
	assert_true(n > 0 && n < AGENT_LINE_MAX);
	assert_int_equal(buf[n - 1], '\n');
	assert_null(memchr(buf, '\n', (size_t)n - 1));

	struct agent_master a = { .state = AGENT_MASTER_NONE, .uuid = UUID, .why = "x" };
	struct agent_master b = a;
	snprintf(b.why, sizeof b.why, "another reason");
	assert_true(agent_master_same(&a, &b));		/* reasons do not count */
	b.state = AGENT_MASTER_CHANGING;
	assert_false(agent_master_same(&a, &b));
	a.state = b.state = AGENT_MASTER_VALID;
	a.host_id = b.host_id = 1;
	snprintf(a.address, sizeof a.address, "h");
	snprintf(b.address, sizeof b.address, "h");
	assert_true(agent_master_same(&a, &b));
	b.lver++;
	assert_false(agent_master_same(&a, &b));
	b.lver--;
	b.port++;
	assert_false(agent_master_same(&a, &b));
}

/* Random and mutated lines: the parsers must return, never crash or
 * overrun (run this under ASan), and accepted requests must be sane.  */
/* Paths too long for their place keep their end; control bytes go.  */
static void test_sanitize_tail(void **state)
{
	char d[8];

	(void)state;
	agent_sanitize_tail(d, sizeof d, "/a/b");
	assert_string_equal(d, "/a/b");
	agent_sanitize_tail(d, sizeof d, "/abcdef");
	assert_string_equal(d, "/abcdef");
	agent_sanitize_tail(d, sizeof d, "/dev/disk/by-id/xyz");
	assert_string_equal(d, ".../xyz");
	agent_sanitize_tail(d, sizeof d, "/dev/x\ny\tz");
	assert_string_equal(d, "...?y?z");
	agent_sanitize_tail(d, sizeof d, NULL);
	assert_string_equal(d, "");
}

static void test_random_input(void **state)
{
	static const char *const seeds[] = {
		"WHERE s", "WATCH " UUID, "MASTER " UUID " host_id=1 address=a port=1 lver=1 "
		"epoch=1 generation=1", "NOTICE NONE " UUID " why", "CSNAP-AGENT 1 node=a host_id=1",
		"ERR x", "STORES",
	};
	char line[AGENT_LINE_MAX + 64];
	struct agent_request r;
	struct agent_master m;
	char why[200], node[AGENT_NAME_LEN];
	unsigned host;

	(void)state;
	srandom(12345);
	for (int i = 0; i < 200000; i++) {
		size_t len;
		if (i % 2) {
			len = (size_t)random() % (sizeof line - 1);
			for (size_t j = 0; j < len; j++)
				line[j] = (char)(random() % 4 ? 0x20 + random() % 95 : random() % 256);
		} else {
			const char *s = seeds[random() % (sizeof seeds / sizeof seeds[0])];
			len = strlen(s);
			memcpy(line, s, len);
			for (int k = random() % 4; k >= 0; k--) {
				size_t at = (size_t)random() % (len + 1);
				if (at < len)
					line[at] = (char)(random() % 256);
				else if (len < sizeof line - 2)
					line[len++] = (char)(0x20 + random() % 95);
			}
		}
		line[len] = 0;
		if (agent_parse_request(line, len, &r, why, sizeof why) == 0) {
			assert_true(r.verb >= AGENT_PING && r.verb <= AGENT_QUIT);
			assert_true(strlen(r.arg) < AGENT_ARG_MAX);
		} else {
			assert_true(strlen(why) > 0);
		}
		if (agent_parse_master(line, &m, NULL) == 0) {
			char out[AGENT_LINE_MAX];
			/* whatever parses, formats again (for a VALID answer) */
			if (m.state == AGENT_MASTER_VALID)
				assert_true(agent_format_master(&m, false, out, sizeof out) > 0);
		}
		(void)agent_parse_greeting(line, node, &host);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_good),
		cmocka_unit_test(test_request_bad),
		cmocka_unit_test(test_master_roundtrip),
		cmocka_unit_test(test_master_format_refuses),
		cmocka_unit_test(test_master_parse_bad),
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_fields_and_errors),
		cmocka_unit_test(test_sanitize_tail),
		cmocka_unit_test(test_random_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
