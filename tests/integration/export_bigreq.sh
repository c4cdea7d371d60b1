#!/usr/bin/env bash
# tests/integration/export_bigreq.sh - trim and write zeroes of 4 GiB or
# more (NBD extended headers, 64-bit lengths) on a `csnap export --file`
# of a sparse 4 GiB + 256 KiB file: each is carried out whole, in the
# pieces the volume takes, with one reply (export_bigreq.py).  Writes
# 4 GiB of zeroes to /var/tmp (about 10 s here), then removes them.
# san: yes
. "$(dirname "$0")/../functions.sh"
set -eo pipefail
here=$src/tests/integration

file_export export-bigreq $(( (4 << 30) + (256 << 10) ))
t0=$(date +%s)
$py "$here/export_bigreq.py" "$dir/s" || fail "trim and write zeroes of 4 GiB or more"
echo "ok  4 GiB requests done in $(( $(date +%s) - t0 )) s"
kill "$pid"
wait "$pid" || fail "export did not exit cleanly on SIGTERM"
pid=
echo PASS
