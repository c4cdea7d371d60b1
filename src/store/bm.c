/*
 * src/store/bm.c - block manager: LRU cache of validated metadata blocks.
 *
 * Invariants (CSNAP_ASSERT checks them in the debug build): a DIRTY block is
 * never written home before bm_mark_committed() (the journal holds it
 * first); only pinned blocks of a writable store are dirtied; every pin is
 * released once; DIRTY and pinned blocks are never evicted or dropped; a
 * HOME_PENDING block is written home before it is evicted, and its
 * committed image is kept aside while it is dirty again; while the home
 * is held (a pipelined commit in flight) no block is written home at all; the dirty list
 * holds exactly ndirty blocks; installed (read-only replay) blocks stay in
 * memory until bm_destroy().  struct bm_entry (callers see only the struct
 * bm_block in it) and the child-pointer cache are private to this file.
 */
#include "src/store/bm.h"

#include "ioengine/ioengine.h"
#include "utils/assert.h"
#include "utils/crc32c.h"
#include "utils/err.h"
#include "utils/freelist.h"
#include "utils/progress.h"
#include "utils/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Block states (the header explains DIRTY and HOME_PENDING).  */
#define BM_DIRTY	0x1
#define BM_HOME_PENDING	0x2
#define BM_INSTALLED	0x4

/* A cached block: what callers see (struct bm_block) and bm's own
 * bookkeeping around it.  */
struct bm_entry {
	struct bm_block pub;
	uint8_t *home_copy;	/* committed image while HOME_PENDING and DIRTY */
	unsigned state;		/* BM_* */
	unsigned refs;		/* pins (bm_get/bm_get_new minus bm_put) */
	struct bm_entry *lru_prev, *lru_next, *list_next;
};

static struct bm_entry *entry_of(const struct bm_block *b)
{
	return (struct bm_entry *)((char *)b - offsetof(struct bm_entry, pub));
}

/* Open-addressed table slot: the block number inline (one cache line
 * holds four) and the block pointer whose low bit is the CLOCK reference
 * bit, so a cache hit touches neither the block struct nor a chain.  */
struct bm_slot {
	uint64_t blocknr;
	uintptr_t b;		/* struct bm_entry * | referenced; 0 = empty */
	uint8_t *data;		/* b->pub.data, so a peek touches only the slot */
	uint64_t pad;
};

#define SLOT_REF ((uintptr_t)1)
#define SLOT_PTR(v) ((struct bm_entry *)((v) & ~SLOT_REF))

/* Data buffers come from 2 MiB arenas (huge pages where the kernel gives
 * them: fewer TLB misses on random lookups) and are recycled through a
 * free list; memory stays bounded by the cache capacity.  */
#define ARENA_BYTES (2u << 20)

#define ARENA_BUFS (ARENA_BYTES / META_BLOCK_SIZE)

/* Per buffer of an arena: a CLOCK reference bit (set by lookups that
 * reach a block without its slot) and the child-pointer cache of the block
 * in it (bm_child_*), both found from the data pointer alone.  Arena
 * memory is never given back before bm_destroy(): a stale data pointer
 * still points at readable memory, which is what makes that cache safe
 * to read before it is confirmed.  */
struct arena {
	struct arena *next;
	uint8_t *mem;
	uint64_t ref[ARENA_BUFS / 64];
	const uint8_t **kids[ARENA_BUFS];	/* bm_child_*: NULL or n pointers */
};

struct bm {
	struct io_dev *dev;
	uint64_t tag;
	bool readonly;
	uint64_t committed_seq;
	size_t capacity, count;
	struct bm_slot *slots;
	size_t nslots;			/* power of two, > 2 * count */
	struct bm_entry lru;		/* sentinel: lru.lru_next = most recent */
	struct bm_entry *dirty;		/* list of DIRTY blocks */
	size_t ndirty, npending;
	size_t npinned, ninstalled;	/* blocks with pins; BM_INSTALLED blocks */
	bool hold_home;			/* bm_hold_home(): a commit is in flight */
	uint64_t epoch;			/* bm_epoch() */
	struct arena *arenas;
	struct arena **amap;		/* open addressing on mem >> 21 */
	size_t amap_n;			/* power of two, > 2 * arenas */
	size_t narenas;
	struct freelist free_bufs;	/* free data buffers */
	struct bm_stats st;
};

