/*
 * src/activate/nbdclient.h - the client side of the NBD fixed newstyle
 * handshake, just far enough to hand the socket to the kernel: connect,
 * NBD_OPT_GO for one export name, read its size and transmission flags.
 * No structured replies are negotiated: the kernel's nbd driver speaks
 * simple replies only.
 */
#ifndef CSNAP_ACTIVATE_NBDCLIENT_H
#define CSNAP_ACTIVATE_NBDCLIENT_H

#include <stdint.h>

struct nbdc_export {
	uint64_t size;
	uint16_t flags;		/* transmission flags (NBD_FLAG_*) */
	uint32_t min_block, pref_block;	/* 0 when the server did not say */
};

/* Connects to a unix socket PATH, or to "ADDR:PORT" (TCP) when PORT is
 * non-zero; TIMEOUT_MS bounds connect and each read.  Returns the fd or
 * -errno with err_set().  */
int nbdc_connect(const char *path_or_addr, uint16_t port, int timeout_ms);
/* Handshake on FD up to transmission of export NAME.  On success the
 * socket is blocking with no timeouts (the kernel owns it from here).
 * Returns 0, or -errno with err_set() (-ENOENT: no such export).  */
int nbdc_go(int fd, const char *name, struct nbdc_export *ex);

#endif
