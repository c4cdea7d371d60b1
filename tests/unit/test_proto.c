/*
 * tests/unit/test_proto.c - the csnap wire protocol: every message and
 * reply round-trips; truncated, oversized, out-of-range and corrupted
 * input is rejected; randomized mutation of valid messages never crashes
 * and whatever still decodes re-encodes to the same bytes; the client
 * handshake authenticates against a real socket (and refuses a wrong key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/proto/client.h"
#include "src/proto/proto.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct proto_range sample_ranges[3] = {
	{ 0, 1 }, { 1000, 64 }, { UINT64_MAX - 5, 5 },
};
static struct proto_extent sample_extents[3] = {
	{ 0, 1, PROTO_AT_STORE, 17 },
	{ 1, 7, PROTO_AT_ORIGIN, 0 },
	{ 1ULL << 40, 3, PROTO_AT_STORE, 1ULL << 33 },
};
static struct proto_snapinfo sample_snaps[3] = {
	{ 1, 0, "daily-2026.11.24", 1764000000, 5, 2, 100, 50, { 0 }, 0 },
	/* with its request id (a SNAP_LIST with PROTO_F_REQ_IDS), made from
	 * snapshot 3 (create --from) */
	{ 7, PROTO_SNAP_BUSY | PROTO_SNAP_REQ_ID | PROTO_SNAP_PARENT, "b@x:y+z_", 1, -3, 0, 0,
	  1ULL << 40, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xff }, 3 },
	/* usage unknown (a store without valid usage counters) */
	{ 2, PROTO_SNAP_USAGE_UNKNOWN, "X", 1764000001, 0, 0, 0, 0, { 0 }, 0 },
};
static struct proto_client_info sample_clients[2] = {
	{ 1, PROTO_VOL_ORIGIN, 0, "node1/export", "127.0.0.11:4000" },
	{ 2000, PROTO_VOL_SNAPSHOT, 7, "", "[::1]:1" },
};

#define NSAMPLES 56

