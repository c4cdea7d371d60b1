/*
 * src/activate/keeper.c - the export's re-attach thread (see keeper.h).
 *
 * Invariant: a device is RECONFIGUREd only with a socket that finished the
 * handshake for the very volume its backend identifier names, and the
 * kernel checks the identifier again; so a socket never serves another
 * volume's device.
 */
#include "src/activate/keeper.h"

#include "src/activate/activate.h"
#include "src/activate/names.h"
#include "src/activate/nbdclient.h"
#include "src/activate/nbdnl.h"
#include "utils/assert.h"
#include "utils/clock.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEEP_MAX	256		/* nbd devices watched at once */
#define TICK_MS		250
/* A device found at start whose connection still looks alive is retried
 * this long: the kernel may not have noticed the old export's death yet. */
#define ALIVE_GRACE_MS	3000

struct pending {
	int index;
	int64_t since, give_up;
	bool from_sweep;
};

struct act_keeper {
	pthread_t thread;
	atomic_bool stop;
	struct csnap_uuid store;
	char addr[256];
	uint16_t port;
	unsigned give_up_s;
	struct pending p[KEEP_MAX];
	int np;
	/* origin size the export serves (set by it), and the size the
	 * kernel devices were last grown to (keeper thread only) */
	_Atomic uint64_t origin_want;
	uint64_t origin_done;
	int64_t origin_give_up;	/* 0: no failed attempt pending */
};

static void add_pending(struct act_keeper *k, int index, bool from_sweep)
{
	int64_t now = csnap_now_ms();

	for (int i = 0; i < k->np; i++)
		if (k->p[i].index == index)
			return;
	if (k->np == KEEP_MAX)
		return;
	k->p[k->np++] = (struct pending){ index, now, now + (int64_t)k->give_up_s * 1000,
					  from_sweep };
}

/* The volume of device INDEX if it is one of this store's, else false.  */
static bool ours(struct act_keeper *k, int index, char *backend, size_t bn, char *vol, size_t vn)
{
	char path[64];
	struct csnap_uuid u;
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof path, "/sys/block/nbd%d/backend", index);
	if (!(f = fopen(path, "re")))
		return false;
	if (fgets(backend, (int)bn, f)) {
		backend[strcspn(backend, "\n")] = 0;
		ok = act_backend_split(backend, &u, vol, vn) == 0 && csnap_uuid_equal(&u, &k->store);
	}
	fclose(f);
	return ok;
}

static int sweep_cb(int index, const char *backend, void *arg)
{
	struct act_keeper *k = arg;
	struct csnap_uuid u;
	char vol[ACT_BACKEND_MAX];

	if (act_backend_split(backend, &u, vol, sizeof vol) == 0 && csnap_uuid_equal(&u, &k->store))
		add_pending(k, index, true);
	return 0;
}

/* One attempt: true when the device is done with (attached, alive, or no
 * longer ours).  */
static bool try_attach(struct act_keeper *k, const struct pending *p)
{
	char backend[ACT_BACKEND_MAX], vol[ACT_BACKEND_MAX];
	char vol2[ACT_BACKEND_MAX];	/* for the check below */
	struct nbdc_export ex;
	int fd, rc;

	if (!ours(k, p->index, backend, sizeof backend, vol, sizeof vol))
		return true;	/* disconnected meanwhile */
	fd = nbdc_connect(k->addr, k->port, 2000);
	if (fd < 0)
		return false;
	rc = nbdc_go(fd, vol, &ex);
	if (rc == 0) {
		/* the socket serves exactly the volume the backend names */
		CSNAP_ASSERT(act_backend_split(backend, &(struct csnap_uuid){ { 0 } }, vol2,
					       sizeof vol2) == 0 && !strcmp(vol, vol2));
		rc = nbdnl_reconfigure(p->index, fd, backend);
	}
	close(fd);	/* the export's side of it closes when the kernel's does */
	if (rc == 0) {
		log_info("export: nbd%d (%s) re-attached", p->index, vol);
		return true;
	}
	if (rc == -ENOSPC) {
		/* no dead connection to replace: it is alive */
		return !p->from_sweep || csnap_now_ms() - p->since > ALIVE_GRACE_MS;
	}
	log_debug("export: nbd%d (%s): re-attach failed, will retry: %s", p->index, vol, err_get());
	return false;
}

