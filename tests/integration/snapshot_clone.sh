#!/usr/bin/env bash
# tests/integration/snapshot_clone.sh - `csnap snapshot create STORE NEW
# --from SNAP` (issue 15): a snapshot of a snapshot, writable, to any
# depth.  Through real NBD clients (python3-libnbd) on both nodes' exports:
# the clone reads SNAP's content at clone time - chunks SNAP had copied
# out, chunks it still read from the origin, and a chunk SNAP had written
# itself (through node 1's export, which cached it as SNAP's own); later
# origin writes show in neither; writes to SNAP (again through node 1)
# and to the clone (node 2) do not show in the other; a clone of the
# clone reads the clone's content; deleting SNAP keeps both clones right
# on both nodes.  Refusals (--from a missing snapshot, a taken name) are
# one-line errors.  `csnap check` is clean at the end.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires_libnbd
requires nbdinfo

cluster_2node

MiB=$((1 << 20))
# wr SOCKET EXPORT MIB MARKER: 1 MiB of MARKER (8 bytes) at MIB MiB
wr() {
  $py - "nbd+unix:///$2?socket=$1" "$3" "$4" <<'PY' || fail "write $4 to $2 at $3 MiB"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(sys.argv[3].encode() * (1 << 17), int(sys.argv[2]) << 20); h.flush()
PY
}
# expect SOCKET EXPORT MIB MARKER: the whole MiB at MIB MiB holds MARKER
# (a sparse origin reads zero bytes: MARKER "zero")
expect() {
  local got
  got=$($py - "nbd+unix:///$2?socket=$1" "$3" "$4" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
want = b"\0" * 8 if sys.argv[3] == "zero" else sys.argv[3].encode()
buf = h.pread(1 << 20, int(sys.argv[2]) << 20)
print("ok" if buf == want * (1 << 17) else repr(buf[:8]))
PY
) || fail "read $2 at $3 MiB on $1"
  [ "$got" = ok ] || fail "$2 at $3 MiB on $(basename "$1"): read $got, want $4"
}
refused() {	# refused WHAT ARG...: `snapshot create` as node 2 must fail with one line
  local out
  if out=$(node_run 2 "$C" snapshot create s "${@:2}" 2>&1); then
    fail "$1: create was not refused: $out"
  fi
  [ "$(printf '%s\n' "$out" | grep -vc '^usage: ')" -eq 1 ] || fail "$1: not a one-line error: $out"
  echo "refused ($1): $out"
}

# k1: 1 MiB copied out (A then B on the origin), 2 MiB still on the
# origin (P), 3 MiB written by k1 itself through node 1 (K1W)
wr "$sock1" origin 1 AAAAAAAA
wr "$sock1" origin 2 PPPPPPPP
node_run 2 "$C" snapshot create s k1 >/dev/null || fail "create k1"
wr "$sock1" origin 1 BBBBBBBB
wait_exported "$sock1" k1
wr "$sock1" k1 3 K1WK1WK1
expect "$sock1" k1 3 K1WK1WK1

# The clone is refused (like a delete) while node 1's session for k1
# still counts as in use: it lingers about a second after the client.
wait_for 20 node_run 2 "$C" snapshot create s c1 --from k1 ||
  fail "clone: $(node_run 2 "$C" snapshot create s c1 --from k1 2>&1)"
node_run 1 "$C" snapshot list s | grep -qw c1 || fail "list does not show c1"
for s in "$sock1" "$sock2"; do
  wait_exported "$s" c1
  expect "$s" c1 1 AAAAAAAA
  expect "$s" c1 2 PPPPPPPP
  expect "$s" c1 3 K1WK1WK1
  expect "$s" c1 4 zero
done
echo "c1 reads k1's content on both nodes"