static size_t hash_idx(const struct bm *bm, uint64_t blocknr)
{
	return (size_t)((blocknr * 0x9E3779B97F4A7C15ULL) >> 17) & (bm->nslots - 1);
}

static size_t slot_find(const struct bm *bm, uint64_t blocknr)
{
	size_t i = hash_idx(bm, blocknr);

	while (bm->slots[i].b && bm->slots[i].blocknr != blocknr)
		i = (i + 1) & (bm->nslots - 1);
	return i;	/* the block's slot, or the empty slot ending the probe */
}

static void slot_put(struct bm *bm, struct bm_entry *b)
{
	size_t i = slot_find(bm, b->pub.blocknr);

	bm->slots[i].blocknr = b->pub.blocknr;
	bm->slots[i].b = (uintptr_t)b;
	bm->slots[i].data = b->pub.data;
}

/* Linear-probing delete with backward shift (no tombstones).  */
static void slot_del(struct bm *bm, uint64_t blocknr)
{
	size_t mask = bm->nslots - 1, i = slot_find(bm, blocknr), j = i;

	if (!bm->slots[i].b)
		return;
	for (;;) {
		bm->slots[i].b = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (!bm->slots[j].b)
				return;
			size_t home = hash_idx(bm, bm->slots[j].blocknr);
			/* can slot j's entry move to the hole at i? */
			if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
				break;
		}
		bm->slots[i] = bm->slots[j];
		i = j;
	}
}

/* Slot tables are big and probed at random: huge pages where possible. */
static struct bm_slot *slots_alloc(size_t n)
{
	void *p;
	size_t bytes = n * sizeof(struct bm_slot);

	if (posix_memalign(&p, bytes >= ARENA_BYTES ? ARENA_BYTES : 64, bytes))
		return NULL;
	if (bytes >= ARENA_BYTES)
		madvise(p, bytes, MADV_HUGEPAGE);
	memset(p, 0, bytes);
	return p;
}

static int slots_grow(struct bm *bm)
{
	struct bm_slot *old = bm->slots;
	size_t n = bm->nslots;

	bm->slots = slots_alloc(n * 2);
	if (!bm->slots) {
		bm->slots = old;
		return err_set(ENOMEM, "out of memory");
	}
	bm->nslots = n * 2;
	for (size_t i = 0; i < n; i++)
		if (old[i].b) {
			size_t k = slot_find(bm, old[i].blocknr);
			bm->slots[k] = old[i];
		}
	free(old);
	return 0;
}

static size_t amap_idx(const struct bm *bm, uintptr_t key)
{
	return (size_t)(key * 0x9E3779B97F4A7C15ULL >> 20) & (bm->amap_n - 1);
}

static struct arena *arena_of(const struct bm *bm, const void *p)
{
	uintptr_t key = (uintptr_t)p >> 21;

	for (size_t i = amap_idx(bm, key);; i = (i + 1) & (bm->amap_n - 1)) {
		struct arena *a = bm->amap[i];
		if (!a || (uintptr_t)a->mem >> 21 == key)
			return a;
	}
}

