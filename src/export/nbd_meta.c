/*
 * src/export/nbd_meta.c - NBD metadata contexts: NBD_OPT_LIST_META_CONTEXT
 * and NBD_OPT_SET_META_CONTEXT during the handshake, NBD_CMD_BLOCK_STATUS
 * in transmission.  Two contexts (docs/export.md):
 *  - base:allocation: every extent is reported as data (flags 0).  csnap
 *    volumes sit on shared devices whose holes say nothing about what
 *    reads as zero (a snapshot's chunk may live on the origin or in the
 *    store), and a wrong NBD_STATE_ZERO makes a copying client skip real
 *    data; "allocated, contents unknown" is always true.
 *  - csnap:changed:<snapshot>: flag NBD_STATE_CSNAP_CHANGED on the extents
 *    whose chunks differ between that snapshot and the exported volume,
 *    asked from the master per request (volume_ops.changed).  Only csnap
 *    volumes have it; a snapshot this export does not serve is refused at
 *    negotiation with NBD_REP_ERR_INVALID and its name.
 *
 * Bounds (the client chooses every length): the option itself is at most
 * NBD_MAX_OPT_LEN (nbd_handshake.c); each query is parsed against the
 * option's remaining bytes before it is read; at most NBD_MAX_META_QUERIES
 * queries; at most one csnap:changed context selected; one option answers
 * with at most NBD_MAX_META_QUERIES + NBD_MAX_META_LIST + 2 replies, each
 * under NBD_MAX_STRING.  A block status reply holds at most
 * NBD_BS_MAX_EXTENTS extents per context.
 */
#include "src/export/nbd_conn.h"

#include "utils/assert.h"
#include "utils/escape.h"
#include "utils/log.h"

#include <stdio.h>
#include <string.h>

/* Longest extent we report: 32-bit lengths, kept 4 KiB aligned.  */
#define EXT_MAX		0xfffff000u

/* ---- negotiation ------------------------------------------------------ */

static void reply_ctx(struct nbd_conn *c, uint32_t id, const char *name)
{
	uint8_t buf[4 + sizeof NBD_META_CHANGED_PREFIX + VOL_NAME_MAX];
	size_t n = strlen(name);

	/* Names are "base:allocation" or the prefix and a volume name.  */
	CSNAP_ASSERT(n <= sizeof buf - 4);
	nbd_put32(buf, id);
	memcpy(buf + 4, name, n);
	nbd_hs_reply(c, NBD_REP_META_CONTEXT, buf, 4 + n);
}

static void reply_changed(struct nbd_conn *c, uint32_t id, const char *snap)
{
	char name[sizeof NBD_META_CHANGED_PREFIX + VOL_NAME_MAX];

	snprintf(name, sizeof name, "%s%s", NBD_META_CHANGED_PREFIX, snap);
	reply_ctx(c, id, name);
}

/* LIST without a specific snapshot: every snapshot's context, or the
 * wildcard when there are too many to list in one option's replies.  */
static void list_all_changed(struct nbd_conn *c)
{
	struct volume *v;
	unsigned n = 0;

	for (unsigned i = 0; (v = nbd_server_vol_at(c->srv, i)); i++)
		n += (v->flags & VOL_SNAPSHOT) != 0;
	if (n > NBD_MAX_META_LIST) {
		reply_ctx(c, 0, NBD_META_CHANGED_PREFIX);
		return;
	}
	for (unsigned i = 0; (v = nbd_server_vol_at(c->srv, i)) && !c->dead; i++)
		if (v->flags & VOL_SNAPSHOT)
			reply_changed(c, 0, v->name);
}

struct meta_sel {
	bool alloc;		/* base:allocation */
	bool all_changed;	/* LIST: every csnap:changed context */
	char changed[VOL_NAME_MAX];	/* SET: the csnap:changed snapshot */
};

/* One query.  Returns 0 (matched or ignored), or an error reply type with
 * WHY filled.  LIST answers a specific snapshot at once; everything else
 * is collected in SEL.  */
