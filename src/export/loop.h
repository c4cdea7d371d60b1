/*
 * src/export/loop.h - the export daemon's event loop: utils/evloop with
 * the async ioengine plugged in through its eventfd.
 *
 * Invariants (beyond utils/evloop.h's):
 *  - I/O queued during a turn (by event callbacks, timers or deferred
 *    work) is submitted as one batch at the end of the turn, in the
 *    after-turn hook: one io_submit per turn, not one per request.
 *  - loop_destroy() first lets the I/O in flight finish: its buffers
 *    belong to callers still waiting for the completions.
 */
#ifndef CSNAP_EXPORT_LOOP_H
#define CSNAP_EXPORT_LOOP_H

#include "utils/evloop.h"

struct io_engine;

/* Creates a loop with an async ioengine of the given queue depth.  */
int loop_create(unsigned io_depth, struct evloop **out);
void loop_destroy(struct evloop *lp);
/* The loop's ioengine (only for a loop made by loop_create).  */
struct io_engine *loop_io(struct evloop *lp);

#endif
