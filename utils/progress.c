/*
 * utils/progress.c - see progress.h.
 */
#include "utils/progress.h"

#include "utils/clock.h"

#include <stdint.h>

void (*csnap_progress_hook)(void);
unsigned csnap_progress_count;
static int64_t last_ms;

void csnap_progress_check(void)
{
	int64_t now = csnap_now_ms();

	if (now - last_ms < CSNAP_PROGRESS_MS)
		return;
	last_ms = now;
	if (csnap_progress_hook)
		csnap_progress_hook();
}
