/*
 * tests/unit/test_utils.c - crc32c, size/number parsing, config files,
 * uuid, the error-message convention, escaping of user strings for
 * messages, and the snapshot-name rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "utils/config.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"
#include "utils/escape.h"
#include "utils/fdlimit.h"
#include "utils/log.h"
#include "utils/snapname.h"
#include "utils/uuid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_crc32c_vectors(void **state)
{
	unsigned char zeros[32] = { 0 }, ones[32];
	unsigned char big[4099];

	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, zeros, 32), 0x8A9136AAu);	/* RFC 3720 B.4 */
	memset(ones, 0xff, sizeof ones);
	assert_int_equal(crc32c(0, ones, 32), 0x62A8AB43u);
	assert_int_equal(crc32c(0, "", 0), 0u);
	/* incremental == one shot, at every split and odd length */
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 31 + 7);
	uint32_t whole = crc32c(0, big, sizeof big);
	for (size_t split = 0; split <= sizeof big; split += 37)
		assert_int_equal(crc32c(crc32c(0, big, split), big + split, sizeof big - split), whole);
}

static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(parse_size("4096", &v), 0); assert_int_equal(v, 4096);
	assert_int_equal(parse_size("64K", &v), 0); assert_int_equal(v, 65536);
	assert_int_equal(parse_size("1M", &v), 0); assert_int_equal(v, 1 << 20);
	assert_int_equal(parse_size("2GiB", &v), 0); assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("1t", &v), 0); assert_int_equal(v, 1ULL << 40);
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("-1", &v), -EINVAL);
	assert_int_equal(parse_size("12Q", &v), -EINVAL);
	assert_int_equal(parse_size("K", &v), -EINVAL);
	assert_int_equal(parse_size("99999999999999T", &v), -EINVAL);
	assert_int_equal(parse_u64("12", 1, 20, &v), 0); assert_int_equal(v, 12);
	assert_int_equal(parse_u64("21", 1, 20, &v), -EINVAL);
	assert_int_equal(parse_u64("0", 1, 20, &v), -EINVAL);
	assert_int_equal(parse_u64("1x", 1, 20, &v), -EINVAL);
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/csnap-conf-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_config_good(void **state)
{
	struct config *cfg = malloc(sizeof *cfg);
	char *p = write_tmp(
		"[global]\nhost_id = 3\nnode_name = n3\naddress = 127.0.0.13\n"
		"io_timeout = 1\nrun_dir = /tmp/x\n"
		"[store data]\ndevice = /dev/sdb\norigin = /dev/sda\nserver = yes\n"
		"export = tcp\nexport_port = 10900\nstore_full = fail\ncache_size = 64M\n"
		"[store logs]\ndevice = UUID=0b6e6f5c-0000-4000-8000-000000000001\n");
	(void)state;
	assert_int_equal(config_load(p, cfg), 0);
	assert_int_equal(cfg->host_id, 3);
	assert_string_equal(cfg->node_name, "n3");
	assert_int_equal(cfg->io_timeout, 1);
	assert_int_equal(cfg->nstores, 2);
	assert_true(cfg->stores[0].server);
	assert_int_equal(cfg->stores[0].export_kind, EXPORT_TCP);
	assert_int_equal(cfg->stores[0].export_port, 10900);
	assert_int_equal(cfg->stores[0].store_full, STORE_FULL_FAIL);
	assert_int_equal(cfg->stores[0].cache_bytes, 64 << 20);
	assert_string_equal(cfg->stores[1].export_socket, "/tmp/x/logs.sock");
	assert_string_equal(cfg->stores[1].export_address, "127.0.0.13");
	assert_non_null(config_find_store(cfg, "logs"));
	assert_non_null(config_find_store(cfg, "/dev/sdb"));
	assert_null(config_find_store(cfg, "nope"));
	unlink(p);
	free(p);
	free(cfg);
}

/* export_tls*: [global] is every store's default, a store overrides it
 * key by key.  */
