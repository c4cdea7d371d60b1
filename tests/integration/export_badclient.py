#!/usr/bin/python3
"""Hostile and malformed NBD clients against a csnap export.

usage: export_badclient.py SOCKET EXPORT RO_SOCKET RO_EXPORT

Speaks the protocol by hand over the unix socket: bad magics, unknown
flags, oversized options and payloads, out-of-range and unknown commands,
clients vanishing mid-message.  Each case checks the server's documented
answer (an NBD error reply, or closing that connection), and a healthy
libnbd connection opened at the start must keep working throughout.
"""
import os
import socket
import struct
import sys
import time

import nbd

import nbdwire
from nbdwire import *  # noqa: F401,F403 (the wire constants and helpers)

sock_path, export = sys.argv[1], sys.argv[2].encode()
ro_sock_path, ro_export = sys.argv[3], sys.argv[4].encode()


def connect(client_flags=3, path=None):
    return nbdwire.connect(path or sock_path, client_flags=client_flags)


# A healthy client that must be unaffected by everything below.
good = nbd.NBD()
good.connect_unix(sock_path)
size = good.get_size()
good.pwrite(b"healthy!" * 512, 0)

# --- handshake -------------------------------------------------------------
s = connect(client_flags=0x80)
check(closed_by_server(s), "unknown client flags close the connection")

s = connect()
s.sendall(struct.pack(">QII", 0x1234, OPT_LIST, 0))
check(closed_by_server(s), "bad option magic closes the connection")

