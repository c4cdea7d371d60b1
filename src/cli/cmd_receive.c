/*
 * src/cli/cmd_receive.c - `csnap receive STORE`: reads a `csnap send`
 * stream (docs/send-stream.md) from standard input and makes its snapshot
 * on STORE, while that store's cluster runs.
 *
 * The data goes to STORE's origin through its running NBD export, the
 * normal write path: the master copies out whatever the store's existing
 * snapshots still share before each first write, so they keep their
 * content.  Then snapshot B is created through the master, with a request
 * id derived from the source store and snapshot (src/send/ident.h): that
 * is how the target records where B came from, and how a later incremental
 * stream checks its base.
 *
 * Refused before anything is written: a stream whose origin size differs
 * from STORE's; B existing on STORE; an incremental stream unless STORE
 * holds a snapshot named A received from the same source snapshot.  Each
 * record is validated (checksums, bounds, order: src/send/stream.h) before
 * it is applied; a bad or truncated stream stops the receive with one line
 * naming the record and offset, after flushing what was written, and B is
 * not created.  Before creating B from an incremental stream, the origin
 * must not differ from A outside the ranges the stream wrote (nobody else
 * wrote the origin meanwhile; a receive cut short and started again with
 * the same stream is fine).
 */
#include "src/cli/cli.h"
#include "src/cli/send_util.h"
#include "src/send/ident.h"
#include "src/send/nbdio.h"
#include "src/send/stream.h"
#include "src/send/token.h"
#include "utils/config.h"
#include "utils/err.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SIGINT, SIGTERM, SIGHUP: stop after the record being applied, flush and
 * record how far we got, as for a cut stream.  */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