/* Fills M with sample number I (one of every shape).  */
static void sample(int i, struct proto_msg *m)
{
	proto_msg_init(m, 0, 0x0123456789abcdefULL + (uint64_t)i);
	switch (i) {
	case 0:
		m->type = PROTO_CHALLENGE;
		m->u.challenge.version_min = 1;
		m->u.challenge.version_max = 3;
		for (int k = 0; k < 16; k++) m->u.challenge.store.b[k] = (uint8_t)(k * 7 + 1);
		for (int k = 0; k < PROTO_NONCE_LEN; k++) m->u.challenge.nonce[k] = (uint8_t)k;
		break;
	case 1:
		m->type = PROTO_AUTH;
		m->u.auth.version = 1;
		memset(m->u.auth.nonce, 0xa5, PROTO_NONCE_LEN);
		memset(m->u.auth.mac, 0x5a, PROTO_MAC_LEN);
		break;
	case 2:
		m->type = PROTO_AUTH | PROTO_REPLY;
		memset(m->u.auth_ok.mac, 0x11, PROTO_MAC_LEN);
		break;
	case 3:
		m->type = PROTO_IDENTIFY;
		m->flags = PROTO_F_RECONNECT;
		m->u.identify.volume = PROTO_VOL_SNAPSHOT;
		m->u.identify.host_id = 17;
		strcpy(m->u.identify.snapshot, "snap1");
		strcpy(m->u.identify.client, "node3/export pid 42");
		memset(m->u.identify.store.b, 9, 16);
		break;
	case 4:
		m->type = PROTO_IDENTIFY | PROTO_REPLY;
		m->u.identify_ok = (struct proto_identify_ok){ 65536, 3, 1ULL << 34, 1ULL << 34, 1 << 24, 99, false, 0 };
		break;
	case 5: case 6: case 7: case 8: case 9: {
		static const uint16_t t[] = { PROTO_ORIGIN_WRITE, PROTO_SNAP_READ, PROTO_SNAP_READ_DONE,
					      PROTO_SNAP_WRITE, PROTO_LOCK_UPLOAD };
		m->type = t[i - 5];
		if (m->type == PROTO_SNAP_WRITE)
			m->flags = PROTO_F_FULL_CHUNKS;
		m->u.ranges.n = 3;
		m->u.ranges.r = sample_ranges;
		break;
	}
	case 10: case 11: case 12:
		m->type = (uint16_t)((i == 10 ? PROTO_ORIGIN_WRITE : i == 11 ? PROTO_SNAP_READ_DONE
								 : PROTO_LOCK_UPLOAD) | PROTO_REPLY);
		break;
	case 13: case 14:
		m->type = (uint16_t)((i == 13 ? PROTO_SNAP_READ : PROTO_SNAP_WRITE) | PROTO_REPLY);
		m->u.extents.n = 3;
		m->u.extents.e = sample_extents;
		break;
	case 15:
		m->type = PROTO_BARRIER;
		m->u.barrier.seq = 12345;
		break;
	case 16:
		m->type = PROTO_BARRIER | PROTO_REPLY;
		break;
	case 17:
		m->type = PROTO_SNAP_CREATE;
		m->flags = PROTO_F_REQ_ID;
		strcpy(m->u.snap_create.name, "nightly");
		m->u.snap_create.priority = -7;
		memset(m->u.snap_create.req_id, 0x3c, PROTO_REQ_ID_LEN);
		break;
	case 18:
		m->type = PROTO_SNAP_CREATE | PROTO_REPLY;
		m->u.snapinfo = sample_snaps[0];
		break;
	case 19:
		m->type = PROTO_SNAP_DELETE;
		strcpy(m->u.snap_name.name, "nightly");
		break;
	case 20:
		m->type = PROTO_SNAP_LIST;
		m->flags = PROTO_F_NO_USAGE | PROTO_F_REQ_IDS;
		break;
	case 21:
		m->type = PROTO_SNAP_LIST | PROTO_REPLY;
		m->u.snap_list.n = 2;
		m->u.snap_list.s = sample_snaps;
		break;
	case 22:
		m->type = PROTO_SNAP_SET;
		strcpy(m->u.snap_set.name, "x");
		m->u.snap_set.mask = PROTO_SET_PRIORITY | PROTO_SET_USECOUNT;
		m->u.snap_set.priority = 10;
		m->u.snap_set.usecount_delta = -1;
		break;
	case 23:
		m->type = PROTO_STATUS;
		break;
	case 24:
		m->type = PROTO_STATUS | PROTO_REPLY;
		memset(m->u.status.store.b, 3, 16);
		m->u.status.chunk_size = 4096;
		m->u.status.max_snapshots = 256;
		m->u.status.nsnapshots = 2;
		m->u.status.store_chunks = 1000;
		m->u.status.free_chunks = 10;
		m->u.status.origin_size = 1ULL << 30;
		m->u.status.master_host_id = 2;
		m->u.status.master_port = 40000;
		m->u.status.generation = 5;
		strcpy(m->u.status.master_address, "127.0.0.12");
		strcpy(m->u.status.master_node, "node2");
		m->u.status.nclients = 2;
		m->u.status.clients = sample_clients;
		break;
	case 25:
		m->type = PROTO_CHANGED;
		strcpy(m->u.changed.from, "a");
		strcpy(m->u.changed.to, "b");
		m->u.changed.start = 10;
		m->u.changed.max_ranges = 100;
		break;
	case 26:
		m->type = PROTO_CHANGED | PROTO_REPLY;
		m->u.changed_reply.next = UINT64_MAX;
		m->u.changed_reply.ranges.n = 2;
		m->u.changed_reply.ranges.r = sample_ranges;
		break;
	case 27:
		m->type = PROTO_SNAP_SET | PROTO_REPLY;
		m->u.snapinfo = sample_snaps[1];
		break;
	case 28:	/* a failed reply */
		m->type = PROTO_ORIGIN_WRITE | PROTO_REPLY;
		m->status = ENOSPC;
		strcpy(m->error, "store full: no snapshot can be released");
		break;
	case 29:	/* changed against the live origin: empty "to" */
		m->type = PROTO_CHANGED;
		strcpy(m->u.changed.from, "nightly");
		m->u.changed.start = 0;
		m->u.changed.max_ranges = PROTO_MAX_RANGES;
		break;
	case 30:
		m->type = PROTO_INVALIDATE;
		m->u.ranges.n = 3;
		m->u.ranges.r = sample_ranges;
		break;
	case 31:
		m->type = PROTO_INVALIDATE | PROTO_REPLY;
		break;
	case 32:
		m->type = PROTO_PING;
		break;
	case 33:
		m->type = PROTO_PING | PROTO_REPLY;
		break;
	case 34:	/* the shortest snapinfo: a one-character name */
		m->type = PROTO_SNAP_ADDED;
		m->u.snapinfo = sample_snaps[2];
		break;
	case 35:
		m->type = PROTO_SNAP_ADDED | PROTO_REPLY;
		break;
	case 36:
		m->type = PROTO_SNAP_LIST | PROTO_REPLY;
		m->u.snap_list.n = 1;
		m->u.snap_list.s = &sample_snaps[2];
		break;
	case 37:
		m->type = PROTO_SNAP_RENAME;
		strcpy(m->u.snap_rename.name, "k1");
		strcpy(m->u.snap_rename.new_name, "monday");
		break;
	case 38:
		m->type = PROTO_SNAP_RENAME | PROTO_REPLY;
		m->u.snapinfo = sample_snaps[1];
		break;
	case 39:	/* a snapshot of a snapshot */
		m->type = PROTO_SNAP_CREATE;
		m->flags = PROTO_F_REQ_ID | PROTO_F_FROM;
		strcpy(m->u.snap_create.name, "nightly-copy");
		memset(m->u.snap_create.req_id, 0x5a, PROTO_REQ_ID_LEN);
		strcpy(m->u.snap_create.from, "nightly");
		break;
	case 40:
		m->type = PROTO_ORIGIN_RESIZE;
		break;
	case 41:
		m->type = PROTO_ORIGIN_RESIZE | PROTO_REPLY;
		m->u.resize = (struct proto_resize){ 1ULL << 30, 3ULL << 30 };
		break;
	case 42:
		m->type = PROTO_ORIGIN_SIZE;
		m->u.resize = (struct proto_resize){ 1ULL << 30, (1ULL << 30) + 4096 };
		break;
	case 43:
		m->type = PROTO_ORIGIN_SIZE | PROTO_REPLY;
		break;
	case 44:
		m->type = PROTO_STORE_GROW;
		break;
	case 45:
		m->type = PROTO_STORE_GROW | PROTO_REPLY;
		m->u.resize = (struct proto_resize){ 5ULL << 30, 9ULL << 30 };
		break;
	case 46:
		m->type = PROTO_SNAP_ROLLBACK;
		m->flags = PROTO_F_DELETE;
		strcpy(m->u.snap_name.name, "nightly");
		break;
	case 47:
		m->type = PROTO_SNAP_ROLLBACK;
		m->flags = PROTO_F_QUERY;
		break;
	case 48:
		m->type = PROTO_SNAP_ROLLBACK | PROTO_REPLY;
		m->u.rollback = (struct proto_rollback){ .flags = PROTO_RB_ACTIVE, .name = "nightly",
							 .cursor = 77, .origin_chunks = 16384,
							 .started = 1700000000 };
		break;
	case 49:
		m->type = PROTO_SNAP_ROLLBACK | PROTO_REPLY;
		break;
	case 50: case 51:
		m->type = i == 50 ? PROTO_ORIGIN_READ : PROTO_ORIGIN_READ_DONE;
		m->u.ranges.n = 3;
		m->u.ranges.r = sample_ranges;
		break;
	case 52:
		m->type = PROTO_ORIGIN_READ | PROTO_REPLY;
		m->u.extents.n = 3;
		m->u.extents.e = sample_extents;
		break;
	case 53:
		m->type = PROTO_IDENTIFY | PROTO_REPLY;
		m->u.identify_ok = (struct proto_identify_ok){ 65536, 0, 1ULL << 34, 1ULL << 34, 1 << 24, 99,
							       true, PROTO_STATE_ROLLBACK };
		break;
	case 54:
		m->type = PROTO_BARRIER;
		m->flags = PROTO_F_RB_START;
		m->u.barrier.seq = 7;
		break;
	case 55:
		m->type = PROTO_BARRIER;
		m->flags = PROTO_F_RB_END;
		break;
	}
}

