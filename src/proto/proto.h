/*
 * src/proto/proto.h - the csnap cluster protocol: messages between export
 * clients, admin tools and the metadata server.
 *
 * Wire format (all integers little-endian):
 *
 *   header, PROTO_HDR_SIZE (24) bytes:
 *     le16 type     PROTO_* ; replies set PROTO_REPLY (0x8000)
 *     le16 flags    per-type flags (PROTO_F_*)
 *     le32 len      payload bytes that follow, <= PROTO_MAX_PAYLOAD
 *     le64 id       request id, chosen by the sender of the request and
 *                   echoed in its reply; ids let a client pipeline many
 *                   requests and match replies in any order
 *     le32 crc      crc32c of the header (crc field zero) and the payload
 *     le32 reserved must be zero
 *   payload, `len` bytes, layout per type (the codec pairs: codec.h).
 *
 * Requests go client -> server, except PROTO_BARRIER and PROTO_SNAP_ADDED,
 * which the server sends to origin clients, and PROTO_INVALIDATE, which it
 * sends to snapshot clients (their ids are the server's own).  Every reply
 * starts with le32 status (0 or a positive errno); a failed reply carries a
 * one-line reason string instead of a body.
 *
 * Strings on the wire: le16 length + bytes, no NUL, no control characters.
 * Chunk ranges: le64 start + le32 count (count >= 1, no overflow).
 *
 * A connection starts with the handshake: server sends CHALLENGE (magic,
 * protocol versions, store uuid, nonce); client answers AUTH (chosen
 * version, its own nonce, HMAC-SHA256 keyed by the store secret); server
 * replies with its own proof, so both sides know the other holds the
 * secret.  Then the client sends IDENTIFY for one volume (origin, one
 * snapshot, or admin) and uses the requests allowed for that volume.
 *
 * Decoding validates every field; a message that fails validation is a
 * protocol error and the receiver closes that connection with a logged
 * reason (proto_decode returns -EBADMSG and err_set()s the reason).
 */
#ifndef CSNAP_PROTO_H
#define CSNAP_PROTO_H

#include "utils/uuid.h"

#include <errno.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "utils/snapname.h"

#define PROTO_MAGIC		0x3143505250534e43ULL	/* "CNSPRPC1" */
#define PROTO_VERSION		1
#define PROTO_VERSION_MIN	1
/* Header field offsets (the layout above).  */
enum { PH_TYPE = 0, PH_FLAGS = 2, PH_LEN = 4, PH_ID = 8, PH_CRC = 16, PH_RESERVED = 20 };
#define PROTO_HDR_SIZE		24
#define PROTO_MAX_PAYLOAD	(1u << 20)	/* 1 MiB */
#define PROTO_NONCE_LEN		32
#define PROTO_MAC_LEN		32
#define PROTO_SECRET_LEN	32
#define PROTO_NAME_MAX		SNAP_NAME_MAX	/* snapshot names, bytes */
#define PROTO_STR_MAX		255	/* other strings (addresses, reasons) */
#define PROTO_MAX_RANGES	8192	/* ranges (or extents) in one message */
#define PROTO_MAX_SNAPSHOTS	1024	/* entries in one SNAP_LIST reply */
#define PROTO_MAX_CLIENTS	4096	/* entries in one STATUS reply (as many
					 * as fit: proto_client_info_size) */
/* The largest AUTH or IDENTIFY request payload (IDENTIFY: store uuid,
 * volume kind, host id, snapshot name and client name with their 16-bit
 * lengths): all a peer may send before it is identified, so a server
 * looks at the header first and buffers no more than this.  */
#define PROTO_HANDSHAKE_MAX_PAYLOAD	(16 + 1 + 2 + 2 + PROTO_NAME_MAX + 2 + PROTO_STR_MAX)

