/*
 * tests/unit/test_agent_client.c - the client library against a scripted
 * fake agent on a real unix socket (the boundary stubbed is the agent
 * itself; the real agent is exercised by tests/integration/agent_*.sh).
 *
 * Each test gives the fake a script: lines to send, and requests to
 * expect ("<" prefix) before going on; "!close" closes the connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/agent/agent_client.h"
#include "utils/err.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define UUID "0f8e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
#define GREET "CSNAP-AGENT 1 node=n1 host_id=4\n"
#define MASTER1 "MASTER " UUID " host_id=1 address=127.0.0.11 port=7001 lver=1 epoch=1 generation=1\n"
#define MASTER2 "MASTER " UUID " host_id=2 address=127.0.0.12 port=7002 lver=2 epoch=2 generation=1\n"

struct fake {
	char path[108];
	int lfd;
	const char *const *script;
	pthread_t thread;
	int mismatches;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	char buf[4096];
	size_t have = 0;

	if (fd < 0)
		return NULL;
	for (const char *const *s = f->script; *s; s++) {
		if (!strcmp(*s, "!close"))
			break;
		if ((*s)[0] == '<') {
			/* expect one request line equal to the rest */
			char *nl;
			while (!(nl = memchr(buf, '\n', have))) {
				ssize_t n = read(fd, buf + have, sizeof buf - have);
				if (n <= 0)
					goto out;
				have += (size_t)n;
			}
			*nl = 0;
			if (strcmp(buf, *s + 1))
				f->mismatches++;
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have);
			continue;
		}
		if (write(fd, *s, strlen(*s)) < 0)
			break;
	}
out:
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, const char *const *script)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof *f);
	snprintf(f->path, sizeof f->path, "/tmp/agent-client-test.%d.sock", (int)getpid());
	unlink(f->path);
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof sun), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->script = script;
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_end(struct fake *f)
{
	pthread_join(f->thread, NULL);
	close(f->lfd);
	unlink(f->path);
	assert_int_equal(f->mismatches, 0);
}

static void test_where_with_notices_interleaved(void **state)
{
	static const char *const script[] = {
		GREET, "<WATCH s", "OK WATCH " UUID "\n", "NOTICE " MASTER1,
		"<WHERE s",
		/* a notice arrives before the reply: kept for later */
		"NOTICE NONE " UUID " the master lease is free\n", MASTER2,
		"<WHERE nope", "ERR unknown store 'nope' (give a uuid)\n",
		"<UNWATCH s", "NOTICE " MASTER2, "OK UNWATCH " UUID "\n",
		"!close", NULL,
	};
	struct fake f;
	struct agent_client *c;
	struct agent_master m;
	char uuid[AGENT_UUID_LEN];

	(void)state;
	fake_start(&f, script);
	assert_int_equal(agent_client_connect(f.path, 2000, &c), 0);
	assert_string_equal(agent_client_node(c), "n1");
	assert_int_equal(agent_client_host_id(c), 4);
	assert_int_equal(agent_client_watch(c, "s", uuid, 2000), 0);
	assert_string_equal(uuid, UUID);
	assert_int_equal(agent_client_where(c, "s", &m, 2000), 0);
	assert_int_equal(m.state, AGENT_MASTER_VALID);
	assert_int_equal(m.host_id, 2);
	assert_string_equal(m.address, "127.0.0.12");
	assert_int_equal(m.port, 7002);
	assert_int_equal(agent_client_where(c, "nope", &m, 2000), -ENOENT);
	assert_non_null(strstr(err_get(), "unknown store 'nope'"));
	assert_int_equal(agent_client_unwatch(c, "s", 2000), 0);
	/* the notices, in order */
	assert_int_equal(agent_client_next_notice(c, &m, 0), 0);
	assert_int_equal(m.state, AGENT_MASTER_VALID);
	assert_int_equal(m.host_id, 1);
	assert_int_equal(agent_client_next_notice(c, &m, 0), 0);
	assert_int_equal(m.state, AGENT_MASTER_NONE);
	assert_string_equal(m.why, "the master lease is free");
	assert_string_equal(m.uuid, UUID);
	assert_int_equal(agent_client_next_notice(c, &m, 0), 0);
	assert_int_equal(m.host_id, 2);
	/* then the agent goes away */
	assert_int_equal(agent_client_next_notice(c, &m, 2000), -ENOTCONN);
	assert_int_equal(agent_client_where(c, "s", &m, 100), -ENOTCONN);
	agent_client_close(c);
	fake_end(&f);
}

