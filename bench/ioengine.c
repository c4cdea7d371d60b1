/*
 * bench/ioengine.c - a quick sanity figure, not a test: 4 KiB random read
 * and write IOPS at queue depth 1 and 32, through the async engine and
 * through plain pread/pwrite (one thread per outstanding I/O), on one
 * O_DIRECT file.
 *
 *   build/bench/ioengine [-f FILE] [-s SIZE_MIB] [-t SECONDS]
 *
 * Prints one line per case with both figures and engine/plain ratio.
 */
#include "ioengine/ioengine.h"
#include "utils/err.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BS 4096u

static uint64_t nblocks;
static double seconds = 1.0;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- through the engine ---- */

struct eng_run {
	struct io_engine *eng;
	struct io_dev *dev;
	bool write;
	bool stop;
	uint64_t seed;
	uint64_t ops;
	int err;
};

struct slot {
	struct eng_run *run;
	void *buf;
};

static void issue(struct slot *s);

static void on_done(void *arg, ssize_t result)
{
	struct slot *s = arg;

	if (result != BS) {
		fprintf(stderr, "ioengine bench: %s\n", err_get());
		s->run->err = (int)result;
		s->run->stop = true;
		return;
	}
	s->run->ops++;
	if (!s->run->stop)
		issue(s);
}

static void issue(struct slot *s)
{
	struct eng_run *run = s->run;
	uint64_t off = (rnd(&run->seed) % nblocks) * BS;
	int r = run->write ? io_engine_write(run->eng, run->dev, s->buf, BS, off, on_done, s)
			   : io_engine_read(run->eng, run->dev, s->buf, BS, off, on_done, s);

	if (r < 0) {
		fprintf(stderr, "ioengine bench: %s\n", err_get());
		run->err = r;
		run->stop = true;
	}
}

static double bench_engine(struct io_dev *dev, unsigned qd, bool write)
{
	struct eng_run run = { .dev = dev, .write = write, .seed = 88172645463325252ull };
	struct slot *slots = calloc(qd, sizeof *slots);
	double t0, t;

	if (!slots || io_engine_create(qd, &run.eng) < 0) {
		fprintf(stderr, "ioengine bench: %s\n", err_get());
		exit(1);
	}
	for (unsigned i = 0; i < qd; i++) {
		slots[i].run = &run;
		slots[i].buf = io_buf_alloc(BS);
		issue(&slots[i]);
	}
	io_engine_submit(run.eng);
	t0 = now();
	do {
		if (io_engine_reap(run.eng, -1) < 0) {
			fprintf(stderr, "ioengine bench: %s\n", err_get());
			exit(1);
		}
		io_engine_submit(run.eng);
		t = now();
	} while (t - t0 < seconds && !run.stop);
	run.stop = true;
	io_engine_destroy(run.eng);	/* drains the rest */
	for (unsigned i = 0; i < qd; i++)
		io_buf_free(slots[i].buf);
	free(slots);
	if (run.err)
		exit(1);
	return (double)run.ops / (t - t0);
}

/* ---- plain pread/pwrite, one thread per outstanding I/O ---- */

struct sync_run {
	struct io_dev *dev;
	bool write;
	double until;
	uint64_t seed;
	uint64_t ops;
	int err;
};

static void *sync_thread(void *arg)
{
	struct sync_run *run = arg;
	void *buf = io_buf_alloc(BS);
	int fd = io_dev_fd(run->dev);

	while (now() < run->until) {
		for (int i = 0; i < 64; i++) {
			off_t off = (off_t)((rnd(&run->seed) % nblocks) * BS);
			ssize_t n = run->write ? pwrite(fd, buf, BS, off) : pread(fd, buf, BS, off);

			if (n != (ssize_t)BS) {
				run->err = n < 0 ? errno : EIO;
				io_buf_free(buf);
				return NULL;
			}
			run->ops++;
		}
	}
	io_buf_free(buf);
	return NULL;
}

static double bench_sync(struct io_dev *dev, unsigned qd, bool write)
{
	struct sync_run *runs = calloc(qd, sizeof *runs);
	pthread_t *th = calloc(qd, sizeof *th);
	double t0 = now(), t;
	uint64_t ops = 0;

	for (unsigned i = 0; i < qd; i++) {
		runs[i] = (struct sync_run){ dev, write, t0 + seconds, 0x9E3779B97F4A7C15ull * (i + 1), 0, 0 };
		pthread_create(&th[i], NULL, sync_thread, &runs[i]);
	}
	for (unsigned i = 0; i < qd; i++) {
		pthread_join(th[i], NULL);
		if (runs[i].err) {
			fprintf(stderr, "ioengine bench: %s: %s\n", io_dev_path(dev),
				strerror(runs[i].err));
			exit(1);
		}
		ops += runs[i].ops;
	}
	t = now();
	free(runs);
	free(th);
	return (double)ops / (t - t0);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	char tmp[] = "/var/tmp/ioengine-bench-XXXXXX";
	uint64_t mib = 256;
	struct io_dev *dev;
	int opt;

	while ((opt = getopt(argc, argv, "f:s:t:")) != -1) {
		switch (opt) {
		case 'f': path = optarg; break;
		case 's': mib = strtoull(optarg, NULL, 0); break;
		case 't': seconds = atof(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-f FILE] [-s SIZE_MIB] [-t SECONDS]\n", argv[0]);
			return 2;
		}
	}
	if (!mib || seconds <= 0) {
		fprintf(stderr, "ioengine bench: size and time must be positive\n");
		return 2;
	}
	if (!path) {
		int fd = mkstemp(tmp);

		if (fd < 0) {
			perror(tmp);
			return 1;
		}
		close(fd);
		path = tmp;
	}
	if (io_dev_open(path, IO_DEV_RDWR | IO_DEV_CREATE, &dev) < 0) {
		fprintf(stderr, "ioengine bench: %s\n", err_get());
		return 1;
	}
	/* Real data everywhere: reads of holes would measure nothing.  */
	nblocks = mib * (1 << 20) / BS;
	void *chunk = io_buf_alloc(1 << 20);
	memset(chunk, 0x5a, 1 << 20);
	for (uint64_t m = 0; m < mib; m++)
		if (io_dev_pwrite(dev, chunk, 1 << 20, m << 20) < 0 || io_dev_flush(dev) < 0) {
			fprintf(stderr, "ioengine bench: %s\n", err_get());
			return 1;
		}
	io_buf_free(chunk);

	printf("ioengine bench: %s (%s, %" PRIu64 " MiB), 4 KiB random, %.1f s per case\n",
	       path, io_dev_is_direct(dev) ? "O_DIRECT" : "buffered", mib, seconds);
	static const unsigned qds[] = { 1, 32 };
	for (int w = 0; w < 2; w++)
		for (size_t q = 0; q < 2; q++) {
			double e = bench_engine(dev, qds[q], w);
			double s = bench_sync(dev, qds[q], w);

			printf("  rand%-5s qd=%-2u  engine %8.0f IOPS   pread/pwrite %8.0f IOPS   ratio %.2f\n",
			       w ? "write" : "read", qds[q], e, s, e / s);
		}
	io_dev_close(dev);
	if (path == tmp)
		unlink(tmp);
	return 0;
}