static int amap_add(struct bm *bm, struct arena *a)
{
	if ((bm->narenas + 1) * 2 > bm->amap_n) {
		size_t n = bm->amap_n ? bm->amap_n * 2 : 64;
		struct arena **m = calloc(n, sizeof *m);
		if (!m)
			return -ENOMEM;
		free(bm->amap);
		bm->amap = m;
		bm->amap_n = n;
		for (struct arena *x = bm->arenas; x; x = x->next)
			for (size_t i = amap_idx(bm, (uintptr_t)x->mem >> 21);; i = (i + 1) & (n - 1))
				if (!m[i]) {
					m[i] = x;
					break;
				}
	}
	for (size_t i = amap_idx(bm, (uintptr_t)a->mem >> 21);; i = (i + 1) & (bm->amap_n - 1))
		if (!bm->amap[i]) {
			bm->amap[i] = a;
			break;
		}
	bm->narenas++;
	return 0;
}

static inline size_t buf_index(const struct arena *a, const void *p)
{
	return (size_t)((const uint8_t *)p - a->mem) / META_BLOCK_SIZE;
}

void bm_touch(struct bm *bm, const uint8_t *data)
{
	struct arena *a = arena_of(bm, data);
	size_t i = buf_index(a, data);

	a->ref[i / 64] |= 1ULL << (i % 64);
}

static bool ref_test_clear(struct bm *bm, const uint8_t *data)
{
	struct arena *a = arena_of(bm, data);
	size_t i = buf_index(a, data);
	bool was = (a->ref[i / 64] >> (i % 64)) & 1;

	a->ref[i / 64] &= ~(1ULL << (i % 64));
	return was;
}

static const uint8_t ***kids_slot(struct bm *bm, const uint8_t *data)
{
	struct arena *a = arena_of(bm, data);

	return &a->kids[buf_index(a, data)];
}

void bm_child_forget(struct bm *bm, const uint8_t *parent)
{
	const uint8_t ***k = kids_slot(bm, parent);

	free(*k);
	*k = NULL;
}

/* A remembered child: its data pointer (4096-aligned) with the owner's
 * hint in the low bits.  */
#define KID_HINT_MASK ((uintptr_t)META_BLOCK_SIZE - 1)

const uint8_t *bm_child_guess_hint(struct bm *bm, const uint8_t *parent, unsigned i,
				   unsigned *hint)
{
	const uint8_t **k = *kids_slot(bm, parent);
	uintptr_t v = k ? (uintptr_t)k[i] : 0;

	*hint = (unsigned)(v & KID_HINT_MASK);
	return (const uint8_t *)(v & ~KID_HINT_MASK);
}

const uint8_t *bm_child_guess(struct bm *bm, const uint8_t *parent, unsigned i)
{
	unsigned hint;

	return bm_child_guess_hint(bm, parent, i, &hint);
}

bool bm_child_confirm(struct bm *bm, const uint8_t *data, uint64_t blocknr)
{
	/* block 0 (the superblock) is never a node: a freed buffer's zeroed
	 * block number must not confirm a (corrupt) pointer to it */
	if (blocknr == 0 || get_le64(data + META_BLOCKNR) != blocknr)
		return false;
	bm_touch(bm, data);
	return true;
}

void bm_child_remember_hint(struct bm *bm, const uint8_t *parent, unsigned i, unsigned n,
			    const uint8_t *child, unsigned hint)
{
	const uint8_t ***k = kids_slot(bm, parent);

	CSNAP_ASSERT(i < n);
	/* the hint fits the alignment bits a data buffer leaves free */
	CSNAP_ASSERT(hint < BM_CHILD_HINT_MAX && !((uintptr_t)child & KID_HINT_MASK));
	if (!*k)
		*k = calloc(n, sizeof **k);
	if (*k)		/* (no memory: no cache, lookups take the block table) */
		(*k)[i] = (const uint8_t *)((uintptr_t)child | (hint & KID_HINT_MASK));
}

void bm_child_remember(struct bm *bm, const uint8_t *parent, unsigned i, unsigned n,
		       const uint8_t *child)
{
	bm_child_remember_hint(bm, parent, i, n, child, 0);
}

