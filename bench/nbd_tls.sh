#!/usr/bin/env bash
# bench/nbd_tls.sh - what TLS on a TCP export costs (export_tls,
# docs/export.md), and that it costs nothing when not used.
#
#   bench/nbd_tls.sh [BUILD_DIR [BASE_BUILD_DIR]]
#   env: SIZE (default 256M), REPEAT rounds (default 3; medians reported),
#        DIR scratch directory on a file system with O_DIRECT (/var/tmp)
#
# Every export is `csnap export --file` of one SIZE file of random data.
#  1. The plain path: fio's nbd engine, SIZE/4K random 4K reads at depth
#     32 on the unix socket; IOPS and the export's CPU time per read
#     (utime+stime from /proc).  With BASE_BUILD_DIR (say, a build of the
#     commit before TLS) both exports run, interleaved round by round.
#  2. TLS against plain: one export with --tls on and a psktool key;
#     nbdcopy reads SIZE to null: and writes SIZE over TLS (nbds://, PSK),
#     plain TCP (nbd://) and the unix socket; MiB/s and the export's CPU
#     seconds.  The cipher libnbd negotiated is printed (LIBNBD_DEBUG).
# Output: one line per measurement, then the medians.  The machine is
# shared: compare the figures of one run, not across runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

build=$(cd "${1:-build}" && pwd)
base=${2:+$(cd "$2" && pwd)}
size=${SIZE:-256M}
repeat=${REPEAT:-3}
w=$(mktemp -d "${DIR:-/var/tmp}/csnap-bench-tls.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$w"
}
trap cleanup EXIT
for t in fio nbdcopy psktool; do
  command -v "$t" >/dev/null || { echo "nbd_tls.sh: $t is missing (scripts/install-deps.sh)"; exit 1; }
done

head -c "$size" /dev/urandom >"$w/disk.img"
bytes=$(stat -c %s "$w/disk.img")
mib=$((bytes >> 20))
reads=$((bytes / 4096))
psktool -u bench -p "$w/keys.psk" >/dev/null
tck=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }

# start_export CSNAP [ARGS...]: a --file export on $w/s.sock (+ ARGS)
start_export() {
  local bin=$1; shift
  rm -f "$w/s.sock" "$w/out"
  "$bin" export --file "$w/disk.img" --socket "$w/s.sock" "$@" >"$w/out" 2>"$w/err" &
  pid=$!
  for _ in $(seq 100); do [ -S "$w/s.sock" ] && break; sleep 0.1; done
  [ -S "$w/s.sock" ] || { echo "nbd_tls.sh: export did not start: $(cat "$w/err")"; exit 1; }
}
stop_export() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

plain_round() {		# plain_round LABEL CSNAP
  local c0 iops
  start_export "$2"
  c0=$(cpu)
  iops=$(fio --name=r --ioengine=nbd --uri="nbd+unix:///origin?socket=$w/s.sock" --rw=randread \
    --bs=4k --iodepth=32 --size="$bytes" --number_ios="$reads" --output-format=terse \
    --terse-version=3 2>/dev/null | awk -F';' '$8 > 0 { print $8 }')
  awk -v l="$1" -v i="$iops" -v c=$(( $(cpu) - c0 )) -v t="$tck" -v n="$reads" \
    'BEGIN { printf "plain %s 4K randread qd32 unix: %d IOPS, export CPU %.2f us/read\n", l, i, c * 1e6 / t / n }' |
    tee -a "$w/results"
  stop_export
}

tls_round() {
  local port c0 s0 what
  start_export "$build/csnap" --tcp 127.0.0.1:0 --tls on --tls-psk "$w/keys.psk"
  port=$(sed -n 's/^tcp port //p' "$w/out")
  for what in "tls nbds://bench@127.0.0.1:$port/origin?tls-psk-file=$w/keys.psk" \
              "tcp nbd://127.0.0.1:$port/origin" "unix nbd+unix:///origin?socket=$w/s.sock"; do
    set -- $what
    for dir in read write; do
      c0=$(cpu) s0=$(date +%s%N)
      if [ $dir = read ]; then nbdcopy "$2" null:; else nbdcopy "$w/disk.img" "$2"; fi
      awk -v l="$1 $dir" -v ns=$(( $(date +%s%N) - s0 )) -v c=$(( $(cpu) - c0 )) -v t="$tck" -v m="$mib" \
        'BEGIN { printf "nbdcopy %s %d MiB: %.0f MiB/s, export CPU %.2f s\n", l, m, m / (ns / 1e9), c / t }' |
        tee -a "$w/results"
    done
  done
  LIBNBD_DEBUG=1 nbdinfo "nbds://bench@127.0.0.1:$port/origin?tls-psk-file=$w/keys.psk" 2>&1 |
    grep -o 'cipher [^ ]*' | sed 's/^/TLS /' | head -1
  stop_export
}

# Warm-up, not counted: the first pass over the file was 5 times slower.
dd if="$w/disk.img" of=/dev/null bs=1M iflag=direct status=none
for r in $(seq "$repeat"); do
  [ -n "$base" ] && plain_round base "$base/csnap"
  plain_round this "$build/csnap"
done
for r in $(seq "$repeat"); do tls_round; done

echo "== medians of $repeat rounds"
sed 's/ [0-9.]* IOPS.*//; s/ [0-9.]* MiB\/s.*//' "$w/results" | sort -u | while read -r key; do
  line="$key"
  for unit in IOPS MiB/s us/read 's$'; do
    m=$(grep -F "$key " "$w/results" | grep -oE "[0-9.]+ $unit" | median) || true
    [ -n "$m" ] || continue
    case $unit in
      us/read|'s$') line="$line, export CPU $m ${unit%\$}" ;;
      *) line="$line $m $unit" ;;
    esac
  done
  echo "$line"
done
