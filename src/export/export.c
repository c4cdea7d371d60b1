/*
 * src/export/export.c - the `csnap export` daemon for one store: opens the
 * origin and store devices, reads the store's identity from its
 * superblock (uuid, secret, lease area, chunk size, data area), exports
 * the origin at once and every snapshot as the master lists it, and runs
 * the event loop until SIGINT/SIGTERM.
 *
 * The set of snapshots follows the master: a new snapshot is announced on
 * the origin session (SNAP_ADDED) and exported before we acknowledge, so
 * it is served here when `snapshot create` returns; an admin session also
 * lists them every second (snapshots that appeared while we were not
 * connected); ones it finds are exported when their own session has
 * identified them (that is where their size comes from), deleted ones are
 * withdrawn and any connection still using one gets EIO.  A renamed
 * snapshot is a deleted name plus a new one: withdrawn under the old
 * name, exported under the new (the master refuses a rename while NBD
 * clients use it).
 *
 * export_run_file() is the same daemon for a plain file (`--file`): one
 * volume_file, no store, no master.
 */
#include "src/export/export.h"

#include "src/activate/keeper.h"

#include "src/agent/agent.h"
#include "src/agent/agent_client.h"
#include "src/export/csvol.h"
#include "src/export/dio.h"
#include "src/export/loop.h"
#include "src/export/nbd_server.h"
#include "src/export/session.h"
#include "ioengine/ioengine.h"
#include "src/store/origin_id.h"
#include "src/store/superblock.h"
#include "utils/config.h"
#include "utils/err.h"
#include "utils/escape.h"
#include "utils/log.h"
#include "utils/snapname.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define LIST_INTERVAL_MS	1000
#define SNAP_CACHE_ENTRIES	(256 * 1024)

struct snapent {
	char name[PROTO_NAME_MAX + 1];
	struct volume *vol;		/* our reference; NULL: not servable */
	bool exported;
	bool seen;
	uint64_t announced;		/* announce_seq when SNAP_ADDED named it */
	struct exporter *ex;
};

struct exporter {
	struct config cfg;
	const struct config_store *st;
	struct evloop *lp;
	struct nbd_server *srv;
	struct io_dev *origin_dev, *store_dev;
	char store_path[LEASE_PATH_LEN];
	struct dio *origin_dio, *store_dio;
	struct master_target tgt;
	struct csvol_env env;
	struct volume *origin;
	struct session *admin;
	struct sreq list_rq;
	bool list_inflight;
	uint64_t announce_seq;		/* SNAP_ADDED announcements taken */
	uint64_t list_seq;		/* announce_seq when the list was asked */
	struct evloop_timer poll;
	struct snapent **snaps;
	unsigned nsnaps, capsnaps;
	struct evloop_signals sigs;
	struct act_keeper *keeper;	/* re-attaches activated volumes */
};

/* ---- snapshots -------------------------------------------------------- */

static void snap_ready(void *arg, struct volume *vol, int err, const char *why)
{
	struct snapent *se = arg;

	(void)why;
	if (err < 0 || se->exported)
		return;
	if (nbd_server_add(se->ex->srv, vol) < 0) {
		log_warn("export: snapshot %s: %s", se->name, err_get());
		return;
	}
	se->exported = true;
	log_info("export: snapshot %s exported (%llu bytes)", se->name,
		 (unsigned long long)vol->size);
}

static void snap_gone(void *arg, struct volume *vol, int err, const char *why)
{
	struct snapent *se = arg;

	(void)vol; (void)err;
	log_info("export: snapshot %s no longer available: %s", se->name, why);
	if (se->exported) {
		nbd_server_remove(se->ex->srv, se->name);
		se->exported = false;
	}
}

static void snap_drop(struct exporter *ex, unsigned i)
{
	struct snapent *se = ex->snaps[i];

	if (se->vol) {
		log_info("export: snapshot %s deleted; withdrawing it", se->name);
		if (se->exported)
			nbd_server_remove(ex->srv, se->name);
		volume_snap_retire(se->vol);
		volume_snap_shutdown(se->vol);
		volume_put(se->vol);
	}
	free(se);
	ex->snaps[i] = ex->snaps[--ex->nsnaps];
}

static struct snapent *snap_add(struct exporter *ex, const char *name)
{
	struct snapent *se;
	/* Creation refuses reserved names; an older store may still hold
	 * one.  It is remembered without a volume, so it is reported once
	 * rather than at every poll.  */
	bool servable = !snap_name_reserved(name);

