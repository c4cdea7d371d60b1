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
 *
 * More than one loop thread (a loop pool, `export_threads`): the main
 * loop keeps the listeners, handshakes, master sessions and timers; NBD
 * connections in transmission are spread over the pool's loops (the main
 * one included), each loop on its own thread with its own ioengine.  All
 * of the export's state stays shared and is guarded by one lock, the
 * export lock: every loop turn holds it but for its wait (epoll_wait), so
 * callbacks never run concurrently and every invariant of the single
 * threaded export holds unchanged.  What runs in parallel is the waiting
 * and the kernel work done outside the lock.  Device I/O is queued on the
 * engine of the thread that queues it (loop_thread_io()), so its
 * completion comes back to that thread; the device (struct io_dev) is
 * shared by the engines, and a flush on any of them covers every write
 * completed before it (fdatasync of the device).
 */
#ifndef CSNAP_EXPORT_LOOP_H
#define CSNAP_EXPORT_LOOP_H

#include "utils/evloop.h"

#include <stdbool.h>

struct io_engine;

/* Creates a loop with an async ioengine of the given queue depth.  */
int loop_create(unsigned io_depth, struct evloop **out);
void loop_destroy(struct evloop *lp);
/* The loop's ioengine (only for a loop made by loop_create).  */
struct io_engine *loop_io(struct evloop *lp);

/* The engine of the loop this thread runs (loop_bind_thread()), NULL if
 * none: users of a shared device queue their I/O there, not on the
 * engine they were created with, so it is submitted and reaped by the
 * thread that is running.  */
struct io_engine *loop_thread_io(void);
void loop_bind_thread(struct evloop *lp);

/* The export lock (see above).  loop_locked(): this thread holds it, or
 * no pool runs (one thread, nothing to lock): what code touching shared
 * state asserts.  */
void loop_lock(void);
void loop_unlock(void);
bool loop_locked(void);

struct loop_pool;
/* Up to NTHREADS - 1 more loops, each on its own thread with an engine
 * of IO_DEPTH, sharing MAIN's state under the export lock, which the
 * calling thread (MAIN's) holds from now on: it is released while MAIN
 * waits in evloop_run().  Each extra loop starts with the first
 * connection given to it (loop_pool_pick).  */
int loop_pool_start(struct evloop *main, unsigned nthreads, unsigned io_depth,
		    struct loop_pool **out);
/* The loop for a new connection: the one with the fewest connections,
 * MAIN's on a tie (*INDEX: which, 0 for MAIN's); MAIN's if a thread
 * cannot be started (logged once).  loop_pool_unpick() when the
 * connection is gone.  */
struct evloop *loop_pool_pick(struct loop_pool *p, unsigned *index);
void loop_pool_unpick(struct loop_pool *p, unsigned index);
/* I/O queued or in flight on the engines of the pool's own threads. */
unsigned loop_pool_pending(const struct loop_pool *p);
/* Stops and joins the threads, then completes the I/O still on their
 * engines (callbacks run on the calling thread).  The caller holds the
 * export lock; afterwards the export is single-threaded again and the
 * lock is released.  */
void loop_pool_stop(struct loop_pool *p);

#endif