static void test_config_tls(void **state)
{
	struct config *cfg = malloc(sizeof *cfg);
	char *p = write_tmp(
		"[global]\nhost_id = 1\nexport_tls = require\nexport_tls_psk = /etc/k.psk\n"
		"[store a]\ndevice = /a\n"
		"[store b]\ndevice = /b\nexport_tls = on\nexport_tls_certificates = /etc/pki\n"
		"export_tls_verify_peer = yes\n"
		"[store c]\ndevice = /c\nexport_tls = off\n");
	(void)state;
	assert_int_equal(config_load(p, cfg), 0);
	assert_int_equal(cfg->stores[0].export_tls.mode, EXPORT_TLS_REQUIRE);
	assert_string_equal(cfg->stores[0].export_tls.psk, "/etc/k.psk");
	assert_string_equal(cfg->stores[0].export_tls.certificates, "");
	assert_false(cfg->stores[0].export_tls.verify_peer);
	assert_int_equal(cfg->stores[1].export_tls.mode, EXPORT_TLS_ON);
	assert_string_equal(cfg->stores[1].export_tls.psk, "/etc/k.psk");
	assert_string_equal(cfg->stores[1].export_tls.certificates, "/etc/pki");
	assert_true(cfg->stores[1].export_tls.verify_peer);
	assert_int_equal(cfg->stores[2].export_tls.mode, EXPORT_TLS_OFF);
	unlink(p);
	free(p);
	/* No TLS key at all: off.  */
	p = write_tmp("[global]\nhost_id = 1\n[store a]\ndevice = /a\n");
	assert_int_equal(config_load(p, cfg), 0);
	assert_int_equal(cfg->stores[0].export_tls.mode, EXPORT_TLS_OFF);
	unlink(p);
	free(p);
	free(cfg);
}

static void expect_bad(const char *text, const char *needle)
{
	struct config *cfg = malloc(sizeof *cfg);
	char *p = write_tmp(text);

	assert_true(config_load(p, cfg) < 0);
	if (!strstr(err_get(), needle))
		fail_msg("error '%s' does not mention '%s'", err_get(), needle);
	unlink(p);
	free(p);
	free(cfg);
}

static void test_config_bad(void **state)
{
	(void)state;
	expect_bad("[global]\nhost_id = 0\n", "host_id");
	expect_bad("[global]\nhost_id = 2001\n", "host_id");
	expect_bad("[global]\nhostid = 1\n", "unknown key 'hostid'");
	expect_bad("[global]\nhost_id = 1\n[stor x]\ndevice = /a\n", "unknown section");
	expect_bad("[global]\nhost_id = 1\n[store x]\norigin = /a\n", "device is required");
	expect_bad("[global]\nhost_id = 1\n[store x]\ndevice = /a\nserver = maybe\n", "server");
	expect_bad("[global]\nnode_name = a\n", "host_id is required");
	expect_bad("[global\n", "syntax");
	expect_bad("[global]\nhost_id\n", ":2: syntax error");
	expect_bad("[global]\n\nhost_id\n", ":3: syntax error");
	/* Repeats are refused with both line numbers (issue 10: the last
	 * one used to win silently).  */
	expect_bad("[global]\nhost_id = 1\nnode_name = a\nhost_id = 2\n",
		   ":4: [global]: host_id is set again (first at line 2)");
	expect_bad("[global]\nhost_id = 1\n[global]\nnode_name = a\n",
		   ":3: section [global] appears again (first at line 1)");
	expect_bad("[global]\nhost_id = 1\n[store s]\ndevice = /a\n[store t]\ndevice = /c\n"
		   "[store s]\ndevice = /b\n", ":7: section [store s] appears again (first at line 3)");
	expect_bad("[global]\nhost_id = 1\n[store s]\ndevice = /a\norigin = /o\ndevice = /a\n",
		   ":6: [store s]: device is set again (first at line 4)");
	expect_bad("host_id = 1\n", "outside");
	expect_bad("[global]\nhost_id = 1\n[store s]\ndevice = /a\nexport_tls = maybe\n",
		   ":5: [store s]: bad value for export_tls: 'maybe'");
	expect_bad("[global]\nhost_id = 1\nexport_tls = on\n[store s]\ndevice = /a\n",
		   "[store s]: export_tls = on needs export_tls_psk or export_tls_certificates");
	expect_bad("[global]\nhost_id = 1\n[store s]\ndevice = /a\nexport_tls = require\n"
		   "export_tls_psk = /k\nexport_tls_verify_peer = yes\n",
		   "export_tls_verify_peer needs export_tls_certificates");

	struct config *cfg = malloc(sizeof *cfg);
	assert_true(config_load("/nonexistent/csnap.conf", cfg) < 0);
	assert_non_null(strstr(err_get(), "cannot open"));

	/* Long lines: paths up to PATH_MAX - 1 (lines of 200+ characters
	 * were a syntax error), one byte more is refused by name.  */
	char *path = malloc(PATH_MAX + 1), *text = malloc(3 * PATH_MAX);
	memset(path, 'd', PATH_MAX);
	path[0] = '/';
	path[PATH_MAX - 1] = 0;
	snprintf(text, 3 * PATH_MAX, "; comment\n[global]\nhost_id = 1 ; inline comment\n"
		 "[store s]\ndevice = %s\norigin=%s\n", path, path);
	char *p = write_tmp(text);
	assert_int_equal(config_load(p, cfg), 0);
	assert_int_equal(cfg->host_id, 1);
	assert_int_equal(strlen(cfg->stores[0].device), PATH_MAX - 1);
	assert_string_equal(cfg->stores[0].origin, path);
	unlink(p);
	free(p);
	path[PATH_MAX - 1] = 'd';
	path[PATH_MAX] = 0;
	snprintf(text, 3 * PATH_MAX, "[global]\nhost_id = 1\n[store s]\ndevice = %s\n", path);
	p = write_tmp(text);
	assert_true(config_load(p, cfg) < 0);
	assert_non_null(strstr(err_get(), ":4: [store s]: device is too long"));
	unlink(p);
	free(p);
	free(path);
	free(text);
	free(cfg);
}

