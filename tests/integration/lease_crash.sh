#!/usr/bin/env bash
# The one long lease test (~75 s): a whole node dies (its sanlock daemon and
# its processes are SIGKILLed), so its delta lease stops being renewed.
# The master lease must pass to a standby only after sanlock declares the
# host dead (8 * io_timeout + 60 s, about 68 s with io_timeout 1) and not
# before; meanwhile readers see "master changing".  In parallel, a fourth
# node trying to join with a live node's host_id must fail with a clear
# message (sanlock needs the same host-dead time to decide that).
. "$(dirname "$0")/../functions.sh"

cluster_start 4
export LEASE_PATH=$CLUSTER_STORE LEASE_UUID
LEASE_UUID=$(new_uuid)
"$T/lease_tool" init "$CLUSTER_IO_TIMEOUT" || fail "lease init"
for i in 1 2 3; do
  node_spawn "$i" holder "$T/lease_holder" "$i" "$(node_addr "$i")" "700$i" "$CLUSTER_IO_TIMEOUT" >/dev/null
done
for i in 1 2 3; do wait_log "$i" holder '^joined' 30 || fail "node$i did not join"; done
is_master() { grep -q '^master' "$(node_log "$1" holder)"; }
any_master() { local i; for i in 1 2 3; do is_master "$i" && return 0; done; return 1; }
wait_for 15 any_master || fail "no master"
M=$(for i in 1 2 3; do is_master "$i" && echo "$i"; done)
[ "$(echo "$M" | wc -l)" -eq 1 ] || fail "several masters: $M"
S=$(for i in 1 2 3; do [ "$i" != "$M" ] && echo "$i"; done | head -1)
valid_on() { node_run "$1" "$T/lease_tool" find | grep -q "^valid $M "; }
wait_for 20 valid_on "$S" || fail "record not valid on node$S before the crash"
echo "master node$M; killing the whole node"

t0=$(now_ms)
node_kill "$M"
# A new node claiming live node S's host_id.
dpid=$(node_spawn 4 dupjoin "$T/lease_tool" join "$S" "$CLUSTER_IO_TIMEOUT")

new_master() { local i; for i in 1 2 3; do [ "$i" != "$M" ] && is_master "$i" && return 0; done; return 1; }
saw_failing=0
while ! new_master; do
  el=$(( $(now_ms) - t0 ))
  [ "$el" -gt 150000 ] && fail "no takeover after $el ms"
  out=$(node_run "$S" "$T/lease_tool" find 2>&1)
  case "$out" in
    *"host_id $M is failing"*) saw_failing=1 ;;
    valid\ $M*|changing*|none*) ;;
    valid*) new_master && break   # it took over between our two looks
            fail "a record other than node$M's validated before takeover: $out" ;;
  esac
  sleep 0.5
done
N=$(for i in 1 2 3; do [ "$i" != "$M" ] && is_master "$i" && echo "$i"; done)
[ "$(echo "$N" | wc -l)" -eq 1 ] || fail "several new masters: $N"
# When the new master took the lease, by its own clock (wall ms, as now_ms).
took=$(( $(sed -n 's/^master.* at=\([0-9]*\)$/\1/p' "$(node_log "$N" holder)" | head -1) - t0 ))
echo "crash handover: $took ms (to node$N)"
# A lower bound, not a speed test: sanlock must not free the lease of a
# host that may still be running before its watchdog would have fired.
[ "$took" -ge 60000 ] || fail "lease taken over after only $took ms"
[ "$saw_failing" -eq 1 ] || fail "readers never saw the master as failing"
node_run "$N" "$T/lease_tool" hosts | grep -q "^$M node$M dead " || fail "node$M not reported dead"
for i in 1 2 3; do
  [ "$i" = "$M" ] && continue
  wait_for 20 sh -c "env SANLOCK_RUN_DIR=$CLUSTER_DIR/node$i/sanlock $T/lease_tool find | grep -q '^valid $N '" ||
    fail "new record not valid on node$i"
done

wait_for 60 sh -c "! kill -0 $dpid 2>/dev/null" || fail "duplicate join still running"
grep -q "host_id $S is in use by host 'node$S'" "$(node_log 4 dupjoin)" ||
  fail "duplicate host_id: $(cat "$(node_log 4 dupjoin)")"
echo "duplicate host_id refused: $(cat "$(node_log 4 dupjoin)")"
echo "PASS"
