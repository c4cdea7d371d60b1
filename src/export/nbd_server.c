/*
 * src/export/nbd_server.c - the NBD server object: its table of exports,
 * the payload buffer cache, and its lifetime (create, TLS settings,
 * destroy).  Listeners and accept are in nbd_listen.c, one connection's
 * socket I/O in nbd_conn.c, the protocol in nbd_handshake.c and
 * nbd_transmit.c.
 *
 * The buffer cache keeps freed payload buffers by power-of-two class
 * (4 KiB .. 32 MiB), a bounded number per class, so the data path does
 * not allocate aligned memory per request.
 */
#include "src/export/nbd_server_int.h"

#include "ioengine/ioengine.h"
#include "utils/assert.h"
#include "utils/err.h"
#include "utils/fdlimit.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- buffer cache ----------------------------------------------------- */

static unsigned buf_class(size_t len)
{
	unsigned k = 0;

	while (((size_t)1 << (k + BUF_MIN_SHIFT)) < len)
		k++;
	return k;
}

static unsigned buf_keep(unsigned k)
{
	return k <= 8 ? 64 : 4;		/* up to 1 MiB: many; above: few */
}

void *nbd_buf_get(struct nbd_server *srv, size_t len, size_t *cap)
{
	unsigned k = buf_class(len ? len : 1);
	struct cached_buf *b;

	CSNAP_ASSERT(loop_locked());	/* one cache for every loop thread */
	*cap = (size_t)1 << (k + BUF_MIN_SHIFT);
	if (k < BUF_CLASSES && (b = srv->bufs[k])) {
		srv->bufs[k] = b->next;
		srv->nbufs[k]--;
		return b;
	}
	return io_buf_alloc(*cap);
}

void nbd_buf_put(struct nbd_server *srv, void *buf, size_t cap)
{
	unsigned k = buf_class(cap);

	if (!buf)
		return;
	if (k < BUF_CLASSES && srv->nbufs[k] < buf_keep(k)) {
		struct cached_buf *b = buf;

		b->next = srv->bufs[k];
		srv->bufs[k] = b;
		srv->nbufs[k]++;
		return;
	}
	io_buf_free(buf);
}

/* ---- exports ---------------------------------------------------------- */

struct volume *nbd_server_lookup(struct nbd_server *srv, const char *name)
{
	if (!name[0])
		return srv->nvols ? srv->vols[0] : NULL;
	for (unsigned i = 0; i < srv->nvols; i++)
		if (!strcmp(srv->vols[i]->name, name))
			return srv->vols[i];
	return NULL;
}

struct volume *nbd_server_find(struct nbd_server *srv, const char *name)
{
	return nbd_server_lookup(srv, name);
}

struct log_limit *nbd_server_peer_log(struct nbd_server *srv)
{
	return &srv->peer_log;
}

struct volume *nbd_server_vol_at(struct nbd_server *srv, unsigned i)
{
	return i < srv->nvols ? srv->vols[i] : NULL;
}

void nbd_server_each(struct nbd_server *srv,
		     void (*fn)(struct nbd_conn *c, struct volume *vol), struct nbd_conn *c)
{
	for (unsigned i = 0; i < srv->nvols && !c->dead; i++)
		fn(c, srv->vols[i]);
}

int nbd_server_add(struct nbd_server *srv, struct volume *vol)
{
	if (!vol->name[0])
		return err_set(EINVAL, "export name must not be empty");
	if (nbd_server_lookup(srv, vol->name))
		return err_set(EEXIST, "export %s already exists", vol->name);
	if (srv->nvols == srv->capvols) {
		unsigned cap = srv->capvols ? srv->capvols * 2 : 8;
		struct volume **v = realloc(srv->vols, cap * sizeof *v);

		if (!v)
			return err_set(ENOMEM, "out of memory");
		srv->vols = v;
		srv->capvols = cap;
	}
	srv->vols[srv->nvols++] = volume_get(vol);
	return 0;
}

int nbd_server_remove(struct nbd_server *srv, const char *name)
{
	for (unsigned i = 0; i < srv->nvols; i++) {
		if (!strcmp(srv->vols[i]->name, name)) {
			struct volume *vol = srv->vols[i];

			memmove(&srv->vols[i], &srv->vols[i + 1],
				(srv->nvols - i - 1) * sizeof *srv->vols);
			srv->nvols--;
			volume_put(vol);
			return 0;
		}
	}
	return err_set(ENOENT, "no export named %s", name);
}

unsigned nbd_server_connections(const struct nbd_server *srv)
{
	return srv->nconns;
}

void nbd_server_log_state(struct nbd_server *srv)
{
	log_info("nbd: state on request: %u connections, %u exports", srv->nconns, srv->nvols);
	for (const struct nbd_conn *c = srv->conns; c; c = c->next) {
		unsigned nout = 0;

		for (const struct nbd_out *o = c->out_head; o; o = o->next)
			nout++;
		/* A request lives until its reply is sent: those without a
		 * queued reply are in the volume (or their payload is
		 * arriving).  */
		log_info("nbd %s: %s, state %d%s%s%s: %u requests in flight (%zu bytes), "
			 "%u replies queued (%zu bytes, %zu of the first sent), %s",
			 c->peer, c->vol ? c->vol->name : "(handshake)", (int)c->state,
			 c->tls_up ? ", TLS" : c->tls ? ", TLS handshake" : "",
			 c->paused ? ", input paused" : "", c->dead ? ", closed" : "", c->inflight,
			 c->inflight_bytes, nout, c->out_queued, c->out_sent,
			 c->cur ? "a write payload arriving" : "no payload arriving");
	}
	for (unsigned i = 0; i < srv->nvols; i++)
		volume_log_state(srv->vols[i]);
}