/* Message types.  */
enum proto_type {
	PROTO_CHALLENGE		= 1,	/* S->C, first message on a connection */
	PROTO_AUTH		= 2,	/* C->S, answer to CHALLENGE */
	PROTO_IDENTIFY		= 3,	/* C->S, choose the volume */
	PROTO_ORIGIN_WRITE	= 4,	/* origin: may I write these chunks? */
	PROTO_SNAP_READ		= 5,	/* snapshot: where are these chunks? */
	PROTO_SNAP_READ_DONE	= 6,	/* snapshot: release read locks */
	PROTO_SNAP_WRITE	= 7,	/* snapshot: give me unique chunks */
	PROTO_LOCK_UPLOAD	= 8,	/* snapshot: read locks I hold (reconnect) */
	PROTO_BARRIER		= 9,	/* S->origin: drain, drop cache, ack */
	PROTO_SNAP_CREATE	= 10,	/* admin */
	PROTO_SNAP_DELETE	= 11,	/* admin */
	PROTO_SNAP_LIST		= 12,	/* admin */
	PROTO_SNAP_SET		= 13,	/* admin: priority, use count */
	PROTO_STATUS		= 14,	/* admin */
	PROTO_CHANGED		= 15,	/* admin: chunks changed between snaps */
	PROTO_INVALIDATE	= 16,	/* S->snapshot: forget the cached
					 * locations of these chunks, ack */
	PROTO_PING		= 17,	/* origin/snapshot: renew my grant */
	PROTO_SNAP_ADDED	= 18,	/* S->origin: a snapshot was created
					 * (committed): serve it, then ack */
	PROTO_SNAP_RENAME	= 19,	/* admin volume only: OLD -> NEW */
	PROTO_ORIGIN_RESIZE	= 20,	/* admin volume only: record the size
					 * the origin device has grown to */
	PROTO_ORIGIN_SIZE	= 21,	/* S->origin: the origin grew (resize
					 * recorded): serve the new size, ack */
	PROTO_STORE_GROW	= 22,	/* admin volume only: add the grown
					 * store device's space to the data area */
	PROTO_SNAP_ROLLBACK	= 23,	/* admin volume only: the origin takes
					 * a snapshot's content (or, with
					 * PROTO_F_QUERY, the running rollback's
					 * progress) */
	PROTO_ORIGIN_READ	= 24,	/* origin, while a rollback runs: where
					 * are these chunks? (reply as
					 * SNAP_READ's; AT_STORE extents are
					 * read-locked until ORIGIN_READ_DONE) */
	PROTO_ORIGIN_READ_DONE	= 25,	/* origin: release those read locks */
	PROTO_TYPE_MAX		= 25,
};
#define PROTO_REPLY		0x8000

/*
 * Grants (docs/RELIABILITY.md, "A paused or partitioned export").  What an
 * origin client remembers without asking - the chunks an ORIGIN_WRITE
 * answer made unique - it may use only while it holds a grant: every
 * successful reply on its connection (ORIGIN_WRITE, PING, ...) grants it
 * PROTO_GRANT_MS, counted on the CLIENT's clock from the moment it SENT
 * the request that reply answers (so the client's grant always ends
 * before the master's view of it), checked immediately before each write
 * it issues on that authority, and lost with the connection.  The master
 * sends such replies only while its own lease is certainly valid, and:
 *  - commits a snapshot whose barrier a client did not acknowledge only
 *    after that client's connection is closed and PROTO_GRANT_WAIT_MS has
 *    passed on its own clock since the last reply it queued for it;
 *  - after taking over, waits PROTO_GRANT_WAIT_MS before committing any
 *    snapshot (grants of a previous master).
 * PROTO_GRANT_WAIT_MS = grant + 1/8 for clock rates (monotonic clocks
 * drift by well under 0.1 %) + 250 ms for scheduling.  Clients renew with
 * PING every PROTO_GRANT_MS / 4.
 */
#define PROTO_GRANT_MS		2000
#define PROTO_GRANT_WAIT_MS	(PROTO_GRANT_MS + PROTO_GRANT_MS / 8 + 250)
#define PROTO_PING_MS		(PROTO_GRANT_MS / 4)

/* Reply statuses with a meaning of their own (all are errno values).
 * PROTO_STATUS_LOCK_STALE: LOCK_UPLOAD refused because a chunk it names
 * has been copied out for the snapshot since the lock was granted (so an
 * origin write to it may have been answered): the server took none of the
 * message's locks; the client must restart the reads that held them from
 * scratch (a new SNAP_READ), discarding what they read from the origin. */
