#!/usr/bin/env bash
# bench/send_receive.sh - throughput of `csnap send --from A B | csnap
# receive` for an incremental of PCT % changed chunks, against raw copying
# of the same changed ranges (what rbd export-diff | import-diff moves, no
# format): a libnbd client reading each range from the source snapshot's
# export and writing it to the target origin's export, one request at a
# time like csnap's (bench/send_receive_copy.py).  Two simulated clusters
# as in tests/integration/send_receive.sh; the target gets the full stream
# of A first (not timed), so both peers write onto the same base, and
# each first write pays a copy-out for a snapshot on the target.
#
#   make && bench/send_receive.sh build
#   env: SIZE=256M (origin) PCT=10 ROUNDS=3
#        RESULTS  append one tab-separated line per round and method:
#                 sr <method: copy|send|compress> <round> <bytes> <MB/s>
# Prints one line per run and the medians; MB = 10^6 bytes of changed data.
set -u
BUILD=${1:-build}
export CSNAP_BUILD=${CSNAP_BUILD:-$(cd "$BUILD" && pwd)}
export CSNAP_SRC=${CSNAP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
. "$CSNAP_SRC/tests/functions.sh"

requires_run python3-libnbd "$py" -c 'import nbd'

SIZE=${SIZE:-256M} PCT=${PCT:-10} ROUNDS=${ROUNDS:-3} results=${RESULTS:-/dev/null}
CS=65536
cluster_start 2 "$(numfmt --from=iec "$SIZE" | awk '{print int($1 * 3)}')"
d=$CLUSTER_DIR
OSIZE=$(numfmt --from=iec "$SIZE")
head -c "$OSIZE" /dev/urandom >"$CLUSTER_ORIGIN"
store_init
start_master 1 --grace-ms 0
sock1=$(export_sock 1)
start_export 1 "$sock1" s
TSTORE=$d/tstore.img TORIGIN=$d/torigin.img
truncate -s "$((OSIZE * 3))" "$TSTORE"
truncate -s "$OSIZE" "$TORIGIN"
own_cluster 2 t "$TSTORE" "$TORIGIN" 64K
sock2=$(node_dir 2)/run/t.sock

nchunks=$((OSIZE / CS))
change() {	# PCT % of the chunks, random ones; data that compresses about 2:1
  "$py" - "$sock1" "$nchunks" "$PCT" "$1" <<'EOF'
import nbd, os, random, sys
sock, n, pct, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
h = nbd.NBD(); h.connect_uri("nbd+unix:///origin?socket=" + sock)
random.seed(seed)
for c in random.sample(range(n), n * pct // 100):
    h.pwrite(os.urandom(32768) + bytes(32768), c * 65536)
h.flush(); h.shutdown()
EOF
}
ms() { echo $(( $(date +%s%N) / 1000000 )); }
cs 1 snapshot create s base >/dev/null || fail "create base"
cs 1 send s base 2>/dev/null | cs 2 receive t >/dev/null 2>"$d/recv.err" || fail "full receive: $(cat "$d/recv.err")"

declare -a r_send r_comp r_copy
for round in $(seq 1 "$ROUNDS"); do
  prev=$( [ "$round" = 1 ] && echo base || echo "c$((round - 1))" )
  change "$round" || fail "change"
  cs 1 snapshot create s "c$round" >/dev/null || fail "create c$round"
  bytes=$(cs 1 snapshot changed s "$prev" "c$round" --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
  # raw copy of the same ranges into the target origin (the receives
  # that follow write the same ranges again); before each method a
  # snapshot on t shares every chunk, so each pays the same copy-outs
  t0=$(ms)
  "$py" "$CSNAP_SRC/bench/send_receive_copy.py" "$sock1" "c$round" "$sock2" \
    <(cs 1 snapshot changed s "$prev" "c$round" --json) || fail "raw copy"
  cs 2 snapshot create t "x$round" >/dev/null || fail "create x$round on t"
  t1=$(ms)
  cs 1 send --from "$prev" s "c$round" 2>/dev/null | cs 2 receive t >/dev/null 2>"$d/recv.err" ||
    fail "receive c$round: $(cat "$d/recv.err")"
  t2=$(ms)
  # the same again compressed, into a snapshot of another name
  cs 2 snapshot delete t "c$round" >/dev/null 2>&1 || wait_for 10 cs 2 snapshot delete t "c$round" >/dev/null 2>&1 ||
    fail "delete c$round on t"
  cs 2 snapshot create t "y$round" >/dev/null || fail "create y$round on t"
  t3=$(ms)
  cs 1 send --compress --from "$prev" s "c$round" 2>/dev/null | cs 2 receive t >/dev/null 2>"$d/recv.err" ||
    fail "receive c$round compressed: $(cat "$d/recv.err")"
  t4=$(ms)
  for x in "x$round" "y$round"; do
    wait_for 10 cs 2 snapshot delete t "$x" >/dev/null 2>&1 || fail "delete $x on t"
  done
  mbs() { awk -v b="$bytes" -v ms="$1" 'BEGIN { printf "%.1f", b / 1e6 / (ms / 1000) }'; }
  printf 'sr\t%s\t%d\t%d\t%s\n' copy "$round" "$bytes" "$(mbs $((t1 - t0)))" \
    send "$round" "$bytes" "$(mbs $((t2 - t1)))" compress "$round" "$bytes" "$(mbs $((t4 - t3)))" >>"$results"
  r_copy+=("$(mbs $((t1 - t0)))") r_send+=("$(mbs $((t2 - t1)))") r_comp+=("$(mbs $((t4 - t3)))")
  echo "round $round: $bytes bytes changed: raw copy $(mbs $((t1 - t0))) MB/s, send|receive $(mbs $((t2 - t1))) MB/s, --compress $(mbs $((t4 - t3))) MB/s"
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
c=$(med "${r_copy[@]}") s=$(med "${r_send[@]}") z=$(med "${r_comp[@]}")
echo "median over $ROUNDS rounds ($SIZE origin, $PCT % of chunks changed): raw copy $c MB/s," \
  "send|receive $s MB/s ($(awk -v a="$s" -v b="$c" 'BEGIN {printf "%.2f", a / b}')x), --compress $z MB/s" \
  "($(awk -v a="$z" -v b="$c" 'BEGIN {printf "%.2f", a / b}')x); load $(cut -d' ' -f1-3 /proc/loadavg)"
