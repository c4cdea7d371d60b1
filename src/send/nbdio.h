/*
 * src/send/nbdio.h - a small blocking NBD client for `csnap send` and
 * `csnap receive`: they read a snapshot and write the origin through a
 * running `csnap export`, so every read and write takes the export's
 * normal path (read locks, copy-outs for the snapshots, grants).  One
 * request in flight at a time, simple replies only; every reply's magic
 * and handle are checked.
 */
#ifndef CSNAP_SEND_NBDIO_H
#define CSNAP_SEND_NBDIO_H

#include <stdint.h>

struct nbdio {
	int fd;
	uint64_t size;		/* export size, bytes */
	uint16_t flags;		/* NBD_FLAG_* transmission flags */
	uint64_t handle;
	char name[80];		/* export name, for messages */
};

#define NBDIO_MAX_REQ	(16u << 20)	/* bytes per request (the export takes 32 MiB) */

/* Connects to ADDR (a unix socket path when PORT is 0) and opens export
 * NAME; an export that does not list NAME yet (a snapshot created a moment
 * ago) is retried for up to WAIT_MS.  0 or -errno with err_set().  */
int nbdio_open(struct nbdio *n, const char *addr, uint16_t port, const char *name, int wait_ms);
int nbdio_read(struct nbdio *n, uint64_t off, void *buf, uint32_t len);
int nbdio_write(struct nbdio *n, uint64_t off, const void *buf, uint32_t len);
/* WRITE_ZEROES when the export offers it, zero-filled writes otherwise.  */
int nbdio_zero(struct nbdio *n, uint64_t off, uint64_t len);
int nbdio_flush(struct nbdio *n);
/* Sends DISC and closes.  */
void nbdio_close(struct nbdio *n);

#endif