s = connect()
rtype, names = list_exports(s)
check(rtype == REP_ACK and export in names, "NBD_OPT_LIST lists the export")
send_opt(s, OPT_LIST, b"x")
check(read_reply(s)[1] == REP_ERR_INVALID, "NBD_OPT_LIST with data: ERR_INVALID")
# (structured replies and meta contexts: export_meta.py; this session
# stays with simple replies)
send_opt(s, OPT_STRUCTURED_REPLY, b"x")
check(read_reply(s)[1] == REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY with data: ERR_INVALID")
send_opt(s, 10, struct.pack(">I", len(export)) + export + struct.pack(">I", 0))
check(read_reply(s)[1] == REP_ERR_INVALID, "SET_META_CONTEXT without structured replies: ERR_INVALID")
send_opt(s, OPT_STARTTLS)
check(read_reply(s)[1] == REP_ERR_UNSUP, "STARTTLS: ERR_UNSUP")
send_opt(s, 4242)
check(read_reply(s)[1] == REP_ERR_UNSUP, "unknown option: ERR_UNSUP")
send_opt(s, OPT_GO, struct.pack(">I", 3) + b"nope" + struct.pack(">H", 0))
check(read_reply(s)[1] == REP_ERR_INVALID, "NBD_OPT_GO with inconsistent lengths: ERR_INVALID")
send_opt(s, OPT_GO, struct.pack(">I", 1000) + b"x")
check(read_reply(s)[1] == REP_ERR_INVALID, "NBD_OPT_GO name longer than the option: ERR_INVALID")
rtype, _ = go(s, b"no-such-export")
check(rtype == REP_ERR_UNKNOWN, "NBD_OPT_GO to an unknown export: ERR_UNKNOWN")
# Names above the protocol's 4096-byte string limit (issue 10: a 5,000-byte
# name overflowed a stack buffer).  4096 itself is legal and just unknown.
for opt in (OPT_INFO, OPT_GO):
    for n, want, what in ((4096, REP_ERR_UNKNOWN, "4096-byte name: ERR_UNKNOWN"),
                          (4097, REP_ERR_TOO_BIG, "4097-byte name: ERR_TOO_BIG"),
                          (5000, REP_ERR_TOO_BIG, "5000-byte name: ERR_TOO_BIG")):
        send_opt(s, opt, struct.pack(">I", n) + b"n" * n + struct.pack(">H", 0))
        check(read_reply(s)[1] == want, "%s %s" % ("NBD_OPT_INFO" if opt == OPT_INFO else "NBD_OPT_GO", what))
big = os.urandom(1 << 20)
send_opt(s, 4243, big)
check(read_reply(s)[1] == REP_ERR_TOO_BIG, "1 MiB option payload: ERR_TOO_BIG, then the session goes on")
send_opt(s, OPT_INFO, struct.pack(">I", len(export)) + export + struct.pack(">HH", 1, 3))
info = {}
while True:
    opt, rtype, data = read_reply(s)
    if rtype != REP_INFO:
        break
    info[struct.unpack(">H", data[:2])[0]] = data[2:]
check(rtype == REP_ACK and struct.unpack(">Q", info[0][:8])[0] == size, "NBD_OPT_INFO reports the size")
rtype, info = go(s, export)
check(rtype == REP_ACK, "NBD_OPT_GO after all that")

# --- transmission ----------------------------------------------------------
request(s, CMD_READ, 0, 4096, cookie=1)
err, cookie, data = reply(s, 4096)
check(err == 0 and cookie == 1 and data[:8] == b"healthy!", "read works")
request(s, CMD_READ, size - 10, 20, cookie=2)
check(reply(s) [:2] == (EINVAL, 2), "read past the end: EINVAL")
request(s, CMD_READ, 2 ** 64 - 512, 1024, cookie=3)
check(reply(s)[:2] == (EINVAL, 3), "read with offset+length overflowing 64 bits: EINVAL")
request(s, CMD_READ, 0, 64 << 20, cookie=4)
check(reply(s)[:2] == (EINVAL, 4), "read larger than the maximum payload: EINVAL")
request(s, CMD_READ, 0, 0, cookie=5)
check(reply(s)[:2] == (EINVAL, 5), "zero-length read: EINVAL")
request(s, CMD_WRITE, size - 2, 4, cookie=6, payload=b"abcd")
check(reply(s)[:2] == (ENOSPC, 6), "write past the end: ENOSPC (payload consumed)")
request(s, 99, 0, 0, cookie=7)
check(reply(s)[:2] == (EINVAL, 7), "unknown command: EINVAL")
request(s, CMD_CACHE, 0, 4096, cookie=8)
check(reply(s)[:2] == (EINVAL, 8), "NBD_CMD_CACHE (not offered): EINVAL")
request(s, CMD_BLOCK_STATUS, 0, 4096, cookie=9)
check(reply(s)[:2] == (EINVAL, 9), "NBD_CMD_BLOCK_STATUS without meta context: EINVAL")
request(s, CMD_READ, 0, 512, flags=0x100, cookie=10)
check(reply(s)[:2] == (EINVAL, 10), "unknown command flag: EINVAL")
request(s, CMD_ZEROES, 0, 512, flags=16, cookie=11)
check(reply(s)[:2] == (EINVAL, 11), "FAST_ZERO (not offered): EINVAL")
request(s, CMD_FLUSH, 0, 512, cookie=12)
check(reply(s)[:2] == (EINVAL, 12), "flush with a length: EINVAL")
request(s, CMD_WRITE, 4096 + 3, 5, cookie=13, payload=b"12345")
request(s, CMD_READ, 4096, 16, cookie=14)
request(s, CMD_FLUSH, 0, 0, cookie=15)
got = {}
# Replies may come in any order: read them by cookie.
pending = {13: 0, 14: 16, 15: 0}
while pending:
    magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
    check(magic == REPLY_MAGIC and cookie in pending, "reply with a known cookie (%d)" % cookie)
    data = recvall(s, pending[cookie]) if err == 0 and pending[cookie] else b""
    got[cookie] = (err, data)
    del pending[cookie]
check(got[13][0] == 0 and got[15][0] == 0, "unaligned write and flush succeed")
check(got[14][0] == 0, "read concurrent with the write succeeds")
request(s, CMD_READ, 4096, 16, cookie=17)
err, cookie, data = reply(s, 16)
check(err == 0 and data[3:8] == b"12345", "unaligned write reads back")
request(s, CMD_WRITE, 0, 33 << 20, cookie=16)
check(closed_by_server(s), "write payload above the maximum closes the connection")

s = connect()
go(s, export)
request(s, CMD_WRITE, 0, 1 << 20, cookie=1, payload=b"x" * 1000)
s.close()   # vanish mid-payload
s = connect()
go(s, export)
s.sendall(struct.pack(">IHHQQI", 0xDEADBEEF, 0, CMD_READ, 1, 0, 512))
check(closed_by_server(s), "bad request magic closes the connection")

s = connect()
go(s, export)
s.sendall(struct.pack(">IHH", REQ_MAGIC, 0, CMD_READ))  # half a header
s.close()

s = connect(path=ro_sock_path)
rtype, info = go(s, ro_export)
flags = struct.unpack(">H", info[0][8:10])[0]
check(rtype == REP_ACK and flags & 2, "read-only export is flagged read-only")
request(s, CMD_WRITE, 0, 4, cookie=1, payload=b"nope")
check(reply(s)[:2] == (EPERM, 1), "write to a read-only export: EPERM")
request(s, CMD_ZEROES, 0, 4, cookie=2)
check(reply(s)[:2] == (EPERM, 2), "zeroes on a read-only export: EPERM")
request(s, CMD_DISC, 0, 0)
check(closed_by_server(s), "NBD_CMD_DISC closes the connection")

s = connect(client_flags=2)  # no FIXED_NEWSTYLE: only EXPORT_NAME allowed
send_opt(s, OPT_EXPORT_NAME, export)
hdr = recvall(s, 10)
check(struct.unpack(">Q", hdr[:8])[0] == size, "NBD_OPT_EXPORT_NAME (old newstyle client) works")
request(s, CMD_DISC, 0, 0)

s = connect()
send_opt(s, OPT_EXPORT_NAME, b"no-such-export")
check(closed_by_server(s), "NBD_OPT_EXPORT_NAME to an unknown export closes the connection")

s = connect()
send_opt(s, OPT_EXPORT_NAME, b"n" * 5000)
check(closed_by_server(s), "NBD_OPT_EXPORT_NAME with a 5000-byte name closes the connection")

s = connect()
send_opt(s, OPT_ABORT)
check(read_reply(s)[1] == REP_ACK and closed_by_server(s), "NBD_OPT_ABORT: ACK, then close")

# Option haggling from clients that never read (issue 10: each reply was
# queued, +138 MiB for two clients).  Each sends 255 NBD_OPT_INFO asking
# 2,000 times for the name and description; the export's resident memory
# must stay bounded.  SO_PEERCRED names the export's process.
def export_rss_kib(s):
    pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


hogs = [connect() for _ in range(4)]
rss0 = export_rss_kib(hogs[0])
data = struct.pack(">I", len(export)) + export + struct.pack(">H", 2000) + struct.pack(">HH", 1, 2) * 1000
for h in hogs:
    h.setblocking(False)
    buf = (struct.pack(">QII", IHAVEOPT, OPT_INFO, len(data)) + data) * 255
    sent, t0 = 0, time.monotonic()
    # Until the export stops reading (socket buffers full) or all is sent.
    while sent < len(buf) and time.monotonic() - t0 < 3:
        try:
            sent += h.send(buf[sent:])
        except BlockingIOError:
            time.sleep(0.01)
time.sleep(0.5)
grew = export_rss_kib(hogs[0]) - rss0
check(grew < 16 * 1024, "4 clients haggling without reading: export grew %d KiB (< 16 MiB)" % grew)
for h in hogs:
    h.close()

# Many connections that just go away.
for _ in range(50):
    s = connect()
    s.close()

check(good.pread(8, 0) == b"healthy!", "the healthy connection still reads")
good.pwrite(b"still ok", 8)
good.flush()
check(good.pread(16, 0) == b"healthy!still ok", "the healthy connection still writes")
good.shutdown()
print("%d failures" % nbdwire.failures)
sys.exit(1 if nbdwire.failures else 0)
