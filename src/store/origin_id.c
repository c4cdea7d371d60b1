/*
 * src/store/origin_id.c - record and verify the identity of a store's
 * origin (see origin_id.h for the kinds and why filesystem UUIDs are not
 * one).
 *
 * Block devices are identified through sysfs (/sys/dev/block/MAJ:MIN; the
 * root can be moved with $CSNAP_SYSFS for tests), partitions by their
 * disk's id plus the partition number or by their partition-table uuid
 * (libblkid), files by an extended attribute naming the store.  Verifying
 * computes the candidate's identity of the *recorded* kind, so a device
 * that later shows more (or less) identity is still compared like with
 * like.
 */
#include "src/store/origin_id.h"

#include "utils/err.h"
#include "utils/uuid.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

static const char *sysfs_root(void)
{
	const char *r = getenv("CSNAP_SYSFS");
	return r && r[0] ? r : "/sys";
}

/* Reads a one-line sysfs attribute DIR/NAME into BUF, trimmed; 0 if it
 * exists and is not empty, -1 otherwise.  */
static int read_attr(const char *dir, const char *name, char *buf, size_t len)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = 0;
	size_t skip = strspn(buf, " \t");
	memmove(buf, buf + skip, n - skip + 1);
	return buf[0] ? 0 : -1;
}

/* "KIND:VALUE", or "KIND#HEX" (BLAKE2b-128 of VALUE) when it would not fit
 * the superblock field.  */
static void format_id(char *id, size_t len, const char *kind, const char *value)
{
	if (strlen(kind) + 1 + strlen(value) <= CSNAP_ORIGIN_ID_LEN) {
		snprintf(id, len, "%s:%s", kind, value);
		return;
	}
	unsigned char h[16];
	char hex[sizeof h * 2 + 1];
	if (sodium_init() < 0) {	/* cannot happen on Linux; never lose the id */
		snprintf(id, len, "%s#%.*s", kind, CSNAP_ORIGIN_ID_LEN - (int)strlen(kind) - 1, value);
		return;
	}
	crypto_generichash(h, sizeof h, (const unsigned char *)value, strlen(value), NULL, 0);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	snprintf(id, len, "%s#%s", kind, hex);
}

/* The sysfs directory of block device PATH (resolved), or -1 if PATH is
 * not a block device.  */
static int sysfs_dir(const char *path, char *dir, size_t len)
{
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISBLK(st.st_mode))
		return -1;
	char p[PATH_MAX], *r;
	snprintf(p, sizeof p, "%s/dev/block/%u:%u", sysfs_root(), major(st.st_rdev), minor(st.st_rdev));
	if (!(r = realpath(p, NULL)))
		return -1;
	snprintf(dir, len, "%s", r);
	free(r);
	return 0;
}

/* Hardware id of the whole disk at sysfs DIR for KIND wwid/serial.  */
static int disk_attr(const char *dir, const char *kind, char *v, size_t len)
{
	if (!strcmp(kind, "wwid"))
		return read_attr(dir, "wwid", v, len) == 0 || read_attr(dir, "device/wwid", v, len) == 0 ? 0 : -1;
	return read_attr(dir, "serial", v, len) == 0 || read_attr(dir, "device/serial", v, len) == 0 ? 0 : -1;
}

/* wwid or serial of a disk, or of a partition's disk + "/pN".  */
static int hw_id(const char *dir, const char *kind, char *v, size_t len)
{
	char part[32];
	if (read_attr(dir, "partition", part, sizeof part) < 0)
		return disk_attr(dir, kind, v, len);
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", dir);
	char *slash = strrchr(parent, '/');
	if (!slash)
		return -1;
	*slash = 0;
	char d[512];
	if (disk_attr(parent, kind, d, sizeof d) < 0)
		return -1;
	snprintf(v, len, "%s/p%s", d, part);
	return 0;
}

static int part_uuid(const char *path, char *v, size_t len)
{
	blkid_probe pr = blkid_new_probe_from_filename(path);
	const char *s;
	int r = -1;
	if (!pr)
		return -1;
	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	if (blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "PART_ENTRY_UUID", &s, NULL) == 0 &&
	    s[0]) {
		snprintf(v, len, "%s", s);
		r = 0;
	}
	blkid_free_probe(pr);
	return r;
}

/* The file that carries the mark: PATH itself if it is a regular file,
 * the backing file of a loop device.  */
static int mark_file(const char *path, char *file, size_t len)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (S_ISREG(st.st_mode)) {
		snprintf(file, len, "%s", path);
		return 0;
	}
	char dir[PATH_MAX];
	if (sysfs_dir(path, dir, sizeof dir) < 0 || read_attr(dir, "loop/backing_file", file, len) < 0)
		return -1;
	/* The kernel appends " (deleted)" once the file is unlinked.  */
	struct stat fst;
	return stat(file, &fst) == 0 && S_ISREG(fst.st_mode) ? 0 : -1;
}