static void encode_ok(const struct proto_msg *m, struct proto_buf *b)
{
	proto_buf_init(b);
	int r = proto_encode(m, b);
	if (r < 0)
		fail_msg("encode %s: %s", proto_type_name(m->type), err_get());
}

static int decode_buf(const uint8_t *p, size_t len, struct proto_msg *out)
{
	struct proto_hdr h;
	if (len < PROTO_HDR_SIZE)
		return -EBADMSG;
	int r = proto_decode_hdr(p, &h);
	if (r < 0)
		return r;
	if (len != PROTO_HDR_SIZE + (size_t)h.len)
		return -EBADMSG;
	return proto_decode(&h, p + PROTO_HDR_SIZE, out);
}

/* Decoded message equal to the original: compare by re-encoding.  */
static void test_roundtrip_all(void **state)
{
	(void)state;
	for (int i = 0; i < NSAMPLES; i++) {
		struct proto_msg m, d;
		struct proto_buf a, b;
		sample(i, &m);
		encode_ok(&m, &a);
		assert_int_equal(get_le32(a.data + 4), a.len - PROTO_HDR_SIZE);
		assert_int_equal(decode_buf(a.data, a.len, &d), 0);
		assert_int_equal(d.type, m.type);
		assert_int_equal(d.flags, m.flags);
		assert_true(d.id == m.id);
		assert_int_equal(d.status, m.status);
		encode_ok(&d, &b);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.data, b.data, a.len);
		proto_msg_free(&d);
		proto_buf_free(&a);
		proto_buf_free(&b);
	}
}

/* SNAP_ROLLBACK, the rollback flags and states: what neither side may
 * send.  */
static void test_rollback_invalid(void **state)
{
	struct proto_msg m, d;
	struct proto_buf b;
	(void)state;

	proto_buf_init(&b);
	sample(46, &m);
	m.flags |= PROTO_F_QUERY;		/* a query deletes nothing */
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(46, &m);
	m.u.snap_name.name[0] = '\0';		/* a rollback needs a name */
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(48, &m);
	m.u.rollback.cursor = m.u.rollback.origin_chunks + 1;
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(49, &m);
	m.u.rollback.cursor = 1;		/* none runs: all zero */
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(48, &m);
	m.u.rollback.flags |= 0x80;
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(54, &m);
	m.flags |= PROTO_F_RB_END;		/* start and end at once */
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(53, &m);
	m.u.identify_ok.state = 0x8;		/* unknown state */
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	proto_buf_free(&b);
	/* an identify reply without the state (an older master) decodes as
	 * "no state" */
	sample(53, &m);
	m.u.identify_ok.has_state = false;
	encode_ok(&m, &b);
	assert_int_equal(decode_buf(b.data, b.len, &d), 0);
	assert_false(d.u.identify_ok.has_state);
	proto_buf_free(&b);
	/* the decoder checks the same: a reply claiming progress past the
	 * end, made by hand (cursor is the u64 after flags and the name) */
	sample(48, &m);
	encode_ok(&m, &b);
	size_t cur = PROTO_HDR_SIZE + 4 + 4 + 2 + strlen("nightly");
	put_le64(b.data + cur, 16385);
	put_le32(b.data + PH_CRC, 0);
	put_le32(b.data + PH_CRC, crc32c(0, b.data, b.len));
	assert_int_equal(decode_buf(b.data, b.len, &d), -EBADMSG);
	proto_buf_free(&b);
}

