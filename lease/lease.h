/*
 * lease/lease.h - csnap's use of sanlock: the lease area of a snapshot store,
 * the node's delta lease (lockspace membership), the store's `master` paxos
 * lease, the lease-owner record that tells everyone where the master is, and
 * the fencing rules the master obeys.
 *
 * lease/ is the only code that talks to libsanlock.  It knows nothing of the
 * store format: the caller gives the device path, the byte offset of the
 * lease area, its alignment and sector size, and the store uuid (which
 * names the lockspace).  Layout of the area (struct lease_area):
 *
 *   offset + 0        sanlock lockspace "csnap-<32 hex of uuid>"
 *   offset + align    sanlock paxos resource "master"
 *   offset + 2*align  lease-owner record (one sector, see below)
 *
 * Allowed (sector_size, align): (512, 1 MiB), (4096, 1/2/4/8 MiB).
 *
 * Who may trust the record: lease_find_master() returns an address only if
 * the record's {lver, host_id, generation} equal what sanlock reports as the
 * current owner of the master lease and that owner's delta lease is live as
 * seen by this node's sanlock daemon (so the node must have joined the
 * lockspace).  Anything else is "no master" or "master changing".
 *
 * Processes talk to the sanlock daemon named by $SANLOCK_RUN_DIR (default
 * /run/sanlock); libsanlock remembers the first one a process uses.
 *
 * Error convention: negative errno + err_set() (utils/err.h).  sanlock's own
 * codes are mapped by lease_sanlock_error() to an errno and a message.
 */
#ifndef CSNAP_LEASE_H
#define CSNAP_LEASE_H

#include "utils/uuid.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEASE_NAME_LEN		48	/* sanlock name limit (no NUL needed) */
#define LEASE_LOCKSPACE_PREFIX	"csnap-"
#define LEASE_RESOURCE_MASTER	"master"
#define LEASE_ADDR_LEN		64	/* record address field, NUL-padded */
#define LEASE_PATH_LEN		1024
#define LEASE_MAX_HOSTS		2000	/* host_id range is 1..LEASE_MAX_HOSTS */

/* Where a store's leases live.  Filled by lease_area_setup().  */
struct lease_area {
	char path[LEASE_PATH_LEN];		/* store device or file */
	uint64_t offset;			/* start of the lease area */
	uint32_t align;				/* bytes per region */
	uint32_t sector_size;			/* 512 or 4096 */
	char lockspace[LEASE_NAME_LEN + 1];	/* "csnap-" + 32 hex */
};

/* Checks the geometry (offset multiple of align, allowed align/sector
 * pair) and derives the lockspace name from UUID.  */
int lease_area_setup(struct lease_area *a, const char *path, uint64_t offset,
		     uint32_t align, uint32_t sector_size,
		     const struct csnap_uuid *uuid);
/* Byte offsets of the three regions.  */
uint64_t lease_area_lockspace_offset(const struct lease_area *a);
uint64_t lease_area_master_offset(const struct lease_area *a);
uint64_t lease_area_record_offset(const struct lease_area *a);
/* Lockspace name for a uuid: "csnap-" + 32 lowercase hex digits.  */
void lease_lockspace_name(const struct csnap_uuid *uuid, char out[LEASE_NAME_LEN + 1]);

/* ---- Initialisation (no sanlock daemon needed) ------------------------ */

/* Writes the lockspace (io_timeout in seconds recorded in it), the master
 * resource and an empty lease-owner record.  Refuses with -EBUSY if any
 * host's delta lease or the master lease is held (or was never released:
 * a crashed host) unless FORCE.  Safe only while no host uses the store.  */
int lease_init(const struct lease_area *a, uint32_t io_timeout, bool force);

/* ---- Hosts (delta leases), read straight from disk -------------------- */

enum lease_host_state {
	LEASE_HOST_UNKNOWN = 1,	/* local sanlock has not watched long enough */
	LEASE_HOST_FREE = 2,	/* delta lease not held */
	LEASE_HOST_LIVE = 3,
	LEASE_HOST_FAIL = 4,	/* stopped renewing; being recovered */
	LEASE_HOST_DEAD = 5,	/* gone for good: its leases are free */
	LEASE_HOST_NOT_JOINED = 6,	/* held on disk; liveness not known because
					 * this node has not joined the lockspace */
	LEASE_HOST_RENEWING = 7,	/* seen renewing on disk (lease_hosts_watch) */
	LEASE_HOST_STALE = 8,		/* held on disk, not renewed while watched */
};
const char *lease_host_state_name(enum lease_host_state s);

