#!/usr/bin/python3
"""Self-describing 4 KiB blocks for csnap cluster tests.

Every block carries its own identity: a header {magic, block number,
sequence, writer} and a fill derived from the header, so a reader can tell
which write produced a block, and that no block is torn or misplaced.

  cluster_blocks.py init FILE BLOCKS
      write BLOCKS blocks of sequence 0 (the origin before any write)
  cluster_blocks.py write URI FIRST COUNT WRITER STOP_FILE LOG [FLUSH_LOG]
      until STOP_FILE exists, write random blocks of [FIRST, FIRST+COUNT)
      through NBD, 8 in flight, never two to the same block at once, with
      increasing sequence numbers; log "seq block t_start t_ack" for every
      acknowledged write (CLOCK_MONOTONIC seconds).  With FLUSH_LOG, also
      send an NBD FLUSH after every 50 acknowledged writes (one at a time,
      beside the writes) and log "t_sent t_ack" for each acknowledged one:
      it covers every write acknowledged before t_sent.
  cluster_blocks.py verify URI BLOCKS T0 T1 LOG...
      read the volume (a snapshot created between monotonic times T0 and
      T1, or the origin with T0 = T1 = inf) and check every block: intact,
      and produced by the last write acknowledged before T0 or by a later
      write started before T1.
"""
import hashlib
import os
import random
import struct
import sys
import time

BS = 4096
MAGIC = b"CSNPBLK1"


def make_block(block, seq, writer):
    head = MAGIC + struct.pack("<QQI", block, seq, writer)
    head += b"\0" * (32 - len(head))
    fill = hashlib.blake2b(head).digest() * (BS // 64)
    return head + fill[: BS - 32]


def parse_block(data, expect_block):
    if data[:8] != MAGIC:
        return None, "no block header"
    block, seq, writer = struct.unpack("<QQI", data[8:28])
    if block != expect_block:
        return None, f"holds block {block}"
    if data != make_block(block, seq, writer):
        return None, f"torn or corrupt (seq {seq})"
    return seq, None


def cmd_init(path, blocks):
    with open(path, "wb") as f:
        for b in range(blocks):
            f.write(make_block(b, 0, 0))


def cmd_write(uri, first, count, writer, stop_file, log_path, flush_path=None):
    import nbd
    h = nbd.NBD()
    h.connect_uri(uri)
    rng = random.Random(writer * 7919 + os.getpid())
    seq = writer << 40          # sequences of different writers never meet
    inflight = {}               # cookie -> (block, seq, t_start)
    busy = set()
    log = open(log_path, "w", buffering=1)
    flog = open(flush_path, "w", buffering=1) if flush_path else None
    flush = None                # (cookie, t_sent) of the flush in flight
    written = 0

    while not os.path.exists(stop_file):
        while len(inflight) < 8:
            block = first + rng.randrange(count)
            if block in busy:
                continue
            seq += 1
            busy.add(block)
            buf = nbd.Buffer.from_bytearray(bytearray(make_block(block, seq, writer)))
            t = time.monotonic()
            inflight[h.aio_pwrite(buf, block * BS)] = (block, seq, t, buf)
        h.poll(-1)
        for c in list(inflight):
            try:
                if not h.aio_command_completed(c):
                    continue
            except nbd.Error as e:
                print(f"FAIL: write of block {inflight[c][0]} failed: {e}", file=sys.stderr)
                sys.exit(1)
            block, s, t, _ = inflight.pop(c)
            log.write(f"{s} {block} {t:.6f} {time.monotonic():.6f}\n")
            busy.discard(block)
            written += 1
            if written % 2000 == 0:
                print(f"writes {written}", flush=True)
        if flog and flush and h.aio_command_completed(flush[0]):
            flog.write(f"{flush[1]:.6f} {time.monotonic():.6f}\n")
            flush = None
        if flog and not flush and written % 50 < 8:
            t = time.monotonic()
            flush = (h.aio_flush(), t)
    while inflight or flush:
        h.poll(-1)
        for c in list(inflight):
            if h.aio_command_completed(c):
                block, s, t, _ = inflight.pop(c)
                log.write(f"{s} {block} {t:.6f} {time.monotonic():.6f}\n")
                written += 1
        if flush and h.aio_command_completed(flush[0]):
            flog.write(f"{flush[1]:.6f} {time.monotonic():.6f}\n")
            flush = None
    print(f"ok: {written} writes", flush=True)


def cmd_verify(uri, blocks, t0, t1, logs):
    import nbd
    writes = {}                 # block -> [(seq, t_start, t_ack)]
    for path in logs:
        for line in open(path):
            s, b, ts, ta = line.split()
            writes.setdefault(int(b), []).append((int(s), float(ts), float(ta)))
    h = nbd.NBD()
    h.connect_uri(uri)
    bad = []
    step = 256
    for base in range(0, blocks, step):
        data = h.pread(step * BS, base * BS)
        for i in range(step):
            b = base + i
            seq, why = parse_block(data[i * BS:(i + 1) * BS], b)
            if why:
                bad.append(f"block {b}: {why}")
                continue
            ws = writes.get(b, [])
            lower = max([s for s, ts, ta in ws if ta < t0], default=0)
            allowed = {lower} | {s for s, ts, ta in ws if s > lower and ts < t1}
            if seq not in allowed:
                bad.append(f"block {b}: has seq {seq}, expected {lower}"
                           f" or one of {sorted(allowed - {lower})[:4]}")
    if bad:
        print(f"FAIL: {len(bad)} wrong blocks, e.g.", *bad[:5], sep="\n  ")
        explain(h, bad, t0, t1, logs)
        sys.exit(1)
    print(f"ok: {blocks} blocks verified")


def explain(h, bad, t0, t1, logs):
    """Diagnostics for wrong blocks: when the block's write was made (the
    logs again: it may have been acknowledged since the verify began), and
    whether a second read of the block still returns it (a snapshot that
    changed for good, or one read that raced a write)."""
    writes = {}
    for path in logs:
        for line in open(path):
            s, b, ts, ta = line.split()
            writes.setdefault(int(b), []).append((int(s), float(ts), float(ta)))
    now = time.monotonic()
    print(f"  diagnostics: snapshot window {t0:.6f} - {t1:.6f}, now {now:.6f}")
    for item in bad[:40]:
        b = int(item.split()[1].rstrip(":"))
        ws = writes.get(b, [])
        lines = []
        for again in range(2):
            data = h.pread(BS, b * BS)
            seq, why = parse_block(data, b)
            lines.append(f"reread{again}: {why or seq}")
            time.sleep(0.2)
        near = [w for w in ws if w[1] > t0 - 2]
        print(f"  block {b} (chunk16K {b // 4}): {item}; {'; '.join(lines)};"
              f" writes since t0-2: " +
              ", ".join(f"{s} start {ts:.3f} ack {ta:.3f}" for s, ts, ta in near[:6]))


def main():
    cmd = sys.argv[1]
    a = sys.argv[2:]
    if cmd == "init":
        cmd_init(a[0], int(a[1]))
    elif cmd == "write":
        cmd_write(a[0], int(a[1]), int(a[2]), int(a[3]), a[4], a[5], *a[6:7])
    elif cmd == "verify":
        cmd_verify(a[0], int(a[1]), float(a[2]), float(a[3]), a[4:])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
