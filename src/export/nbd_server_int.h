/*
 * src/export/nbd_server_int.h - the NBD server's own state, shared by
 * its files only: nbd_server.c (the table of exports, the payload buffer
 * cache, lifetime), nbd_listen.c (listening sockets, accept and its
 * limits) and nbd_conn.c (one connection's socket I/O and lifetime).
 * Not a public interface (nbd_server.h is).
 *
 * Invariants: nconns counts the connections on the conns list (dead ones
 * included until freed); a connection on the list is live (holds a
 * descriptor) unless c->dead; listeners[0..nlisteners) are watched
 * except while accept_timer is armed after a descriptor shortage.
 *
 * Loop threads (nbd_server_set_threads, loop.h): a connection is accepted
 * and shakes hands on the main loop (srv->lp), and moves to a loop of the
 * pool when it enters transmission (nbd_conn_enter_tx); c->lp is always
 * the loop its watch is on.  Everything here runs under the export lock,
 * so other loops' callbacks may queue replies and kick a connection of
 * any loop (the kick wakes that loop).
 */
#ifndef CSNAP_EXPORT_NBD_SERVER_INT_H
#define CSNAP_EXPORT_NBD_SERVER_INT_H

#include "src/export/nbd_conn.h"
#include "utils/fdlimit.h"
#include "utils/log.h"

#include <sys/socket.h>

#define NBD_MAX_LISTENERS	8
#define NBD_MAX_CONNS		1024	/* if descriptors allow (fd_conn_cap) */
/* Connections still in the handshake: at this many a new one sheds the
 * oldest, so idle peers cannot keep real clients out.  */
#define NBD_MAX_HANDSHAKING	256
#define NBD_ACCEPT_BACKOFF_MS	250	/* after a descriptor shortage */
#define BUF_CLASSES		14		/* 4 KiB .. 32 MiB */
#define BUF_MIN_SHIFT		12

struct listener {
	struct nbd_server *srv;
	struct evloop_watch watch;
	int fd;
	bool is_unix;
	char path[108];
	uint16_t port;
	enum nbd_tls_mode tls_mode;		/* TCP: the server's; unix: off */
	const struct nbd_tls_creds *tls_creds;
};

struct cached_buf {
	struct cached_buf *next;
};

struct nbd_server {
	struct evloop *lp;
	struct listener listeners[NBD_MAX_LISTENERS];
	unsigned nlisteners;
	struct volume **vols;
	unsigned nvols, capvols;
	struct nbd_conn *conns;		/* newest first */
	unsigned nconns;
	unsigned max_conns;		/* below the descriptor limit */
	struct fd_reserve fdres;	/* accept on EMFILE (utils/fdlimit.h) */
	struct evloop_timer accept_timer;	/* listeners unwatched until then */
	struct log_limit peer_log;	/* what peers can make us log at will */
	unsigned long long serial;	/* connections accepted so far */
	struct cached_buf *bufs[BUF_CLASSES];
	unsigned nbufs[BUF_CLASSES];
	enum nbd_tls_mode tls_mode;	/* for TCP listeners added from now */
	struct nbd_tls_creds *tls_creds;
	struct loop_pool *pool;		/* more than one loop thread, or NULL */
};

/* nbd_listen.c */
/* accept_timer's function: watch the listeners again after a descriptor
 * shortage.  */
void nbd_listen_resume(void *arg);

/* nbd_conn.c */
/* Sets up a connection on FD, just accepted on L from SS, and greets the
 * client; on failure closes FD.  */
void nbd_conn_start(struct nbd_server *srv, const struct listener *l, int fd,
		    const struct sockaddr_storage *ss, socklen_t sl);
/* Unlinks and frees C: its socket is closed and nothing is in flight.  */
void nbd_conn_free(struct nbd_conn *c);

#endif