struct lease_host {
	uint32_t host_id;
	uint64_t generation;
	uint64_t timestamp;		/* owner's monotonic seconds; 0 = released */
	uint32_t io_timeout;
	char name[LEASE_NAME_LEN + 1];	/* sanlock daemon's -e name */
	enum lease_host_state state;
};

/* Lists every host_id slot that was ever used (generation > 0), with
 * liveness from the local daemon when this node has joined.  *hosts is
 * malloc'd; caller frees.  */
int lease_hosts(const struct lease_area *a, struct lease_host **hosts, int *count);

/* ---- Liveness and mastership from the disk alone (lease/watch.c) ------- */

/* How long lease_hosts_watch() needs for these hosts (3 x the largest
 * io_timeout + 1 s), 0 if no host needs watching.  */
int lease_watch_ms(const struct lease_host *h, int n);
/* Hosts the local daemon cannot vouch for (NOT_JOINED, UNKNOWN) but that
 * hold their delta lease: re-reads the delta leases for up to WAIT_MS and
 * sets RENEWING (timestamp moved), FREE (released meanwhile) or STALE
 * (unchanged the whole time).  */
int lease_hosts_watch(const struct lease_area *a, struct lease_host *h, int n, int wait_ms);

struct lease_master_disk {
	bool held;		/* the leader names an owner and is not released */
	uint64_t host_id, generation, lver;
	int64_t held_for_s;	/* owner's delta timestamp - acquisition time
				 * (same host's clock); -1 if not known */
};
/* The master lease's leader record as on disk; H, N (from lease_hosts)
 * give the owner's last renewal for held_for_s.  */
int lease_master_disk(const struct lease_area *a, const struct lease_host *h, int n,
		      struct lease_master_disk *out);

/* ---- Checking the area on disk (lease/check.c) ------------------------- */

/* Reads the whole lease area and calls PROBLEM with one line per damaged
 * record (delta lease sectors, the master lease's leader, request record
 * and host blocks, the lease-owner record: magic, sanlock checksum,
 * lockspace and resource names).  Returns the number of problems, or
 * -errno if the area cannot be read.  */
long lease_check_area(const struct lease_area *a, void (*problem)(void *arg, const char *msg),
		 void *arg);

/* ---- Joining the lockspace (the node's delta lease) ------------------- */

/* Asks the local daemon to join with HOST_ID (async; returns at once).
 * Already joined with the same host_id: 0.  Joined with a different host_id
 * on this node: -EEXIST with a clear message.  */
int lease_join_start(const struct lease_area *a, uint32_t host_id, uint32_t io_timeout);
/* Waits until joined (0), failed (-errno: e.g. the host_id is in use by a
 * live host elsewhere: -EADDRINUSE), or TIMEOUT_MS passed (-ETIMEDOUT).  */
int lease_join_wait(const struct lease_area *a, uint32_t host_id, int timeout_ms);
/* lease_join_start + lease_join_wait.  */
int lease_join(const struct lease_area *a, uint32_t host_id, uint32_t io_timeout,
	       int timeout_ms);
/* 0 joined, -ENOENT not joined, -EINPROGRESS joining.  */
int lease_joined(const struct lease_area *a, uint32_t host_id);
/* Leaves (the daemon kills processes still holding leases in it unless
 * UNUSED_ONLY, which fails with -EBUSY instead).  */
int lease_leave(const struct lease_area *a, uint32_t host_id, bool unused_only);

/* ---- The master lease ------------------------------------------------- */

/* One per server process.  Threads must serialise calls on one master.  */
struct lease_master {
	struct lease_area area;
	uint32_t host_id;
	uint32_t io_timeout;		/* of the lockspace, seconds */
	int sock;			/* registered sanlock connection, -1 */
	bool held;
	uint64_t lver;			/* of our ownership, when held */
	uint64_t generation;		/* our host generation, when held */
	int64_t valid_until_ns;		/* CLOCK_MONOTONIC; see lease_master_check */
	bool published;			/* our record is (to be) on disk: */
	char pub_address[LEASE_ADDR_LEN];
	uint16_t pub_port;
	uint64_t pub_epoch;
};