static uint32_t meta_query(struct nbd_conn *c, bool set, const struct volume *vol,
			   const char *q, size_t ql, struct meta_sel *sel, char *why, size_t whylen)
{
	const char *colon = memchr(q, ':', ql);
	char shown[80];

	str_escape_n(shown, sizeof shown, q, ql);
	if (memchr(q, 0, ql) || !colon || colon == q) {
		snprintf(why, whylen, "meta context query \"%s\" is not namespace:name", shown);
		return NBD_REP_ERR_INVALID;
	}
	size_t ns = (size_t)(colon - q), leaflen = ql - ns - 1;
	const char *leaf = colon + 1;

	if (ns == 4 && !memcmp(q, "base", 4)) {
		/* "base:" lists; unknown base: leaves are ignored (proto.md) */
		if ((leaflen == 0 && !set) || (leaflen == 10 && !memcmp(leaf, "allocation", 10)))
			sel->alloc = true;
		return 0;
	}
	if (ns != 5 || memcmp(q, "csnap", 5))
		return 0;			/* unknown namespace: ignored */
	if (!vol->ops->changed) {
		if (!set)
			return 0;
		snprintf(why, whylen, "export %s is not a csnap volume: it has no csnap: contexts",
			 vol->name);
		return NBD_REP_ERR_INVALID;
	}
	const size_t pl = sizeof NBD_META_CHANGED_PREFIX - 1 - 6;	/* "changed:" */

	if (leaflen == 0 || (leaflen == pl && !memcmp(leaf, "changed:", pl))) {
		sel->all_changed |= !set;	/* wildcards select nothing */
		return 0;
	}
	if (leaflen < pl || memcmp(leaf, "changed:", pl))
		return 0;			/* another csnap: leaf: none yet */
	const char *snap = leaf + pl;
	size_t sl = leaflen - pl;
	char name[VOL_NAME_MAX];
	struct volume *sv = NULL;

	if (sl < sizeof name) {
		memcpy(name, snap, sl);
		name[sl] = 0;
		sv = nbd_server_lookup(c->srv, name);
	}
	if (!sv || !(sv->flags & VOL_SNAPSHOT)) {
		char sn[80];

		str_escape_n(sn, sizeof sn, snap, sl);
		snprintf(why, whylen, "%s: no snapshot named \"%s\" (export %s)", shown, sn, vol->name);
		/* The client's error text is all most tools show: say it here too. */
		log_limited(nbd_server_peer_log(c->srv), LOG_LEVEL_INFO, "nbd %s: meta context %s",
			    c->peer, why);
		return NBD_REP_ERR_INVALID;
	}
	if (!set) {
		reply_changed(c, 0, name);
		return 0;
	}
	if (sel->changed[0] && strcmp(sel->changed, name)) {
		snprintf(why, whylen, "only one csnap:changed context at a time (%s and %s asked)",
			 sel->changed, name);
		return NBD_REP_ERR_TOO_BIG;
	}
	memcpy(sel->changed, name, sl + 1);
	return 0;
}

void nbd_meta_option(struct nbd_conn *c)
{
	const bool set = c->opt == NBD_OPT_SET_META_CONTEXT;
	const uint8_t *d = c->opt_data;
	const size_t len = c->opt_len;
	char name[NBD_MAX_STRING + 1], why[256 + VOL_NAME_MAX];
	struct meta_sel sel;
	struct volume *vol;
	uint32_t namelen, nq, err;
	size_t pos;

	if (set) {
		/* Replaced even when this option fails (proto.md).  */
		c->meta_alloc = false;
		c->meta_changed[0] = 0;
		c->meta_export[0] = 0;
		if (!c->structured) {
			nbd_hs_refuse(c, NBD_REP_ERR_INVALID,
				      "NBD_OPT_SET_META_CONTEXT needs NBD_OPT_STRUCTURED_REPLY first");
			return;
		}
	}
	if (len < 8 || (namelen = nbd_get32(d)) > len - 8) {
		nbd_hs_refuse(c, NBD_REP_ERR_INVALID, "malformed meta context option");
		return;
	}
	if (namelen > NBD_MAX_STRING) {
		nbd_hs_refuse(c, NBD_REP_ERR_TOO_BIG, "export name too long");
		return;
	}
	if (memchr(d + 4, 0, namelen)) {
		nbd_hs_refuse(c, NBD_REP_ERR_INVALID, "export name contains NUL");
		return;
	}
	memcpy(name, d + 4, namelen);
	name[namelen] = 0;
	pos = 4 + (size_t)namelen;
	nq = nbd_get32(d + pos);
	pos += 4;
	if (nq > NBD_MAX_META_QUERIES) {
		snprintf(why, sizeof why, "%u meta context queries: at most %u", nq,
			 NBD_MAX_META_QUERIES);
		nbd_hs_refuse(c, NBD_REP_ERR_TOO_BIG, why);
		return;
	}
	vol = nbd_server_lookup(c->srv, name);
	if (!vol) {
		char shown[80];

		str_escape_n(shown, sizeof shown, name, namelen);
		snprintf(why, sizeof why, "no export named \"%s\"", shown);
		nbd_hs_refuse(c, NBD_REP_ERR_UNKNOWN, why);
		return;
	}
	memset(&sel, 0, sizeof sel);
	if (nq == 0 && !set) {
		sel.alloc = true;
		sel.all_changed = vol->ops->changed != NULL;
	}
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t ql;

		if (len - pos < 4 || (ql = nbd_get32(d + pos)) > len - pos - 4) {
			nbd_hs_refuse(c, NBD_REP_ERR_INVALID, "meta context query runs past the option");
			return;
		}
		pos += 4;
		if (ql > NBD_MAX_STRING) {
			nbd_hs_refuse(c, NBD_REP_ERR_TOO_BIG, "meta context query too long");
			return;
		}
		err = meta_query(c, set, vol, (const char *)d + pos, ql, &sel, why, sizeof why);
		if (c->dead)
			return;
		if (err) {
			nbd_hs_refuse(c, err, why);
			return;
		}
		pos += ql;
	}
	if (pos != len) {
		nbd_hs_refuse(c, NBD_REP_ERR_INVALID, "meta context option longer than its queries");
		return;
	}
	if (sel.alloc)
		reply_ctx(c, set ? NBD_META_ID_ALLOC : 0, "base:allocation");
	if (sel.all_changed)
		list_all_changed(c);
	if (set) {
		if (sel.changed[0])
			reply_changed(c, NBD_META_ID_CHANGED, sel.changed);
		c->meta_alloc = sel.alloc;
		memcpy(c->meta_changed, sel.changed, sizeof c->meta_changed);
		snprintf(c->meta_export, sizeof c->meta_export, "%s", vol->name);
	}
	nbd_hs_reply(c, NBD_REP_ACK, NULL, 0);
}

