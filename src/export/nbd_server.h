/*
 * src/export/nbd_server.h - an NBD server (fixed newstyle handshake,
 * simple replies) serving a changing set of volumes on unix and TCP
 * sockets, driven by the export event loop.
 *
 * Invariants:
 *  - The set of exports can change while clients are connected (snapshots
 *    come and go); a connection keeps its volume referenced until it ends,
 *    so removing an export never frees a volume under a connection.
 *  - Every input from a client is validated; a malformed message ends that
 *    connection (or gets an NBD error reply where the protocol allows one)
 *    and never affects other connections.
 */
#ifndef CSNAP_EXPORT_NBD_SERVER_H
#define CSNAP_EXPORT_NBD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct evloop;
struct nbd_server;
struct volume;

/* Largest READ/WRITE payload accepted (advertised as the maximum block
 * size).  */
#define NBD_SERVER_MAX_PAYLOAD	(32u * 1024 * 1024)

/* TLS on TCP listeners (NBD_OPT_STARTTLS; nbd_tls.c).  OFF: STARTTLS is
 * refused; ON: offered; REQUIRE: nothing but STARTTLS and ABORT before
 * TLS, so no export name is learnt in clear.  Unix sockets are plain.  */
enum nbd_tls_mode { NBD_TLS_OFF = 0, NBD_TLS_ON, NBD_TLS_REQUIRE };

struct nbd_tls_opts {
	enum nbd_tls_mode mode;
	const char *psk_file;	/* psktool format (username:hexkey), or NULL */
	const char *cert_dir;	/* ca-cert.pem, server-cert.pem, server-key.pem */
	bool verify_peer;	/* X.509: clients must show a certificate the CA signed */
};

int nbd_server_create(struct evloop *lp, struct nbd_server **out);
/* Loads the credentials now (a bad file fails here, with its name, not at
 * the first client) and applies them to the TCP listeners added after.  */
int nbd_server_set_tls(struct nbd_server *srv, const struct nbd_tls_opts *o);
/* Serve connections in transmission on NTHREADS loop threads (loop.h),
 * each with an ioengine of IO_DEPTH; 1: the main loop only.  Before any
 * connection; the calling thread then holds the export lock.  */
int nbd_server_set_threads(struct nbd_server *srv, unsigned nthreads, unsigned io_depth);
/* Device I/O queued or in flight on every loop's engine.  */
unsigned nbd_server_io_pending(const struct nbd_server *srv);
/* Closes listeners and connections; waits for their I/O to finish.  */
void nbd_server_destroy(struct nbd_server *srv);

/* Listen on a unix socket (a stale socket file is replaced) or on TCP
 * (port 0: ephemeral; nbd_server_tcp_port() tells which).  */
int nbd_server_listen_unix(struct nbd_server *srv, const char *path);
int nbd_server_listen_tcp(struct nbd_server *srv, const char *address, uint16_t port);
uint16_t nbd_server_tcp_port(const struct nbd_server *srv);

/* Export VOL under vol->name (takes a reference).  The first volume added
 * is also the default export (the empty name).  -EEXIST if taken.  */
int nbd_server_add(struct nbd_server *srv, struct volume *vol);
/* Stop listing NAME; connections already using it keep it.  */
int nbd_server_remove(struct nbd_server *srv, const char *name);
struct volume *nbd_server_find(struct nbd_server *srv, const char *name);

/* Connections currently open (tests, status).  */
unsigned nbd_server_connections(const struct nbd_server *srv);
/* Logs every connection's requests in flight and replies queued, and each
 * export's own state (volume_log_state): `csnap export` on SIGUSR1.  */
void nbd_server_log_state(struct nbd_server *srv);

#endif
