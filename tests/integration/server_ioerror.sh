#!/usr/bin/env bash
# A copy-out that fails (the origin shrinks under the server, so reading the
# chunk fails): the server discards the open transaction, fails that origin
# write with EIO (the client must not write), stays up, and serves the same
# write once the origin is readable again; `csnap check` is clean.
# san: yes
. "$(dirname "$0")/../functions.sh"

cluster_start 1 64M
origin_fill A 64M
store_init

start_master 1 --grace-ms 0
cs 1 snapshot create s s1 >/dev/null || fail "create s1"
pc 1 owrite 3 1 0x42 >/dev/null || fail "first write"

truncate -s 32M "$CLUSTER_ORIGIN"          # chunks 512.. can no longer be read
out=$(pc 1 owrite 600 2 0x43 2>&1) && fail "origin write succeeded although its copy-out failed"
echo "$out" | grep -q 'copy-out to the snapshot store failed' || fail "unexpected error: $out"
wait_log 1 server 'discarding the open transaction' 10 || fail "abort not logged"
truncate -s 64M "$CLUSTER_ORIGIN"          # readable again (zeros now)

pc 1 owrite 600 2 0x43 >/dev/null || fail "write after the origin came back"
pc 1 sread s1 600 2 | grep -c ' 0x00 at store$' | grep -q '^2$' || fail "s1 chunks 600-601 after retry: $(pc 1 sread s1 600 2)"
pc 1 sread s1 3 1 | grep -q '^chunk 3 0x41 at store$' || fail "s1 chunk 3 lost in the abort"
pc 1 owrite 4 1 0x44 >/dev/null || fail "server unusable after the abort"
pc 1 sread s1 4 1 | grep -q '^chunk 4 0x41 at store$' || fail "s1 chunk 4"

node_kill_procs 1 TERM
wait_log 1 server 'orderly hand-over done' 30 || fail "no orderly stop"
no_sanitizer_reports
check_store
echo "PASS"
