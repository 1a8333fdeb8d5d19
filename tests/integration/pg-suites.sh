#!/bin/bash
# The suites that matter most for a slipwayd on PostgreSQL, run again with
# their state there (SLIPWAY_TEST_STORE=postgresql, tests/lib.sh): the API
# and its errors (server.sh), token roles (roles.sh), rollouts with real
# agents (rollout.sh), FleetLock and leases under load (fleetlock.sh,
# lease-load.sh), an agent moving between two instances (failover.sh) and
# webhooks sent by the leader of two (webhooks.sh). Each suite is one case
# here, run two at a time; its own output is in $T_DIR/NAME.log, printed
# when it fails. SLIPWAY_PG_SUITES names others (ctl.sh ctl-rollout.sh
# agent.sh push.sh files.sh page.sh pass as well).
. "$(dirname "$0")/../lib.sh"
t_begin pg-suites

D=$T_DIR
SUITES=${SLIPWAY_PG_SUITES:-rollout server failover fleetlock lease-load roles webhooks}
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

declare -A RC SECS
running=()
# run_suite NAME: starts tests/integration/NAME.sh on PostgreSQL in the
# background; its exit status and time land in $D/NAME.rc.
run_suite() {
        (
                t0=$SECONDS
                SLIPWAY_TEST_STORE=postgresql "$TOP/tests/integration/$1.sh" >"$D/$1.log" 2>&1
                echo "$? $((SECONDS - t0))" >"$D/$1.rc"
        ) &
        PIDS+=($!)
}
# At most two at once: the slowest (rollout.sh) starts first.
set -- $SUITES
while [ $# -gt 0 ] || [ ${#running[@]} -gt 0 ]; do
        left=()
        for s in "${running[@]}"; do [ -e "$D/$s.rc" ] || left+=("$s"); done
        running=("${left[@]}")
        if [ $# -gt 0 ] && [ ${#running[@]} -lt 2 ]; then
                run_suite "$1"
                running+=("$1")
                shift
                continue
        fi
        sleep 0.5
done

for s in $SUITES; do
        t_case "$s.sh on PostgreSQL"
        read -r rc secs <"$D/$s.rc" 2>/dev/null || { rc=none; secs=?; }
        summary=$(grep -E "^$s: [0-9]+ passed" "$D/$s.log" | tail -n 1)
        if [ "$rc" = 0 ] && [[ $summary == *" 0 failed"* ]]; then
                t_ok "$secs s, ${summary#*: }"
        else
                t_fail "exit $rc after $secs s: ${summary:-no summary}"
                grep -E '^(FAIL|skip) ' "$D/$s.log" | head -n 20
        fi
done
t_end
