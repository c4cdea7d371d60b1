/*
 * utils/config.c - see config.h.
 */
#include "utils/config.h"
#include "utils/assert.h"
#include "utils/inifile.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default: return -EINVAL;
	}
	if (*end && end[1] && strcasecmp(end + 1, "ib") && strcasecmp(end + 1, "b"))
		return -EINVAL;
	if (shift && v > (~0ULL >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

int parse_bool(const char *s, bool *out)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "on"))
		*out = true;
	else if (!strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->io_timeout = 10;
	snprintf(cfg->run_dir, sizeof cfg->run_dir, "/run/csnap");
	snprintf(cfg->address, sizeof cfg->address, "127.0.0.1");
	cfg->log_level = LOG_LEVEL_INFO;
}

struct seen;

struct parse_state {
	struct config *cfg;
	const char *path;
	struct seen *seen;
	size_t nseen, capseen;
};

static int copy_str(char *dst, size_t size, const char *v)
{
	if (strlen(v) >= size)
		return -ENAMETOOLONG;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* export_tls* keys, in [global] or a [store].  -ENOENT: not one.  */
int config_tls_key(struct config_tls *t, const char *key, const char *v)
{
	if (!strcmp(key, "export_tls")) {
		if (!strcmp(v, "off") || !strcmp(v, "no"))
			t->mode = EXPORT_TLS_OFF;
		else if (!strcmp(v, "on") || !strcmp(v, "yes"))
			t->mode = EXPORT_TLS_ON;
		else if (!strcmp(v, "require"))
			t->mode = EXPORT_TLS_REQUIRE;
		else
			return -EINVAL;
		t->mode_set = true;
		return 0;
	}
	if (!strcmp(key, "export_tls_psk")) {
		t->psk_set = true;
		return copy_str(t->psk, sizeof t->psk, v);
	}
	if (!strcmp(key, "export_tls_certificates")) {
		t->certificates_set = true;
		return copy_str(t->certificates, sizeof t->certificates, v);
	}
	if (!strcmp(key, "export_tls_verify_peer")) {
		t->verify_peer_set = true;
		return parse_bool(v, &t->verify_peer);
	}
	return -ENOENT;
}

int config_tls_resolve(struct config_tls *t, const struct config_tls *dflt)
{
	if (!t->mode_set)
		t->mode = dflt->mode;
	if (!t->psk_set)
		memcpy(t->psk, dflt->psk, sizeof t->psk);
	if (!t->certificates_set)
		memcpy(t->certificates, dflt->certificates, sizeof t->certificates);
	if (!t->verify_peer_set)
		t->verify_peer = dflt->verify_peer;
	t->mode_set = t->psk_set = t->certificates_set = t->verify_peer_set = true;
	if (t->mode != EXPORT_TLS_OFF && !t->psk[0] && !t->certificates[0])
		return err_set(EINVAL, "export_tls = %s needs export_tls_psk or "
			       "export_tls_certificates", t->mode == EXPORT_TLS_ON ? "on" : "require");
	if (t->verify_peer && !t->certificates[0])
		return err_set(EINVAL, "export_tls_verify_peer needs export_tls_certificates "
			       "(the CA that signs client certificates)");
	return 0;
}

static int global_key(struct config *cfg, const char *key, const char *v)
{
	uint64_t n;
	int r = config_tls_key(&cfg->export_tls, key, v);

	if (r != -ENOENT)
		return r;
	if (!strcmp(key, "host_id")) {
		if (parse_u64(v, 1, 2000, &n))
			return -EINVAL;
		cfg->host_id = n;
	} else if (!strcmp(key, "node_name")) {
		return copy_str(cfg->node_name, sizeof cfg->node_name, v);
	} else if (!strcmp(key, "address")) {
		return copy_str(cfg->address, sizeof cfg->address, v);
	} else if (!strcmp(key, "io_timeout")) {
		if (parse_u64(v, 1, 300, &n))
			return -EINVAL;
		cfg->io_timeout = n;
	} else if (!strcmp(key, "run_dir")) {
		return copy_str(cfg->run_dir, sizeof cfg->run_dir, v);
	} else if (!strcmp(key, "log_level")) {
		int l = log_level_parse(v);
		if (l < 0)
			return -EINVAL;
		cfg->log_level = l;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int store_key(struct config_store *st, const char *key, const char *v)
{
	uint64_t n;
	int r = config_tls_key(&st->export_tls, key, v);

	if (r != -ENOENT)
		return r;
	if (!strcmp(key, "device"))
		return copy_str(st->device, sizeof st->device, v);
	if (!strcmp(key, "origin"))
		return copy_str(st->origin, sizeof st->origin, v);
	if (!strcmp(key, "server"))
		return parse_bool(v, &st->server);
	if (!strcmp(key, "server_port")) {
		if (parse_u64(v, 0, 65535, &n))
			return -EINVAL;
		st->server_port = n;
		return 0;
	}
	if (!strcmp(key, "export")) {
		if (!strcmp(v, "unix"))
			st->export_kind = EXPORT_UNIX;
		else if (!strcmp(v, "tcp"))
			st->export_kind = EXPORT_TCP;
		else
			return -EINVAL;
		return 0;
	}
	if (!strcmp(key, "export_socket"))
		return copy_str(st->export_socket, sizeof st->export_socket, v);
	if (!strcmp(key, "export_address"))
		return copy_str(st->export_address, sizeof st->export_address, v);
	if (!strcmp(key, "export_port")) {
		if (parse_u64(v, 1, 65535, &n))
			return -EINVAL;
		st->export_port = n;
		return 0;
	}
	if (!strcmp(key, "export_threads")) {
		if (parse_u64(v, 1, EXPORT_THREADS_MAX, &n))
			return -EINVAL;
		st->export_threads = n;
		return 0;
	}
	if (!strcmp(key, "store_full")) {
		if (!strcmp(v, "release"))
			st->store_full = STORE_FULL_RELEASE;
		else if (!strcmp(v, "fail"))
			st->store_full = STORE_FULL_FAIL;
		else
			return -EINVAL;
		return 0;
	}
	if (!strcmp(key, "cache_size"))
		return parse_size(v, &st->cache_bytes);
	if (!strcmp(key, "heartbeat_timeout")) {
		if (parse_u64(v, 0, 3600, &n))
			return -EINVAL;
		st->heartbeat_ms = (uint32_t)n * 1000;
		return 0;
	}
	if (!strcmp(key, "activate"))
		return copy_str(st->activate, sizeof st->activate, v);
	if (!strcmp(key, "autoactivate")) {
		st->autoactivate_set = true;
		return parse_bool(v, &st->autoactivate);
	}
	if (!strcmp(key, "nbd_timeout")) {
		if (parse_u64(v, 1, 86400, &n))
			return -EINVAL;
		st->nbd_timeout = (uint32_t)n;
		return 0;
	}
	if (!strcmp(key, "nbd_dead_timeout")) {
		if (parse_u64(v, 1, 86400, &n))
			return -EINVAL;
		st->nbd_dead_timeout = (uint32_t)n;
		return 0;
	}
	return -ENOENT;
}

/* Where each section and key was set, to refuse a repeat with both line
 * numbers (a repeated key used to win silently: two host_id lines, two
 * [store s] sections with different devices).  */
struct seen {
	char section[CONFIG_NAME_MAX + 8];
	char key[32];			/* "" for the section header */
	int line;
};

static int seen_check(struct parse_state *ps, const char *section, const char *key, int line)
{
	for (size_t i = 0; i < ps->nseen; i++) {
		const struct seen *e = &ps->seen[i];

		if (strcmp(e->section, section) || strcmp(e->key, key))
			continue;
		if (!*key)
			return err_set(EINVAL, "%s:%d: section [%s] appears again (first at line %d)",
				       ps->path, line, section, e->line);
		return err_set(EINVAL, "%s:%d: [%s]: %s is set again (first at line %d)", ps->path,
			       line, section, key, e->line);
	}
	if (ps->nseen == ps->capseen) {
		size_t cap = ps->capseen ? 2 * ps->capseen : 32;
		struct seen *n = realloc(ps->seen, cap * sizeof *n);

		if (!n)
			return err_set(ENOMEM, "out of memory");
		ps->seen = n;
		ps->capseen = cap;
	}
	struct seen *e = &ps->seen[ps->nseen++];
	snprintf(e->section, sizeof e->section, "%s", section);
	snprintf(e->key, sizeof e->key, "%s", key);
	e->line = line;
	return 0;
}

static struct config_store *find_store_section(struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nstores; i++)
		if (!strcmp(cfg->stores[i].name, name))
			return &cfg->stores[i];
	return NULL;
}

/* A section header: known kind, not seen before.  */
static int config_section(struct parse_state *ps, const char *section, int line)
{
	struct config *cfg = ps->cfg;

	if (strcmp(section, "global") && (strncmp(section, "store ", 6) || !section[6]))
		return err_set(EINVAL, "%s:%d: unknown section [%s]", ps->path, line, section);
	if (strlen(section) >= sizeof ps->seen[0].section)
		return err_set(EINVAL, "%s:%d: store name too long: [%s]", ps->path, line, section);
	int r = seen_check(ps, section, "", line);
	if (r < 0 || strncmp(section, "store ", 6))
		return r;
	if (cfg->nstores == CONFIG_MAX_STORES)
		return err_set(E2BIG, "%s:%d: more than %d stores", ps->path, line, CONFIG_MAX_STORES);
	struct config_store *st = &cfg->stores[cfg->nstores++];
	st->heartbeat_ms = CONFIG_HEARTBEAT_DEFAULT_MS;
	if (copy_str(st->name, sizeof st->name, section + 6))
		return err_set(EINVAL, "%s:%d: store name too long: [%s]", ps->path, line, section);
	return 0;
}

/* ini_read() calls this per header and key; the first problem stops the
 * read, so the message names it exactly.  */
static int config_ini_line(void *user, const char *section, const char *key, const char *value,
			   int line)
{
	struct parse_state *ps = user;
	struct config *cfg = ps->cfg;
	int r;

	if (!key)
		return config_section(ps, section, line);
	if (!strcmp(section, "global")) {
		r = global_key(cfg, key, value);
	} else if (!strncmp(section, "store ", 6) && section[6]) {
		struct config_store *st = find_store_section(cfg, section + 6);

		CSNAP_ASSERT(st);	/* config_section() added it */
		r = st ? store_key(st, key, value) : -ENOENT;
	} else {
		return err_set(EINVAL, "%s:%d: key %s outside a [global] or [store NAME] section",
			       ps->path, line, key);
	}
	if (r == -ENOENT)
		return err_set(EINVAL, "%s:%d: [%s]: unknown key '%s'", ps->path, line, section, key);
	if (r == -ENAMETOOLONG)
		return err_set(EINVAL, "%s:%d: [%s]: %s is too long (%zu bytes)", ps->path, line,
			       section, key, strlen(value));
	if (r)
		return err_set(EINVAL, "%s:%d: [%s]: bad value for %s: '%s'", ps->path, line, section,
			       key, value);
	return seen_check(ps, section, key, line);
}

int config_load_default(const char *path, struct config *cfg)
{
	if (!path)
		path = getenv("CSNAP_CONF");
	if (!path && access(CONFIG_DEFAULT_PATH, R_OK) == 0)
		path = CONFIG_DEFAULT_PATH;
	if (!path) {
		config_defaults(cfg);
		return 0;
	}
	return config_load(path, cfg);
}

int config_load(const char *path, struct config *cfg)
{
	struct parse_state ps = { .cfg = cfg, .path = path };
	int r;

	config_defaults(cfg);
	r = ini_read(path, config_ini_line, &ps);
	free(ps.seen);
	if (r < 0)
		return r;
	if (!cfg->host_id)
		return err_set(EINVAL, "%s: [global] host_id is required (1..2000)", path);
	for (int i = 0; i < cfg->nstores; i++) {
		struct config_store *st = &cfg->stores[i];
		if (!st->device[0])
			return err_set(EINVAL, "%s: [store %s]: device is required", path, st->name);
		char buf[CONFIG_PATH_MAX];

		/* built in a local buffer: st and cfg are one object to gcc */
		if (!st->export_socket[0]) {
			if (snprintf(buf, sizeof buf, "%s/%s.sock", cfg->run_dir, st->name)
			    >= (int)sizeof buf)
				return err_set(ENAMETOOLONG, "%s: [store %s]: export socket path too long",
					       path, st->name);
			memcpy(st->export_socket, buf, sizeof buf);
		}
		if (!st->export_address[0])
			memcpy(st->export_address, cfg->address, sizeof st->export_address);
		if (!st->export_port)
			st->export_port = 10809;
		if (config_tls_resolve(&st->export_tls, &cfg->export_tls) < 0) {
			char why[256];

			snprintf(why, sizeof why, "%s", err_get());
			return err_set(EINVAL, "%s: [store %s]: %s", path, st->name, why);
		}
		if (!st->activate[0])
			snprintf(st->activate, sizeof st->activate, "origin");
		if (!st->autoactivate_set)
			st->autoactivate = true;
		/* longer than a whole-node master hand-over (sanlock's host-dead
		 * time, 8 x io_timeout + 60 s): a request is re-sent on a new
		 * connection only when its old one cannot still execute it */
		if (!st->nbd_timeout)
			st->nbd_timeout = 8 * cfg->io_timeout + 120;
		if (!st->nbd_dead_timeout)
			st->nbd_dead_timeout = 120;
	}
	if (!cfg->node_name[0])
		snprintf(cfg->node_name, sizeof cfg->node_name, "host%u", cfg->host_id);
	return 0;
}

const struct config_store *config_find_store(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nstores; i++)
		if (!strcmp(cfg->stores[i].name, name) || !strcmp(cfg->stores[i].device, name))
			return &cfg->stores[i];
	return NULL;
}
