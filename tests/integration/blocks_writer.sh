#!/usr/bin/env bash
# tests/integration/blocks_writer.sh - the soaks' block writer
# (cluster_blocks.py write) keeps its memory bounded and writes what it logs.
#
# Issue 9's "stalled writer" (kill_soak.sh SEED=5150, and the k54 "wrong
# blocks" of SEED=65574517) was the kernel's OOM killer: the writer leaked
# every write's buffer (python3-libnbd keeps a buffer passed to aio_pwrite
# after the command is retired), 4 KiB a write, and was killed at 8.8 and
# 11.2 GiB with its last writes unacknowledged (docs/RELIABILITY.md).
# Here the writer logs 16,000 blocks (about 13,000 writes, one in 4 spanning
# two blocks) through `csnap export --file`; its resident memory, read from
# /proc, may grow by at most 24 MiB after its first 2,000 blocks (the leak:
# about 50 MiB); the writer's own guard (BLOCKS_RSS_MAX_MB) is set to the
# same.  Then the file must hold exactly the last acknowledged write of
# every block.
. "$(dirname "$0")/../functions.sh"
set -eo pipefail
requires_libnbd

BLOCKS=4096                       # 16 MiB of 4 KiB blocks
WRITES=16000
dir=$(mktemp -d /var/tmp/csnap-blocks-writer.XXXXXX)
pid=
wpid=
cleanup() {
  [ -z "$wpid" ] || kill "$wpid" 2>/dev/null || true
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

bp=$src/tests/integration/cluster_blocks.py
"$py" "$bp" init "$dir/origin.img" "$BLOCKS" || fail "init"
"$C" -v export --file "$dir/origin.img" --socket "$dir/s" 2>"$dir/export.err" &
pid=$!
FAIL_LOGS+=("$dir/export.err" "$dir/writer.out")
wait_for 10 test -S "$dir/s" || fail "no socket"

uri="nbd+unix:///?socket=$dir/s"
BLOCKS_SPAN=1 BLOCKS_RSS_MAX_MB=24 "$py" "$bp" write "$uri" 0 "$BLOCKS" 1 "$dir/stop" "$dir/w.log" \
  >"$dir/writer.out" 2>&1 &
wpid=$!
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$wpid/status" 2>/dev/null; }
logged() { [ "$(wc -l <"$dir/w.log")" -ge "$1" ] || ! kill -0 "$wpid" 2>/dev/null; }
wait_for 120 logged 2000 || fail "the writer logged $(wc -l <"$dir/w.log") of 2000 blocks in 120 s"
rss0=$(rss)
wait_for 300 logged "$WRITES" || fail "the writer logged $(wc -l <"$dir/w.log") of $WRITES blocks in 300 s"
rss1=$(rss)
[ -n "$rss0" ] && [ -n "$rss1" ] || fail "the writer died: $(tail -n 3 "$dir/writer.out")"
echo "writer memory: $rss0 KiB after 2000 blocks, $rss1 KiB after $WRITES"
[ $((rss1 - rss0)) -le $((24 * 1024)) ] ||
  fail "the writer's memory grew by $(( (rss1 - rss0) / 1024 )) MiB over $((WRITES - 2000)) blocks (a leak)"
touch "$dir/stop"
rc=0
wait "$wpid" || rc=$?
wpid=
[ "$rc" = 0 ] || fail "writer exited with $rc: $(grep -v '^writes' "$dir/writer.out" | tail -n 3)"
[ "$(wc -l <"$dir/w.log")" -ge "$WRITES" ] || fail "only $(wc -l <"$dir/w.log") writes"
grep '^ok: ' "$dir/writer.out"

out=$("$py" "$bp" verify "$uri" "$BLOCKS" inf inf "$dir/w.log") || fail "file after the writes: $out"
echo "file: $out"
echo PASS
