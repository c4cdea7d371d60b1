/*
 * src/store/origin_id.h - the identity of a store's origin volume.
 *
 * A store only makes sense with the origin it was made for: a copy-out
 * from any other device silently corrupts every snapshot.  mkstore records
 * the origin's size and an identity string in the superblock (origin_id,
 * at most CSNAP_ORIGIN_ID_LEN bytes, "KIND:VALUE", or "KIND#HEX" where
 * VALUE was too long and HEX is a 128-bit BLAKE2b of it); whoever opens
 * the origin later (server at start and takeover, export, check) verifies
 * both before using it.  Kinds, strongest first:
 *
 *   dm:UUID        device-mapper uuid (LVM LV, multipath map, ...)
 *   wwid:ID        SCSI/NVMe world-wide id (sysfs wwid, device/wwid); for
 *                  a partition the disk's id with "/pN" appended
 *   serial:S       disk serial number (sysfs serial, device/serial)
 *   partuuid:U     GPT/MBR partition uuid (kept outside the partition, so
 *                  writes through csnap cannot change it)
 *   mark:UUID      a regular file (or the backing file of a loop device):
 *                  the extended attribute user.csnap.store, set by mkstore
 *                  to the store uuid, must name this store
 *   size:BYTES     nothing better was found: only the size is checked
 *
 * A filesystem UUID is deliberately not an identity: writes through the
 * csnap origin (mkfs, tune2fs -U) may change it legitimately.  Stores made
 * before this module recorded a bare filesystem UUID; those are checked by
 * size only.  The size must match exactly, except that an origin with a
 * strong identity (any kind but size) may be larger than recorded: it was
 * extended and `csnap resize` has not recorded it yet (only the recorded
 * size is used until then).
 */
#ifndef CSNAP_STORE_ORIGIN_ID_H
#define CSNAP_STORE_ORIGIN_ID_H

#include "src/store/superblock.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The extended attribute that marks an origin file (value: store uuid).  */
#define ORIGIN_ID_XATTR		"user.csnap.store"

/* Computes the identity to record for the origin at PATH (SIZE bytes) of
 * the store with uuid STORE_UUID and writes it to ID (CSNAP_ORIGIN_ID_LEN
 * + 1 bytes).  For a file, or a loop device over one, sets the mark
 * attribute (this writes metadata of the origin file, not its data).
 * *WEAK is set when only the size could be recorded.  Returns 0 or
 * negative errno (err_set).  */
int origin_id_record(const char *path, uint64_t size, const uint8_t store_uuid[16],
		     char *id, bool *weak);

/* Verifies that the origin at PATH, SIZE bytes, is the one SB was made
 * for.  Returns 0, or -EMEDIUMTYPE with a one-line reason naming the
 * recorded and the found identity (sizes included).  */
int origin_id_verify(const char *path, uint64_t size, const struct csnap_sb *sb);

/* The recorded identity ID (CSNAP_ORIGIN_ID_LEN + 1 bytes) after the
 * origin grew to SIZE bytes (store_origin_resize): a "size:" identity
 * names the new size, every other kind is kept.  */
void origin_id_resized(char *id, uint64_t size);

/* Identity of the given KIND ("dm", "wwid", ...) of the device or file at
 * PATH, in the recorded form ("KIND:VALUE" or "KIND#HEX"); "" when it has
 * none.  For tests and diagnostics.  */
int origin_id_of_kind(const char *path, const char *kind, char *id, size_t len);

#endif
