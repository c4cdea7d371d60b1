#!/usr/bin/env bash
# tests/integration/export_burst.sh - a burst of NBD requests that fills
# exactly the export's per-wakeup read budget (32 stages of 256 KiB) and
# then stops: every request must be answered (export_burst.py), and the
# data must be on the disk.
# san: yes
. "$(dirname "$0")/../functions.sh"
set -eo pipefail
requires python3

file_export export-burst 16M

"$py" "$src/tests/integration/export_burst.py" "$dir/s" "$pid" || fail "burst not answered or read back wrong"

# What was acknowledged is on the disk: write i put 128 KiB - 28 bytes
# of the value i at offset i * 128 KiB.
"$py" - "$dir/origin.img" <<'PY' || fail "burst data not on the disk"
import sys
d = open(sys.argv[1], 'rb').read()
for i in range(64):
    want = bytes([i]) * (128 * 1024 - 28)
    got = d[i * 128 * 1024:i * 128 * 1024 + len(want)]
    if got != want:
        sys.exit(f"write {i}: wrong data")
PY
echo PASS
