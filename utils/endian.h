/*
 * utils/endian.h - explicit little-endian load/store for on-disk and wire
 * structures.  Every multi-byte integer csnap writes goes through these, so
 * the byte order is visible at each use and the format is the same on any
 * host.
 */
#ifndef CSNAP_UTILS_ENDIAN_H
#define CSNAP_UTILS_ENDIAN_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

typedef uint16_t le16;
typedef uint32_t le32;
typedef uint64_t le64;

static inline le16 cpu_to_le16(uint16_t v) { return htole16(v); }
static inline le32 cpu_to_le32(uint32_t v) { return htole32(v); }
static inline le64 cpu_to_le64(uint64_t v) { return htole64(v); }
static inline uint16_t le16_to_cpu(le16 v) { return le16toh(v); }
static inline uint32_t le32_to_cpu(le32 v) { return le32toh(v); }
static inline uint64_t le64_to_cpu(le64 v) { return le64toh(v); }

/* Unaligned byte-buffer accessors for wire decoding.  */
static inline uint16_t get_le16(const void *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t get_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t get_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static inline void put_le16(void *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void put_le32(void *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void put_le64(void *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

#endif
