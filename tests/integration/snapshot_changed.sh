#!/usr/bin/env bash
# tests/integration/snapshot_changed.sh - `csnap snapshot changed` against
# a real master (tests/cluster/lib.sh, real sanlock), checked against a
# model of what was written: random origin writes between and after two
# snapshots and random snapshot writes (tests/tools/proto_client does what
# an export does), then the changed lists s1->s2, s2->s1, s1->origin,
# s2->origin, s1->s1, in text and --json, including the byte offsets and
# the last range clipped to an origin that is not a whole number of chunks.
# san: yes
. "$(dirname "$0")/../functions.sh"

CS=65536
NCHUNKS=97				# the last one partial
OSIZE=$(( (NCHUNKS - 1) * CS + 12288 ))
cluster_start 1 64M
origin_fill random "$OSIZE"
store_init
start_master 1 --grace-ms 0

RANDOM=4242
declare -A o1 o2 w1 w2	# chunks: origin writes after s1 / after s2; snapshot writes
# rand_range: sets S and N, a run of 1..6 whole chunks (never the partial last one)
rand_range() { S=$((RANDOM % (NCHUNKS - 1))); N=$((1 + RANDOM % 6)); [ $((S + N)) -lt "$NCHUNKS" ] || N=$((NCHUNKS - 1 - S)); }
mark() { local -n set=$1; local i; for ((i = $2; i < $2 + $3; i++)); do set[$i]=1; done; }

cs 1 snapshot create s s1 >/dev/null || fail "create s1"
for k in $(seq 1 12); do
  rand_range; pc 1 owrite "$S" "$N" $((k + 16)) >/dev/null || fail "owrite $S $N"; mark o1 "$S" "$N"
done
cs 1 snapshot create s s2 >/dev/null || fail "create s2"
for k in $(seq 1 10); do
  rand_range; pc 1 owrite "$S" "$N" $((k + 64)) >/dev/null || fail "owrite $S $N"; mark o2 "$S" "$N"
done
for k in $(seq 1 4); do
  rand_range; pc 1 swrite s1 "$S" "$N" $((k + 128)) >/dev/null || fail "swrite s1"; mark w1 "$S" "$N"
  rand_range; pc 1 swrite s2 "$S" "$N" $((k + 160)) >/dev/null || fail "swrite s2"; mark w2 "$S" "$N"
done
# The partial last chunk, through a snapshot write (an origin write by
# proto_client would extend the origin file).
pc 1 swrite s2 $((NCHUNKS - 1)) 1 0x77 >/dev/null || fail "swrite last chunk"; mark w2 $((NCHUNKS - 1)) 1

# expected SETS...: "start count offset length" lines of the union of SETS
expected() {
  local i s=-1 n=0 inset set
  for ((i = 0; i <= NCHUNKS; i++)); do
    inset=0
    if [ $i -lt "$NCHUNKS" ]; then
      for set in "$@"; do local -n st=$set; [ -n "${st[$i]:-}" ] && inset=1; done
    fi
    if [ $inset = 1 ]; then
      [ $s -lt 0 ] && s=$i; n=$((n + 1))
    elif [ $s -ge 0 ]; then
      local off=$((s * CS)) len=$((n * CS))
      [ $((off + len)) -gt "$OSIZE" ] && len=$((OSIZE - off))
      echo "$s $n $off $len"; s=-1; n=0
    fi
  done
}
check() {	# check WHAT "CHANGED ARGS" SETS...
  local what=$1 args=$2; shift 2
  local want got gotj out
  want=$(expected "$@")
  # shellcheck disable=SC2086
  out=$(cs 1 snapshot changed s $args) || fail "$what: $out"
  got=$(echo "$out" | awk 'NF == 4 && $1 ~ /^[0-9]+$/ {print $1, $2, $3, $4}')
  [ "$got" = "$want" ] || fail "$what: got [$got] want [$want]; output: $out"
  # shellcheck disable=SC2086
  gotj=$(cs 1 snapshot changed s $args --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["chunk_size"] == '$CS', j
assert j["chunks"] == sum(r["count"] for r in j["ranges"]), j
assert j["bytes"] == sum(r["length"] for r in j["ranges"]), j
for r in j["ranges"]: print(r["start"], r["count"], r["offset"], r["length"])') || fail "$what: bad json"
  [ "$gotj" = "$want" ] || fail "$what --json: got [$gotj] want [$want]"
  local chunks; chunks=$(echo -n "$want" | awk '{c += $2} END {print c + 0}')
  echo "$out" | tail -1 | grep -q "^$chunks chunks\? " || fail "$what: summary: $(echo "$out" | tail -1)"
  echo "ok  $what: $(echo "$want" | grep -c .) ranges, $chunks chunks"
}
check "s1 -> s2" "s1 s2" o1 w1 w2
check "s2 -> s1" "s2 s1" o1 w1 w2
check "s1 -> origin" "s1" o1 o2 w1
check "s2 -> origin" "s2" o2 w2
check "s1 -> s1" "s1 s1"
cs 1 snapshot changed s s1 | tail -1 | grep -q "changed between s1 and the origin" || fail "summary wording"
# the partial last chunk is clipped to the origin's size
cs 1 snapshot changed s s2 --json | grep -q "\"offset\": $(((NCHUNKS - 1) * CS)), \"length\": 12288}" ||
  fail "last chunk not clipped: $(cs 1 snapshot changed s s2 --json)"

out=$(cs 1 snapshot changed s nosuch 2>&1) && fail "unknown snapshot accepted"
echo "$out" | grep -q "no such snapshot" || fail "unknown snapshot: $out"
out=$(cs 1 snapshot changed s s1 s2 s3 2>&1) && fail "extra argument accepted"
out=$(cs 1 snapshot changed s 'bad/name' 2>&1) && fail "bad name accepted"
echo "$out" | grep -q "invalid snapshot name" || fail "bad name: $out"
echo "ok  errors"
out=$(cs 1 status s) || fail "status: $out"
echo "$out" | grep -q "^origin size  $OSIZE bytes (6.0 MiB)$" || fail "status origin size: $out"
echo "$out" | grep -Eq "^space        [0-9]+ chunks \([0-9.]+ MiB\), [0-9]+ free \([0-9.]+ MiB, [0-9.]+% used\)$" ||
  fail "status space: $out"
"$C" check "$CLUSTER_STORE" "$CLUSTER_ORIGIN" >/dev/null || fail "check"
echo PASS