#define PROTO_STATUS_LOCK_STALE	ESTALE

/* Header flags.  */
#define PROTO_F_FULL_CHUNKS	0x0001	/* SNAP_WRITE: client overwrites the
					 * whole chunks, no old data needed */
#define PROTO_F_RECONNECT	0x0001	/* IDENTIFY: re-identify after the
					 * master changed (locks follow) */
#define PROTO_F_PASSIVE		0x0002	/* IDENTIFY (snapshot): no user yet;
					 * the export only learns the size.
					 * The snapshot counts as in use only
					 * once a data request comes on it */
#define PROTO_F_NO_USAGE	0x0001	/* SNAP_LIST: names, ids and flags only;
					 * skip the per-snapshot usage, which
					 * walks every exception */
#define PROTO_F_REQ_ID		0x0001	/* SNAP_CREATE: carries a request id
					 * (a retry of the same create finds
					 * its snapshot instead of EEXIST) */
#define PROTO_F_FROM		0x0002	/* SNAP_CREATE: a snapshot of the
					 * snapshot named in `from` (a master
					 * older than the flag refuses it) */
#define PROTO_F_REQ_IDS		0x0002	/* SNAP_LIST: give each snapshot's
					 * request id (PROTO_SNAP_REQ_ID); a
					 * master older than the flag refuses
					 * the request */
#define PROTO_F_DELETE		0x0001	/* SNAP_ROLLBACK: the snapshot ends
					 * with the start (its content is the
					 * origin's from then on) */
#define PROTO_F_QUERY		0x0002	/* SNAP_ROLLBACK: no name, change
					 * nothing, report the running
					 * rollback (a master older than the
					 * type closes the connection) */
#define PROTO_F_ROLLBACK_OK	0x0004	/* IDENTIFY (origin): the client asks
					 * before reading while a rollback runs
					 * (ORIGIN_READ); the reply then carries
					 * identify_ok.state */
#define PROTO_F_RB_START	0x0001	/* BARRIER: a rollback starts with it:
					 * from the acknowledgement on, origin
					 * reads ask (ORIGIN_READ) */
#define PROTO_F_RB_END		0x0002	/* BARRIER (seq 0): the rollback has
					 * ended: read the origin directly;
					 * answered at once, nothing drained */
#define PROTO_F_MASK		0x0007

/* IDENTIFY volume kinds.  */
enum proto_volume {
	PROTO_VOL_ORIGIN	= 1,
	PROTO_VOL_SNAPSHOT	= 2,
	PROTO_VOL_ADMIN		= 3,
};

/* Where a snapshot chunk lives (extents of SNAP_READ / SNAP_WRITE).  */
enum proto_where {
	PROTO_AT_STORE		= 1,	/* at store chunk store_chunk + i */
	PROTO_AT_ORIGIN		= 2,	/* still on the origin, now read-locked
					 * for this connection until
					 * SNAP_READ_DONE */
};

/* SNAP_SET field mask.  */
#define PROTO_SET_PRIORITY	0x1
#define PROTO_SET_USECOUNT	0x2	/* usecount_delta added to use count */

/* Snapshot flags (snapinfo.flags).  */
#define PROTO_SNAP_BUSY		0x1	/* being created or deleted */
#define PROTO_SNAP_REQ_ID	0x2	/* req_id follows (only in replies to a
					 * SNAP_LIST with PROTO_F_REQ_IDS, and
					 * only for a snapshot that has one) */
#define PROTO_SNAP_USAGE_UNKNOWN 0x4	/* unique/shared are not known (0): the
					 * store has no valid usage counters
					 * (csnap check --repair-counters).  Only
					 * in a SNAP_LIST reply that carries
					 * usage (no PROTO_F_NO_USAGE), so the
					 * exports' polling never sees it */
#define PROTO_SNAP_PARENT	0x8	/* parent_id follows: a snapshot of a
					 * snapshot (create --from).  Only in a
					 * SNAP_LIST reply that carries usage,
					 * as PROTO_SNAP_USAGE_UNKNOWN */
#define PROTO_SNAP_KNOWN_FLAGS	(PROTO_SNAP_BUSY | PROTO_SNAP_REQ_ID | PROTO_SNAP_USAGE_UNKNOWN | \
				 PROTO_SNAP_PARENT)

