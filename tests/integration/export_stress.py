#!/usr/bin/python3
"""Concurrent unaligned I/O against an NBD export, checked against a model.

usage: export_stress.py URI SIZE_LIMIT SEED [ROUNDS [CONNECTIONS]]

Several libnbd connections (3 unless told) issue batches of concurrent writes that share
device sectors but never bytes (so read-modify-write races would lose
data), plus zeroing and trims, then compare random unaligned reads and the
whole export with an in-memory model.  The model starts from what the
export holds when the test starts.  Exits non-zero with a message on the
first mismatch.
"""
import random
import sys

import nbd

uri = sys.argv[1]
limit = int(sys.argv[2])
seed = int(sys.argv[3])
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 60
nconns = int(sys.argv[5]) if len(sys.argv) > 5 else 3
rng = random.Random(seed)

conns = []
for _ in range(nconns):
    h = nbd.NBD()
    h.connect_uri(uri)
    conns.append(h)
size = min(conns[0].get_size(), limit)

# Start from the current content.
model = bytearray(conns[0].pread(size, 0)) if size <= 32 << 20 else None
if model is None:
    model = bytearray()
    for off in range(0, size, 32 << 20):
        model += conns[0].pread(min(32 << 20, size - off), off)


def wait_all(cmds):
    for h, c in cmds:
        while not h.aio_command_completed(c):
            h.poll(-1)


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def check_range(h, off, n):
    got = h.pread(n, off)
    if got != model[off:off + n]:
        for i in range(n):
            if got[i] != model[off + i]:
                fail("mismatch at byte %d (read %d+%d): got %d want %d"
                     % (off + i, off, n, got[i], model[off + i]))


for rnd in range(rounds):
    # A region split at random boundaries into adjacent pieces, each
    # written concurrently by a random connection.
    span = rng.choice([512, 4096, 9000, 70000, 300000])
    start = rng.randrange(0, size - span)
    cuts = sorted(set(rng.randrange(1, span) for _ in range(rng.randint(1, 12))))
    bounds = [0] + cuts + [span]
    cmds = []
    for a, b in zip(bounds, bounds[1:]):
        off, n = start + a, b - a
        h = rng.choice(conns)
        kind = rng.random()
        if kind < 0.75 or not h.can_zero():
            data = rng.randbytes(n)
            flags = nbd.CMD_FLAG_FUA if rng.random() < 0.1 else 0
            # bytes, not an nbd.Buffer: python3-libnbd 1.14 keeps every
            # nbd.Buffer given to aio_pwrite (export_workload.py's comment)
            cmds.append((h, h.aio_pwrite(data, off, flags=flags)))
            model[off:off + n] = data
        else:
            cmds.append((h, h.aio_zero(n, off)))
            model[off:off + n] = bytes(n)
    wait_all(cmds)
    # Unaligned reads across and around the region.
    for _ in range(4):
        off = max(0, start - rng.randrange(0, 5000))
        n = min(size - off, rng.randrange(1, span + 10000))
        check_range(rng.choice(conns), off, n)
    if rnd % 10 == 9:
        for h in conns:
            h.flush()

# Whole-export comparison through a fresh connection.
h = nbd.NBD()
h.connect_uri(uri)
for off in range(0, size, 16 << 20):
    n = min(16 << 20, size - off)
    if h.pread(n, off) != model[off:off + n]:
        check_range(h, off, n)
        fail("mismatch in [%d, %d)" % (off, off + n))
h.shutdown()
for c in conns:
    c.shutdown()
print("ok: %d rounds, %d bytes checked" % (rounds, size))
