/*
 * src/activate/nbdnl.h - the kernel's nbd driver through its generic
 * netlink family "nbd" (<linux/nbd-netlink.h>), over a raw NETLINK_GENERIC
 * socket (no libnl): hand it a socket that already finished the NBD
 * handshake (CONNECT), swap in a new one after the server restarted
 * (RECONFIGURE), or tear the device down (DISCONNECT).  Needs CAP_SYS_ADMIN.
 *
 * Devices are found again through sysfs: /sys/block/nbdN/backend holds the
 * backend identifier given at CONNECT while the device is configured.
 */
#ifndef CSNAP_ACTIVATE_NBDNL_H
#define CSNAP_ACTIVATE_NBDNL_H

#include <stdint.h>

struct nbdnl_connect {
	int fd;			/* socket in NBD transmission phase */
	uint64_t size;		/* bytes, from the handshake */
	uint64_t server_flags;	/* transmission flags from the handshake */
	uint64_t block_size;	/* 512 or 4096 */
	uint64_t dead_conn_timeout;	/* seconds I/O waits for a RECONFIGURE */
	uint64_t timeout;	/* seconds before a request is retried on a
				 * new connection (0: never) */
	const char *backend;	/* NBD_ATTR_BACKEND_IDENTIFIER */
};

/* 0 if the "nbd" generic netlink family exists (after `modprobe nbd` if it
 * did not), else -ENOENT with err_set() saying so.  */
int nbdnl_available(void);
/* CONNECT: returns the new device's index (>= 0) or -errno with err_set(). */
int nbdnl_connect(const struct nbdnl_connect *c);
/* RECONFIGURE device INDEX with FD replacing its dead connection; the
 * kernel checks BACKEND against the one given at CONNECT.  -ENOSPC: the
 * old connection is not dead (yet).  */
int nbdnl_reconfigure(int index, int fd, const char *backend);
/* RECONFIGURE device INDEX (whose backend must be BACKEND) to SIZE bytes,
 * its connection untouched; BLOCK_SIZE 0 keeps the logical block size.  */
int nbdnl_resize(int index, const char *backend, uint64_t size, uint64_t block_size);
/* DISCONNECT device INDEX: the kernel sends NBD_CMD_DISC and drops its
 * socket.  */
int nbdnl_disconnect(int index);

/* A socket subscribed to the family's multicast group ("nbd_mc_group"),
 * non-blocking; -errno when there is no nbd family (yet).  */
int nbdnl_monitor_open(void);
/* Reads what is queued on a monitor socket: the index of a device whose
 * connection died (NBD_CMD_LINK_DEAD), -EAGAIN for nothing relevant, or
 * another -errno.  */
int nbdnl_monitor_read(int fd);

/* Index of the configured nbd device whose backend is BACKEND, or -ENOENT. */
int nbd_find_backend(const char *backend);
/* Calls FN for every configured nbd device with a backend identifier;
 * stops at the first non-zero return and passes it back.  */
int nbd_for_each_backend(int (*fn)(int index, const char *backend, void *arg), void *arg);
/* "major:minor" of /dev/nbdINDEX from sysfs: 0 or -errno.  */
int nbd_devno(int index, unsigned *major, unsigned *minor);

#endif
