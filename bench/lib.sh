# bench/lib.sh - the arithmetic the benchmark scripts share (sourced):
#   median            numbers on stdin, one per line (blank lines skipped)
#                     -> their median (the mean of the middle two for an
#                     even count); nothing for no numbers
#   median_list L     the same of a ';'-separated list L
#   stats FILE        microseconds, one per line -> "median max" in ms
#   timed FILE CMD... runs CMD (output dropped), appends its wall time in
#                     microseconds to FILE
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
