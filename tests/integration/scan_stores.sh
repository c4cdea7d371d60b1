#!/usr/bin/env bash
# tests/integration/scan_stores.sh - `csnap scan` and LABEL= on real loop
# devices: every store is listed once with its uuid, label (mkstore
# --name), csnap.conf name (by path, UUID= and LABEL=), origin identity and
# size, also when reached under several names (a symlink in $CSNAP_SCAN);
# devices that are not stores and a store whose superblocks are both wiped
# are not listed; --json parses; LABEL= finds the one store of that name
# and refuses a name two stores carry; bad --name values are usage errors.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires losetup
requires_root

w=$(mktemp -d /var/tmp/csnap-scan.XXXXXX)
# loop devices are found again by their backing files ($(lo ...) runs in
# a subshell, so it cannot record them)
cleanup() {
  for f in "$w"/*; do
    for l in $(losetup -j "$f" 2>/dev/null | cut -d: -f1); do losetup -d "$l"; done
  done
  rm -rf "$w"
}
trap cleanup EXIT
lo() { losetup -f --show "$1" || fail "losetup $1"; }
for f in s1 o1 s2 o2 s3 o3 s4 o4 plain wiped wo; do truncate -s 48M "$w/$f"; done
S1=$(lo "$w/s1") O1=$(lo "$w/o1") S2=$(lo "$w/s2") O2=$(lo "$w/o2") P=$(lo "$w/plain")
W=$(lo "$w/wiped") WO=$(lo "$w/wo") S3=$(lo "$w/s3") O3=$(lo "$w/o3")
"$C" mkstore "$S1" "$O1" >/dev/null || fail "mkstore 1"
"$C" mkstore --chunk-size 16K "$S2" "$O2" >/dev/null || fail "mkstore 2"
"$C" mkstore "$W" "$WO" >/dev/null || fail "mkstore 3"
"$C" mkstore --name gamma "$S3" "$O3" | grep -q "name gamma" || fail "mkstore --name"
"$C" dump "$S3" | grep -Eq "label +gamma" || fail "dump does not show the label"
"$C" dump "$S1" | grep -Eq "label +\(none\)" || fail "dump of an unnamed store"
for bad in "" ".x" "-x" "a/b" "$(printf 'n%.0s' $(seq 32))"; do
  "$C" mkstore --name "$bad" "$w/s4" "$w/o4" >/dev/null 2>&1; rc=$?
  [ $rc -eq 2 ] || fail "mkstore --name '$bad': exit $rc, expected 2"
done
dd if=/dev/zero of="$W" bs=64K count=2 oflag=direct conv=notrunc 2>/dev/null   # both superblock copies
head -c 1M /dev/urandom | dd of="$P" oflag=direct 2>/dev/null
u1=$("$C" dump "$S1" | awk '/uuid/ {print $NF; exit}')
u2=$("$C" dump "$S2" | awk '/uuid/ {print $NF; exit}')
[ -n "$u1" ] && [ -n "$u2" ] || fail "no uuids from dump"
cat >"$w/c.conf" <<CONF
[global]
host_id = 1
[store alpha]
device = $S1
origin = $O1
[store beta]
device = UUID=$u2
origin = $O2
[store gam]
device = LABEL=gamma
origin = $O3
CONF
mkdir "$w/links" && ln -s "$S1" "$w/links/alias-of-s1"
export CSNAP_SCAN=$w/links

"$C" scan -c "$w/c.conf" >"$w/out" || fail "scan exit $?"
cat "$w/out"
[ "$(grep -c "$u1" "$w/out")" -eq 1 ] || fail "store 1 not listed exactly once (alias folded)"
[ "$(grep -c "$u2" "$w/out")" -eq 1 ] || fail "store 2 not listed exactly once"
grep -E "^$S1 +$u1 +- +alpha " "$w/out" >/dev/null || fail "store 1: device, uuid or name (by path) wrong"
grep -E "^$S2 +$u2 +- +beta " "$w/out" >/dev/null || fail "store 2: name by UUID= wrong"
grep -E "^$S3 +[-0-9a-f]{36} +gamma +gam " "$w/out" >/dev/null || fail "store 3: label or name by LABEL= wrong"
grep -E "$u1 .* 48.0 MiB$" "$w/out" >/dev/null || fail "store 1 size"
! grep -E "^($P|$W|$O1|$O2) " "$w/out" || fail "a device that is not a store was listed"

"$C" scan -c "$w/c.conf" --json >"$w/json" || fail "scan --json"
python3 - "$w/json" "$u1" "$u2" "$S1" <<'PY' || fail "json"
import json, sys
l = json.load(open(sys.argv[1]))
by = {e["uuid"]: e for e in l}
assert by[sys.argv[2]]["name"] == "alpha" and by[sys.argv[2]]["device"] == sys.argv[4], by
assert by[sys.argv[3]]["name"] == "beta" and by[sys.argv[3]]["chunk_size"] == 16384, by
assert by[sys.argv[2]]["size"] == 48 << 20 and by[sys.argv[2]]["origin"], by
PY
# without a config: names are "-"
CSNAP_CONF=$w/none "$C" scan | grep -E "^$S1 +$u1 +- +- " >/dev/null || fail "no config: name should be -"

# LABEL= is resolved like UUID= (the export resolves its store at start)
timeout 5 "$C" -v export -c "$w/c.conf" --socket "$w/e.sock" gam >"$w/exp.log" 2>&1
grep -q "store $S3" "$w/exp.log" || fail "LABEL=gamma did not resolve to $S3: $(head -3 "$w/exp.log")"
sed -i 's/^device = LABEL=gamma/device = LABEL=nosuch/' "$w/c.conf"
"$C" export -c "$w/c.conf" --socket "$w/e.sock" gam >"$w/exp.log" 2>&1
grep -q "no csnap store named LABEL=nosuch" "$w/exp.log" || fail "missing label: $(cat "$w/exp.log")"
S4=$(lo "$w/s4") O4=$(lo "$w/o4")
"$C" mkstore --name gamma "$S4" "$O4" >/dev/null || fail "mkstore 4"
sed -i 's/^device = LABEL=nosuch/device = LABEL=gamma/' "$w/c.conf"
"$C" export -c "$w/c.conf" --socket "$w/e.sock" gam >"$w/exp.log" 2>&1
grep -q "2 stores are named LABEL=gamma" "$w/exp.log" || fail "duplicate label not refused: $(cat "$w/exp.log")"
"$C" scan extra >/dev/null 2>&1; [ $? -eq 2 ] || fail "scan with an argument: not a usage error"
echo PASS
