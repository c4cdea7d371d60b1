#!/usr/bin/env bash
# tests/integration/export_meta.sh - structured replies, base:allocation
# and csnap:changed:<snapshot> on a real csnap export (real master, real
# sanlock), read by clients nobody here wrote.
#
# Checks: nbdinfo --map (base:allocation: all data); nbdinfo
# --map=csnap:changed:SNAP on the origin and on a snapshot export equals
# what `csnap snapshot changed` lists (byte ranges, the partial last chunk
# clipped, more than one page of the master's answer); an unknown snapshot is refused at negotiation with its name in
# the export's log; qemu-img map and nbdcopy (block status) copy the
# origin and a snapshot exactly; an incremental backup pulled with libnbd
# through csnap:changed (the full backup of monday plus only the changed
# extents) equals the origin, and copies exactly the bytes `snapshot
# changed` counts; hostile meta-context negotiation and the structured
# chunks (export_meta.py hostile); `csnap check` is clean.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires nbdinfo nbdcopy qemu-img
requires_libnbd
here=$src/tests/integration

# Small chunks so that the changes since monday are more than one page
# of the master's answer to a block status (512 ranges).
CS=8192
OSIZE=$((1600 * CS + 4096))		# the last chunk is partial
cluster_start 1 64M
origin_fill random "$OSIZE"
store_init --chunk-size 8K
start_master 1 --grace-ms 0
d=$CLUSTER_DIR
sock=$(export_sock 1)
start_export 1 "$sock" s
uo="nbd+unix:///origin?socket=$sock"

# write OFFSET LENGTH BYTE...: pwrite through the origin export
write() {
  $py - "$uo" "$@" <<'PY' || fail "write $*"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
a = [int(x, 0) for x in sys.argv[2:]]
for i in range(0, len(a), 3):
    h.pwrite(bytes([a[i + 2]]) * a[i + 1], a[i])
h.flush(); h.shutdown()
PY
}
# changed_cli A [B]: "offset length" lines from `csnap snapshot changed --json`
changed_cli() {
  cs 1 snapshot changed s "$@" --json |
    $py -c 'import json, sys; [print(r["offset"], r["length"]) for r in json.load(sys.stdin)["ranges"]]'
}
# changed_map URI CONTEXT: "offset length" of the changed extents nbdinfo
# --map shows, adjacent ones merged; the extents must tile the export
changed_map() {
  nbdinfo --map="$2" "$1" >"$d/map.out" 2>"$d/map.err" || fail "nbdinfo --map=$2 $1: $(cat "$d/map.err")"
  awk -v size="$OSIZE" '
    $1 != pos { print "gap at " $1 " (expected " pos ")"; exit 1 }
    { pos = $1 + $2 }
    $3 == 1 && s >= 0 && s + n == $1 { n += $2; next }
    $3 == 1 { if (s >= 0) print s, n; s = $1; n = $2; next }
    { if (s >= 0) print s, n; s = -1 }
    BEGIN { s = -1; pos = 0 }
    END { if (s >= 0) print s, n; if (pos < size) print "short map: " pos }' "$d/map.out"
}
same_changed() {	# WHAT URI CONTEXT CLI_ARGS...
  local what=$1 uri=$2 ctx=$3 want got; shift 3
  want=$(changed_cli "$@") || fail "$what: snapshot changed $*"
  got=$(changed_map "$uri" "$ctx")
  [ -n "$want" ] || fail "$what: nothing changed: the test writes nothing?"
  [ "$got" = "$want" ] || fail "$what: nbdinfo --map=$ctx shows [$got], snapshot changed $* [$want]"
  echo "ok  $what: $(echo "$want" | wc -l) changed ranges agree"
}

echo "== snapshots and writes between them"
cs 1 snapshot create s monday >/dev/null || fail "create monday"
cp "$CLUSTER_ORIGIN" "$d/monday.full"		# the full backup at monday
write 0 4096 1  $((10 * CS + 100)) 200000 2  $((1599 * CS)) $((CS + 4096)) 3
cs 1 snapshot create s tuesday >/dev/null || fail "create tuesday"
wait_exported "$sock" tuesday
cp "$CLUSTER_ORIGIN" "$d/tuesday.img"
# every other chunk of 200..1399: 600 ranges
write $((40 * CS)) $((3 * CS)) 4  $((10 * CS)) 10 5  $(for ((c = 200; c < 1400; c += 2)); do echo $((c * CS + 100)) 512 6; done)

echo "== base:allocation: data everywhere"
nbdinfo --map "$uo" >"$d/alloc.out" || fail "nbdinfo --map"
[ "$(awk '{print $1, $2, $3}' "$d/alloc.out")" = "0 $OSIZE 0" ] || fail "base:allocation map: $(cat "$d/alloc.out")"
nbdinfo --map "nbd+unix:///monday?socket=$sock" | awk '{print $1, $2, $3}' | grep -qx "0 $OSIZE 0" ||
  fail "base:allocation map of monday"
