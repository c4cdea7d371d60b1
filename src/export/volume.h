/*
 * src/export/volume.h - what the NBD server exports: a volume is a byte
 * range with read, write, flush, trim and write-zeroes, all asynchronous.
 *
 * Backends: volume_file.c (a plain file or device, no snapshots: the
 * origin before csnap knows about it, and the bench baseline),
 * volume_origin.c and volume_snap.c (csnap's origin and snapshots).
 *
 * Contract:
 *  - vol->ops->submit() starts a request; req->done(req, err) is called
 *    exactly once, with 0 or a negative errno, either before submit()
 *    returns or later from the event loop.  The caller keeps REQ and its
 *    buffer alive until then.
 *  - Requests have been validated by the caller: off + len <= size,
 *    len > 0 except for flush, no write-like op on a read-only volume.
 *    Offsets and lengths need no alignment: backends handle unaligned I/O
 *    correctly (read-modify-write, ordered against concurrent requests
 *    that touch the same device blocks).
 *  - VOL_FLUSH completes once every write that completed before it was
 *    submitted is durable, together with the metadata it depends on.
 *    VOL_REQ_FUA makes a single write durable before it completes.
 *  - Volumes are reference counted; the NBD server holds one per
 *    connection and one while it lists the volume.
 */
#ifndef CSNAP_EXPORT_VOLUME_H
#define CSNAP_EXPORT_VOLUME_H

#include <stdbool.h>
#include <stdint.h>

enum vol_op { VOL_READ, VOL_WRITE, VOL_FLUSH, VOL_TRIM, VOL_ZEROES };

#define VOL_REQ_FUA	0x1	/* durable before completion */

struct vol_req {
	enum vol_op op;
	unsigned flags;
	uint64_t off;
	uint32_t len;
	void *buf;		/* READ: filled; WRITE: the data; else NULL */
	void (*done)(struct vol_req *req, int err);
};

struct volume;

/* csnap:changed (volume_ops.changed): which chunks of the volume differ
 * from snapshot FROM, from the chunk holding byte OFF on.  */
struct vol_range {
	uint64_t start;		/* chunk */
	uint32_t count;		/* chunks, >= 1 */
};

struct vol_changed_req {
	const char *from;	/* snapshot name; kept alive by the caller */
	uint64_t off;		/* first byte of interest */
	uint32_t max_ranges;
	/* Results, valid only inside done() with err == 0: ranges in
	 * increasing order, none before the chunk holding OFF; below chunk
	 * NEXT (> that chunk; UINT64_MAX: all chunks) every changed chunk is
	 * in one of them.  */
	unsigned chunk_shift;
	const struct vol_range *r;
	uint32_t n;
	uint64_t next;
	/* Exactly once: err 0, or a negative errno and a one-line reason. */
	void (*done)(struct vol_changed_req *q, int err, const char *why);
};

struct volume_ops {
	void (*submit)(struct volume *vol, struct vol_req *req);
	/* Called when the last reference goes.  */
	void (*destroy)(struct volume *vol);
	/* Optional: an NBD connection starts / stops using the volume (a
	 * backend can hold resources only while somebody uses it).  */
	void (*attach)(struct volume *vol);
	void (*detach)(struct volume *vol);
	/* Optional (csnap volumes): the master's changed-chunk list.  */
	void (*changed)(struct volume *vol, struct vol_changed_req *q);
	/* Optional: log where its unanswered requests are (SIGUSR1).  */
	void (*log_state)(struct volume *vol);
};

#define VOL_READONLY	0x1
#define VOL_CAN_TRIM	0x2	/* trim actually frees or zeroes something */
#define VOL_SNAPSHOT	0x4	/* a csnap snapshot (csnap:changed can name it) */

#define VOL_NAME_MAX	256

struct volume {
	const struct volume_ops *ops;
	char name[VOL_NAME_MAX];
	char description[VOL_NAME_MAX];
	uint64_t size;
	unsigned flags;
	uint32_t pref_block;	/* preferred I/O size (NBD_INFO_BLOCK_SIZE) */
	unsigned refs;
};

static inline void volume_submit(struct volume *vol, struct vol_req *req)
{
	vol->ops->submit(vol, req);
}

static inline void volume_attach(struct volume *vol)
{
	if (vol->ops->attach)
		vol->ops->attach(vol);
}

static inline void volume_detach(struct volume *vol)
{
	if (vol->ops->detach)
		vol->ops->detach(vol);
}

static inline void volume_log_state(struct volume *vol)
{
	if (vol->ops->log_state)
		vol->ops->log_state(vol);
}

static inline struct volume *volume_get(struct volume *vol)
{
	vol->refs++;
	return vol;
}

static inline void volume_put(struct volume *vol)
{
	if (vol && --vol->refs == 0)
		vol->ops->destroy(vol);
}

/* A plain file or block device, exported as it is (volume_file.c).  */
struct evloop;
int volume_file_open(struct evloop *lp, const char *name, const char *path,
		     bool readonly, struct volume **out);

#endif