/* Spot-check field values, not only byte equality.  */
static void test_fields(void **state)
{
	struct proto_msg m, d;
	struct proto_buf a;
	(void)state;

	sample(13, &m);
	encode_ok(&m, &a);
	assert_int_equal(decode_buf(a.data, a.len, &d), 0);
	assert_int_equal(d.u.extents.n, 3);
	assert_int_equal(d.u.extents.e[1].where, PROTO_AT_ORIGIN);
	assert_int_equal(d.u.extents.e[1].count, 7);
	assert_true(d.u.extents.e[2].store_chunk == 1ULL << 33);
	proto_msg_free(&d);
	proto_buf_free(&a);

	sample(24, &m);
	encode_ok(&m, &a);
	assert_int_equal(decode_buf(a.data, a.len, &d), 0);
	assert_string_equal(d.u.status.master_node, "node2");
	assert_int_equal(d.u.status.clients[1].host_id, 2000);
	assert_string_equal(d.u.status.clients[0].peer, "127.0.0.11:4000");
	proto_msg_free(&d);
	proto_buf_free(&a);

	sample(28, &m);
	encode_ok(&m, &a);
	assert_int_equal(decode_buf(a.data, a.len, &d), 0);
	assert_int_equal(d.status, ENOSPC);
	assert_string_equal(d.error, "store full: no snapshot can be released");
	proto_buf_free(&a);

	sample(21, &m);
	encode_ok(&m, &a);
	assert_int_equal(decode_buf(a.data, a.len, &d), 0);
	assert_int_equal(d.u.snap_list.s[1].priority, -3);
	assert_int_equal(d.u.snap_list.s[1].parent_id, 3);
	assert_int_equal(d.u.snap_list.s[0].parent_id, 0);
	assert_string_equal(d.u.snap_list.s[0].name, "daily-2026.11.24");
	proto_msg_free(&d);
	proto_buf_free(&a);

	/* A one-character name is valid everywhere a name is (it was once
	 * refused in a list as "truncated").  */
	sample(36, &m);
	encode_ok(&m, &a);
	assert_int_equal(a.len, PROTO_HDR_SIZE + 4 + 4 + 43);	/* status, count, entry */
	assert_int_equal(decode_buf(a.data, a.len, &d), 0);
	assert_int_equal(d.u.snap_list.n, 1);
	assert_string_equal(d.u.snap_list.s[0].name, "X");
	proto_msg_free(&d);
	proto_buf_free(&a);

	sample(34, &m);
	encode_ok(&m, &a);
	assert_int_equal(decode_buf(a.data, a.len, &d), 0);
	assert_int_equal(d.type, PROTO_SNAP_ADDED);
	assert_int_equal(d.u.snapinfo.id, 2);
	assert_string_equal(d.u.snapinfo.name, "X");
	proto_msg_free(&d);
	proto_buf_free(&a);
}

/* A refused lock re-upload is told apart from any other failure: it
 * decodes with PROTO_STATUS_LOCK_STALE, a value no other server reply
 * uses, and keeps its reason.  */
static void test_lock_stale_status(void **state)
{
	struct proto_msg req, m, d;
	struct proto_range r = { .start = 5, .count = 2 };
	struct proto_buf a;
	(void)state;

	assert_int_not_equal(PROTO_STATUS_LOCK_STALE, EIO);
	assert_int_not_equal(PROTO_STATUS_LOCK_STALE, EINVAL);
	assert_int_not_equal(PROTO_STATUS_LOCK_STALE, E2BIG);
	assert_int_not_equal(PROTO_STATUS_LOCK_STALE, ENOSPC);
	assert_true(PROTO_STATUS_LOCK_STALE > 0 && PROTO_STATUS_LOCK_STALE <= 4095);
	proto_msg_init(&req, PROTO_LOCK_UPLOAD, 77);
	req.u.ranges.n = 1;
	req.u.ranges.r = &r;
	encode_ok(&req, &a);
	assert_int_equal(decode_buf(a.data, a.len, &d), 0);
	assert_int_equal(d.u.ranges.n, 1);
	proto_msg_free(&d);
	proto_buf_free(&a);

	proto_msg_error(&m, &req, PROTO_STATUS_LOCK_STALE, "read lock on chunk 5 is stale");
	encode_ok(&m, &a);
	assert_int_equal(decode_buf(a.data, a.len, &d), 0);
	assert_int_equal(d.type, PROTO_LOCK_UPLOAD | PROTO_REPLY);
	assert_int_equal(d.id, 77);
	assert_int_equal(d.status, PROTO_STATUS_LOCK_STALE);
	assert_string_equal(d.error, "read lock on chunk 5 is stale");
	proto_msg_free(&d);
	proto_buf_free(&a);
}

/* Every strict prefix of every message is incomplete (proto_take waits)
 * and, presented as a whole message with a fixed-up header, is rejected. */
static void test_truncated(void **state)
{
	(void)state;
	for (int i = 0; i < NSAMPLES; i++) {
		struct proto_msg m, d;
		struct proto_buf a;
		sample(i, &m);
		encode_ok(&m, &a);
		for (size_t cut = 0; cut < a.len; cut++) {
			struct proto_buf in;
			proto_buf_init(&in);
			assert_int_equal(proto_buf_reserve(&in, a.len), 0);
			memcpy(in.data, a.data, cut);
			in.len = cut;
			assert_int_equal(proto_take(&in, &d), 0);
			proto_buf_free(&in);
			if (cut < PROTO_HDR_SIZE)
				continue;
			/* Shorten the payload and make header and crc agree, so
			 * only the body's own checks can catch it.  */
			uint8_t *p = malloc(cut);
			memcpy(p, a.data, cut);
			put_le32(p + 4, (uint32_t)(cut - PROTO_HDR_SIZE));
			put_le32(p + 16, 0);
			put_le32(p + 16, crc32c(0, p, cut));
			/* an identify reply without its optional trailing
			 * state is what an older master sends: valid */
			if (m.type == (PROTO_IDENTIFY | PROTO_REPLY) && m.u.identify_ok.has_state &&
			    cut == a.len - 4) {
				assert_int_equal(decode_buf(p, cut, &d), 0);
				assert_false(d.u.identify_ok.has_state);
				free(p);
				continue;
			}
			assert_int_equal(decode_buf(p, cut, &d), -EBADMSG);
			free(p);
		}
		proto_buf_free(&a);
	}
}

static void refix_crc(uint8_t *p, size_t len)
{
	put_le32(p + 16, 0);
	put_le32(p + 16, crc32c(0, p, len));
}

