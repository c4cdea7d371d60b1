/*
 * src/activate/activate.c - building and tearing down the kernel stack of
 * one volume (see activate.h for the layering and its invariants).
 */
#include "src/activate/activate.h"

#include "src/activate/dm.h"
#include "src/activate/nbdclient.h"
#include "src/activate/nbdnl.h"
#include "utils/assert.h"
#include "utils/clock.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int act_kernel_check(void)
{
	char nbd_why[256] = "", dm_why[256] = "";

	if (nbdnl_available() < 0)
		snprintf(nbd_why, sizeof nbd_why, "%s", err_get());
	if (act_dm_available() < 0)
		snprintf(dm_why, sizeof dm_why, "%s", err_get());
	if (nbd_why[0] && dm_why[0])
		return err_set(ENODEV, "this kernel cannot activate volumes: %s; %s",
			       nbd_why, dm_why);
	if (nbd_why[0] || dm_why[0])
		return err_set(ENODEV, "this kernel cannot activate volumes: %s",
			       nbd_why[0] ? nbd_why : dm_why);
	return 0;
}

void act_link_path(const char *store, const char *volume, char *out, size_t n)
{
	snprintf(out, n, ACT_DEV_DIR "/%s/%s", store, volume);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Connects to the export and finishes the handshake for V's volume,
 * waiting up to V->wait_ms for an export that is starting or has not
 * listed a new snapshot yet.  Returns the fd or -errno.  */
static int export_handshake(const struct act_vol *v, struct nbdc_export *ex)
{
	int64_t deadline = csnap_now_ms() + (v->wait_ms > 0 ? v->wait_ms : 0);
	bool said = false;

	for (;;) {
		int fd = nbdc_connect(v->export_addr, v->export_port, 5000);
		int rc = fd;
		if (fd >= 0) {
			rc = nbdc_go(fd, v->volume, ex);
			if (rc == 0)
				return fd;
			close(fd);
		}
		bool retry = rc == -ECONNREFUSED || rc == -ENOENT || rc == -ECONNRESET ||
			     rc == -ETIMEDOUT;
		if (!retry || csnap_now_ms() >= deadline)
			return err_prefix(-rc, "export of store %s", v->store);
		if (!said) {
			fprintf(stderr, "csnap: activate: waiting for the export of store %s to serve %s (%s)...\n",
				v->store, v->volume, err_get());
			said = true;
		}
		sleep_ms(250);
	}
}

static int read_nbd_size(int index, uint64_t *size)
{
	char path[64];
	unsigned long long sectors;
	FILE *f;
	int ok;

	snprintf(path, sizeof path, "/sys/block/nbd%d/size", index);
	if (!(f = fopen(path, "re")))
		return -errno;
	ok = fscanf(f, "%llu", &sectors) == 1;
	fclose(f);
	if (!ok || !sectors)
		return -EINVAL;
	*size = (uint64_t)sectors * 512;
	return 0;
}

static int mkdir_p(const char *dir)
{
	char buf[256];

	snprintf(buf, sizeof buf, "%s", dir);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Without udevd the /dev/csnap link is ours to make (with it, the rules
 * make it and we only check it appeared).  */
static int make_link(const char *store, const char *volume, const char *dm_name, const char *link)
{
	char dir[256], target[256];
	struct stat st;

	if (act_dm_udev_running()) {
		if (lstat(link, &st) < 0)
			log_warn("activate: udev did not create %s (are csnap's udev rules installed?)",
				 link);
		return 0;
	}
	snprintf(dir, sizeof dir, ACT_DEV_DIR "/%s", store);
	if (mkdir_p(dir) < 0)
		return err_set(errno, "mkdir %s: %s", dir, strerror(errno));
	snprintf(target, sizeof target, "../../mapper/%s", dm_name);
	unlink(link);
	if (symlink(target, link) < 0)
		return err_set(errno, "symlink %s: %s", link, strerror(errno));
	(void)volume;
	return 0;
}

static void remove_link(const char *store, const char *link)
{
	char dir[256], target[256];
	ssize_t n = readlink(link, target, sizeof target - 1);

	/* only a link of ours: into ../../mapper/ (or udev's ../../dm-N) */
	if (n > 0) {
		target[n] = 0;
		if (!strncmp(target, "../../mapper/csnap-", 19) || !strncmp(target, "../../dm-", 9))
			unlink(link);
	}
	snprintf(dir, sizeof dir, ACT_DEV_DIR "/%s", store);
	rmdir(dir);		/* when empty */
	rmdir(ACT_DEV_DIR);
}

int act_up(const struct act_vol *v, struct act_made *m)
{
	char uuid[ACT_DM_UUID_MAX], backend[ACT_BACKEND_MAX];
	struct act_dm_info info;
	unsigned major, minor;
	bool attached = false;
	int rc, index;

	memset(m, 0, sizeof *m);
	m->nbd_index = -1;
	if ((rc = act_dm_name(v->store, v->volume, m->dm_name, sizeof m->dm_name)) < 0 ||
	    (rc = act_dm_uuid(&v->uuid, v->id, uuid, sizeof uuid)) < 0 ||
	    (rc = act_backend_id(&v->uuid, v->volume, backend, sizeof backend)) < 0)
		return err_set(-rc, "store %s volume %s: %s", v->store, v->volume,
			       rc == -EINVAL ? "not a valid name (1-63 of A-Z a-z 0-9 . _ + : @ -, "
			       "not starting with . or -)" : "names too long for device-mapper");
	act_link_path(v->store, v->volume, m->link, sizeof m->link);

	if ((rc = act_dm_info(m->dm_name, &info)) < 0)
		return rc;
	if (info.exists) {
		if (strcmp(info.uuid, uuid))
			return err_set(EEXIST, "a device-mapper device %s already exists with uuid "
				       "\"%s\", not %s's", m->dm_name, info.uuid, v->volume);
		m->existed = true;
		m->nbd_index = nbd_find_backend(backend);
		if (m->nbd_index >= 0)
			read_nbd_size(m->nbd_index, &m->size);
		return make_link(v->store, v->volume, m->dm_name, m->link);
	}

	/* An nbd device left attached (by a deactivation that stopped after
	 * removing the dm device) is reused, not attached twice.  */
	index = nbd_find_backend(backend);
	if (index >= 0) {
		if ((rc = read_nbd_size(index, &m->size)) < 0)
			return err_set(-rc, "nbd%d: cannot read its size", index);
	} else {
		struct nbdc_export ex;
		int fd = export_handshake(v, &ex);

		if (fd < 0)
			return fd;
		if (ex.size < 512) {
			close(fd);
			return err_set(EINVAL, "volume %s is smaller than one sector", v->volume);
		}
		struct nbdnl_connect c = {
			.fd = fd, .size = ex.size, .server_flags = ex.flags,
			.block_size = ex.size % 4096 ? 512 : 4096,
			.dead_conn_timeout = v->dead_timeout, .timeout = v->timeout,
			.backend = backend,
		};
		index = nbdnl_connect(&c);
		close(fd);	/* the kernel holds its own reference */
		if (index < 0)
			return index;
		attached = true;
		m->size = ex.size;
	}
	m->nbd_index = index;
	/* bottom-up: the nbd device exists before a dm device is put on it */
	CSNAP_ASSERT(index >= 0 && m->size >= 512);
	if ((rc = nbd_devno(index, &major, &minor)) < 0) {
		err_set(-rc, "nbd%d: no device number in sysfs", index);
		goto undo;
	}
	rc = act_dm_create_linear(m->dm_name, uuid, m->size & ~(uint64_t)511, major, minor,
				  v->id != ACT_ORIGIN_ID);
	if (rc < 0)
		goto undo;
	rc = make_link(v->store, v->volume, m->dm_name, m->link);
	if (rc < 0)
		return rc;	/* the device works; only the convenience link is missing */
	return 0;
undo:
	if (attached) {
		char why[256];
		snprintf(why, sizeof why, "%s", err_get());
		nbdnl_disconnect(index);
		err_set(-rc, "%s", why);
	}
	return rc;
}

int act_down(const char *store, const struct csnap_uuid *uuid, const char *volume, bool force)
{
	char name[ACT_DM_NAME_MAX], backend[ACT_BACKEND_MAX], link[256];
	struct act_dm_info info;
	bool any = false;
	int rc, index;

	if ((rc = act_dm_name(store, volume, name, sizeof name)) < 0 ||
	    (rc = act_backend_id(uuid, volume, backend, sizeof backend)) < 0)
		return err_set(-rc, "store %s volume %s: not a valid volume name", store, volume);
	act_link_path(store, volume, link, sizeof link);
	if ((rc = act_dm_info(name, &info)) < 0)
		return rc;
	if (info.exists) {
		if (!act_dm_uuid_is_csnap(info.uuid, uuid))
			return err_set(EEXIST, "device-mapper device %s (uuid \"%s\") is not a volume "
				       "of this store; left alone", name, info.uuid);
		if ((rc = act_dm_remove(name, force)) < 0)
			return rc;
		any = true;
	}
	remove_link(store, link);
	index = nbd_find_backend(backend);
	if (index >= 0) {
		if ((rc = nbdnl_disconnect(index)) < 0)
			return rc;
		any = true;
	}
	return any ? 0 : 1;
}

struct find_dm { const char *uuid; char name[ACT_DM_NAME_MAX]; };

static int find_dm_cb(const char *name, const char *uuid, void *arg)
{
	struct find_dm *f = arg;

	if (strcmp(uuid, f->uuid))
		return 0;
	snprintf(f->name, sizeof f->name, "%s", name);
	return 1;
}

/* The logical block size of nbdINDEX, or 0 when unknown.  */
static uint64_t nbd_block_size(int index)
{
	char path[80];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof path, "/sys/block/nbd%d/queue/logical_block_size", index);
	if (!(f = fopen(path, "re")))
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

int act_grow_origin(const struct csnap_uuid *uuid, uint64_t size)
{
	char backend[ACT_BACKEND_MAX];
	struct find_dm f = { NULL, "" };
	char dmuuid[ACT_DM_UUID_MAX];
	uint64_t cur, bs;
	unsigned major, minor;
	bool grew = false;
	int rc, index;

	if ((rc = act_backend_id(uuid, "origin", backend, sizeof backend)) < 0 ||
	    (rc = act_dm_uuid(uuid, ACT_ORIGIN_ID, dmuuid, sizeof dmuuid)) < 0)
		return err_set(-rc, "origin: cannot name its kernel devices");
	size &= ~(uint64_t)511;
	index = nbd_find_backend(backend);
	if (index < 0)
		return 1;	/* not activated here */
	if ((rc = read_nbd_size(index, &cur)) < 0)
		return err_set(-rc, "nbd%d: cannot read its size", index);
	if (cur < size) {
		/* a 4096-byte block size only while the size is a multiple */
		bs = nbd_block_size(index);
		if ((rc = nbdnl_resize(index, backend, size, bs && size % bs ? 512 : 0)) < 0)
			return rc;
		log_info("activate: nbd%d (origin) grew from %llu to %llu bytes", index,
			 (unsigned long long)cur, (unsigned long long)size);
		grew = true;
	}
	/* the dm device over it, found by its uuid (the store's name is not
	 * known here); once the nbd device is long enough for its table */
	f.uuid = dmuuid;
	if ((rc = act_dm_for_each(find_dm_cb, &f)) < 0)
		return rc;
	if (!f.name[0])
		return grew ? 0 : 1;
	if ((rc = nbd_devno(index, &major, &minor)) < 0)
		return err_set(-rc, "nbd%d: cannot read its device number", index);
	rc = act_dm_grow_linear(f.name, size, major, minor);
	return rc < 0 ? rc : grew || rc == 0 ? 0 : 1;
}