void nbd_meta_enter(struct nbd_conn *c, const struct volume *vol)
{
	if (!c->meta_export[0] || strcmp(c->meta_export, vol->name)) {
		c->meta_alloc = false;
		c->meta_changed[0] = 0;
	}
}

/* ---- NBD_CMD_BLOCK_STATUS --------------------------------------------- */

/* Chunk layout: compact (structured replies) BLOCK_STATUS has 32-bit
 * extent lengths and flags; with extended headers BLOCK_STATUS_EXT has a
 * descriptor count and 64-bit both.  */
static size_t hdr_size(const struct nbd_conn *c)
{
	return c->extended ? NBD_EXT_CHUNK_HDR_SIZE : NBD_CHUNK_HDR_SIZE;
}

/* Longest extent one descriptor reports.  */
static uint64_t ext_max(const struct nbd_conn *c)
{
	return c->extended ? UINT64_MAX : EXT_MAX;
}

/* Starts a status chunk at the end of the reply; returns where its
 * descriptors go.  */
static uint8_t *chunk_begin(const struct nbd_conn *c, struct nbd_req *r, uint32_t id)
{
	uint8_t *p = (uint8_t *)r->vr.buf + r->bs_len + hdr_size(c);

	nbd_put32(p, id);
	return p + (c->extended ? 8 : 4);
}

static void put_desc(const struct nbd_conn *c, uint8_t *p, unsigned i, uint64_t len, uint32_t flags)
{
	CSNAP_ASSERT(len > 0 && len <= ext_max(c));
	if (c->extended) {
		nbd_put64(p + 16 * i, len);
		nbd_put64(p + 16 * i + 8, flags);
	} else {
		nbd_put32(p + 8 * i, (uint32_t)len);
		nbd_put32(p + 8 * i + 4, flags);
	}
}

static void chunk_end(const struct nbd_conn *c, struct nbd_req *r, unsigned n, bool done)
{
	uint8_t *h = (uint8_t *)r->vr.buf + r->bs_len;
	uint64_t plen = c->extended ? 8 + 16 * (uint64_t)n : 4 + 8 * (uint64_t)n;

	CSNAP_ASSERT(n >= 1 && n <= NBD_BS_MAX_EXTENTS);
	if (c->extended)
		nbd_put32(h + NBD_EXT_CHUNK_HDR_SIZE + 4, n);
	nbd_tx_chunk_header(c, r, h, done ? NBD_REPLY_FLAG_DONE : 0,
			    c->extended ? NBD_REPLY_TYPE_BLOCK_STATUS_EXT : NBD_REPLY_TYPE_BLOCK_STATUS,
			    plen);
	r->bs_len += hdr_size(c) + plen;
	CSNAP_ASSERT(r->bs_len <= r->buf_size);
}

