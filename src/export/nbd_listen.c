/*
 * src/export/nbd_listen.c - the NBD server's listening sockets (unix and
 * TCP) and accept(), with the limits that keep peers from exhausting
 * descriptors; a new connection is handed to nbd_conn_start().
 *
 * Peers cannot exhaust descriptors: connections are capped below the
 * descriptor limit, the oldest one still in the handshake is shed when too
 * many wait, accept() failing for want of a descriptor sheds a connection
 * with a reserved one or backs off (never spins), and what peers can make
 * us log is rate-limited.
 */
#include "src/export/nbd_server_int.h"

#include "utils/err.h"
#include "utils/fdlimit.h"
#include "utils/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void accept_event(void *arg, uint32_t events);

/* Back off after a descriptor shortage: watch the listeners again.  */
void nbd_listen_resume(void *arg)
{
	struct nbd_server *srv = arg;

	for (unsigned i = 0; i < srv->nlisteners; i++)
		if (evloop_watch_mod(srv->lp, &srv->listeners[i].watch, EPOLLIN) < 0)
			log_limited(&srv->peer_log, LOG_LEVEL_WARN, "nbd: %s", err_get());
	if (srv->fdres.spare < 0)
		fd_reserve_open(&srv->fdres);
}

/* Accept on L failed with ERR: shed a connection with the reserve, or
 * stop watching the listeners for a while.  Never returns to a readable
 * listener without progress: that spun the loop at 100% CPU.  True:
 * accept again.  */
static bool accept_failed(struct nbd_server *srv, struct listener *l, int err)
{
	if (fd_reserve_shed(&srv->fdres, l->fd, err)) {
		log_limited(&srv->peer_log, LOG_LEVEL_WARN,
			    "nbd: accept: %s: closed a new connection (%u open, limit %u)",
			    strerror(err), srv->nconns, srv->max_conns);
		return true;
	}
	log_limited(&srv->peer_log, LOG_LEVEL_WARN, "nbd: accept: %s: not accepting for %d ms",
		    strerror(err), NBD_ACCEPT_BACKOFF_MS);
	for (unsigned i = 0; i < srv->nlisteners; i++)
		evloop_watch_mod(srv->lp, &srv->listeners[i].watch, 0);
	evloop_timer_arm(srv->lp, &srv->accept_timer, NBD_ACCEPT_BACKOFF_MS);
	return false;
}

/* Room for one more connection, FD: sheds the oldest connection still in
 * the handshake when over a limit.  False: refuse the new one.  */
static bool make_room(struct nbd_server *srv, int fd)
{
	unsigned max_hs = srv->max_conns / 2 < NBD_MAX_HANDSHAKING ? srv->max_conns / 2
								   : NBD_MAX_HANDSHAKING;
	struct nbd_conn *old = NULL;
	unsigned hs = 0, live = 0;

	/* Dead connections waiting for their I/O hold no descriptor.  */
	for (struct nbd_conn *c = srv->conns; c; c = c->next) {
		if (c->dead)
			continue;
		live++;
		if (!c->vol) {
			hs++;
			old = c;	/* newest first: the last is the oldest */
		}
	}
	if (live < srv->max_conns && hs < (max_hs ? max_hs : 1))
		return true;
	if (fd_peer_gone(fd))
		return false;
	if (!old) {
		log_limited(&srv->peer_log, LOG_LEVEL_WARN,
			    "nbd: refusing connection: %u connections open (limit %u)", srv->nconns,
			    srv->max_conns);
		return false;
	}
	/* Its descriptor is closed now; the struct goes at the end of the
	 * loop turn.  */
	nbd_conn_kill(old, "handshake not finished and too many connections wait");
	return true;
}

static void accept_event(void *arg, uint32_t events)
{
	struct listener *l = arg;
	struct nbd_server *srv = l->srv;

	(void)events;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (accept_failed(srv, l, errno))
				continue;
			return;
		}
		if (!make_room(srv, fd)) {
			close(fd);
			continue;
		}
		nbd_conn_start(srv, l, fd, &ss, sl);
	}
}

/* ---- listeners -------------------------------------------------------- */

static int add_listener(struct nbd_server *srv, int fd, bool is_unix, const char *path,
			uint16_t port)
{
	struct listener *l;
	int rc;

	if (srv->nlisteners == NBD_MAX_LISTENERS) {
		close(fd);
		return err_set(EMFILE, "too many listeners");
	}
	l = &srv->listeners[srv->nlisteners];
	memset(l, 0, sizeof *l);
	l->srv = srv;
	l->fd = fd;
	l->is_unix = is_unix;
	l->port = port;
	if (path)
		snprintf(l->path, sizeof l->path, "%s", path);
	if (!is_unix) {
		l->tls_mode = srv->tls_mode;
		l->tls_creds = srv->tls_creds;
	}
	rc = evloop_watch_add(srv->lp, &l->watch, fd, EPOLLIN, accept_event, l);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	srv->nlisteners++;
	return 0;
}

int nbd_server_listen_unix(struct nbd_server *srv, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (strlen(path) >= sizeof sa.sun_path)
		return err_set(ENAMETOOLONG, "unix socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(errno, "socket: %s", strerror(errno));
	if (lstat(path, &st) == 0) {
		/* A socket left by a dead export is replaced; a live one or
		 * anything that is not a socket is not ours to remove.  */
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return err_set(EEXIST, "%s exists and is not a socket", path);
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
			close(probe);
			close(fd);
			return err_set(EADDRINUSE, "%s: another export is listening there", path);
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
		rc = err_set(errno, "listen on %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	return add_listener(srv, fd, true, path, 0);
}

int nbd_server_listen_tcp(struct nbd_server *srv, const char *address, uint16_t port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char portstr[8];
	int fd, rc, one = 1;

	snprintf(portstr, sizeof portstr, "%u", port);
	rc = getaddrinfo(address && address[0] ? address : NULL, portstr, &hints, &res);
	if (rc)
		return err_set(EINVAL, "address %s: %s", address ? address : "*", gai_strerror(rc));
	fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = err_set(errno, "socket: %s", strerror(errno));
		freeaddrinfo(res);
		return rc;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		rc = err_set(errno, "listen on %s port %u: %s", address && address[0] ? address : "*",
			     port, strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return rc;
	}
	freeaddrinfo(res);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return add_listener(srv, fd, false, NULL, port);
}

uint16_t nbd_server_tcp_port(const struct nbd_server *srv)
{
	for (unsigned i = 0; i < srv->nlisteners; i++)
		if (!srv->listeners[i].is_unix)
			return srv->listeners[i].port;
	return 0;
}
