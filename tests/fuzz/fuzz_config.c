/*
 * tests/fuzz/fuzz_config.c - csnap.conf (utils/config.c on utils/inifile.c): any
 * file must load or be refused with a message; a loaded configuration
 * must hold every bound the rest of csnap relies on (terminated strings,
 * host_id 1..2000, at most CONFIG_MAX_STORES stores, each with a device
 * and an export socket).
 *
 * Input: the file's bytes, given to config_load() as /proc/self/fd/N of a
 * memfd (the real path-based entry point, no file system litter).  The
 * input's first line also goes to the number parsers it shares.
 */
#include "tests/fuzz/fuzz.h"

#include "utils/config.h"
#include "utils/err.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int mfd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup("fuzz_config");
	mfd = memfd_create("csnap.conf", MFD_CLOEXEC);
	if (mfd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
	return 0;
}

static bool terminated(const char *s, size_t size)
{
	return memchr(s, 0, size) != NULL;
}

static void numbers(const uint8_t *data, size_t size)
{
	char s[64];
	size_t n = 0;
	uint64_t v;
	bool b;

	while (n < size && n < sizeof s - 1 && data[n] && data[n] != '\n')
		n++;
	memcpy(s, data, n);
	s[n] = 0;
	if (parse_u64(s, 1, 2000, &v) == 0)
		FUZZ_CHECK(v >= 1 && v <= 2000, "parse_u64 out of range: %llu",
			   (unsigned long long)v);
	(void)parse_size(s, &v);
	(void)parse_bool(s, &b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	int r;

	numbers(data, size);
	if (ftruncate(mfd, 0) < 0 || pwrite(mfd, data, size, 0) != (ssize_t)size)
		abort();
	r = config_load(path, &cfg);
	if (r < 0) {
		FUZZ_CHECK(strlen(err_get()) > 0 && !strchr(err_get(), '\n'),
			   "refusal without a one-line reason");
		return 0;
	}
	FUZZ_CHECK(cfg.host_id >= 1 && cfg.host_id <= 2000, "host_id %u", cfg.host_id);
	FUZZ_CHECK(cfg.nstores >= 0 && cfg.nstores <= CONFIG_MAX_STORES, "nstores %d", cfg.nstores);
	FUZZ_CHECK(cfg.io_timeout >= 1 && cfg.io_timeout <= 300, "io_timeout %u", cfg.io_timeout);
	FUZZ_CHECK(terminated(cfg.node_name, sizeof cfg.node_name) && cfg.node_name[0] &&
		   terminated(cfg.address, sizeof cfg.address) &&
		   terminated(cfg.run_dir, sizeof cfg.run_dir), "bad global strings");
	for (int i = 0; i < cfg.nstores; i++) {
		const struct config_store *st = &cfg.stores[i];

		FUZZ_CHECK(terminated(st->name, sizeof st->name) && st->name[0] &&
			   terminated(st->device, sizeof st->device) && st->device[0] &&
			   terminated(st->origin, sizeof st->origin) &&
			   terminated(st->export_socket, sizeof st->export_socket) &&
			   st->export_socket[0] &&
			   terminated(st->export_address, sizeof st->export_address) &&
			   st->export_port, "store %d incomplete", i);
		FUZZ_CHECK(config_find_store(&cfg, st->name) != NULL, "store %s not found by name",
			   st->name);
	}
	return 0;
}
