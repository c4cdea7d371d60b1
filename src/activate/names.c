/*
 * src/activate/names.c - kernel-side names of csnap volumes (see names.h).
 * Every function here is pure; the composed strings are the contract with
 * the udev rules in contrib/ and with existing devices after an upgrade, so
 * a change here is a format change.
 */
#include "src/activate/names.h"

#include "utils/assert.h"
#include "utils/snapname.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* One rule for every name csnap shows (utils/snapname.h): a snapshot that
 * can be created can be activated.  */
bool act_name_valid(const char *name)
{
	return name && snap_name_valid(name);
}

/* Appends S with its hyphens doubled at *POS; false when it does not fit. */
static bool put_mangled(char *out, size_t n, size_t *pos, const char *s)
{
	for (; *s; s++) {
		size_t need = *s == '-' ? 2 : 1;
		if (*pos + need >= n)
			return false;
		out[(*pos)++] = *s;
		if (*s == '-')
			out[(*pos)++] = '-';
	}
	CSNAP_ASSERT(*pos < n);
	out[*pos] = 0;
	return true;
}

int act_dm_name(const char *store, const char *volume, char *out, size_t n)
{
	size_t pos;

	if (n)
		out[0] = 0;
	if (!act_name_valid(store) || !act_name_valid(volume))
		return -EINVAL;
	if (n <= strlen(ACT_DM_PREFIX))
		return -ENAMETOOLONG;
	strcpy(out, ACT_DM_PREFIX);
	pos = strlen(out);
	if (!put_mangled(out, n, &pos, store) || pos + 1 >= n)
		goto toolong;
	out[pos++] = '-';
	out[pos] = 0;
	if (!put_mangled(out, n, &pos, volume))
		goto toolong;
	return 0;
toolong:
	out[0] = 0;
	return -ENAMETOOLONG;
}

/* Copies a mangled component from *P up to the first single '-' (or the
 * end), undoubling hyphens; false when it is empty or does not fit.  */
static bool take_mangled(const char **p, char *out, size_t n)
{
	size_t pos = 0;
	const char *s = *p;

	while (*s) {
		if (*s == '-') {
			if (s[1] != '-')
				break;
			s++;	/* a doubled hyphen stands for one */
		}
		if (pos + 1 >= n)
			return false;
		out[pos++] = *s++;
	}
	out[pos] = 0;
	*p = s;
	return pos > 0;
}

int act_dm_name_split(const char *dmname, char *store, size_t sn, char *volume, size_t vn)
{
	const char *p = dmname;

	if (strncmp(p, ACT_DM_PREFIX, strlen(ACT_DM_PREFIX)))
		return -EINVAL;
	p += strlen(ACT_DM_PREFIX);
	if (!take_mangled(&p, store, sn) || *p != '-')
		return -EINVAL;
	p++;
	if (!take_mangled(&p, volume, vn) || *p)
		return -EINVAL;
	if (!act_name_valid(store) || !act_name_valid(volume))
		return -EINVAL;
	return 0;
}

static void uuid_hex(const struct csnap_uuid *u, char hex[33])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		hex[2 * i] = digits[u->b[i] >> 4];
		hex[2 * i + 1] = digits[u->b[i] & 15];
	}
	hex[32] = 0;
}

int act_dm_uuid(const struct csnap_uuid *store, uint32_t id, char *out, size_t n)
{
	char hex[33];
	int len;

	uuid_hex(store, hex);
	if (id == ACT_ORIGIN_ID)
		len = snprintf(out, n, ACT_UUID_PREFIX "%s-origin", hex);
	else
		len = snprintf(out, n, ACT_UUID_PREFIX "%s-%u", hex, id);
	if (len < 0 || (size_t)len >= n) {
		if (n)
			out[0] = 0;
		return -ENAMETOOLONG;
	}
	return 0;
}

bool act_dm_uuid_is_csnap(const char *dmuuid, const struct csnap_uuid *store)
{
	size_t pl = strlen(ACT_UUID_PREFIX);
	char hex[33];

	if (!dmuuid || strncmp(dmuuid, ACT_UUID_PREFIX, pl) || strlen(dmuuid) < pl + 34 ||
	    dmuuid[pl + 32] != '-')
		return false;
	if (!store)
		return true;
	uuid_hex(store, hex);
	return !strncmp(dmuuid + pl, hex, 32);
}

int act_dm_uuid_store(const char *dmuuid, struct csnap_uuid *store)
{
	const char *hex = dmuuid + strlen(ACT_UUID_PREFIX);

	if (!act_dm_uuid_is_csnap(dmuuid, NULL))
		return -EINVAL;
	for (int i = 0; i < 16; i++) {
		unsigned v = 0;
		for (int j = 0; j < 2; j++) {
			char c = hex[2 * i + j];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return -EINVAL;
		}
		store->b[i] = (uint8_t)v;
	}
	return 0;
}

int act_backend_id(const struct csnap_uuid *store, const char *volume, char *out, size_t n)
{
	char u[CSNAP_UUID_STR_LEN];
	int len;

	if (n)
		out[0] = 0;
	if (!act_name_valid(volume))
		return -EINVAL;
	csnap_uuid_unparse(store, u);
	len = snprintf(out, n, ACT_BACKEND_PREFIX "%s:%s", u, volume);
	if (len < 0 || (size_t)len >= n) {
		if (n)
			out[0] = 0;
		return -ENAMETOOLONG;
	}
	return 0;
}

int act_backend_split(const char *backend, struct csnap_uuid *store, char *volume, size_t vn)
{
	size_t pl = strlen(ACT_BACKEND_PREFIX);
	char u[CSNAP_UUID_STR_LEN];
	const char *v;

	if (strncmp(backend, ACT_BACKEND_PREFIX, pl))
		return -EINVAL;
	v = strchr(backend + pl, ':');
	if (!v || (size_t)(v - backend - pl) != CSNAP_UUID_STR_LEN - 1)
		return -EINVAL;
	memcpy(u, backend + pl, CSNAP_UUID_STR_LEN - 1);
	u[CSNAP_UUID_STR_LEN - 1] = 0;
	if (csnap_uuid_parse(u, store) < 0)
		return -EINVAL;
	v++;
	/* sysfs shows the string with a trailing newline */
	size_t len = strcspn(v, "\n");
	if (!len || len >= vn)
		return -EINVAL;
	memcpy(volume, v, len);
	volume[len] = 0;
	return act_name_valid(volume) ? 0 : -EINVAL;
}

int act_linear_table(uint64_t size, unsigned major, unsigned minor, char *out, size_t n)
{
	uint64_t sectors = size / 512;
	int len;

	if (n)
		out[0] = 0;
	if (!sectors)
		return -EINVAL;
	len = snprintf(out, n, "0 %llu linear %u:%u 0", (unsigned long long)sectors, major, minor);
	if (len < 0 || (size_t)len >= n) {
		if (n)
			out[0] = 0;
		return -ENAMETOOLONG;
	}
	return 0;
}
