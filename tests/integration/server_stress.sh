#!/usr/bin/env bash
# Randomized end-to-end check of snapshot contents against a model, real
# server on real sanlock (tests/cluster/lib.sh), two nodes.  A seeded
# random sequence of origin writes (1-3 chunks), snapshot creates and
# deletes, whole-chunk and partial snapshot writes, and one master
# failover (SIGKILL of the master process) half way; after every few
# steps, every live snapshot's chunks and the origin are read back through
# the data path and compared with the model.  Ends with `csnap check`.
# san: yes
. "$(dirname "$0")/../functions.sh"

K=24          # chunks under test
STEPS=${STEPS:-120}
RANDOM=${SEED:-4242}

cluster_start 2 64M
origin_fill A 64M
store_init
master_standby --grace-ms 300

declare -A O S
declare -a SNAPS=()
for ((c = 0; c < K; c++)); do O[$c]=0x41; done
next_byte=0x50
newbyte() { next_byte=$(( next_byte >= 0xfe ? 0x50 : next_byte + 1 )); printf '0x%02x' "$next_byte"; }
nsnap=0

verify() {
  local s c line want
  for s in "${SNAPS[@]}"; do
    local out
    out=$(pc 1 sread "$s" 0 "$K") || fail "sread $s"
    for ((c = 0; c < K; c++)); do
      want=${S[$s,$c]}
      line=$(echo "$out" | awk -v c="$c" '$1 == "chunk" && $2 == c { print $3 }')
      [ "$line" = "$want" ] || fail "step $step: snapshot $s chunk $c is $line, model says $want"
    done
  done
  for ((c = 0; c < K; c++)); do
    line=$(dd if="$CLUSTER_ORIGIN" bs=64K skip="$c" count=1 2>/dev/null | od -An -tx1 -N1 | tr -d ' ')
    [ "0x$line" = "${O[$c]}" ] || fail "step $step: origin chunk $c is 0x$line, model says ${O[$c]}"
  done
}

failed_over=0
for ((step = 1; step <= STEPS; step++)); do
  r=$((RANDOM % 100))
  if [ $r -lt 55 ]; then                                  # origin write
    c=$((RANDOM % K)); n=$((1 + RANDOM % 3)); [ $((c + n)) -gt $K ] && n=$((K - c))
    b=$(newbyte)
    pc 1 owrite "$c" "$n" "$b" >/dev/null || fail "step $step: owrite $c $n"
    for ((k = c; k < c + n; k++)); do O[$k]=$b; done
  elif [ $r -lt 70 ] && [ ${#SNAPS[@]} -lt 8 ]; then       # create
    nsnap=$((nsnap + 1)); s="r$nsnap"
    cs 1 snapshot create s "$s" --priority $((RANDOM % 5)) >/dev/null || fail "step $step: create $s"
    SNAPS+=("$s")
    for ((k = 0; k < K; k++)); do S[$s,$k]=${O[$k]}; done
  elif [ $r -lt 78 ] && [ ${#SNAPS[@]} -gt 0 ]; then       # delete
    i=$((RANDOM % ${#SNAPS[@]})); s=${SNAPS[$i]}
    cs 1 snapshot delete s "$s" >/dev/null || fail "step $step: delete $s"
    SNAPS=("${SNAPS[@]:0:$i}" "${SNAPS[@]:$((i + 1))}")
  elif [ $r -lt 90 ] && [ ${#SNAPS[@]} -gt 0 ]; then       # whole-chunk snapshot write
    s=${SNAPS[$((RANDOM % ${#SNAPS[@]}))]}; c=$((RANDOM % K)); b=$(newbyte)
    pc 1 swrite "$s" "$c" 1 "$b" >/dev/null || fail "step $step: swrite $s $c"
    S[$s,$c]=$b
  elif [ ${#SNAPS[@]} -gt 0 ]; then                        # partial snapshot write
    s=${SNAPS[$((RANDOM % ${#SNAPS[@]}))]}; c=$((RANDOM % K)); b=$(newbyte)
    pc 1 swpart "$s" "$c" "$b" >/dev/null || fail "step $step: swpart $s $c"
    [ "${S[$s,$c]}" = "$b" ] || S[$s,$c]=mixed
  fi
  if [ $((step % 15)) -eq 0 ]; then verify; fi
  if [ $step -eq $((STEPS / 2)) ]; then
    node_kill_procs 1 KILL
    wait_log 2 server 'master for store' 60 || fail "node2 did not take over"
    failed_over=1
  fi
done
verify
echo "$STEPS random steps, ${#SNAPS[@]} live snapshots, failover: $failed_over; contents match the model"
node_kill_procs 2 TERM
wait_log 2 server 'orderly hand-over done' 30 || fail "no orderly stop"
no_sanitizer_reports
check_store
echo "PASS"
