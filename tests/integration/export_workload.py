#!/usr/bin/python3
"""Continuous checked I/O on a csnap export, for failover tests.

usage: export_workload.py ORIGIN_URI SNAP_URI SNAP_REF STOP_FILE SEED

Until STOP_FILE exists: batches of concurrent writes to the origin (never
overlapping within a batch), each acknowledged write applied to a model
of the origin; after every batch, random reads of the origin must match
the model and random reads of the snapshot must match SNAP_REF (the
origin's content when the snapshot was taken), with concurrent snapshot
reads in flight while origin writes are.  At the end the whole origin
is compared with the model.  Prints progress and the longest stall.
"""
import os
import random
import sys
import time

import nbd

origin_uri, snap_uri, snap_ref, stop_file, seed = sys.argv[1:6]
rng = random.Random(int(seed))
ref = open(snap_ref, "rb").read()

o = nbd.NBD()
o.connect_uri(origin_uri)
s = nbd.NBD()
s.connect_uri(snap_uri)
size = o.get_size()
model = bytearray(o.pread(min(size, 32 << 20), 0))
for off in range(32 << 20, size, 32 << 20):
    model += o.pread(min(32 << 20, size - off), off)


def fail(msg):
    print("FAIL:", msg, file=sys.stderr, flush=True)
    sys.exit(1)


def wait(h, cmds):
    for c in cmds:
        while not h.aio_command_completed(c):
            h.poll(-1)


batches = 0
longest = 0.0
snap_bufs = []
while not os.path.exists(stop_file):
    t0 = time.monotonic()
    # Writes: disjoint ranges in a random window.
    cmds = []
    pending = []
    base = rng.randrange(0, size - (4 << 20))
    pos = base
    for _ in range(rng.randint(1, 16)):
        pos += rng.randrange(0, 70000)
        n = rng.randrange(1, 200000)
        if pos + n > size:
            break
        data = rng.randbytes(n)
        cmds.append(o.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), pos))
        pending.append((pos, data))
        pos += n
    # Snapshot reads in flight at the same time.
    scmds = []
    for _ in range(4):
        off = rng.randrange(0, size - 300000)
        n = rng.randrange(1, 300000)
        buf = nbd.Buffer(n)
        scmds.append((s.aio_pread(buf, off), buf, off, n))
    wait(o, cmds)
    for off, data in pending:
        model[off:off + len(data)] = data
    for c, buf, off, n in scmds:
        while not s.aio_command_completed(c):
            s.poll(-1)
        if buf.to_bytearray() != ref[off:off + n]:
            fail("snapshot read %d+%d differs from the snapshot-time content" % (off, n))
    # Reads of the origin after the writes were acknowledged.
    for _ in range(3):
        off = rng.randrange(base, min(size, pos + 1))
        n = min(size - off, rng.randrange(1, 300000))
        if o.pread(n, off) != model[off:off + n]:
            fail("origin read %d+%d after acknowledged writes differs" % (off, n))
    if rng.random() < 0.2:
        o.flush()
    batches += 1
    dt = time.monotonic() - t0
    longest = max(longest, dt)
    if batches % 50 == 0:
        print("batches %d, longest %.2f s" % (batches, longest), flush=True)

for off in range(0, size, 16 << 20):
    n = min(16 << 20, size - off)
    if o.pread(n, off) != model[off:off + n]:
        fail("final origin content differs in %d+%d" % (off, n))
for off in range(0, size, 16 << 20):
    n = min(16 << 20, size - off)
    if s.pread(n, off) != ref[off:off + n]:
        fail("final snapshot content differs in %d+%d" % (off, n))
o.shutdown()
s.shutdown()
print("ok: %d batches, longest stall %.2f s" % (batches, longest), flush=True)
