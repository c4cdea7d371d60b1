/*
 * bench/server_owrite.c - origin-write query throughput of a running csnap
 * server, as an export would drive it: pipelined queries (DEPTH in flight),
 * one range of COUNT chunks each, over chunks [FIRST, FIRST + N).
 *
 *   server_owrite [--master ADDR:PORT] STORE FIRST N COUNT DEPTH
 * Prints "chunks N seconds S chunks_per_s R".  Whether queries copy out
 * depends on the store's state (first write after a snapshot: copy-out;
 * again: no copy); bench/server_owrite.sh sets the scenes.
 */
#include "src/proto/client.h"
#include "src/locate/locate.h"
#include "utils/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct locate_opts lo = { .timeout_ms = 30000 };
	int i = 1;
	if (argc > 2 && !strcmp(argv[1], "--master")) {
		char *colon = strrchr(argv[2], ':');
		if (!colon)
			return 2;
		*colon = '\0';
		lo.address = argv[2];
		lo.port = (uint16_t)atoi(colon + 1);
		i = 3;
	}
	if (argc - i != 5) {
		fprintf(stderr, "usage: server_owrite [--master ADDR:PORT] STORE FIRST N COUNT DEPTH\n");
		return 2;
	}
	lo.store_path = argv[i];
	uint64_t first = strtoull(argv[i + 1], NULL, 0), n = strtoull(argv[i + 2], NULL, 0);
	uint32_t count = (uint32_t)strtoul(argv[i + 3], NULL, 0);
	unsigned depth = (unsigned)strtoul(argv[i + 4], NULL, 0);
	struct locate_result res;
	struct proto_client *c;
	if (locate_connect(&lo, &res, &c) < 0 ||
	    proto_client_identify(c, PROTO_VOL_ORIGIN, NULL, 0, "bench", 0, NULL) < 0) {
		fprintf(stderr, "server_owrite: %s\n", err_get());
		return 1;
	}
	uint64_t next = first, end = first + n, done = 0;
	unsigned inflight = 0;
	double t0 = now_s();
	while (done < n) {
		while (inflight < depth && next < end) {
			struct proto_msg m;
			struct proto_range r = { next, (uint32_t)(end - next < count ? end - next : count) };
			proto_msg_init(&m, PROTO_ORIGIN_WRITE, 0);
			m.u.ranges.n = 1;
			m.u.ranges.r = &r;
			if (proto_client_send(c, &m) < 0)
				goto fail;
			next += r.count;
			inflight++;
		}
		if (proto_client_flush(c, true) < 0)
			goto fail;
		struct proto_msg rep;
		int e = proto_client_recv(c, &rep, true);
		if (e < 0)
			goto fail;
		if (!(rep.type & PROTO_REPLY)) {	/* barrier: nothing cached */
			struct proto_msg ack;
			proto_msg_init(&ack, (uint16_t)(rep.type | PROTO_REPLY), rep.id);
			proto_client_reply(c, &ack);
			proto_msg_free(&rep);
			continue;
		}
		if (rep.status) {
			fprintf(stderr, "server_owrite: %s\n", rep.error);
			return 1;
		}
		proto_msg_free(&rep);
		inflight--;
		done += count;
		if (done > n)
			done = n;
	}
	double dt = now_s() - t0;
	printf("chunks %llu seconds %.3f chunks_per_s %.0f\n", (unsigned long long)n, dt, (double)n / dt);
	proto_client_close(c);
	return 0;
fail:
	fprintf(stderr, "server_owrite: %s\n", err_get());
	return 1;
}
