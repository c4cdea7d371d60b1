/*
 * src/agent/agent_proto.c - parse and format the agent's text protocol
 * (see agent_proto.h for the grammar).  Everything that comes from a peer
 * is checked: length, characters, verbs, numbers and their ranges.
 */
#include "src/agent/agent_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct { const char *name; enum agent_verb verb; bool arg; } verbs[] = {
	{ "PING", AGENT_PING, false },
	{ "WHERE", AGENT_WHERE, true },
	{ "WATCH", AGENT_WATCH, true },
	{ "UNWATCH", AGENT_UNWATCH, true },
	{ "STORES", AGENT_STORES, false },
	{ "QUIT", AGENT_QUIT, false },
};

void agent_sanitize(char *dst, size_t len, const char *src)
{
	size_t i = 0;

	if (!len)
		return;
	for (; src && src[i] && i + 1 < len; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = ch >= 0x20 && ch <= 0x7e ? (char)ch : '?';
	}
	dst[i] = 0;
}

void agent_sanitize_tail(char *dst, size_t len, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (len > 4 && n >= len) {
		memcpy(dst, "...", 3);
		agent_sanitize(dst + 3, len - 3, src + n - (len - 4));
		return;
	}
	agent_sanitize(dst, len, src);
}

static int why_set(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int agent_parse_request(const char *line, size_t len, struct agent_request *req,
			char *why, size_t whylen)
{
	char verb[16];
	size_t vlen, i;

	memset(req, 0, sizeof *req);
	if (len && line[len - 1] == '\r')
		len--;
	if (len + 1 > AGENT_LINE_MAX)
		return why_set(why, whylen, "line too long (max %d bytes)", AGENT_LINE_MAX - 1);
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 0x20 || ch > 0x7e)
			return why_set(why, whylen, "bad character 0x%02x at byte %zu", ch, i);
	}
	if (!len)
		return why_set(why, whylen, "empty request");
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	if (vlen >= sizeof verb) {
		return why_set(why, whylen, "unknown verb '%.*s...' (try PING, WHERE, WATCH, "
			       "UNWATCH, STORES, QUIT)", 15, line);
	}
	memcpy(verb, line, vlen);
	verb[vlen] = 0;
	for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (!strcasecmp(verb, verbs[i].name))
			break;
	if (i == sizeof verbs / sizeof verbs[0])
		return why_set(why, whylen, "unknown verb '%s' (try PING, WHERE, WATCH, UNWATCH, "
			       "STORES, QUIT)", verb);
	req->verb = verbs[i].verb;
	if (!verbs[i].arg) {
		if (vlen != len)
			return why_set(why, whylen, "%s takes no argument", verbs[i].name);
		return 0;
	}
	if (vlen + 1 >= len)
		return why_set(why, whylen, "%s needs a store (uuid, name or device)",
			       verbs[i].name);
	const char *arg = line + vlen + 1;
	size_t alen = len - vlen - 1;

	if (alen >= AGENT_ARG_MAX)
		return why_set(why, whylen, "store name too long (max %d bytes)", AGENT_ARG_MAX - 1);
	if (arg[0] == ' ' || arg[alen - 1] == ' ')
		return why_set(why, whylen, "store name with leading or trailing spaces");
	memcpy(req->arg, arg, alen);
	req->arg[alen] = 0;
	return 0;
}

const char *agent_master_state_name(enum agent_master_state s)
{
	switch (s) {
	case AGENT_MASTER_VALID: return "MASTER";
	case AGENT_MASTER_NONE: return "NONE";
	case AGENT_MASTER_CHANGING: return "CHANGING";
	}
	return "?";
}

bool agent_master_same(const struct agent_master *a, const struct agent_master *b)
{
	if (a->state != b->state || strcmp(a->uuid, b->uuid))
		return false;
	if (a->state != AGENT_MASTER_VALID)
		return true;
	return a->host_id == b->host_id && a->generation == b->generation &&
	       a->lver == b->lver && a->epoch == b->epoch && a->port == b->port &&
	       !strcmp(a->address, b->address);
}

/* A token we put on the wire: non-empty, printable, no spaces, no '='. */
static bool token_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	if (!n || n == max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '=')
			return false;
	return true;
}

static int finish(int n, size_t len)
{
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= len || n + 1 > AGENT_LINE_MAX)
		return -ENOSPC;
	return n;
}

int agent_format_master(const struct agent_master *m, bool notice, char *buf, size_t len)
{
	const char *pre = notice ? "NOTICE " : "";
	char why[AGENT_WHY_LEN];
	int n;

	if (!token_ok(m->uuid, sizeof m->uuid))
		return -EINVAL;
	switch (m->state) {
	case AGENT_MASTER_VALID:
		if (!token_ok(m->address, sizeof m->address) || !m->host_id)
			return -EINVAL;
		n = snprintf(buf, len, "%sMASTER %s host_id=%" PRIu32 " address=%s port=%u lver=%"
			     PRIu64 " epoch=%" PRIu64 " generation=%" PRIu64 "\n", pre, m->uuid,
			     m->host_id, m->address, m->port, m->lver, m->epoch, m->generation);
		break;
	case AGENT_MASTER_NONE:
	case AGENT_MASTER_CHANGING:
		agent_sanitize(why, sizeof why, m->why[0] ? m->why : "no reason given");
		n = snprintf(buf, len, "%s%s %s %s\n", pre, agent_master_state_name(m->state),
			     m->uuid, why);
		break;
	default:
		return -EINVAL;
	}
	return finish(n, len);
}

