/*
 * src/export/nbd_tls.c - TLS under an NBD connection (GnuTLS): the
 * credentials of a TCP listener (PSK file in psktool's format, X.509
 * files as nbdkit's --tls-certificates directory), the session started by
 * NBD_OPT_STARTTLS, and the record layer that replaces recv()/sendmsg()
 * once the handshake is done.  The protocol decisions (what is refused
 * before TLS) are in nbd_handshake.c; flow control and parsing stay in
 * nbd_conn.c, unchanged for TLS.
 *
 * Invariants:
 *  - Non-blocking throughout: GnuTLS reads and writes the socket through
 *    tls_pull()/tls_push() with MSG_DONTWAIT; GNUTLS_E_AGAIN becomes
 *    EAGAIN, and gnutls_record_get_direction() says which event the
 *    session waits for (nbd_tls_events()).
 *  - The handshake starts only once the plaintext ACK of STARTTLS is
 *    sent (no TLS byte can overtake it), and input the client sent after
 *    the option is handed to GnuTLS first (t->pre), never parsed as
 *    plaintext.
 *  - Input GnuTLS has already read from the socket does not make the
 *    socket readable: nbd_tls_buffered() tells the reader to go on.
 *  - A record that gnutls_record_send() could not send at once
 *    (GNUTLS_E_AGAIN) is retried with the same buffer and length
 *    (t->send_pending; the bounce buffer is untouched until then), as
 *    GnuTLS requires.
 *  - The handshake is bounded by the connection's handshake deadline
 *    (NBD_HANDSHAKE_MS, armed at accept, cancelled at NBD_OPT_GO).
 */
#include "src/export/nbd_conn.h"

#include "utils/assert.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The largest plaintext of one TLS record.  */
#define TLS_RECORD		16384
/* Non-fatal GnuTLS results (warning alerts) taken in a row before
 * giving up on a call.  */
#define TLS_MAX_RETRIES		16
#define PSK_FILE_MAX		(1024 * 1024)

struct nbd_tls_creds {
	gnutls_psk_server_credentials_t psk;
	gnutls_certificate_credentials_t x509;
	gnutls_priority_t prio;
	bool verify_peer;
};

struct nbd_tls_conn {
	gnutls_session_t s;
	uint8_t *pre;			/* input staged after STARTTLS */
	size_t pre_pos, pre_len;
	uint8_t bounce[TLS_RECORD];	/* the record being sent */
	size_t send_pending;		/* its length after GNUTLS_E_AGAIN */
	bool hs_wants_write;		/* handshake: direction of E_AGAIN */
	bool read_wants_write;		/* record_recv got E_AGAIN to write */
	bool eof;			/* end of stream seen behind data */
};

/* ---- credentials ------------------------------------------------------ */

/* GnuTLS reads the PSK file at each handshake (so keys can be changed
 * without a restart); this checks it once at start, with a clear error,
 * since a broken file would otherwise only show as refused clients.  */
static int psk_file_check(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int lineno = 0, keys = 0, rc = 0;

	if (!f)
		return err_set(errno, "TLS PSK file %s: %s", path, strerror(errno));
	while (fgets(line, sizeof line, f)) {
		size_t n = strlen(line);
		char *colon;

		lineno++;
		if (n && line[n - 1] == '\n')
			line[--n] = 0;
		if (n && line[n - 1] == '\r')
			line[--n] = 0;
		if (!n)
			continue;
		colon = strchr(line, ':');
		size_t hex = colon ? strlen(colon + 1) : 0;

		if (!colon || colon == line || !hex || hex % 2 ||
		    strspn(colon + 1, "0123456789abcdefABCDEF") != hex) {
			rc = err_set(EINVAL, "TLS PSK file %s:%d: not username:hexkey (psktool's format)",
				     path, lineno);
			break;
		}
		keys++;
		if (ftell(f) > PSK_FILE_MAX) {
			rc = err_set(EFBIG, "TLS PSK file %s: larger than %d bytes", path, PSK_FILE_MAX);
			break;
		}
	}
	if (!rc && ferror(f))
		rc = err_set(EIO, "TLS PSK file %s: read error", path);
	if (!rc && !keys)
		rc = err_set(EINVAL, "TLS PSK file %s: no key in it", path);
	fclose(f);
	return rc;
}

