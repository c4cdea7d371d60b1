/*
 * tests/fuzz/fuzz_proto.c - the csnap wire decoder (src/proto/proto.c) as
 * both ends use it: a byte stream taken apart with proto_take(), the way
 * the master reads clients and clients read the master.
 *
 * Input: the stream, any number of messages.  The harness writes each
 * message's correct crc32c (else nearly every input stops at the
 * checksum) unless the crc field holds 0xffffffff, which stays as sent.
 * Every message that decodes must encode again to exactly the bytes it
 * came from: decode and encode validate alike, so a receiver never
 * accepts what no sender could send, and nothing is lost in decoding.
 *
 * CSNAP_FUZZ_SEEDS=DIR makes the binary write its seed inputs (one valid
 * message of each main shape) to DIR and exit (tests/fuzz/run.sh seeds).
 */
#include "tests/fuzz/fuzz.h"

#include "src/proto/proto.h"
#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <string.h>

static void write_seed(const char *dir, int i, const struct proto_msg *m)
{
	struct proto_buf b;
	char path[512];
	FILE *f;

	proto_buf_init(&b);
	if (proto_encode(m, &b) < 0) {
		fprintf(stderr, "seed %d: %s\n", i, err_get());
		exit(1);
	}
	snprintf(path, sizeof path, "%s/seed-%02d", dir, i);
	f = fopen(path, "w");
	if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f)) {
		perror(path);
		exit(1);
	}
	proto_buf_free(&b);
}

static void make_seeds(const char *dir)
{
	static struct proto_range ranges[2] = { { 0, 1 }, { 1000, 64 } };
	static struct proto_extent ext[2] = { { 0, 1, PROTO_AT_STORE, 17 }, { 1, 7, PROTO_AT_ORIGIN, 0 } };
	static struct proto_snapinfo snaps[1] = { { .id = 1, .name = "daily", .ctime = 1764000000,
						    .priority = 5, .usecount = 2, .unique_chunks = 100,
						    .shared_chunks = 50 } };
	static struct proto_client_info cl[1] = { { 1, PROTO_VOL_ORIGIN, 0, "node1/export", "127.0.0.11:4000" } };
	struct proto_msg m;
	int i = 0;

	proto_msg_init(&m, PROTO_CHALLENGE, 1);
	m.u.challenge.version_min = m.u.challenge.version_max = 1;
	write_seed(dir, i++, &m);
	proto_msg_init(&m, PROTO_AUTH, 2);
	m.u.auth.version = 1;
	write_seed(dir, i++, &m);
	proto_msg_init(&m, PROTO_IDENTIFY, 3);
	m.u.identify.volume = PROTO_VOL_SNAPSHOT;
	m.u.identify.host_id = 3;
	strcpy(m.u.identify.snapshot, "snap1");
	strcpy(m.u.identify.client, "node3/export");
	write_seed(dir, i++, &m);
	proto_msg_init(&m, PROTO_SNAP_WRITE, 4);
	m.flags = PROTO_F_FULL_CHUNKS;
	m.u.ranges.n = 2;
	m.u.ranges.r = ranges;
	write_seed(dir, i++, &m);
	proto_msg_init(&m, PROTO_SNAP_READ | PROTO_REPLY, 5);
	m.u.extents.n = 2;
	m.u.extents.e = ext;
	write_seed(dir, i++, &m);
	proto_msg_init(&m, PROTO_SNAP_SET, 6);
	strcpy(m.u.snap_set.name, "x");
	m.u.snap_set.mask = PROTO_SET_PRIORITY;
	write_seed(dir, i++, &m);
	proto_msg_init(&m, PROTO_SNAP_LIST | PROTO_REPLY, 7);
	m.u.snap_list.n = 1;
	m.u.snap_list.s = snaps;
	write_seed(dir, i++, &m);
	proto_msg_init(&m, PROTO_STATUS | PROTO_REPLY, 8);
	m.u.status.chunk_size = 4096;
	m.u.status.max_snapshots = 256;
	strcpy(m.u.status.master_address, "127.0.0.12");
	strcpy(m.u.status.master_node, "node2");
	m.u.status.nclients = 1;
	m.u.status.clients = cl;
	write_seed(dir, i++, &m);
	proto_msg_init(&m, PROTO_CHANGED, 9);
	strcpy(m.u.changed.from, "a");
	m.u.changed.max_ranges = 100;
	write_seed(dir, i++, &m);
	proto_msg_init(&m, PROTO_ORIGIN_WRITE | PROTO_REPLY, 10);
	m.status = ENOSPC;
	strcpy(m.error, "store full");
	write_seed(dir, i++, &m);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup("fuzz_proto");
	if (getenv("CSNAP_FUZZ_SEEDS"))
		make_seeds(getenv("CSNAP_FUZZ_SEEDS"));
	return 0;
}

/* Writes the right crc into every complete message of the stream.  */
static void fix_crcs(uint8_t *p, size_t n)
{
	size_t off = 0;

	while (n - off >= PROTO_HDR_SIZE) {
		uint8_t *h = p + off;
		size_t len = get_le32(h + 4);

		if (len > n - off - PROTO_HDR_SIZE)
			return;
		if (get_le32(h + 16) != 0xffffffffu) {
			uint8_t hdr[PROTO_HDR_SIZE];

			memcpy(hdr, h, sizeof hdr);
			memset(hdr + 16, 0, 4);
			put_le32(h + 16, crc32c(crc32c(0, hdr, sizeof hdr), h + PROTO_HDR_SIZE, len));
		}
		off += PROTO_HDR_SIZE + len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_buf in, out;
	struct proto_msg m;
	int r;

	proto_buf_init(&in);
	proto_buf_init(&out);
	if (proto_buf_reserve(&in, size + 1) < 0)
		abort();
	memcpy(in.data, data, size);
	in.len = size;
	fix_crcs(in.data, size);
	for (;;) {
		size_t at = in.off, used;

		r = proto_take(&in, &m);
		if (r <= 0) {
			FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM, "proto_take: %d", r);
			if (r < 0)
				FUZZ_CHECK(err_get()[0] && !strchr(err_get(), '\n'), "no one-line reason");
			break;
		}
		/* proto_take resets off and len once everything is consumed */
		used = in.off ? in.off - at : size - at;
		out.len = 0;
		r = proto_encode(&m, &out);
		FUZZ_CHECK(r == 0, "a decoded %s does not encode: %s", proto_type_name(m.type),
			   err_get());
		FUZZ_CHECK(out.len == used && !memcmp(out.data, in.data + at, used),
			   "%s re-encodes differently", proto_type_name(m.type));
		proto_msg_free(&m);
		if (!in.off)
			break;
	}
	proto_buf_free(&in);
	proto_buf_free(&out);
	return 0;
}
