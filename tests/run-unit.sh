#!/bin/bash
# Runs the cmocka unit test binaries given as arguments, each in its own
# temporary directory (kept when the binary fails), and prints a summary.
# A binary that leaves a process running (a server it started in its
# directory) fails, and the process is stopped; so is what runs when the
# runner is interrupted.
set -u
passed=0 failed=0 failed_bins="" dir="" t=""
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
trap 'sweep "$dir" "$(basename "$t")"; exit 130' INT
trap 'sweep "$dir" "$(basename "$t")"; exit 143' TERM

for t in "$@"; do
        dir=$(mktemp -d "${TMPDIR:-/tmp}/slipway-unit.XXXXXX")
        # For tests/leftovers.sh: what runs from here is this run's.
        if [ -n "${SLIPWAY_TEST_RUN:-}" ]; then
                mkdir -p "$(dirname "$SLIPWAY_TEST_RUN")" && echo "dir $dir" >>"$SLIPWAY_TEST_RUN"
        fi
        out="$dir/output.txt"
        abs=$(realpath "$t")
        (cd "$dir" && SLIPWAY_TEST_DIR="$dir" "$abs") >"$out" 2>&1
        rc=$?
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
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failing binaries:$failed_bins"; exit 1; }
