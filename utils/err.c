/*
 * utils/err.c - see err.h.
 */
#include "utils/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static __thread char err_buf[512];
static __thread int err_errnum;

int err_set(int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof err_buf, fmt, ap);
	va_end(ap);
	err_errnum = errnum;
	return -errnum;
}

int err_prefix(int errnum, const char *fmt, ...)
{
	char prefix[256], old[sizeof err_buf];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	snprintf(old, sizeof old, "%s", err_get());
	snprintf(err_buf, sizeof err_buf, "%s: %s", prefix, old);
	err_errnum = errnum;
	return -errnum;
}

const char *err_get(void)
{
	if (err_buf[0])
		return err_buf;
	return err_errnum ? strerror(err_errnum) : "unknown error";
}

void err_clear(void)
{
	err_buf[0] = '\0';
	err_errnum = 0;
}
