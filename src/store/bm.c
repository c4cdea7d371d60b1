/*
 * src/store/bm.c - block manager: LRU cache of validated metadata blocks.
 *
 * Invariants: a DIRTY block is never written home before bm_mark_committed()
 * (the journal holds it first); DIRTY and pinned blocks are never evicted;
 * a HOME_PENDING block is written home before it is evicted; installed
 * (read-only replay) blocks stay in memory until bm_destroy().
 */
#include "src/store/bm.h"

#include "ioengine/ioengine.h"
#include "utils/crc32c.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BM_INSTALLED 0x4

struct bm {
	struct io_dev *dev;
	uint64_t tag;
	bool readonly;
	uint64_t committed_seq;
	size_t capacity, count;
	struct bm_block **buckets;
	size_t nbuckets;		/* power of two */
	struct bm_block lru;		/* sentinel: lru.lru_next = most recent */
	struct bm_block *dirty;		/* list of DIRTY blocks */
	size_t ndirty, npending;
	struct bm_stats st;
};

static size_t hash_idx(const struct bm *bm, uint64_t blocknr)
{
	return (size_t)((blocknr * 0x9E3779B97F4A7C15ULL) >> 20) & (bm->nbuckets - 1);
}

int bm_create(struct io_dev *dev, uint64_t tag, size_t cache_blocks,
	      bool readonly, struct bm **out)
{
	struct bm *bm = calloc(1, sizeof *bm);

	if (!bm)
		return err_set(ENOMEM, "out of memory");
	bm->dev = dev;
	bm->tag = tag;
	bm->readonly = readonly;
	bm->capacity = cache_blocks < 16 ? 16 : cache_blocks;
	bm->nbuckets = 1024;
	while (bm->nbuckets < bm->capacity * 2)
		bm->nbuckets <<= 1;
	bm->buckets = calloc(bm->nbuckets, sizeof *bm->buckets);
	if (!bm->buckets) {
		free(bm);
		return err_set(ENOMEM, "out of memory");
	}
	bm->lru.lru_next = bm->lru.lru_prev = &bm->lru;
	*out = bm;
	return 0;
}

static void block_free(struct bm_block *b)
{
	io_buf_free(b->data);
	io_buf_free(b->home_copy);
	free(b);
}

void bm_destroy(struct bm *bm)
{
	if (!bm)
		return;
	for (size_t i = 0; i < bm->nbuckets; i++) {
		struct bm_block *b = bm->buckets[i], *n;
		for (; b; b = n) {
			n = b->hnext;
			block_free(b);
		}
	}
	free(bm->buckets);
	free(bm);
}

struct io_dev *bm_dev(const struct bm *bm) { return bm->dev; }
uint64_t bm_tag(const struct bm *bm) { return bm->tag; }
void bm_set_committed_seq(struct bm *bm, uint64_t seq) { bm->committed_seq = seq; }
size_t bm_dirty_count(const struct bm *bm) { return bm->ndirty; }

void bm_seal(const struct bm *bm, void *data, uint64_t blocknr, uint32_t type, uint64_t seq)
{
	uint8_t *p = data;

	put_le32(p + 4, type);
	put_le64(p + 8, blocknr);
	put_le64(p + 16, seq);
	put_le64(p + 24, bm->tag);
	put_le32(p, crc32c(0, p + 4, META_BLOCK_SIZE - 4));
}

int bm_validate(const struct bm *bm, const void *data, uint64_t blocknr, uint32_t type)
{
	const uint8_t *p = data;
	uint32_t t = get_le32(p + 4);

	if (get_le32(p) != crc32c(0, p + 4, META_BLOCK_SIZE - 4))
		return err_set(EIO, "metadata block %llu: checksum mismatch",
			       (unsigned long long)blocknr);
	if (get_le64(p + 24) != bm->tag)
		return err_set(EIO, "metadata block %llu: belongs to another store",
			       (unsigned long long)blocknr);
	if (get_le64(p + 8) != blocknr)
		return err_set(EIO, "metadata block %llu: claims to be block %llu (misdirected write)",
			       (unsigned long long)blocknr, (unsigned long long)get_le64(p + 8));
	if (type ? t != type : (t != META_T_LEAF && t != META_T_INTERNAL))
		return err_set(EIO, "metadata block %llu: unexpected type %#x",
			       (unsigned long long)blocknr, t);
	if (get_le64(p + 16) > bm->committed_seq)
		return err_set(EIO, "metadata block %llu: sequence %llu is newer than the last commit %llu",
			       (unsigned long long)blocknr, (unsigned long long)get_le64(p + 16),
			       (unsigned long long)bm->committed_seq);
	return 0;
}