int agent_line_field(const char *line, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = line;

	while (*p) {
		while (*p == ' ')
			p++;
		const char *end = strchr(p, ' ');
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			const char *v = p + klen + 1;
			size_t vlen;

			if (!strcmp(key, "why") || !end)
				vlen = strlen(v);
			else
				vlen = (size_t)(end - v);
			if (vlen >= outlen)
				return -ENOSPC;
			memcpy(out, v, vlen);
			out[vlen] = 0;
			return 0;
		}
		if (!end)
			break;
		p = end;
	}
	return -ENOENT;
}

static int field_u64(const char *line, const char *key, uint64_t max, uint64_t *out)
{
	char v[24], *end;
	unsigned long long n;

	if (agent_line_field(line, key, v, sizeof v) < 0 || !v[0] || v[0] < '0' || v[0] > '9')
		return -EPROTO;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || n > max)
		return -EPROTO;
	*out = n;
	return 0;
}

/* Copies the space-delimited word at *P into OUT; advances *P past it. */
static int take_word(const char **p, char *out, size_t outlen)
{
	const char *s = *p, *e = strchr(s, ' ');
	size_t n = e ? (size_t)(e - s) : strlen(s);

	if (!n || n >= outlen)
		return -EPROTO;
	memcpy(out, s, n);
	out[n] = 0;
	*p = e ? e + 1 : s + n;
	return 0;
}

int agent_parse_master(const char *line, struct agent_master *m, bool *notice)
{
	char word[16];
	const char *p = line;
	uint64_t v;

	memset(m, 0, sizeof *m);
	if (notice)
		*notice = false;
	if (!strncmp(p, "NOTICE ", 7)) {
		p += 7;
		if (notice)
			*notice = true;
	}
	if (!strncmp(p, "ERR", 3) && (p[3] == ' ' || !p[3])) {
		agent_sanitize(m->why, sizeof m->why, p[3] ? p + 4 : "error");
		return -EREMOTEIO;
	}
	if (take_word(&p, word, sizeof word) < 0)
		return -EPROTO;
	if (!strcmp(word, "MASTER"))
		m->state = AGENT_MASTER_VALID;
	else if (!strcmp(word, "NONE"))
		m->state = AGENT_MASTER_NONE;
	else if (!strcmp(word, "CHANGING"))
		m->state = AGENT_MASTER_CHANGING;
	else
		return -EPROTO;
	if (take_word(&p, m->uuid, sizeof m->uuid) < 0 || !token_ok(m->uuid, sizeof m->uuid))
		return -EPROTO;
	if (m->state != AGENT_MASTER_VALID) {
		agent_sanitize(m->why, sizeof m->why, p);
		return 0;
	}
	if (field_u64(p, "host_id", UINT32_MAX, &v) < 0 || !v)
		return -EPROTO;
	m->host_id = (uint32_t)v;
	if (field_u64(p, "port", 65535, &v) < 0)
		return -EPROTO;
	m->port = (uint16_t)v;
	if (field_u64(p, "lver", UINT64_MAX, &m->lver) < 0 ||
	    field_u64(p, "epoch", UINT64_MAX, &m->epoch) < 0 ||
	    field_u64(p, "generation", UINT64_MAX, &m->generation) < 0)
		return -EPROTO;
	if (agent_line_field(p, "address", m->address, sizeof m->address) < 0 ||
	    !token_ok(m->address, sizeof m->address))
		return -EPROTO;
	return 0;
}

int agent_format_greeting(const char *node, unsigned host_id, char *buf, size_t len)
{
	char n[AGENT_NAME_LEN];

	agent_sanitize(n, sizeof n, node);
	for (char *c = n; *c; c++)
		if (*c == ' ' || *c == '=')
			*c = '_';
	if (!n[0])
		snprintf(n, sizeof n, "-");
	return finish(snprintf(buf, len, "%s %d node=%s host_id=%u\n", AGENT_GREETING,
			       AGENT_PROTO_VERSION, n, host_id), len);
}

int agent_parse_greeting(const char *line, char node[AGENT_NAME_LEN], unsigned *host_id)
{
	size_t gl = strlen(AGENT_GREETING);
	uint64_t v;
	char *end;
	unsigned long major;

	if (strncmp(line, AGENT_GREETING, gl) || line[gl] != ' ')
		return -EPROTO;
	errno = 0;
	major = strtoul(line + gl + 1, &end, 10);
	if (errno || end == line + gl + 1 || (*end && *end != ' ' && *end != '.'))
		return -EPROTO;
	if (major != AGENT_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (agent_line_field(line, "node", node, AGENT_NAME_LEN) < 0)
		snprintf(node, AGENT_NAME_LEN, "-");
	*host_id = 0;
	if (field_u64(line, "host_id", 2000, &v) == 0)
		*host_id = (unsigned)v;
	return 0;
}

int agent_format_error(char *buf, size_t len, const char *fmt, ...)
{
	char raw[AGENT_LINE_MAX], clean[AGENT_LINE_MAX - 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	agent_sanitize(clean, sizeof clean, raw);
	return finish(snprintf(buf, len, "ERR %s\n", clean), len);
}
