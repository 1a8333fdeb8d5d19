#!/bin/bash
# Runs the shell suites given as arguments (tests/integration/*.sh, or
# tests/e2e/*.sh), JOBS at a time, and fails when one of them fails.
#
#   tests/run-integration.sh [-j JOBS] SUITE.sh...     (JOBS: default 2)
#
# Most suites wait on their servers, agents and VMs more than they use the
# CPU, and each keeps to its own directory, namespaces, PostgreSQL cluster
# and ports (tests/lib.sh, t_port), so several can run side by side. Each
# suite's output goes to a file and is printed whole when it ends, followed
# by one line of the runner's ("run-integration: NAME ok in S s"); the end
# names the suites that failed.
#
# The longest start first, so that the last one to end is a short one. A
# suite's expected time is the one it took in the last run here
# (build/test-durations, or the file SLIPWAY_TEST_DURATIONS names, written
# at the end of every run), else the one in the file durations beside the
# first suite (tests/integration/durations), else 60 s. That file also
# marks the suites that take more than one of the JOBS slots: "alone" (all
# of them, for a suite that times itself closely or loads the CPU) or a
# number (pg-suites runs two suites at once itself). Such a suite starts
# before the others.
set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-2}
if [ "${1:-}" = -j ]; then
        JOBS=$2
        shift 2
fi
if ! [[ $JOBS =~ ^[1-9][0-9]*$ ]]; then
        echo "run-integration: JOBS must be a number of suites at once (1 or more), not '$JOBS'" >&2
        exit 2
fi
if [ $# = 0 ]; then
        echo "usage: tests/run-integration.sh [-j JOBS] SUITE.sh..." >&2
        exit 2
fi
LIST=$(dirname "$1")/durations
LAST=${SLIPWAY_TEST_DURATIONS:-$TOP/build/test-durations}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/slipway-integration.XXXXXX") || exit 1

declare -A path=() expect=() slots=() first=() took=() suite_of=() began=()
for p in "$@"; do
        n=$(basename "$p" .sh)
        path[$n]=$p
        expect[$n]=60
        slots[$n]=1
        first[$n]=0
done
# The committed list first, then the last run's times over it.
for f in "$LIST" "$LAST"; do
        [ -f "$f" ] || continue
        while read -r n secs mark; do
                [ -n "$n" ] && [[ $n != "#"* ]] && [ -n "${path[$n]:-}" ] || continue
                [[ $secs =~ ^[0-9]+$ ]] && expect[$n]=$secs
                case ${mark:-} in
                alone) slots[$n]=$JOBS first[$n]=1 ;;
                [1-9]*) slots[$n]=$mark first[$n]=1 ;;
                esac
        done <"$f"
done
for n in "${!slots[@]}"; do
        [ "${slots[$n]}" -le "$JOBS" ] || slots[$n]=$JOBS
done

# The order: the suites that take more than one slot, then the rest; the
# longest first within each.
mapfile -t queue < <(for n in "${!path[@]}"; do
        echo "${first[$n]} ${expect[$n]} $n"
done | sort -k1,1nr -k2,2nr -k3,3 | cut -d' ' -f3)

free=$JOBS failed=() t0=$SECONDS

# stop_all SIGNAL: sends SIGNAL to the suites still running (each stops
# what it started, tests/lib.sh), waits for them and prints what they said.
stop_all() {
        local p
        trap - INT TERM
        for p in "${!suite_of[@]}"; do kill -TERM "$p" 2>/dev/null; done
        for p in "${!suite_of[@]}"; do
                wait "$p" 2>/dev/null
                cat "$LOGS/${suite_of[$p]}.log"
                echo "run-integration: ${suite_of[$p]} stopped by SIG$1"
        done
        rm -rf "$LOGS"
        [ "$1" = INT ] && exit 130
        exit 143
}
trap 'stop_all INT' INT
trap 'stop_all TERM' TERM

# start NAME: runs the suite in the background, its output in its log.
start() {
        "${path[$1]}" </dev/null >"$LOGS/$1.log" 2>&1 &
        suite_of[$!]=$1
        began[$1]=$SECONDS
        free=$((free - slots[$1]))
}

echo "run-integration: ${#queue[@]} suites, $JOBS at a time"
while [ ${#queue[@]} -gt 0 ] || [ ${#suite_of[@]} -gt 0 ]; do
        # Start the first suites in the queue that fit in the free slots.
        rest=()
        for n in "${queue[@]}"; do
                if [ "${slots[$n]}" -le "$free" ]; then start "$n"; else rest+=("$n"); fi
        done
        queue=("${rest[@]}")
        # Then wait for one to end (bash keeps the status of a child that
        # ended until `wait PID` asks for it).
        ended=""
        while [ -z "$ended" ]; do
                for p in "${!suite_of[@]}"; do
                        kill -0 "$p" 2>/dev/null || { ended=$p; break; }
                done
                [ -n "$ended" ] || sleep 0.2
        done
        wait "$ended"
        rc=$?
        n=${suite_of[$ended]}
        unset "suite_of[$ended]"
        free=$((free + slots[$n]))
        took[$n]=$((SECONDS - began[$n]))
        cat "$LOGS/$n.log"
        if [ $rc = 0 ]; then
                echo "run-integration: $n ok in ${took[$n]} s"
        else
                echo "run-integration: $n FAILED (exit $rc) in ${took[$n]} s"
                failed+=("$n")
        fi
done
rm -rf "$LOGS"

# The times of this run, for the order of the next; suites not run keep
# theirs.
if mkdir -p "$(dirname "$LAST")" 2>/dev/null; then
        {
                for n in "${!took[@]}"; do echo "$n ${took[$n]}"; done
                [ -f "$LAST" ] && while read -r n secs; do
                        [ -n "${took[$n]:-}" ] || echo "$n $secs"
                done <"$LAST"
        } | sort >"$LAST.tmp.$$" && mv "$LAST.tmp.$$" "$LAST"
fi

echo "run-integration: $((${#took[@]} - ${#failed[@]})) suites passed, ${#failed[@]} failed" \
        "in $((SECONDS - t0)) s ($JOBS at a time)"
if [ ${#failed[@]} -gt 0 ]; then
        echo "run-integration: failed: ${failed[*]}"
        exit 1
fi
