/*
 * src/agent/agent_proto.h - the text protocol between `csnap agent` and
 * local clients on RUN_DIR/agent.sock: parsing and formatting of its lines.
 * Pure functions, no I/O (unit tested in tests/unit/test_agent_proto.c).
 *
 * Version 1.  Lines are printable ASCII ended by "\n" (a "\r" before it is
 * ignored), at most AGENT_LINE_MAX bytes including the newline.
 *
 *   agent -> client on connect:  CSNAP-AGENT 1 node=NAME host_id=N
 *
 *   request            reply
 *   PING               PONG
 *   WHERE STORE        a master line (below) or ERR
 *   WATCH STORE        OK WATCH UUID, then NOTICE + master line now and on
 *                      every change; or ERR
 *   UNWATCH STORE      OK UNWATCH UUID, or ERR
 *   STORES             STORE name=N uuid=U device=D state=S server=V why=...
 *                      per store, then END
 *   QUIT               BYE, then the agent closes
 *
 *   master lines:
 *   MASTER UUID host_id=H address=A port=P lver=L epoch=E generation=G
 *   NONE UUID REASON...        nobody holds the master lease
 *   CHANGING UUID REASON...    held but not (yet) trustworthy: ask again
 *   ERR REASON...              the request failed (unknown verb, store, ...)
 *
 * STORE is a store uuid, a [store NAME] of the agent's csnap.conf or its
 * configured device; it is the rest of the line after one space.  Verbs
 * are case-insensitive.  Key=value fields may grow in later minor versions:
 * parsers ignore keys they do not know, so clients keep working.
 */
#ifndef CSNAP_AGENT_PROTO_H
#define CSNAP_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_PROTO_VERSION	1
#define AGENT_GREETING		"CSNAP-AGENT"
#define AGENT_LINE_MAX		1024	/* bytes per line, newline included */
#define AGENT_ARG_MAX		256	/* bytes of a STORE argument, NUL included */
#define AGENT_UUID_LEN		37	/* text uuid and NUL */
#define AGENT_ADDR_LEN		64
#define AGENT_WHY_LEN		512
#define AGENT_NAME_LEN		64

enum agent_verb {
	AGENT_PING = 1,
	AGENT_WHERE,
	AGENT_WATCH,
	AGENT_UNWATCH,
	AGENT_STORES,
	AGENT_QUIT,
};

struct agent_request {
	enum agent_verb verb;
	char arg[AGENT_ARG_MAX];	/* "" for verbs without an argument */
};

/* Parses one request line LINE[0..LEN) (no newline; a trailing "\r" is
 * dropped).  0, or -EINVAL with a one-line reason in WHY.  */
int agent_parse_request(const char *line, size_t len, struct agent_request *req,
			char *why, size_t whylen);

enum agent_master_state {
	AGENT_MASTER_VALID = 0,
	AGENT_MASTER_NONE = 1,
	AGENT_MASTER_CHANGING = 2,
};
const char *agent_master_state_name(enum agent_master_state s);

struct agent_master {
	enum agent_master_state state;
	char uuid[AGENT_UUID_LEN];	/* the store, as text */
	uint32_t host_id;		/* VALID only, like the fields below */
	uint64_t generation, lver, epoch;
	char address[AGENT_ADDR_LEN];
	uint16_t port;
	char why[AGENT_WHY_LEN];	/* NONE / CHANGING: the reason */
};

/* Two answers describe the same master situation (for "push on change"):
 * VALID ones when every field but why is equal, others when the state is. */
bool agent_master_same(const struct agent_master *a, const struct agent_master *b);

/* Formats M as a line with newline (prefixed "NOTICE " if NOTICE) into BUF.
 * Returns the length, or -EINVAL (bad field, e.g. an address with spaces)
 * or -ENOSPC.  Control characters in why are replaced by '?'.  */
int agent_format_master(const struct agent_master *m, bool notice, char *buf, size_t len);
/* Parses a master line (no newline), with or without the "NOTICE " prefix
 * (*notice says which; may be NULL).  0; -EPROTO if malformed; -EREMOTEIO
 * for an ERR line, with its reason in m->why.  */
int agent_parse_master(const char *line, struct agent_master *m, bool *notice);

/* Greeting line with newline.  Returns length or -ENOSPC.  */
int agent_format_greeting(const char *node, unsigned host_id, char *buf, size_t len);
/* 0 and the fields, -EPROTO if not a greeting, -EPROTONOSUPPORT for a
 * different major version.  */
int agent_parse_greeting(const char *line, char node[AGENT_NAME_LEN], unsigned *host_id);

/* "ERR " + reason (sanitised, truncated to fit) + newline.  */
int agent_format_error(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Value of KEY in a "KEY=VALUE KEY=VALUE" line (values have no spaces,
 * except a final why=... which runs to the end).  0 or -ENOENT.  */
int agent_line_field(const char *line, const char *key, char *out, size_t outlen);

/* Copies SRC into DST (size LEN) replacing bytes outside 0x20..0x7e by
 * '?' and truncating; always NUL-terminates.  */
void agent_sanitize(char *dst, size_t len, const char *src);
/* The same, but a SRC too long for DST keeps its end behind "...": for
 * paths, whose last part says most.  */
void agent_sanitize_tail(char *dst, size_t len, const char *src);

#endif