struct proto_range {
	uint64_t start;		/* first chunk (origin/snapshot chunk index) */
	uint32_t count;		/* chunks, >= 1 */
};

struct proto_extent {
	uint64_t start;		/* first volume chunk */
	uint32_t count;
	uint8_t where;		/* enum proto_where */
	uint64_t store_chunk;	/* PROTO_AT_STORE: store chunk of `start` */
};

struct proto_challenge {
	uint16_t version_min, version_max;
	struct csnap_uuid store;
	uint8_t nonce[PROTO_NONCE_LEN];
};

struct proto_auth {			/* request */
	uint16_t version;
	uint8_t nonce[PROTO_NONCE_LEN];	/* client nonce */
	uint8_t mac[PROTO_MAC_LEN];	/* proto_auth_mac(.., 'C', ..) */
};

struct proto_auth_ok {			/* reply body */
	uint8_t mac[PROTO_MAC_LEN];	/* proto_auth_mac(.., 'S', ..) */
};

struct proto_identify {
	struct csnap_uuid store;
	uint8_t volume;			/* enum proto_volume */
	uint16_t host_id;		/* client's sanlock host id, 0 unknown */
	char snapshot[PROTO_NAME_MAX + 1];	/* PROTO_VOL_SNAPSHOT only */
	char client[PROTO_STR_MAX + 1];	/* free text: "node/export" */
};

struct proto_identify_ok {
	uint32_t chunk_size;		/* bytes */
	uint32_t snap_id;		/* snapshot volumes; 0 otherwise */
	uint64_t origin_size;		/* bytes */
	uint64_t volume_size;		/* bytes of the identified volume */
	uint64_t store_data_offset;	/* byte offset of store chunk 0; store
					 * chunk X is at offset + X * chunk_size */
	uint64_t generation;		/* master generation (changes on failover) */
	/* Only in a reply to an IDENTIFY with PROTO_F_ROLLBACK_OK (then
	 * has_state; on the wire: a trailing le32): */
	bool has_state;
	uint32_t state;			/* PROTO_STATE_* */
};
#define PROTO_STATE_ROLLBACK	0x1	/* a rollback runs: ask before reads */

struct proto_ranges {			/* ORIGIN_WRITE, SNAP_READ, SNAP_READ_DONE,
					 * SNAP_WRITE, LOCK_UPLOAD */
	uint32_t n;
	struct proto_range *r;
};

struct proto_extents {			/* SNAP_READ / SNAP_WRITE replies */
	uint32_t n;
	struct proto_extent *e;
};

struct proto_barrier {
	uint64_t seq;			/* increasing per master */
};

#define PROTO_REQ_ID_LEN	16
struct proto_snap_create {
	char name[PROTO_NAME_MAX + 1];
	int32_t priority;
	uint8_t req_id[PROTO_REQ_ID_LEN];	/* with PROTO_F_REQ_ID: random,
						 * the same for every retry of
						 * one create; never all zero */
	char from[PROTO_NAME_MAX + 1];	/* with PROTO_F_FROM: the parent */
};

struct proto_snap_name {		/* SNAP_DELETE */
	char name[PROTO_NAME_MAX + 1];
};

struct proto_snap_rename {		/* SNAP_RENAME; reply: snapinfo */
	char name[PROTO_NAME_MAX + 1];		/* the live snapshot */
	char new_name[PROTO_NAME_MAX + 1];	/* its new name */
};

struct proto_resize {			/* ORIGIN_RESIZE reply, ORIGIN_SIZE
					 * request (origin bytes); STORE_GROW
					 * reply (data area bytes);
					 * old_size <= new_size */
	uint64_t old_size;		/* bytes */
	uint64_t new_size;		/* bytes */
};

#define PROTO_RB_ACTIVE		0x1	/* proto_rollback.flags: one runs */
struct proto_rollback {			/* SNAP_ROLLBACK reply */
	uint32_t flags;			/* PROTO_RB_*; 0: none runs (then the
					 * rest is zero) */
	char name[PROTO_NAME_MAX + 1];	/* the snapshot rolled back to, as
					 * named at the start */
	uint64_t cursor;		/* origin chunks below it are done */
	uint64_t origin_chunks;		/* the cursor's end */
	uint64_t started;		/* seconds since the epoch */
};

