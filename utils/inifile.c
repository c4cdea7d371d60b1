/*
 * utils/inifile.c - see inifile.h.
 */
#include "utils/inifile.h"

#include "utils/err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Cuts a ';' comment that follows a blank.  */
static void cut_comment(char *s)
{
	for (char *p = s; *p; p++) {
		if (*p == ';' && p > s && isspace((unsigned char)p[-1])) {
			*p = '\0';
			return;
		}
	}
}

static int parse_line(const char *path, char *line, int lineno, char **section, ini_fn fn,
		      void *user)
{
	char *s = trim(line), *sep;

	if (!*s || *s == ';' || *s == '#')
		return 0;
	cut_comment(s);
	s = trim(s);
	if (*s == '[') {
		char *end = strchr(s, ']'), *name;

		if (!end || *trim(end + 1))
			return err_set(EINVAL, "%s:%d: syntax error: a section header is \"[name]\"",
				       path, lineno);
		*end = '\0';
		name = strdup(trim(s + 1));
		if (!name)
			return err_set(ENOMEM, "out of memory");
		free(*section);
		*section = name;
		return fn(user, name, NULL, NULL, lineno);
	}
	sep = strpbrk(s, "=:");
	if (!sep || sep == s)
		return err_set(EINVAL, "%s:%d: syntax error: expected \"key = value\"", path, lineno);
	*sep = '\0';
	return fn(user, *section ? *section : "", trim(s), trim(sep + 1), lineno);
}

int ini_read(const char *path, ini_fn fn, void *user)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, *section = NULL;
	size_t cap = 0;
	int lineno = 0, r = 0;

	if (!f)
		return err_set(errno, "%s: cannot open: %s", path, strerror(errno));
	for (ssize_t n; r == 0 && (n = getline(&line, &cap, f)) >= 0;) {
		char *s = line;

		lineno++;
		if ((size_t)n != strlen(line))
			r = err_set(EINVAL, "%s:%d: syntax error: NUL byte in the line", path, lineno);
		else {
			if (lineno == 1 && !strncmp(s, "\xef\xbb\xbf", 3))
				s += 3;
			r = parse_line(path, s, lineno, &section, fn, user);
		}
	}
	if (r == 0 && ferror(f))
		r = err_set(EIO, "%s: read error", path);
	free(line);
	free(section);
	fclose(f);
	return r;
}
