/*
 * utils/err.h - the "why" behind a failed call.
 *
 * Convention across csnap: a function that can fail returns 0 (or a
 * non-negative value) on success and a negative errno on failure, and sets
 * a one-line, human-readable reason with err_set() at the point where the
 * failure is understood best.  Callers that can add context use
 * err_prefix(); the outermost caller (the CLI, a daemon's log) prints
 * err_get().  The message is thread-local.
 */
#ifndef CSNAP_UTILS_ERR_H
#define CSNAP_UTILS_ERR_H

/* Sets the message and returns -errnum (errnum given positive), so
 * `return err_set(EIO, "...")` reads naturally.  */
int err_set(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "PREFIX: " to the current message; returns -errnum.  */
int err_prefix(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The current message, or strerror of the last errno given if none set. */
const char *err_get(void);
void err_clear(void);

#endif