static int cert_path(char *buf, size_t size, const char *dir, const char *file)
{
	if (snprintf(buf, size, "%s/%s", dir, file) >= (int)size)
		return err_set(ENAMETOOLONG, "TLS certificates: path too long: %s/%s", dir, file);
	return 0;
}

static int x509_load(struct nbd_tls_creds *cr, const char *dir, bool verify_peer)
{
	char ca[PATH_MAX], crl[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	int r;

	if (cert_path(ca, sizeof ca, dir, "ca-cert.pem") < 0 ||
	    cert_path(crl, sizeof crl, dir, "ca-crl.pem") < 0 ||
	    cert_path(cert, sizeof cert, dir, "server-cert.pem") < 0 ||
	    cert_path(key, sizeof key, dir, "server-key.pem") < 0)
		return -ENAMETOOLONG;
	if ((r = gnutls_certificate_allocate_credentials(&cr->x509)) < 0)
		return err_set(ENOMEM, "TLS: %s", gnutls_strerror(r));
	if (access(ca, F_OK) == 0) {
		r = gnutls_certificate_set_x509_trust_file(cr->x509, ca, GNUTLS_X509_FMT_PEM);
		if (r <= 0)
			return err_set(EINVAL, "TLS CA certificate %s: %s", ca,
				       r < 0 ? gnutls_strerror(r) : "no certificate in it");
	} else if (verify_peer) {
		return err_set(ENOENT, "TLS: verifying clients needs %s: %s", ca, strerror(errno));
	}
	if (access(crl, F_OK) == 0 &&
	    (r = gnutls_certificate_set_x509_crl_file(cr->x509, crl, GNUTLS_X509_FMT_PEM)) < 0)
		return err_set(EINVAL, "TLS revocation list %s: %s", crl, gnutls_strerror(r));
	if (access(cert, R_OK) < 0)
		return err_set(errno, "TLS server certificate %s: %s", cert, strerror(errno));
	if (access(key, R_OK) < 0)
		return err_set(errno, "TLS server key %s: %s", key, strerror(errno));
	r = gnutls_certificate_set_x509_key_file(cr->x509, cert, key, GNUTLS_X509_FMT_PEM);
	if (r < 0)
		return err_set(EINVAL, "TLS server certificate %s with key %s: %s", cert, key,
			       gnutls_strerror(r));
	gnutls_certificate_set_known_dh_params(cr->x509, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

/* Does GnuTLS put AES-GCM before ChaCha20 by default (it does where AES
 * is in hardware)?  A TLS 1.3 external PSK is bound to SHA-256, which
 * rules out AES-256-GCM-SHA384, the first choice, and ChaCha20 came
 * next: 0.7 s of the export's CPU to read 256 MiB, against 0.2 s with
 * AES-128-GCM (0.07 s plain).  Where AES is first, the PSK priorities
 * move ChaCha20 after it; elsewhere they keep GnuTLS's order.  */
static bool aes_first(void)
{
	gnutls_priority_t p;
	bool aes = false;

	if (gnutls_priority_init(&p, NULL, NULL) < 0)	/* the default */
		return false;
	for (unsigned i = 0;; i++) {
		unsigned sidx;
		unsigned char id[2];
		gnutls_kx_algorithm_t kx;
		gnutls_cipher_algorithm_t ci;
		gnutls_mac_algorithm_t mac;
		gnutls_protocol_t ver;
		int r = gnutls_priority_get_cipher_suite_index(p, i, &sidx);

		if (r == GNUTLS_E_UNKNOWN_CIPHER_SUITE)
			continue;
		if (r < 0 || !gnutls_cipher_suite_info(sidx, id, &kx, &ci, &mac, &ver))
			break;
		if (ci == GNUTLS_CIPHER_CHACHA20_POLY1305)
			break;
		if (ci == GNUTLS_CIPHER_AES_128_GCM || ci == GNUTLS_CIPHER_AES_256_GCM) {
			aes = true;
			break;
		}
	}
	gnutls_priority_deinit(p);
	return aes;
}

int nbd_tls_creds_load(const struct nbd_tls_opts *o, struct nbd_tls_creds **out)
{
	struct nbd_tls_creds *cr = calloc(1, sizeof *cr);
	int r;

	if (!cr)
		return err_set(ENOMEM, "out of memory");
	cr->verify_peer = o->verify_peer;
	if (!o->psk_file && !o->cert_dir) {
		r = err_set(EINVAL, "TLS needs a PSK file or a certificates directory");
		goto fail;
	}
	if (o->psk_file) {
		if ((r = psk_file_check(o->psk_file)) < 0)
			goto fail;
		if ((r = gnutls_psk_allocate_server_credentials(&cr->psk)) < 0 ||
		    (r = gnutls_psk_set_server_credentials_file(cr->psk, o->psk_file)) < 0) {
			r = err_set(EINVAL, "TLS PSK file %s: %s", o->psk_file, gnutls_strerror(r));
			goto fail;
		}
	}
	if (o->cert_dir && (r = x509_load(cr, o->cert_dir, o->verify_peer)) < 0)
		goto fail;
	/* The system's priorities (its crypto policy), plus the PSK key
	 * exchanges they leave out, in the server's order.  */
	r = gnutls_priority_init2(&cr->prio,
				  !o->psk_file ? "%SERVER_PRECEDENCE" :
				  aes_first() ? "+ECDHE-PSK:+DHE-PSK:+PSK:-CHACHA20-POLY1305:"
						"+CHACHA20-POLY1305:%SERVER_PRECEDENCE" :
				  "+ECDHE-PSK:+DHE-PSK:+PSK:%SERVER_PRECEDENCE",
				  NULL, GNUTLS_PRIORITY_INIT_DEF_APPEND);
	if (r < 0) {
		cr->prio = NULL;
		r = err_set(EINVAL, "TLS priorities: %s", gnutls_strerror(r));
		goto fail;
	}
	*out = cr;
	return 0;
fail:
	nbd_tls_creds_free(cr);
	return r;
}

void nbd_tls_creds_free(struct nbd_tls_creds *cr)
{
	if (!cr)
		return;
	if (cr->psk)
		gnutls_psk_free_server_credentials(cr->psk);
	if (cr->x509)
		gnutls_certificate_free_credentials(cr->x509);
	if (cr->prio)
		gnutls_priority_deinit(cr->prio);
	free(cr);
}

/* ---- transport -------------------------------------------------------- */

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct nbd_conn *c = p;
	struct nbd_tls_conn *t = c->tls;
	ssize_t n;

	if (t->pre_pos < t->pre_len) {
		n = (ssize_t)(t->pre_len - t->pre_pos < len ? t->pre_len - t->pre_pos : len);
		memcpy(buf, t->pre + t->pre_pos, (size_t)n);
		t->pre_pos += (size_t)n;
		if (t->pre_pos == t->pre_len) {
			free(t->pre);
			t->pre = NULL;
			t->pre_pos = t->pre_len = 0;
		}
		return n;
	}
	n = recv(c->fd, buf, len, MSG_DONTWAIT);
	if (n < 0)
		gnutls_transport_set_errno(t->s, errno);
	return n;
}

/* Only called if GnuTLS wants to wait (it does not, non-blocking): says
 * whether input is there now.  */
static int tls_pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct nbd_conn *c = p;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	(void)ms;
	if (c->tls->pre_pos < c->tls->pre_len)
		return 1;
	return poll(&pfd, 1, 0);
}

static ssize_t tls_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct nbd_conn *c = p;
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0)
		gnutls_transport_set_errno(c->tls->s, errno);
	return n;
}

