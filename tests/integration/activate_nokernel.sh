#!/usr/bin/env bash
# tests/integration/activate_nokernel.sh - `csnap activate`/`deactivate` on
# a kernel without nbd or device-mapper (the build machine's): they say
# exactly which part is missing and exit 1, before touching the config or
# the store; usage errors exit 2.  Activation itself is tested for real in
# the VM of `make check-kernel` (tests/kernel/).
# san: yes
. "$(dirname "$0")/../functions.sh"

have_dm=0 have_nbd=0
grep -q ' device-mapper$' /proc/misc 2>/dev/null && have_dm=1
[ -d /sys/module/nbd ] && have_nbd=1
# loading the modules is part of what activate tries, so only a kernel
# that cannot have them tells us anything here
if [ $have_dm = 1 ] && [ $have_nbd = 1 ]; then
  echo "SKIP: this kernel has nbd and device-mapper (make check-kernel tests activation)"; exit 77
fi

w=$(mktemp -d /tmp/activate-nok.XXXXXX)
trap 'rm -rf "$w"' EXIT
cat >"$w/c.conf" <<CONF
[global]
host_id = 1
[store s]
device = $w/missing-store
origin = $w/missing-origin
CONF

check() {   # check WHAT: the last run named what is missing, and only that
  local out=$1
  grep -q "cannot activate volumes" "$out" || fail "$2: no clear message: $(cat "$out")"
  if [ $(grep -c . "$out") -ne 1 ]; then fail "$2: more than one line: $(cat "$out")"; fi
  if [ $have_nbd = 0 ]; then grep -q 'nbd driver missing' "$out" || fail "$2: nbd not named"
  else ! grep -q 'nbd driver missing' "$out" || fail "$2: nbd named but present"; fi
  if [ $have_dm = 0 ]; then grep -q 'device-mapper missing' "$out" || fail "$2: dm not named"
  else ! grep -q 'device-mapper missing' "$out" || fail "$2: dm named but present"; fi
}

for args in "activate -c $w/c.conf s" "activate -c $w/c.conf s origin monday" \
            "activate -c $w/c.conf --all" "deactivate -c $w/c.conf s" "deactivate --all" \
            "deactivate --force -c $w/c.conf s origin"; do
  # shellcheck disable=SC2086
  "$C" $args >"$w/out" 2>"$w/err"; rc=$?
  [ $rc -eq 1 ] || fail "csnap $args: exit $rc, expected 1"
  [ ! -s "$w/out" ] || fail "csnap $args: printed on stdout: $(cat "$w/out")"
  check "$w/err" "csnap $args"
  echo "ok: csnap $args: $(cat "$w/err")"
done
# nothing was created on the way
[ ! -e /dev/csnap ] || fail "/dev/csnap created"
[ ! -e "$w/missing-store" ] || fail "store created"

# usage errors come first, exit 2
"$C" activate >/dev/null 2>&1; [ $? -eq 2 ] || fail "activate without STORE: not exit 2"
"$C" activate --all s >/dev/null 2>&1; [ $? -eq 2 ] || fail "activate --all STORE: not exit 2"
"$C" deactivate --bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "deactivate --bogus: not exit 2"
"$C" activate --wait x s >/dev/null 2>&1; [ $? -eq 2 ] || fail "--wait x: not exit 2"
echo "PASS"