/* Registers this process with the local sanlock daemon (the connection
 * whose closing releases the lease) and arranges fencing: sanlock runs
 * `kill -FENCE_SIGNAL <pid>` when it must take the lease away (killpath).
 * Install the handler first with lease_fence_install(FENCE_SIGNAL).
 * Sets SIGPIPE to ignored if it was at its default (libsanlock would
 * otherwise die of SIGPIPE when the daemon goes away).  */
int lease_master_open(struct lease_master *m, const struct lease_area *a,
		      uint32_t host_id, int fence_signal);
/* Tries once, never waits for an owner.  0: we are master (m->lver,
 * m->generation, valid_until_ns set).  -EBUSY: a live host holds it.
 * -EAGAIN: free soon (owner failing or being released) or lost a race: try
 * again.  -ENOTCONN: this node has not joined the lockspace.  -ENOLCK:
 * this process is fenced.  */
int lease_master_acquire(struct lease_master *m);
/* Whose turn it is to try for the master lease (lease/turn.c): standbys
 * that all ask sanlock the moment the lease is freed collide in paxos and
 * each sleeps a random 0-1 s.  From the leader record on disk and the local
 * daemon's view of the hosts.  */
struct lease_turn {
	bool takeable;		/* looks free from here: released (leader or
				 * the owner's dblock) or its owner dead */
	bool owner_live;	/* held by a host the local daemon sees live,
				 * in the generation that holds it */
	uint64_t lver;		/* the leader's version on disk */
	int rank;		/* live hosts before us in line after the
				 * (last) owner */
};
int lease_master_turn(const struct lease_master *m, struct lease_turn *t);
/* A standby's memory between polls (zero it once).  */
struct lease_turns {
	uint64_t free_lver;	/* the freed version we wait our turn for */
	int64_t free_seen_ms;	/* when we first saw it freed */
	int64_t asked_ms;	/* when we last asked sanlock */
};
/* Whether to ask sanlock now: T (NULL: could not be read) at NOW_MS;
 * once freed, rank x TURN_MS after we first saw it; while a live host
 * holds it, every HELD_ASK_MS; otherwise at once.  */
bool lease_turn_ask(struct lease_turns *w, const struct lease_turn *t, int64_t now_ms,
		    int turn_ms, int held_ask_ms);
/* Orderly release, after the caller stopped all writes and called
 * lease_master_unpublish().  */
int lease_master_release(struct lease_master *m);
/* Asks sanlock whether we still hold the lease and refreshes
 * valid_until_ns from our delta lease's last renewal.  Once published, it
 * also re-reads the lease-owner record and writes ours again if someone
 * overwrote it (e.g. a previous master that was paused just before writing
 * its own record).  0 held; -ENOLCK lost
 * (fenced, sanlock no longer lists it, or the registered connection to the
 * daemon broke; m->held is then false).  Other errors: could not check
 * this time (the deadline still protects).  Call it about every second.  */
int lease_master_check(struct lease_master *m);
/* Closes the connection (the daemon releases anything still held).  */
void lease_master_close(struct lease_master *m);

/* ---- Fencing ----------------------------------------------------------- */

/* Installs an async-signal-safe handler for SIGNO that sets the process
 * fence flag.  Once set it is never cleared: the process must stop issuing
 * writes and exit.  */
int lease_fence_install(int signo);
/* Sets the flag (for callers that learn of loss another way).  */
void lease_fence_now(void);
bool lease_fenced(void);
/* May the master commit now?  0 yes; -ENOLCK if fenced, not held, or the
 * monotonic clock has passed valid_until_ns (the lease may have expired:
 * another host could take it once ours looks dead).  Cheap: no I/O.
 * valid_until_ns only moves forward in lease_master_check(), so a master
 * that stops calling it stops being allowed to commit after about
 * 7 * io_timeout.  */
int lease_may_commit(const struct lease_master *m);
/* Deadline from the delta lease renewal time RENEWED_S (owner's monotonic
 * seconds) and IO_TIMEOUT: sanlock starts recovery at renewal + 8*io_timeout;
 * we stop one io_timeout earlier.  In ns of CLOCK_MONOTONIC.  */
