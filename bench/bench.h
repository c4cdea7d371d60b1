/*
 * bench/bench.h - what the C benchmarks share: a monotonic clock in
 * seconds, giving up with the library's error message, and a freshly
 * formatted store file.  Header-only: every bench program includes it.
 */
#ifndef CSNAP_BENCH_BENCH_H
#define CSNAP_BENCH_BENCH_H

#include "ioengine/ioengine.h"
#include "src/store/store.h"
#include "utils/err.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline _Noreturn void bench_die(const char *prog, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, err_get());
	exit(1);
}

/* Creates PATH (sparse, STORE_SIZE bytes) and formats it as a store of
 * format VERSION for an origin of ORIGIN_SIZE bytes.  */
static inline void bench_mkstore(const char *prog, const char *path, uint64_t store_size,
				 uint32_t chunk, uint64_t origin_size, uint32_t max_snapshots,
				 uint32_t version)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)store_size) < 0) {
		perror(path);
		exit(1);
	}
	close(fd);
	struct io_dev *dev;
	struct csnap_sb sb;
	if (io_dev_open(path, IO_DEV_RDWR, &dev) < 0)
		bench_die(prog, "open");
	memset(&sb, 0, sizeof sb);
	for (int i = 0; i < 16; i++)
		sb.uuid[i] = (uint8_t)(i * 7 + 1);
	sb.chunk_size = chunk;
	sb.store_size = store_size;
	sb.origin_size = origin_size;
	strcpy(sb.origin_id, "bench");
	sb.max_snapshots = max_snapshots;
	sb.ctime = 1;
	csnap_sb_lease_layout(&sb, 512);
	sb.meta_offset = sb.lease_offset + csnap_lease_area_size(sb.lease_align);
	if (store_format_as(dev, &sb, version) < 0)
		bench_die(prog, "format");
	io_dev_close(dev);
}

#endif
