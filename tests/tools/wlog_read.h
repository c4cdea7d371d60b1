/*
 * tests/tools/wlog_read.h - reading the write log (ioengine/wlog.h) for the
 * offline checks tests/tools/wlog_replay.c (power cuts) and
 * tests/tools/wlog_stray.c (stray writes): each includes it once.
 *
 * read_logs() fills W[dev] and F[dev] (dev 0: the file LIVE[0], the
 * origin; 1: LIVE[1], the store; matched with the DEV records by device
 * and inode; writes and flushes of other files are skipped), unsorted.
 * Invariants: a WRITE without a DONE is marked unfinished with t1 = t0; a
 * torn last record (a killed process) ends that file's log.
 */
#ifndef CSNAP_TESTS_WLOG_READ_H
#define CSNAP_TESTS_WLOG_READ_H

#include "ioengine/wlog.h"
#include "utils/crc32c.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A write: issued at t0, completed at t1 - or, unfinished (no DONE: its
 * process was killed, or it failed), t1 = t0 for ordering and never
 * durable.  */
struct wr { int dev; bool unfinished; uint32_t pid; uint64_t off, len; int64_t t0, t1;
	    const uint8_t *data; };
struct wref { int dev; size_t i; };
struct fl { int dev; int64_t t0, t1; };

static struct wr *W[2]; static size_t NW[2];		/* per device */
static struct fl *F[2]; static size_t NF[2];		/* per device */
static const char *LIVE[2];
static const char *wlog_prog = "wlog";

static void die(const char *what) { fprintf(stderr, "%s: %s\n", wlog_prog, what); exit(2); }

static void push(void **a, size_t *n, size_t *cap, const void *e, size_t sz)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 1024;
		if (!(*a = realloc(*a, *cap * sz)))
			die("out of memory");
	}
	memcpy((char *)*a + *n * sz, e, sz);
	(*n)++;
}

static void read_logs(const char *dir)
{
	struct stat st[2];
	size_t cap[2] = { 0, 0 }, fcap[2] = { 0, 0 };
	DIR *d = opendir(dir);
	struct dirent *de;

	for (int i = 0; i < 2; i++)
		if (stat(LIVE[i], &st[i]) < 0)
			die("cannot stat a live device");
	if (!d)
		die("cannot open the log directory");
	while ((de = readdir(d))) {
		char path[4096];
		int map[256], fd;
		struct stat ls;
		const uint8_t *p;
		size_t pos = 0, nref = 0, refcap = 0;
		struct wref *ref = NULL;	/* this file's WRITEs, by seq */

		if (!strstr(de->d_name, ".wlog"))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if ((fd = open(path, O_RDONLY)) < 0 || fstat(fd, &ls) < 0)
			die("cannot open a log file");
		if (ls.st_size == 0) { close(fd); continue; }
		p = mmap(NULL, (size_t)ls.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		close(fd);
		if (p == MAP_FAILED)
			die("cannot map a log file");
		for (int i = 0; i < 256; i++)
			map[i] = -2;
		while (pos + sizeof(struct io_wlog_rec) <= (size_t)ls.st_size) {
			struct io_wlog_rec h;
			uint32_t crc;

			memcpy(&h, p + pos, sizeof h);
			crc = h.crc;
			h.crc = 0;
			if (h.magic != IO_WLOG_MAGIC || pos + sizeof h + h.datalen > (size_t)ls.st_size ||
			    crc32c(crc32c(0, &h, sizeof h), p + pos + sizeof h, h.datalen) != crc) {
				fprintf(stderr, "%s: torn or bad record at %zu (a killed process's last);"
					" the rest of this file is ignored\n", path, pos);
				break;
			}
			if (h.dev >= 256)
				die("device number out of range in a log");
			if (h.type == IO_WLOG_DEV) {
				map[h.dev] = -1;
				for (int i = 0; i < 2; i++)
					if (h.off == (uint64_t)st[i].st_dev && h.len == (uint64_t)st[i].st_ino)
						map[h.dev] = i;
			} else if (map[h.dev] == -2) {
				die("a log record names a device with no DEV record");
			} else if (h.type == IO_WLOG_WRITE) {
				struct wref r = { map[h.dev], map[h.dev] >= 0 ? NW[map[h.dev]] : 0 };
				struct wr w = { map[h.dev], false, h.pid, h.off, h.len, h.t0, 0,
						p + pos + sizeof h };

				if (h.seq != nref + 1)
					die("WRITE records out of sequence in a log");
				push((void **)&ref, &nref, &refcap, &r, sizeof r);
				if (w.dev >= 0)
					push((void **)&W[w.dev], &NW[w.dev], &cap[w.dev], &w, sizeof w);
			} else if (h.type == IO_WLOG_DONE) {
				if (h.seq == 0 || h.seq > nref)
					die("a DONE record names no WRITE");
				if (ref[h.seq - 1].dev >= 0)
					W[ref[h.seq - 1].dev][ref[h.seq - 1].i].t1 = h.t1;
			} else if (map[h.dev] >= 0 && h.type == IO_WLOG_FLUSH) {
				struct fl f = { map[h.dev], h.t0, h.t1 };
				push((void **)&F[f.dev], &NF[f.dev], &fcap[f.dev], &f, sizeof f);
			}
			pos += sizeof h + h.datalen;
		}
		free(ref);
	}
	closedir(d);
	for (int i = 0; i < 2; i++)
		for (size_t k = 0; k < NW[i]; k++)
			if (!W[i][k].t1) {
				W[i][k].unfinished = true;
				W[i][k].t1 = W[i][k].t0;
			}
}

static inline int by_t1_w(const void *a, const void *b)
{
	const struct wr *x = a, *y = b;
	return x->t1 < y->t1 ? -1 : x->t1 > y->t1;
}
static inline int by_t1_f(const void *a, const void *b)
{
	const struct fl *x = a, *y = b;
	return x->t1 < y->t1 ? -1 : x->t1 > y->t1;
}

static inline void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	struct stat st;
	off_t left;

	if (in < 0 || out < 0 || fstat(in, &st) < 0)
		die("cannot copy an image");
	for (left = st.st_size; left > 0;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
		if (n <= 0)
			die("copy_file_range");
		left -= n;
	}
	close(in);
	close(out);
}

static inline void put(int fd, const void *d, uint64_t len, uint64_t off)
{
	if (pwrite(fd, d, len, (off_t)off) != (ssize_t)len)
		die("image write");
}

#endif
