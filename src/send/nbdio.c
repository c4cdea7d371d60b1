/*
 * src/send/nbdio.c - see nbdio.h.  The handshake is src/activate's
 * (nbdclient.c); this file is the transmission phase.
 */
#include "src/send/nbdio.h"

#include "src/activate/nbdclient.h"
#include "src/export/nbd.h"
#include "utils/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int io_full(struct nbdio *n, void *buf, size_t len, bool out)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t r = out ? send(n->fd, p, len, MSG_NOSIGNAL) : read(n->fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(errno, "NBD export %s: %s", n->name, strerror(errno));
		if (r == 0)
			return err_set(ECONNRESET, "NBD export %s: the export closed the connection",
				       n->name);
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int nbdio_open(struct nbdio *n, const char *addr, uint16_t port, const char *name, int wait_ms)
{
	memset(n, 0, sizeof *n);
	n->fd = -1;
	snprintf(n->name, sizeof n->name, "%s", name);
	for (int waited = 0;; waited += 200) {
		int fd = nbdc_connect(addr, port, 30000);
		if (fd < 0)
			return fd;
		struct nbdc_export ex;
		int r = nbdc_go(fd, name, &ex);
		if (r == 0) {
			n->fd = fd;
			n->size = ex.size;
			n->flags = ex.flags;
			return 0;
		}
		close(fd);
		if (r != -ENOENT || waited >= wait_ms)
			return r;
		struct timespec ts = { 0, 200 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* One request and its simple reply; for READ the data follows into BUF.  */
static int request(struct nbdio *n, uint16_t type, uint64_t off, uint32_t len, const void *wbuf,
		   void *rbuf)
{
	if (off > n->size || len > n->size - off)
		return err_set(EINVAL, "NBD export %s: %" PRIu64 "+%u is past its end %" PRIu64,
			       n->name, off, len, n->size);
	uint8_t req[NBD_REQUEST_SIZE], rep[NBD_SIMPLE_REPLY_SIZE];
	uint64_t h = ++n->handle;
	nbd_put32(req, NBD_REQUEST_MAGIC);
	nbd_put16(req + 4, 0);
	nbd_put16(req + 6, type);
	nbd_put64(req + 8, h);
	nbd_put64(req + 16, off);
	nbd_put32(req + 24, len);
	int r = io_full(n, req, sizeof req, true);
	if (r == 0 && wbuf)
		r = io_full(n, (void *)wbuf, len, true);
	if (r == 0)
		r = io_full(n, rep, sizeof rep, false);
	if (r < 0)
		return r;
	if (nbd_get32(rep) != NBD_SIMPLE_REPLY_MAGIC || nbd_get64(rep + 8) != h)
		return err_set(EPROTO, "NBD export %s: bad reply (magic or handle)", n->name);
	uint32_t e = nbd_get32(rep + 4);
	if (e)
		return err_set(EIO, "NBD export %s: %s of %u bytes at %" PRIu64 " failed: %s",
			       n->name, type == NBD_CMD_READ ? "read" : type == NBD_CMD_FLUSH ? "flush" : "write",
			       len, off,
			       strerror((int)e));
	if (rbuf)
		return io_full(n, rbuf, len, false);
	return 0;
}

int nbdio_read(struct nbdio *n, uint64_t off, void *buf, uint32_t len)
{
	return request(n, NBD_CMD_READ, off, len, NULL, buf);
}

int nbdio_write(struct nbdio *n, uint64_t off, const void *buf, uint32_t len)
{
	return request(n, NBD_CMD_WRITE, off, len, buf, NULL);
}

int nbdio_zero(struct nbdio *n, uint64_t off, uint64_t len)
{
	static uint8_t *zeros;
	while (len) {
		uint32_t k = len < NBDIO_MAX_REQ ? (uint32_t)len : NBDIO_MAX_REQ;
		int r;
		if (n->flags & NBD_FLAG_SEND_WRITE_ZEROES) {
			r = request(n, NBD_CMD_WRITE_ZEROES, off, k, NULL, NULL);
		} else {
			if (!zeros && !(zeros = calloc(1, NBDIO_MAX_REQ)))
				return err_set(ENOMEM, "out of memory");
			r = request(n, NBD_CMD_WRITE, off, k, zeros, NULL);
		}
		if (r < 0)
			return r;
		off += k;
		len -= k;
	}
	return 0;
}

int nbdio_flush(struct nbdio *n)
{
	if (!(n->flags & NBD_FLAG_SEND_FLUSH))
		return 0;
	return request(n, NBD_CMD_FLUSH, 0, 0, NULL, NULL);
}

void nbdio_close(struct nbdio *n)
{
	if (n->fd < 0)
		return;
	uint8_t req[NBD_REQUEST_SIZE] = { 0 };
	nbd_put32(req, NBD_REQUEST_MAGIC);
	nbd_put16(req + 6, NBD_CMD_DISC);
	nbd_put64(req + 8, ++n->handle);
	(void)io_full(n, req, sizeof req, true);
	close(n->fd);
	n->fd = -1;
}
