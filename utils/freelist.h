/*
 * utils/freelist.h - recycling of fixed-size objects: a stack of free
 * objects threaded through their first pointer-sized bytes (an object on
 * the list is dead, so those bytes are free to use; the next user gets it
 * zeroed from freelist_get(), or overwrites it whole).
 *
 * Used for the request structs of the I/O engines (ioengine/aio.c,
 * src/export/dio.c) and the block manager's data buffers (src/store/bm.c).
 * Not thread-safe: each list belongs to one thread.
 */
#ifndef CSNAP_UTILS_FREELIST_H
#define CSNAP_UTILS_FREELIST_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct freelist {
	void *head;
};

static inline void freelist_push(struct freelist *f, void *p)
{
	memcpy(p, &f->head, sizeof f->head);
	f->head = p;
}

/* The most recently pushed object, or NULL when the list is empty.  */
static inline void *freelist_pop(struct freelist *f)
{
	void *p = f->head;

	if (p)
		memcpy(&f->head, p, sizeof f->head);
	return p;
}

/* A zeroed object of SIZE: a recycled one, else a new one from malloc
 * (NULL: out of memory).  */
static inline void *freelist_get(struct freelist *f, size_t size)
{
	void *p = freelist_pop(f);

	if (!p && !(p = malloc(size)))
		return NULL;
	memset(p, 0, size);
	return p;
}

/* Frees every object on the list (for objects from freelist_get).  */
static inline void freelist_drain(struct freelist *f)
{
	void *p;

	while ((p = freelist_pop(f)))
		free(p);
}

#endif
