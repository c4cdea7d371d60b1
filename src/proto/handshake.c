/*
 * src/proto/handshake.c - the handshake's message bodies and the HMAC
 * it carries.
 *
 * A connection opens with the server's CHALLENGE (magic, the versions it
 * speaks, the store's uuid, a nonce); the client answers AUTH (the
 * version it picked, its nonce, an HMAC-SHA256 over both nonces with the
 * store's secret), the server proves the secret back in its AUTH reply,
 * and the client says who it is with IDENTIFY (which volume, host,
 * snapshot, name); the reply gives the volume's geometry.  What the
 * master reads of a client not yet identified is bounded by
 * PROTO_HANDSHAKE_MAX_PAYLOAD (src/server/conn.c).
 *
 * Invariants: a challenge's version range is not empty and does not
 * start at 0; an identify names a known volume kind, and a snapshot
 * (valid name) exactly for PROTO_VOL_SNAPSHOT; the MACs bind the role
 * ('C' client, 'S' server), the version and both nonces, and are
 * compared in constant time.
 */
#include "src/proto/codec.h"

#include "utils/err.h"

#include <errno.h>
#include <stdlib.h>

#include <sodium.h>

/* ---- CHALLENGE: server to client, no reply --------------------------------- */

int enc_challenge(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	const struct proto_challenge *c = &m->u.challenge;

	if (reply)
		return err_set(EINVAL, "challenge has no reply");
	wr_u64(w, PROTO_MAGIC);
	wr_u16(w, c->version_min);
	wr_u16(w, c->version_max);
	wr_bytes(w, c->store.b, 16);
	wr_bytes(w, c->nonce, PROTO_NONCE_LEN);
	return 0;
}

void dec_challenge(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	struct proto_challenge *c = &m->u.challenge;

	if (reply) {
		rd_fail(r, "challenge has no reply");
		return;
	}
	if (rd_u64(r, "magic") != PROTO_MAGIC && !r->bad)
		rd_fail(r, "bad magic: not a csnap server");
	c->version_min = rd_u16(r, "version");
	c->version_max = rd_u16(r, "version");
	rd_bytes(r, c->store.b, 16, "store uuid");
	rd_bytes(r, c->nonce, PROTO_NONCE_LEN, "nonce");
	if (!r->bad && (c->version_min == 0 || c->version_min > c->version_max))
		rd_fail(r, "invalid version range");
}

/* ---- AUTH: version, client nonce, client MAC; the reply is the server's MAC - */

int enc_auth(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	if (reply) {
		wr_bytes(w, m->u.auth_ok.mac, PROTO_MAC_LEN);
		return 0;
	}
	wr_u16(w, m->u.auth.version);
	wr_bytes(w, m->u.auth.nonce, PROTO_NONCE_LEN);
	wr_bytes(w, m->u.auth.mac, PROTO_MAC_LEN);
	return 0;
}

void dec_auth(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (reply) {
		rd_bytes(r, m->u.auth_ok.mac, PROTO_MAC_LEN, "mac");
		return;
	}
	m->u.auth.version = rd_u16(r, "version");
	rd_bytes(r, m->u.auth.nonce, PROTO_NONCE_LEN, "nonce");
	rd_bytes(r, m->u.auth.mac, PROTO_MAC_LEN, "mac");
	if (!r->bad && m->u.auth.version == 0)
		rd_fail(r, "version 0");
}

/* ---- IDENTIFY: store, volume kind, host, snapshot, client name; the reply is
 * the volume's geometry [, its state] ------------------------------------------- */

/* A snapshot name exactly for a snapshot volume.  */
static bool identify_snapshot_ok(const struct proto_identify *id)
{
	return id->volume == PROTO_VOL_SNAPSHOT ? proto_name_valid(id->snapshot)
						: id->snapshot[0] == '\0';
}

static bool state_ok(uint32_t state)
{
	return !(state & ~(uint32_t)PROTO_STATE_ROLLBACK);
}

