/*
 * src/activate/keeper.h - keeps activated volumes attached across export
 * restarts.  Runs inside `csnap export` (one thread): the export is the
 * only process that can re-attach them, since it is what the kernel's nbd
 * connections talk to.
 *
 * At start it re-attaches every nbd device whose backend is
 * csnap:<this store's uuid>:<volume> and whose connection is dead (the
 * previous export's socket died with it): it connects to its own listener,
 * does the handshake for <volume>, and hands the socket to the kernel with
 * NBD_CMD_RECONFIGURE.  Then it listens on the nbd multicast group and does
 * the same whenever the kernel reports a dead link (NBD_CMD_LINK_DEAD) on
 * one of those devices.  Devices whose connection is alive are left alone
 * (the kernel answers ENOSPC: no dead socket to replace).
 *
 * When the export serves a larger origin (`csnap resize`, or a resize it
 * missed while away), the keeper grows the activated origin's nbd device
 * and its dm-linear table to that size (act_grow_origin); snapshot
 * volumes keep theirs.
 */
#ifndef CSNAP_ACTIVATE_KEEPER_H
#define CSNAP_ACTIVATE_KEEPER_H

#include "utils/uuid.h"

#include <stdint.h>

struct act_keeper;

/* ADDR/PORT: the export's own listener (PORT 0: ADDR is a unix socket).
 * GIVE_UP_S: how long a device is retried before it is left dead (its
 * dead-connection timeout fails its I/O by then anyway).  */
int act_keeper_start(const struct csnap_uuid *store, const char *addr, uint16_t port,
		     unsigned give_up_s, struct act_keeper **out);
/* The export serves the origin at SIZE bytes: activated origin devices
 * smaller than that are grown on the keeper's next tick (within about a
 * quarter of a second), off the caller's thread.  NULL K is fine.  */
void act_keeper_origin_size(struct act_keeper *k, uint64_t size);
/* Stops and joins the thread (within about half a second, or the
 * handshake timeout if one is under way).  NULL is fine.  */
void act_keeper_stop(struct act_keeper *k);

#endif
