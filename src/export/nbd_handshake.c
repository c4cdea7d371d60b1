/*
 * src/export/nbd_handshake.c - the fixed newstyle handshake: greeting,
 * client flags, and option haggling up to NBD_OPT_GO or
 * NBD_OPT_EXPORT_NAME.
 *
 * Supported options: EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY,
 * EXTENDED_HEADERS, LIST/SET_META_CONTEXT (nbd_meta.c), STARTTLS (on a TCP listener with
 * TLS; the session itself is nbd_tls.c's).  Everything else gets
 * NBD_REP_ERR_UNSUP, which every client handles by falling back.
 * With TLS required, nothing but STARTTLS and ABORT is answered before TLS
 * (NBD_REP_ERR_TLS_REQD; EXPORT_NAME, which has no error reply, ends the
 * connection), so no export name or size is ever sent in clear.
 * Violations a reply cannot express (bad magic, unknown client flags, an
 * unknown name with EXPORT_NAME, too many options) end the connection.
 *
 * Every length comes from the client: each is checked against the buffer
 * it is copied into before the copy (names: NBD_MAX_STRING, options:
 * NBD_MAX_OPT_LEN, replies: the size of reply()'s buffer).
 */
#include "src/export/nbd_conn.h"
#include "src/export/nbd_server.h"

#include "utils/assert.h"
#include "utils/escape.h"
#include "utils/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t tx_flags(const struct nbd_conn *c, const struct volume *vol)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_CAN_MULTI_CONN;

	/* Reads always answer in one chunk: DF costs nothing.  */
	if (c->structured)
		f |= NBD_FLAG_SEND_DF;
	if (vol->flags & VOL_READONLY)
		f |= NBD_FLAG_READ_ONLY;
	else
		f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
	return f;
}

