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

The aio buffers are plain bytes/bytearrays, never nbd.Buffer: python3-libnbd
1.14 keeps every nbd.Buffer given to aio_pwrite/aio_pread alive (its
contents with it), which made this writer grow by ~1.5 MiB a batch (374 MiB
in one export_failover.sh); a buffer-like object is held only until its
command is retired.  So that such a leak fails here rather than in the
kernel's OOM killer, the run fails if its resident memory grows by more than
$WORKLOAD_RSS_MAX_MB (default 64) after the first 50 batches.
"""
import os
import random
import sys
import time

import nbd

from cluster_blocks import rss_kib     # this process's VmRSS in KiB

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
rss_max = int(os.environ.get("WORKLOAD_RSS_MAX_MB", "64")) * 1024
rss_base = None
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
        cmds.append(o.aio_pwrite(data, pos))
        pending.append((pos, data))
        pos += n
    # Snapshot reads in flight at the same time.
    scmds = []
    for _ in range(4):
        off = rng.randrange(0, size - 300000)
        n = rng.randrange(1, 300000)
        buf = bytearray(n)
        scmds.append((s.aio_pread(buf, off), buf, off, n))
    wait(o, cmds)
    for off, data in pending:
        model[off:off + len(data)] = data
    for c, buf, off, n in scmds:
        while not s.aio_command_completed(c):
            s.poll(-1)
        if buf != ref[off:off + n]:
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
        if rss_base is None:
            rss_base = rss_kib()
        elif rss_kib() - rss_base > rss_max:
            fail("memory grew by %d MiB over %d batches (WORKLOAD_RSS_MAX_MB=%d): a leak in the client"
                 % ((rss_kib() - rss_base) // 1024, batches - 50, rss_max // 1024))

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
grew = rss_kib() - rss_base if rss_base is not None else 0
print("ok: %d batches, longest stall %.2f s, memory grew %d KiB after batch 50"
      % (batches, longest, grew), flush=True)
