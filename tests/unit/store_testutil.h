/*
 * tests/unit/store_testutil.h - helpers shared by the store unit tests:
 * scratch store files under /var/tmp (ext4, so O_DIRECT is real), a
 * one-call mkstore, sparse copies, the clean check every test ends
 * with, and the cut-point harness (tu_cuts_*).
 */
#ifndef CSNAP_TESTS_STORE_TESTUTIL_H
#define CSNAP_TESTS_STORE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ioengine/ioengine.h"
#include "src/store/store.h"
#include "utils/err.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline char *tu_tmpfile(const char *tag, uint64_t size)
{
	char *path = malloc(128);
	snprintf(path, 128, "/var/tmp/store-ut-%s-%d-XXXXXX", tag, (int)getpid());
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		perror(path);
		abort();
	}
	close(fd);
	return path;
}

static inline void tu_sb_defaults(struct csnap_sb *sb, uint64_t store_size,
				  uint32_t chunk, uint64_t origin_size, uint32_t maxsnap)
{
	memset(sb, 0, sizeof *sb);
	for (int i = 0; i < 16; i++)
		sb->uuid[i] = (uint8_t)(rand() & 0xff);
	sb->chunk_size = chunk;
	sb->store_size = store_size;
	sb->origin_size = origin_size;
	strcpy(sb->origin_id, "size:test");
	sb->max_snapshots = maxsnap;
	csnap_sb_lease_layout(sb, 512);
	sb->meta_offset = sb->lease_offset + csnap_lease_area_size(sb->lease_align);
	sb->ctime = 1;
}

/* Formats a new store file; returns its path (free() it, unlink it).  */
static inline char *tu_mkstore(const char *tag, uint64_t store_size, uint32_t chunk,
			       uint64_t origin_size, uint32_t maxsnap)
{
	char *path = tu_tmpfile(tag, store_size);
	struct io_dev *dev;
	struct csnap_sb sb;

	if (io_dev_open(path, IO_DEV_RDWR, &dev) < 0) {
		fprintf(stderr, "open %s: %s\n", path, err_get());
		abort();
	}
	tu_sb_defaults(&sb, store_size, chunk, origin_size, maxsnap);
	if (store_format(dev, &sb) < 0) {
		fprintf(stderr, "format %s: %s\n", path, err_get());
		abort();
	}
	io_dev_close(dev);
	return path;
}

/* A sparse copy of FROM at TO (the cut tests replay onto copies).  */
static inline void tu_copy_file(const char *from, const char *to)
{
	char cmd[512];

	snprintf(cmd, sizeof cmd, "cp --sparse=always %s %s", from, to);
	assert_int_equal(system(cmd), 0);
}

/* The store at PATH (closed) checks clean from scratch; then it is
 * removed and PATH freed.  */
static inline void tu_check_remove(char *path)
{
	assert_int_equal(store_check(path, stderr), 0);
	unlink(path);
	free(path);
}

/* S checks clean open, then closed (tu_check_remove).  */
static inline void tu_close_check_remove(struct store *s, char *path)
{
	assert_int_equal(store_check_open(s, stderr), 0);
	store_close(s);
	tu_check_remove(path);
}

#define TU_OK(expr) do { int tu_r_ = (int)(expr); \
	if (tu_r_ < 0) fail_msg("%s: %d %s", #expr, tu_r_, err_get()); } while (0)

/* Cut-point tests: the writes and flushes of one operation on a store
 * file, replayed up to each point it could have been cut at (power
 * loss), each time onto a fresh copy of the file as it was before.  */
struct tu_cuts {
	char base[256];		/* the file before the operation */
	char target[256];	/* where tu_cut() replays */
	struct io_log *log;	/* the operation's writes and flushes */
};

/* Copies PATH to PATH.base and returns PATH open read-write with its
 * writes and flushes logged: run the operation on it, then
 * tu_cuts_stop().  */
static inline struct io_dev *tu_cuts_start(struct tu_cuts *c, const char *path)
{
	struct io_dev *dev;

	snprintf(c->base, sizeof c->base, "%s.base", path);
	snprintf(c->target, sizeof c->target, "%s.cut", path);
	tu_copy_file(path, c->base);
	c->log = io_log_new();
	assert_non_null(c->log);
	TU_OK(io_dev_open(path, IO_DEV_RDWR, &dev));
	io_dev_set_log(dev, c->log);
	return dev;
}

static inline void tu_cuts_stop(struct io_dev *dev)
{
	io_dev_set_log(dev, NULL);
	io_dev_close(dev);
}

/* c->target becomes the base with the first END logged entries replayed
 * (0 .. io_log_count(c->log)).  */
static inline void tu_cut(struct tu_cuts *c, size_t end)
{
	struct io_dev *t;

	tu_copy_file(c->base, c->target);
	TU_OK(io_dev_open(c->target, IO_DEV_RDWR, &t));
	TU_OK(io_log_replay(c->log, t, end));
	io_dev_close(t);
}

static inline void tu_cuts_free(struct tu_cuts *c)
{
	io_log_free(c->log);
	unlink(c->base);
	unlink(c->target);
}

#endif