static void test_uuid_and_err(void **state)
{
	struct csnap_uuid a, b;
	char s[CSNAP_UUID_STR_LEN];

	(void)state;
	csnap_uuid_generate(&a);
	assert_false(csnap_uuid_is_null(&a));
	csnap_uuid_unparse(&a, s);
	assert_int_equal(strlen(s), 36);
	assert_int_equal(csnap_uuid_parse(s, &b), 0);
	assert_true(csnap_uuid_equal(&a, &b));
	assert_int_equal(csnap_uuid_parse("not-a-uuid", &b), -EINVAL);

	assert_int_equal(err_set(EIO, "block %d bad", 7), -EIO);
	assert_int_equal(err_prefix(EIO, "store %s", "x"), -EIO);
	assert_string_equal(err_get(), "store x: block 7 bad");
	err_clear();

	unsigned char buf[8];
	put_le32(buf, 0x11223344);
	assert_int_equal(buf[0], 0x44);
	assert_int_equal(get_le32(buf), 0x11223344);
	put_le64(buf, 0x0102030405060708ULL);
	assert_int_equal(buf[7], 0x01);
}

/* Issue 10: a name with a newline turned one error line into two.  */
static void test_escape(void **state)
{
	char b[16];

	(void)state;
	assert_string_equal(ESC("plain-name_1"), "plain-name_1");
	assert_string_equal(ESC("a\nb"), "a\\nb");
	assert_string_equal(ESC("\r\t\x1b[2J\x7f"), "\\r\\t\\x1b[2J\\x7f");
	assert_string_equal(ESC("caf\xc3\xa9"), "caf\xc3\xa9");	/* UTF-8 kept */
	assert_string_equal(ESC(""), "");
	/* Cut at a whole escape, marked, always terminated.  */
	assert_string_equal(str_escape(b, sizeof b, "0123456789abcdef"), "0123456789ab...");
	assert_string_equal(str_escape(b, sizeof b, "0123456789\n\n\n"), "0123456789\\n...");
	assert_string_equal(str_escape(b, sizeof b, "012345678901234"), "012345678901234");
	assert_string_equal(str_escape_n(b, 3, "abcdef", 6), "");
	assert_string_equal(str_escape_n(b, sizeof b, "a\0b", 3), "a\\x00b");

	/* The log writes one line whatever the message holds.  */
	int p[2], saved = dup(2);
	char out[256];
	assert_int_equal(pipe(p), 0);
	dup2(p[1], 2);
	log_init("t", LOG_LEVEL_INFO);
	log_info("name %s", "x\ny");
	dup2(saved, 2);
	close(saved);
	close(p[1]);
	ssize_t n = read(p[0], out, sizeof out - 1);
	close(p[0]);
	assert_true(n > 0);
	out[n] = 0;
	assert_non_null(strstr(out, "name x\\ny\n"));
	assert_ptr_equal(strchr(out, '\n'), out + n - 1);
}

/* One rule for names (issue 10: "origin" was accepted, and could never
 * be exported under that name).  */
