/*
 * tests/tools/lease_tool.c - one lease operation per run, on an explicit
 * lease area (see lease_common.h), for the cluster tests:
 *
 *   lease_tool init IO_TIMEOUT [force]
 *   lease_tool join HOST_ID IO_TIMEOUT        (waits, prints "joined <ms>")
 *   lease_tool leave HOST_ID
 *   lease_tool find                   "valid HOST ADDR PORT LVER" | "none WHY"
 *                                     | "changing WHY"
 *   lease_tool hosts                  "HOST_ID NAME STATE GEN" per line
 *   lease_tool record                 the raw record: "HOST LVER GEN ADDR PORT"
 *   lease_tool write-record HOST LVER GEN ADDR PORT   (forges a record)
 *   lease_tool acquire HOST_ID        one attempt at the master lease, then exit
 */
#include "tests/tools/lease_common.h"

#include <errno.h>
#include <time.h>

static int fail(const char *what)
{
	fprintf(stderr, "lease_tool: %s: %s\n", what, err_get());
	return 1;
}

int main(int argc, char **argv)
{
	struct lease_area a;
	const char *op = argc > 1 ? argv[1] : "";

	if (argc < 2 || area_from_env(&a) < 0)
		return 2;
	if (!strcmp(op, "init") && argc >= 3) {
		if (lease_init(&a, (uint32_t)atoi(argv[2]), argc > 3 && !strcmp(argv[3], "force")) < 0)
			return fail("init");
		return 0;
	}
	if (!strcmp(op, "join") && argc >= 4) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (lease_join(&a, (uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]), 120000) < 0)
			return fail("join");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("joined %ld\n", (t1.tv_sec - t0.tv_sec) * 1000 +
		       (t1.tv_nsec - t0.tv_nsec) / 1000000);
		return 0;
	}
	if (!strcmp(op, "leave") && argc >= 3)
		return lease_leave(&a, (uint32_t)atoi(argv[2]), false) < 0 ? fail("leave") : 0;
	if (!strcmp(op, "find")) {
		struct lease_master_info mi;
		if (lease_find_master(&a, &mi) < 0)
			return fail("find");
		if (mi.state == LEASE_MASTER_VALID)
			printf("valid %llu %s %u %llu\n", (unsigned long long)mi.host_id, mi.address,
			       mi.port, (unsigned long long)mi.lver);
		else
			printf("%s %s\n", mi.state == LEASE_MASTER_NONE ? "none" : "changing", mi.why);
		return 0;
	}
	if (!strcmp(op, "hosts")) {
		struct lease_host *h;
		int n;
		if (lease_hosts(&a, &h, &n) < 0)
			return fail("hosts");
		for (int i = 0; i < n; i++)
			printf("%u %s %s %llu\n", h[i].host_id, h[i].name,
			       lease_host_state_name(h[i].state), (unsigned long long)h[i].generation);
		free(h);
		return 0;
	}
	if (!strcmp(op, "record")) {
		struct lease_record r;
		if (lease_record_read(&a, &r) < 0)
			return fail("record");
		printf("%llu %llu %llu %s %u\n", (unsigned long long)r.host_id,
		       (unsigned long long)r.lver, (unsigned long long)r.generation,
		       r.address[0] ? r.address : "-", r.port);
		return 0;
	}
	if (!strcmp(op, "write-record") && argc >= 7) {
		struct lease_record r;
		memset(&r, 0, sizeof(r));
		r.host_id = strtoull(argv[2], NULL, 0);
		r.lver = strtoull(argv[3], NULL, 0);
		r.generation = strtoull(argv[4], NULL, 0);
		snprintf(r.address, sizeof(r.address), "%s", argv[5]);
		r.port = (uint16_t)atoi(argv[6]);
		return lease_record_write(&a, &r) < 0 ? fail("write-record") : 0;
	}
	if (!strcmp(op, "acquire") && argc >= 3) {
		struct lease_master m;
		if (lease_master_open(&m, &a, (uint32_t)atoi(argv[2]), 0) < 0 ||
		    lease_master_acquire(&m) < 0)
			return fail("acquire");
		printf("acquired lver %llu\n", (unsigned long long)m.lver);
		lease_master_close(&m);
		return 0;
	}
	fprintf(stderr, "lease_tool: unknown operation or missing arguments: %s\n", op);
	return 2;
}
