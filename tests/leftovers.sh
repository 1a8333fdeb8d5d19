#!/bin/bash
# The last step of make check and make test: fails when anything the run's
# tests started is still running, or a network namespace they made is still
# there; names it, then stops it (SIGTERM, SIGKILL after 10 s) or deletes it.
#
#   tests/leftovers.sh [RUN-FILE]      (default: $SLIPWAY_TEST_RUN)
#
# make exports SLIPWAY_TEST_RUN, a file under build/test-runs/, to every
# test it runs. tests/lib.sh writes each suite into it ("suite PID START
# DIR": the script's pid and start time and its $T_DIR), tests/run-unit.sh
# each unit test's directory ("dir DIR"), t_netns_add each namespace
# ("netns NAME SUITE-DIR"). A process is the run's when its environment
# holds SLIPWAY_TEST_RUN=RUN-FILE (everything a test starts inherits it) or
# its command line points into one of those directories (a dnsmasq, which
# slipwayd starts with a clean environment). What belongs to a suite that
# is still running is not a leftover (yet). Nothing else is looked at: a
# slipwayd of one's own, or another run's tests, are never named.
. "$(dirname "$0")/lib.sh"
RUN=${1:-${SLIPWAY_TEST_RUN:-}}
if [ -z "$RUN" ]; then
        echo "leftovers: no run file (give one, or set SLIPWAY_TEST_RUN)" >&2
        exit 2
fi

# This script and the processes above it (make, its shell) carry the mark.
declare -A skip=()
p=$$
while [ -n "$p" ] && [ "$p" -gt 1 ]; do
        skip[$p]=1
        p=$(t_stat "$p" 4)
done

# The run's directories, and those of its suites still running.
dirs=() live_dirs=() live_pids=() netns=()
if [ -f "$RUN" ]; then
        while read -r kind a b c; do
                case $kind in
                suite)
                        dirs+=("$c")
                        if t_alive "$a" && [ "$(t_stat "$a" 22)" = "$b" ]; then
                                live_dirs+=("$c")
                                live_pids+=("$a")
                        fi
                        ;;
                dir) dirs+=("$a") ;;
                netns) netns+=("$a $b") ;;
                esac
        done <"$RUN"
fi

# in_live_suite PID: PID belongs to a suite still running: it is one, it
# descends from one, or it is marked with or points into a live suite's
# directory.
in_live_suite() {
        local d
        [ ${#live_pids[@]} -gt 0 ] || return 1
        for d in "${live_pids[@]}"; do
                [ "$1" = "$d" ] || t_below "$1" "$d" && return 0
        done
        for d in "${live_dirs[@]}"; do
                grep -qazx "SLIPWAY_TEST_SUITE=$d" /proc/"$1"/environ 2>/dev/null && return 0
                grep -qaF "$d" /proc/"$1"/cmdline 2>/dev/null && return 0
        done
        return 1
}

candidates=$(
        {
                grep -lazxF "SLIPWAY_TEST_RUN=$RUN" /proc/[0-9]*/environ
                if [ ${#dirs[@]} -gt 0 ]; then
                        patterns=()
                        for d in "${dirs[@]}"; do patterns+=(-e "$d"); done
                        grep -laF "${patterns[@]}" /proc/[0-9]*/cmdline
                fi
        } 2>/dev/null | cut -d/ -f3 | sort -un
)
# The subshells and commands that listed them are gone by now.
left=()
for p in $candidates; do
        [ -z "${skip[$p]:-}" ] && t_alive "$p" && ! in_live_suite "$p" && left+=("$p")
done

rc=0
if [ ${#left[@]} -gt 0 ]; then
        rc=1
        echo "leftovers: ${#left[@]} processes the tests started are still running:"
        ps -o pid=,args= -p "${left[*]}" | cut -c1-160 | sed 's/^/  /'
        t_kill "${left[@]}"
        echo "leftovers: stopped them"
fi
existing=" $(ip netns list 2>/dev/null | cut -d' ' -f1 | tr '\n' ' ') "
for entry in "${netns[@]}"; do
        read -r ns owner <<<"$entry"
        [[ $existing == *" $ns "* ]] || continue
        for d in "${live_dirs[@]}"; do [ "$d" = "$owner" ] && continue 2; done
        rc=1
        echo "leftovers: network namespace $ns is still there; deleting it"
        ip netns del "$ns" 2>/dev/null
done
if [ $rc = 0 ]; then
        echo "leftovers: none (${#dirs[@]} test directories, ${#netns[@]} namespaces)"
        [ -n "${1:-}" ] || rm -f "$RUN"
fi
exit $rc
