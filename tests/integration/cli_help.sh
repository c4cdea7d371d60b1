#!/usr/bin/env bash
# tests/integration/cli_help.sh - the command line's one table (src/cli:
# every CLI_COMMAND) drives dispatch, help and bash completion.  Checks,
# for every command in `csnap --command-table`: `csnap NAME --help` and
# `csnap help NAME` print its usage on stdout and exit 0 (nothing on
# stderr), csnap(8) documents it, and contrib/csnap.bash-completion
# completes its words and options; for every group (first word of a
# multi-word name): `csnap GROUP --help` lists every subcommand and exits
# 0, `csnap GROUP` alone (when GROUP is not itself a command) lists them
# and exits 2, an unknown subcommand is refused naming it (exit 2).
# san: yes
. "$(dirname "$0")/../functions.sh"

table=$("$C" --command-table) || fail "csnap --command-table"
[ "$(echo "$table" | wc -l)" -ge 10 ] || fail "command table too short: $table"
out=$("$C" --help) || fail "csnap --help"
W=$(mktemp -d /tmp/csnap-cli.XXXXXX)
trap 'rm -rf "$W"' EXIT
n=0
while IFS=$'\t' read -r name opts; do
  # shellcheck disable=SC2086
  for form in "$name --help" "$name -h" "help $name"; do
    "$C" $form >"$W/out" 2>"$W/err"; rc=$?
    [ $rc -eq 0 ] || fail "csnap $form: exit $rc: $(cat "$W/err")"
    [ ! -s "$W/err" ] || fail "csnap $form: wrote to stderr: $(cat "$W/err")"
    head -1 "$W/out" | grep -Eq "^usage: csnap $name( |\$)" || fail "csnap $form: $(head -2 "$W/out")"
  done
  echo "$out" | grep -Eq "^  $name( |\$)" || fail "csnap --help does not list '$name'"
  # (one entry may name two: "csnap lease join | leave")
  re="^\.B csnap $name\b"; [ "$name" = "${name#* }" ] || re="^\.B csnap ${name%% *}\b.*\b${name##* }\b"
  grep -Eq "$re" "$src/man/csnap.8" ||
    fail "csnap(8) does not document 'csnap $name'"
  n=$((n + 1))
done <<<"$table"
echo "ok  $n commands answer --help, -h and help NAME; all in csnap --help and csnap(8)"

groups=$(echo "$table" | cut -f1 | awk 'NF > 1 { print $1 }' | sort -u)
for g in $groups; do
  subs=$(echo "$table" | cut -f1 | awk -v g="$g" '$1 == g && NF > 1 { print $2 }')
  "$C" "$g" --help >"$W/out" 2>"$W/err" || fail "csnap $g --help: exit $?: $(cat "$W/err")"
  for s in $subs; do grep -Eq "^  $s( |\$)" "$W/out" || fail "csnap $g --help does not list $s: $(cat "$W/out")"; done
  if ! echo "$table" | cut -f1 | grep -qx "$g"; then
    "$C" "$g" >"$W/out" 2>"$W/err"; rc=$?
    [ $rc -eq 2 ] || fail "csnap $g alone: exit $rc (want 2)"
    for s in $subs; do grep -Eq "^  $s( |\$)" "$W/err" || fail "csnap $g alone does not list $s"; done
  fi
  "$C" "$g" nosuchsub >"$W/out" 2>"$W/err"; rc=$?
  [ $rc -eq 2 ] || [ "$g" = agent ] || fail "csnap $g nosuchsub: exit $rc (want 2)"
  [ "$g" = agent ] || grep -q "unknown $g subcommand 'nosuchsub'" "$W/err" || fail "csnap $g nosuchsub: $(cat "$W/err")"
  echo "ok  group $g: $(echo $subs)"
done
"$C" nosuchcmd 2>"$W/err"; [ $? -eq 2 ] && grep -q "unknown command 'nosuchcmd'" "$W/err" || fail "unknown command: $(cat "$W/err")"

# Completion, from the same table.
# shellcheck source=../../contrib/csnap.bash-completion
. "$src/contrib/csnap.bash-completion"
comp() { COMP_WORDS=("$C" "$@"); COMP_CWORD=$#; COMPREPLY=(); _csnap; echo "${COMPREPLY[*]}"; }
firsts=$(echo "$table" | cut -f1 | awk '{ print $1 }' | sort -u | tr '\n' ' ')
[ "$(comp "" | tr ' ' '\n' | sort -u | tr '\n' ' ')" = "$firsts" ] || fail "completion of the first word: $(comp "")"
for g in $groups; do
  want=$(echo "$table" | cut -f1 | awk -v g="$g" '$1 == g && NF > 1 { print $2 }' | sort | tr '\n' ' ')
  got=$(comp "$g" "" | tr ' ' '\n' | sort | tr '\n' ' ')
  [ "$got" = "$want" ] || fail "completion of 'csnap $g ': [$got], want [$want]"
done
while IFS=$'\t' read -r name opts; do
  read -r -a nw <<<"$name"
  got=" $(comp "${nw[@]}" --) "
  for o in $opts; do [[ $got == *" $o "* ]] || fail "completion of 'csnap $name --' lacks $o: [$got]"; done
done <<<"$table"
[ "$(comp mkstore --ch)" = "--chunk-size" ] || fail "completion of 'csnap mkstore --ch': $(comp mkstore --ch)"
echo "ok  bash completion follows the table"
echo PASS
