/*
 * src/send/ident.h - where a received snapshot came from.
 *
 * `csnap receive` creates the snapshot with a request id derived from the
 * source store's uuid and the source snapshot's id (the store keeps a
 * create's request id with the snapshot: snaptable.h), so the target
 * records its source without a format change, a retried create after a
 * master change finds its snapshot, and an incremental stream can check
 * that the target's base snapshot is the one the stream was made from.
 * The derivation is one-way: the source is verified, not read back.
 */
#ifndef CSNAP_SEND_IDENT_H
#define CSNAP_SEND_IDENT_H

#include "src/proto/proto.h"
#include "utils/uuid.h"

#include <stdint.h>

/* BLAKE2b-128 of "csnap-receive-v1" || SOURCE uuid || le32 SNAP_ID; never
 * all zero (a zero request id means none).  */
void send_ident(const struct csnap_uuid *source, uint32_t snap_id,
		uint8_t out[PROTO_REQ_ID_LEN]);

#endif