static void test_timeouts(void **state)
{
	static const char *const script[] = {
		GREET, "<WATCH s", "OK WATCH " UUID "\n", "<WHERE s", "<QUIT", "!close", NULL,
	};
	struct fake f;
	struct agent_client *c;
	struct agent_master m;
	char line[AGENT_LINE_MAX];

	(void)state;
	fake_start(&f, script);
	assert_int_equal(agent_client_connect(f.path, 2000, &c), 0);
	assert_int_equal(agent_client_watch(c, "s", NULL, 2000), 0);
	assert_int_equal(agent_client_next_notice(c, &m, 0), -ETIMEDOUT);
	assert_int_equal(agent_client_next_notice(c, &m, 30), -ETIMEDOUT);
	assert_int_equal(agent_client_where(c, "s", &m, 30), -ETIMEDOUT);
	/* the fake never answers WHERE; QUIT makes it hang up */
	assert_int_equal(agent_client_request(c, "QUIT", line, sizeof line, 2000), -ENOTCONN);
	agent_client_close(c);
	fake_end(&f);
}

static void test_bad_agents(void **state)
{
	static const char *const not_agent[] = { "SSH-2.0-OpenSSH_9\n", "!close", NULL };
	static const char *const other_version[] = { "CSNAP-AGENT 2 node=x\n", "!close", NULL };
	static const char *const silent[] = { "<never", NULL };
	static const char *const garbage[] = {
		GREET, "<WHERE s", "MASTER " UUID " host_id=1 address=a port=99999 lver=1 epoch=1 "
		"generation=1\n", "<WHERE s", "GARBAGE\n", "<WATCH s", "WHAT\n", NULL,
	};
	struct fake f;
	struct agent_client *c;
	struct agent_master m;

	(void)state;
	fake_start(&f, not_agent);
	assert_int_equal(agent_client_connect(f.path, 2000, &c), -EPROTO);
	assert_null(c);
	fake_end(&f);
	fake_start(&f, other_version);
	assert_int_equal(agent_client_connect(f.path, 2000, &c), -EPROTONOSUPPORT);
	fake_end(&f);
	fake_start(&f, garbage);
	assert_int_equal(agent_client_connect(f.path, 2000, &c), 0);
	assert_int_equal(agent_client_where(c, "s", &m, 2000), -EPROTO);
	assert_int_equal(agent_client_where(c, "s", &m, 2000), -EPROTO);
	assert_int_equal(agent_client_watch(c, "s", NULL, 2000), -EPROTO);
	agent_client_close(c);
	fake_end(&f);
	/* connect timeout: the socket accepts but never greets */
	fake_start(&f, silent);
	assert_int_equal(agent_client_connect(f.path, 50, &c), -ETIMEDOUT);
	fake_end(&f);	/* the fake saw our close as EOF */
	/* nobody there */
	assert_int_equal(agent_client_connect("/nonexistent/agent.sock", 100, &c), -ENOENT);
	assert_non_null(strstr(err_get(), "is `csnap agent` running"));
}

static void test_overlong_reply(void **state)
{
	static char longline[3 * AGENT_LINE_MAX];
	static const char *script[] = { GREET, "<WHERE s", longline, NULL };
	struct fake f;
	struct agent_client *c;
	struct agent_master m;
	char path[200];

	(void)state;
	memset(longline, 'x', sizeof longline - 2);
	longline[sizeof longline - 2] = '\n';
	fake_start(&f, script);
	assert_int_equal(agent_client_connect(f.path, 2000, &c), 0);
	assert_int_equal(agent_client_where(c, "s", &m, 2000), -EPROTO);
	agent_client_close(c);
	fake_end(&f);
	assert_int_equal(agent_socket_path("/run/csnap", path, sizeof path), 0);
	assert_string_equal(path, "/run/csnap/agent.sock");
	char longdir[200];
	memset(longdir, 'd', sizeof longdir - 1);
	longdir[sizeof longdir - 1] = 0;
	assert_int_equal(agent_socket_path(longdir, path, sizeof path), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_where_with_notices_interleaved),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_bad_agents),
		cmocka_unit_test(test_overlong_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