static void lru_unlink(struct bm_block *b)
{
	b->lru_prev->lru_next = b->lru_next;
	b->lru_next->lru_prev = b->lru_prev;
}

static void lru_front(struct bm *bm, struct bm_block *b)
{
	b->lru_next = bm->lru.lru_next;
	b->lru_prev = &bm->lru;
	bm->lru.lru_next->lru_prev = b;
	bm->lru.lru_next = b;
}

static struct bm_block *lookup(struct bm *bm, uint64_t blocknr)
{
	struct bm_block *b = bm->buckets[hash_idx(bm, blocknr)];

	while (b && b->blocknr != blocknr)
		b = b->hnext;
	return b;
}

static void unhash(struct bm *bm, struct bm_block *b)
{
	struct bm_block **pp = &bm->buckets[hash_idx(bm, b->blocknr)];

	while (*pp != b)
		pp = &(*pp)->hnext;
	*pp = b->hnext;
}

static int write_home_one(struct bm *bm, struct bm_block *b)
{
	const uint8_t *img = b->home_copy ? b->home_copy : b->data;
	int ret;

	if (bm->readonly)
		return 0;
	ret = io_dev_pwrite(bm->dev, img, META_BLOCK_SIZE, b->blocknr * META_BLOCK_SIZE);
	if (ret < 0)
		return err_prefix(-ret, "writing metadata block %llu", (unsigned long long)b->blocknr);
	bm->st.home_writes++;
	io_buf_free(b->home_copy);
	b->home_copy = NULL;
	b->state &= ~BM_HOME_PENDING;
	bm->npending--;
	return 0;
}

/* Make room for one more block if the cache is full.  */
static int evict(struct bm *bm)
{
	struct bm_block *b = bm->lru.lru_prev;

	while (bm->count >= bm->capacity && b != &bm->lru) {
		struct bm_block *prev = b->lru_prev;
		if (!b->refs && !(b->state & (BM_DIRTY | BM_INSTALLED))) {
			if (b->state & BM_HOME_PENDING) {
				if (bm->readonly)
					goto next;
				int ret = write_home_one(bm, b);
				if (ret < 0)
					return ret;
			}
			lru_unlink(b);
			unhash(bm, b);
			block_free(b);
			bm->count--;
			bm->st.evictions++;
		}
next:
		b = prev;
	}
	return 0;
}

static int new_entry(struct bm *bm, uint64_t blocknr, struct bm_block **out)
{
	struct bm_block *b;
	int ret = evict(bm);

	if (ret < 0)
		return ret;
	b = calloc(1, sizeof *b);
	if (!b)
		return err_set(ENOMEM, "out of memory");
	b->data = io_buf_alloc(META_BLOCK_SIZE);
	if (!b->data) {
		free(b);
		return err_set(ENOMEM, "out of memory");
	}
	b->blocknr = blocknr;
	size_t h = hash_idx(bm, blocknr);
	b->hnext = bm->buckets[h];
	bm->buckets[h] = b;
	lru_front(bm, b);
	bm->count++;
	*out = b;
	return 0;
}

static void drop_entry(struct bm *bm, struct bm_block *b)
{
	lru_unlink(b);
	unhash(bm, b);
	block_free(b);
	bm->count--;
}

