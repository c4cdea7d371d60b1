/*
 * utils/uuid.h - 16-byte store identities and their text form.
 * Wraps libuuid so the rest of csnap sees one small type.
 */
#ifndef CSNAP_UTILS_UUID_H
#define CSNAP_UTILS_UUID_H

#include <stdbool.h>
#include <stdint.h>

struct csnap_uuid { uint8_t b[16]; };

#define CSNAP_UUID_STR_LEN 37	/* 36 characters and the NUL */

void csnap_uuid_generate(struct csnap_uuid *u);
void csnap_uuid_unparse(const struct csnap_uuid *u, char out[CSNAP_UUID_STR_LEN]);
/* Returns 0, or -EINVAL for text that is not a uuid.  */
int csnap_uuid_parse(const char *s, struct csnap_uuid *u);
bool csnap_uuid_equal(const struct csnap_uuid *a, const struct csnap_uuid *b);
bool csnap_uuid_is_null(const struct csnap_uuid *u);

#endif