static uint8_t *buf_get(struct bm *bm)
{
	if (!bm->free_bufs.head) {
		struct arena *a = calloc(1, sizeof *a);
		if (!a)
			return NULL;
		if (posix_memalign((void **)&a->mem, ARENA_BYTES, ARENA_BYTES)) {
			free(a);
			return NULL;
		}
		if (amap_add(bm, a) < 0) {
			free(a->mem);
			free(a);
			return NULL;
		}
		madvise(a->mem, ARENA_BYTES, MADV_HUGEPAGE);	/* a hint; failure is fine */
		for (size_t off = 0; off < ARENA_BYTES; off += META_BLOCK_SIZE) {
			freelist_push(&bm->free_bufs, a->mem + off);
		}
		a->next = bm->arenas;
		bm->arenas = a;
	}
	uint8_t *p = freelist_pop(&bm->free_bufs);
	memset(p, 0, META_BLOCK_SIZE);
	return p;
}

static void buf_put(struct bm *bm, uint8_t *p)
{
	/* a stale pointer to a free buffer must not pass for any block:
	 * clear the header's block number */
	memset(p + META_BLOCKNR, 0, 8);
	bm_child_forget(bm, p);
	ref_test_clear(bm, p);
	freelist_push(&bm->free_bufs, p);
}

int bm_create(struct io_dev *dev, uint64_t tag, size_t cache_blocks,
	      bool readonly, struct bm **out)
{
	struct bm *bm = calloc(1, sizeof *bm);

	if (!bm)
		return err_set(ENOMEM, "out of memory");
	/* each cache's epochs start far apart: a remembered pointer into
	 * another (or a destroyed) cache never matches this one's epoch */
	static uint64_t instances;
	bm->epoch = __atomic_add_fetch(&instances, 1, __ATOMIC_RELAXED) << 40;
	bm->dev = dev;
	bm->tag = tag;
	bm->readonly = readonly;
	bm->capacity = cache_blocks < 16 ? 16 : cache_blocks;
	bm->nslots = 1024;
	bm->slots = slots_alloc(bm->nslots);
	if (!bm->slots) {
		free(bm);
		return err_set(ENOMEM, "out of memory");
	}
	bm->lru.lru_next = bm->lru.lru_prev = &bm->lru;
	*out = bm;
	return 0;
}

static void block_free(struct bm *bm, struct bm_entry *b)
{
	buf_put(bm, b->pub.data);
	io_buf_free(b->home_copy);
	free(b);
}

void bm_destroy(struct bm *bm)
{
	if (!bm)
		return;
	for (size_t i = 0; i < bm->nslots; i++)
		if (bm->slots[i].b) {
			struct bm_entry *b = SLOT_PTR(bm->slots[i].b);
			io_buf_free(b->home_copy);
			free(b);
		}
	while (bm->arenas) {
		struct arena *a = bm->arenas;
		bm->arenas = a->next;
		for (size_t i = 0; i < ARENA_BUFS; i++)
			free(a->kids[i]);
		free(a->mem);
		free(a);
	}
	free(bm->amap);
	free(bm->slots);
	free(bm);
}

struct io_dev *bm_dev(const struct bm *bm) { return bm->dev; }
uint64_t bm_tag(const struct bm *bm) { return bm->tag; }
void bm_set_committed_seq(struct bm *bm, uint64_t seq) { bm->committed_seq = seq; }
size_t bm_dirty_count(const struct bm *bm) { return bm->ndirty; }
uint64_t bm_epoch(const struct bm *bm) { return bm->epoch; }

void bm_seal(const struct bm *bm, void *data, uint64_t blocknr, uint32_t type, uint64_t seq)
{
	uint8_t *p = data;

	put_le32(p + META_TYPE, type);
	put_le64(p + META_BLOCKNR, blocknr);
	put_le64(p + META_SEQ, seq);
	put_le64(p + META_TAG, bm->tag);
	put_le32(p + META_CSUM, crc32c(0, p + META_TYPE, META_BLOCK_SIZE - META_TYPE));
}