int bm_get(struct bm *bm, uint64_t blocknr, uint32_t type, struct bm_block **out)
{
	struct bm_block *b = lookup(bm, blocknr);
	int ret;

	if (b) {
		uint32_t t = bm_block_type(b);
		if (type ? t != type : (t != META_T_LEAF && t != META_T_INTERNAL))
			return err_set(EIO, "metadata block %llu: unexpected type %#x",
				       (unsigned long long)blocknr, t);
		bm->st.hits++;
		if (bm->lru.lru_next != b) {
			lru_unlink(b);
			lru_front(bm, b);
		}
		b->refs++;
		*out = b;
		return 0;
	}
	bm->st.misses++;
	ret = new_entry(bm, blocknr, &b);
	if (ret < 0)
		return ret;
	ret = io_dev_pread(bm->dev, b->data, META_BLOCK_SIZE, blocknr * META_BLOCK_SIZE);
	bm->st.reads++;
	if (ret < 0) {
		drop_entry(bm, b);
		return err_prefix(-ret, "reading metadata block %llu", (unsigned long long)blocknr);
	}
	ret = bm_validate(bm, b->data, blocknr, type);
	if (ret < 0) {
		drop_entry(bm, b);
		return ret;
	}
	b->refs = 1;
	*out = b;
	return 0;
}

int bm_get_new(struct bm *bm, uint64_t blocknr, uint32_t type, struct bm_block **out)
{
	struct bm_block *b = lookup(bm, blocknr);
	int ret;

	if (!b) {
		ret = new_entry(bm, blocknr, &b);
		if (ret < 0)
			return ret;
	}
	if (b->refs)
		return err_set(EBUSY, "metadata block %llu reused while in use",
			       (unsigned long long)blocknr);
	b->refs = 1;
	bm_dirty(bm, b);
	memset(b->data, 0, META_BLOCK_SIZE);
	put_le32(b->data + 4, type);
	put_le64(b->data + 8, blocknr);
	*out = b;
	return 0;
}

void bm_put(struct bm *bm, struct bm_block *b)
{
	(void)bm;
	if (b)
		b->refs--;
}

void bm_dirty(struct bm *bm, struct bm_block *b)
{
	if (b->state & BM_DIRTY)
		return;
	if ((b->state & BM_HOME_PENDING) && !b->home_copy) {
		/* keep the committed image for a checkpoint */
		b->home_copy = io_buf_alloc(META_BLOCK_SIZE);
		if (b->home_copy)
			memcpy(b->home_copy, b->data, META_BLOCK_SIZE);
		else
			log_error("bm: out of memory; writing block %llu home early",
				  (unsigned long long)b->blocknr),
			write_home_one(bm, b);
	}
	b->state |= BM_DIRTY;
	b->list_next = bm->dirty;
	bm->dirty = b;
	bm->ndirty++;
}

int bm_for_each_dirty(struct bm *bm, uint64_t seq,
		      int (*fn)(void *arg, struct bm_block *b), void *arg)
{
	for (struct bm_block *b = bm->dirty; b; b = b->list_next) {
		bm_seal(bm, b->data, b->blocknr, bm_block_type(b), seq);
		int ret = fn(arg, b);
		if (ret < 0)
			return ret;
	}
	return 0;
}

void bm_mark_committed(struct bm *bm)
{
	struct bm_block *b, *n;

	for (b = bm->dirty; b; b = n) {
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
	bm->dirty = NULL;
	bm->ndirty = 0;
}

int bm_write_home(struct bm *bm)
{
	if (bm->readonly || !bm->npending)
		return 0;
	for (size_t i = 0; i < bm->nbuckets; i++)
		for (struct bm_block *b = bm->buckets[i]; b; b = b->hnext)
			if (b->state & BM_HOME_PENDING) {
				int ret = write_home_one(bm, b);
				if (ret < 0)
					return ret;
			}
	return 0;
}

int bm_install(struct bm *bm, uint64_t blocknr, const void *data)
{
	struct bm_block *b = lookup(bm, blocknr);
	int ret;

	if (!b) {
		ret = new_entry(bm, blocknr, &b);
		if (ret < 0)
			return ret;
	}
	memcpy(b->data, data, META_BLOCK_SIZE);
	b->state |= BM_INSTALLED;
	return 0;
}

void bm_get_stats(const struct bm *bm, struct bm_stats *out)
{
	*out = bm->st;
	out->cached = bm->count;
	out->capacity = bm->capacity;
}