int64_t lease_deadline_ns(uint64_t renewed_s, uint32_t io_timeout);

/* ---- The lease-owner record ------------------------------------------- */

#define LEASE_RECORD_MAGIC	0x524f4c50414e5343ULL	/* "CSNAPLOR" */
#define LEASE_RECORD_VERSION	1
#define LEASE_RECORD_SIZE	512	/* encoded bytes; written as one sector */

struct lease_record {
	uint64_t lver;		/* master lease version of the writer */
	uint64_t host_id;	/* writer's host_id */
	uint64_t generation;	/* writer's host generation */
	uint64_t epoch;		/* the server's epoch (opaque here) */
	uint64_t write_seq;	/* incremented on every write */
	uint16_t port;
	char address[LEASE_ADDR_LEN];	/* NUL-terminated */
	char lockspace[LEASE_NAME_LEN + 1];	/* must equal the area's */
};

/* An empty record (host_id 0) means "no master published".  */
bool lease_record_is_empty(const struct lease_record *r);
/* Encodes into BUF[LEASE_RECORD_SIZE] (crc32c, magic, offset it is written
 * at).  -EINVAL for an unencodable record.  */
int lease_record_encode(const struct lease_record *r, uint64_t offset, uint8_t *buf);
/* Decodes and validates: -EBADMSG bad magic/version/checksum/field,
 * -EIO written for another offset (misdirected).  */
int lease_record_decode(const uint8_t *buf, uint64_t offset, struct lease_record *r);
/* O_DIRECT|O_DSYNC write/read of the record sector.  */
int lease_record_write(const struct lease_area *a, const struct lease_record *r);
int lease_record_read(const struct lease_area *a, struct lease_record *r);
/* Writes an empty record (lease init).  */
int lease_record_clear(const struct lease_area *a);
/* The new master's publish: a record from m (lver, host, generation) and
 * ADDRESS/PORT/EPOCH, written and read back.  Requires m->held.  */
int lease_master_publish(struct lease_master *m, const char *address,
			 uint16_t port, uint64_t epoch);
/* Orderly shutdown, before lease_master_release(): clears the record (if it
 * is still ours) and stops lease_master_check() from re-publishing.  */
int lease_master_unpublish(struct lease_master *m);

/* ---- Finding the master ------------------------------------------------ */

enum lease_master_state {
	LEASE_MASTER_VALID = 0,		/* address is trustworthy */
	LEASE_MASTER_NONE = 1,		/* nobody holds the master lease */
	LEASE_MASTER_CHANGING = 2,	/* held, but record not (yet) matching, or
					 * owner failing: ask again shortly */
};
const char *lease_master_state_name(enum lease_master_state s);

/* sanlock's view, as gathered by lease_find_master().  */
struct lease_owner_view {
	bool owned;			/* resource has an exclusive owner */
	uint64_t lver;
	uint64_t host_id;
	uint64_t generation;
	enum lease_host_state host_state;	/* of the owner */
	uint64_t host_generation;	/* owner's current delta-lease generation */
};

struct lease_master_info {
	enum lease_master_state state;
	uint64_t host_id, generation, lver, epoch;
	char address[LEASE_ADDR_LEN];
	uint16_t port;
	char why[160];			/* one line: why not VALID */
};

/* The pure rule (unit tested): REC_RC is lease_record_read()'s result.  */
enum lease_master_state lease_validate(const struct lease_record *rec, int rec_rc,
				       const struct lease_owner_view *view,
				       char *why, size_t whylen);
/* Reads record and sanlock's view and applies lease_validate().  Returns 0
 * with *out filled (any state), or -errno when it could not look at all
 * (-ENOTCONN: this node has not joined the lockspace; daemon not running).  */
int lease_find_master(const struct lease_area *a, struct lease_master_info *out);

/* ---- sanlock errors ---------------------------------------------------- */

/* Maps a libsanlock return code (negative errno or SANLK_* code) to a
 * negative errno, and sets err to "WHAT: message".  */
int lease_sanlock_error(int rv, const char *what);
/* The message alone (static string), for tests and logs.  */
const char *lease_sanlock_strerror(int rv);

#endif