int bm_validate(const struct bm *bm, const void *data, uint64_t blocknr, uint32_t type)
{
	const uint8_t *p = data;
	uint32_t t = get_le32(p + META_TYPE);

	if (get_le32(p + META_CSUM) != crc32c(0, p + META_TYPE, META_BLOCK_SIZE - META_TYPE))
		return err_set(EIO, "metadata block %llu: checksum mismatch",
			       (unsigned long long)blocknr);
	if (get_le64(p + META_TAG) != bm->tag)
		return err_set(EIO, "metadata block %llu: belongs to another store",
			       (unsigned long long)blocknr);
	if (get_le64(p + META_BLOCKNR) != blocknr)
		return err_set(EIO, "metadata block %llu: claims to be block %llu (misdirected write)",
			       (unsigned long long)blocknr, (unsigned long long)get_le64(p + META_BLOCKNR));
	if (type ? t != type : (t != META_T_LEAF && t != META_T_INTERNAL))
		return err_set(EIO, "metadata block %llu: unexpected type %#x",
			       (unsigned long long)blocknr, t);
	if (get_le64(p + META_SEQ) > bm->committed_seq)
		return err_set(EIO, "metadata block %llu: sequence %llu is newer than the last commit %llu",
			       (unsigned long long)blocknr, (unsigned long long)get_le64(p + META_SEQ),
			       (unsigned long long)bm->committed_seq);
	return 0;
}

static void lru_unlink(struct bm_entry *b)
{
	b->lru_prev->lru_next = b->lru_next;
	b->lru_next->lru_prev = b->lru_prev;
}

static void lru_front(struct bm *bm, struct bm_entry *b)
{
	b->lru_next = bm->lru.lru_next;
	b->lru_prev = &bm->lru;
	bm->lru.lru_next->lru_prev = b;
	bm->lru.lru_next = b;
}

static struct bm_entry *lookup(struct bm *bm, uint64_t blocknr)
{
	size_t i = slot_find(bm, blocknr);

	if (!bm->slots[i].b)
		return NULL;
	bm->slots[i].b |= SLOT_REF;
	return SLOT_PTR(bm->slots[i].b);
}

const uint8_t *bm_peek_raw(struct bm *bm, uint64_t blocknr)
{
	size_t i = slot_find(bm, blocknr);

	if (!bm->slots[i].b)
		return NULL;
	bm->slots[i].b |= SLOT_REF;
	bm->st.hits++;
	return bm->slots[i].data;
}

const uint8_t *bm_peek(struct bm *bm, uint64_t blocknr, uint32_t type)
{
	size_t i = slot_find(bm, blocknr);

	if (!bm->slots[i].b)
		return NULL;
	bm->slots[i].b |= SLOT_REF;
	const uint8_t *d = bm->slots[i].data;
	uint32_t t = get_le32(d + META_TYPE);
	if (type ? t != type : (t != META_T_LEAF && t != META_T_INTERNAL))
		return NULL;	/* bm_get() explains */
	bm->st.hits++;
	return d;
}

static int write_home_one(struct bm *bm, struct bm_entry *b)
{
	const uint8_t *img = b->home_copy ? b->home_copy : b->pub.data;
	int ret;

	CSNAP_ASSERT(b->state & BM_HOME_PENDING);
	/* no steal: an image changed by the open transaction never goes home */
	CSNAP_ASSERT(!(b->state & BM_DIRTY) || b->home_copy);
	/* write-ahead: nothing goes home while a commit is not yet durable */
	CSNAP_ASSERT(!bm->hold_home);

	if (bm->readonly)
		return 0;
	csnap_progress();
	ret = io_dev_pwrite(bm->dev, img, META_BLOCK_SIZE, b->pub.blocknr * META_BLOCK_SIZE);
	if (ret < 0)
		return err_prefix(-ret, "writing metadata block %llu", (unsigned long long)b->pub.blocknr);
	bm->st.home_writes++;
	io_buf_free(b->home_copy);
	b->home_copy = NULL;
	b->state &= ~BM_HOME_PENDING;
	bm->npending--;
	return 0;
}

