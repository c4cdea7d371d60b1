#!/usr/bin/env python3
# bench/send_receive_copy.py SRC_SOCK SNAP DST_SOCK CHANGED_JSON - the peer
# of bench/send_receive.sh: copies the byte ranges of `csnap snapshot
# changed --json` from snapshot SNAP's export to the target origin's
# export, raw (no stream, no checksums), in requests of at most 1 MiB, one
# at a time (as csnap send and receive do).
import json
import sys

import nbd

src_sock, snap, dst_sock, changed = sys.argv[1:5]
ranges = json.load(open(changed))["ranges"]
src = nbd.NBD()
src.connect_uri(f"nbd+unix:///{snap}?socket={src_sock}")
dst = nbd.NBD()
dst.connect_uri(f"nbd+unix:///origin?socket={dst_sock}")
for r in ranges:
    off, end = r["offset"], r["offset"] + r["length"]
    while off < end:
        n = min(1 << 20, end - off)
        dst.pwrite(src.pread(n, off), off)
        off += n
dst.flush()
src.shutdown()
dst.shutdown()
