/*
 * src/agent/locate.c - finding a store's device and reading its superblock.
 *
 * A store is configured by path, as UUID=<store uuid> or as LABEL=<name>
 * (mkstore --name).  libblkid cannot
 * know our format, so for UUID= we read the superblock of each candidate
 * ourselves: the entries of $CSNAP_SCAN (colon-separated files or
 * directories; for tests and unusual setups), the entries of /dev/disk/by-id, and the
 * block devices listed in /proc/partitions.  Candidates are opened
 * read-only with O_DIRECT and only the two superblock copies are read.
 *
 * csnap's own volumes (activated nbd and dm devices) are never read.
 *
 * Correctness over convenience: if the uuid is found on more than one
 * distinct device (same st_rdev/inode counts once), we accept the single
 * device-mapper device among them (multipath over its paths) and refuse
 * anything else as ambiguous, asking for a path in csnap.conf.
 */
#include "src/agent/agent.h"
#include "src/activate/sysdev.h"
#include "ioengine/ioengine.h"
#include "src/store/superblock.h"
#include "utils/err.h"
#include "utils/log.h"
#include "utils/uuid.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_MATCHES 8

struct match {
	char path[CONFIG_PATH_MAX];
	dev_t dev;		/* st_rdev of a block device, else st_dev */
	ino_t ino;		/* 0 for block devices */
	bool is_dm;
	struct csnap_sb sb;
};

struct scan {
	struct csnap_uuid want;
	/* agent_scan_stores(): every store, handed to FN (want unused) */
	void (*fn)(const char *path, const struct stat *st, const struct csnap_sb *sb, void *arg);
	void *arg;
	struct match m[MAX_MATCHES];
	int n;
	int distinct;
	int candidates;
};

static bool same_object(const struct match *a, const struct stat *st)
{
	if (S_ISBLK(st->st_mode))
		return a->ino == 0 && a->dev == st->st_rdev;
	return a->ino == st->st_ino && a->dev == st->st_dev;
}

static bool is_dm_device(const struct stat *st)
{
	char link[64], target[256];
	ssize_t n;

	if (!S_ISBLK(st->st_mode))
		return false;
	snprintf(link, sizeof link, "/sys/dev/block/%u:%u", major(st->st_rdev), minor(st->st_rdev));
	n = readlink(link, target, sizeof target - 1);
	if (n <= 0)
		return false;
	target[n] = 0;
	const char *base = strrchr(target, '/');
	return base && !strncmp(base + 1, "dm-", 3);
}

static void try_candidate(struct scan *s, const char *path)
{
	struct stat st;
	struct csnap_sb sb;

	if (stat(path, &st) < 0 || (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)))
		return;
	if (S_ISREG(st.st_mode) && st.st_size < 128 * 1024)
		return;
	for (int i = 0; i < s->n; i++)
		if (same_object(&s->m[i], &st))
			return;		/* another name of a device we matched */
	/* never read csnap's own volumes: a volume whose export is
	 * restarting blocks its readers, and this export may be the one */
	if (S_ISBLK(st.st_mode) && act_is_csnap_volume(st.st_rdev))
		return;
	s->candidates++;
	if (csnap_sb_read_path(path, &sb) < 0) {
		err_clear();
		return;
	}
	if (s->fn) {
		s->fn(path, &st, &sb, s->arg);
		return;
	}
	if (memcmp(sb.uuid, s->want.b, 16))
		return;
	s->distinct++;
	if (s->n == MAX_MATCHES)
		return;
	struct match *m = &s->m[s->n++];
	snprintf(m->path, sizeof m->path, "%s", path);
	m->dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
	m->ino = S_ISBLK(st.st_mode) ? 0 : st.st_ino;
	m->is_dm = is_dm_device(&st);
	m->sb = sb;
}

static void scan_dir(struct scan *s, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[CONFIG_PATH_MAX];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
			continue;
		try_candidate(s, path);
	}
	closedir(d);
}

static void scan_path_entry(struct scan *s, const char *p)
{
	struct stat st;

	if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
		scan_dir(s, p);
	else
		try_candidate(s, p);
}

static void scan_partitions(struct scan *s)
{
	FILE *f = fopen("/proc/partitions", "re");
	char line[256], name[128], path[CONFIG_PATH_MAX];
	unsigned maj, min;
	unsigned long long blocks;

	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, " %u %u %llu %127s", &maj, &min, &blocks, name) != 4 || !blocks)
			continue;
		snprintf(path, sizeof path, "/dev/%s", name);
		try_candidate(s, path);
	}
	fclose(f);
}

/* Every candidate: $CSNAP_SCAN's entries (ENV), /dev/disk/by-id, then
 * /proc/partitions.  */
