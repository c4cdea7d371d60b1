#!/usr/bin/env python3
# bench/failover_io_workload.py - the client side of bench/failover_io.sh.
#
#   failover_io_workload.py URI CHUNK_SIZE INTERVAL_MS STOPFILE OUT
#
# Writes 4 KiB at the start of one origin chunk after another (each a
# first write after the snapshot, so each needs the master: a copy-out),
# DEPTH writes in flight, a new write at most every INTERVAL_MS; verifies
# nothing (the test suite does); appends the wall-clock time of every
# completed write to OUT (one float per line) until STOPFILE exists.
import os
import sys
import time

import nbd

uri, chunk, interval, stop, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000, sys.argv[4], sys.argv[5]
DEPTH = 4
h = nbd.NBD()
h.connect_uri(uri)
size = h.get_size()
nchunks = size // chunk
buf = nbd.Buffer.from_bytearray(bytearray(b'\x5a' * 4096))
done_times = []
inflight = 0
k = 0
last = 0.0


def on_done(err):
    global inflight
    inflight -= 1
    if err.value:
        print("write failed:", err.value, file=sys.stderr, flush=True)
    else:
        done_times.append(time.time())
    # 1: libnbd retires the command now.  With 0 it would stay in the
    # handle until aio_command_completed(cookie), which nothing here calls:
    # ~500 bytes a write kept for the whole run (one buffer is reused for
    # every write, so that python3-libnbd 1.14 keeps no buffer per write).
    return 1


with open(out, "w") as f:
    print("running", flush=True)
    while not os.path.exists(stop):
        now = time.monotonic()
        if inflight < DEPTH and now - last >= interval:
            off = (k % nchunks) * chunk
            k += 1
            last = now
            inflight += 1
            h.aio_pwrite(buf, off, completion=on_done)
        h.poll(1 if inflight else 0)
        if inflight == 0 and now - last < interval:
            time.sleep(max(0.0, interval - (time.monotonic() - last)))
        if len(done_times) >= 256:
            f.write("".join("%.6f\n" % t for t in done_times))
            f.flush()
            done_times.clear()
    while inflight:
        h.poll(-1)
    f.write("".join("%.6f\n" % t for t in done_times))
print("writes %d" % k, flush=True)
