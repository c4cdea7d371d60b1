/*
 * src/store/upgrade.c - `csnap upgrade`: move a store of an older format
 * version up to CSNAP_FORMAT_VERSION (format.h lists the versions).
 *
 * A store is upgraded one version at a time.  For version V the steps
 * listed below with to == V run on the store opened read-write (the
 * old_format open option), in one journal transaction; it is committed and
 * checkpointed, and only then the superblock is rewritten with version V
 * (and whatever the steps changed in it).  Crash safety follows from the
 * superblock's own update rule (superblock.h: primary, flush, backup,
 * flush; readers take the valid copy with the highest seq): a cut before
 * the primary copy is durable leaves version V-1, after it version V.
 *
 * Rules for a step (other changes to the format add theirs here):
 *  - idempotent: a cut after its transaction but before the version flip
 *    leaves version V-1, and the next upgrade runs the step again;
 *  - harmless to a version V-1 reader: what it writes before the flip is
 *    in a structure V-1 ignores, or zero / as V-1 had it (format.h rule:
 *    every added field reads all-zero as "absent");
 *  - superblock changes go into s->sb and are written with the version,
 *    atomically;
 *  - bounded: one transaction (store_txn_limit() blocks).
 * A version with no step (nothing to initialise) still gets its flip, so
 * an older csnap refuses the store from then on.
 */
#include "src/store/store_int.h"

#include "ioengine/ioengine.h"
#include "utils/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

struct upgrade_step {
	uint32_t to;		/* format version this step is part of */
	const char *what;	/* one line for the report */
	int (*run)(struct store *s);
};

/* Steps, in order.  Version 2's other additions need no initialisation
 * (their all-zero bytes mean "absent"): add a step here for any that does.
 * The usage counters (counters.h): counted by a walk of the tree into
 * blocks taken from the tree area (a rerun after a cut reuses them); a
 * version-1 csnap ignores the header fields, though its check would
 * report those blocks as allocated but unreferenced.  */
static const struct upgrade_step steps[] = {
	{ 2, "usage counters counted from the exception tree", store_counters_rebuild },
};

static void say(void (*report)(void *, const char *), void *arg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(void (*report)(void *, const char *), void *arg, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!report)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	report(arg, line);
}

/* One version up: V's steps, commit, checkpoint, then the flip.  */
static int upgrade_one(struct store *s, uint32_t v, void (*report)(void *, const char *),
		       void *arg)
{
	int ret = 0;

	for (size_t i = 0; i < sizeof steps / sizeof steps[0] && ret >= 0; i++) {
		if (steps[i].to != v || !steps[i].run)
			continue;
		say(report, arg, "version %u: %s", v, steps[i].what);
		ret = steps[i].run(s);
		if (ret < 0)
			err_prefix(-ret, "upgrade step \"%s\"", steps[i].what);
	}
	if (ret >= 0)
		ret = store_commit(s);
	if (ret >= 0)
		ret = store_checkpoint(s);	/* the steps' blocks home, journal empty */
	if (ret < 0)
		return ret;
	s->sb.version = v;
	ret = csnap_sb_write(s->dev, &s->sb);
	if (ret < 0)
		return err_prefix(-ret, "writing the version %u superblock", v);
	say(report, arg, "format version %u", v);
	return 0;
}

int store_upgrade_dev(struct io_dev *dev, uint32_t *from,
		      void (*report)(void *arg, const char *line), void *arg)
{
	struct store_open_opts o = { .old_format = true };
	struct csnap_sb sb;
	struct store *s;
	int ret = csnap_sb_read(dev, &sb, NULL);

	if (ret < 0)
		return ret;
	*from = sb.version;
	if (sb.version == CSNAP_FORMAT_VERSION)
		return 0;	/* current: not even opened read-write */
	ret = store_open_dev(dev, &o, &s);
	if (ret < 0)
		return ret;
	*from = s->sb.version;
	for (uint32_t v = s->sb.version + 1; v <= CSNAP_FORMAT_VERSION && ret >= 0; v++)
		ret = upgrade_one(s, v, report, arg);
	if (ret < 0) {
		/* nothing uncommitted may reach the disk after a failure */
		store_close_nockpt(s);
		return err_prefix(-ret, "%s", io_dev_path(dev));
	}
	store_close(s);
	return 0;
}

int store_upgrade(const char *path, uint32_t *from,
		  void (*report)(void *arg, const char *line), void *arg)
{
	struct io_dev *dev;
	int ret = io_dev_open(path, IO_DEV_RDWR, &dev);

	if (ret < 0)
		return ret;
	ret = store_upgrade_dev(dev, from, report, arg);
	io_dev_close(dev);
	return ret;
}
