#!/usr/bin/env bash
# tests/integration/scan_stores.sh - `csnap scan` on real loop devices:
# every store is listed once with its uuid, csnap.conf name (by path and
# by UUID=), origin identity and size, also when reached under several
# names (a symlink in $CSNAP_SCAN); devices that are not stores and a
# store whose superblocks are both wiped are not listed; --json parses.
# san: yes
set -u
src=${CSNAP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CSNAP_BUILD:-$src/build}
C=$build/csnap
fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: loop devices need root"; exit 77; }

w=$(mktemp -d /var/tmp/csnap-scan.XXXXXX)
loops=()
cleanup() { for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done; rm -rf "$w"; }
trap cleanup EXIT
lo() { local l; l=$(losetup -f --show "$1") || fail "losetup $1"; loops+=("$l"); echo "$l"; }
for f in s1 o1 s2 o2 plain wiped wo; do truncate -s 48M "$w/$f"; done
S1=$(lo "$w/s1") O1=$(lo "$w/o1") S2=$(lo "$w/s2") O2=$(lo "$w/o2") P=$(lo "$w/plain")
W=$(lo "$w/wiped") WO=$(lo "$w/wo")
"$C" mkstore "$S1" "$O1" >/dev/null || fail "mkstore 1"
"$C" mkstore --chunk-size 16K "$S2" "$O2" >/dev/null || fail "mkstore 2"
"$C" mkstore "$W" "$WO" >/dev/null || fail "mkstore 3"
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
CONF
mkdir "$w/links" && ln -s "$S1" "$w/links/alias-of-s1"
export CSNAP_SCAN=$w/links

"$C" scan -c "$w/c.conf" >"$w/out" || fail "scan exit $?"
cat "$w/out"
[ "$(grep -c "$u1" "$w/out")" -eq 1 ] || fail "store 1 not listed exactly once (alias folded)"
[ "$(grep -c "$u2" "$w/out")" -eq 1 ] || fail "store 2 not listed exactly once"
grep -E "^$S1 +$u1 +alpha " "$w/out" >/dev/null || fail "store 1: device, uuid or name (by path) wrong"
grep -E "^$S2 +$u2 +beta " "$w/out" >/dev/null || fail "store 2: name by UUID= wrong"
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
CSNAP_CONF=$w/none "$C" scan | grep -E "^$S1 +$u1 +- " >/dev/null || fail "no config: name should be -"
"$C" scan extra >/dev/null 2>&1; [ $? -eq 2 ] || fail "scan with an argument: not a usage error"
echo PASS
