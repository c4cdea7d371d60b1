#!/usr/bin/env bash
# tests/integration/master_slow_grant.sh - a master that answers more slowly
# than an export's grant lasts (PROTO_GRANT_MS, 2 s) must not stall any
# NBD client for good (issue 9; docs/RELIABILITY.md, "node1's export
# acknowledged none of writer 1's last 7 writes").
#
# Three nodes run agents and exports; writers on node1 and node2 write
# self-describing blocks through their exports (tests/cluster/blocks.sh).
# The master's server is SIGSTOPped ROUNDS times (default 8) for 1.6 to
# 2.8 s, shorter than heartbeat_timeout (5 s), so it stays master: the
# exports' grants run out while they stay connected, PINGs and origin
# queries are answered late, writes waiting at the grant gate re-ask;
# every fourth round a snapshot create is started during the stop (more
# would fill the store and release them).
# Checks: after the last SIGCONT each writer separately gets 200 more
# writes acknowledged within 60 s (the soak's stall had one writer stop
# while the other went on), a snapshot taken then and the origin verify
# block by block, `csnap check` is clean.
# san: yes
. "$(dirname "$0")/../functions.sh"
. "$src/tests/cluster/blocks.sh"
ROUNDS=${ROUNDS:-8}

acks() { wc -l <"$CLUSTER_DIR/w$1.log"; }
# wait_writer W N SECS: writer W alone gets N more acknowledgements.
wait_writer() {
  local target=$(( $(acks "$1") + $2 ))
  wait_for "$3" bash -c "[ \$(wc -l <'$CLUSTER_DIR/w$1.log') -ge $target ]"
}

blocks_cluster
d=$CLUSTER_DIR
blocks_writers
wait_writes 1000 || fail "writers do not progress"
m=$(master_host)
[ -n "$m" ] || fail "no master"
spid=$(master_server_pid "$m")
[ -n "$spid" ] || fail "no server pid on node$m"
other=$(( m % 3 + 1 ))
stopped=
trap '[ -n "$stopped" ] && kill -CONT "$stopped" 2>/dev/null; cluster_stop' EXIT
for r in $(seq 1 "$ROUNDS"); do
  t=$(awk -v r="$r" 'BEGIN { printf "%.1f", 1.6 + (r * 7 % 13) / 10 }')
  kill -STOP "$spid"; stopped=$spid
  # Every fourth round a snapshot is asked for while the master is
  # stopped: its barrier reaches the exports when their grants ran out.
  c=
  if [ $(( r % 4 )) = 3 ]; then
    t0=$(mono)
    node_run "$other" "$C" snapshot create s "c$r" >"$d/c$r.out" 2>&1 &
    c=$!
  fi
  sleep "$t"
  kill -CONT "$spid"; stopped=
  if [ -n "$c" ]; then
    wait "$c" || fail "snapshot create c$r: $(cat "$d/c$r.out")"
    echo "c$r $t0 $(mono)" >>"$d/snaps"
  fi
  echo "round $r: master server (node$m pid $spid) stopped for $t s; writes $(acks 1) / $(acks 2)"
  sleep 0.8
done
kill -0 "$spid" 2>/dev/null || echo "note: node$m's server was replaced during the rounds"
for w in 1 2; do
  wait_writer "$w" 200 60 ||
    fail "writer $w stalled: $(acks "$w") writes acknowledged, last: $(tail -1 "$d/w$w.log"); node$w export log: $(grep -E 'grant|asking|forgetting|re-sending' "$(node_dir "$w")/export.log" | tail -5)"
done
snap s1 "$other"
wait_writes 300 || fail "writers stalled after s1"
blocks_stop_writers
grep -hE 'grant|asking the master again' "$(node_dir 1)/export.log" "$(node_dir 2)/export.log" | sort | uniq -c | head -8
blocks_verify "$other"
no_sanitizer_reports
check_store
echo PASS
