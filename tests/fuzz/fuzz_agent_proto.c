/*
 * tests/fuzz/fuzz_agent_proto.c - the agent's line protocol
 * (src/agent/agent_proto.c) from both ends: request lines a local client
 * sends to `csnap agent`, and master / greeting lines a client reads back.
 *
 * Input: the line (no newline; at most a little over AGENT_LINE_MAX, the
 * most the agent buffers).  Every parser sees it; what a parser accepts
 * must hold its documented bounds, and a master line that parses and
 * formats again must parse to the same answer (what a watcher compares).
 *
 * CSNAP_FUZZ_SEEDS=DIR writes seed lines (every request verb, and the
 * master, NONE, ERR and greeting lines the agent formats) and exits.
 */
#include "tests/fuzz/fuzz.h"

#include "src/agent/agent_proto.h"

#include <errno.h>
#include <string.h>

/* A seed is one line, without its newline.  */
static void seed(const char *dir, int i, const char *line)
{
	fuzz_write_seed(dir, i, line, strcspn(line, "\n"));
}

static void make_seeds(const char *dir)
{
	static const char *const req[] = {
		"PING", "WHERE store1", "watch 0123abcd-0000-4000-8000-0123456789ab",
		"UNWATCH /dev/vg/snapstore", "STORES", "QUIT\r",
	};
	struct agent_master m = { .state = AGENT_MASTER_VALID,
				  .uuid = "0123abcd-0000-4000-8000-0123456789ab", .host_id = 2,
				  .generation = 4, .lver = 7, .epoch = 1, .address = "127.0.0.12",
				  .port = 4000 };
	char line[AGENT_LINE_MAX];
	int i = 0;

	for (size_t k = 0; k < sizeof req / sizeof req[0]; k++)
		seed(dir, i++, req[k]);
	if (agent_format_master(&m, true, line, sizeof line) < 0)
		exit(1);
	seed(dir, i++, line);
	m.state = AGENT_MASTER_CHANGING;
	strcpy(m.why, "lease-owner record unreadable");
	if (agent_format_master(&m, false, line, sizeof line) < 0)
		exit(1);
	seed(dir, i++, line);
	agent_format_error(line, sizeof line, "unknown store %s", "x");
	seed(dir, i++, line);
	agent_format_greeting("node1", 3, line, sizeof line);
	seed(dir, i++, line);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup("fuzz_agent_proto");
	if (getenv("CSNAP_FUZZ_SEEDS"))
		make_seeds(getenv("CSNAP_FUZZ_SEEDS"));
	return 0;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static void master_line(const char *line)
{
	struct agent_master m, m2;
	char buf[AGENT_LINE_MAX + 64];
	bool notice;
	int n, r = agent_parse_master(line, &m, &notice);

	FUZZ_CHECK(strlen(m.why) < sizeof m.why && printable(m.why), "why not sanitised");
	if (r < 0) {
		FUZZ_CHECK(r == -EPROTO || r == -EREMOTEIO, "unexpected error %d", r);
		return;
	}
	FUZZ_CHECK(strlen(m.uuid) < sizeof m.uuid && strlen(m.address) < sizeof m.address,
		   "unterminated field");
	FUZZ_CHECK(m.state != AGENT_MASTER_VALID || (m.host_id && m.address[0]),
		   "a master without host_id or address");
	n = agent_format_master(&m, notice, buf, sizeof buf);
	if (n < 0)
		return;		/* e.g. longer than a line once formatted */
	FUZZ_CHECK((size_t)n == strlen(buf) && n > 0 && buf[n - 1] == '\n' && n <= AGENT_LINE_MAX,
		   "formatted line is malformed");
	buf[n - 1] = 0;
	FUZZ_CHECK(printable(buf), "formatted line not printable");
	r = agent_parse_master(buf, &m2, &notice);
	FUZZ_CHECK(r == 0, "own line refused: %s", buf);
	FUZZ_CHECK(agent_master_same(&m, &m2), "round trip changed the answer: %s", buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_request req;
	char why[128], node[AGENT_NAME_LEN], line[AGENT_LINE_MAX + 64], out[AGENT_LINE_MAX];
	unsigned host_id;
	size_t len = size < sizeof line - 1 ? size : sizeof line - 1;
	int r;

	memcpy(line, data, len);
	line[len] = 0;

	/* The agent's side: a request, as read up to the newline.  */
	memset(why, 'x', sizeof why);
	r = agent_parse_request(line, len, &req, why, sizeof why);
	if (r == 0) {
		FUZZ_CHECK(req.verb >= AGENT_PING && req.verb <= AGENT_QUIT, "bad verb %d", req.verb);
		FUZZ_CHECK(strlen(req.arg) < sizeof req.arg && printable(req.arg), "bad argument");
	} else {
		FUZZ_CHECK(r == -EINVAL && memchr(why, 0, sizeof why), "bad refusal");
	}
	/* The error line the agent would answer with, quoting the input.  */
	r = agent_format_error(out, sizeof out, "unknown store %s", line);
	FUZZ_CHECK(r > 0 && out[r - 1] == '\n' && !memchr(out, '\n', (size_t)r - 1),
		   "error reply is not one line");

	/* The client's side (C strings: the client cuts at NUL and newline). */
	master_line(line);
	memset(node, 'x', sizeof node);
	r = agent_parse_greeting(line, node, &host_id);
	if (r == 0)
		FUZZ_CHECK(memchr(node, 0, sizeof node) && host_id <= 2000, "bad greeting fields");
	if (len > 1) {
		/* a key taken from the line's first bytes */
		char key[8];
		size_t kl = (size_t)(line[0] & 7);

		memcpy(key, line + 1, kl < len - 1 ? kl : len - 1);
		key[kl < len - 1 ? kl : len - 1] = 0;
		memset(out, 'x', 16);
		if (agent_line_field(line, key, out, 16) == 0)
			FUZZ_CHECK(memchr(out, 0, 16), "field not terminated");
	}
	return 0;
}
