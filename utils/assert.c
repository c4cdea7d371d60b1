/*
 * utils/assert.c - the failure path of CSNAP_ASSERT (debug build only).
 *
 * Writes one line to stderr with write(2) (no stdio: the failing code may
 * hold stdio's lock or have a corrupt heap) and aborts, so ASan and a core
 * dump show the stack.
 */
#include "utils/assert.h"

#ifdef CSNAP_DEBUG
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void csnap_assert_fail(const char *cond, const char *file, int line, const char *func)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "csnap: assertion failed: %s (%s:%d, %s)\n",
			 cond, file, line, func);
	if (n > 0) {
		ssize_t w = write(2, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
		(void)w;
	}
	abort();
}
#else
/* keep the translation unit non-empty for -Wpedantic compilers */
typedef int csnap_assert_unused;
#endif