struct proto_snap_set {
	char name[PROTO_NAME_MAX + 1];
	uint32_t mask;			/* PROTO_SET_* */
	int32_t priority;
	int32_t usecount_delta;
};

struct proto_snapinfo {
	uint32_t id;
	uint32_t flags;			/* PROTO_SNAP_* */
	char name[PROTO_NAME_MAX + 1];
	uint64_t ctime;			/* seconds since the epoch */
	int32_t priority;
	uint32_t usecount;
	uint64_t unique_chunks;		/* store chunks only this snapshot uses */
	uint64_t shared_chunks;		/* store chunks shared with others */
	uint8_t req_id[PROTO_REQ_ID_LEN];	/* with PROTO_SNAP_REQ_ID: the
						 * create request's id (for a
						 * received snapshot, its source;
						 * src/send/ident.h) */
	uint32_t parent_id;		/* with PROTO_SNAP_PARENT: the snapshot
					 * it was made from (may be deleted) */
};

struct proto_snap_list {		/* SNAP_LIST reply */
	uint32_t n;
	struct proto_snapinfo *s;
};

struct proto_client_info {
	uint16_t host_id;
	uint8_t volume;
	uint32_t snap_id;
	char name[PROTO_STR_MAX + 1];
	char peer[PROTO_STR_MAX + 1];	/* "address:port" */
};

struct proto_status {			/* STATUS reply */
	struct csnap_uuid store;
	uint32_t chunk_size;
	uint32_t max_snapshots;
	uint32_t nsnapshots;
	uint64_t store_chunks;		/* data chunks in the store */
	uint64_t free_chunks;
	uint64_t origin_size;		/* bytes */
	uint16_t master_host_id;
	uint16_t master_port;
	uint64_t generation;
	char master_address[PROTO_STR_MAX + 1];
	char master_node[PROTO_STR_MAX + 1];
	uint32_t nclients;
	struct proto_client_info *clients;
};

struct proto_changed {			/* CHANGED request */
	char from[PROTO_NAME_MAX + 1];
	char to[PROTO_NAME_MAX + 1];	/* "": the live origin */
	uint64_t start;			/* first chunk to consider */
	uint32_t max_ranges;		/* at most this many ranges back */
};

struct proto_changed_reply {
	uint64_t next;			/* resume here; UINT64_MAX when done */
	struct proto_ranges ranges;
};

/*
 * A decoded (or to-be-encoded) message.  For replies with status != 0 only
 * `error` is meaningful.  Array members (ranges.r, extents.e, ...) belong to
 * the message after proto_decode(); release them with proto_msg_free().
 * When encoding, the caller owns them.
 */
struct proto_msg {
	uint16_t type;			/* enum proto_type, maybe | PROTO_REPLY */
	uint16_t flags;
	uint64_t id;
	uint32_t status;		/* replies: 0 or positive errno */
	char error[PROTO_STR_MAX + 1];	/* replies with status != 0 */
	union {
		struct proto_challenge challenge;
		struct proto_auth auth;
		struct proto_auth_ok auth_ok;
		struct proto_identify identify;
		struct proto_identify_ok identify_ok;
		struct proto_ranges ranges;
		struct proto_extents extents;
		struct proto_barrier barrier;
		struct proto_snap_create snap_create;
		struct proto_snap_name snap_name;	/* SNAP_DELETE, SNAP_ROLLBACK */
		struct proto_rollback rollback;
		struct proto_snap_set snap_set;
		struct proto_snap_rename snap_rename;
		struct proto_snapinfo snapinfo;	/* CREATE / SET / RENAME replies,
						 * SNAP_ADDED requests */
		struct proto_snap_list snap_list;
		struct proto_status status;
		struct proto_changed changed;
		struct proto_changed_reply changed_reply;
		struct proto_resize resize;
	} u;
};

/* ---- growable byte buffer --------------------------------------------- */

struct proto_buf {
	uint8_t *data;
	size_t len;			/* bytes held */
	size_t cap;
	size_t off;			/* bytes already consumed from the front */
};

