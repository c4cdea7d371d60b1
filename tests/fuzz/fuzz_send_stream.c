/*
 * tests/fuzz/fuzz_send_stream.c - the `csnap receive` stream reader
 * (src/send/stream.c): any byte stream must be read to its verified end
 * or refused with a message, never crash, overrun or allocate beyond one
 * record; what it returns must hold the reader's documented invariants.
 *
 * Input, by its first byte:
 *   'R'  the rest is a stream, read as is (checksums as the input has them);
 *   'F'  the rest is a stream whose header crc, record crcs and END digest
 *        are first rewritten to be right, so the structure behind them is
 *        fuzzed rather than the checksums;
 *   else a program for the writer (ranges, data with runs so zstd has
 *        something to compress, zeros, checkpoints, compression on or
 *        off), whose stream must read back record for record; then one
 *        byte of it, chosen by the input, is flipped, and that stream
 *        must be refused (every byte is under a crc or the digest).
 * Seeds: CSNAP_FUZZ_SEEDS=DIR writes a few streams in 'R' form.
 */
#include "tests/fuzz/fuzz.h"

#include "src/send/stream.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

struct mem {
	uint8_t *p;
	size_t n, cap, pos;
};

static int mem_write(void *ctx, const void *buf, size_t n)
{
	struct mem *m = ctx;
	if (!n)
		return 0;
	if (m->n + n > m->cap) {
		size_t cap = (m->n + n) * 2;
		uint8_t *np = realloc(m->p, cap);
		if (!np)
			abort();
		m->p = np;
		m->cap = cap;
	}
	memcpy(m->p + m->n, buf, n);
	m->n += n;
	return 0;
}

static long mem_read(void *ctx, void *buf, size_t n)
{
	struct mem *m = ctx;
	/* short reads at times, as a pipe gives them */
	size_t k = m->n - m->pos < n ? m->n - m->pos : n;
	if (!k)
		return 0;
	if (k > 1 && (m->pos & 7) == 3)
		k = k / 2;
	memcpy(buf, m->p + m->pos, k);
	m->pos += k;
	return (long)k;
}

struct got {
	struct ss_record rec;
	uint8_t *data;
};

/* Reads the whole stream; checks what the reader promises.  Returns the
 * final status (SS_END or -errno); fills OUT (up to MAX) when given.  */
static int read_all(struct mem *m, struct got *out, size_t max, size_t *nout)
{
	struct ss_reader r;
	m->pos = 0;
	int e = ss_reader_open(&r, mem_read, m);
	if (e < 0) {
		FUZZ_CHECK(err_get()[0], "refusal without a message");
		return e;
	}
	size_t k = 0;
	uint64_t last_end = 0;
	struct ss_record rec;
	while ((e = ss_reader_next(&r, &rec)) == SS_MORE) {
		if (rec.type == SS_T_DATA || rec.type == SS_T_ZERO) {
			/* (no sum: a reader that let offset + length wrap would pass it) */
			FUZZ_CHECK(rec.length && rec.offset >= last_end &&
				   rec.offset <= r.h.origin_size &&
				   rec.length <= r.h.origin_size - rec.offset, "range out of bounds");
			last_end = rec.offset + rec.length;
		}
		if (rec.type == SS_T_DATA)
			FUZZ_CHECK(rec.length <= SS_MAX_DATA && rec.data, "data");
		if (out && k < max) {
			out[k].rec = rec;
			out[k].data = NULL;
			if (rec.type == SS_T_DATA) {
				out[k].data = malloc(rec.length);
				memcpy(out[k].data, rec.data, rec.length);
			}
		}
		k++;
	}
	if (e < 0)
		FUZZ_CHECK(err_get()[0], "refusal without a message");
	else
		FUZZ_CHECK(r.ended && m->pos == m->n, "end before the input's end");
	ss_reader_close(&r);
	if (nout)
		*nout = k;
	return e;
}

