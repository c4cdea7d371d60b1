/*
 * utils/escape.h - making strings that came from users and peers safe to
 * print: every message and log line csnap writes is one line, whatever a
 * snapshot name, path, option or peer-supplied string contains.
 *
 * Control characters (bytes below 0x20, and 0x7f) become C escapes (\n,
 * \r, \t, \xHH); everything else, UTF-8 included, is kept.  The log
 * (utils/log.c) and the CLI's error output (src/cli/main.c) escape the
 * whole formatted line, so no caller can forget; str_escape() is the one
 * routine that does it, also for output that goes elsewhere (stdout).
 */
#ifndef CSNAP_UTILS_ESCAPE_H
#define CSNAP_UTILS_ESCAPE_H

#include <stddef.h>

/* Writes the escaped form of the LEN bytes at SRC into DST (SIZE > 0),
 * always NUL-terminated; when it does not fit it is cut at a whole escape
 * and ends in "...".  Returns DST.  */
char *str_escape_n(char *dst, size_t size, const char *src, size_t len);
/* The same for a NUL-terminated string.  */
char *str_escape(char *dst, size_t size, const char *src);

/* A printable copy of S in a buffer that lives to the end of the
 * enclosing full expression's block: for printf arguments.  */
#define STR_ESC_SIZE	1024
#define ESC(s)	str_escape((char[STR_ESC_SIZE]){ 0 }, STR_ESC_SIZE, (s))

#endif
