#!/bin/bash
# The tests' own hygiene: a suite stops what it started however it ends
# (tests/lib.sh), and tests/leftovers.sh, the last step of make check and
# make test, catches what one left running and nothing else.
. "$(dirname "$0")/../lib.sh"
t_begin cleanup
D=$T_DIR
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

# bg CMD...: runs CMD in the background; its pid in LAST and in PIDS.
bg() {
        "$@" &
        LAST=$!
        PIDS+=("$LAST")
}
# gone PID...: none of the PIDs runs any more (waits up to 10 s).
gone() {
        local i p
        for ((i = 0; i < 600; i++)); do
                for p in "$@"; do t_alive "$p" && { sleep 0.1; continue 2; }; done
                return 0
        done
        return 1
}
# exec_unmarked NAME: becomes a sleep whose command line is NAME, without
# the marks of this suite (for bg only: it replaces the shell).
exec_unmarked() {
        exec env -u SLIPWAY_TEST_RUN -u SLIPWAY_TEST_SUITE bash -c 'exec -a "$0" sleep 300' "$1"
}

# A suite that starts a process, a subshell and a process pointing into its
# directory, and stops none of them: ends normally, by `exit`, or SIGTERM.
# Its directory is made in ours (TMPDIR), which goes with ours.
cat >"$D/careless.sh" <<EOF
#!/bin/bash
. "$TOP/tests/lib.sh"
t_begin careless
sleep 300 &
echo \$! >>"$D/careless.pids"
( while :; do sleep 0.2; done ) &
echo \$! >>"$D/careless.pids"
env -u SLIPWAY_TEST_SUITE bash -c 'exec -a "\$0" sleep 300' "\$T_DIR/dnsmasq" &
echo \$! >>"$D/careless.pids"
t_case one
t_ok
[ "\${HOW:-}" = exit ] && exit 3
[ "\${HOW:-}" = term ] && { touch "$D/careless.waiting"; sleep 300 & wait; }
t_end
EOF
chmod +x "$D/careless.sh"

for how in end exit term; do
        t_case "a suite that ends by $how stops what it started"
        rm -f "$D/careless.pids" "$D/careless.waiting"
        if [ $how = term ]; then
                HOW=$how TMPDIR=$D "$D/careless.sh" >"$D/careless-$how.log" 2>&1 &
                suite=$!
                for ((i = 0; i < 600; i++)); do [ -e "$D/careless.waiting" ] && break; sleep 0.1; done
                kill -TERM "$suite"
                wait "$suite"
        else
                HOW=$how TMPDIR=$D "$D/careless.sh" >"$D/careless-$how.log" 2>&1
        fi
        rc=$?
        mapfile -t started <"$D/careless.pids"
        PIDS+=("${started[@]}")
        if [ ${#started[@]} = 3 ] && gone "${started[@]}" && grep -q 'stopping what was left running' "$D/careless-$how.log"; then
                t_ok "exit $rc"
        else
                t_fail "exit $rc; still running: $(for p in "${started[@]}"; do t_alive "$p" && echo "$p"; done); $(tail -n 3 "$D/careless-$how.log")"
        fi
done

t_case "t_end runs the suite's clean-up before it removes the suite's directory"
cat >"$D/tidy.sh" <<EOF
#!/bin/bash
. "$TOP/tests/lib.sh"
t_begin tidy
t_on_exit '[ -d "\$T_DIR" ] && echo "\$T_DIR" >"$D/tidy.saw"'
t_case one
t_ok
t_end
EOF
chmod +x "$D/tidy.sh"
rm -f "$D/tidy.saw"
TMPDIR=$D "$D/tidy.sh" >"$D/tidy.log" 2>&1
rc=$?
saw=$(cat "$D/tidy.saw" 2>/dev/null)
if [ $rc = 0 ] && [ -n "$saw" ] && [ ! -e "$saw" ]; then
        t_ok
else
        t_fail "exit $rc; the clean-up saw '${saw}'; $(cat "$D/tidy.log")"
fi

# A run file of a run whose only suite has ended (its pid is no process's).
mkdir -p "$D/slipway-gone.1"
echo "suite 999999999 1 $D/slipway-gone.1" >"$D/run"

t_case "leftovers.sh names and stops what a finished run left: marked, or pointing into its directories"
bg env SLIPWAY_TEST_RUN="$D/run" sleep 300
marked=$LAST
bg exec_unmarked "$D/slipway-gone.1/state/dnsmasq"
pointing=$LAST
"$TOP/tests/leftovers.sh" "$D/run" >"$D/leftovers-1.log" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "^ *$marked " "$D/leftovers-1.log" && grep -q "^ *$pointing " "$D/leftovers-1.log" &&
        gone "$marked" "$pointing"; then
        t_ok
else
        t_fail "exit $rc; $(cat "$D/leftovers-1.log")"
fi

t_case "leftovers.sh leaves alone a slipwayd of one's own and a suite still running"
bg exec_unmarked "$BIN/slipwayd"
own=$LAST
mkdir -p "$D/slipway-live.1"
echo "suite $$ $(t_stat $$ 22) $D/slipway-live.1" >"$D/run-live"
bg env SLIPWAY_TEST_RUN="$D/run-live" SLIPWAY_TEST_SUITE="$D/slipway-live.1" sleep 300
live=$LAST
bg exec_unmarked "$D/slipway-live.1/state/dnsmasq"
live_pointing=$LAST
"$TOP/tests/leftovers.sh" "$D/run" >"$D/leftovers-2.log" 2>&1
rc1=$?
"$TOP/tests/leftovers.sh" "$D/run-live" >"$D/leftovers-3.log" 2>&1
rc2=$?
if [ $rc1 = 0 ] && [ $rc2 = 0 ] && t_alive "$own" && t_alive "$live" && t_alive "$live_pointing"; then
        t_ok
else
        t_fail "exits $rc1 and $rc2; $(cat "$D/leftovers-2.log" "$D/leftovers-3.log")"
fi
t_stop "$own" "$live" "$live_pointing"

t_case "leftovers.sh deletes a network namespace a finished suite left"
ns=slw-left-$$
if ! ip netns add "$ns" 2>"$D/netns.err"; then
        t_skip "cannot make network namespaces here ($(cat "$D/netns.err"))"
else
        echo "netns $ns $D/slipway-gone.1" >>"$D/run"
        "$TOP/tests/leftovers.sh" "$D/run" >"$D/leftovers-4.log" 2>&1
        rc=$?
        if [ $rc = 1 ] && grep -q "namespace $ns " "$D/leftovers-4.log" && ! ip netns list | grep -q "^$ns\b"; then
                t_ok
        else
                t_fail "exit $rc; $(cat "$D/leftovers-4.log")"
        fi
        ip netns del "$ns" 2>/dev/null
fi

t_end