static void scan_all(struct scan *s, const char *env)
{
	if (env && *env) {
		char *copy = strdup(env), *save = NULL;
		for (char *p = copy ? strtok_r(copy, ":", &save) : NULL; p;
		     p = strtok_r(NULL, ":", &save))
			scan_path_entry(s, p);
		free(copy);
	}
	scan_dir(s, "/dev/disk/by-id");
	scan_partitions(s);
}

static int locate_by_uuid(const char *text, char *path_out, size_t pathlen, struct csnap_sb *sb)
{
	struct scan *s = calloc(1, sizeof *s);
	const char *env = getenv("CSNAP_SCAN");
	int r;

	if (!s)
		return err_set(ENOMEM, "out of memory");
	if (csnap_uuid_parse(text, &s->want) < 0) {
		free(s);
		return err_set(EINVAL, "UUID=%s: not a uuid", text);
	}
	scan_all(s, env);

	const struct match *pick = NULL;
	if (s->distinct == 1) {
		pick = &s->m[0];
	} else if (s->distinct > 1) {
		int dms = 0;
		for (int i = 0; i < s->n; i++)
			if (s->m[i].is_dm) {
				dms++;
				pick = &s->m[i];
			}
		if (dms != 1 || s->distinct > s->n)
			pick = NULL;
	}
	if (pick) {
		if (snprintf(path_out, pathlen, "%s", pick->path) >= (int)pathlen)
			r = err_set(ENAMETOOLONG, "device path too long: %s", pick->path);
		else {
			*sb = pick->sb;
			log_debug("UUID=%s is %s", text, pick->path);
			r = 0;
		}
	} else if (s->distinct == 0) {
		r = err_set(ENOENT, "no device with csnap store UUID=%s (read %d candidate "
			    "devices from /dev/disk/by-id and /proc/partitions%s)", text,
			    s->candidates, env && *env ? " and $CSNAP_SCAN" : "");
	} else {
		r = err_set(EEXIST, "store UUID=%s is on %d devices (%s, %s%s): ambiguous, "
			    "name the device path in csnap.conf", text, s->distinct, s->m[0].path,
			    s->m[1].path, s->distinct > 2 ? ", ..." : "");
	}
	free(s);
	return r;
}


void agent_scan_stores(void (*fn)(const char *path, const struct stat *st,
				  const struct csnap_sb *sb, void *arg), void *arg)
{
	struct scan *s = calloc(1, sizeof *s);
	const char *env = getenv("CSNAP_SCAN");

	if (!s)
		return;
	s->fn = fn;
	s->arg = arg;
	scan_all(s, env);
	free(s);
}

struct by_label {
	const char *label;
	struct csnap_uuid u[2];
	int n;
};

static void label_cb(const char *path, const struct stat *st, const struct csnap_sb *sb, void *arg)
{
	struct by_label *bl = arg;

	(void)path; (void)st;
	if (strcmp(sb->label, bl->label))
		return;
	for (int i = 0; i < bl->n; i++)
		if (!memcmp(bl->u[i].b, sb->uuid, 16))
			return;
	if (bl->n < 2)
		memcpy(bl->u[bl->n].b, sb->uuid, 16);
	bl->n++;
}

/* LABEL=<name>: the one store carrying that name, then found as UUID= is
 * (so multipath and aliases are treated alike).  Two stores with one name
 * are refused: a name must never pick a store by chance.  */
static int locate_by_label(const char *label, char *path_out, size_t pathlen, struct csnap_sb *sb)
{
	struct by_label bl = { .label = label };
	char a[CSNAP_UUID_STR_LEN], b[CSNAP_UUID_STR_LEN];

	if (!label[0])
		return err_set(EINVAL, "LABEL= needs a name");
	agent_scan_stores(label_cb, &bl);
	if (bl.n == 0)
		return err_set(ENOENT, "no csnap store named LABEL=%s on this node's devices", label);
	if (bl.n > 1) {
		csnap_uuid_unparse(&bl.u[0], a);
		csnap_uuid_unparse(&bl.u[1], b);
		return err_set(EEXIST, "%d stores are named LABEL=%s (UUID=%s, UUID=%s%s): "
			       "ambiguous, use UUID=", bl.n, label, a, b, bl.n > 2 ? ", ..." : "");
	}
	csnap_uuid_unparse(&bl.u[0], a);
	return locate_by_uuid(a, path_out, pathlen, sb);
}

int agent_locate_store(const char *device, char *path_out, size_t pathlen, struct csnap_sb *sb)
{
	if (!strncmp(device, "UUID=", 5))
		return locate_by_uuid(device + 5, path_out, pathlen, sb);
	if (!strncmp(device, "LABEL=", 6))
		return locate_by_label(device + 6, path_out, pathlen, sb);
	if (snprintf(path_out, pathlen, "%s", device) >= (int)pathlen)
		return err_set(ENAMETOOLONG, "device path too long: %s", device);
	return csnap_sb_read_path(device, sb);	/* its messages name the device */
}
