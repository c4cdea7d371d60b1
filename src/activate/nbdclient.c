/*
 * src/activate/nbdclient.c - NBD client handshake (see nbdclient.h).
 * Reads are exact (short reads loop); every length the server sends is
 * checked against what we asked for before it is used.  A server cannot
 * keep us in the handshake: the option replies it may send before the ACK
 * are bounded in number, in size each, and in total time.
 */
#include "src/activate/nbdclient.h"

#include "src/export/nbd.h"
#include "utils/clock.h"
#include "utils/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int nbdc_connect(const char *path_or_addr, uint16_t port, int timeout_ms)
{
	int fd;

	if (!port) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		if (strlen(path_or_addr) >= sizeof sa.sun_path)
			return err_set(ENAMETOOLONG, "socket path too long: %s", path_or_addr);
		strcpy(sa.sun_path, path_or_addr);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return err_set(errno, "socket: %s", strerror(errno));
		set_timeouts(fd, timeout_ms);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			int e = errno;
			close(fd);
			return err_set(e, "connect %s: %s", path_or_addr, strerror(e));
		}
		return fd;
	}

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
	char ps[8];
	int g;

	snprintf(ps, sizeof ps, "%u", port);
	g = getaddrinfo(path_or_addr, ps, &hints, &ai);
	if (g)
		return err_set(EHOSTUNREACH, "%s: %s", path_or_addr, gai_strerror(g));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return err_set(errno, "socket: %s", strerror(errno));
	}
	set_timeouts(fd, timeout_ms);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int e = errno;
		freeaddrinfo(ai);
		close(fd);
		return err_set(e, "connect %s:%u: %s", path_or_addr, port, strerror(e));
	}
	freeaddrinfo(ai);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static int read_full(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(errno == EAGAIN ? ETIMEDOUT : errno, "NBD handshake: read: %s",
				       strerror(errno == EAGAIN ? ETIMEDOUT : errno));
		if (r == 0)
			return err_set(ECONNRESET, "NBD handshake: the server closed the connection");
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(errno, "NBD handshake: write: %s", strerror(errno));
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Reads and throws away LEN bytes of an option reply we do not use.  */
static int skip(int fd, uint32_t len)
{
	char buf[256];

	while (len) {
		uint32_t n = len < sizeof buf ? len : (uint32_t)sizeof buf;
		int rc = read_full(fd, buf, n);
		if (rc < 0)
			return rc;
		len -= n;
	}
	return 0;
}

/* What a server may send in reply to our one NBD_OPT_GO: a few INFO
 * replies (we ask for none, so only NBD_INFO_EXPORT is due), then ACK.  */
#define NBDC_MAX_REPLIES	64
#define NBDC_MAX_REPLY_LEN	(64u * 1024)
#define NBDC_HANDSHAKE_MS	30000

int nbdc_go(int fd, const char *name, struct nbdc_export *ex)
{
	int64_t deadline = csnap_now_ms() + NBDC_HANDSHAKE_MS;
	unsigned nreplies = 0;
	uint8_t hello[18], opt[16 + 4 + NBD_MAX_STRING + 2], rep[20];
	size_t nlen = strlen(name);
	bool have_export = false;
	int rc;

	memset(ex, 0, sizeof *ex);
	if (nlen > NBD_MAX_STRING)
		return err_set(ENAMETOOLONG, "export name too long");
	rc = read_full(fd, hello, sizeof hello);
	if (rc < 0)
		return rc;
	if (nbd_get64(hello) != NBD_MAGIC || nbd_get64(hello + 8) != NBD_IHAVEOPT)
		return err_set(EPROTO, "NBD handshake: not a newstyle NBD server");
	if (!(nbd_get16(hello + 16) & NBD_FLAG_FIXED_NEWSTYLE))
		return err_set(EPROTO, "NBD handshake: the server is not fixed newstyle");
	uint8_t cflags[4];
	nbd_put32(cflags, NBD_FLAG_C_FIXED_NEWSTYLE |
		  (nbd_get16(hello + 16) & NBD_FLAG_NO_ZEROES ? NBD_FLAG_C_NO_ZEROES : 0));
	rc = write_full(fd, cflags, sizeof cflags);
	if (rc < 0)
		return rc;

	/* NBD_OPT_GO: name length, name, no information requests */
	nbd_put64(opt, NBD_IHAVEOPT);
	nbd_put32(opt + 8, NBD_OPT_GO);
	nbd_put32(opt + 12, (uint32_t)(4 + nlen + 2));
	nbd_put32(opt + 16, (uint32_t)nlen);
	memcpy(opt + 20, name, nlen);
	nbd_put16(opt + 20 + nlen, 0);
	rc = write_full(fd, opt, 20 + nlen + 2);
	if (rc < 0)
		return rc;

	for (;;) {
		rc = read_full(fd, rep, sizeof rep);
		if (rc < 0)
			return rc;
		uint32_t type = nbd_get32(rep + 12), len = nbd_get32(rep + 16);
		if (nbd_get64(rep) != NBD_REP_MAGIC || nbd_get32(rep + 8) != NBD_OPT_GO)
			return err_set(EPROTO, "NBD handshake: bad option reply");
		if (++nreplies > NBDC_MAX_REPLIES || csnap_now_ms() > deadline)
			return err_set(EPROTO, "NBD handshake: no ACK after %u option replies "
				       "in %u s", nreplies - 1, NBDC_HANDSHAKE_MS / 1000);
		if (len > NBDC_MAX_REPLY_LEN)
			return err_set(EPROTO, "NBD handshake: option reply of %u bytes "
				       "(at most %u expected)", len, NBDC_MAX_REPLY_LEN);
		if (type == NBD_REP_ACK) {
			if (len)
				return err_set(EPROTO, "NBD handshake: ACK with data");
			break;
		}
		if (type & NBD_REP_FLAG_ERROR) {
			char msg[200] = "";
			uint32_t keep = len < sizeof msg - 1 ? len : (uint32_t)sizeof msg - 1;
			rc = read_full(fd, msg, keep);
			if (rc == 0)
				rc = skip(fd, len - keep);
			if (rc < 0)
				return rc;
			msg[keep] = 0;
			return err_set(type == NBD_REP_ERR_UNKNOWN ? ENOENT : EPROTO,
				       "export %s: %s", name, msg[0] ? msg : "refused by the server");
		}
		if (type != NBD_REP_INFO || len < 2) {
			rc = skip(fd, len);
			if (rc < 0)
				return rc;
			continue;
		}
		uint8_t info[14];
		rc = read_full(fd, info, 2);
		if (rc < 0)
			return rc;
		uint16_t itype = nbd_get16(info);
		if (itype == NBD_INFO_EXPORT && len == 12) {
			rc = read_full(fd, info + 2, 10);
			if (rc < 0)
				return rc;
			ex->size = nbd_get64(info + 2);
			ex->flags = nbd_get16(info + 10);
			have_export = true;
		} else if (itype == NBD_INFO_BLOCK_SIZE && len == 14) {
			rc = read_full(fd, info + 2, 12);
			if (rc < 0)
				return rc;
			ex->min_block = nbd_get32(info + 2);
			ex->pref_block = nbd_get32(info + 6);
		} else {
			rc = skip(fd, len - 2);
			if (rc < 0)
				return rc;
		}
	}
	if (!have_export)
		return err_set(EPROTO, "NBD handshake: the server did not send the export size");
	set_timeouts(fd, 0);
	return 0;
}
