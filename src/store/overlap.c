/*
 * src/store/overlap.c - storage_overlap() (see overlap.h).
 *
 * "Covers" of a path, found with stat() (which follows symlinks, so every
 * name of a file or device yields the same identity) and sysfs:
 *   regular file   (st_dev, st_ino); its filesystem's block device, if any
 *   block device   st_rdev; a loop device's backing file (LOOP_GET_STATUS64,
 *                  else /sys/dev/block/M:m/loop/backing_file); a dm or md
 *                  device's slaves (/sys/dev/block/M:m/slaves/NAME/dev); a
 *                  partition's whole disk (the parent sysfs directory)
 * each recursively, at most COVERS_MAX entries and DEPTH_MAX levels (a
 * deeper stack is not examined further: the check can only miss, never
 * refuse wrongly).
 */
#include "src/store/overlap.h"

#include "utils/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define COVERS_MAX	64
#define DEPTH_MAX	8

struct obj {
	bool file;		/* a regular file, else a block device */
	dev_t dev;		/* file: st_dev; device: st_rdev */
	ino_t ino;		/* file only */
	char how[96];		/* how it was reached, for the message */
};

struct covers {
	struct obj o[COVERS_MAX];
	int n;
};

static bool same(const struct obj *a, const struct obj *b)
{
	return a->file == b->file && a->dev == b->dev && (!a->file || a->ino == b->ino);
}

static bool push(struct covers *c, const struct obj *o)
{
	for (int i = 0; i < c->n; i++)
		if (same(&c->o[i], o))
			return false;
	if (c->n == COVERS_MAX)
		return false;
	c->o[c->n++] = *o;
	return true;
}

/* First line of a sysfs file, without the newline; false if unreadable.  */
static bool read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	bool ok = f && fgets(buf, (int)len, f);

	if (f)
		fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = 0;
	return ok;
}

static bool parse_devno(const char *s, dev_t *out)
{
	unsigned maj, min;

	if (sscanf(s, "%u:%u", &maj, &min) != 2)
		return false;
	*out = makedev(maj, min);
	return true;
}

static void add_dev(struct covers *c, dev_t d, const char *how, int depth);

static void add_file(struct covers *c, const struct stat *st, const char *how, int depth)
{
	struct obj o = { .file = true, .dev = st->st_dev, .ino = st->st_ino };

	snprintf(o.how, sizeof o.how, "%s", how);
	if (!push(c, &o) || depth >= DEPTH_MAX)
		return;
	char sys[64];
	snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", major(st->st_dev), minor(st->st_dev));
	if (access(sys, F_OK) == 0) {
		char h[96];
		snprintf(h, sizeof h, "the filesystem device %u:%u holding it",
			 major(st->st_dev), minor(st->st_dev));
		add_dev(c, st->st_dev, h, depth + 1);
	}
}

static void add_loop_backing(struct covers *c, dev_t d, const char *sys, int depth)
{
	char h[96], path[PATH_MAX + 16];
	struct stat st;

	snprintf(h, sizeof h, "the backing file of loop device %u:%u", major(d), minor(d));
	/* the kernel's own record of the backing inode, if we may ask */
	snprintf(path, sizeof path, "/dev/block/%u:%u", major(d), minor(d));
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		struct loop_info64 li;
		int r = ioctl(fd, LOOP_GET_STATUS64, &li);
		close(fd);
		if (r == 0) {
			struct stat fst = { .st_dev = (dev_t)li.lo_device, .st_ino = (ino_t)li.lo_inode };
			add_file(c, &fst, h, depth + 1);
			return;
		}
	}
	snprintf(path, sizeof path, "%s/loop/backing_file", sys);
	char file[PATH_MAX];
	if (!read_line(path, file, sizeof file))
		return;
	size_t l = strlen(file);
	if (l > 10 && !strcmp(file + l - 10, " (deleted)"))
		return;	/* a deleted file is nobody's origin any more */
	if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
		add_file(c, &st, h, depth + 1);
}

static void add_dev(struct covers *c, dev_t d, const char *how, int depth)
{
	struct obj o = { .file = false, .dev = d };
	char sys[64], path[PATH_MAX], line[64], h[96];

	snprintf(o.how, sizeof o.how, "%s", how);
	if (!push(c, &o) || depth >= DEPTH_MAX)
		return;
	snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", major(d), minor(d));
	snprintf(path, sizeof path, "%s/loop", sys);
	if (access(path, F_OK) == 0)
		add_loop_backing(c, d, sys, depth);
	/* a partition: its whole disk is the parent sysfs directory */
	snprintf(path, sizeof path, "%s/partition", sys);
	if (access(path, F_OK) == 0) {
		char real[PATH_MAX];
		if (realpath(sys, real)) {
			char pdev[PATH_MAX + 8];
			snprintf(pdev, sizeof pdev, "%s/dev", dirname(real));
			dev_t p;
			if (read_line(pdev, line, sizeof line) && parse_devno(line, &p)) {
				snprintf(h, sizeof h, "the disk %u:%u of partition %u:%u",
					 major(p), minor(p), major(d), minor(d));
				add_dev(c, p, h, depth + 1);
			}
		}
	}
	/* dm, md: the devices they are built on */
	snprintf(path, sizeof path, "%s/slaves", sys);
	DIR *dir = opendir(path);
	if (!dir)
		return;
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		char dpath[PATH_MAX + 300];
		dev_t s;
		snprintf(dpath, sizeof dpath, "%s/%s/dev", path, e->d_name);
		if (read_line(dpath, line, sizeof line) && parse_devno(line, &s)) {
			snprintf(h, sizeof h, "%.40s (%u:%u), under device %u:%u", e->d_name,
				 major(s), minor(s), major(d), minor(d));
			add_dev(c, s, h, depth + 1);
		}
	}
	closedir(dir);
}

static int covers_of(const char *path, struct covers *c)
{
	struct stat st;

	c->n = 0;
	if (stat(path, &st) < 0)
		return err_set(errno, "%s: %s", path, strerror(errno));
	if (S_ISBLK(st.st_mode))
		add_dev(c, st.st_rdev, "itself", 0);
	else
		add_file(c, &st, "itself", 0);
	return 0;
}

int storage_overlap(const char *a, const char *b, char *why, size_t len)
{
	struct covers *ca = malloc(sizeof *ca), *cb = malloc(sizeof *cb);
	int ret;

	if (!ca || !cb) {
		ret = err_set(ENOMEM, "out of memory");
		goto out;
	}
	if ((ret = covers_of(a, ca)) < 0 || (ret = covers_of(b, cb)) < 0)
		goto out;
	ret = 0;
	if (same(&ca->o[0], &cb->o[0])) {
		snprintf(why, len, "%s and %s are the same %s", a, b,
			 ca->o[0].file ? "file" : "device");
		ret = 1;
		goto out;
	}
	for (int i = 1; i < ca->n && !ret; i++)
		if (same(&ca->o[i], &cb->o[0])) {
			snprintf(why, len, "%s is stored on %s (%s)", a, b, ca->o[i].how);
			ret = 1;
		}
	for (int i = 1; i < cb->n && !ret; i++)
		if (same(&cb->o[i], &ca->o[0])) {
			snprintf(why, len, "%s is stored on %s (%s)", b, a, cb->o[i].how);
			ret = 1;
		}
out:
	free(ca);
	free(cb);
	return ret;
}
