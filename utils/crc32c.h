/*
 * utils/crc32c.h - CRC-32C (Castagnoli), the checksum of every csnap
 * on-disk structure and wire message.  Uses the SSE4.2 instruction when the
 * CPU has it, a slicing table otherwise; both give identical results.
 */
#ifndef CSNAP_UTILS_CRC32C_H
#define CSNAP_UTILS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* libsanlock exports its own, different `crc32c` (no pre/post inversion)
 * and calls it through the PLT: if ours kept that name, the executable
 * would interpose it and sanlock's in-process direct writes (lease init)
 * would checksum leases wrongly.  So the symbol is csnap_crc32c.  */
#define crc32c csnap_crc32c

/* Continue a running CRC: start with crc = 0.  */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
