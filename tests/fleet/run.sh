#!/bin/bash
# The fleet simulator's runs (docs/coordinator.md):
#   tests/fleet/run.sh          1000 seeds of 20 hosts, then 3 seeds of 2000 hosts
#   tests/fleet/run.sh bench    one seed of 10000 hosts: the cost of a coord_tick round
# FLEET_SEED picks the first seed (default 1), FLEET_JOBS the processes
# (default: the number of CPUs), SIM the binary (default build/fleet/sim).
# Each run's full output is kept in build/fleet/; a failing seed prints the
# command that replays it.
set -u
cd "$(dirname "$0")/../.."
sim=${SIM:-build/fleet/sim}
seed=${FLEET_SEED:-1}
jobs=${FLEET_JOBS:-$(nproc)}
out=build/fleet
mkdir -p "$out"
[ -x "$sim" ] || { echo "fleet: $sim is missing (make $sim)"; exit 1; }

# Runs the simulator with "$@", keeps the output in $out/$name.log and
# prints the summary and any failure.
run() {
        local name=$1 rc
        shift
        echo "== fleet $name: $sim $*"
        "$sim" "$@" >"$out/$name.log" 2>&1
        rc=$?
        grep -E '^(summary|failing seeds|FAIL|  replay|coord_tick|  )' "$out/$name.log" | head -n 60
        [ $rc -eq 0 ] || echo "fleet $name: FAILED (rc $rc), see $out/$name.log"
        return $rc
}

if [ "${1:-}" = bench ]; then
        run bench --seed "$seed" --hosts 10000 --profile
        exit
fi

rc=0
# Small fleets, many seeds: 4 hosts per service and 2 per rack, budgets of
# one each, so nearly every grant is contested; a 300 s lease TTL so that
# expiries and quarantines happen within a short run.
run small --seed "$seed" --seeds 1000 --hosts 20 --rack-size 2 --ttl 300 --jobs "$jobs" || rc=1
# Big fleets with slipwayd's defaults (check-ins every 30 s, TTL 900 s).
run big --seed "$seed" --seeds 3 --hosts 2000 --jobs "$jobs" || rc=1
exit $rc
