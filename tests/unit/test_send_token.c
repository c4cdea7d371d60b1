/*
 * tests/unit/test_send_token.c - src/send/token.c (resume tokens and the
 * receive state file) and src/send/ident.c: a token reads back as written;
 * a token with any one character changed, cut short, lengthened or of
 * another version is refused; the state file round-trips, is replaced
 * atomically, and is absent after a clear; the received-snapshot identity
 * depends on both the source store and the snapshot id and is never zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/send/ident.h"
#include "src/send/token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct send_token sample = {
	.source = { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 } },
	.from_id = 7, .to_id = 9, .offset = (5ull << 30) + 12345,
};

static void test_roundtrip(void **state)
{
	(void)state;
	char s[SEND_TOKEN_STR];
	struct send_token t;
	send_token_format(&sample, s);
	assert_int_equal(strlen(s), SEND_TOKEN_STR - 1);
	assert_int_equal(send_token_parse(s, &t), 0);
	assert_memory_equal(t.source.b, sample.source.b, 16);
	assert_int_equal(t.from_id, 7);
	assert_int_equal(t.to_id, 9);
	assert_true(t.offset == sample.offset);
}

static void test_damage_refused(void **state)
{
	(void)state;
	char s[SEND_TOKEN_STR], bad[SEND_TOKEN_STR + 8];
	struct send_token t;
	send_token_format(&sample, s);
	for (size_t i = 0; i < strlen(s); i++) {
		snprintf(bad, sizeof bad, "%s", s);
		bad[i] = bad[i] == 'a' ? 'b' : (bad[i] == '-' ? '+' : 'a');
		assert_true(send_token_parse(bad, &t) < 0);
	}
	snprintf(bad, sizeof bad, "%.*s", (int)strlen(s) - 2, s);
	assert_true(send_token_parse(bad, &t) < 0);
	snprintf(bad, sizeof bad, "%s00", s);
	assert_true(send_token_parse(bad, &t) < 0);
	snprintf(bad, sizeof bad, "2%s", s + 1);
	assert_true(send_token_parse(bad, &t) < 0);
	assert_true(send_token_parse("", &t) < 0);
}

static void test_state_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/csnap-token-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/receive-t.state", dir);
	struct send_token t, u = sample;
	assert_int_equal(send_state_load(path, &t), -ENOENT);
	assert_int_equal(send_state_save(path, &sample), 0);
	assert_int_equal(send_state_load(path, &t), 0);
	assert_true(t.offset == sample.offset);
	u.offset = 42;
	assert_int_equal(send_state_save(path, &u), 0);
	assert_int_equal(send_state_load(path, &t), 0);
	assert_true(t.offset == 42);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("garbage\n", f);
	fclose(f);
	assert_true(send_state_load(path, &t) < 0);
	send_state_clear(path);
	assert_int_equal(send_state_load(path, &t), -ENOENT);
	assert_int_equal(rmdir(dir), 0);	/* no temporary file left */
}

static void test_ident(void **state)
{
	(void)state;
	uint8_t a[PROTO_REQ_ID_LEN], b[PROTO_REQ_ID_LEN], c[PROTO_REQ_ID_LEN];
	static const uint8_t zero[PROTO_REQ_ID_LEN];
	struct csnap_uuid other = sample.source;
	other.b[15] ^= 1;
	send_ident(&sample.source, 7, a);
	send_ident(&sample.source, 8, b);
	send_ident(&other, 7, c);
	assert_memory_not_equal(a, b, sizeof a);
	assert_memory_not_equal(a, c, sizeof a);
	assert_memory_not_equal(a, zero, sizeof a);
	send_ident(&sample.source, 7, b);
	assert_memory_equal(a, b, sizeof a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_damage_refused),
		cmocka_unit_test(test_state_file),
		cmocka_unit_test(test_ident),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
