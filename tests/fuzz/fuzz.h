/*
 * tests/fuzz/fuzz.h - shared by the libFuzzer targets tests/fuzz/fuzz_*.c
 * (built by `make fuzz-build`, run by tests/fuzz/run.sh; docs/fuzzing.md).
 *
 * Each target defines LLVMFuzzerTestOneInput (and maybe
 * LLVMFuzzerInitialize).  A target must not fail on any input: bad input is
 * refused by the code under test; FUZZ_CHECK states what must hold for
 * every input (a round trip, a bound) and aborts, so libFuzzer records the
 * input as a crash, when it does not.
 *
 * csnap's log goes nowhere unless CSNAP_FUZZ_LOG names a level ("debug"):
 * millions of "bad message" lines would only slow the fuzzer down.
 */
#ifndef CSNAP_TESTS_FUZZ_H
#define CSNAP_TESTS_FUZZ_H

#include "utils/log.h"

#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond,	\
			__FILE__, __LINE__);				\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

static inline void fuzz_log_setup(const char *prog)
{
	const char *lvl = getenv("CSNAP_FUZZ_LOG");
	int l = lvl ? log_level_parse(lvl) : -1;

	log_init(prog, (enum log_level)l);
}

/* Writes seed input I (DIR/seed-NN, N bytes of B) for CSNAP_FUZZ_SEEDS;
 * exits on failure.  */
static inline void fuzz_write_seed(const char *dir, int i, const void *b, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/seed-%02d", dir, i);
	f = fopen(path, "w");
	if (!f || fwrite(b, 1, n, f) != n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* A scratch path DIR/PREFIX-PID for this process.  A crash ends a
 * fuzzer without its atexit() cleanup, so first remove what processes
 * that no longer exist left there.  */
static inline void fuzz_scratch_path(char *out, size_t len, const char *dir, const char *prefix)
{
	char pat[256];
	glob_t g;

	snprintf(pat, sizeof pat, "%s/%s-*", dir, prefix);
	if (glob(pat, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			long pid = strtol(g.gl_pathv[i] + strlen(pat) - 1, NULL, 10);

			if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
				unlink(g.gl_pathv[i]);
		}
		globfree(&g);
	}
	snprintf(out, len, "%s/%s-%d", dir, prefix, (int)getpid());
}

/* Reads fuzz input as a stream of little-endian fields; past the end
 * every read gives zeros, so a short input is still a valid program.  */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* (two statements each: the order of reads must be defined) */
static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t lo = fuzz_u8(in);

	return (uint16_t)(lo | fuzz_u8(in) << 8);
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t lo = fuzz_u16(in);

	return lo | (uint32_t)fuzz_u16(in) << 16;
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
	uint64_t lo = fuzz_u32(in);

	return lo | (uint64_t)fuzz_u32(in) << 32;
}

/* Up to MAX bytes (fewer at the end of the input); returns how many.  */
static inline size_t fuzz_bytes(struct fuzz_in *in, void *dst, size_t max)
{
	size_t k = max < in->n ? max : in->n;

	for (size_t i = 0; i < k; i++)
		((uint8_t *)dst)[i] = in->p[i];
	in->p += k;
	in->n -= k;
	return k;
}

#endif