static void test_snap_names(void **state)
{
	char longest[SNAP_NAME_MAX + 2];

	(void)state;
	assert_int_equal(snap_name_check("daily-2026.11.30"), 0);
	assert_int_equal(snap_name_check("b@x:y+z_"), 0);
	assert_int_equal(snap_name_check("Origin"), 0);
	assert_int_equal(snap_name_check("origin"), -EINVAL);
	assert_non_null(strstr(err_get(), "reserved"));
	assert_true(snap_name_valid("origin"));	/* old stores: still listable */
	assert_int_equal(snap_name_check(""), -EINVAL);
	assert_int_equal(snap_name_check(".hidden"), -EINVAL);
	assert_int_equal(snap_name_check("-opt"), -EINVAL);
	assert_int_equal(snap_name_check("a b"), -EINVAL);
	assert_int_equal(snap_name_check("a/b"), -EINVAL);
	assert_int_equal(snap_name_check("a\nb"), -EINVAL);
	assert_null(strchr(err_get(), '\n'));
	assert_non_null(strstr(err_get(), "\"a\\nb\""));
	memset(longest, 'x', sizeof longest);
	longest[SNAP_NAME_MAX] = 0;
	assert_int_equal(snap_name_check(longest), 0);
	longest[SNAP_NAME_MAX] = 'x';
	longest[SNAP_NAME_MAX + 1] = 0;
	assert_int_equal(snap_name_check(longest), -EINVAL);
}

/* accept() out of descriptors: the reserve takes the pending connection
 * and closes it (progress, no spin), and is open again afterwards.  */
static void test_fd_reserve(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	struct fd_reserve r;
	struct rlimit old, low;
	int lfd, cl[2], next;
	char c;

	(void)state;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	for (int i = 0; i < 2; i++) {
		cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(cl[i], (struct sockaddr *)&sa, sizeof sa), 0);
	}
	assert_int_equal(fd_reserve_open(&r), 0);
	/* Soft limit = the lowest free descriptor: nothing more can open. */
	next = open("/dev/null", O_RDONLY);
	assert_true(next > r.spare);
	close(next);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)next;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(accept4(lfd, NULL, NULL, SOCK_CLOEXEC), -1);
	assert_int_equal(errno, EMFILE);
	assert_true(fd_reserve_shed(&r, lfd, EMFILE));
	assert_true(r.spare >= 0);			/* taken back */
	assert_true(fd_reserve_shed(&r, lfd, EMFILE));	/* the second one */
	assert_false(fd_reserve_shed(&r, lfd, EMFILE));	/* none pending */
	assert_false(fd_reserve_shed(&r, lfd, ECONNRESET));	/* not a shortage */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(recv(cl[i], &c, 1, 0), 0);	/* closed by the server */
		close(cl[i]);
	}
	/* The connection cap stays FD_HEADROOM below the limit.  */
	if (old.rlim_cur > 2 * FD_HEADROOM && old.rlim_cur - FD_HEADROOM < (1u << 30))
		assert_int_equal(fd_conn_cap(1u << 30), (unsigned)old.rlim_cur - FD_HEADROOM);
	assert_int_equal(fd_conn_cap(10), 10);
	fd_reserve_close(&r);
	assert_int_equal(r.spare, -1);
	close(lfd);
}

/* Peer-triggered messages: a burst, then silence, then a count.  */
static void test_log_limited(void **state)
{
	struct log_limit l = { 0 };
	int p[2], saved = dup(2);
	char out[8192];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(p), 0);
	dup2(p[1], 2);
	log_init("t", LOG_LEVEL_INFO);
	for (int i = 0; i < 1000; i++)
		log_limited(&l, LOG_LEVEL_WARN, "refused %d", i);
	l.window_start_ms -= LOG_LIMIT_WINDOW_MS;	/* the window has passed */
	log_limited(&l, LOG_LEVEL_WARN, "refused again");
	dup2(saved, 2);
	close(saved);
	close(p[1]);
	n = read(p[0], out, sizeof out - 1);
	close(p[0]);
	assert_true(n > 0);
	out[n] = 0;
	int lines = 0;
	for (char *q = out; (q = strchr(q, '\n')); q++)
		lines++;
	assert_int_equal(lines, LOG_LIMIT_BURST + 1);
	assert_non_null(strstr(out, "refused 9\n"));
	assert_null(strstr(out, "refused 10\n"));
	assert_non_null(strstr(out, "refused again (990 similar messages not logged)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_config_good),
		cmocka_unit_test(test_config_bad),
		cmocka_unit_test(test_config_tls),
		cmocka_unit_test(test_uuid_and_err),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_snap_names),
		cmocka_unit_test(test_fd_reserve),
		cmocka_unit_test(test_log_limited),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