/* ---- lifetime --------------------------------------------------------- */

int nbd_server_create(struct evloop *lp, struct nbd_server **out)
{
	struct nbd_server *srv = calloc(1, sizeof *srv);

	if (!srv)
		return err_set(ENOMEM, "out of memory");
	srv->lp = lp;
	srv->max_conns = fd_conn_cap(NBD_MAX_CONNS);
	if (fd_reserve_open(&srv->fdres) < 0)
		log_warn("nbd: cannot keep a spare descriptor: %s", strerror(errno));
	srv->accept_timer.fn = nbd_listen_resume;
	srv->accept_timer.arg = srv;
	log_debug("nbd: accepting up to %u connections", srv->max_conns);
	*out = srv;
	return 0;
}

int nbd_server_set_tls(struct nbd_server *srv, const struct nbd_tls_opts *o)
{
	struct nbd_tls_creds *cr = NULL;
	int rc;

	if (o->mode != NBD_TLS_OFF && (rc = nbd_tls_creds_load(o, &cr)) < 0)
		return rc;
	/* Listeners already added keep the credentials they have.  */
	CSNAP_ASSERT(!srv->tls_creds);
	srv->tls_creds = cr;
	srv->tls_mode = o->mode;
	if (o->mode != NBD_TLS_OFF)
		log_info("nbd: TLS %s on TCP (%s%s%s%s)",
			 o->mode == NBD_TLS_REQUIRE ? "required" : "offered",
			 o->psk_file ? "PSK " : "", o->psk_file ? o->psk_file : "",
			 o->psk_file && o->cert_dir ? ", X.509 " : o->cert_dir ? "X.509 " : "",
			 o->cert_dir ? o->cert_dir : "");
	return 0;
}

int nbd_server_set_threads(struct nbd_server *srv, unsigned nthreads, unsigned io_depth)
{
	CSNAP_ASSERT(!srv->pool && !srv->conns);
	if (nthreads <= 1)
		return 0;
	return loop_pool_start(srv->lp, nthreads, io_depth, &srv->pool);
}

unsigned nbd_server_io_pending(const struct nbd_server *srv)
{
	return io_engine_pending(loop_io(srv->lp)) + (srv->pool ? loop_pool_pending(srv->pool) : 0);
}

/* Shutdown with loop threads: the connections they serve are freed by
 * their own loops (the kick of a dead connection whose requests are
 * done), so the threads go on until none is left or nothing moves any
 * more; then they stop, and what remains is the main loop's.  */
static void drain_pool(struct nbd_server *srv)
{
	unsigned idle = 0;

	for (;;) {
		bool remote = false;

		for (struct nbd_conn *c = srv->conns; c; c = c->next)
			remote |= c->lp != srv->lp;
		if (!remote)
			break;
		if (nbd_server_io_pending(srv) == 0 && ++idle > 200) {
			log_error("nbd: connections of the loop threads still open at shutdown");
			break;
		}
		io_engine_submit(loop_io(srv->lp));
		io_engine_reap(loop_io(srv->lp), 0);
		loop_unlock();
		usleep(5000);
		loop_lock();
	}
	/* Those left (stuck) go back to the main loop, which outlives this. */
	for (struct nbd_conn *c = srv->conns; c; c = c->next)
		c->lp = srv->lp;
	loop_pool_stop(srv->pool);
	srv->pool = NULL;
	loop_bind_thread(NULL);
}

void nbd_server_destroy(struct nbd_server *srv)
{
	if (!srv)
		return;
	evloop_timer_cancel(srv->lp, &srv->accept_timer);
	fd_reserve_close(&srv->fdres);
	for (unsigned i = 0; i < srv->nlisteners; i++) {
		struct listener *l = &srv->listeners[i];

		evloop_watch_del(srv->lp, &l->watch);
		close(l->fd);
		if (l->is_unix)
			unlink(l->path);
	}
	for (struct nbd_conn *c = srv->conns; c; c = c->next)
		nbd_conn_kill(c, NULL);
	if (srv->pool)
		drain_pool(srv);
	/* Volume requests still in flight hold their connections: let the
	 * loop's I/O finish, which frees them.  */
	while (srv->conns) {
		struct nbd_conn *c = srv->conns;

		if (c->inflight) {
			if (io_engine_pending(loop_io(srv->lp)) == 0) {
				log_error("nbd: %u requests stuck on %s at shutdown", c->inflight,
					  c->peer);
				break;
			}
			io_engine_submit(loop_io(srv->lp));
			io_engine_reap(loop_io(srv->lp), 100);
			continue;
		}
		nbd_conn_free(c);
	}
	nbd_tls_creds_free(srv->tls_creds);
	while (srv->nvols)
		volume_put(srv->vols[--srv->nvols]);
	free(srv->vols);
	for (unsigned k = 0; k < BUF_CLASSES; k++) {
		while (srv->bufs[k]) {
			struct cached_buf *b = srv->bufs[k];

			srv->bufs[k] = b->next;
			io_buf_free(b);
		}
	}
	free(srv);
}