/* ---- session ---------------------------------------------------------- */

int nbd_tls_start(struct nbd_conn *c)
{
	const struct nbd_tls_creds *cr = c->tls_creds;
	struct nbd_tls_conn *t;
	size_t staged = c->in_end - c->in_pos;
	int r;

	CSNAP_ASSERT(cr && !c->tls && !c->tls_up);	/* STARTTLS refused otherwise */
	t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	if (staged) {
		t->pre = malloc(staged);
		if (!t->pre) {
			free(t);
			return -ENOMEM;
		}
		memcpy(t->pre, c->in + c->in_pos, staged);
		t->pre_len = staged;
	}
	r = gnutls_init(&t->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (r < 0) {
		free(t->pre);
		free(t);
		return -ENOMEM;
	}
	r = gnutls_priority_set(t->s, cr->prio);
	if (r >= 0 && cr->psk)
		r = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK, cr->psk);
	if (r >= 0 && cr->x509) {
		r = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, cr->x509);
		if (cr->verify_peer) {
			gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
			gnutls_session_set_verify_cert(t->s, NULL, 0);
		}
	}
	if (r < 0) {
		log_warn("nbd %s: TLS session: %s", c->peer, gnutls_strerror(r));
		gnutls_deinit(t->s);
		free(t->pre);
		free(t);
		return -EINVAL;
	}
	gnutls_transport_set_ptr(t->s, c);
	gnutls_transport_set_pull_function(t->s, tls_pull);
	gnutls_transport_set_pull_timeout_function(t->s, tls_pull_timeout);
	gnutls_transport_set_vec_push_function(t->s, tls_push);
	c->tls = t;
	c->in_pos = c->in_end = 0;
	c->state = NBD_ST_TLS_HS;
	return 0;
}