static void put_alloc(struct nbd_conn *c, struct nbd_req *r, bool done)
{
	uint8_t *p = chunk_begin(c, r, NBD_META_ID_ALLOC);
	uint64_t rest = c->vol->size - r->vr.off, len = r->len;

	/* All data (see the top of the file).  Without REQ_ONE the one
	 * extent may run to the end of the export, as we know that.  */
	if (!(r->flags & NBD_CMD_FLAG_REQ_ONE))
		len = rest;
	if (len > ext_max(c))
		len = r->len <= ext_max(c) ? r->len : ext_max(c);
	put_desc(c, p, 0, len, 0);
	chunk_end(c, r, 1, done);
}

/* Byte offset of chunk CH, clipped to the volume's SIZE.  */
static uint64_t chunk_off(uint64_t ch, unsigned shift, uint64_t size)
{
	return ch > (size >> shift) ? size : (ch << shift < size ? ch << shift : size);
}

static void put_changed(struct nbd_conn *c, struct nbd_req *r, const struct vol_changed_req *q)
{
	uint8_t *p = chunk_begin(c, r, NBD_META_ID_CHANGED);
	/* validate() checked off + len <= size */
	const uint64_t size = c->vol->size, off = r->vr.off, want = off + r->len;
	const bool one = r->flags & NBD_CMD_FLAG_REQ_ONE;
	const unsigned sh = q->chunk_shift;
	uint64_t known = q->next == UINT64_MAX ? size : chunk_off(q->next, sh, size);
	uint64_t limit = one && want < known ? want : known, pos = off;
	unsigned n = 0;
	uint32_t i = 0;

	/* changed.c checked NEXT > the chunk holding OFF, so LIMIT > OFF and
	 * at least one extent goes out.  */
	CSNAP_ASSERT(limit > off);
	while (pos < limit && n < NBD_BS_MAX_EXTENTS) {
		while (i < q->n && chunk_off(q->r[i].start + q->r[i].count, sh, size) <= pos)
			i++;
		uint64_t rs = i < q->n ? chunk_off(q->r[i].start, sh, size) : limit, end;
		uint32_t fl;

		if (rs <= pos) {
			end = chunk_off(q->r[i].start + q->r[i].count, sh, size);
			fl = NBD_STATE_CSNAP_CHANGED;
		} else {
			end = rs;
			fl = 0;
		}
		if (end > limit)
			end = limit;
		if (end - pos > ext_max(c))
			end = pos + ext_max(c);
		put_desc(c, p, n, end - pos, fl);
		n++;
		pos = end;
		if (one || pos >= want)
			break;
	}
	chunk_end(c, r, n, true);
}

static void changed_done(struct vol_changed_req *q, int err, const char *why)
{
	struct nbd_req *r = (struct nbd_req *)((char *)q - offsetof(struct nbd_req, cq));
	struct nbd_conn *c = r->conn;

	if (c->dead) {
		nbd_tx_release(c, r);
		return;
	}
	if (err < 0) {
		log_warn("nbd %s: block status of %s since %s failed: %s", c->peer, c->vol->name,
			 q->from, why ? why : strerror(-err));
		r->wire_err = nbd_errno_to_wire(-err);
		r->err_msg = why;	/* copied by nbd_tx_reply() */
		nbd_tx_reply(c, r);
		return;
	}
	if (c->meta_alloc)
		put_alloc(c, r, false);
	put_changed(c, r, q);
	nbd_tx_reply(c, r);
}

void nbd_meta_block_status(struct nbd_conn *c, struct nbd_req *r)
{
	size_t need = 2 * (NBD_EXT_CHUNK_HDR_SIZE + 8) + 16 + 16 * NBD_BS_MAX_EXTENTS;

	CSNAP_ASSERT(c->structured && (c->meta_alloc || c->meta_changed[0]));
	r->vr.buf = nbd_buf_get(c->srv, need, &r->buf_size);
	if (!r->vr.buf) {
		r->wire_err = NBD_ENOMEM;
		r->err_msg = "out of memory";
		nbd_tx_reply(c, r);
		return;
	}
	c->inflight_bytes += r->buf_size;
	r->bs_len = 0;
	if (!c->meta_changed[0]) {
		put_alloc(c, r, true);
		nbd_tx_reply(c, r);
		return;
	}
	r->cq.from = c->meta_changed;
	r->cq.off = r->vr.off;
	r->cq.max_ranges = NBD_BS_MAX_RANGES;
	r->cq.done = changed_done;
	c->vol->ops->changed(c->vol, &r->cq);
}
