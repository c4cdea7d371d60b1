/*
 * utils/assert.h - invariant checks that run in the debug/sanitizer build.
 *
 * CSNAP_ASSERT(cond) states an invariant that a comment next to it explains.
 * In a build with CSNAP_DEBUG defined (the sanitizer build, `make SAN=1`, and
 * `make DEBUG=1`) a false condition prints the file, line, function and the
 * condition's text and aborts, so a model-based test stops at the first
 * broken invariant instead of at a later wrong answer.  In the release build
 * the condition is not evaluated at all: it must have no side effect.
 *
 * CSNAP_ASSERT_ONLY(x) compiles x only in the debug build (a counter that
 * exists only to be asserted on, say).
 */
#ifndef CSNAP_UTILS_ASSERT_H
#define CSNAP_UTILS_ASSERT_H

#ifdef CSNAP_DEBUG
void csnap_assert_fail(const char *cond, const char *file, int line,
		       const char *func) __attribute__((noreturn));
#define CSNAP_ASSERT(cond) \
	((cond) ? (void)0 : csnap_assert_fail(#cond, __FILE__, __LINE__, __func__))
#define CSNAP_ASSERT_ONLY(x) x
#else
#define CSNAP_ASSERT(cond) ((void)sizeof(!(cond)))
#define CSNAP_ASSERT_ONLY(x)
#endif

#endif
