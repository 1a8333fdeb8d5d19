#!/bin/bash
# Runs the cmocka unit test binaries given as arguments, each in its own
# temporary directory (kept when the binary fails), and prints a summary.
set -u
passed=0 failed=0 failed_bins=""
for t in "$@"; do
        dir=$(mktemp -d "${TMPDIR:-/tmp}/slipway-unit.XXXXXX")
        # For tests/leftovers.sh: what runs from here is this run's.
        if [ -n "${SLIPWAY_TEST_RUN:-}" ]; then
                mkdir -p "$(dirname "$SLIPWAY_TEST_RUN")" && echo "dir $dir" >>"$SLIPWAY_TEST_RUN"
        fi
        out="$dir/output.txt"
        abs=$(realpath "$t")
        if (cd "$dir" && SLIPWAY_TEST_DIR="$dir" "$abs") >"$out" 2>&1; then
                grep -E '^\[  (PASSED|FAILED|SKIPPED)  \]' "$out" | sed "s|^|$(basename "$t"): |"
                n=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
                passed=$((passed + ${n:-0}))
                rm -rf "$dir"
        else
                cat "$out"
                n=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
                p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
                failed=$((failed + ${n:-1}))
                passed=$((passed + ${p:-0}))
                failed_bins="$failed_bins $(basename "$t")"
                echo "$(basename "$t"): FAILED, its directory is kept: $dir"
        fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failing binaries:$failed_bins"; exit 1; }
