#!/usr/bin/python3
"""NBD structured replies and metadata contexts of a csnap export.

usage: export_meta.py hostile SOCKET SNAPSHOT...
       export_meta.py backup URI CONTEXT BASE_IMAGE OUT_IMAGE
       export_meta.py deleted URI SNAPSHOT CSNAP STORE

hostile: speaks the protocol by hand over the unix socket (origin export,
SNAPSHOTs exported next to it): structured replies, LIST/SET_META_CONTEXT
with malformed, oversized and too many queries, unknown snapshots, more
than one csnap:changed context, contexts set for another export,
BLOCK_STATUS without contexts, options after NBD_OPT_GO, and the chunks of
structured READ and BLOCK_STATUS replies.  Each case checks the documented
answer (docs/export.md); a healthy libnbd connection must keep working.

backup: what a backup tool does with csnap:changed: copy BASE_IMAGE (a full
backup taken at the snapshot) to OUT_IMAGE, then ask block status for
CONTEXT over the whole export and copy only the extents flagged changed.
Prints "changed BYTES" and "extents N".

deleted: a connection with csnap:changed:SNAPSHOT gets block status, then
SNAPSHOT is deleted (`CSNAP snapshot delete STORE SNAPSHOT`, run in this
environment): block status now fails with an error naming the reason,
and the same connection still reads.
"""
import shutil
import subprocess
import struct
import sys

import nbd

import nbdwire
from nbdwire import *  # noqa: F401,F403 (the wire constants and helpers)


def meta_data(export, queries, count=None):
    d = struct.pack(">I", len(export)) + export
    d += struct.pack(">I", len(queries) if count is None else count)
    for q in queries:
        d += struct.pack(">I", len(q)) + q
    return d


def meta(s, opt, export, queries, count=None, raw=None):
    """Sends LIST/SET_META_CONTEXT; returns (final reply type, {name: id}, message)."""
    send_opt(s, opt, raw if raw is not None else meta_data(export, queries, count))
    ctx = {}
    while True:
        _, rtype, data = read_reply(s)
        if rtype != REP_META:
            return rtype, ctx, data
        ctx[data[4:]] = struct.unpack(">I", data[:4])[0]


