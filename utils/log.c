/*
 * utils/log.c - see log.h.
 *
 * Each message is formatted into one buffer and written with a single
 * write(2) so lines from concurrent threads and processes never interleave.
 */
#include "utils/log.h"

#include <pthread.h>
#include <stdio.h>
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

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	int n;

	if ((int)level > log_level_now)
		return;
	if (log_syslog) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		vsyslog(prio[level], fmt, ap);
		return;
	}
	n = snprintf(line, sizeof line, "%s[%d]: %s: ", log_prog, (int)getpid(),
		     level_names[level]);
	if (n < 0)
		return;
	n += vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
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