static void test_header_rejects(void **state)
{
	struct proto_msg m, d;
	struct proto_buf a;
	(void)state;

	sample(5, &m);
	encode_ok(&m, &a);
	/* bad crc */
	a.data[a.len - 1] ^= 1;
	assert_int_equal(decode_buf(a.data, a.len, &d), -EBADMSG);
	a.data[a.len - 1] ^= 1;
	assert_int_equal(decode_buf(a.data, a.len, &d), 0);
	proto_msg_free(&d);
	/* unknown types */
	uint16_t bad_types[] = { 0, PROTO_TYPE_MAX + 1, 0x7fff, PROTO_REPLY, 0xffff };
	for (size_t k = 0; k < sizeof bad_types / sizeof bad_types[0]; k++) {
		uint8_t h[PROTO_HDR_SIZE];
		struct proto_hdr ph;
		memcpy(h, a.data, sizeof h);
		put_le16(h, bad_types[k]);
		assert_int_equal(proto_decode_hdr(h, &ph), -EBADMSG);
	}
	/* flags not allowed */
	uint8_t h[PROTO_HDR_SIZE];
	struct proto_hdr ph;
	memcpy(h, a.data, sizeof h);
	put_le16(h + 2, PROTO_F_FULL_CHUNKS);	/* ORIGIN_WRITE takes no flags */
	assert_int_equal(proto_decode_hdr(h, &ph), -EBADMSG);
	put_le16(h + 2, 0x8000);
	assert_int_equal(proto_decode_hdr(h, &ph), -EBADMSG);
	/* oversized payload: refused from the header alone */
	memcpy(h, a.data, sizeof h);
	put_le32(h + 4, PROTO_MAX_PAYLOAD + 1);
	assert_int_equal(proto_decode_hdr(h, &ph), -EBADMSG);
	put_le32(h + 4, 0xffffffffu);
	assert_int_equal(proto_decode_hdr(h, &ph), -EBADMSG);
	struct proto_buf in;
	proto_buf_init(&in);
	proto_buf_reserve(&in, sizeof h);
	memcpy(in.data, h, sizeof h);
	in.len = sizeof h;
	assert_int_equal(proto_take(&in, &d), -EBADMSG);
	proto_buf_free(&in);
	/* reserved field */
	memcpy(h, a.data, sizeof h);
	put_le32(h + 20, 1);
	assert_int_equal(proto_decode_hdr(h, &ph), -EBADMSG);
	/* trailing bytes */
	uint8_t *p = malloc(a.len + 1);
	memcpy(p, a.data, a.len);
	p[a.len] = 0;
	put_le32(p + 4, (uint32_t)(a.len + 1 - PROTO_HDR_SIZE));
	refix_crc(p, a.len + 1);
	assert_int_equal(decode_buf(p, a.len + 1, &d), -EBADMSG);
	assert_non_null(strstr(err_get(), "trailing"));
	free(p);
	proto_buf_free(&a);
}

/* Patch a field inside an encoded message (with crc fixed) and expect
 * rejection.  */
static void expect_reject_patch(int sample_no, size_t off, const void *bytes, size_t n)
{
	struct proto_msg m, d;
	struct proto_buf a;
	sample(sample_no, &m);
	encode_ok(&m, &a);
	assert_true(off + n <= a.len);
	memcpy(a.data + off, bytes, n);
	refix_crc(a.data, a.len);
	int r = decode_buf(a.data, a.len, &d);
	if (getenv("PROTO_TEST_VERBOSE"))
		fprintf(stderr, "sample %d patch @%zu: %s\n", sample_no, off, err_get());
	if (r == 0)
		proto_msg_free(&d);
	proto_buf_free(&a);
	if (r != -EBADMSG)
		fail_msg("sample %d patched at %zu: decode returned %d", sample_no, off, r);
}

static void test_out_of_range(void **state)
{
	(void)state;
	const size_t P = PROTO_HDR_SIZE;
	uint8_t b4[4], b8[8], b2[2], b1;

	/* range with count 0 (sample 5: n at P, range 0 at P+4) */
	put_le32(b4, 0);
	expect_reject_patch(5, P + 4 + 8, b4, 4);
	/* range that overflows the chunk space: range 2 start = MAX-5, count 6 */
	put_le32(b4, 6);
	expect_reject_patch(5, P + 4 + 2 * 12 + 8, b4, 4);
	/* range count above the limit */
	put_le32(b4, PROTO_MAX_RANGES + 1);
	expect_reject_patch(5, P, b4, 4);
	/* range count larger than the payload (a lie about the array) */
	put_le32(b4, 4);
	expect_reject_patch(5, P, b4, 4);
	/* extent: where unknown, origin extent with a store chunk */
	put_le32(b4, 3);
	expect_reject_patch(13, P + 4 + 4 + 8 + 4, b4, 4);
	put_le64(b8, 5);
	expect_reject_patch(13, P + 4 + 24 + 16, b8, 8);
	/* identify: unknown volume kind; snapshot name on origin volume */
	b1 = 0;
	expect_reject_patch(3, P + 16, &b1, 1);
	b1 = 4;
	expect_reject_patch(3, P + 16, &b1, 1);
	b1 = PROTO_VOL_ORIGIN;
	expect_reject_patch(3, P + 16, &b1, 1);
	/* identify: name with a control character / bad name char */
	b1 = '\n';
	expect_reject_patch(3, P + 16 + 1 + 2 + 2, &b1, 1);
	b1 = '/';
	expect_reject_patch(3, P + 16 + 1 + 2 + 2, &b1, 1);
	/* string length above its limit */
	put_le16(b2, PROTO_NAME_MAX + 1);
	expect_reject_patch(17, P, b2, 2);
	put_le16(b2, 0);	/* empty name */
	expect_reject_patch(19, P, b2, 2);
	/* challenge: bad magic; version range inverted */
	put_le64(b8, 0);
	expect_reject_patch(0, P, b8, 8);
	put_le16(b2, 9);
	expect_reject_patch(0, P + 8, b2, 2);
	/* reply status not an errno */
	put_le32(b4, 100000);
	expect_reject_patch(10, P, b4, 4);
	/* snap_set: unknown mask bits */
	put_le32(b4, 0x4);
	expect_reject_patch(22, P + 2 + 1, b4, 4);
	/* changed: max_ranges 0 */
	put_le32(b4, 0);
	expect_reject_patch(25, P + 3 + 3 + 8, b4, 4);
	/* status: more free than total */
	put_le64(b8, 1001);
	expect_reject_patch(24, P + 4 + 16 + 12 + 8, b8, 8);
	/* snapinfo: unknown flags */
	put_le32(b4, 0x80);
	expect_reject_patch(18, P + 4 + 4, b4, 4);
	/* snap-added: unknown flags; a name that is not a snapshot name */
	expect_reject_patch(34, P + 4, b4, 4);
	b1 = '.';
	expect_reject_patch(34, P + 4 + 4 + 2, &b1, 1);
	/* snap-list reply with a one-character name: the count may not
	 * claim a second entry the payload does not hold */
	put_le32(b4, 2);
	expect_reject_patch(36, P + 4, b4, 4);
}

