#!/usr/bin/python3
"""NBD_OPT_STARTTLS spoken by hand against a csnap export (export_tls.sh).

usage: export_tls.py require HOST PORT
       export_tls.py hostile HOST PORT CERTDIR UNIX_SOCKET

require: the export requires TLS (export_tls = require).  Before TLS every
option but STARTTLS and ABORT gets NBD_REP_ERR_TLS_REQD, LIST/INFO/GO
reveal no export name, NBD_OPT_EXPORT_NAME (no error reply possible) ends
the connection, ABORT is acknowledged, and STARTTLS with data is invalid.

hostile: the export offers TLS with X.509 and verifies clients (CERTDIR
holds ca-cert.pem, client-cert.pem, client-key.pem).  Garbage instead of a
ClientHello ends that connection; a client that stops after STARTTLS is
closed by the handshake deadline; STARTTLS again inside TLS gets
NBD_REP_ERR_INVALID and the session goes on (LIST over TLS lists the
origin, GO serves a read, with simple replies although structured replies
were agreed in clear before STARTTLS; a write with a read pipelined behind
its payload, and 12,000 pipelined reads through flow control, are all
answered right); STARTTLS on the unix socket gets ERR_UNSUP.
"""
import os
import select
import socket
import ssl
import struct
import sys
import time

import nbdwire
from nbdwire import *  # noqa: F401,F403 (the wire constants and helpers)

DEADLINE_S = 10        # NBD_HANDSHAKE_MS (src/export/nbd_conn.h)


def require(host, port):
    s = connect(host, port)
    seen = b""
    for opt, data, what in ((OPT_LIST, b"", "LIST"),
                            (OPT_INFO, name_opt(b"origin"), "INFO origin"),
                            (OPT_INFO, name_opt(b""), "INFO default export"),
                            (OPT_GO, name_opt(b"origin"), "GO origin"),
                            (OPT_STRUCTURED_REPLY, b"", "STRUCTURED_REPLY"),
                            (4242, b"", "an unknown option")):
        send_opt(s, opt, data)
        ropt, rtype, rdata = read_reply(s)
        seen += rdata
        check(ropt == opt and rtype == REP_ERR_TLS_REQD, "before TLS, %s: ERR_TLS_REQD" % what)
    check(b"origin" not in seen, "no export name in any reply before TLS")
    send_opt(s, OPT_STARTTLS, b"x")
    check(read_reply(s)[1] == REP_ERR_INVALID, "STARTTLS with data: ERR_INVALID")
    send_opt(s, OPT_ABORT)
    check(read_reply(s)[1] == REP_ACK, "ABORT before TLS: ACK")
    check(closed_by_server(s), "ABORT closes the connection")

    s = connect(host, port)
    send_opt(s, OPT_EXPORT_NAME, b"origin")
    try:
        data = s.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        data = b""
    check(data == b"" and closed_by_server(s), "EXPORT_NAME before TLS: closed, nothing sent")


def pump(t, out, want):
    """Sends OUT and reads WANT bytes on the TLS socket T at the same time
    (non-blocking), so neither side waits for the other; returns them."""
    t.setblocking(False)
    got, sent, deadline = bytearray(), 0, time.monotonic() + 120
    while len(got) < want:
        if time.monotonic() > deadline:
            raise TimeoutError("%d of %d bytes read, %d of %d sent" % (len(got), want, sent, len(out)))
        progress = False
        if sent < len(out):
            try:
                sent += t.send(out[sent:sent + 16384])
                progress = True
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        try:
            d = t.recv(min(1 << 20, want - len(got)))
            if not d:
                raise EOFError("server closed after %d of %d bytes" % (len(got), want))
            got += d
            progress = True
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        if not progress and not t.pending():
            select.select([t], [t] if sent < len(out) else [], [], 1)
    t.setblocking(True)
    t.settimeout(10)
    return bytes(got)


def replies(data, lengths):
    """Simple replies in DATA, in any order: {cookie: (error, payload)};
    LENGTHS: the payload length of each cookie."""
    out, pos = {}, 0
    while pos < len(data):
        magic, err, cookie = struct.unpack(">IIQ", data[pos:pos + 16])
        assert magic == REPLY_MAGIC, "bad reply magic at byte %d" % pos
        n = lengths[cookie] if err == 0 else 0
        out[cookie] = (err, data[pos + 16:pos + 16 + n])
        pos += 16 + n
    return out


def starttls(s):
    send_opt(s, OPT_STARTTLS)
    opt, rtype, data = read_reply(s)
    return opt == OPT_STARTTLS and rtype == REP_ACK and not data