bool nbd_tls_handshake(struct nbd_conn *c)
{
	struct nbd_tls_conn *t = c->tls;
	char why[160];
	int r;

	CSNAP_ASSERT(c->state == NBD_ST_TLS_HS && !c->out_head);	/* c->tls set with the state */
	for (int tries = 0;; tries++) {
		r = gnutls_handshake(t->s);
		if (r == GNUTLS_E_INTERRUPTED ||
		    (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r) &&
		     tries < TLS_MAX_RETRIES))
			continue;
		break;
	}
	if (r == GNUTLS_E_AGAIN) {
		t->hs_wants_write = gnutls_record_get_direction(t->s) == 1;
		return false;
	}
	if (r < 0) {
		snprintf(why, sizeof why, "TLS handshake failed: %s", gnutls_strerror(r));
		nbd_conn_kill(c, why);
		return false;
	}
	c->tls_up = true;
	t->hs_wants_write = false;
	c->state = NBD_ST_OPT_HEADER;
	c->hdr_have = 0;
	c->hdr_want = 16;
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		const char *user = gnutls_psk_server_get_username(t->s);
		char *desc = gnutls_session_get_desc(t->s);

		log_debug("nbd %s: TLS up: %s%s%s", c->peer, desc ? desc : "?",
			  user ? ", PSK user " : "", user ? user : "");
		gnutls_free(desc);
	}
	return true;
}

ssize_t nbd_tls_recv(struct nbd_conn *c, void *buf, size_t len)
{
	struct nbd_tls_conn *t = c->tls;
	size_t got = 0;
	int retries = 0;
	char why[160];

	CSNAP_ASSERT(c->tls_up);	/* tls_up: c->tls is set */
	t->read_wants_write = false;
	if (t->eof)
		return 0;
	/* Whole records until the buffer is full or the socket empty: one
	 * record (16 KiB) per call would parse and wake far more often.  */
	while (got < len) {
		ssize_t n = gnutls_record_recv(t->s, (uint8_t *)buf + got, len - got);

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
			/* A client may close without close_notify: the
			 * NBD protocol has its own end (NBD_CMD_DISC).  */
			if (got) {
				t->eof = true;
				break;
			}
			return 0;
		}
		if (n == GNUTLS_E_AGAIN) {
			t->read_wants_write = gnutls_record_get_direction(t->s) == 1;
			if (got)
				break;
			errno = EAGAIN;
			return -1;
		}
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == GNUTLS_E_REHANDSHAKE) {
			nbd_conn_kill(c, "client asked for TLS renegotiation");
		} else if (!gnutls_error_is_fatal((int)n) && ++retries < TLS_MAX_RETRIES) {
			continue;	/* a warning alert */
		} else {
			snprintf(why, sizeof why, "TLS: %s", gnutls_strerror((int)n));
			nbd_conn_kill(c, why);
		}
		errno = ECONNRESET;
		return -1;
	}
	return (ssize_t)got;
}

