#!/usr/bin/env bash
# tests/integration/kill_soak_short.sh - the short run of tests/long/kill_soak.sh
# in `make check`: 10 kill -9 of the master under the verified 3-node
# workload with snapshot creates and deletes, export and agent kills; 0
# wrong blocks, longest client stall within STALL_MAX.  `make check-long`
# runs the same script with KILLS=200 and STALL_MAX=2.  Here STALL_MAX is
# 3 s: a snapshot created within 2.5 s of a takeover raises its barrier
# (origin writes wait) before the new master waits out the previous
# master's grants (src/server/admin.c, admin_poll), which stalls writers
# up to ~2.5 s; docs/RELIABILITY.md "Fault soak".
# san: yes
KILLS=${KILLS:-10} STALL_MAX=${STALL_MAX:-3} exec bash "$(dirname "$0")/../long/kill_soak.sh"