/* The encoder refuses what the decoder would refuse.  */
static void test_encode_rejects(void **state)
{
	struct proto_msg m;
	struct proto_buf b;
	struct proto_range bad = { 5, 0 };
	(void)state;
	proto_buf_init(&b);

	sample(5, &m);
	m.u.ranges.r = &bad;
	m.u.ranges.n = 1;
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	sample(5, &m);
	m.u.ranges.n = PROTO_MAX_RANGES + 1;
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(17, &m);
	strcpy(m.u.snap_create.name, "a/b");
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(17, &m);
	m.flags = 0x0004;		/* no such flag on SNAP_CREATE */
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(39, &m);
	strcpy(m.u.snap_create.from, "a/b");	/* --from names a snapshot */
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(39, &m);
	m.u.snap_create.from[0] = 0;
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(17, &m);
	memset(m.u.snap_create.req_id, 0, PROTO_REQ_ID_LEN);	/* a request id is never zero */
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(3, &m);
	m.u.identify.volume = 9;
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	/* snapinfo: what the decoder would refuse is never sent */
	sample(34, &m);
	m.u.snapinfo.flags = 0x80;
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(34, &m);
	strcpy(m.u.snapinfo.name, "-x");
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(34, &m);		/* a parent that cannot be */
	m.u.snapinfo.flags |= PROTO_SNAP_PARENT;
	m.u.snapinfo.parent_id = m.u.snapinfo.id;
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	m.u.snapinfo.parent_id = 0;
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	sample(32, &m);
	m.flags = PROTO_F_RECONNECT;	/* PING takes no flags */
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	proto_msg_init(&m, 99, 1);
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	proto_buf_free(&b);

	assert_true(proto_name_valid("a"));
	assert_false(proto_name_valid(""));
	assert_false(proto_name_valid(".hidden"));
	assert_false(proto_name_valid("-opt"));
	assert_false(proto_name_valid("white space"));
	char longname[PROTO_NAME_MAX + 2];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_false(proto_name_valid(longname));
	longname[PROTO_NAME_MAX] = '\0';
	assert_true(proto_name_valid(longname));
}

/* Many messages in one stream, split at random points: all come out in
 * order.  */
static void test_stream(void **state)
{
	struct proto_buf all, in;
	(void)state;
	proto_buf_init(&all);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < NSAMPLES; i++) {
			struct proto_msg m;
			sample(i, &m);
			assert_int_equal(proto_encode(&m, &all), 0);
		}
	proto_buf_init(&in);
	srand(7);
	size_t fed = 0;
	int got = 0;
	while (fed < all.len || in.len > in.off) {
		size_t n = (size_t)(rand() % 50);
		if (n > all.len - fed)
			n = all.len - fed;
		assert_int_equal(proto_buf_reserve(&in, n), 0);
		memcpy(in.data + in.len, all.data + fed, n);
		in.len += n;
		fed += n;
		struct proto_msg d;
		int r;
		while ((r = proto_take(&in, &d)) == 1) {
			assert_true(d.id == 0x0123456789abcdefULL + (uint64_t)(got % NSAMPLES));
			proto_msg_free(&d);
			got++;
		}
		assert_int_equal(r, 0);
		if (fed == all.len && r == 0)
			break;
	}
	assert_int_equal(got, 3 * NSAMPLES);
	proto_buf_free(&all);
	proto_buf_free(&in);
}

/* Randomized decoding: mutate valid messages (bytes flipped, lengths
 * changed, garbage appended), fix the crc so the body checks are reached,
 * and decode.  Must never crash or leak (ASan build); anything accepted
 * must re-encode to exactly the same bytes.  */
