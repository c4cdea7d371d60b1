/*
 * src/cli/cmd_send.c - `csnap send [--from A] [--compress] STORE B`: writes
 * to standard output the stream (docs/send-stream.md) of snapshot B's
 * content, all of it, or with --from only the chunks that differ from
 * snapshot A (asked of the master: CHANGED A B).  B is read through the
 * store's running NBD export (`csnap export`), the path every reader of a
 * snapshot takes: it read-locks chunks still on the origin, so the stream
 * is B as it is, whatever the origin does meanwhile, and B counts as in
 * use (cannot be deleted) while it is read.
 *
 * With --resume TOKEN (from `csnap receive --token` on the receiving
 * node: src/send/token.h) the same stream is sent from the token's origin
 * offset on; the token must name this store and the same from and to
 * snapshot ids, so it can only make the stream shorter.
 *
 * A chunk that reads all zero is sent as a ZERO range; runs of chunks are
 * sent as DATA records of at most XFER_PIECE bytes (each compressed on its
 * own with --compress); a CHECKPOINT follows every CHECKPOINT_BYTES.
 */
#include "src/cli/cli.h"
#include "src/cli/send_util.h"
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

#define XFER_PIECE		(1u << 20)
#define CHECKPOINT_BYTES	(4ull << 20)	/* a cut receive resumes from the last one */
#define CHECKPOINT_RECORDS	4096