void proto_buf_init(struct proto_buf *b);
void proto_buf_free(struct proto_buf *b);
/* Make room for `more` bytes after len; returns 0 or -ENOMEM.  */
int proto_buf_reserve(struct proto_buf *b, size_t more);
/* Drop consumed bytes from the front (cheap; called after parsing).  */
void proto_buf_compact(struct proto_buf *b);

/* ---- encode / decode --------------------------------------------------- */

/* Appends the whole message (header + payload) to OUT.  Validates the
 * message like decode would, so a sender never emits what the receiver
 * would reject.  Returns 0, -EINVAL (bad message, err_set) or -ENOMEM. */
int proto_encode(const struct proto_msg *m, struct proto_buf *out);

struct proto_hdr {
	uint16_t type;
	uint16_t flags;
	uint32_t len;
	uint64_t id;
	uint32_t crc;
};

/* Parses and validates a header from PROTO_HDR_SIZE bytes: known type,
 * flags allowed, len <= PROTO_MAX_PAYLOAD, reserved zero.  Returns 0 or
 * -EBADMSG with err_set.  */
int proto_decode_hdr(const uint8_t *buf, struct proto_hdr *h);

/* Decodes the payload of a message whose header was accepted, checking
 * the crc and every field.  Returns 0 or -EBADMSG (err_set) / -ENOMEM.
 * On failure OUT holds nothing that needs freeing.  */
int proto_decode(const struct proto_hdr *h, const uint8_t *payload,
		 struct proto_msg *out);

/* Tries to take one whole message from the front of IN: returns 1 with
 * OUT filled (and the bytes consumed), 0 if more bytes are needed, or a
 * negative errno on a protocol error.  */
int proto_take(struct proto_buf *in, struct proto_msg *out);

/* Frees the arrays a decoded message owns; safe on any decoded message
 * and on a zeroed one.  */
void proto_msg_free(struct proto_msg *m);

/* Builders for the common shapes.  Set type/id/status on a zeroed msg. */
void proto_msg_init(struct proto_msg *m, uint16_t type, uint64_t id);
/* A failed reply to REQ: status errnum (positive) and a one-line reason. */
void proto_msg_error(struct proto_msg *m, const struct proto_msg *req,
		     uint32_t errnum, const char *reason);

/* STATUS replies: the bytes one client entry takes on the wire, and the
 * most everything else in the reply takes.  PROTO_MAX_CLIENTS entries of
 * the longest names would not fit in PROTO_MAX_PAYLOAD: a server lists
 * only the clients that fit.  */
#define PROTO_STATUS_FIXED_MAX	(4 + 16 + 3 * 4 + 3 * 8 + 2 * 2 + 8 + 2 * (2 + PROTO_STR_MAX) + 4)
size_t proto_client_info_size(const struct proto_client_info *ci);

/* Snapshot names on the wire: snap_name_valid() (utils/snapname.h).  A
 * well-formed but reserved name still decodes (an old store may hold
 * one: it must stay listable and deletable); creation refuses it.  */
bool proto_name_valid(const char *name);
const char *proto_type_name(uint16_t type);

/* ---- authentication ---------------------------------------------------- */

/* HMAC-SHA256 keyed by the store secret over
 *   "csnap-auth" || role || version || server_nonce || client_nonce
 * role 'C' proves the client, 'S' the server.  */
void proto_auth_mac(const uint8_t secret[PROTO_SECRET_LEN], char role,
		    uint16_t version,
		    const uint8_t server_nonce[PROTO_NONCE_LEN],
		    const uint8_t client_nonce[PROTO_NONCE_LEN],
		    uint8_t mac[PROTO_MAC_LEN]);
/* Constant-time check of a received MAC; true if it matches.  */
bool proto_auth_verify(const uint8_t secret[PROTO_SECRET_LEN], char role,
		       uint16_t version,
		       const uint8_t server_nonce[PROTO_NONCE_LEN],
		       const uint8_t client_nonce[PROTO_NONCE_LEN],
		       const uint8_t mac[PROTO_MAC_LEN]);
/* Fills a nonce from the system CSPRNG (libsodium randombytes). */
void proto_random(uint8_t *buf, size_t len);

#endif
