/*
 * src/export/loop.c - the export's evloop and its async ioengine: see
 * loop.h.  Completions are reaped when the engine's eventfd is readable;
 * queued I/O is submitted after every turn.
 */
#include "src/export/loop.h"

#include "ioengine/ioengine.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

struct loop_io {
	struct io_engine *io;
	struct evloop_watch w;
};

static void io_ready(void *arg, uint32_t events)
{
	struct loop_io *li = arg;

	(void)events;
	if (io_engine_reap(li->io, 0) < 0)
		log_error("export: reaping I/O completions: %s", err_get());
}

static void io_submit_turn(void *arg)
{
	struct loop_io *li = arg;

	if (io_engine_submit(li->io) < 0)
		log_error("export: submitting I/O: %s", err_get());
}

int loop_create(unsigned io_depth, struct evloop **out)
{
	struct loop_io *li = calloc(1, sizeof *li);
	struct evloop *lp = NULL;
	int rc;

	if (!li)
		return err_set(ENOMEM, "out of memory");
	if ((rc = evloop_create(&lp)) < 0 ||
	    (rc = io_engine_create(io_depth, &li->io)) < 0 ||
	    (rc = evloop_watch_add(lp, &li->w, io_engine_eventfd(li->io), EPOLLIN, io_ready,
				   li)) < 0) {
		if (li->io)
			io_engine_destroy(li->io);
		evloop_destroy(lp);
		free(li);
		return rc;
	}
	evloop_set_userdata(lp, li);
	evloop_set_after(lp, io_submit_turn, li);
	*out = lp;
	return 0;
}

void loop_destroy(struct evloop *lp)
{
	struct loop_io *li;

	if (!lp)
		return;
	li = evloop_userdata(lp);
	while (io_engine_pending(li->io) > 0) {
		io_engine_submit(li->io);
		if (io_engine_reap(li->io, 100) < 0)
			break;
	}
	evloop_watch_del(lp, &li->w);
	io_engine_destroy(li->io);
	evloop_destroy(lp);
	free(li);
}

struct io_engine *loop_io(struct evloop *lp)
{
	return ((struct loop_io *)evloop_userdata(lp))->io;
}