static int mark_value(const char *path, char *v, size_t len)
{
	char file[PATH_MAX];
	if (mark_file(path, file, sizeof file) < 0)
		return -1;
	ssize_t n = getxattr(file, ORIGIN_ID_XATTR, v, len - 1);
	if (n <= 0)
		return -1;
	v[n] = 0;
	return 0;
}

int origin_id_of_kind(const char *path, const char *kind, char *id, size_t len)
{
	char dir[PATH_MAX], v[1024];
	int r = -1;

	id[0] = 0;
	if (!strcmp(kind, "mark"))
		r = mark_value(path, v, sizeof v);
	else if (!strcmp(kind, "partuuid"))
		r = sysfs_dir(path, dir, sizeof dir) == 0 ? part_uuid(path, v, sizeof v) : -1;
	else if (sysfs_dir(path, dir, sizeof dir) == 0) {
		if (!strcmp(kind, "dm"))
			r = read_attr(dir, "dm/uuid", v, sizeof v);
		else if (!strcmp(kind, "wwid") || !strcmp(kind, "serial"))
			r = hw_id(dir, kind, v, sizeof v);
	}
	if (r == 0)
		format_id(id, len, kind, v);
	return 0;
}

int origin_id_record(const char *path, uint64_t size, const uint8_t store_uuid[16],
		     char *id, bool *weak)
{
	static const char *const kinds[] = { "dm", "wwid", "serial", "partuuid" };
	size_t len = CSNAP_ORIGIN_ID_LEN + 1;

	*weak = false;
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		origin_id_of_kind(path, kinds[i], id, len);
		if (id[0])
			return 0;
	}
	char file[PATH_MAX];
	if (mark_file(path, file, sizeof file) == 0) {
		char u[CSNAP_UUID_STR_LEN];
		csnap_uuid_unparse((const struct csnap_uuid *)store_uuid, u);
		if (setxattr(file, ORIGIN_ID_XATTR, u, strlen(u), 0) == 0) {
			snprintf(id, len, "mark:%s", u);
			return 0;
		}
		if (errno != ENOTSUP && errno != EOPNOTSUPP)
			return err_set(errno, "origin %s: cannot mark %s (xattr %s): %s", path, file,
				       ORIGIN_ID_XATTR, strerror(errno));
	}
	snprintf(id, len, "size:%" PRIu64, size);
	*weak = true;
	return 0;
}

/* Splits a recorded id into its kind; "" for a legacy bare value.  */
static void recorded_kind(const char *id, char *kind, size_t len)
{
	static const char *const known[] = { "dm", "wwid", "serial", "partuuid", "mark", "size" };
	size_t n = strcspn(id, ":#");
	kind[0] = 0;
	if (!id[n])
		return;
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strlen(known[i]) == n && !strncmp(id, known[i], n))
			snprintf(kind, len, "%s", known[i]);
}

void origin_id_resized(char *id, uint64_t size)
{
	char kind[16];

	recorded_kind(id, kind, sizeof kind);
	if (!strcmp(kind, "size"))
		snprintf(id, CSNAP_ORIGIN_ID_LEN + 1, "size:%" PRIu64, size);
}

int origin_id_verify(const char *path, uint64_t size, const struct csnap_sb *sb)
{
	char kind[16];
	recorded_kind(sb->origin_id, kind, sizeof kind);
	bool weak = !kind[0] || !strcmp(kind, "size");
	/* a strong identity may have grown: extended, not yet resized */
	if (size != sb->origin_size && (weak || size < sb->origin_size))
		return err_set(EMEDIUMTYPE, "origin %s is %" PRIu64 " bytes, but the store was made for "
			       "an origin of %" PRIu64 " bytes (id %s): wrong device?", path, size,
			       sb->origin_size, sb->origin_id[0] ? sb->origin_id : "none");
	if (weak)
		return 0;	/* nothing but the size was recorded */
	char found[CSNAP_ORIGIN_ID_LEN + 1];
	origin_id_of_kind(path, kind, found, sizeof found);
	if (strcmp(found, sb->origin_id))
		return err_set(EMEDIUMTYPE, "origin %s is not this store's origin: it has id %s, "
			       "the store was made for %s: wrong device?", path,
			       found[0] ? found : !strcmp(kind, "mark") ? "none (no " ORIGIN_ID_XATTR " xattr)" : "none",
			       sb->origin_id);
	return 0;
}
