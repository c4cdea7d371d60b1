/*
 * utils/fdlimit.h - keeping a network server alive when file descriptors
 * run out (every peer can open connections; the server must still be able
 * to open what it needs itself: sanlock sockets, devices, the master).
 *
 * Three layers, used together by the master (src/server/conn.c) and the
 * export (src/export/nbd_listen.c):
 *  - fd_limit_raise(): the soft RLIMIT_NOFILE raised to the hard limit at
 *    start-up (the default soft limit, 1024, is far below what a server
 *    may use; the hard limit is what the administrator allows).
 *  - fd_conn_cap(): the number of connections to accept at most, kept
 *    FD_HEADROOM descriptors below the limit, so peers alone cannot
 *    exhaust the table.
 *  - struct fd_reserve: one descriptor held in reserve.  If accept() still
 *    fails with EMFILE/ENFILE (something else used the headroom), the spare
 *    is closed, the pending connection accepted and closed at once, and
 *    the spare reopened: the listener makes progress instead of staying
 *    readable and spinning the event loop.
 * Invariant: a reserve that is open holds exactly one descriptor
 * (spare >= 0); fd_reserve_shed() leaves it open again whenever it can.
 */
#ifndef CSNAP_UTILS_FDLIMIT_H
#define CSNAP_UTILS_FDLIMIT_H

#include <stdbool.h>

/* Descriptors kept free for the server's own use.  */
#define FD_HEADROOM	64

#define FD_RAISE_MAX	(1u << 20)

/* Raises the soft descriptor limit to the hard one, at most FD_RAISE_MAX
 * (best effort) and returns the soft limit now in effect.  */
unsigned fd_limit_raise(void);

/* min(WANT, soft limit - FD_HEADROOM), at least 1.  */
unsigned fd_conn_cap(unsigned want);

struct fd_reserve {
	int spare;	/* an open /dev/null, or -1 */
};

/* Opens the spare; 0 or -errno.  */
int fd_reserve_open(struct fd_reserve *r);
void fd_reserve_close(struct fd_reserve *r);
/* After accept(LFD) failed with ERR: if ERR is a descriptor shortage and
 * the spare is open, accept one pending connection with the spare's slot
 * and close it.  Returns true if a connection was shed (accept again),
 * false if the caller must back off (stop watching LFD for a while).  */
bool fd_reserve_shed(struct fd_reserve *r, int lfd, int err);
/* Is ERR (positive errno) a shortage of descriptors or memory for one?  */
bool fd_shortage(int err);
/* The peer of socket FD has closed or reset it already (no wait).  A
 * daemon at its connection limit refuses such a connection from its accept
 * queue rather than shed a live one for it: a flood's leftovers, queued
 * behind a real client, would otherwise push that client out.  */
bool fd_peer_gone(int fd);

#endif
