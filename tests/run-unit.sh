#!/bin/bash
# Runs the cmocka unit test binaries given as arguments, each in its own
# temporary directory (kept when the binary fails), JOBS at a time
# (tests/run-unit.sh [-j JOBS] BINARY...), and prints a summary.
# A binary that leaves a process running (a server it started in its
# directory) fails, and the process is stopped; so is what runs when the
# runner is interrupted.
set -u
passed=0 failed=0 failed_bins=""
# sum_of PASSED|FAILED OUTPUT: the cases of every cmocka group (a binary may
# run one group per store driver) that ended so.
sum_of() {
        sed -n "s/^\[  $1  \] \([0-9]*\) test.*/\1/p" "$2" | awk '{ n += $1 } END { print n + 0 }'
}

# alive PID: PID is a process that has not exited (a zombie has).
alive() {
        local s
        { read -r s </proc/"$1"/stat; } 2>/dev/null || return 1
        s=${s##*) }
        [ "${s%% *}" != Z ]
}

# sweep DIR NAME: stops the processes whose command line points into DIR,
# which test binary NAME left running (SIGTERM, SIGKILL after 10 s), and
# names them. Returns 1 when there were any.
sweep() {
        local p i left=() still
        [ -n "$1" ] || return 0
        for p in $(grep -laF "$1" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
                # The grep that found them is gone by now.
                [ "$p" != $$ ] && alive "$p" && left+=("$p")
        done
        [ ${#left[@]} -gt 0 ] || return 0
        echo "$2: left running, now stopped:" \
                "$(ps -o pid=,args= -p "${left[*]}" 2>/dev/null | cut -c1-100 | tr '\n' ';')"
        kill -TERM "${left[@]}" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
                still=()
                for p in "${left[@]}"; do alive "$p" && still+=("$p"); done
                [ ${#still[@]} -gt 0 ] || return 1
                sleep 0.1
        done
        kill -KILL "${still[@]}" 2>/dev/null
        return 1
}
# JOBS binaries at a time (-j JOBS, default 1): each in its own directory,
# its output reported when it ends.
JOBS=1
if [ "${1:-}" = -j ]; then
        JOBS=$2
        shift 2
fi
if ! [[ $JOBS =~ ^[1-9][0-9]*$ ]]; then
        echo "run-unit: JOBS must be a number of binaries at once (1 or more), not '$JOBS'" >&2
        exit 2
fi
declare -A bin_of=() dir_of=()

# stop_all SIGNAL: stops the binaries still running and what they left.
stop_all() {
        local p
        trap - INT TERM
        for p in "${!bin_of[@]}"; do kill -TERM "$p" 2>/dev/null; done
        for p in "${!bin_of[@]}"; do
                wait "$p" 2>/dev/null
                sweep "${dir_of[$p]}" "$(basename "${bin_of[$p]}")"
        done
        [ "$1" = INT ] && exit 130
        exit 143
}
trap 'stop_all INT' INT
trap 'stop_all TERM' TERM

# start BINARY: runs it in the background in a directory of its own.
start() {
        local dir abs
        dir=$(mktemp -d "${TMPDIR:-/tmp}/slipway-unit.XXXXXX")
        # For tests/leftovers.sh: what runs from here is this run's.
        if [ -n "${SLIPWAY_TEST_RUN:-}" ]; then
                mkdir -p "$(dirname "$SLIPWAY_TEST_RUN")" && echo "dir $dir" >>"$SLIPWAY_TEST_RUN"
        fi
        abs=$(realpath "$1")
        (cd "$dir" && SLIPWAY_TEST_DIR="$dir" exec "$abs") </dev/null >"$dir/output.txt" 2>&1 &
        bin_of[$!]=$1
        dir_of[$!]=$dir
}

# report PID: the binary that ran as PID has ended: its verdict.
report() {
        local t=${bin_of[$1]} dir=${dir_of[$1]} rc n out
        wait "$1"
        rc=$?
        unset "bin_of[$1]" "dir_of[$1]"
        out="$dir/output.txt"
        sweep "$dir" "$(basename "$t")" >>"$out" || rc=1
        if [ $rc = 0 ]; then
                grep -E '^\[  (PASSED|FAILED|SKIPPED)  \]' "$out" | sed "s|^|$(basename "$t"): |"
                passed=$((passed + $(sum_of PASSED "$out")))
                rm -rf "$dir"
        else
                cat "$out"
                n=$(sum_of FAILED "$out")
                [ "$n" -gt 0 ] || n=1
                failed=$((failed + n))
                passed=$((passed + $(sum_of PASSED "$out")))
                failed_bins="$failed_bins $(basename "$t")"
                echo "$(basename "$t"): FAILED, its directory is kept: $dir"
        fi
}

for t in "$@"; do
        start "$t"
        # Wait while JOBS run (bash keeps the status of a child that ended
        # until `wait PID` asks for it).
        while [ ${#bin_of[@]} -ge "$JOBS" ]; do
                for p in "${!bin_of[@]}"; do
                        kill -0 "$p" 2>/dev/null || { report "$p"; continue 2; }
                done
                sleep 0.1
        done
done
for p in "${!bin_of[@]}"; do report "$p"; done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failing binaries:$failed_bins"; exit 1; }
