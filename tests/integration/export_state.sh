#!/usr/bin/env bash
# tests/integration/export_state.sh - `csnap export` logs where its
# unanswered NBD requests are on SIGUSR1 (the diagnostic for a stalled
# client, docs/RELIABILITY.md "Open defect"): a client sends 16 reads of
# 1 MiB and reads no reply, so the replies that do not fit the socket wait
# in the export.  The dump must count them as in flight with their replies
# queued; once the client has read every reply (each with its own
# handle), a second dump must show nothing in flight and nothing queued.
# san: yes
. "$(dirname "$0")/../functions.sh"
set -eo pipefail
requires python3

file_export export-state 32M

"$py" - "$dir/s" "$pid" "$dir/export.err" <<'PY' || fail "state dump"
import os, re, signal, socket, struct, sys, time
sock_path, pid, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
N, LEN = 16, 1024 * 1024
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)
s.settimeout(10)

def recv_exact(n):
    b = bytearray()
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            sys.exit(f"connection closed after {len(b)} of {n} bytes")
        b += c
    return bytes(b)

def dump():
    """SIGUSR1, then the (in flight, replies queued) of the client's
    connection from the dump's line (bounded wait for it)."""
    before = open(log).read().count("nbd: state on request")
    os.kill(pid, signal.SIGUSR1)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        text = open(log).read()
        if text.count("nbd: state on request") > before:
            lines = text.split("nbd: state on request")[-1]
            m = re.search(r"nbd unix#\d+: \S+, state \d+: (\d+) requests in flight "
                          r"\(\d+ bytes\), (\d+) replies queued", lines)
            if m:
                return int(m.group(1)), int(m.group(2))
        time.sleep(0.05)
    sys.exit("no state dump after SIGUSR1")

assert recv_exact(18)[:16] == b'NBDMAGICIHAVEOPT'
s.sendall(struct.pack('>I', 3))
s.sendall(b'IHAVEOPT' + struct.pack('>II', 1, 0))       # EXPORT_NAME ""
size, flags = struct.unpack('>QH', recv_exact(10))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
for i in range(N):
    s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 0, 100 + i, i * LEN, LEN))

# The reads complete at once; replies that fit neither socket buffer wait
# in the export.  Every request still in flight has its reply queued.
t0 = time.monotonic()
while True:
    inflight, queued = dump()
    if inflight and inflight == queued:
        break
    if time.monotonic() - t0 > 20:
        sys.exit(f"dump says {inflight} in flight, {queued} replies queued")
    time.sleep(0.2)
print(f"with the client not reading: {inflight} requests in flight, {queued} replies queued")
seen = set()
while len(seen) < N:
    magic, err, handle = struct.unpack('>IIQ', recv_exact(16))
    assert magic == 0x67446698 and err == 0, (hex(magic), err)
    recv_exact(LEN)
    seen.add(handle)
assert seen == set(range(100, 100 + N)), seen
t0 = time.monotonic()
while dump() != (0, 0):
    if time.monotonic() - t0 > 10:
        sys.exit(f"after every reply was read the dump says {dump()}")
    time.sleep(0.2)
print("after reading every reply: 0 in flight, 0 queued")
s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 2, 1, 0, 0))   # DISC
PY
kill -0 "$pid" || fail "the export exited on SIGUSR1"
echo PASS