/* Copies up to one record's worth of IOV, from byte SKIP on, into DST.  */
static size_t gather(uint8_t *dst, const struct iovec *iov, size_t niov, size_t skip)
{
	size_t len = 0;

	for (size_t i = 0; i < niov && len < TLS_RECORD; i++) {
		size_t n = iov[i].iov_len;

		if (skip >= n) {
			skip -= n;
			continue;
		}
		n -= skip;
		if (n > TLS_RECORD - len)
			n = TLS_RECORD - len;
		memcpy(dst + len, (const uint8_t *)iov[i].iov_base + skip, n);
		len += n;
		skip = 0;
	}
	return len;
}

ssize_t nbd_tls_sendv(struct nbd_conn *c, const struct iovec *iov, size_t niov)
{
	struct nbd_tls_conn *t = c->tls;
	size_t total = 0, sent = 0;
	char why[160];

	CSNAP_ASSERT(c->tls_up);	/* tls_up: c->tls is set */
	for (size_t i = 0; i < niov; i++)
		total += iov[i].iov_len;
	/* A pending record holds the first bytes of what is still queued.  */
	CSNAP_ASSERT(t->send_pending <= total);
	while (sent < total) {
		size_t len = t->send_pending ? t->send_pending : gather(t->bounce, iov, niov, sent);
		ssize_t n;

		do
			n = gnutls_record_send(t->s, t->bounce, len);
		while (n == GNUTLS_E_INTERRUPTED);
		if (n == GNUTLS_E_AGAIN) {
			t->send_pending = len;
			if (sent)
				break;
			errno = EAGAIN;
			return -1;
		}
		t->send_pending = 0;
		if (n < 0) {
			snprintf(why, sizeof why, "TLS: %s", gnutls_strerror((int)n));
			nbd_conn_kill(c, why);
			errno = ECONNRESET;
			return -1;
		}
		sent += (size_t)n;
	}
	return (ssize_t)sent;
}

bool nbd_tls_buffered(const struct nbd_conn *c)
{
	const struct nbd_tls_conn *t = c->tls;

	return c->tls_up && t &&
	       (t->eof || t->pre_pos < t->pre_len || gnutls_record_check_pending(t->s) > 0);
}

uint32_t nbd_tls_events(const struct nbd_conn *c)
{
	const struct nbd_tls_conn *t = c->tls;

	if (!t)
		return 0;
	if (c->state == NBD_ST_TLS_HS)
		return t->hs_wants_write ? EPOLLOUT : EPOLLIN;
	return t->read_wants_write ? EPOLLOUT : 0;
}

bool nbd_tls_read_wants_write(const struct nbd_conn *c)
{
	return c->tls && c->tls->read_wants_write;
}

void nbd_tls_bye(struct nbd_conn *c)
{
	if (c->tls_up && c->tls && !c->tls->send_pending)
		gnutls_bye(c->tls->s, GNUTLS_SHUT_WR);	/* one try, non-blocking */
}

void nbd_tls_free(struct nbd_conn *c)
{
	struct nbd_tls_conn *t = c->tls;

	if (!t)
		return;
	gnutls_deinit(t->s);
	free(t->pre);
	free(t);
	c->tls = NULL;
	c->tls_up = false;
}
