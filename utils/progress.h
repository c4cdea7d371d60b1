/*
 * utils/progress.h - "still working" pulses from long synchronous work.
 *
 * A process whose liveness is watched (the master server: its agent kills
 * it when a heartbeat goes unanswered, docs/agent.md) sets a hook; the
 * store engine calls csnap_progress() in its inner loops (b-tree walks,
 * metadata block reads and writes), and the hook runs at most every
 * CSNAP_PROGRESS_MS while such work goes on.  So a master busy with a long
 * walk (usage of millions of exceptions for `csnap status`) keeps
 * answering, while a stopped, deadlocked or hung one does not.  The cost
 * without a hook is one load and compare; with one, a counter and every
 * 256 calls a clock read.
 *
 * Single-threaded use only (the hook runs on the calling thread).
 */
#ifndef CSNAP_UTILS_PROGRESS_H
#define CSNAP_UTILS_PROGRESS_H

#define CSNAP_PROGRESS_MS	100

extern void (*csnap_progress_hook)(void);
extern unsigned csnap_progress_count;
void csnap_progress_check(void);

static inline void csnap_progress(void)
{
	if (csnap_progress_hook && (++csnap_progress_count & 255) == 0)
		csnap_progress_check();
}

#endif
