/*
 * bench/grow.c - how long `csnap grow` and `csnap resize` take in the
 * engine (src/store/grow.c, src/store/resize.c), by store size:
 *   build/bench/grow FILE SIZE_GIB GROW_GIB
 * Formats a sparse store FILE of SIZE_GIB (64 KiB chunks), extends the
 * file by GROW_GIB, times store_grow() (a new data bitmap written at the
 * end, one superblock write) and store_origin_resize() (one superblock
 * write), then requires store_check() to be clean.  FILE should be on the
 * filesystem the store would live on (O_DIRECT); it is removed at the end.
 * There is no peer: lvextend + resize2fs-style growth is not comparable.
 */
#include "bench/bench.h"
#include "src/store/store.h"
#include "utils/clock.h"
#include "utils/err.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what) { bench_die("grow", what); }

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: grow FILE SIZE_GIB GROW_GIB\n");
		return 2;
	}
	const char *path = argv[1];
	uint64_t size = strtoull(argv[2], NULL, 0) << 30, grow = strtoull(argv[3], NULL, 0) << 30;
	bench_mkstore("grow", path, size, 64 << 10, 1ull << 40, 256, CSNAP_FORMAT_VERSION);
	struct store *s;
	struct store_info info;
	if (store_open(path, NULL, &s) < 0)
		die("open");
	store_get_info(s, &info);
	uint64_t n0 = info.data_chunks, added;
	if (truncate(path, (off_t)(size + grow)) < 0) {
		perror(path);
		return 1;
	}
	int64_t t0 = csnap_now_ns();
	if (store_grow(s, &added) < 0)
		die("grow");
	int64_t t1 = csnap_now_ns();
	if (store_origin_resize(s, 2ull << 40) < 0)
		die("resize");
	int64_t t2 = csnap_now_ns();
	printf("store %s GiB -> %llu GiB: data chunks %llu -> %llu; grow %.1f ms, resize %.1f ms\n",
	       argv[2], (unsigned long long)((size + grow) >> 30), (unsigned long long)n0,
	       (unsigned long long)(n0 + added), (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
	store_close(s);
	long p = store_check(path, stderr);
	unlink(path);
	if (p != 0)
		die("check after the grow");
	return 0;
}
