#!/usr/bin/env bash
# tests/integration/make_install.sh - `make install` with PREFIX and
# DESTDIR puts the binary, man pages, udev rules, systemd units, bash
# completion and the example configuration in place, and every rule and
# unit names the installed binary (no /usr/sbin left when PREFIX differs).
. "$(dirname "$0")/../functions.sh"
d=$(mktemp -d /tmp/csnap-install.XXXXXX)
trap 'rm -rf "$d"' EXIT

make -s -C "$src" BUILD="$build" PREFIX=/opt/cs DESTDIR="$d" install >"$d.log" 2>&1 ||
  { cat "$d.log"; rm -f "$d.log"; fail "make install"; }
rm -f "$d.log"
for f in sbin/csnap share/man/man8/csnap.8 share/man/man5/csnap.conf.5 \
         lib/udev/rules.d/11-dm-csnap.rules lib/udev/rules.d/69-csnap-autoactivate.rules \
         lib/systemd/system/csnap-agent.service lib/systemd/system/csnap-export@.service \
         lib/systemd/system/csnap-activate@.service share/bash-completion/completions/csnap \
         share/doc/csnap/csnap.conf.example; do
  [ -s "$d/opt/cs/$f" ] || fail "missing $f"
done
[ -x "$d/opt/cs/sbin/csnap" ] || fail "binary not executable"
"$d/opt/cs/sbin/csnap" --version | grep -q '^csnap ' || fail "installed binary does not run"
if grep -rl '/usr/sbin/csnap' "$d/opt/cs/lib"; then fail "a rule or unit still names /usr/sbin/csnap"; fi
grep -q '/opt/cs/sbin/csnap splitname' "$d/opt/cs/lib/udev/rules.d/11-dm-csnap.rules" || fail "dm rule"
grep -q '/opt/cs/sbin/csnap scan --udev' "$d/opt/cs/lib/udev/rules.d/69-csnap-autoactivate.rules" || fail "autoactivation rule"
grep -q '^ExecStart=/opt/cs/sbin/csnap activate' "$d/opt/cs/lib/systemd/system/csnap-activate@.service" || fail "activate unit"
grep -q '^ExecStop=/opt/cs/sbin/csnap deactivate' "$d/opt/cs/lib/systemd/system/csnap-activate@.service" || fail "deactivate on stop"
grep -q '^.B csnap activate' "$d/opt/cs/share/man/man8/csnap.8" || fail "man page lacks activate"
bash -n "$d/opt/cs/share/bash-completion/completions/csnap" || fail "completion does not parse"
echo PASS
