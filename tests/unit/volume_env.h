/*
 * tests/unit/volume_env.h - the setting shared by the export's volume tests
 * (tests/unit/test_export_origin.c, test_export_snaplocks.c): a real event
 * loop, async ioengine and dio on temp files standing for the origin and
 * (for a snapshot volume) the store, the volume under test, the fake
 * session (tests/unit/session_fake.h, included first), and requests the
 * test submits and then waits for.
 *
 * The including test defines CS (chunk size), SHIFT (log2 CS) and
 * ORIGIN_SIZE before including it.  env_open() fills the csvol_env fields
 * every volume needs; the test adds its own, creates the volume and sets
 * e->vol and e->s; env_close() undoes env_open() (the volume is the
 * test's to shut down first).  An origin volume's tests use
 * env_origin_create() and env_origin_teardown() for that.
 */
#ifndef CSNAP_TESTS_VOLUME_ENV_H
#define CSNAP_TESTS_VOLUME_ENV_H

#if !defined(CS) || !defined(SHIFT) || !defined(ORIGIN_SIZE)
#error "define CS, SHIFT and ORIGIN_SIZE before including volume_env.h"
#endif

#include "ioengine/ioengine.h"
#include "src/export/csvol.h"
#include "src/export/dio.h"
#include "src/export/loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct env {
	char opath[64], spath[64];
	struct io_dev *odev, *sdev;	/* sdev NULL: no store */
	struct evloop *lp;
	struct dio *origin, *store;
	struct master_target tgt;
	struct volume *vol;
	struct session *s;
	int ready;			/* a snapshot volume's on_ready calls */
};

/* A volume request the test submits and then checks.  */
struct vio {
	struct vol_req req;
	int calls;
	int err;
};

static void vio_done(struct vol_req *req, int err)
{
	struct vio *v = (struct vio *)req;

	v->calls++;
	v->err = err;
}

/* Submits OP over LEN bytes at OFF, its buffer filled with FILL.  */
static struct vio *vio_start(struct env *e, enum vol_op op, uint64_t off, size_t len, int fill)
{
	struct vio *v = calloc(1, sizeof *v);

	assert_non_null(v);
	v->req.op = op;
	v->req.off = off;
	v->req.len = (uint32_t)len;
	v->req.buf = io_buf_alloc(len);
	memset(v->req.buf, fill, len);
	v->req.done = vio_done;
	volume_submit(e->vol, &v->req);
	return v;
}

static void vio_free(struct vio *v)
{
	io_buf_free(v->req.buf);
	free(v);
}

/* A temp file /var/tmp/NAME.XXXXXX of SIZE bytes of FILL; its path in PATH. */
static void env_mkfile(char *path, size_t pathlen, const char *name, size_t size, int fill)
{
	char *buf = malloc(size);
	int fd;

	assert_non_null(buf);
	snprintf(path, pathlen, "/var/tmp/%s.XXXXXX", name);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	memset(buf, fill, size);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
}

/* An origin of ORIGIN_SIZE bytes of 'O' (NAME-origin), and with
 * STORE_SIZE a store of that many bytes of 'S' (NAME-store); CE gets what
 * every volume needs.  */
static void env_open(struct env *e, const char *name, size_t store_size, struct csvol_env *ce)
{
	char fname[48];

	snprintf(fname, sizeof fname, "%s-origin", name);
	env_mkfile(e->opath, sizeof e->opath, fname, ORIGIN_SIZE, 'O');
	assert_int_equal(io_dev_open(e->opath, IO_DEV_RDWR, &e->odev), 0);
	if (store_size) {
		snprintf(fname, sizeof fname, "%s-store", name);
		env_mkfile(e->spath, sizeof e->spath, fname, store_size, 'S');
		assert_int_equal(io_dev_open(e->spath, IO_DEV_RDWR, &e->sdev), 0);
	}
	assert_int_equal(loop_create(64, &e->lp), 0);
	assert_int_equal(dio_create(loop_io(e->lp), e->odev, &e->origin), 0);
	if (e->sdev)
		assert_int_equal(dio_create(loop_io(e->lp), e->sdev, &e->store), 0);
	memset(ce, 0, sizeof *ce);
	ce->lp = e->lp;
	ce->tgt = &e->tgt;
	ce->origin = e->origin;
	ce->store = e->store;
	ce->chunk_size = CS;
	ce->chunk_shift = SHIFT;
	ce->origin_size = ORIGIN_SIZE;
}

static void env_close(struct env *e)
{
	dio_destroy(e->origin);
	if (e->store)
		dio_destroy(e->store);
	loop_destroy(e->lp);
	io_dev_close(e->odev);
	unlink(e->opath);
	if (e->sdev) {
		io_dev_close(e->sdev);
		unlink(e->spath);
	}
	free(e);
}

/* Creates the origin volume on CE: e->vol, and e->s the (fake) session
 * it opened.  */
static inline void env_origin_create(struct env *e, struct csvol_env *ce)
{
	assert_int_equal(volume_origin_create(ce, &e->vol), 0);
	e->s = the_sess;
	assert_non_null(e->s);
}

/* The cmocka teardown of an origin volume's test: the volume shut down
 * and put, then env_close().  */
static inline int env_origin_teardown(void **state)
{
	struct env *e = *state;

	volume_origin_shutdown(e->vol);
	volume_put(e->vol);
	env_close(e);
	return 0;
}

/* Turns the loop until COND holds (bounded).  */
#define RUN_UNTIL(e, cond)                                                     \
	do {                                                                   \
		for (int i_ = 0; i_ < 500 && !(cond); i_++)                    \
			assert_true(evloop_run_once((e)->lp, 10) >= 0);        \
	} while (0)

static unsigned env_inflight(const struct env *e)
{
	return dio_inflight(e->origin) + (e->store ? dio_inflight(e->store) : 0);
}

/* Lets the device I/O in flight finish, and a few more turns run (a write
 * wrongly let through would reach the disk meanwhile).  */
static void settle(struct env *e)
{
	for (int i = 0; i < 500 && env_inflight(e); i++)
		assert_true(evloop_run_once(e->lp, 10) >= 0);
	for (int i = 0; i < 5; i++)
		assert_true(evloop_run_once(e->lp, 1) >= 0);
	assert_int_equal(env_inflight(e), 0);
}

#endif
