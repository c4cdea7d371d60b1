#!/usr/bin/python3
"""Trim and write zeroes of 4 GiB or more, with extended headers, against a
csnap export (export_bigreq.sh).

usage: export_bigreq.py SOCKET

The export (over 4 GiB) must carry each such request out whole, in the
pieces its volume takes, and answer it once, naming the request's offset:
markers written at every 1 GiB boundary inside the zeroed range read back
as zeroes, the markers just outside it are kept, and a request past the
end still gets ENOSPC.  Compact headers cannot say 4 GiB: only a client
speaking NBD_OPT_EXTENDED_HEADERS by hand (nbdwire.py) can ask it.
"""
import struct
import sys

import nbdwire
from nbdwire import *  # noqa: F401,F403 (the wire constants and helpers)

GIB = 1 << 30


def done_none(s, cookie, off, what):
    """Checks the reply to COOKIE: one NONE chunk (success) at OFF."""
    flags, rtype, rcookie, roff, p = ext_chunk(s)
    msg = p[6:].decode(errors="replace") if rtype == TYPE_ERROR else ""
    check(flags & FLAG_DONE and rtype == TYPE_NONE and rcookie == cookie and roff == off and not p,
          "%s: done, one reply at the request's offset (type %d, offset %d %s)" %
          (what, rtype, roff, msg))


def read(s, off, n, cookie=90):
    ext_request(s, CMD_READ, off, n, cookie=cookie)
    flags, rtype, rcookie, roff, p = ext_chunk(s)
    assert rtype == TYPE_OFFSET_DATA and rcookie == cookie, (rtype, p[:60])
    return p[8:]


def write(s, off, data, cookie=91):
    ext_request(s, CMD_WRITE, off, len(data), flags=FLAG_PAYLOAD_LEN, cookie=cookie, payload=data)
    done_none(s, cookie, off, "write %d bytes at %d" % (len(data), off))


def main(sock):
    s = connect(sock)
    send_opt(s, OPT_EXTENDED)
    assert read_reply(s)[1] == REP_ACK
    rtype, info = go(s, b"")
    assert rtype == REP_ACK
    size = struct.unpack(">Q", info[0][:8])[0]
    assert size > 4 * GIB + 2 * 4096, size

    # The zeroed range [first, last): over 4 GiB, across every GiB boundary.
    first, last = 4096, size - 4096
    inside = [k * GIB + d for k in range(1, 5) for d in (-4096, 0)] + [first, last - 4096]
    for i, off in enumerate(inside):
        write(s, off, bytes([0x41 + i]) * 4096)
    write(s, 0, b"<" * 4096)
    write(s, last, b">" * 4096)

    ext_request(s, CMD_TRIM, 0, size, cookie=1)
    done_none(s, 1, 0, "TRIM of the whole %d-byte export" % size)
    ext_request(s, CMD_TRIM, first, last - first, flags=1, cookie=2)   # FUA
    done_none(s, 2, first, "TRIM with FUA of %d bytes" % (last - first))

    s.settimeout(300)   # 4 GiB of zeroes reach the disk
    ext_request(s, CMD_ZEROES, first, last - first, cookie=3)
    done_none(s, 3, first, "WRITE_ZEROES of %d bytes" % (last - first))
    s.settimeout(10)
    zero = bytes(4096)
    for off in inside:
        check(read(s, off, 4096) == zero, "zeroed at %d" % off)
    check(read(s, 0, 4096) == b"<" * 4096, "kept before the range")
    check(read(s, last, 4096) == b">" * 4096, "kept after the range")

    ext_request(s, CMD_ZEROES, first, size, cookie=4)
    flags, rtype, cookie, off, p = ext_chunk(s)
    check(rtype == TYPE_ERROR and cookie == 4 and struct.unpack(">I", p[:4])[0] == ENOSPC,
          "WRITE_ZEROES of 4 GiB or more past the end: ENOSPC")
    ext_request(s, CMD_DISC, 0, 0)
    check(closed_by_server(s), "NBD_CMD_DISC")


if __name__ == "__main__":
    main(sys.argv[1])
    print("%d failures" % nbdwire.failures)
    sys.exit(1 if nbdwire.failures else 0)