/* 'F': make every checksum right.  */
static void fix_sums(struct mem *m)
{
	if (m->n < SS_HEADER_SIZE)
		return;
	put_le32(m->p + 252, crc32c(0, m->p, 252));
	crypto_generichash_state h;
	crypto_generichash_init(&h, NULL, 0, SS_DIGEST_LEN);
	crypto_generichash_update(&h, m->p, SS_HEADER_SIZE);
	size_t at = SS_HEADER_SIZE;
	while (at + SS_REC_HDR <= m->n) {
		uint32_t type = get_le32(m->p + at), len = get_le32(m->p + at + 4);
		if (len > SS_MAX_BODY || at + SS_REC_HDR + len + SS_REC_TRAILER > m->n)
			return;
		if (type == SS_T_END && len == 16 + SS_DIGEST_LEN) {
			crypto_generichash_state c = h;
			crypto_generichash_final(&c, m->p + at + SS_REC_HDR + 16, SS_DIGEST_LEN);
		}
		put_le32(m->p + at + SS_REC_HDR + len, crc32c(0, m->p + at, SS_REC_HDR + len));
		crypto_generichash_update(&h, m->p + at, SS_REC_HDR + len + SS_REC_TRAILER);
		at += SS_REC_HDR + len + SS_REC_TRAILER;
	}
}

#define MAXREC 64

static void program(struct fuzz_in *in, struct mem *m)
{
	struct ss_header h = { 0 };
	for (int i = 0; i < 16; i++)
		h.source.b[i] = fuzz_u8(in);
	h.chunk_size = 4096;
	h.origin_size = 1 + fuzz_u32(in) % (1u << 22);
	h.to_id = 2;
	strcpy(h.to_name, "b");
	if (fuzz_u8(in) & 1) {
		h.flags = SS_F_INCREMENTAL;
		h.from_id = 1;
		strcpy(h.from_name, "a");
	}
	int level = fuzz_u8(in) & 1 ? 3 : 0;
	struct ss_writer w;
	FUZZ_CHECK(ss_writer_open(&w, mem_write, m, &h, level) == 0, "open: %s", err_get());
	uint64_t pos = 0;
	static uint8_t buf[1 << 16];
	struct got want[MAXREC];
	size_t nw = 0;
	while (in->n && nw < MAXREC - 1) {
		uint8_t op = fuzz_u8(in);
		uint64_t gap = fuzz_u16(in), len = 1 + fuzz_u16(in);
		if (op % 3 == 2) {
			FUZZ_CHECK(ss_write_checkpoint(&w) == 0, "checkpoint");
			want[nw++] = (struct got){ .rec = { .type = SS_T_CHECKPOINT } };
			continue;
		}
		if (pos + gap >= h.origin_size)
			break;
		pos += gap;
		if (len > h.origin_size - pos)
			len = h.origin_size - pos;
		if (op % 3 == 0) {
			/* runs of one byte: compressible, with input bytes between */
			for (uint64_t i = 0; i < len; i++)
				buf[i] = (i & 255) < 200 ? (uint8_t)op : fuzz_u8(in);
			FUZZ_CHECK(ss_write_data(&w, pos, buf, (uint32_t)len) == 0, "data: %s", err_get());
			want[nw].rec = (struct ss_record){ .type = SS_T_DATA, .offset = pos, .length = len };
			want[nw].data = malloc(len);
			memcpy(want[nw++].data, buf, len);
		} else {
			FUZZ_CHECK(ss_write_zero(&w, pos, len) == 0, "zero: %s", err_get());
			want[nw++] = (struct got){ .rec = { .type = SS_T_ZERO, .offset = pos, .length = len } };
		}
		pos += len;
	}
	FUZZ_CHECK(ss_write_end(&w) == 0, "end");
	ss_writer_close(&w);

	struct got have[MAXREC];
	size_t nh = 0;
	int e = read_all(m, have, MAXREC, &nh);
	FUZZ_CHECK(e == SS_END, "own stream refused: %s", err_get());
	FUZZ_CHECK(nh == nw, "%zu records written, %zu read", nw, nh);
	for (size_t i = 0; i < nw; i++) {
		FUZZ_CHECK(have[i].rec.type == want[i].rec.type, "record %zu type", i);
		if (want[i].rec.type != SS_T_CHECKPOINT)
			FUZZ_CHECK(have[i].rec.offset == want[i].rec.offset &&
				   have[i].rec.length == want[i].rec.length, "record %zu range", i);
		if (want[i].data)
			FUZZ_CHECK(!memcmp(have[i].data, want[i].data, want[i].rec.length),
				   "record %zu data", i);
		free(want[i].data);
		free(have[i].data);
	}
	/* One flipped byte anywhere: refused.  */
	size_t at = fuzz_u32(in) % m->n;
	uint8_t bit = (uint8_t)(1u << (fuzz_u8(in) & 7));
	m->p[at] ^= bit;
	e = read_all(m, NULL, 0, NULL);
	FUZZ_CHECK(e < 0, "stream with byte %zu flipped accepted", at);
}

