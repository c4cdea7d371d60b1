/*
 * src/send/token.h - resuming a receive that was cut.
 *
 * `csnap receive` records, in a small state file on the receiving node,
 * which stream it was receiving (source store uuid, from and to snapshot
 * ids) and the origin offset below which everything the stream carries
 * has been written and flushed (at each CHECKPOINT, and after the last
 * record applied when a receive stops on an error).  `csnap receive
 * --token` prints that as a token; `csnap send --resume TOKEN` accepts it
 * only for the same source store and snapshots and sends from that offset
 * on: a token can only make a sender send less of the same stream.
 *
 * Token: "1-" and the hex of: 16 bytes source uuid, le32 from id, le32 to
 * id, le64 offset, le32 crc32c of those 32 bytes (74 characters).
 */
#ifndef CSNAP_SEND_TOKEN_H
#define CSNAP_SEND_TOKEN_H

#include "utils/uuid.h"

#include <stddef.h>
#include <stdint.h>

struct send_token {
	struct csnap_uuid source;
	uint32_t from_id, to_id;
	uint64_t offset;
};

#define SEND_TOKEN_STR	(2 + 2 * 36 + 1)

void send_token_format(const struct send_token *t, char out[SEND_TOKEN_STR]);
/* 0, or -EINVAL with err_set() (not a token, or a damaged one).  */
int send_token_parse(const char *s, struct send_token *t);

/* The state file: written atomically (temporary file, fsync, rename,
 * fsync of the directory); load gives -ENOENT when there is none.  */
int send_state_save(const char *path, const struct send_token *t);
int send_state_load(const char *path, struct send_token *t);
void send_state_clear(const char *path);

#endif