static void drop_entry(struct bm *bm, struct bm_entry *b);

/* Make room for one more block if the cache is full: CLOCK over the
 * LRU list (referenced blocks get a second chance at the front).  */
static int evict(struct bm *bm)
{
	struct bm_entry *b = bm->lru.lru_prev;

	while (bm->count >= bm->capacity && b != &bm->lru) {
		struct bm_entry *prev = b->lru_prev;
		size_t si = slot_find(bm, b->pub.blocknr);
		bool ref = ref_test_clear(bm, b->pub.data);
		if ((bm->slots[si].b & SLOT_REF) || ref) {
			bm->slots[si].b &= ~SLOT_REF;
			lru_unlink(b);
			lru_front(bm, b);
		} else if (!b->refs && !(b->state & (BM_DIRTY | BM_INSTALLED)) &&
			   !((b->state & BM_HOME_PENDING) && (bm->readonly || bm->hold_home))) {
			if (b->state & BM_HOME_PENDING) {
				int ret = write_home_one(bm, b);
				if (ret < 0)
					return ret;
			}
			drop_entry(bm, b);
			bm->st.evictions++;
		}
		b = prev;
	}
	return 0;
}

static int new_entry(struct bm *bm, uint64_t blocknr, struct bm_entry **out)
{
	struct bm_entry *b;
	int ret = evict(bm);

	if (ret < 0)
		return ret;
	/* the budget: after one CLOCK pass the cache is below its capacity
	 * unless every block in it is one it may not evict (changed in the
	 * open transaction, pinned, installed by replay, or committed but not
	 * home on a read-only store or while a commit is in flight) */
	CSNAP_ASSERT(bm->count < bm->capacity ||
		     bm->count <= bm->ndirty + bm->npinned + bm->ninstalled +
				  (bm->readonly || bm->hold_home ? bm->npending : 0));
	if ((bm->count + 1) * 2 > bm->nslots && (ret = slots_grow(bm)) < 0)
		return ret;
	b = calloc(1, sizeof *b);
	if (!b)
		return err_set(ENOMEM, "out of memory");
	b->pub.data = buf_get(bm);
	if (!b->pub.data) {
		free(b);
		return err_set(ENOMEM, "out of memory");
	}
	b->pub.blocknr = blocknr;
	slot_put(bm, b);
	lru_front(bm, b);
	bm->count++;
	/* open addressing stays at most half full: probes end quickly */
	CSNAP_ASSERT(bm->count * 2 <= bm->nslots);
	*out = b;
	return 0;
}

static void drop_entry(struct bm *bm, struct bm_entry *b)
{
	/* dropping a pinned block, or a committed image not yet home, would
	 * lose data; a dirty block is dropped only once it left the list */
	CSNAP_ASSERT(!b->refs && !(b->state & (BM_HOME_PENDING | BM_DIRTY)));
	lru_unlink(b);
	slot_del(bm, b->pub.blocknr);
	block_free(bm, b);
	bm->count--;
}

int bm_get(struct bm *bm, uint64_t blocknr, uint32_t type, struct bm_block **out)
{
	struct bm_entry *b = lookup(bm, blocknr);
	int ret;

	if (b) {
		uint32_t t = bm_block_type(&b->pub);
		if (type ? t != type : (t != META_T_LEAF && t != META_T_INTERNAL))
			return err_set(EIO, "metadata block %llu: unexpected type %#x",
				       (unsigned long long)blocknr, t);
		bm->st.hits++;
		if (b->refs++ == 0)
			bm->npinned++;
		*out = &b->pub;
		return 0;
	}
	bm->st.misses++;
	ret = new_entry(bm, blocknr, &b);
	if (ret < 0)
		return ret;
	csnap_progress();
	ret = io_dev_pread(bm->dev, b->pub.data, META_BLOCK_SIZE, blocknr * META_BLOCK_SIZE);
	bm->st.reads++;
	if (ret < 0) {
		drop_entry(bm, b);
		return err_prefix(-ret, "reading metadata block %llu", (unsigned long long)blocknr);
	}
	ret = bm_validate(bm, b->pub.data, blocknr, type);
	if (ret < 0) {
		drop_entry(bm, b);
		return ret;
	}
	b->refs = 1;
	bm->npinned++;
	*out = &b->pub;
	return 0;
}

