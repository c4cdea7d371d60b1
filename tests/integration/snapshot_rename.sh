#!/usr/bin/env bash
# tests/integration/snapshot_rename.sh - `csnap snapshot rename STORE OLD
# NEW` (issue 15): the master renames the snapshot in one journaled
# transaction and answers after the commit; every node's export then
# serves it under NEW (the same content, read through another node's
# export than the renaming one) and no longer under OLD.  Refusals (a
# missing OLD, a taken or reserved NEW, a snapshot an NBD client is using)
# give one-line errors and change nothing; `csnap check` is clean.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires_libnbd
requires nbdinfo
requires qemu-img

cluster_2node

owrite() {	# owrite MARKER: 1 MiB at offset 1 MiB of the origin, via node 1
  $py - "nbd+unix:///origin?socket=$sock1" "$1" <<'PY' || fail "origin write $1"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(sys.argv[2].encode() * (1 << 17), 1 << 20); h.flush()
PY
}
# first 8 bytes at 1 MiB of export NAME on SOCKET, read with qemu-img
peek() {
  qemu-img convert -f raw -O raw "nbd+unix:///$2?socket=$1" "$d/img.$2" 2>&1 || return 1
  dd if="$d/img.$2" bs=8 skip=$((1 << 17)) count=1 status=none
}
refused() {	# refused WHAT ARG...: csnap as node 2 must fail with one line
  local out
  if out=$(node_run 2 "$C" snapshot rename s "${@:2}" 2>&1); then
    fail "$1: rename was not refused: $out"
  fi
  # one line of error (a usage error adds the standard usage line)
  [ "$(printf '%s\n' "$out" | grep -vc '^usage: ')" -eq 1 ] || fail "$1: not a one-line error: $out"
  echo "refused ($1): $out"
}

owrite k1data__
node_run 2 "$C" snapshot create s k1 >/dev/null || fail "create k1"
node_run 2 "$C" snapshot create s k2 >/dev/null || fail "create k2"
owrite newdata_
[ "$(peek "$sock1" k1)" = k1data__ ] || fail "k1 does not read its content before the rename"

# renamed from node 2 (the standby's node); read through node 1's export.
# Refused (like a delete) while the export's session for k1 still counts
# as in use: it lingers about a second after the last NBD client.
wait_for 20 node_run 2 "$C" snapshot rename s k1 monday ||
  fail "rename: $(node_run 2 "$C" snapshot rename s k1 monday 2>&1)"
wait_for 10 export_listed "$sock1" monday || fail "node1 does not export monday"
wait_for 10 export_listed "$sock2" monday || fail "node2 does not export monday"
wait_for 10 bash -c "! nbdinfo --list 'nbd+unix://?socket=$sock1' | grep -q 'export=\"k1\"'" ||
  fail "node1 still exports k1"
wait_for 10 bash -c "! nbdinfo --list 'nbd+unix://?socket=$sock2' | grep -q 'export=\"k1\"'" ||
  fail "node2 still exports k1"
for s in "$sock1" "$sock2"; do
  got=$(peek "$s" monday) || fail "monday cannot be read on $s: $got"
  [ "$got" = k1data__ ] || fail "monday on $s reads '$got', not k1's content"
  nbdinfo "nbd+unix:///k1?socket=$s" >/dev/null 2>&1 && fail "k1 can still be opened on $s"
done
node_run 1 "$C" snapshot list s | grep -qw monday || fail "list does not show monday"
node_run 1 "$C" snapshot list s | grep -qw k1 && fail "list still shows k1"
echo "monday serves k1's content on both nodes; k1 is gone"

# refusals
refused "missing OLD" k1 tuesday
refused "NEW taken" monday k2
refused "NEW reserved" monday origin
refused "NEW invalid" monday 'bad/name'
# in use: an NBD client reading monday through node 1 keeps it
node_run 2 $py - "nbd+unix:///monday?socket=$sock1" "$C" <<'PY' || fail "rename of a snapshot in use"
import nbd, subprocess, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
assert h.pread(6, 1 << 20) == b"k1data"
r = subprocess.run([sys.argv[2], "snapshot", "rename", "s", "monday", "busy"],
                   capture_output=True, text=True)
print("refused (in use):", r.stderr.strip())
if r.returncode == 0 or r.stderr.count("\n") != 1:
    sys.exit("rename of a snapshot in use: rc %d, %r" % (r.returncode, r.stderr))
if h.pread(6, 1 << 20) != b"k1data":
    sys.exit("the client lost its snapshot")
PY
node_run 1 "$C" snapshot list s | grep -qw monday || fail "a refused rename changed monday"
[ "$(peek "$sock2" k2)" = k1data__ ] || fail "k2 changed"

node_kill_procs 1 TERM
node_kill_procs 2 TERM
sleep 1
no_sanitizer_reports
check_store
echo "PASS"