	if (ex->nsnaps == ex->capsnaps) {
		unsigned cap = ex->capsnaps ? ex->capsnaps * 2 : 16;
		struct snapent **n = realloc(ex->snaps, cap * sizeof *n);

		if (!n) {
			err_set(ENOMEM, "out of memory");
			return NULL;
		}
		ex->snaps = n;
		ex->capsnaps = cap;
	}
	se = calloc(1, sizeof *se);
	if (!se) {
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	snprintf(se->name, sizeof se->name, "%s", name);
	se->ex = ex;
	se->seen = true;
	if (!servable) {
		log_warn("export: snapshot \"%s\" is not exported: its name is reserved "
			 "(rename it: csnap snapshot rename)", name);
		ex->snaps[ex->nsnaps++] = se;
		return se;
	}
	if (volume_snap_create(&ex->env, name, snap_ready, snap_gone, se, &se->vol) < 0) {
		log_warn("export: snapshot %s: %s", name, err_get());
		free(se);
		return NULL;
	}
	ex->snaps[ex->nsnaps++] = se;
	return se;
}

/* The master created NAME and waits for us to serve it before it answers
 * the creator (SNAP_ADDED on the origin session).  A new snapshot is the
 * origin as it was: its size is the origin's, so it is exported at once;
 * its session identifies it in the background.  */
static int on_snap_added(void *arg, const char *name)
{
	struct exporter *ex = arg;
	struct snapent *se = NULL;

	for (unsigned i = 0; i < ex->nsnaps && !se; i++)
		if (!strcmp(ex->snaps[i]->name, name))
			se = ex->snaps[i];
	if (!se && !(se = snap_add(ex, name)))
		return -EIO;
	if (!se->vol)	/* a reserved name: never servable */
		return err_set(EINVAL, "snapshot name \"%s\" is reserved", name);
	/* A list asked for before this announcement may not name it yet. */
	se->announced = ++ex->announce_seq;
	if (se->exported)
		return 0;
	volume_snap_set_size(se->vol, ex->env.origin_size);
	if (nbd_server_add(ex->srv, se->vol) < 0) {
		log_warn("export: snapshot %s: %s", name, err_get());
		return -EIO;
	}
	se->exported = true;
	log_info("export: snapshot %s exported (%llu bytes; announced by the master)", name,
		 (unsigned long long)ex->env.origin_size);
	return 0;
}

/* `csnap resize`: the master recorded a larger origin.  Our device must
 * be that large (it is the same device, extended); snapshots created from
 * now on have the new size.  */
static int on_origin_resized(void *arg, uint64_t size)
{
	struct exporter *ex = arg;
	int rc = io_dev_refresh_size(ex->origin_dev);

	if (rc < 0)
		return rc;
	if (io_dev_size(ex->origin_dev) < size)
		return err_set(EIO, "origin %s is %llu bytes here, the master says %llu",
			       io_dev_path(ex->origin_dev),
			       (unsigned long long)io_dev_size(ex->origin_dev),
			       (unsigned long long)size);
	log_info("export: origin resized from %llu to %llu bytes",
		 (unsigned long long)ex->env.origin_size, (unsigned long long)size);
	ex->env.origin_size = size;
	/* the activated origin's kernel devices follow, on the keeper's thread */
	act_keeper_origin_size(ex->keeper, size);
	return 0;
}

/* A location past the data area we knew: `csnap grow` may have added
 * chunks.  Read the superblock again (rare: once per grow and volume). */
static uint64_t on_store_chunks_now(void *arg, uint64_t sc)
{
	struct exporter *ex = arg;
	struct csnap_sb sb;

	if (csnap_sb_read(ex->store_dev, &sb, NULL) < 0) {
		log_warn("export: store chunk %llu: rereading the superblock: %s",
			 (unsigned long long)sc, err_get());
		return ex->env.store_chunks;
	}
	if (sb.engine.data_chunks > ex->env.store_chunks &&
	    sb.engine.data_offset == ex->env.data_offset) {
		log_info("export: the store's data area grew from %llu to %llu chunks",
			 (unsigned long long)ex->env.store_chunks,
			 (unsigned long long)sb.engine.data_chunks);
		ex->env.store_chunks = sb.engine.data_chunks;
	}
	return ex->env.store_chunks;
}

static void list_done(struct sreq *rq, const struct proto_msg *reply, int err)
{
	struct exporter *ex = rq->arg;

	ex->list_inflight = false;
	if (err < 0)
		return;
	if (reply->status) {
		log_warn("export: listing snapshots: %s", reply->error);
		return;
	}
	for (unsigned i = 0; i < ex->nsnaps; i++)
		ex->snaps[i]->seen = false;
	for (uint32_t k = 0; k < reply->u.snap_list.n; k++) {
		const struct proto_snapinfo *si = &reply->u.snap_list.s[k];
		bool found = false;

		if (si->flags & PROTO_SNAP_BUSY)
			continue;
		for (unsigned i = 0; i < ex->nsnaps; i++) {
			if (!strcmp(ex->snaps[i]->name, si->name)) {
				ex->snaps[i]->seen = true;
				found = true;
				break;
			}
		}
		if (!found)
			snap_add(ex, si->name);
	}
	for (unsigned i = 0; i < ex->nsnaps;) {
		if (!ex->snaps[i]->seen && ex->snaps[i]->announced <= ex->list_seq)
			snap_drop(ex, i);
		else
			i++;
	}
}

static void list_now(struct exporter *ex)
{
	if (ex->list_inflight || !session_up(ex->admin))
		return;
	memset(&ex->list_rq, 0, sizeof ex->list_rq);
	proto_msg_init(&ex->list_rq.msg, PROTO_SNAP_LIST, 0);
	ex->list_rq.msg.flags = PROTO_F_NO_USAGE;	/* names only: no tree walk */
	ex->list_rq.done = list_done;
	ex->list_rq.arg = ex;
	ex->list_inflight = true;
	ex->list_seq = ex->announce_seq;
	session_send(ex->admin, &ex->list_rq);
}

static void poll_fn(void *arg)
{
	struct exporter *ex = arg;

	list_now(ex);
	evloop_timer_arm(ex->lp, &ex->poll, LIST_INTERVAL_MS);
}

static void admin_connected(void *arg, const struct proto_identify_ok *ok, bool again)
{
	(void)ok; (void)again;
	list_now(arg);
}

static void admin_disconnected(void *arg)
{
	(void)arg;
}

static void admin_request(void *arg, const struct proto_msg *req)
{
	struct exporter *ex = arg;
	struct proto_msg m;

	proto_msg_error(&m, req, EOPNOTSUPP, "export admin session: unexpected request");
	session_reply(ex->admin, &m);
}

static void admin_refused(void *arg, int err, const char *why)
{
	(void)arg; (void)err;
	log_error("export: the master refused the admin session: %s; snapshots will not be exported",
		  why);
}

static const struct session_ops admin_ops = {
	.connected = admin_connected,
	.disconnected = admin_disconnected,
	.server_request = admin_request,
	.refused = admin_refused,
};

/* ---- setup ------------------------------------------------------------ */

static void on_signal(void *arg, int signo)
{
	struct exporter *ex = arg;

	if (signo == SIGUSR1) {
		/* Where every unanswered request is (a stalled client).  */
		log_info("export: SIGUSR1: %u I/O requests pending in the engines",
			 ex->srv ? nbd_server_io_pending(ex->srv) : io_engine_pending(loop_io(ex->lp)));
		if (ex->srv)
			nbd_server_log_state(ex->srv);
		return;
	}
	log_info("export: signal %d, shutting down", signo);
	evloop_stop(ex->lp);
}

static int parse_hostport(const char *s, char *addr, size_t addrlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	uint64_t p;

	addr[0] = 0;
	if (colon) {
		size_t n = (size_t)(colon - s);

		if (n >= addrlen)
			return err_set(EINVAL, "address too long: %s", s);
		memcpy(addr, s, n);
		addr[n] = 0;
		s = colon + 1;
	}
	if (parse_u64(s, 0, 65535, &p) < 0)
		return err_set(EINVAL, "bad port in '%s'", s);
	*port = (uint16_t)p;
	return 0;
}

static int open_store(struct exporter *ex, const struct export_opts *o)
{
	const struct config_store *st = ex->st;
	struct csnap_sb sb;
	unsigned shift = 0;
	int rc;

	if (!st->origin[0])
		return err_set(EINVAL, "[store %s]: no origin configured", st->name);
	/* A path, or UUID=<uuid> found by reading superblocks.  */
	rc = agent_locate_store(st->device, ex->store_path, sizeof ex->store_path, &sb);
	if (rc < 0)
		return err_prefix(-rc, "[store %s]", st->name);
	rc = io_dev_open(ex->store_path, IO_DEV_RDWR, &ex->store_dev);
	if (rc < 0)
		return err_prefix(-rc, "store %s", ex->store_path);
	rc = csnap_sb_read(ex->store_dev, &sb, NULL);
	if (rc < 0)
		return err_prefix(-rc, "store %s", ex->store_path);
	rc = io_dev_open(st->origin, IO_DEV_RDWR, &ex->origin_dev);
	if (rc < 0)
		return err_prefix(-rc, "origin %s", st->origin);
	/* Writes to the wrong origin would bypass copy-out for the right one. */
	if ((rc = origin_id_verify(st->origin, io_dev_size(ex->origin_dev), &sb)) < 0)
		return rc;
	while ((1u << shift) < sb.chunk_size)
		shift++;
	if ((rc = dio_create(loop_io(ex->lp), ex->origin_dev, &ex->origin_dio)) < 0 ||
	    (rc = dio_create(loop_io(ex->lp), ex->store_dev, &ex->store_dio)) < 0)
		return rc;

	struct master_target *t = &ex->tgt;
	snprintf(t->store_path, sizeof t->store_path, "%s", ex->store_path);
	memcpy(t->uuid.b, sb.uuid, sizeof t->uuid.b);
	memcpy(t->secret, sb.secret, sizeof t->secret);
	t->host_id = (uint16_t)ex->cfg.host_id;
	t->connect_timeout_ms = 5000;
	snprintf(t->client_name, sizeof t->client_name, "%s/export",
		 ex->cfg.node_name[0] ? ex->cfg.node_name : "node");
	if (o->master) {
		rc = parse_hostport(o->master, t->fixed_address, sizeof t->fixed_address,
				    &t->fixed_port);
		if (rc < 0)
			return rc;
	} else {
		rc = lease_area_setup(&t->area, ex->store_path, sb.lease_offset, sb.lease_align,
				      sb.lease_sector_size, &t->uuid);
		if (rc < 0)
			return rc;
		if (agent_socket_path(ex->cfg.run_dir, t->agent_socket, sizeof t->agent_socket) < 0)
			t->agent_socket[0] = 0;
	}

	ex->env = (struct csvol_env){
		.lp = ex->lp, .tgt = t, .origin = ex->origin_dio, .store = ex->store_dio,
		.chunk_size = sb.chunk_size, .chunk_shift = shift, .origin_size = sb.origin_size,
		.data_offset = sb.engine.data_offset, .store_chunks = sb.engine.data_chunks,
		.cache_entries = SNAP_CACHE_ENTRIES,
		.snap_added = on_snap_added, .origin_resized = on_origin_resized,
		.store_chunks_now = on_store_chunks_now, .snap_arg = ex,
	};
	if (sb.engine.data_offset + sb.engine.data_chunks * (uint64_t)sb.chunk_size >
	    io_dev_size(ex->store_dev))
		return err_set(EINVAL, "store %s: data area beyond the end of the device",
			       ex->store_path);
	log_info("export: store %s: chunk size %u, origin %s (%llu bytes)", ex->store_path,
		 sb.chunk_size, st->origin, (unsigned long long)sb.origin_size);
	return 0;
}

/* TLS of the TCP listener: CLI's settings over DFLT's (the store's, or
 * none), checked, then the credentials loaded.  */
static int setup_tls(struct exporter *ex, const struct config_tls *cli,
		     const struct config_tls *dflt)
{
	static const struct config_tls none;
	static struct config_tls t;	/* large (paths): off the stack */
	struct nbd_tls_opts o;

	if (cli)
		t = *cli;
	else
		memset(&t, 0, sizeof t);
	if (config_tls_resolve(&t, dflt ? dflt : &none) < 0)
		return -EINVAL;
	o = (struct nbd_tls_opts){
		.mode = t.mode == EXPORT_TLS_REQUIRE ? NBD_TLS_REQUIRE :
			t.mode == EXPORT_TLS_ON ? NBD_TLS_ON : NBD_TLS_OFF,
		.psk_file = t.psk[0] ? t.psk : NULL,
		.cert_dir = t.certificates[0] ? t.certificates : NULL,
		.verify_peer = t.verify_peer,
	};
	return nbd_server_set_tls(ex->srv, &o);
}

static int listen_all(struct exporter *ex, const struct export_opts *o)
{
	const struct config_store *st = ex->st;
	char addr[CONFIG_NAME_MAX];
	uint16_t port;
	int rc;

	if (o->sock || o->tcp) {
		if (o->sock && (rc = nbd_server_listen_unix(ex->srv, o->sock)) < 0)
			return rc;
		if (o->tcp) {
			if ((rc = parse_hostport(o->tcp, addr, sizeof addr, &port)) < 0 ||
			    (rc = nbd_server_listen_tcp(ex->srv, addr, port)) < 0)
				return rc;
			printf("tcp port %u\n", nbd_server_tcp_port(ex->srv));
		}
	} else if (st->export_kind == EXPORT_TCP) {
		if ((rc = nbd_server_listen_tcp(ex->srv, st->export_address, st->export_port)) < 0)
			return rc;
		printf("tcp port %u\n", nbd_server_tcp_port(ex->srv));
		if (config_export_local_unix(st)) {
			/* TLS on TCP: this node's own plain clients here */
			if ((rc = nbd_server_listen_unix(ex->srv, st->export_socket)) < 0)
				return rc;
			printf("unix socket %s\n", st->export_socket);
		}
	} else {
		if ((rc = nbd_server_listen_unix(ex->srv, st->export_socket)) < 0)
			return rc;
		printf("unix socket %s\n", st->export_socket);
	}
	fflush(stdout);
	return 0;
}

/* Kernel nbd devices of this store (csnap activate) talk to this export:
 * after a restart the keeper re-attaches them through our own listener.  */
static int start_keeper(struct exporter *ex, const struct export_opts *o)
{
	char addr[CONFIG_NAME_MAX];
	uint16_t port = 0;
	int rc;

	if (o->sock) {
		return act_keeper_start(&ex->tgt.uuid, o->sock, 0, ex->st->nbd_dead_timeout,
					&ex->keeper);
	} else if (o->tcp) {
		if ((rc = parse_hostport(o->tcp, addr, sizeof addr, &port)) < 0)
			return rc;
	} else if (!config_export_local_unix(ex->st)) {
		snprintf(addr, sizeof addr, "%s", ex->st->export_address);
	} else {
		return act_keeper_start(&ex->tgt.uuid, ex->st->export_socket, 0,
					ex->st->nbd_dead_timeout, &ex->keeper);
	}
	if (!addr[0] || !strcmp(addr, "0.0.0.0") || !strcmp(addr, "::"))
		snprintf(addr, sizeof addr, "%s", "127.0.0.1");
	return act_keeper_start(&ex->tgt.uuid, addr, nbd_server_tcp_port(ex->srv),
				ex->st->nbd_dead_timeout, &ex->keeper);
}

/* SIGINT/SIGTERM stop the loop, SIGUSR1 logs the state (through a
 * signalfd, in the loop).  */
static int watch_signals(struct exporter *ex)
{
	static const int signos[] = { SIGINT, SIGTERM, SIGUSR1, 0 };

	return evloop_signals_add(ex->lp, &ex->sigs, signos, on_signal, ex);
}

static void teardown(struct exporter *ex)
{
	act_keeper_stop(ex->keeper);
	/* Requests waiting for the master fail first, so the NBD server can
	 * drain its connections; then the volumes go.  */
	if (ex->origin)
		volume_origin_shutdown(ex->origin);
	for (unsigned i = 0; i < ex->nsnaps; i++)
		if (ex->snaps[i]->vol)
			volume_snap_shutdown(ex->snaps[i]->vol);
	if (ex->admin)
		session_destroy(ex->admin);
	nbd_server_destroy(ex->srv);
	volume_put(ex->origin);
	for (unsigned i = 0; i < ex->nsnaps; i++) {
		volume_put(ex->snaps[i]->vol);
		free(ex->snaps[i]);
	}
	free(ex->snaps);
	if (ex->lp) {
		evloop_signals_del(ex->lp, &ex->sigs);
		evloop_timer_cancel(ex->lp, &ex->poll);
	}
	loop_destroy(ex->lp);
	dio_destroy(ex->origin_dio);
	dio_destroy(ex->store_dio);
	io_dev_close(ex->origin_dev);
	io_dev_close(ex->store_dev);
}

int export_run(const struct export_opts *o)
{
	struct exporter *ex = calloc(1, sizeof *ex);
	int rc;

	if (!ex) {
		fprintf(stderr, "csnap: export: out of memory\n");
		return 1;
	}
	rc = config_load(o->conf, &ex->cfg);
	if (rc < 0)
		goto out;
	if (!(ex->st = config_find_store(&ex->cfg, o->store))) {
		rc = err_set(ENOENT, "%s: no [store %s]", o->conf, o->store);
		goto out;
	}
	if ((rc = loop_create(512, &ex->lp)) < 0 ||
	    (rc = watch_signals(ex)) < 0 ||
	    (rc = open_store(ex, o)) < 0 ||
	    (rc = nbd_server_create(ex->lp, &ex->srv)) < 0 ||
	    (rc = nbd_server_set_threads(ex->srv, o->threads ? o->threads :
					 ex->st->export_threads ? ex->st->export_threads :
					 EXPORT_THREADS_DEFAULT, 512)) < 0 ||
	    (rc = volume_origin_create(&ex->env, &ex->origin)) < 0 ||
	    (rc = nbd_server_add(ex->srv, ex->origin)) < 0 ||
	    (rc = setup_tls(ex, o->tls, &ex->st->export_tls)) < 0 ||
	    (rc = session_create(ex->lp, &ex->tgt, PROTO_VOL_ADMIN, NULL, &admin_ops, ex,
				 &ex->admin)) < 0 ||
	    (rc = listen_all(ex, o)) < 0 ||
	    (rc = start_keeper(ex, o)) < 0)
		goto out;
	/* a resize while no export ran here: grow what was activated before */
	act_keeper_origin_size(ex->keeper, ex->env.origin_size);
	session_start(ex->admin);
	ex->poll.fn = poll_fn;
	ex->poll.arg = ex;
	evloop_timer_arm(ex->lp, &ex->poll, LIST_INTERVAL_MS);
	log_info("export: serving store %s", ex->st->name);
	rc = evloop_run(ex->lp);
out:
	if (rc < 0)
		fprintf(stderr, "csnap: export: %s\n", ESC(err_get()));
	teardown(ex);
	free(ex);
	return rc < 0 ? 1 : 0;
}

/* ---- --file ----------------------------------------------------------- */

int export_run_file(const struct export_file_opts *o)
{
	struct exporter *ex = calloc(1, sizeof *ex);
	struct volume *vol = NULL;
	char addr[CONFIG_NAME_MAX];
	uint16_t port = 0;
	int rc;

	if (!ex) {
		fprintf(stderr, "csnap: export: out of memory\n");
		return 1;
	}
	if ((rc = o->tcp ? parse_hostport(o->tcp, addr, sizeof addr, &port) : 0) < 0 ||
	    (rc = loop_create(256, &ex->lp)) < 0 ||
	    (rc = watch_signals(ex)) < 0 ||
	    (rc = nbd_server_create(ex->lp, &ex->srv)) < 0 ||
	    (rc = nbd_server_set_threads(ex->srv, o->threads ? o->threads :
					 EXPORT_THREADS_DEFAULT, 256)) < 0 ||
	    (rc = volume_file_open(ex->lp, o->name, o->path, o->readonly, &vol)) < 0 ||
	    (rc = nbd_server_add(ex->srv, vol)) < 0 ||
	    (rc = setup_tls(ex, o->tls, NULL)) < 0 ||
	    (o->sock && (rc = nbd_server_listen_unix(ex->srv, o->sock)) < 0) ||
	    (o->tcp && (rc = nbd_server_listen_tcp(ex->srv, addr, port)) < 0))
		goto out;
	if (o->tcp)
		printf("tcp port %u\n", nbd_server_tcp_port(ex->srv));
	if (o->sock)
		printf("unix socket %s\n", o->sock);
	fflush(stdout);
	log_info("export: serving %s as \"%s\"", o->path, o->name);
	rc = evloop_run(ex->lp);
out:
	if (rc < 0)
		fprintf(stderr, "csnap: export: %s\n", ESC(err_get()));
	volume_put(vol);
	teardown(ex);
	free(ex);
	return rc < 0 ? 1 : 0;
}