qemu-img map --output=json "$uo" >"$d/qmap.out" || fail "qemu-img map"
$py - "$d/qmap.out" "$OSIZE" <<'PY' || fail "qemu-img map: $(cat "$d/qmap.out")"
import json, sys
m, size = json.load(open(sys.argv[1])), int(sys.argv[2])
assert m[0]["start"] == 0 and m[0]["length"] == size and m[0]["data"] and not m[0]["zero"], m
PY
echo "ok  nbdinfo --map and qemu-img map: one data extent"

echo "== csnap:changed agrees with csnap snapshot changed"
same_changed "origin since monday" "$uo" csnap:changed:monday monday
same_changed "origin since tuesday" "$uo" csnap:changed:tuesday tuesday
[ "$(changed_cli tuesday | wc -l)" -gt 512 ] || fail "512 changed ranges or fewer: one page only"
same_changed "tuesday since monday" "nbd+unix:///tuesday?socket=$sock" csnap:changed:monday monday tuesday
out=$(nbdinfo --map=csnap:changed:tuesday "nbd+unix:///tuesday?socket=$sock") || fail "tuesday since tuesday"
[ "$(echo "$out" | awk '{print $1, $2, $3}')" = "0 $OSIZE 0" ] || fail "tuesday since tuesday: $out"
echo "ok  a snapshot against itself: nothing changed"

out=$(nbdinfo --map=csnap:changed:nosuch "$uo" 2>&1) && fail "unknown snapshot accepted: $out"
wait_log 1 export 'meta context csnap:changed:nosuch: no snapshot named "nosuch"' 10 ||
  fail "unknown snapshot: no reason in the export log"
echo "ok  csnap:changed:nosuch refused at negotiation"

echo "== nbdcopy and qemu-img convert (block status) copy exactly"
nbdcopy "$uo" "$d/copy.img" || fail "nbdcopy origin"
cmp "$d/copy.img" "$CLUSTER_ORIGIN" || fail "nbdcopy of the origin differs"
nbdcopy "nbd+unix:///tuesday?socket=$sock" "$d/tue.img" || fail "nbdcopy tuesday"
cmp "$d/tue.img" "$d/tuesday.img" || fail "nbdcopy of tuesday differs"
qemu-img convert -f raw -O raw "nbd+unix:///monday?socket=$sock" "$d/mon.img" || fail "qemu-img convert"
cmp "$d/mon.img" "$d/monday.full" || fail "qemu-img convert of monday differs"
echo "ok  copies equal their sources"

echo "== incremental backup through csnap:changed:monday"
out=$($py "$here/export_meta.py" backup "$uo" csnap:changed:monday "$d/monday.full" "$d/backup.img") ||
  fail "backup: $out"
cmp "$d/backup.img" "$CLUSTER_ORIGIN" || fail "monday's full backup plus the changed extents is not the origin"
want=$(cs 1 snapshot changed s monday --json | $py -c 'import json, sys; print(json.load(sys.stdin)["bytes"])')
got=$(echo "$out" | awk '$1 == "changed" {print $2}')
[ "$got" = "$want" ] || fail "backup copied $got bytes, snapshot changed counts $want"
echo "ok  incremental backup equals the origin, $got of $OSIZE bytes copied"

echo "== hostile meta-context clients and structured chunks"
$py "$here/export_meta.py" hostile "$sock" monday tuesday >"$d/hostile.out" 2>&1 ||
  fail "export_meta.py hostile: $(grep -v "^ok:" "$d/hostile.out")"
grep -c '^ok:' "$d/hostile.out" | sed 's/$/ hostile-client checks passed/'

echo "== a snapshot deleted under a csnap:changed connection"
cs 1 snapshot create s wednesday >/dev/null || fail "create wednesday"
wait_exported "$sock" wednesday
write $((30 * CS)) 100 7
out=$(node_run 1 $py "$here/export_meta.py" deleted "$uo" wednesday "$C" s 2>&1) || fail "deleted: $out"
echo "$out" | sed 's/^/    /'
wait_log 1 export 'block status of origin since wednesday failed: .*no such snapshot' 10 ||
  fail "no reason in the export log for the failed block status"
wait_for 20 sh -c "! nbdinfo --map=csnap:changed:wednesday '$uo' >/dev/null 2>&1" ||
  fail "csnap:changed:wednesday still accepted after the delete"
echo "ok  block status fails after the delete, the context is then refused"

check_store
no_sanitizer_reports
echo PASS
