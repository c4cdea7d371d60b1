/*
 * utils/clock.h - the one monotonic clock every component uses.
 *
 * CLOCK_MONOTONIC: never jumps with the wall clock, so deadlines, grace
 * periods and timeouts computed from it hold across NTP steps.  It does not
 * count time the whole machine was suspended; leases are sanlock's business
 * and use sanlock's own clock.
 */
#ifndef CSNAP_UTILS_CLOCK_H
#define CSNAP_UTILS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t csnap_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CLOCK_BOOTTIME: the monotonic clock that also counts time the machine
 * was suspended.  Only for a permission that must run out in real time
 * on the side that holds it (an export's grant, docs/RELIABILITY.md): a
 * suspend must not stretch it.  The side that waits for it to run out
 * uses csnap_now_ns(), which a suspend can only make it wait longer. */
static inline int64_t csnap_boot_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t csnap_now_ms(void)
{
	return csnap_now_ns() / 1000000;
}

/* A deadline timeout_ms from now; -1 (never) for a negative timeout. */
static inline int64_t csnap_deadline_ms(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : csnap_now_ms() + timeout_ms;
}

#endif