# origin writes after the clone: neither sees them (2 MiB is copied out
# for k1 and c1 now, 4 MiB too)
wr "$sock2" origin 2 QQQQQQQQ
wr "$sock2" origin 4 OOOOOOOO
# writes to each: k1 through node 1 (whose export had k1's 3 MiB as its
# own before the clone), c1 through node 2
wr "$sock1" k1 3 K1XK1XK1
wr "$sock1" k1 1 K1K1K1K1
wr "$sock2" c1 2 C1C1C1C1
for s in "$sock1" "$sock2"; do
  expect "$s" k1 1 K1K1K1K1
  expect "$s" k1 2 PPPPPPPP
  expect "$s" k1 3 K1XK1XK1
  expect "$s" k1 4 zero
  expect "$s" c1 1 AAAAAAAA
  expect "$s" c1 2 C1C1C1C1
  expect "$s" c1 3 K1WK1WK1
  expect "$s" c1 4 zero
  expect "$s" origin 2 QQQQQQQQ
done
echo "writes to k1, c1 and the origin stay apart"

# depth 2: c2 from c1, then c1 written again
wait_for 20 node_run 1 "$C" snapshot create s c2 --from c1 ||
  fail "clone of the clone: $(node_run 1 "$C" snapshot create s c2 --from c1 2>&1)"
wait_exported "$sock2" c2
wr "$sock2" c1 3 C1YC1YC1
expect "$sock2" c2 1 AAAAAAAA
expect "$sock2" c2 2 C1C1C1C1
expect "$sock2" c2 3 K1WK1WK1
expect "$sock1" c1 3 C1YC1YC1

# snapshot list says what each was made from (last column, FROM)
from_of() { node_run 2 "$C" snapshot list s | awk -v n="$1" '$2 == n { print $NF }'; }
[ "$(from_of k1)" = origin ] || fail "list: k1 FROM is '$(from_of k1)', not origin"
[ "$(from_of c1)" = k1 ] || fail "list: c1 FROM is '$(from_of c1)', not k1"
[ "$(from_of c2)" = c1 ] || fail "list: c2 FROM is '$(from_of c2)', not c1"
node_run 2 "$C" snapshot list s --json | python3 -c '
import json, sys
snaps = {s["name"]: s for s in json.load(sys.stdin)}
assert snaps["c2"]["parent_id"] == snaps["c1"]["id"], snaps
assert snaps["k1"]["parent_id"] is None, snaps
' || fail "list --json: parent_id wrong"
echo "snapshot list shows each clone's parent"

refused "--from a missing snapshot" c3 --from nosuch
refused "name taken" c1 --from k1
refused "--from an invalid name" c3 --from 'bad/name'

# deleting the parent keeps the clones right (refused while k1's session
# lingers, as above)
wait_for 20 node_run 2 "$C" snapshot delete s k1 ||
  fail "delete k1: $(node_run 2 "$C" snapshot delete s k1 2>&1)"
wait_for 10 bash -c "! nbdinfo --list 'nbd+unix://?socket=$sock1' | grep -q 'export=\"k1\"'" ||
  fail "node1 still exports k1"
wr "$sock1" origin 1 DDDDDDDD
wr "$sock1" origin 3 EEEEEEEE
for s in "$sock1" "$sock2"; do
  expect "$s" c1 1 AAAAAAAA
  expect "$s" c1 2 C1C1C1C1
  expect "$s" c1 3 C1YC1YC1
  expect "$s" c1 4 zero
  expect "$s" c2 1 AAAAAAAA
  expect "$s" c2 3 K1WK1WK1
  expect "$s" c2 4 zero
done
k1_id=$(node_run 2 "$C" snapshot list s --json | python3 -c '
import json, sys
print([s["parent_id"] for s in json.load(sys.stdin) if s["name"] == "c1"][0])')
[ "$(from_of c1)" = "#$k1_id" ] || fail "list: c1 FROM is '$(from_of c1)' after k1 was deleted, not #$k1_id"
echo "c1 and c2 stay right after k1 is deleted"

node_kill_procs 1 TERM
node_kill_procs 2 TERM
sleep 1
no_sanitizer_reports
check_store
"$C" dump "$CLUSTER_STORE" | grep -q 'being cloned' || fail "dump does not report clones"
echo "PASS"