def extended(sock, snaps, size, ref):
    """NBD_OPT_EXTENDED_HEADERS: 32-byte requests and replies, 64-bit
    lengths, BLOCK_STATUS_EXT (no client installed here speaks it)."""
    origin, snap0 = b"origin", snaps[0].encode()
    s = connect(sock)
    send_opt(s, OPT_EXTENDED, b"x")
    check(read_reply(s)[1] == REP_ERR_INVALID, "NBD_OPT_EXTENDED_HEADERS with data: ERR_INVALID")
    send_opt(s, OPT_EXTENDED)
    check(read_reply(s)[1] == REP_ACK, "NBD_OPT_EXTENDED_HEADERS: ACK")
    send_opt(s, OPT_STRUCTURED_REPLY)
    check(read_reply(s)[1] == REP_ERR_EXT_HEADER_REQD,
          "STRUCTURED_REPLY after EXTENDED_HEADERS: ERR_EXT_HEADER_REQD")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"base:allocation", b"csnap:changed:" + snap0])
    alloc_id, changed_id = ctx.get(b"base:allocation"), ctx.get(b"csnap:changed:" + snap0)
    check(rtype == REP_ACK and len(ctx) == 2, "SET_META_CONTEXT with extended headers only")
    check(go(s, origin)[0] == REP_ACK, "GO origin")

    ext_request(s, CMD_READ, 4096, 8192, cookie=1)
    flags, rtype, cookie, off, p = ext_chunk(s)
    check(flags & FLAG_DONE and rtype == TYPE_OFFSET_DATA and cookie == 1 and off == 4096 and
          struct.unpack(">Q", p[:8])[0] == 4096 and p[8:] == ref[4096:12288],
          "READ: one extended OFFSET_DATA chunk with the request's offset")
    ext_request(s, CMD_WRITE, 100, 5, flags=FLAG_PAYLOAD_LEN, cookie=2, payload=ref[100:105])
    flags, rtype, cookie, off, p = ext_chunk(s)
    check(flags & FLAG_DONE and rtype == TYPE_NONE and cookie == 2 and off == 100 and not p,
          "WRITE with PAYLOAD_LEN: a NONE chunk (no simple replies)")
    ext_request(s, CMD_FLUSH, 0, 0, cookie=3)
    flags, rtype, cookie, off, p = ext_chunk(s)
    check(flags & FLAG_DONE and rtype == TYPE_NONE and cookie == 3, "FLUSH: a NONE chunk")
    ext_request(s, CMD_WRITE, 0, 512, cookie=4)   # no flag: 512 is an effect length, no payload
    flags, rtype, cookie, off, p = ext_chunk(s)
    check(rtype == TYPE_ERROR and struct.unpack(">I", p[:4])[0] == EINVAL and b"PAYLOAD_LEN" in p,
          "WRITE without PAYLOAD_LEN: EINVAL (%r)" % p[6:])
    ext_request(s, CMD_READ, 0, 16, flags=FLAG_PAYLOAD_LEN, cookie=5, payload=b"z" * 16)
    flags, rtype, cookie, off, p = ext_chunk(s)
    check(rtype == TYPE_ERROR and cookie == 5 and struct.unpack(">I", p[:4])[0] == EINVAL,
          "READ with a payload: payload consumed, EINVAL")
    ext_request(s, CMD_ZEROES, 0, 1 << 33, cookie=6)
    flags, rtype, cookie, off, p = ext_chunk(s)
    check(rtype == TYPE_ERROR and struct.unpack(">I", p[:4])[0] == 28,
          "WRITE_ZEROES of 8 GiB (past the end): ENOSPC")
    ext_request(s, CMD_READ, 0, 1 << 32, cookie=7)
    flags, rtype, cookie, off, p = ext_chunk(s)
    check(rtype == TYPE_ERROR and struct.unpack(">I", p[:4])[0] == EINVAL,
          "READ of 4 GiB (over the maximum payload): EINVAL")
    for fl in (0, FLAG_REQ_ONE):
        ext_request(s, CMD_BLOCK_STATUS, 512, size - 512, flags=fl, cookie=8)
        got = {}
        while True:
            flags, rtype, cookie, off, p = ext_chunk(s)
            assert rtype == TYPE_BLOCK_STATUS_EXT and cookie == 8 and off == 512, (rtype, p[:40])
            cid, count = struct.unpack(">II", p[:8])
            assert count * 16 + 8 == len(p), "descriptor count %d for %d bytes" % (count, len(p))
            got[cid] = [struct.unpack(">QQ", p[i:i + 16]) for i in range(8, len(p), 16)]
            if flags & FLAG_DONE:
                break
        ok = set(got) == {alloc_id, changed_id} and all(e and all(n for n, _ in e) for e in got.values())
        ok = ok and got[alloc_id] == [(size - 512, 0)]
        if fl:
            ok = ok and all(len(e) == 1 for e in got.values())
        else:   # one page of the master's answer: maybe less than asked
            ok = ok and 0 < sum(n for n, _ in got[changed_id]) <= size - 512
        check(ok, "BLOCK_STATUS_EXT%s: 64-bit descriptors per context (%r)" %
              (" REQ_ONE" if fl else "", {k: v[:3] for k, v in got.items()}))
    s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, 9, 0, 512) + bytes(4))
    check(closed_by_server(s), "a compact request after extended headers closes the connection")

    s = connect(sock)
    send_opt(s, OPT_EXTENDED)
    read_reply(s)
    send_opt(s, OPT_EXPORT_NAME, origin)
    check(closed_by_server(s), "EXPORT_NAME after EXTENDED_HEADERS closes the connection")

    s = connect(sock)
    send_opt(s, OPT_EXTENDED)
    read_reply(s)
    go(s, origin)
    ext_request(s, CMD_WRITE, 0, 64 << 20, flags=FLAG_PAYLOAD_LEN, cookie=1)
    check(closed_by_server(s), "a payload above the maximum closes the connection")


def structured(path):
    s = connect(path)
    send_opt(s, OPT_STRUCTURED_REPLY)
    assert read_reply(s)[1] == REP_ACK
    return s