/* The seed DIR/NAME-I: the byte LEAD (none if 0), then N bytes at P.  */
static void seed_write(const char *dir, const char *name, size_t i, int lead, const void *p,
		       size_t n)
{
	char path[512];

	snprintf(path, sizeof path, "%s/%s-%zu", dir, name, i);
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (lead)
		fputc(lead, f);
	fwrite(p, 1, n, f);
	fclose(f);
}

static void write_seeds(const char *dir)
{
	static const uint8_t progs[][24] = {
		{ 'P', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 1, 0, 1, 0, 0 },
		{ 'P', 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 4, 1, 1, 3, 0 },
	};
	for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
		struct fuzz_in in = { progs[i] + 1, sizeof progs[i] - 1 };
		uint8_t ops[] = { 0, 4, 0, 0, 16, 1, 0, 0, 8, 2, 0, 0, 0, 3, 16, 0, 0, 4 };
		uint8_t all[sizeof progs[i] + sizeof ops];
		memcpy(all, progs[i], sizeof progs[i]);
		memcpy(all + sizeof progs[i], ops, sizeof ops);
		in.p = all + 1;
		in.n = sizeof all - 1;
		struct mem m = { 0 };
		struct ss_header h = { 0 };
		h.chunk_size = 4096;
		h.origin_size = 1 << 20;
		h.to_id = 2;
		strcpy(h.to_name, "b");
		if (i) {
			h.flags = SS_F_INCREMENTAL;
			h.from_id = 1;
			strcpy(h.from_name, "a");
		}
		struct ss_writer w;
		if (ss_writer_open(&w, mem_write, &m, &h, (int)i * 3) < 0)
			abort();
		uint8_t d[4096];
		for (size_t j = 0; j < sizeof d; j++)
			d[j] = (uint8_t)(j / 512);
		ss_write_data(&w, 0, d, sizeof d);
		ss_write_zero(&w, 16384, 8192);
		ss_write_checkpoint(&w);
		ss_write_data(&w, 65536, d, 100);
		ss_write_end(&w);
		ss_writer_close(&w);
		seed_write(dir, "stream", i, 'R', m.p, m.n);
		seed_write(dir, "fixed", i, 'F', m.p, m.n);
		seed_write(dir, "program", i, 0, all, sizeof all);
		free(m.p);
		(void)in;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup("fuzz_send_stream");
	const char *seeds = getenv("CSNAP_FUZZ_SEEDS");
	if (seeds)
		write_seeds(seeds);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	struct mem m = { 0 };
	if (data[0] == 'R' || data[0] == 'F') {
		mem_write(&m, data + 1, size - 1);
		if (data[0] == 'F')
			fix_sums(&m);
		read_all(&m, NULL, 0, NULL);
	} else {
		struct fuzz_in in = { data + 1, size - 1 };
		program(&in, &m);
	}
	free(m.p);
	return 0;
}
