/*
 * tests/tools/lease_holder.c - a stand-in for `csnap server` in election
 * tests, on real sanlock: joins the lockspace, tries to acquire the master
 * lease until it gets it, publishes its address in the lease-owner record,
 * and holds the lease until SIGTERM (orderly: clear record, release, exit
 * 0).  If sanlock fences it (killpath -> SIGUSR1) it stops at once without
 * touching the disk and exits 3.
 *
 *   LEASE_PATH=... LEASE_UUID=... lease_holder HOST_ID ADDRESS PORT [IO_TIMEOUT]
 *
 * Prints one line per event on stdout: "joined <ms>", "master lver=N
 * gen=G <ms since start> at=<wall ms>", "released at=<wall ms>", "fenced".
 * Standbys retry every LEASE_POLL_MS (default 100) milliseconds.
 */
#include "tests/tools/lease_common.h"

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int signo)
{
	(void)signo;
	stop = 1;
}

/* Wall-clock ms, comparable with `date +%s%N` in scripts.  */
static long long wall_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

int main(int argc, char **argv)
{
	struct lease_area a;
	struct lease_master m;
	struct timespec t0;
	uint32_t host_id, io_timeout;
	int rc, poll_ms;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4 || area_from_env(&a) < 0) {
		fprintf(stderr, "usage: lease_holder HOST_ID ADDRESS PORT [IO_TIMEOUT]\n");
		return 2;
	}
	host_id = (uint32_t)atoi(argv[1]);
	io_timeout = argc > 4 ? (uint32_t)atoi(argv[4]) : 1;
	poll_ms = getenv("LEASE_POLL_MS") ? atoi(getenv("LEASE_POLL_MS")) : 100;
	if (poll_ms < 1)
		poll_ms = 1;
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	if (lease_fence_install(SIGUSR1) < 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	rc = lease_join(&a, host_id, io_timeout, 120000);
	if (rc < 0) {
		fprintf(stderr, "lease_holder: join: %s\n", err_get());
		return 1;
	}
	printf("joined %ld\n", ms_since(&t0));
	if (lease_master_open(&m, &a, host_id, SIGUSR1) < 0) {
		fprintf(stderr, "lease_holder: %s\n", err_get());
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (stop)
			return 0;
		rc = lease_master_acquire(&m);
		if (rc == 0)
			break;
		if (rc != -EBUSY && rc != -EAGAIN) {
			fprintf(stderr, "lease_holder: %s\n", err_get());
			return 1;
		}
		usleep(poll_ms * 1000);
	}
	rc = lease_master_publish(&m, argv[2], (uint16_t)atoi(argv[3]), m.lver);
	if (rc < 0) {
		fprintf(stderr, "lease_holder: publish: %s\n", err_get());
		return 1;
	}
	printf("master lver=%llu gen=%llu %ld at=%lld\n", (unsigned long long)m.lver,
	       (unsigned long long)m.generation, ms_since(&t0), wall_ms());
	while (!stop) {
		if (lease_fenced() || lease_master_check(&m) < 0 || lease_may_commit(&m) < 0) {
			/* No more writes of any kind: not even clearing the record.  */
			printf("fenced: %s\n", lease_fenced() ? "sanlock revoked the lease" : err_get());
			_exit(3);
		}
		usleep(100 * 1000);
	}
	if (lease_master_unpublish(&m) < 0 || lease_master_release(&m) < 0) {
		fprintf(stderr, "lease_holder: release: %s\n", err_get());
		return 1;
	}
	printf("released at=%lld\n", wall_ms());
	lease_master_close(&m);
	return 0;
}
