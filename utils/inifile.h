/*
 * utils/inifile.h - reading csnap.conf's INI syntax, line by line, with
 * line numbers (used by utils/config.c).
 *
 * Syntax: "[section]" headers and "key = value" (or "key: value") lines;
 * blank lines and lines whose first non-blank character is ';' or '#' are
 * ignored, and so is a ';' comment after a blank.  Leading and trailing
 * blanks of names and values are dropped.  Lines may be of any length (a
 * value may be a PATH_MAX path).  A UTF-8 byte-order mark at the start is
 * skipped.  Anything else is a syntax error naming the line.
 */
#ifndef CSNAP_UTILS_INIFILE_H
#define CSNAP_UTILS_INIFILE_H

/* Called for each section header (KEY and VALUE NULL) and each key, with
 * its 1-based line number; returns 0 to go on, < 0 (with err_set) to
 * stop.  Keys before any header come with SECTION "".  */
typedef int (*ini_fn)(void *user, const char *section, const char *key, const char *value,
		      int line);

/* Reads PATH.  0, the callback's error, -EINVAL for a syntax error or
 * -errno if PATH cannot be read (each with err_set()).  */
int ini_read(const char *path, ini_fn fn, void *user);

#endif
