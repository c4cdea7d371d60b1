# bench/lib.sh - what the benchmark scripts share (sourced), the
# arithmetic:
#   median            numbers on stdin, one per line (blank lines skipped)
#                     -> their median (the mean of the middle two for an
#                     even count); nothing for no numbers
#   median_list L     the same of a ';'-separated list L
#   stats FILE        microseconds, one per line -> "median max" in ms
#   timed FILE CMD... runs CMD (output dropped), appends its wall time in
#                     microseconds to FILE
# and the set-ups (they need $src, the source tree):
#   failover_args ROUNDS ARG...  the failover benchmarks' [--rounds N]
#                     [--crash] [BUILD_DIR] -> rounds (default ROUNDS),
#                     crash (0 or 1), build (absolute; default $src/build)
#   fill_tools        csnap, fill (bench/store_fill) and pc (proto_client) of
#                     $build; exits if one is not built
#   fill_cluster_start N CB  a one-node cluster (tests/cluster/lib.sh, sourced
#                     first) whose store and origin hold N exceptions of
#                     CB-byte chunks as store_fill makes them, with room to spare
median() {
  awk 'NF' | sort -n |
    awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
median_list() { tr ';' '\n' <<<"$1" | median; }
stats() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.1f %.1f", v[int((NR + 1) / 2)] / 1000, v[NR] / 1000 }'; }
timed() {
  local f=$1 t0 t1; shift
  t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 )) >>"$f"
}

# shellcheck disable=SC2034  # rounds, crash: the caller's
failover_args() {
  rounds=$1 crash=0 build=
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --rounds) rounds=$2; shift ;;
      --crash) crash=1 ;;
      *) build=$1 ;;
    esac
    shift
  done
  build=$(cd "${build:-$src/build}" && pwd)
}

fill_tools() {
  local x
  csnap=$build/csnap
  fill=$build/bench/store_fill
  pc=$build/tools/proto_client
  for x in "$csnap" "$fill" "$pc"; do
    [ -x "$x" ] || { echo "$(basename "$0"): $x missing (make)" >&2; exit 1; }
  done
}

# The data chunks, the b-tree (~53 bytes an exception, in 4 KiB blocks)
# and 512 MiB for the rest; the origin N + 4096 chunks.
fill_cluster_start() {
  local n=$1 cb=$2
  cluster_start 1 $(( (n + 8192) * cb + n / 20 * 4096 + (512 << 20) ))
  truncate -s $(( (n + 4096) * cb )) "$CLUSTER_ORIGIN"
}
