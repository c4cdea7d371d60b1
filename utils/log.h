/*
 * utils/log.h - leveled logging for every csnap component.
 *
 * One process-wide logger: a level threshold, a program name, and a sink
 * (stderr by default, syslog for daemons).  Messages are single lines;
 * the logger adds the trailing newline.  Safe to call from any thread.
 */
#ifndef CSNAP_UTILS_LOG_H
#define CSNAP_UTILS_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN  = 1,
	LOG_LEVEL_INFO  = 2,
	LOG_LEVEL_DEBUG = 3,
};

/* prog: name printed in front of each line (copied).  */
void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Route messages to syslog(3) instead of stderr (daemons).  */
void log_use_syslog(int on);
/* Parse "error", "warn", "info", "debug"; returns -1 if unknown.  */
int log_level_parse(const char *s);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Messages a peer can cause at will (refused connections, accept
 * failures): at most LOG_LIMIT_BURST per LOG_LIMIT_WINDOW_MS for one
 * struct log_limit; the next one logged after a pause says how many were
 * dropped.  Zero-initialize.  Single-threaded users only.  */
#define LOG_LIMIT_BURST		10
#define LOG_LIMIT_WINDOW_MS	10000
struct log_limit {
	long long window_start_ms;
	unsigned logged;	/* in this window */
	unsigned dropped;	/* since the last message logged */
};
void log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_get_level() >= LOG_LEVEL_DEBUG) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
