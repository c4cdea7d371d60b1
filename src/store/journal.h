/*
 * src/store/journal.h - transactions over the block manager: group commit
 * into a circular journal, checkpoint, and replay after a crash.
 *
 * A transaction is every block dirtied since the last commit.  Commit
 * writes, at the journal head, descriptor blocks (each listing up to
 * JOURNAL_DESC_ENTRIES home block numbers with the crc32c of their image,
 * the last one flagged LAST) each followed by its block images, then one
 * flush.  Replay starts at the checkpointed tail recorded in the superblock
 * and applies whole transactions whose sequence numbers follow on and whose
 * descriptors and images all verify; the first gap or mismatch is the end
 * of the log.  Checkpoint writes committed blocks home, flushes, then
 * records the new tail in both superblock copies; journal space is reused
 * only after that.
 */
#ifndef CSNAP_STORE_JOURNAL_H
#define CSNAP_STORE_JOURNAL_H

#include "src/store/bm.h"
#include "src/store/superblock.h"

#include <stdbool.h>
#include <stdint.h>

struct journal;


/* Replays the journal (read-write: writes home and checkpoints;
 * read-only: installs the images into BM), then returns a journal ready
 * for commits.  SB is the caller's decoded superblock; the journal updates
 * its tail fields in place when it checkpoints.  */
int journal_open(struct bm *bm, struct csnap_sb *sb, bool readonly,
		 struct journal **out);
void journal_close(struct journal *j);

/* Commits the open transaction (no-op without dirty blocks).  */
int journal_commit(struct journal *j);

/* The same in two halves, for a caller that does the journal's I/O
 * asynchronously and meanwhile goes on changing blocks (the next
 * transaction).  journal_commit_begin() stages the open transaction and
 * fills IO with the writes to make (io->n == 0: nothing to commit, no
 * commit in flight); from then on the transaction's blocks count as
 * committed in memory but none is written home (bm_hold_home).  The
 * caller writes the pieces, flushes the device, and reports the result
 * with journal_commit_end() (which may checkpoint).  Only one commit is
 * in flight: commits and checkpoints fail with -EBUSY meanwhile.  After a
 * failed end the journal refuses every further commit (-EIO): the store
 * must be closed without a checkpoint and reopened (replay).  */
struct journal_io {
	void *buf[2];		/* 4096-aligned, valid until the end */
	size_t len[2];
	uint64_t off[2];	/* byte offsets on the device */
	unsigned n;
};
int journal_commit_begin(struct journal *j, struct journal_io *io);
int journal_commit_end(struct journal *j, int result);
bool journal_inflight(const struct journal *j);
int journal_checkpoint(struct journal *j);

uint64_t journal_last_seq(const struct journal *j);	/* last committed */
uint64_t journal_replayed(const struct journal *j);	/* transactions replayed at open */
uint64_t journal_used(const struct journal *j);		/* blocks since tail */

#endif
