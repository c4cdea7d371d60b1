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
      acknowledged write (CLOCK_MONOTONIC seconds), and "seq block t_start"
      in LOG.start for every write started.  With FLUSH_LOG, also
      send an NBD FLUSH after every 50 acknowledged writes (one at a time,
      beside the writes) and log "t_sent t_ack" for each acknowledged one:
      it covers every write acknowledged before t_sent.  Fails (exit 1)
      if its resident memory grows by more than $BLOCKS_RSS_MAX_MB
      (default 256) after its first 2000 writes: a leak in the writer.
  cluster_blocks.py verify URI BLOCKS T0 T1 LOG...
      read the volume (a snapshot created between monotonic times T0 and
      T1, or the origin with T0 = T1 = inf) and check every block: intact,
      and produced by the last write acknowledged before T0 or by a later
      write started before T1 (acknowledged or not: LOG.start).
"""
import hashlib
import operator
import os
import random
import re
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


def stall_report(h, writer, inflight, waited):
    """Where the replies a stalled writer waits for are: still owed by the
    server (libnbd awaits them, nothing unread in the socket), or arrived
    and not taken (bytes unread, or libnbd awaits fewer than we have in
    flight)."""
    import array, fcntl, termios
    unread = array.array('i', [0])
    try:
        fcntl.ioctl(h.aio_get_fd(), termios.FIONREAD, unread)
    except OSError as e:
        unread[0] = -e.errno
    seqs = sorted(s for _, s, _, _ in inflight.values())
    print(f"writer {writer}: no reply for {waited:.1f} s: {len(inflight)} writes in flight here "
          f"(sequences {seqs[0]}..{seqs[-1]}), libnbd awaits {h.aio_in_flight()} replies, "
          f"{unread[0]} bytes unread in its socket", file=sys.stderr, flush=True)


class SlotBuffers:
    """The write buffers, one per in-flight slot and size, reused.

    python3-libnbd 1.14 keeps every buffer passed to aio_pwrite alive
    after the command is retired (aio_command_completed), so a fresh
    nbd.Buffer per write leaks its size: 4 KiB a write, 8.8 GiB after two
    million writes, when the kernel's OOM killer killed the soak's writer
    (kill_soak.sh SEED=5150, docs/RELIABILITY.md).  A slot's buffer is
    refilled in place only after its write was acknowledged."""

    def __init__(self, nbd, slots):
        self.nbd = nbd
        self.free = list(range(slots))
        self.bufs = [{} for _ in range(slots)]

    def take(self, data):
        """A free slot and its buffer holding DATA."""
        i = self.free.pop()
        pair = self.bufs[i].get(len(data))
        if pair is None:
            ba = bytearray(len(data))
            pair = self.bufs[i][len(data)] = (ba, self.nbd.Buffer.from_buffer(ba))
        pair[0][:] = data       # same length: in place
        return i, pair[1]

    def give(self, i):
        self.free.append(i)


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cmd_write(uri, first, count, writer, stop_file, log_path, flush_path=None):
    """Writes random blocks of [FIRST, FIRST + COUNT), 8 in flight.  With
    BLOCKS_SPAN=1 in the environment one write in 4 covers two blocks
    across a chunk boundary (16 KiB chunks: blocks 4k+3 and 4k+4), so the
    export's question for one chunk races barriers and master changes
    while it remembers the other (docs/RELIABILITY.md, "A write spanning
    chunks").  Each block of a write is logged on its own line, with the
    write's sequence."""
    import nbd
    h = nbd.NBD()
    h.connect_uri(uri)
    rng = random.Random(writer * 7919 + os.getpid())
    span = os.environ.get("BLOCKS_SPAN") == "1"
    seq = writer << 40          # sequences of different writers never meet
    inflight = {}               # cookie -> (blocks, seq, t_start, slot)
    slots = SlotBuffers(nbd, 8)
    # A writer whose memory grows with its writes is killed by the kernel
    # one day (and then looks like a stalled export): fail first, saying so.
    rss_max = int(os.environ.get("BLOCKS_RSS_MAX_MB", "256")) * 1024
    rss_base = None
    busy = set()
    log = open(log_path, "w", buffering=1)
    slog = open(log_path + ".start", "w", buffering=1)
    flog = open(flush_path, "w", buffering=1) if flush_path else None
    flush = None                # (cookie, t_sent) of the flush in flight
    written = 0
    last_ack = said = time.monotonic()

    while not os.path.exists(stop_file):
        while len(inflight) < 8:
            block = first + rng.randrange(count)
            blocks = (block,)
            if span and rng.randrange(4) == 0 and block - block % 4 + 4 < first + count:
                blocks = (block - block % 4 + 3, block - block % 4 + 4)
            if busy.intersection(blocks):
                continue
            seq += 1
            busy.update(blocks)
            slot, buf = slots.take(b"".join(make_block(b, seq, writer) for b in blocks))
            t = time.monotonic()
            for b in blocks:
                slog.write(f"{seq} {b} {t:.6f}\n")
            inflight[h.aio_pwrite(buf, blocks[0] * BS)] = (blocks, seq, t, slot)
        h.poll(1000)    # bounded, so a stall is reported (stall_report)
        now = time.monotonic()
        if now - last_ack > 10 and now - said > 10:
            said = now
            stall_report(h, writer, inflight, now - last_ack)
        for c in list(inflight):
            try:
                if not h.aio_command_completed(c):
                    continue
            except nbd.Error as e:
                print(f"FAIL: write of blocks {inflight[c][0]} failed: {e}", file=sys.stderr)
                sys.exit(1)
            blocks, s, t, slot = inflight.pop(c)
            slots.give(slot)
            last_ack = time.monotonic()
            for b in blocks:
                log.write(f"{s} {b} {t:.6f} {last_ack:.6f}\n")
            busy.difference_update(blocks)
            written += 1
            if written % 2000 == 0:
                print(f"writes {written}", flush=True)
                rss = rss_kib()
                if rss_base is None:
                    rss_base = rss     # after the first 2000: warm
                elif rss - rss_base > rss_max:
                    print(f"FAIL: writer {writer}: memory grew by {(rss - rss_base) // 1024} MiB "
                          f"over {written - 2000} writes (BLOCKS_RSS_MAX_MB={rss_max // 1024}): "
                          f"a leak in the test's writer", file=sys.stderr, flush=True)
                    sys.exit(1)
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
                blocks, s, t, _ = inflight.pop(c)
                ta = time.monotonic()
                for b in blocks:
                    log.write(f"{s} {b} {t:.6f} {ta:.6f}\n")
                written += 1
        if flush and h.aio_command_completed(flush[0]):
            flog.write(f"{flush[1]:.6f} {time.monotonic():.6f}\n")
            flush = None
    grew = rss_kib() - rss_base if rss_base is not None else 0
    print(f"ok: {written} writes, memory grew by {grew} KiB after the first 2000", flush=True)


# Logs hold one line "seq block t_start t_ack" per acknowledged write, in
# acknowledgement order (t_ack never decreases within a file), only whole
# lines counting (the writer may be appending one).
LOG_HEAD = re.compile(rb"^(\d+) (\d+) ", re.M)
STALL_BOUND = 120.0     # seconds: no write is in flight longer (see expected)


def first_ack_at(data, t):
    """Offset of the first line of DATA acknowledged at or after T (len(data)
    if none): a binary search over byte offsets, since t_ack is sorted."""
    lo, hi = 0, len(data)       # line starts; lines before lo are acked before t
    while lo < hi:
        mid = (lo + hi) // 2
        start = data.rfind(b"\n", 0, mid) + 1
        end = data.index(b"\n", start)
        if float(data[start:end].rsplit(b" ", 1)[1]) >= t:
            hi = start
        else:
            lo = end + 1
    return lo


def expected(logs, t0, t1):
    """Per written block: (lower, later).  LOWER is the last write
    acknowledged before T0 (0: the initial block); LATER the writes after it
    started before T1.  A snapshot created between T0 and T1 holds LOWER
    or one of LATER.  The writes acknowledged before T0 (almost all of a
    long run's log) are scanned in C by a regex keeping each block's last
    sequence; only the lines after T0 are parsed one by one, up to
    STALL_BOUND after T1: a write acknowledged later than that started
    after T1 unless it stalled that long (it would then be missing from
    LATER, a false failure, never a false pass)."""
    last, later = {}, {}
    for path in logs:
        with open(path, "rb") as f:
            data = f.read()
        data = data[:data.rfind(b"\n") + 1]
        p0 = first_ack_at(data, t0)
        pos = 0
        while pos < p0:             # 8 MiB of lines at a time: bounded memory
            end = min(p0, data.rfind(b"\n", pos, pos + (8 << 20)) + 1 or p0)
            pairs = LOG_HEAD.findall(data, pos, end)
            last.update(zip(map(operator.itemgetter(1), pairs),
                            map(operator.itemgetter(0), pairs)))
            pos = end
        for line in data[p0:first_ack_at(data, t1 + STALL_BOUND)].splitlines():
            s, b, ts, ta = line.split()
            if float(ts) < t1:
                later.setdefault(int(b), set()).add(int(s))
    out = {int(b): (int(s), set()) for b, s in last.items()}
    for b, seqs in later.items():
        lower = out.setdefault(b, (0, set()))[0]
        out[b][1].update(x for x in seqs if x > lower)
    return out


def started_before(logs, holds, t1):
    """The (block, seq) of HOLDS whose write started before T1 according to
    the start logs (LOG.start: "seq block t_start" per write started)."""
    out = set()
    for path in logs:
        try:
            with open(path + ".start", "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        for b, seq in holds:
            m = re.search(rb"^%d %d ([0-9.]+)$" % (seq, b), data, re.M)
            if m and float(m.group(1)) < t1:
                out.add((b, seq))
    return out


def cmd_verify(uri, blocks, t0, t1, logs):
    import nbd
    exp = expected(logs, t0, t1)
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
                bad.append((b, None, f"block {b}: {why}"))
                continue
            lower, later = exp.get(b, (0, set()))
            if seq != lower and seq not in later:
                bad.append((b, seq, f"block {b}: has seq {seq}, expected {lower}"
                                    f" or one of {sorted(later)[:4]}"))
    # A write never acknowledged (still in flight: its writer stalled) is
    # not in the logs; one that started before T1 may be in the snapshot
    # like any write in flight during the create.  Its start is in
    # LOG.start.
    unacked = started_before(logs, [(b, seq) for b, seq, _ in bad if seq], t1)
    if unacked:
        print(f"note: {len(unacked)} block(s) hold writes never acknowledged that started"
              f" before the snapshot's create returned (allowed; their writer is stalled): "
              + ", ".join(f"block {b} seq {s}" for b, s in sorted(unacked)[:8]))
    bad = [why for b, seq, why in bad if (b, seq) not in unacked]
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
