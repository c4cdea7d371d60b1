/*
 * utils/log.c - see log.h.
 *
 * Each message is formatted into one buffer and written with a single
 * write(2) so lines from concurrent threads and processes never interleave.
 * Control characters in a message are escaped (utils/escape.h): a message
 * is always exactly one line.
 */
#include "utils/log.h"

#include "utils/clock.h"
#include "utils/escape.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char log_prog[64] = "csnap";
static volatile int log_level_now = LOG_LEVEL_INFO;
static int log_syslog;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_init(const char *prog, enum log_level level)
{
	if (prog)
		snprintf(log_prog, sizeof log_prog, "%s", prog);
	log_level_now = level;
}

void log_set_level(enum log_level level) { log_level_now = level; }
enum log_level log_get_level(void) { return log_level_now; }

void log_use_syslog(int on)
{
	log_syslog = on;
	if (on)
		openlog(log_prog, LOG_PID, LOG_DAEMON);
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, level_names[i]))
			return i;
	if (!strcmp(s, "warn"))
		return LOG_LEVEL_WARN;
	return -1;
}

static int log_want_time(void)
{
	static int want = -1;	/* a benign race: every thread finds the same */

	if (want < 0)
		want = getenv("CSNAP_LOG_TIME") != NULL;
	return want;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048], msg[2048];
	int n;

	if ((int)level > log_level_now)
		return;
	/* One line whatever the arguments hold (names, paths, peers' text):
	 * control characters are escaped here, for every caller.  */
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (n < 0)
		return;
	if (log_syslog) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		syslog(prio[level], "%s", str_escape(line, sizeof line, msg));
		return;
	}
	n = 0;
	if (log_want_time()) {
		/* CSNAP_LOG_TIME set: wall-clock ms, to line up the logs of
		 * several processes (failover timing).  */
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld ", tm.tm_hour, tm.tm_min,
			     tm.tm_sec, ts.tv_nsec / 1000000);
	}
	n += snprintf(line + n, sizeof line - n, "%s[%d]: %s: ", log_prog, (int)getpid(),
		      level_names[level]);
	if (n < 0)
		return;
	str_escape(line + n, sizeof line - n - 1, msg);
	n += (int)strlen(line + n);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
{
	long long now = csnap_now_ms();
	char msg[1024];
	va_list ap;

	if ((int)level > log_level_now)
		return;
	if (now - l->window_start_ms >= LOG_LIMIT_WINDOW_MS) {
		l->window_start_ms = now;
		l->logged = 0;
	}
	if (l->logged >= LOG_LIMIT_BURST) {
		l->dropped++;
		return;
	}
	l->logged++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (l->dropped)
		log_msg(level, "%s (%u similar messages not logged)", msg, l->dropped);
	else
		log_msg(level, "%s", msg);
	l->dropped = 0;
}