def hostile(sock, snaps):
    origin = b"origin"
    snap0 = snaps[0].encode()
    good = nbd.NBD()
    good.add_meta_context("base:allocation")
    good.connect_unix(sock)
    size = good.get_size()
    ref = good.pread(65536, 0)

    # --- negotiation --------------------------------------------------------
    s = connect(sock)
    rtype, ctx, msg = meta(s, OPT_SET_META, origin, [b"base:allocation"])
    check(rtype == REP_ERR_INVALID and not ctx and b"STRUCTURED_REPLY" in msg,
          "SET_META_CONTEXT before structured replies: ERR_INVALID")
    send_opt(s, OPT_STRUCTURED_REPLY, b"x")
    check(read_reply(s)[1] == REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY with data: ERR_INVALID")
    send_opt(s, OPT_STRUCTURED_REPLY)
    check(read_reply(s)[1] == REP_ACK, "NBD_OPT_STRUCTURED_REPLY: ACK")

    want = {b"base:allocation"} | {b"csnap:changed:" + n.encode() for n in snaps}
    rtype, ctx, _ = meta(s, OPT_LIST_META, origin, [])
    check(rtype == REP_ACK and set(ctx) == want and not any(ctx.values()),
          "LIST_META_CONTEXT without queries: base:allocation and every snapshot (ids 0)")
    rtype, ctx, _ = meta(s, OPT_LIST_META, origin, [b"csnap:changed:"])
    check(rtype == REP_ACK and set(ctx) == want - {b"base:allocation"},
          "LIST_META_CONTEXT csnap:changed: lists the snapshots")
    rtype, ctx, _ = meta(s, OPT_LIST_META, origin, [b"base:", b"x-other:thing"])
    check(rtype == REP_ACK and set(ctx) == {b"base:allocation"},
          "LIST_META_CONTEXT base: (an unknown namespace is ignored)")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"base:", b"csnap:changed:"])
    check(rtype == REP_ACK and not ctx, "SET_META_CONTEXT wildcards select nothing")

    rtype, ctx, msg = meta(s, OPT_SET_META, origin, [b"csnap:changed:nosuch"])
    check(rtype == REP_ERR_INVALID and b"nosuch" in msg,
          "SET csnap:changed:nosuch: ERR_INVALID naming the snapshot (%r)" % msg)
    rtype, ctx, msg = meta(s, OPT_LIST_META, origin, [b"csnap:changed:nosuch"])
    check(rtype == REP_ERR_INVALID and b"nosuch" in msg, "LIST csnap:changed:nosuch: ERR_INVALID")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"csnap:changed:" + b"n" * 300])
    check(rtype == REP_ERR_INVALID, "SET csnap:changed: with a 300-byte name: ERR_INVALID")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"csnap:changed:" + b"n" * 4082])
    check(rtype == REP_ERR_INVALID, "SET with a 4096-byte query: ERR_INVALID")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"x" * 5000])
    check(rtype == REP_ERR_TOO_BIG, "SET with a 5000-byte query: ERR_TOO_BIG")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"base:allocation"] * 65)
    check(rtype == REP_ERR_TOO_BIG and not ctx, "SET with 65 queries: ERR_TOO_BIG")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"base:allocation"] * 64)
    check(rtype == REP_ACK and list(ctx) == [b"base:allocation"],
          "SET with 64 identical queries: one context")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"base:allocation"], count=0xFFFFFFFF)
    check(rtype == REP_ERR_TOO_BIG, "SET claiming 2^32-1 queries: ERR_TOO_BIG")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"base:allocation"], count=2)
    check(rtype == REP_ERR_INVALID, "SET with fewer queries than counted: ERR_INVALID")
    raw = meta_data(origin, [b"base:allocation"])[:-4]
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [], raw=raw)
    check(rtype == REP_ERR_INVALID, "SET with a query running past the option: ERR_INVALID")
    raw = meta_data(origin, [b"base:allocation"]) + b"junk"
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [], raw=raw)
    check(rtype == REP_ERR_INVALID, "SET with bytes after its queries: ERR_INVALID")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [], raw=struct.pack(">I", 100) + b"origin")
    check(rtype == REP_ERR_INVALID, "SET with a name longer than the option: ERR_INVALID")
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"nocolon"])
    check(rtype == REP_ERR_INVALID, "SET with a query without namespace: ERR_INVALID")
    rtype, ctx, _ = meta(s, OPT_SET_META, b"no-such-export", [b"base:allocation"])
    check(rtype == REP_ERR_UNKNOWN, "SET for an unknown export: ERR_UNKNOWN")
    if len(snaps) > 1:
        rtype, ctx, msg = meta(s, OPT_SET_META, origin, [b"csnap:changed:" + snap0,
                                                          b"csnap:changed:" + snaps[1].encode()])
        check(rtype == REP_ERR_TOO_BIG and b"one csnap:changed" in msg,
              "SET with two csnap:changed contexts: ERR_TOO_BIG")
    # Hundreds of SET options, each 64 queries: replies stay small, and the
    # option count limit still ends the connection.
    q = [b"csnap:changed:" + snap0] * 32 + [b"base:allocation"] * 32
    for _ in range(200):
        rtype, ctx, _ = meta(s, OPT_SET_META, origin, q)
        if rtype != REP_ACK or len(ctx) != 2:
            break
    check(rtype == REP_ACK and len(ctx) == 2, "200 SET options of 64 queries: two contexts each")
    try:
        s.sendall(struct.pack(">QII", IHAVEOPT, OPT_STRUCTURED_REPLY, 0) * 60)
        closed = closed_by_server(s)
    except (BrokenPipeError, ConnectionResetError):
        closed = True   # closed while we were still sending
    check(closed, "more than 256 options still close the connection")

    # Contexts set for the origin do not carry over to another export.
    s = structured(sock)
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"base:allocation"])
    check(rtype == REP_ACK and ctx == {b"base:allocation": ctx.get(b"base:allocation")}, "SET for origin")
    check(go(s, snap0)[0] == REP_ACK, "GO to a snapshot export")
    request(s, CMD_BLOCK_STATUS, 0, 4096, cookie=1)
    flags, rtype, cookie, p = chunk(s)
    err = struct.unpack(">I", p[:4])[0] if rtype == TYPE_ERROR else 0
    check(rtype == TYPE_ERROR and flags & FLAG_DONE and err == EINVAL and cookie == 1,
          "BLOCK_STATUS with contexts set for another export: EINVAL (%r)" % p[6:])
    # An option after NBD_OPT_GO is not a request: the connection ends.
    send_opt(s, OPT_SET_META, meta_data(snap0, [b"base:allocation"]))
    check(closed_by_server(s), "SET_META_CONTEXT after NBD_OPT_GO closes the connection")

    # Replacing the contexts with none.
    s = structured(sock)
    meta(s, OPT_SET_META, origin, [b"base:allocation"])
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [])
    check(rtype == REP_ACK and not ctx, "SET without queries selects nothing")
    go(s, origin)
    request(s, CMD_BLOCK_STATUS, 0, 4096, cookie=2)
    flags, rtype, cookie, p = chunk(s)
    check(rtype == TYPE_ERROR and b"no metadata context" in p,
          "BLOCK_STATUS after contexts were replaced by none: error chunk (%r)" % p[6:])
    request(s, 2, 0, 0)

    # --- transmission: structured chunks -----------------------------------
    s = structured(sock)
    rtype, ctx, _ = meta(s, OPT_SET_META, origin, [b"base:allocation", b"csnap:changed:" + snap0])
    alloc_id, changed_id = ctx.get(b"base:allocation"), ctx.get(b"csnap:changed:" + snap0)
    check(rtype == REP_ACK and len(ctx) == 2 and alloc_id != changed_id, "SET two contexts: distinct ids")
    check(go(s, origin)[0] == REP_ACK, "GO origin")
    request(s, CMD_READ, 0, 65536, cookie=3)
    flags, rtype, cookie, p = chunk(s)
    check(flags & FLAG_DONE and rtype == TYPE_OFFSET_DATA and cookie == 3 and
          struct.unpack(">Q", p[:8])[0] == 0 and p[8:] == ref, "READ: one OFFSET_DATA chunk, DONE, right data")
    request(s, CMD_READ, 4096, 512, flags=FLAG_DF, cookie=4)
    flags, rtype, cookie, p = chunk(s)
    check(flags & FLAG_DONE and rtype == TYPE_OFFSET_DATA and p[8:] == ref[4096:4608], "READ with DF")
    for what, off, length, fl in (("read past the end", size - 10, 20, 0),
                                  ("zero-length read", 0, 0, 0),
                                  ("REQ_ONE on a read", 0, 512, FLAG_REQ_ONE)):
        request(s, CMD_READ, off, length, flags=fl, cookie=5)
        flags, rtype, cookie, p = chunk(s)
        err, mlen = struct.unpack(">IH", p[:6]) if rtype == TYPE_ERROR else (0, 0)
        check(rtype == TYPE_ERROR and flags & FLAG_DONE and err == EINVAL and mlen == len(p) - 6,
              "%s: one ERROR chunk, EINVAL (%r)" % (what, p[6:]))
    for what, off, length in (("past the end", size - 10, 20), ("of zero length", 0, 0)):
        request(s, CMD_BLOCK_STATUS, off, length, cookie=6)
        flags, rtype, cookie, p = chunk(s)
        check(rtype == TYPE_ERROR and flags & FLAG_DONE and struct.unpack(">I", p[:4])[0] == EINVAL,
              "BLOCK_STATUS %s: EINVAL" % what)
    for fl in (0, FLAG_REQ_ONE):
        request(s, CMD_BLOCK_STATUS, 512, 65536, flags=fl, cookie=8)
        got = {}
        while True:
            flags, rtype, cookie, p = chunk(s)
            assert rtype == TYPE_BLOCK_STATUS and cookie == 8, (rtype, p)
            cid = struct.unpack(">I", p[:4])[0]
            ext = [struct.unpack(">II", p[i:i + 8]) for i in range(4, len(p), 8)]
            got[cid] = ext
            if flags & FLAG_DONE:
                break
        ok = set(got) == {alloc_id, changed_id} and all(e and all(n for n, _ in e) for e in got.values())
        if fl:
            ok = ok and all(len(e) == 1 and e[0][0] <= 65536 for e in got.values())
            what = "BLOCK_STATUS REQ_ONE: one extent per context, within the length"
        else:
            ok = ok and got[alloc_id] == [(size - 512, 0)]
            what = "BLOCK_STATUS: one chunk per context; base:allocation is data to the end"
        check(ok, "%s (%r)" % (what, {k: v[:4] for k, v in got.items()}))
    request(s, 2, 0, 0)
    check(closed_by_server(s), "NBD_CMD_DISC")

    extended(sock, snaps, size, ref)

    check(good.pread(65536, 0) == ref, "the healthy connection still reads")
    good.shutdown()
    return nbdwire.failures