static void test_random_decode(void **state)
{
	(void)state;
	srand(12345);
	unsigned accepted = 0, rejected = 0;
	for (int iter = 0; iter < 60000; iter++) {
		struct proto_msg m, d;
		struct proto_buf a;
		sample(iter % NSAMPLES, &m);
		encode_ok(&m, &a);
		size_t len = a.len;
		uint8_t *p = malloc(len + 64);
		memcpy(p, a.data, len);
		int muts = 1 + rand() % 4;
		for (int k = 0; k < muts; k++) {
			int kind = rand() % 4;
			if (kind == 0 && len > PROTO_HDR_SIZE) {
				size_t at = PROTO_HDR_SIZE + (size_t)rand() % (len - PROTO_HDR_SIZE);
				p[at] ^= (uint8_t)(1u << (rand() % 8));
			} else if (kind == 1 && len > PROTO_HDR_SIZE) {
				size_t at = PROTO_HDR_SIZE + (size_t)rand() % (len - PROTO_HDR_SIZE);
				p[at] = (uint8_t)rand();
			} else if (kind == 2 && len > PROTO_HDR_SIZE) {
				len -= 1 + (size_t)rand() % (len - PROTO_HDR_SIZE);
			} else if (len < a.len + 60) {
				p[len++] = (uint8_t)rand();
			}
		}
		if (len < PROTO_HDR_SIZE)
			len = PROTO_HDR_SIZE;
		put_le32(p + 4, (uint32_t)(len - PROTO_HDR_SIZE));
		refix_crc(p, len);
		int r = decode_buf(p, len, &d);
		if (r == 0) {
			struct proto_buf b;
			accepted++;
			encode_ok(&d, &b);
			assert_int_equal(b.len, len);
			assert_memory_equal(b.data, p, len);
			proto_buf_free(&b);
			proto_msg_free(&d);
		} else {
			assert_int_equal(r, -EBADMSG);
			rejected++;
		}
		free(p);
		proto_buf_free(&a);
	}
	/* Both outcomes must actually happen, or the test proves nothing. */
	assert_true(accepted > 100);
	assert_true(rejected > 100);
	/* Pure random bytes as a header + payload.  */
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t buf[256];
		struct proto_msg d;
		size_t len = PROTO_HDR_SIZE + (size_t)rand() % (sizeof buf - PROTO_HDR_SIZE);
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)rand();
		put_le16(buf, (uint16_t)((rand() % (PROTO_TYPE_MAX + 1)) | (rand() % 2 ? PROTO_REPLY : 0)));
		put_le16(buf + 2, 0);
		put_le32(buf + 20, 0);
		put_le32(buf + 4, (uint32_t)(len - PROTO_HDR_SIZE));
		refix_crc(buf, len);
		if (decode_buf(buf, len, &d) == 0)
			proto_msg_free(&d);
	}
}

static void test_auth_mac(void **state)
{
	uint8_t secret[32], other[32], sn[32], cn[32], mac[32];
	(void)state;
	proto_random(secret, 32);
	memcpy(other, secret, 32);
	other[31] ^= 1;
	proto_random(sn, 32);
	proto_random(cn, 32);
	proto_auth_mac(secret, 'C', 1, sn, cn, mac);
	assert_true(proto_auth_verify(secret, 'C', 1, sn, cn, mac));
	assert_false(proto_auth_verify(other, 'C', 1, sn, cn, mac));
	assert_false(proto_auth_verify(secret, 'S', 1, sn, cn, mac));	/* no reflection */
	assert_false(proto_auth_verify(secret, 'C', 2, sn, cn, mac));
	assert_false(proto_auth_verify(secret, 'C', 1, cn, sn, mac));
	/* RFC 4231-style sanity: a fixed key and nonces give a fixed MAC. */
	uint8_t k0[32] = { 0 }, z[32] = { 0 }, m1[32], m2[32];
	proto_auth_mac(k0, 'C', 1, z, z, m1);
	proto_auth_mac(k0, 'C', 1, z, z, m2);
	assert_memory_equal(m1, m2, 32);
}

/* ---- handshake against a minimal in-test server ------------------------ */

struct fake_server {
	int lfd;
	uint16_t port;
	uint8_t secret[32];
	struct csnap_uuid store;
	int accepted_auth;	/* result: 1 auth ok, 0 refused */
};

static int send_msg(int fd, const struct proto_msg *m)
{
	struct proto_buf b;
	proto_buf_init(&b);
	int r = proto_encode(m, &b);
	if (r == 0 && write(fd, b.data, b.len) != (ssize_t)b.len)
		r = -EIO;
	proto_buf_free(&b);
	return r;
}

static int recv_msg(int fd, struct proto_msg *m)
{
	struct proto_buf in;
	proto_buf_init(&in);
	for (;;) {
		int r = proto_take(&in, m);
		if (r != 0) {
			proto_buf_free(&in);
			return r;
		}
		proto_buf_reserve(&in, 4096);
		ssize_t n = read(fd, in.data + in.len, in.cap - in.len);
		if (n <= 0) {
			proto_buf_free(&in);
			return -ECONNRESET;
		}
		in.len += (size_t)n;
	}
}

static void *fake_server_main(void *arg)
{
	struct fake_server *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	struct proto_msg m, a;
	memset(&a, 0, sizeof a);
	proto_msg_init(&m, PROTO_CHALLENGE, 1);
	m.u.challenge.version_min = 1;
	m.u.challenge.version_max = PROTO_VERSION;
	m.u.challenge.store = s->store;
	proto_random(m.u.challenge.nonce, 32);
	send_msg(fd, &m);
	if (recv_msg(fd, &a) == 1 && a.type == PROTO_AUTH &&
	    proto_auth_verify(s->secret, 'C', a.u.auth.version, m.u.challenge.nonce,
			      a.u.auth.nonce, a.u.auth.mac)) {
		struct proto_msg ok;
		proto_msg_init(&ok, PROTO_AUTH | PROTO_REPLY, a.id);
		proto_auth_mac(s->secret, 'S', a.u.auth.version, m.u.challenge.nonce,
			       a.u.auth.nonce, ok.u.auth_ok.mac);
		send_msg(fd, &ok);
		s->accepted_auth = 1;
		/* answer one IDENTIFY, then a barrier and a status call */
		struct proto_msg id, rep;
		if (recv_msg(fd, &id) == 1 && id.type == PROTO_IDENTIFY) {
			proto_msg_init(&rep, PROTO_IDENTIFY | PROTO_REPLY, id.id);
			rep.u.identify_ok.chunk_size = 4096;
			rep.u.identify_ok.volume_size = 1 << 20;
			send_msg(fd, &rep);
		}
	} else {
		struct proto_msg no;
		proto_msg_error(&no, &a, EACCES, "authentication failed");
		send_msg(fd, &no);
		s->accepted_auth = 0;
	}
	close(fd);
	return NULL;
}