/* The cached entry of BLOCKNR, or a new one whose content the caller
 * supplies (bm_get_new, bm_install).  */
static int entry_for_write(struct bm *bm, uint64_t blocknr, struct bm_entry **out)
{
	*out = lookup(bm, blocknr);
	return *out ? 0 : new_entry(bm, blocknr, out);
}

int bm_get_new(struct bm *bm, uint64_t blocknr, uint32_t type, struct bm_block **out)
{
	struct bm_entry *b;
	int ret = entry_for_write(bm, blocknr, &b);

	if (ret < 0)
		return ret;
	if (b->refs)
		return err_set(EBUSY, "metadata block %llu reused while in use",
			       (unsigned long long)blocknr);
	b->refs = 1;
	bm->npinned++;
	bm_dirty(bm, &b->pub);
	bm_child_forget(bm, b->pub.data);
	memset(b->pub.data, 0, META_BLOCK_SIZE);
	put_le32(b->pub.data + META_TYPE, type);
	put_le64(b->pub.data + META_BLOCKNR, blocknr);
	*out = &b->pub;
	return 0;
}

void bm_put(struct bm *bm, struct bm_block *pb)
{
	(void)bm;
	if (pb) {
		struct bm_entry *b = entry_of(pb);

		CSNAP_ASSERT(b->refs > 0);	/* one bm_put per bm_get/bm_get_new */
		if (--b->refs == 0)
			bm->npinned--;
	}
}

bool bm_block_dirty(const struct bm_block *pb)
{
	return entry_of(pb)->state & BM_DIRTY;
}

void bm_dirty(struct bm *bm, struct bm_block *pb)
{
	struct bm_entry *b = entry_of(pb);

	/* only a pinned block of a writable store is changed */
	CSNAP_ASSERT(!bm->readonly && b->refs > 0);
	if (b->state & BM_DIRTY)
		return;
	if ((b->state & BM_HOME_PENDING) && !b->home_copy) {
		/* keep the committed image for a checkpoint */
		b->home_copy = io_buf_alloc(META_BLOCK_SIZE);
		if (b->home_copy) {
			memcpy(b->home_copy, b->pub.data, META_BLOCK_SIZE);
		} else if (bm->hold_home) {
			/* its commit may not be durable yet: writing it home
			 * could leave half a transaction after a crash.  Dying
			 * leaves the last durable state to the next opener.  */
			log_error("bm: out of memory keeping block %llu while a commit is in flight",
				  (unsigned long long)b->pub.blocknr);
			abort();
		} else {
			log_error("bm: out of memory; writing block %llu home early",
				  (unsigned long long)b->pub.blocknr);
			write_home_one(bm, b);
		}
	}
	/* a committed image not yet home is kept aside (or is home now) */
	CSNAP_ASSERT(!(b->state & BM_HOME_PENDING) || b->home_copy);
	b->state |= BM_DIRTY;
	b->list_next = bm->dirty;
	bm->dirty = b;
	bm->ndirty++;
}

int bm_for_each_dirty(struct bm *bm, uint64_t seq,
		      int (*fn)(void *arg, struct bm_block *b), void *arg)
{
	for (struct bm_entry *b = bm->dirty; b; b = b->list_next) {
		CSNAP_ASSERT(b->state & BM_DIRTY);
		bm_seal(bm, b->pub.data, b->pub.blocknr, bm_block_type(&b->pub), seq);
		int ret = fn(arg, &b->pub);
		if (ret < 0)
			return ret;
	}
	return 0;
}

