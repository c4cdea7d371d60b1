/*
 * utils/escape.c - see escape.h.
 */
#include "utils/escape.h"

#include <stdio.h>
#include <string.h>

/* The escape for byte C into E (at least 5 bytes); returns its length. */
static size_t escape_byte(unsigned char c, char *e)
{
	if (c >= 0x20 && c != 0x7f) {
		e[0] = (char)c;
		return 1;
	}
	if (c == '\n' || c == '\r' || c == '\t') {
		e[0] = '\\';
		e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		return 2;
	}
	snprintf(e, 5, "\\x%02x", c);
	return 4;
}

char *str_escape_n(char *dst, size_t size, const char *src, size_t len)
{
	size_t total = 0, o = 0, limit;
	char e[5];

	if (!size)
		return dst;
	for (size_t i = 0; i < len; i++)
		total += escape_byte((unsigned char)src[i], e);
	/* All of it, or what fits before "..." and the NUL.  */
	limit = total < size ? total : size >= 4 ? size - 4 : 0;
	for (size_t i = 0; i < len; i++) {
		size_t n = escape_byte((unsigned char)src[i], e);

		if (o + n > limit)
			break;
		memcpy(dst + o, e, n);
		o += n;
	}
	if (total >= size && size >= 4) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

char *str_escape(char *dst, size_t size, const char *src)
{
	return str_escape_n(dst, size, src, src ? strlen(src) : 0);
}