void nbd_hs_greet(struct nbd_conn *c)
{
	uint8_t g[18];

	nbd_put64(g, NBD_MAGIC);
	nbd_put64(g + 8, NBD_IHAVEOPT);
	nbd_put16(g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	c->state = NBD_ST_CLIENT_FLAGS;
	c->hdr_want = 4;
	nbd_conn_send_copy(c, g, sizeof g);
}

void nbd_hs_client_flags(struct nbd_conn *c)
{
	uint32_t flags = nbd_get32(c->hdr);

	if (flags & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		nbd_conn_kill(c, "client sent unknown handshake flags");
		return;
	}
	c->fixed_newstyle = flags & NBD_FLAG_C_FIXED_NEWSTYLE;
	c->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
	c->state = NBD_ST_OPT_HEADER;
	c->hdr_want = 16;
}

static void reply(struct nbd_conn *c, uint32_t type, const void *data, size_t len)
{
	uint8_t buf[20 + NBD_MAX_STRING + 64];

	if (len > sizeof buf - 20) {
		nbd_conn_kill(c, "option reply too long");
		return;
	}
	nbd_put64(buf, NBD_REP_MAGIC);
	nbd_put32(buf + 8, c->opt);
	nbd_put32(buf + 12, type);
	nbd_put32(buf + 16, (uint32_t)len);
	if (len)
		memcpy(buf + 20, data, len);
	nbd_conn_send_copy(c, buf, 20 + len);
}

static void reply_err(struct nbd_conn *c, uint32_t type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_err(struct nbd_conn *c, uint32_t type, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof msg)
		n = sizeof msg - 1;
	log_debug("nbd %s: option %u refused: %s", c->peer, c->opt, msg);
	reply(c, type, msg, (size_t)n);
}

void nbd_hs_reply(struct nbd_conn *c, uint32_t type, const void *data, size_t len)
{
	reply(c, type, data, len);
}

void nbd_hs_refuse(struct nbd_conn *c, uint32_t type, const char *msg)
{
	reply_err(c, type, "%s", msg);
}

static void opt_starttls(struct nbd_conn *c)
{
	if (c->opt_len) {
		reply_err(c, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
		return;
	}
	if (c->tls_up) {
		reply_err(c, NBD_REP_ERR_INVALID, "TLS is already active");
		return;
	}
	if (c->tls_mode == NBD_TLS_OFF || !c->tls_creds) {
		reply_err(c, NBD_REP_ERR_UNSUP, "TLS is not enabled on this export (export_tls)");
		return;
	}
	if (nbd_tls_start(c) < 0) {
		reply_err(c, NBD_REP_ERR_PLATFORM, "cannot start a TLS session");
		return;
	}
	/* Nothing negotiated in clear survives STARTTLS (proto.md).  */
	c->structured = false;
	c->extended = false;
	c->meta_alloc = false;
	c->meta_changed[0] = 0;
	c->meta_export[0] = 0;
	/* In clear, before the handshake: it starts once this is sent.  */
	reply(c, NBD_REP_ACK, NULL, 0);
}

/* TLS required and not up: false if option C->opt must not run.  */
static bool tls_allows(struct nbd_conn *c)
{
	if (c->tls_mode != NBD_TLS_REQUIRE || c->tls_up)
		return true;
	switch (c->opt) {
	case NBD_OPT_STARTTLS:
	case NBD_OPT_ABORT:
		return true;
	case NBD_OPT_EXPORT_NAME:
		nbd_conn_kill(c, "NBD_OPT_EXPORT_NAME before TLS (export_tls = require)");
		return false;
	default:
		reply_err(c, NBD_REP_ERR_TLS_REQD, "TLS is required: send NBD_OPT_STARTTLS first");
		return false;
	}
}

static void next_option(struct nbd_conn *c)
{
	free(c->opt_data);
	c->opt_data = NULL;
	if (c->state == NBD_ST_OPT_DATA)
		c->state = NBD_ST_OPT_HEADER;
	c->hdr_want = 16;
}

static void enter_transmission(struct nbd_conn *c, struct volume *vol)
{
	nbd_meta_enter(c, vol);
	c->vol = volume_get(vol);
	volume_attach(vol);
	evloop_timer_cancel(c->lp, &c->hs_timer);
	c->state = NBD_ST_TX_HEADER;
	c->hdr_want = nbd_req_hdr_size(c);
	log_debug("nbd %s: serving export %s%s", c->peer, vol->name,
		  c->extended ? " (extended headers)" : c->structured ? " (structured replies)" : "");
	nbd_conn_enter_tx(c);
}

static void opt_export_name(struct nbd_conn *c)
{
	char name[NBD_MAX_STRING + 1];
	struct volume *vol;
	uint8_t r[8 + 2 + 124];

	/* nbd_hs_option_data() refused longer names (this option has no
	 * error reply).  */
	CSNAP_ASSERT(c->opt_len < sizeof name);
	if (memchr(c->opt_data, 0, c->opt_len)) {
		nbd_conn_kill(c, "export name contains NUL");
		return;
	}
	memcpy(name, c->opt_data, c->opt_len);
	name[c->opt_len] = 0;
	vol = nbd_server_lookup(c->srv, name);
	if (!vol) {
		char shown[80];

		str_escape_n(shown, sizeof shown, (const char *)c->opt_data, c->opt_len);
		nbd_conn_kill(c, "client asked for unknown export (NBD_OPT_EXPORT_NAME)");
		log_info("nbd: unknown export \"%s\"", shown);
		return;
	}
	memset(r, 0, sizeof r);
	nbd_put64(r, vol->size);
	nbd_put16(r + 8, tx_flags(c, vol));
	if (nbd_conn_send_copy(c, r, c->no_zeroes ? 10 : sizeof r) < 0)
		return;
	next_option(c);
	enter_transmission(c, vol);
}

static void list_one(struct nbd_conn *c, struct volume *vol)
{
	uint8_t buf[4 + 2 * VOL_NAME_MAX];
	size_t nl = strnlen(vol->name, VOL_NAME_MAX), dl = strnlen(vol->description, VOL_NAME_MAX);

	/* Both are NUL-terminated arrays of VOL_NAME_MAX (volume.h).  */
	CSNAP_ASSERT(nl < VOL_NAME_MAX && dl < VOL_NAME_MAX);
	nbd_put32(buf, (uint32_t)nl);
	memcpy(buf + 4, vol->name, nl);
	memcpy(buf + 4 + nl, vol->description, dl);
	reply(c, NBD_REP_SERVER, buf, 4 + nl + dl);
}

static void opt_list(struct nbd_conn *c)
{
	if (c->opt_len) {
		reply_err(c, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
		return;
	}
	nbd_server_each(c->srv, list_one, c);
	reply(c, NBD_REP_ACK, NULL, 0);
}

static void info_string(struct nbd_conn *c, uint16_t type, const char *s)
{
	uint8_t buf[2 + VOL_NAME_MAX];
	size_t n = strnlen(s, VOL_NAME_MAX);

	/* S is a volume's name or description: under VOL_NAME_MAX.  */
	CSNAP_ASSERT(n < VOL_NAME_MAX);
	nbd_put16(buf, type);
	memcpy(buf + 2, s, n);
	reply(c, NBD_REP_INFO, buf, 2 + n);
}

static void opt_info_go(struct nbd_conn *c)
{
	const uint8_t *d = c->opt_data;
	char name[NBD_MAX_STRING + 1];
	uint32_t namelen;
	uint16_t nreq;
	struct volume *vol;
	uint8_t buf[14];

	if (c->opt_len < 6 || (namelen = nbd_get32(d)) > c->opt_len - 6) {
		reply_err(c, NBD_REP_ERR_INVALID, "malformed NBD_OPT_INFO/GO");
		return;
	}
	nreq = nbd_get16(d + 4 + namelen);
	if (c->opt_len != 4 + namelen + 2 + 2u * nreq) {
		reply_err(c, NBD_REP_ERR_INVALID, "NBD_OPT_INFO/GO length does not match its contents");
		return;
	}
	/* The protocol caps strings at NBD_MAX_STRING and allows
	 * NBD_REP_ERR_TOO_BIG above it; the option itself may be longer
	 * (NBD_MAX_OPT_LEN), so this check is what bounds the copy.  */
	if (namelen > NBD_MAX_STRING) {
		reply_err(c, NBD_REP_ERR_TOO_BIG, "export name longer than %u bytes", NBD_MAX_STRING);
		return;
	}
	if (memchr(d + 4, 0, namelen)) {
		reply_err(c, NBD_REP_ERR_INVALID, "export name contains NUL");
		return;
	}
	CSNAP_ASSERT(namelen < sizeof name);
	memcpy(name, d + 4, namelen);
	name[namelen] = 0;
	vol = nbd_server_lookup(c->srv, name);
	if (!vol) {
		char shown[80];

		str_escape_n(shown, sizeof shown, (const char *)d + 4, namelen);
		reply_err(c, NBD_REP_ERR_UNKNOWN, "no export named \"%s\"", shown);
		return;
	}
	/* Each kind of information is sent once however often it is asked
	 * for: the replies to one option stay small (a client repeating
	 * NBD_INFO_NAME 2,500 times made the export queue 700 KB each).  */
	bool want_name = false, want_desc = false;

	for (unsigned i = 0; i < nreq; i++) {
		uint16_t type = nbd_get16(d + 4 + namelen + 2 + 2 * i);

		if (type == NBD_INFO_NAME)
			want_name = true;
		else if (type == NBD_INFO_DESCRIPTION)
			want_desc = true;
		/* others: ignored, as the protocol asks */
	}
	if (want_name)
		info_string(c, NBD_INFO_NAME, vol->name);
	if (want_desc && vol->description[0])
		info_string(c, NBD_INFO_DESCRIPTION, vol->description);
	/* Block sizes are sent unasked: any client may use them, and ours
	 * are the protocol's defaults except for the preferred size.  */
	nbd_put16(buf, NBD_INFO_BLOCK_SIZE);
	nbd_put32(buf + 2, 1);
	nbd_put32(buf + 6, vol->pref_block ? vol->pref_block : 4096);
	nbd_put32(buf + 10, NBD_SERVER_MAX_PAYLOAD);
	reply(c, NBD_REP_INFO, buf, 14);
	nbd_put16(buf, NBD_INFO_EXPORT);
	nbd_put64(buf + 2, vol->size);
	nbd_put16(buf + 10, tx_flags(c, vol));
	reply(c, NBD_REP_INFO, buf, 12);
	reply(c, NBD_REP_ACK, NULL, 0);
	if (c->opt == NBD_OPT_GO && !c->dead) {
		next_option(c);
		enter_transmission(c, vol);
	}
}

void nbd_hs_option_header(struct nbd_conn *c)
{
	if (nbd_get64(c->hdr) != NBD_IHAVEOPT) {
		nbd_conn_kill(c, "bad option magic");
		return;
	}
	c->opt = nbd_get32(c->hdr + 8);
	c->opt_len = nbd_get32(c->hdr + 12);
	c->opt_have = 0;
	if (++c->nopts > NBD_MAX_OPTIONS) {
		nbd_conn_kill(c, "too many options");
		return;
	}
	if (c->opt_len > NBD_MAX_OPT_LEN) {
		if (c->opt == NBD_OPT_EXPORT_NAME) {
			nbd_conn_kill(c, "export name too long");
			return;
		}
		/* Read and drop the data, then refuse (opt_data NULL).  */
		c->opt_data = NULL;
	} else {
		c->opt_data = malloc(c->opt_len ? c->opt_len : 1);
		if (!c->opt_data) {
			nbd_conn_kill(c, "out of memory");
			return;
		}
	}
	c->state = NBD_ST_OPT_DATA;
	if (c->opt_len == 0)
		nbd_hs_option_data(c);
}

void nbd_hs_option_data(struct nbd_conn *c)
{
	if (!c->opt_data) {
		reply_err(c, NBD_REP_ERR_TOO_BIG, "option data too long");
		next_option(c);
		return;
	}
	if (!c->fixed_newstyle && c->opt != NBD_OPT_EXPORT_NAME) {
		/* Old newstyle clients cannot take error replies.  */
		nbd_conn_kill(c, "option needs the fixed newstyle handshake");
		return;
	}
	if (!tls_allows(c)) {
		if (!c->dead)
			next_option(c);
		return;
	}
	switch (c->opt) {
	case NBD_OPT_EXPORT_NAME:
		if (c->opt_len > NBD_MAX_STRING) {
			nbd_conn_kill(c, "export name too long");
			return;
		}
		if (c->extended) {
			/* It cannot say so: the client would expect compact
			 * headers after its reply.  */
			nbd_conn_kill(c, "NBD_OPT_EXPORT_NAME after NBD_OPT_EXTENDED_HEADERS");
			return;
		}
		opt_export_name(c);
		return;
	case NBD_OPT_ABORT:
		reply(c, NBD_REP_ACK, NULL, 0);
		next_option(c);
		nbd_conn_drain(c);
		return;
	case NBD_OPT_LIST:
		opt_list(c);
		break;
	case NBD_OPT_STARTTLS:
		opt_starttls(c);
		break;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		opt_info_go(c);
		if (c->state == NBD_ST_TX_HEADER || c->dead)
			return;
		break;
	case NBD_OPT_STRUCTURED_REPLY:
		if (c->opt_len) {
			reply_err(c, NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
			break;
		}
		if (c->extended) {
			reply_err(c, NBD_REP_ERR_EXT_HEADER_REQD,
				  "extended headers are negotiated: no going back to structured replies");
			break;
		}
		c->structured = true;
		reply(c, NBD_REP_ACK, NULL, 0);
		break;
	case NBD_OPT_EXTENDED_HEADERS:
		if (c->opt_len) {
			reply_err(c, NBD_REP_ERR_INVALID, "NBD_OPT_EXTENDED_HEADERS takes no data");
			break;
		}
		c->extended = true;
		c->structured = true;
		reply(c, NBD_REP_ACK, NULL, 0);
		break;
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		nbd_meta_option(c);
		if (c->dead)
			return;
		break;
	default:
		reply_err(c, NBD_REP_ERR_UNSUP, "option %u not supported", c->opt);
		break;
	}
	next_option(c);
}