void bm_mark_committed(struct bm *bm)
{
	struct bm_entry *b, *n;

	size_t seen = 0;	/* (for the assertion below) */
	for (b = bm->dirty; b; b = n) {
		seen++;
		CSNAP_ASSERT(b->state & BM_DIRTY);
		n = b->list_next;
		b->list_next = NULL;
		b->state &= ~BM_DIRTY;
		io_buf_free(b->home_copy);	/* superseded by the newer commit */
		b->home_copy = NULL;
		if (!(b->state & BM_HOME_PENDING)) {
			b->state |= BM_HOME_PENDING;
			bm->npending++;
		}
	}
	CSNAP_ASSERT(seen == bm->ndirty);	/* the list holds every dirty block */
	bm->dirty = NULL;
	bm->ndirty = 0;
}

int bm_abort(struct bm *bm)
{
	for (struct bm_entry *b = bm->dirty; b; b = b->list_next)
		if (b->refs)
			return err_set(EBUSY, "metadata block %llu is in use", (unsigned long long)b->pub.blocknr);
	struct bm_entry *b = bm->dirty, *n;
	bm->epoch++;	/* blocks go back to older content */
	for (; b; b = n) {
		n = b->list_next;
		b->list_next = NULL;
		b->state &= ~BM_DIRTY;
		bm_child_forget(bm, b->pub.data);
		if (b->home_copy) {
			memcpy(b->pub.data, b->home_copy, META_BLOCK_SIZE);
			io_buf_free(b->home_copy);
			b->home_copy = NULL;
		} else if (!(b->state & (BM_HOME_PENDING | BM_INSTALLED))) {
			drop_entry(bm, b);	/* the disk copy is the committed one */
		}
	}
	bm->dirty = NULL;
	bm->ndirty = 0;
	return 0;
}

void bm_hold_home(struct bm *bm, bool hold)
{
	bm->hold_home = hold;
}

int bm_write_home(struct bm *bm)
{
	if (bm->readonly || !bm->npending)
		return 0;
	if (bm->hold_home)
		return err_set(EBUSY, "a commit is in flight: committed blocks may not go home yet");
	for (struct bm_entry *b = bm->lru.lru_next; b != &bm->lru; b = b->lru_next)
		if (b->state & BM_HOME_PENDING) {
			int ret = write_home_one(bm, b);
			if (ret < 0)
				return ret;
		}
	CSNAP_ASSERT(bm->npending == 0);	/* every pending block is on the LRU list */
	return 0;
}

static int no_journal(void *arg, struct bm_block *b) { (void)arg; (void)b; return 0; }

int bm_flush_home(void *arg)
{
	struct bm *bm = arg;
	int ret = bm_for_each_dirty(bm, 0, no_journal, NULL);

	if (ret < 0)
		return ret;
	bm_mark_committed(bm);
	return bm_write_home(bm);
}

int bm_install(struct bm *bm, uint64_t blocknr, const void *data)
{
	struct bm_entry *b;
	int ret = entry_for_write(bm, blocknr, &b);

	if (ret < 0)
		return ret;
	bm_child_forget(bm, b->pub.data);
	memcpy(b->pub.data, data, META_BLOCK_SIZE);
	bm->epoch++;
	if (!(b->state & BM_INSTALLED))
		bm->ninstalled++;
	b->state |= BM_INSTALLED;
	return 0;
}

void bm_get_stats(const struct bm *bm, struct bm_stats *out)
{
	*out = bm->st;
	out->cached = bm->count;
	out->capacity = bm->capacity;
	out->pinned = bm->npinned;
	out->dirty = bm->ndirty;
	out->arenas = bm->narenas;
}
