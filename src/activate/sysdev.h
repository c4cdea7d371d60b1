/*
 * src/activate/sysdev.h - is a block device one of csnap's own activated
 * volumes?  Anything that scans devices (UUID= lookup, `csnap scan`) must
 * skip them: reading a volume whose export is restarting blocks until the
 * export re-attaches it, and the reader may be that export.  Also loads
 * the kernel modules activation needs.
 */
#ifndef CSNAP_ACTIVATE_SYSDEV_H
#define CSNAP_ACTIVATE_SYSDEV_H

#include <stdbool.h>
#include <sys/types.h>

/* True for an nbd device whose backend identifier starts "csnap:" and a
 * device-mapper device whose dm uuid starts "CSNAP-" (from sysfs).  */
bool act_is_csnap_volume(dev_t rdev);

/* Loads a kernel module the way an administrator would (modprobe -q);
 * its absence is the caller's error to report, so modprobe's own
 * messages are silenced.  */
void act_modprobe(const char *mod);

#endif