static long in_read(void *ctx, void *buf, size_t n)
{
	(void)ctx;
	for (;;) {
		if (stop_signal)
			return err_set(EINTR, "stopped by signal %d", (int)stop_signal);
		ssize_t r = read(STDIN_FILENO, buf, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(errno, "reading the stream: %s", strerror(errno));
		return (long)r;
	}
}

/* Byte ranges the stream wrote, merged (they come in increasing order).  */
struct written {
	uint64_t (*r)[2];
	size_t n, cap;
};

static int add_written(struct written *w, uint64_t off, uint64_t len)
{
	if (w->n && w->r[w->n - 1][0] + w->r[w->n - 1][1] == off) {
		w->r[w->n - 1][1] += len;
		return 0;
	}
	if (w->n == w->cap) {
		size_t c = w->cap ? w->cap * 2 : 256;
		void *nr = realloc(w->r, c * sizeof *w->r);
		if (!nr)
			return err_set(ENOMEM, "out of memory");
		w->r = nr;
		w->cap = c;
	}
	w->r[w->n][0] = off;
	w->r[w->n][1] = len;
	w->n++;
	return 0;
}

/* Does [off, off+len) overlap a written range?  */
static bool overlaps(const struct written *w, uint64_t off, uint64_t len)
{
	size_t lo = 0, hi = w->n;
	while (lo < hi) {	/* first range ending after off */
		size_t mid = (lo + hi) / 2;
		if (w->r[mid][0] + w->r[mid][1] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < w->n && w->r[lo][0] < off + len;
}

/* Refuses what must not be received into this store (message printed).  */
static int check_target(struct xfer_args *x, struct admin_conn *ac, const struct ss_header *h)
{
	char src[CSNAP_UUID_STR_LEN];
	csnap_uuid_unparse(&h->source, src);
	if (ac->id.origin_size != h->origin_size)
		return cli_error("receive: the stream's origin is %" PRIu64 " bytes, store %s's %"
				 PRIu64, h->origin_size, x->a.args[0], ac->id.origin_size);
	struct proto_msg list;
	bool ids;
	if (xfer_snapshots(x, ac, &list, &ids))
		return 1;
	int r = 0;
	const struct proto_snapinfo *b = xfer_find(&list, h->to_name);
	if (b) {
		uint8_t want[PROTO_REQ_ID_LEN];
		send_ident(&h->source, h->to_id, want);
		bool same = (b->flags & PROTO_SNAP_REQ_ID) && !memcmp(b->req_id, want, sizeof want);
		r = cli_error("receive: store %s already has a snapshot %s%s", x->a.args[0],
			      h->to_name, same ? " (received from this source before)" : "");
	} else if (h->flags & SS_F_INCREMENTAL) {
		const struct proto_snapinfo *a = xfer_find(&list, h->from_name);
		uint8_t want[PROTO_REQ_ID_LEN];
		send_ident(&h->source, h->from_id, want);
		if (!a)
			r = cli_error("receive: incremental stream from %s, but store %s has no "
				      "snapshot %s", h->from_name, x->a.args[0], h->from_name);
		else if (!(a->flags & PROTO_SNAP_REQ_ID) || memcmp(a->req_id, want, sizeof want))
			r = cli_error("receive: snapshot %s on store %s was not received from source "
				      "snapshot %s (id %u) of store %s", h->from_name, x->a.args[0],
				      h->from_name, h->from_id, src);
		else if (a->flags & PROTO_SNAP_BUSY)
			r = cli_error("receive: snapshot %s is being deleted", h->from_name);
	}
	proto_msg_free(&list);
	return r;
}

/* After an incremental stream: the origin differs from A only where the
 * stream wrote.  */
static int check_untouched(struct xfer_args *x, struct admin_conn *ac, const struct ss_header *h,
			   const struct written *w)
{
	struct proto_range *v;
	size_t n;
	if (admin_changed_ranges(&x->a, ac, h->from_name, NULL, &v, &n))
		return 1;
	int r = 0;
	for (size_t i = 0; i < n && !r; i++)
		for (uint64_t c = v[i].start; c < v[i].start + v[i].count && !r; c++)
			if (!overlaps(w, c * ac->chunk_size, ac->chunk_size))
				r = cli_error("receive: store %s's origin changed since snapshot %s outside "
					      "the stream (chunk %" PRIu64 "): not creating %s",
					      x->a.args[0], h->from_name, c, h->to_name);
	free(v);
	return r;
}

struct progress {
	const char *state;		/* state file, "" for none */
	struct send_token tok;		/* what it says once saved */
	uint64_t applied;		/* everything below is written */
	uint64_t done;			/* bytes of ranges written */
};

/* Records how far we got (after a flush), never less than an earlier
 * attempt at the same stream got: what it wrote is this stream's data.  */
static void save_progress(struct progress *p)
{
	if (!p->state[0] || p->applied <= p->tok.offset)
		return;
	p->tok.offset = p->applied;
	if (send_state_save(p->state, &p->tok) < 0)
		fprintf(stderr, "csnap: receive: cannot record progress: %s\n", err_get());
}

static int apply(struct ss_reader *rd, struct nbdio *nbd, struct written *w, struct xfer_meter *m,
		 struct progress *p)
{
	struct ss_record rec;
	int e;
	while ((e = ss_reader_next(rd, &rec)) == SS_MORE) {
		if (rec.type == SS_T_DATA)
			e = nbdio_write(nbd, rec.offset, rec.data, (uint32_t)rec.length);
		else if (rec.type == SS_T_ZERO)
			e = nbdio_zero(nbd, rec.offset, rec.length);
		else if ((e = nbdio_flush(nbd)) == 0)	/* CHECKPOINT */
			save_progress(p);
		if (e == 0 && rec.type != SS_T_CHECKPOINT) {
			e = add_written(w, rec.offset, rec.length);
			p->done += rec.length;
			p->applied = rec.offset + rec.length;
		}
		if (e < 0)
			return err_prefix(-e, "record %" PRIu64 " (%s) at stream offset %" PRIu64,
					  rd->records, ss_type_name(rec.type), rec.stream_off);
		xfer_meter_update(m, p->done);
		if (stop_signal)
			return err_set(EINTR, "stopped by signal %d after record %" PRIu64 " (%s) at "
				       "stream offset %" PRIu64, (int)stop_signal, rd->records,
				       ss_type_name(rec.type), rec.stream_off);
	}
	return e;
}

/* A resumed stream continues what this node's state file recorded.  */
static int check_resume(const struct ss_header *h, const struct progress *p)
{
	if (!(h->flags & SS_F_RESUMED))
		return 0;
	if (!p->state[0])
		return cli_error("receive: a resumed stream, but no receive state for this store "
				 "(not in csnap.conf)");
	if (!p->tok.offset)
		return cli_error("receive: a resumed stream, but no cut receive of it is recorded "
				 "on this node");
	if (p->tok.offset < h->resume_offset)
		return cli_error("receive: the stream resumes at %" PRIu64 ", but only %" PRIu64
				 " bytes were received", h->resume_offset, p->tok.offset);
	return 0;
}

static int print_token(struct xfer_args *x)
{
	char path[4200];
	struct send_token t;
	if (xfer_state_path(x, path, sizeof path))
		return 1;
	if (!path[0])
		return cli_error("receive --token: store %s is not in csnap.conf", x->a.args[0]);
	int e = send_state_load(path, &t);
	if (e == -ENOENT)
		return cli_error("receive --token: no cut receive recorded for store %s on this node",
				 x->a.args[0]);
	if (e < 0)
		return cli_error("receive --token: %s", err_get());
	char tok[SEND_TOKEN_STR];
	send_token_format(&t, tok);
	printf("%s\n", tok);
	return 0;
}

static int cmd_receive(int argc, char **argv)
{
	struct xfer_args x;
	int r = xfer_parse(argc, argv, 1, false, &x);
	if (r)
		return r;
	if (x.token)
		return print_token(&x);
	if (isatty(STDIN_FILENO))
		return cli_error("receive: standard input is a terminal; give it a stream from "
				 "`csnap send`");
	char addr[CONFIG_PATH_MAX];
	uint16_t port;
	if (xfer_endpoint(&x, addr, sizeof addr, &port))
		return 1;
	struct ss_reader rd;
	struct sigaction sa = { .sa_handler = on_stop };	/* no SA_RESTART: read sees EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (ss_reader_open(&rd, in_read, NULL) < 0)
		return cli_error("receive: %s", err_get());
	const struct ss_header *h = &rd.h;

	struct admin_conn ac;
	struct nbdio nbd = { .fd = -1 };
	struct written w = { 0 };
	char state[4200];
	struct progress p = { .state = state, .applied = h->resume_offset };
	r = 1;
	if (xfer_state_path(&x, state, sizeof state))
		goto out_reader;
	if (state[0]) {
		/* An earlier attempt at this same stream: keep its mark.  */
		struct send_token old;
		if (send_state_load(state, &old) == 0 && csnap_uuid_equal(&old.source, &h->source) &&
		    old.from_id == h->from_id && old.to_id == h->to_id)
			p.tok = old;
		else
			p.tok = (struct send_token){ h->source, h->from_id, h->to_id, 0 };
	}
	if (check_resume(h, &p))
		goto out_reader;
	if (admin_connect(&x.a, &ac))
		goto out_reader;
	if (check_target(&x, &ac, h))
		goto out;
	/* Below the resume offset the earlier attempt wrote (the check of
	 * the origin before B is created counts it as the stream's).  */
	if (h->resume_offset && add_written(&w, 0, h->resume_offset) < 0) {
		cli_error("receive: %s", err_get());
		goto out;
	}
	if (nbdio_open(&nbd, addr, port, "origin", 0) < 0) {
		cli_error("receive: %s", err_get());
		goto out;
	}
	if (nbd.size != h->origin_size) {
		cli_error("receive: export origin is %" PRIu64 " bytes, the stream's %" PRIu64,
			  nbd.size, h->origin_size);
		goto out;
	}
	struct xfer_meter m;
	xfer_meter_start(&m, "receive", h->total_bytes);
	int e = apply(&rd, &nbd, &w, &m, &p);
	char why[1100];
	snprintf(why, sizeof why, "%s", e < 0 ? err_get() : "");
	/* What was written stays written, the stream cut or not; how far
	 * it got is recorded for a resume once it is flushed.  */
	int f = nbdio_flush(&nbd);
	if (f == 0)
		save_progress(&p);
	if (e != SS_END || f < 0) {
		cli_error("receive: %s; snapshot %s not created%s", e != SS_END ? why : err_get(),
			  h->to_name, p.state[0] && p.tok.offset ? " (`csnap receive --token` gives a "
			  "resume token)" : "");
		goto out;
	}
	xfer_meter_end(&m, p.done, rd.off);
	if ((h->flags & SS_F_INCREMENTAL) && check_untouched(&x, &ac, h, &w))
		goto out;

	struct proto_msg cm, rep;
	proto_msg_init(&cm, PROTO_SNAP_CREATE, 0);
	snprintf(cm.u.snap_create.name, sizeof cm.u.snap_create.name, "%s", h->to_name);
	cm.flags |= PROTO_F_REQ_ID;
	send_ident(&h->source, h->to_id, cm.u.snap_create.req_id);
	/* Safe to repeat: the request id makes a retry find its snapshot.  */
	if (admin_call(&x.a, &ac, &cm, &rep, "snapshot create", true))
		goto out;
	if (rep.status) {
		cli_error("receive: snapshot create %s: %s", h->to_name,
			  rep.error[0] ? rep.error : strerror((int)rep.status));
	} else {
		char src[CSNAP_UUID_STR_LEN];
		csnap_uuid_unparse(&h->source, src);
		printf("received snapshot %s (id %u) from snapshot %u of store %s\n",
		       rep.u.snapinfo.name, rep.u.snapinfo.id, h->to_id, src);
		if (p.state[0])
			send_state_clear(p.state);
		r = 0;
	}
	proto_msg_free(&rep);
out:
	nbdio_close(&nbd);
	free(w.r);
	admin_close(&ac);
out_reader:
	ss_reader_close(&rd);
	return r;
}

CLI_COMMAND(receive, "receive",
	    "[-c CONF] [--token] [--export SOCKET|ADDR:PORT] [--master ADDR:PORT] [--timeout S] STORE",
	    "read a `csnap send` stream from standard input into STORE and create its snapshot",
	    cmd_receive)