def hostile(host, port, certdir, unix_sock):
    # Opened first, checked last: the deadline runs meanwhile.
    stalled = connect(host, port)
    check(starttls(stalled), "STARTTLS: ACK (in clear)")
    t0 = time.monotonic()

    s = connect(host, port)
    check(starttls(s), "STARTTLS then garbage: ACK")
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_LIST, 0) + b"\x00" * 200)
    check(closed_by_server(s), "garbage instead of a ClientHello closes the connection")

    s = connect(host, port)
    check(starttls(s), "STARTTLS then a half ClientHello: ACK")
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")     # a record cut short
    s.shutdown(socket.SHUT_WR)
    check(closed_by_server(s), "a cut ClientHello then EOF closes the connection")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certdir + "/ca-cert.pem")
    ctx.load_cert_chain(certdir + "/client-cert.pem", certdir + "/client-key.pem")
    s = connect(host, port)
    send_opt(s, OPT_STRUCTURED_REPLY)
    check(read_reply(s)[1] == REP_ACK, "structured replies in clear: ACK")
    check(starttls(s), "STARTTLS: ACK")
    t = ctx.wrap_socket(s, server_hostname=host)
    check(t.version() is not None, "TLS handshake with a client certificate (%s)" % t.version())
    send_opt(t, OPT_STARTTLS)
    check(read_reply(t)[1] == REP_ERR_INVALID, "STARTTLS inside TLS: ERR_INVALID")
    rtype, names = list_exports(t)
    check(rtype == REP_ACK and b"origin" in names, "LIST over TLS lists the origin")
    send_opt(t, OPT_GO, name_opt(b"origin"))
    while True:
        _, rtype, _ = read_reply(t)
        if rtype != REP_INFO:
            break
    check(rtype == REP_ACK, "GO over TLS")
    t.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, 77, 0, 65536))
    magic, err, cookie = struct.unpack(">IIQ", recvall(t, 16))
    data = recvall(t, 65536)
    check(magic == REPLY_MAGIC and err == 0 and cookie == 77 and len(data) == 65536,
          "a 64 KiB read over TLS, in a simple reply (what was negotiated in clear is forgotten)")

    # A 1 MiB write with a read right behind it in the same record: the
    # payload goes straight into its buffer and the read's header stays
    # inside GnuTLS, where epoll does not see it.
    pattern = os.urandom(1 << 20)
    r = replies(pump(t, req(CMD_WRITE, 1, 0, len(pattern)) + pattern + req(CMD_READ, 2, 0, 4096),
                     16 + 16 + 4096), {1: 0, 2: 4096})
    check(r.get(1, (1,))[0] == 0 and r.get(2, (1,))[0] == 0,
          "a write and the read pipelined behind its payload both answered over TLS")
    # 12,000 reads at once: more than the staging buffer (256 KiB) and the
    # in-flight limit (128), so input stops (flow control) with the rest
    # of a record inside GnuTLS, and must resume from the staged requests,
    # then from GnuTLS, then from the socket.
    n, burst = 12000, b"".join(req(CMD_READ, 1000 + i, (i % 2048) * 512, 512) for i in range(12000))
    r = replies(pump(t, burst, n * (16 + 512)), {1000 + i: 512 for i in range(n)})
    check(len(r) == n and all(e == 0 and d == pattern[((c - 1000) % 2048) * 512:][:512]
                              for c, (e, d) in r.items()),
          "12,000 pipelined reads over TLS, each answered with what was written")
    t.sendall(req(CMD_DISC, 78, 0, 0))
    check(closed_by_server(t), "NBD_CMD_DISC over TLS closes the connection")

    # Verify-peer: a client without a certificate is refused.
    noclient = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    noclient.load_verify_locations(certdir + "/ca-cert.pem")
    s = connect(host, port)
    check(starttls(s), "STARTTLS (client without a certificate): ACK")
    try:
        t = noclient.wrap_socket(s, server_hostname=host)
        # TLS 1.3: the refusal may come after the client's handshake ended
        send_opt(t, OPT_LIST)
        refused = closed_by_server(t)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        refused = True
    check(refused, "a client without a certificate is refused (export_tls_verify_peer)")

    u = connect(unix_sock)
    send_opt(u, OPT_STARTTLS)
    check(read_reply(u)[1] == REP_ERR_UNSUP, "STARTTLS on the unix socket: ERR_UNSUP (plain)")
    u.close()

    left = DEADLINE_S + 20 - (time.monotonic() - t0)
    check(closed_by_server(stalled, max(left, 1)),
          "a client silent after STARTTLS is closed by the handshake deadline")


if __name__ == "__main__":
    if sys.argv[1] == "require":
        require(sys.argv[2], int(sys.argv[3]))
    else:
        hostile(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    sys.exit(1 if nbdwire.failures else 0)
