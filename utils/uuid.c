/*
 * utils/uuid.c - see uuid.h.
 */
#include "utils/uuid.h"

#include <errno.h>
#include <string.h>
#include <uuid/uuid.h>

void csnap_uuid_generate(struct csnap_uuid *u) { uuid_generate(u->b); }

void csnap_uuid_unparse(const struct csnap_uuid *u, char out[CSNAP_UUID_STR_LEN])
{
	uuid_unparse_lower(u->b, out);
}

int csnap_uuid_parse(const char *s, struct csnap_uuid *u)
{
	return uuid_parse(s, u->b) ? -EINVAL : 0;
}

bool csnap_uuid_equal(const struct csnap_uuid *a, const struct csnap_uuid *b)
{
	return !memcmp(a->b, b->b, 16);
}

bool csnap_uuid_is_null(const struct csnap_uuid *u)
{
	static const uint8_t zero[16];
	return !memcmp(u->b, zero, 16);
}
