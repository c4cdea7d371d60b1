/*
 * src/export/grant.h - a volume's grant from the master (src/proto/proto.h
 * "Grants"; the timing argument is in docs/RELIABILITY.md).
 *
 * What a volume remembers without asking (the origin's unique chunks, a
 * snapshot's cached locations) and the I/O the master's answers allowed
 * count only while the grant of the current connection lasts:
 *  - every successful reply extends it to PROTO_GRANT_MS after its request
 *    was SENT (sreq.sent_ns, boot clock: a suspend does not stretch it);
 *  - a PING every PROTO_PING_MS keeps it fresh while the session is up;
 *  - losing (or letting go of) the connection ends it, and bumps the epoch
 *    so that I/O admitted under the old connection is not issued even if
 *    the next connection brings a fresh grant;
 *  - grant_gate_ok() is asked by an ioengine gate right before each I/O
 *    is handed to the kernel.
 */
#ifndef CSNAP_EXPORT_GRANT_H
#define CSNAP_EXPORT_GRANT_H

#include "src/export/loop.h"
#include "src/export/session.h"

#include <stdbool.h>
#include <stdint.h>

struct grant {
	int64_t until_ns;		/* csnap_boot_ns(); 0: none */
	uint64_t epoch;			/* connection number */
	struct evloop *lp;
	struct session *sess;		/* pinged while up; NULL: none */
	struct sreq ping;
	bool ping_inflight;
	struct evloop_timer timer;
};

void grant_init(struct grant *g, struct evloop *lp);
/* The session to ping (set after it is created; NULL when it goes).  */
static inline void grant_set_session(struct grant *g, struct session *sess) { g->sess = sess; }
bool grant_valid(const struct grant *g);
/* A successful reply on the current connection to a request sent at
 * SENT_NS.  */
void grant_renew(struct grant *g, int64_t sent_ns);
/* The connection is gone or let go: no grant, new epoch.  */
void grant_drop(struct grant *g);
/* May I/O admitted under EPOCH go to the kernel now?  */
bool grant_gate_ok(const struct grant *g, uint64_t epoch);
/* Ping while the session is up: call when it (re)connects.  */
void grant_ping_start(struct grant *g);
void grant_ping_stop(struct grant *g);
/* A PING is waiting for its answer (the session stays up for it).  */
static inline bool grant_ping_busy(const struct grant *g) { return g->ping_inflight; }
/* Milliseconds since it ran out (0 if it never was or still holds).  */
int64_t grant_expired_ms(const struct grant *g);
/* Milliseconds it still holds (0 if none or run out).  */
int64_t grant_left_ms(const struct grant *g);

#endif
