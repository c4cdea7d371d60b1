/*
 * src/export/csvol.h - csnap's volumes: the origin and its snapshots, as
 * seen by the data path (volume_origin.c, volume_snap.c).
 *
 * Both read and write the shared devices directly and ask the master only
 * metadata questions over their own session:
 *  - origin: before writing chunks not known to be unique, ORIGIN_WRITE
 *    (the master copies them out to the store first); unique chunks are
 *    remembered until the next snapshot barrier or master change.
 *  - snapshot: SNAP_READ says where each chunk is (store chunk, or still
 *    on the origin, read-locked until SNAP_READ_DONE); SNAP_WRITE gives
 *    chunks unique to the snapshot.  Locations are cached.
 */
#ifndef CSNAP_EXPORT_CSVOL_H
#define CSNAP_EXPORT_CSVOL_H

#include "src/export/volume.h"

#include <stddef.h>
#include <stdint.h>

struct dio;
struct evloop;
struct master_target;
struct session;

/* What a store's volumes share.  */
struct csvol_env {
	struct evloop *lp;
	const struct master_target *tgt;
	struct dio *origin;		/* origin device */
	struct dio *store;		/* snapshot store device */
	uint32_t chunk_size;		/* bytes, power of two */
	unsigned chunk_shift;
	uint64_t origin_size;		/* bytes */
	uint64_t data_offset;		/* store byte offset of store chunk 0 */
	uint64_t store_chunks;		/* data chunks in the store (bounds check;
					 * grows with the store) */
	size_t cache_entries;		/* per snapshot location cache bound */
	/* The master created a snapshot (SNAP_ADDED on the origin session):
	 * serve it now.  Returns 0 or a negative errno.  Optional.  */
	int (*snap_added)(void *arg, const char *name);
	/* The origin grew to SIZE bytes (ORIGIN_SIZE on the origin session,
	 * or a larger size in the IDENTIFY answer): the device must have it;
	 * later snapshots get it.  Returns 0 or a negative errno.  Optional. */
	int (*origin_resized)(void *arg, uint64_t size);
	/* The master named store chunk SC at or past store_chunks: the store
	 * may have grown (`csnap grow`).  Returns the data chunks the
	 * superblock says now (store_chunks if it cannot tell).  Optional. */
	uint64_t (*store_chunks_now)(void *arg, uint64_t sc);
	void *snap_arg;
};

int volume_origin_create(const struct csvol_env *env, struct volume **out);

/* Before the NBD server goes away: end the volume's session, failing the
 * requests that wait for the master (so nothing waits forever).  */
void volume_origin_shutdown(struct volume *vol);
void volume_snap_shutdown(struct volume *vol);

/* Snapshot volumes learn their size when their session identifies:
 * READY runs then (the volume can be exported); GONE runs if the master
 * refuses it (the snapshot was deleted).  */
typedef void (*csvol_notify_fn)(void *arg, struct volume *vol, int err, const char *why);
int volume_snap_create(const struct csvol_env *env, const char *name,
		       csvol_notify_fn ready, csvol_notify_fn gone, void *arg,
		       struct volume **out);
/* The size a new snapshot has (the master just created it from the
 * origin): it can be served before its session has identified it.  */
void volume_snap_set_size(struct volume *vol, uint64_t size);
/* Stop using the snapshot (deleted): new requests fail with EIO.  */
void volume_snap_retire(struct volume *vol);

/* volume_ops.changed for csnap volumes (changed.c): asks the master over
 * S which chunks differ between snapshot Q->from and TO (a snapshot name,
 * "" for the live origin).  */
void csvol_changed(struct session *s, unsigned chunk_shift, const char *to,
		   struct vol_changed_req *q);

#endif