static int out_write(void *ctx, const void *buf, size_t n)
{
	(void)ctx;
	const char *p = buf;
	while (n) {
		ssize_t r = write(STDOUT_FILENO, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(errno, "writing the stream: %s", strerror(errno));
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

struct sender {
	struct ss_writer w;
	struct nbdio nbd;
	uint32_t cs;
	uint64_t zero_off, zero_len;	/* pending ZERO range */
	uint64_t done;			/* bytes of ranges handled */
	uint64_t since_ckpt, recs_at_ckpt;
	uint8_t *buf;
	struct xfer_meter meter;
};

static int flush_zero(struct sender *s)
{
	if (!s->zero_len)
		return 0;
	int r = ss_write_zero(&s->w, s->zero_off, s->zero_len);
	s->zero_len = 0;
	return r;
}

/* Bytes [off, off+len) of B: read, split into zero and data runs.  */
static int send_piece(struct sender *s, uint64_t off, uint32_t len)
{
	int r = nbdio_read(&s->nbd, off, s->buf, len);
	if (r < 0)
		return r;
	uint32_t i = 0;
	while (i < len) {
		uint32_t n = s->cs - (uint32_t)((off + i) % s->cs);
		if (n > len - i)
			n = len - i;
		if (all_zero(s->buf + i, n)) {
			if (s->zero_len && s->zero_off + s->zero_len == off + i) {
				s->zero_len += n;
			} else {
				if ((r = flush_zero(s)) < 0)
					return r;
				s->zero_off = off + i;
				s->zero_len = n;
			}
			i += n;
			continue;
		}
		/* a run of non-zero chunks */
		uint32_t j = i + n;
		while (j < len) {
			uint32_t k = s->cs - (uint32_t)((off + j) % s->cs);
			if (k > len - j)
				k = len - j;
			if (all_zero(s->buf + j, k))
				break;
			j += k;
		}
		if ((r = flush_zero(s)) < 0 || (r = ss_write_data(&s->w, off + i, s->buf + i, j - i)) < 0)
			return r;
		s->since_ckpt += j - i;
		i = j;
	}
	s->done += len;
	if (s->since_ckpt >= CHECKPOINT_BYTES ||
	    s->w.records - s->recs_at_ckpt >= CHECKPOINT_RECORDS) {
		if ((r = flush_zero(s)) < 0 || (r = ss_write_checkpoint(&s->w)) < 0)
			return r;
		s->since_ckpt = 0;
		s->recs_at_ckpt = s->w.records;
	}
	xfer_meter_update(&s->meter, s->done);
	return 0;
}

static int send_ranges(struct sender *s, const struct proto_range *v, size_t nv, uint64_t size,
		       uint64_t from)
{
	for (size_t i = 0; i < nv; i++) {
		uint64_t off = v[i].start * s->cs, end = (v[i].start + v[i].count) * s->cs;
		if (end > size)
			end = size;
		if (off < from)
			off = from;	/* resumed: the receiver has it */
		while (off < end) {
			uint32_t len = end - off < XFER_PIECE ? (uint32_t)(end - off) : XFER_PIECE;
			int r = send_piece(s, off, len);
			if (r < 0)
				return r;
			off += len;
		}
	}
	int r = flush_zero(s);
	return r < 0 ? r : ss_write_end(&s->w);
}

static int cmd_send(int argc, char **argv)
{
	struct xfer_args x;
	int r = xfer_parse(argc, argv, 2, true, &x);
	if (r)
		return r;
	const char *to = x.a.args[1];
	if (!proto_name_valid(to) || (x.from && !proto_name_valid(x.from)))
		return cli_usage("invalid snapshot name '%s'", proto_name_valid(to) ? x.from : to);
	if (x.from && !strcmp(x.from, to))
		return cli_usage("--from and the snapshot to send are the same");
	struct send_token tok = { 0 };
	if (x.resume && send_token_parse(x.resume, &tok) < 0)
		return cli_usage("--resume: %s", err_get());
	if (isatty(STDOUT_FILENO))
		return cli_error("send: standard output is a terminal; redirect it to a file or "
				 "pipe it to `csnap receive`");
	signal(SIGPIPE, SIG_IGN);	/* a receiver that quits: EPIPE, one message */
	char addr[CONFIG_PATH_MAX];
	uint16_t port;
	if (xfer_endpoint(&x, addr, sizeof addr, &port))
		return 1;

	struct admin_conn ac;
	if (admin_connect(&x.a, &ac))
		return 1;
	struct proto_msg list;
	bool ids;
	if (xfer_snapshots(&x, &ac, &list, &ids)) {
		admin_close(&ac);
		return 1;
	}
	const struct proto_snapinfo *b = xfer_find(&list, to), *a = x.from ? xfer_find(&list, x.from) : NULL;
	struct ss_header h = { 0 };
	r = 1;
	if (!b || (x.from && !a)) {
		cli_error("send: store %s has no snapshot %s", x.a.args[0], !b ? to : x.from);
		goto out_list;
	}
	if ((b->flags & PROTO_SNAP_BUSY) || (a && (a->flags & PROTO_SNAP_BUSY))) {
		cli_error("send: snapshot %s is being deleted", (b->flags & PROTO_SNAP_BUSY) ? to : x.from);
		goto out_list;
	}
	h.source = ac.loc.uuid;
	h.origin_size = ac.id.origin_size;
	h.chunk_size = ac.chunk_size;
	h.to_id = b->id;
	h.to_ctime = b->ctime;
	snprintf(h.to_name, sizeof h.to_name, "%s", b->name);
	if (a) {
		h.flags = SS_F_INCREMENTAL;
		h.from_id = a->id;
		h.from_ctime = a->ctime;
		snprintf(h.from_name, sizeof h.from_name, "%s", a->name);
	}

	if (x.resume) {
		char want[CSNAP_UUID_STR_LEN];
		csnap_uuid_unparse(&tok.source, want);
		if (!csnap_uuid_equal(&tok.source, &h.source) || tok.from_id != h.from_id ||
		    tok.to_id != h.to_id || !tok.offset || tok.offset > h.origin_size) {
			cli_error("send: the resume token is for another stream (store %s, snapshot ids "
				  "%u -> %u), not %s%s%s of store %s", want, tok.from_id, tok.to_id,
				  x.from ? x.from : "", x.from ? " -> " : "", to, x.a.args[0]);
			goto out_list;
		}
		h.flags |= SS_F_RESUMED;
		h.resume_offset = tok.offset;
	}
	struct proto_range *v = NULL;
	size_t nv = 0;
	uint64_t nchunks = (h.origin_size + h.chunk_size - 1) / h.chunk_size;
	if (a) {
		if (admin_changed_ranges(&x.a, &ac, a->name, b->name, &v, &nv))
			goto out_list;
	} else {
		/* CHANGED counts are 32-bit; a whole origin in pieces */
		for (uint64_t c = 0; c < nchunks;) {
			uint64_t k = nchunks - c < UINT32_MAX ? nchunks - c : UINT32_MAX;
			struct proto_range *nv2 = realloc(v, (nv + 1) * sizeof *v);
			if (!nv2) {
				free(v);
				cli_error("out of memory");
				goto out_list;
			}
			v = nv2;
			v[nv++] = (struct proto_range){ c, (uint32_t)k };
			c += k;
		}
	}
	admin_close(&ac);	/* the master is not needed for the data */
	for (size_t i = 0; i < nv; i++) {
		uint64_t off = v[i].start * h.chunk_size, len = (uint64_t)v[i].count * h.chunk_size;
		uint64_t end = off + len < h.origin_size ? off + len : h.origin_size;
		if (off < h.resume_offset)
			off = h.resume_offset;
		if (off < end)
			h.total_bytes += end - off;
	}

	struct sender s = { .cs = h.chunk_size };
	s.buf = malloc(XFER_PIECE);
	if (!s.buf) {
		free(v);
		cli_error("out of memory");
		goto out_list;
	}
	if (nbdio_open(&s.nbd, addr, port, b->name, 5000) < 0) {
		cli_error("send: %s", err_get());
		goto out_buf;
	}
	if (s.nbd.size != h.origin_size) {
		cli_error("send: export %s is %" PRIu64 " bytes, the origin %" PRIu64, b->name,
			  s.nbd.size, h.origin_size);
		goto out_nbd;
	}
	if (ss_writer_open(&s.w, out_write, NULL, &h, x.compress ? 3 : 0) < 0) {
		cli_error("send: %s", err_get());
		goto out_nbd;
	}
	xfer_meter_start(&s.meter, "send", h.total_bytes);
	if (send_ranges(&s, v, nv, h.origin_size, h.resume_offset) < 0) {
		cli_error("send %s%s%s: %s", x.from ? x.from : "", x.from ? " -> " : "", to, err_get());
	} else {
		xfer_meter_end(&s.meter, s.done, s.w.off);
		r = 0;
	}
	ss_writer_close(&s.w);
out_nbd:
	nbdio_close(&s.nbd);
out_buf:
	free(s.buf);
	free(v);
out_list:
	proto_msg_free(&list);
	admin_close(&ac);
	return r;
}

CLI_COMMAND(send, "send",
	    "[-c CONF] [--from A] [--compress] [--resume TOKEN] [--export SOCKET|ADDR:PORT] "
	    "[--master ADDR:PORT] [--timeout S] STORE B",
	    "write snapshot B (or what changed since A) as a stream to standard output",
	    cmd_send)