static void start_fake(struct fake_server *s, pthread_t *t)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof sa;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
	s->port = ntohs(sa.sin_port);
	pthread_create(t, NULL, fake_server_main, s);
}

static void test_client_handshake(void **state)
{
	struct fake_server s = { 0 };
	pthread_t t;
	struct proto_client *c;
	struct proto_identify_ok ok;
	(void)state;

	proto_random(s.secret, 32);
	csnap_uuid_generate(&s.store);
	start_fake(&s, &t);
	assert_int_equal(proto_client_connect("127.0.0.1", s.port, &s.store, s.secret, 5000, &c), 0);
	assert_int_equal(proto_client_identify(c, PROTO_VOL_ORIGIN, NULL, 1, "test", 0, &ok), 0);
	assert_int_equal(ok.chunk_size, 4096);
	proto_client_close(c);
	pthread_join(t, NULL);
	assert_int_equal(s.accepted_auth, 1);
	close(s.lfd);

	/* wrong key: refused with EACCES and a reason */
	uint8_t wrong[32];
	memcpy(wrong, s.secret, 32);
	wrong[0] ^= 0x80;
	start_fake(&s, &t);
	assert_int_equal(proto_client_connect("127.0.0.1", s.port, &s.store, wrong, 5000, &c), -EACCES);
	assert_non_null(strstr(err_get(), "authentication"));
	pthread_join(t, NULL);
	assert_int_equal(s.accepted_auth, 0);
	close(s.lfd);

	/* wrong store uuid: the client refuses before sending its proof */
	struct csnap_uuid other;
	csnap_uuid_generate(&other);
	start_fake(&s, &t);
	assert_int_equal(proto_client_connect("127.0.0.1", s.port, &other, s.secret, 5000, &c), -ESTALE);
	pthread_join(t, NULL);
	close(s.lfd);
}

/* PROTO_HANDSHAKE_MAX_PAYLOAD is what a server buffers before a peer is
 * identified: the largest AUTH and IDENTIFY must fit exactly.  */
/* proto_client_info_size() and PROTO_STATUS_FIXED_MAX are what the
 * encoder writes (the server sizes STATUS replies by them).  */
static void test_status_sizes(void **state)
{
	struct proto_client_info ci[2];
	struct proto_msg m;
	struct proto_buf b;
	size_t base;

	(void)state;
	memset(ci, 0, sizeof ci);
	proto_msg_init(&m, PROTO_STATUS | PROTO_REPLY, 1);
	memset(m.u.status.master_address, 'a', PROTO_STR_MAX);
	memset(m.u.status.master_node, 'b', PROTO_STR_MAX);
	m.u.status.clients = ci;
	proto_buf_init(&b);
	assert_int_equal(proto_encode(&m, &b), 0);
	base = b.len;
	assert_int_equal(base - PROTO_HDR_SIZE, PROTO_STATUS_FIXED_MAX);
	ci[0].volume = PROTO_VOL_ORIGIN;
	strcpy(ci[0].name, "node1/export");
	ci[1].volume = PROTO_VOL_ADMIN;
	memset(ci[1].name, 'n', PROTO_STR_MAX);
	memset(ci[1].peer, 'p', PROTO_STR_MAX);
	m.u.status.nclients = 2;
	b.len = 0;
	assert_int_equal(proto_encode(&m, &b), 0);
	assert_int_equal(b.len - base, proto_client_info_size(&ci[0]) + proto_client_info_size(&ci[1]));
	proto_buf_free(&b);
}

static void test_handshake_max(void **state)
{
	struct proto_buf b;
	struct proto_msg m;
	struct proto_hdr h;

	(void)state;
	proto_buf_init(&b);
	proto_msg_init(&m, PROTO_IDENTIFY, 1);
	m.u.identify.volume = PROTO_VOL_SNAPSHOT;
	m.u.identify.host_id = 2000;
	memset(m.u.identify.snapshot, 'a', PROTO_NAME_MAX);
	m.u.identify.snapshot[PROTO_NAME_MAX] = 0;
	memset(m.u.identify.client, 'c', PROTO_STR_MAX);
	m.u.identify.client[PROTO_STR_MAX] = 0;
	assert_int_equal(proto_encode(&m, &b), 0);
	assert_int_equal(proto_decode_hdr(b.data, &h), 0);
	assert_int_equal(h.len, PROTO_HANDSHAKE_MAX_PAYLOAD);
	b.len = b.off = 0;
	proto_msg_init(&m, PROTO_AUTH, 2);
	m.u.auth.version = PROTO_VERSION;
	assert_int_equal(proto_encode(&m, &b), 0);
	assert_int_equal(proto_decode_hdr(b.data, &h), 0);
	assert_true(h.len <= PROTO_HANDSHAKE_MAX_PAYLOAD);
	proto_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_all),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_rollback_invalid),
		cmocka_unit_test(test_lock_stale_status),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_header_rejects),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_random_decode),
		cmocka_unit_test(test_auth_mac),
		cmocka_unit_test(test_client_handshake),
		cmocka_unit_test(test_handshake_max),
		cmocka_unit_test(test_status_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
