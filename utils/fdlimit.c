/*
 * utils/fdlimit.c - see fdlimit.h.
 */
#include "utils/fdlimit.h"

#include "utils/assert.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

unsigned fd_limit_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	/* Up to a sane bound: a hard limit of "infinity" (some containers)
	 * would make tools that close every descriptor up to it crawl.  */
	rlim_t want = rl.rlim_max < FD_RAISE_MAX ? rl.rlim_max : FD_RAISE_MAX;

	if (rl.rlim_cur < want) {
		struct rlimit up = { want, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = want;
	}
	return rl.rlim_cur > 1u << 30 ? 1u << 30 : (unsigned)rl.rlim_cur;
}

unsigned fd_conn_cap(unsigned want)
{
	struct rlimit rl;
	unsigned long long lim = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		lim = rl.rlim_cur;
	if (lim <= 2 * FD_HEADROOM)
		lim = lim / 2;		/* a tiny limit: share it */
	else
		lim -= FD_HEADROOM;
	if (lim < 1)
		lim = 1;
	return lim < want ? (unsigned)lim : want;
}

int fd_reserve_open(struct fd_reserve *r)
{
	r->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return r->spare < 0 ? -errno : 0;
}

void fd_reserve_close(struct fd_reserve *r)
{
	if (r->spare >= 0)
		close(r->spare);
	r->spare = -1;
}

bool fd_shortage(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

bool fd_reserve_shed(struct fd_reserve *r, int lfd, int err)
{
	int fd;

	if (!fd_shortage(err)) {
		if (r->spare < 0)
			fd_reserve_open(r);	/* take it back when we can */
		return false;
	}
	if (r->spare < 0 && fd_reserve_open(r) < 0)
		return false;
	close(r->spare);
	r->spare = -1;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	fd_reserve_open(r);
	/* Shed one: the caller accepts again.  Nothing pending (EAGAIN) or
	 * still no descriptor: back off.  */
	return fd >= 0;
}

bool fd_peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}