int enc_identify(struct wr *w, const struct proto_msg *m, uint16_t t, bool reply)
{
	if (reply) {
		const struct proto_identify_ok *o = &m->u.identify_ok;
		wr_u32(w, o->chunk_size);
		wr_u32(w, o->snap_id);
		wr_u64(w, o->origin_size);
		wr_u64(w, o->volume_size);
		wr_u64(w, o->store_data_offset);
		wr_u64(w, o->generation);
		if (o->has_state) {
			if (!state_ok(o->state))
				return err_set(EINVAL, "unknown volume state 0x%x", o->state);
			wr_u32(w, o->state);
		}
		return 0;
	}
	const struct proto_identify *id = &m->u.identify;
	if (!volume_ok(id->volume))
		return err_set(EINVAL, "unknown volume kind %u", id->volume);
	if (!identify_snapshot_ok(id))
		return err_set(EINVAL, "invalid snapshot name for volume kind %u", id->volume);
	if (!str_ok(id->client, PROTO_STR_MAX))
		return err_set(EINVAL, "invalid client name");
	wr_bytes(w, id->store.b, 16);
	wr_u8(w, id->volume);
	wr_u16(w, id->host_id);
	wr_str(w, id->snapshot);
	wr_str(w, id->client);
	return 0;
}

void dec_identify(struct rd *r, struct proto_msg *m, uint16_t t, bool reply)
{
	if (reply) {
		struct proto_identify_ok *o = &m->u.identify_ok;
		o->chunk_size = rd_u32(r, "chunk size");
		o->snap_id = rd_u32(r, "snapshot id");
		o->origin_size = rd_u64(r, "origin size");
		o->volume_size = rd_u64(r, "volume size");
		o->store_data_offset = rd_u64(r, "data offset");
		o->generation = rd_u64(r, "generation");
		/* a trailing state only for a client that asked */
		if (!r->bad && r->len - r->off == 4) {
			o->has_state = true;
			o->state = rd_u32(r, "volume state");
			if (!state_ok(o->state))
				rd_fail(r, "unknown volume state");
		}
		if (!r->bad && (o->chunk_size < 512 || (o->chunk_size & (o->chunk_size - 1))))
			rd_fail(r, "chunk size not a power of two >= 512");
		return;
	}
	struct proto_identify *id = &m->u.identify;
	rd_bytes(r, id->store.b, 16, "store uuid");
	id->volume = rd_u8(r, "volume kind");
	id->host_id = rd_u16(r, "host id");
	rd_str(r, id->snapshot, PROTO_NAME_MAX, "snapshot name");
	rd_str(r, id->client, PROTO_STR_MAX, "client name");
	if (r->bad)
		return;
	if (!volume_ok(id->volume))
		rd_fail(r, "unknown volume kind");
	else if (!identify_snapshot_ok(id))
		rd_fail(r, "invalid snapshot name for the volume kind");
}

/* ---- authentication ---------------------------------------------------- */

static void auth_compute(const uint8_t secret[PROTO_SECRET_LEN], char role, uint16_t version,
			 const uint8_t sn[PROTO_NONCE_LEN], const uint8_t cn[PROTO_NONCE_LEN],
			 uint8_t mac[PROTO_MAC_LEN])
{
	crypto_auth_hmacsha256_state st;
	uint8_t v[2];

	put_le16(v, version);
	crypto_auth_hmacsha256_init(&st, secret, PROTO_SECRET_LEN);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"csnap-auth", 10);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)&role, 1);
	crypto_auth_hmacsha256_update(&st, v, 2);
	crypto_auth_hmacsha256_update(&st, sn, PROTO_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, cn, PROTO_NONCE_LEN);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof st);
}

void proto_auth_mac(const uint8_t secret[PROTO_SECRET_LEN], char role, uint16_t version,
		    const uint8_t server_nonce[PROTO_NONCE_LEN],
		    const uint8_t client_nonce[PROTO_NONCE_LEN], uint8_t mac[PROTO_MAC_LEN])
{
	auth_compute(secret, role, version, server_nonce, client_nonce, mac);
}

bool proto_auth_verify(const uint8_t secret[PROTO_SECRET_LEN], char role, uint16_t version,
		       const uint8_t server_nonce[PROTO_NONCE_LEN],
		       const uint8_t client_nonce[PROTO_NONCE_LEN], const uint8_t mac[PROTO_MAC_LEN])
{
	uint8_t want[PROTO_MAC_LEN];
	auth_compute(secret, role, version, server_nonce, client_nonce, want);
	bool ok = crypto_verify_32(want, mac) == 0;
	sodium_memzero(want, sizeof want);
	return ok;
}

void proto_random(uint8_t *buf, size_t len)
{
	if (sodium_init() < 0)
		abort();	/* no CSPRNG: nothing safe to do */
	randombytes_buf(buf, len);
}