def backup(uri, context, base, out):
    shutil.copyfile(base, out)
    h = nbd.NBD()
    h.add_meta_context(context)
    h.connect_uri(uri)
    check(h.can_meta_context(context), "the export offers " + context)
    size, off, changed, extents = h.get_size(), 0, [], 0
    while off < size:
        got = []

        def cb(ctx, start, entries, err):
            if ctx == context:
                got.extend(entries)
            return 0
        h.block_status(min(size - off, 1 << 30), off, cb)
        assert got, "no extents at %d" % off
        for i in range(0, len(got), 2):
            n, flags = got[i], got[i + 1]
            n = min(n, size - off)
            if flags & 1:
                changed.append((off, n))
            off += n
            extents += 1
    total = 0
    with open(out, "r+b") as f:
        for o, n in changed:
            done = 0
            while done < n:
                k = min(n - done, 1 << 24)
                f.seek(o + done)
                f.write(h.pread(k, o + done))
                done += k
            total += n
    h.shutdown()
    print("changed", total)
    print("extents", extents)
    return nbdwire.failures


def deleted(uri, snap, csnap, store):
    h = nbd.NBD()
    h.add_meta_context("csnap:changed:" + snap)
    h.connect_uri(uri)
    got = []

    def cb(ctx, start, entries, err):
        got.extend(entries)
        return 0
    h.block_status(65536, 0, cb)
    check(len(got) >= 2 and got[0] > 0, "block status before the delete")
    subprocess.run([csnap, "snapshot", "delete", store, snap], check=True, stdout=subprocess.DEVNULL)
    try:
        h.block_status(65536, 0, cb)
        msg = None
    except nbd.Error as e:
        msg = str(e)
    check(msg is not None, "block status since a deleted snapshot fails (%s)" % msg)
    check(len(h.pread(4096, 0)) == 4096, "the connection still reads")
    h.shutdown()
    return nbdwire.failures


if __name__ == "__main__":
    if sys.argv[1] == "hostile":
        rc = hostile(sys.argv[2], sys.argv[3:])
        print("%d failures" % rc)
    elif sys.argv[1] == "deleted":
        rc = deleted(*sys.argv[2:6])
    else:
        rc = backup(*sys.argv[2:6])
    sys.exit(1 if rc else 0)
