#!/usr/bin/env python3
"""tests/integration/export_burst.py SOCKET PID - a burst of NBD writes that
the export finds already waiting in its socket, ending exactly where one
of its reads of a connection ends (export_burst.sh).

The export reads a connection in stages of NBD_STAGE_SIZE (256 KiB), at
most 32 per wakeup.  With the export stopped (SIGSTOP), 64 writes of
exactly 128 KiB each (header included) are queued: 8 MiB, 32 full
stages.  After SIGCONT the export drains the socket in one wakeup; the
last stage must be parsed too, though no more data will come.  Every
write must then be answered, with its own handle, within the timeout.
Then a second burst mixes payload sizes from 1 byte to 1 MiB (staged and
received straight into their buffers, unaligned ones) with a FLUSH and a
READ, and reads it all back.
"""
import os, signal, socket, struct, sys, time

from nbdwire import (CMD_DISC, CMD_FLUSH, CMD_READ, CMD_WRITE, OPT_EXPORT_NAME, REPLY_MAGIC,
                     connect, recvall, req, send_opt)

STAGE = 256 * 1024
N = 64
TOTAL = 128 * 1024          # one request, header included
HDR = 28
sock_path, pid = sys.argv[1], int(sys.argv[2])

s = connect(sock_path)
send_opt(s, OPT_EXPORT_NAME, b'')   # the default export
size, flags = struct.unpack('>QH', recvall(s, 10))
assert size >= N * TOTAL, size

# Room for the whole burst in this end's send buffer (root may force it),
# so that all of it is in the socket before the export runs again.
s.setsockopt(socket.SOL_SOCKET, 32, 64 * 1024 * 1024)   # SO_SNDBUFFORCE
burst = bytearray()
for i in range(N):
    payload = bytes([i & 0xff]) * (TOTAL - HDR)
    burst += req(CMD_WRITE, 1000 + i, i * TOTAL, len(payload))
    burst += payload
assert len(burst) == 32 * STAGE

os.kill(pid, signal.SIGSTOP)
try:
    s.sendall(burst)
finally:
    os.kill(pid, signal.SIGCONT)

seen = set()
t0 = time.monotonic()
try:
    while len(seen) < N:
        magic, err, handle = struct.unpack('>IIQ', recvall(s, 16))
        assert magic == REPLY_MAGIC, hex(magic)
        if err:
            sys.exit(f"export_burst: write {handle - 1000} failed: error {err}")
        seen.add(handle)
except socket.timeout:
    missing = sorted(h - 1000 for h in set(range(1000, 1000 + N)) - seen)
    sys.exit(f"export_burst: {len(missing)} of {N} writes never answered "
             f"(requests {missing}); the export left them unparsed")
print(f"export_burst: {N} writes in one 8 MiB burst answered in "
      f"{time.monotonic() - t0:.2f} s")

# Phase 2: payloads of many sizes (below and above the staging buffer's
# 256 KiB, and around 64 KiB, where a receive path may switch from staged
# to straight into the request's buffer), unaligned ones (sector
# read-modify-write), a FLUSH and a READ between them, all queued at once
# after 8 MiB.
# The READ covers phase 1's data (already answered), so its reply is
# known; every request must be answered once, and a read-back of the
# region through the export must equal what was written.
BASE = 8 << 20
sizes = [1 << 20, 4096, 65536, 65535, 65537, 200000, 512, 131072, 1, 70000, 28, 1 << 20]
rnd = os.urandom(sum(sizes))
wr, off, pos, handle = [], BASE, 0, 5000
for n in sizes:
    wr.append((handle, off, rnd[pos:pos + n]))
    off, pos, handle = off + n, pos + n, handle + 1
end = off
burst = bytearray()
for i, (h, o, data) in enumerate(wr):
    burst += req(CMD_WRITE, h, o, len(data)) + data
    if i == 3:
        burst += req(CMD_FLUSH, 4000, 0, 0)
    if i == 6:  # a READ of phase 1's data (write 5), answered in the burst
        burst += req(CMD_READ, 4001, 5 * TOTAL, 4096)
os.kill(pid, signal.SIGSTOP)
try:
    s.sendall(burst)
finally:
    os.kill(pid, signal.SIGCONT)
want = {h for h, _, _ in wr} | {4000, 4001}
try:
    while want:
        magic, err, handle = struct.unpack('>IIQ', recvall(s, 16))
        assert magic == REPLY_MAGIC, hex(magic)
        if err:
            sys.exit(f"export_burst: phase 2 request {handle} failed: error {err}")
        if handle == 4001 and recvall(s, 4096) != bytes([5]) * 4096:
            sys.exit("export_burst: phase 2 read of write 5 returned wrong data")
        if handle not in want:
            sys.exit(f"export_burst: phase 2: unexpected or repeated handle {handle}")
        want.discard(handle)
except socket.timeout:
    sys.exit(f"export_burst: phase 2 requests {sorted(want)} never answered")
# Read everything back through the export, in 1 MiB pieces.
got = bytearray()
o = BASE
while o < end:
    n = min(1 << 20, end - o)
    s.sendall(req(CMD_READ, 6000, o, n))
    magic, err, handle = struct.unpack('>IIQ', recvall(s, 16))
    assert magic == REPLY_MAGIC and err == 0 and handle == 6000, (hex(magic), err, handle)
    got += recvall(s, n)
    o += n
if bytes(got) != rnd:
    bad = next(i for i in range(len(rnd)) if got[i] != rnd[i])
    sys.exit(f"export_burst: phase 2 data differs at byte {bad} of {len(rnd)}")
print(f"export_burst: {len(sizes)} writes of 1 byte to 1 MiB, a flush and a read "
      f"in one burst answered and read back")
s.sendall(req(CMD_DISC, 1, 0, 0))