/* The export serves a larger origin than the kernel devices were grown
 * to: grow them (retried each tick until GIVE_UP_S after a failure).  */
static void grow_origin(struct act_keeper *k, int64_t now)
{
	uint64_t want = atomic_load(&k->origin_want);
	int rc;

	if (want <= k->origin_done)
		return;
	rc = act_grow_origin(&k->store, want);
	if (rc >= 0) {
		if (rc == 0)
			log_info("export: activated origin resized to %llu bytes",
				 (unsigned long long)want);
		k->origin_done = want;
		k->origin_give_up = 0;
		return;
	}
	if (!k->origin_give_up) {
		log_warn("export: activated origin not resized to %llu bytes yet: %s",
			 (unsigned long long)want, err_get());
		k->origin_give_up = now + (int64_t)k->give_up_s * 1000;
	} else if (now > k->origin_give_up) {
		log_error("export: activated origin not resized to %llu bytes within %u s; "
			  "giving up: %s", (unsigned long long)want, k->give_up_s, err_get());
		k->origin_done = want;
		k->origin_give_up = 0;
	}
}

static void *keeper_main(void *arg)
{
	struct act_keeper *k = arg;
	int mon = -1, ticks = 0;
	bool swept = false;

	while (!atomic_load(&k->stop)) {
		/* without an nbd driver (yet), look again every few seconds */
		if (mon < 0 && ticks++ % 20 == 0) {
			/* subscribe before sweeping, so no death falls between */
			mon = nbdnl_monitor_open();
			if (mon >= 0 || !swept) {
				nbd_for_each_backend(sweep_cb, k);
				swept = true;
			}
		}
		struct pollfd pf = { .fd = mon, .events = POLLIN };
		if (poll(&pf, mon >= 0 ? 1 : 0, TICK_MS) > 0) {
			int index;
			while ((index = nbdnl_monitor_read(mon)) != -EAGAIN && index != -EWOULDBLOCK) {
				if (index >= 0)
					add_pending(k, index, false);
				else if (index != -EINTR && index != -ENOBUFS)
					break;
			}
		}
		int64_t now = csnap_now_ms();
		for (int i = 0; i < k->np && !atomic_load(&k->stop);) {
			bool done = try_attach(k, &k->p[i]);
			if (!done && now > k->p[i].give_up) {
				log_error("export: nbd%d: not re-attached within %u s; giving up",
					  k->p[i].index, k->give_up_s);
				done = true;
			}
			if (done)
				k->p[i] = k->p[--k->np];
			else
				i++;
		}
		/* after the re-attaches: a dm suspend waits for in-flight I/O,
		 * which a dead connection holds until it is replaced */
		if (!atomic_load(&k->stop))
			grow_origin(k, now);
	}
	if (mon >= 0)
		close(mon);
	return NULL;
}

int act_keeper_start(const struct csnap_uuid *store, const char *addr, uint16_t port,
		     unsigned give_up_s, struct act_keeper **out)
{
	struct act_keeper *k = calloc(1, sizeof *k);
	int rc;

	if (!k)
		return err_set(ENOMEM, "out of memory");
	k->store = *store;
	snprintf(k->addr, sizeof k->addr, "%s", addr);
	k->port = port;
	k->give_up_s = give_up_s;
	atomic_init(&k->stop, false);
	atomic_init(&k->origin_want, 0);
	rc = pthread_create(&k->thread, NULL, keeper_main, k);
	if (rc) {
		free(k);
		return err_set(rc, "pthread_create: %s", strerror(rc));
	}
	*out = k;
	return 0;
}

void act_keeper_origin_size(struct act_keeper *k, uint64_t size)
{
	if (k)
		atomic_store(&k->origin_want, size);
}

void act_keeper_stop(struct act_keeper *k)
{
	if (!k)
		return;
	atomic_store(&k->stop, true);
	pthread_join(k->thread, NULL);
	free(k);
}
