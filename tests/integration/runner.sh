#!/bin/bash
# tests/run-integration.sh, which runs the suites of make test-integration
# several at a time: two suites run at once (each waits for the other), a
# suite's output is printed whole, the expected longest start first, a
# suite marked "alone" has nothing beside it, a failure is named at the end
# without stopping the others, and the runner stopped by SIGTERM stops the
# suites it runs and what they started. Also t_port (tests/lib.sh): the
# ports it hands out differ, below the kernel's range for port 0.
. "$(dirname "$0")/../lib.sh"
t_begin runner
D=$T_DIR
RUN=$TOP/tests/run-integration.sh
export SLIPWAY_TEST_DURATIONS=$D/durations
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

# fake NAME BODY: a suite $D/s/NAME.sh whose body is BODY; it writes
# "start NAME" and "end NAME" to $D/events.
fake() {
        mkdir -p "$D/s"
        printf '#!/bin/bash\necho "start %s" >>"%s/events"\n%s\necho "end %s" >>"%s/events"\n' \
                "$1" "$D" "$2" "$1" "$D" >"$D/s/$1.sh"
        chmod +x "$D/s/$1.sh"
}
# wait_for FILE: waits up to 30 s for FILE; fails when it does not come.
wait_for='for ((i = 0; i < 300; i++)); do [ -e "$W" ] && break; sleep 0.1; done; [ -e "$W" ]'

t_case "two suites at once, each printed whole, then the runner's line"
fake ping "echo 'ping: one'; touch $D/ping; W=$D/pong; $wait_for || exit 1; echo 'ping: two'"
fake pong "W=$D/ping; $wait_for || exit 1; echo 'pong: one'; touch $D/pong; sleep 0.5; echo 'pong: two'"
out=$("$RUN" -j 2 "$D/s/ping.sh" "$D/s/pong.sh" 2>&1)
rc=$?
want_ping=$'ping: one\nping: two\nrun-integration: ping ok in'
want_pong=$'pong: one\npong: two\nrun-integration: pong ok in'
if [ $rc = 0 ] && [[ $out == *"$want_ping"* ]] && [[ $out == *"$want_pong"* ]] &&
        [[ $out == *"run-integration: 2 suites passed, 0 failed in "*" s (2 at a time)" ]]; then
        t_ok
else
        t_fail "exit $rc: $out"
fi

t_case "the longest expected first; one marked alone before them, with nothing beside it"
rm -f "$D/s"/*.sh "$D/events"
for n in short long middle; do fake $n "sleep 0.2"; done
fake lonely "sleep 0.5"
times() { printf '%s\n' "short 5" "long 300" "middle 40" "lonely 1 alone" >"$D/durations"; }
# One at a time, the order of the starts is the runner's; three at a time,
# the one alone still ends before any other starts.
times
out=$("$RUN" -j 1 "$D"/s/*.sh 2>&1)
rc1=$?
starts=$(sed -n 's/^start //p' "$D/events" | tr '\n' ' ')
rm -f "$D/events"
times
out+=$("$RUN" -j 3 "$D"/s/*.sh 2>&1)
rc3=$?
if [ $rc1 = 0 ] && [ $rc3 = 0 ] && [ "$starts" = "lonely long middle short " ] &&
        [ "$(head -n 2 "$D/events" | tr '\n' ' ')" = "start lonely end lonely " ] &&
        [ "$(grep -c '^end ' "$D/events")" = 4 ]; then
        t_ok
else
        t_fail "exits $rc1 and $rc3; one at a time: $starts; three: $(tr '\n' ' ' <"$D/events"); $out"
fi

t_case "the times of the run are kept for the next"
if grep -qx "lonely [0-9]*" "$D/durations" && grep -qx "long [0-9]*" "$D/durations" &&
        [ "$(wc -l <"$D/durations")" = 4 ]; then
        t_ok
else
        t_fail "$(cat "$D/durations")"
fi

t_case "a failing suite: the others run, the runner fails and names it"
rm -f "$D/s"/*.sh "$D/events"
fake good "true"
fake bad "echo 'bad: 0 passed, 1 failed in 0 s'; exit 1"
fake other "true"
out=$("$RUN" -j 1 "$D"/s/*.sh 2>&1)
rc=$?
if [ $rc = 1 ] && [ "$(grep -c '^end ' "$D/events")" = 2 ] &&
        [[ $out == *$'bad: 0 passed, 1 failed in 0 s\nrun-integration: bad FAILED (exit 1) in '* ]] &&
        [[ $out == *$'run-integration: 2 suites passed, 1 failed in '*$' s (1 at a time)\nrun-integration: failed: bad' ]]; then
        t_ok
else
        t_fail "exit $rc: $out"
fi

t_case "usage: JOBS must be 1 or more"
if out=$("$RUN" -j 0 "$D/s/good.sh" 2>&1); then
        t_fail "exit 0: $out"
elif [[ $out == "run-integration: JOBS must be a number of suites at once (1 or more), not '0'" ]]; then
        t_ok
else
        t_fail "$out"
fi

t_case "SIGTERM to the runner stops its suites and what they started"
rm -f "$D/s"/*.sh "$D/events"
for n in one two; do
        cat >"$D/s/$n.sh" <<EOF
#!/bin/bash
. "$TOP/tests/lib.sh"
t_begin $n
sleep 300 &
echo "\$\$ \$!" >>"$D/started"
t_case waits
wait
t_ok
t_end
EOF
        chmod +x "$D/s/$n.sh"
done
rm -f "$D/started"
TMPDIR=$D "$RUN" -j 2 "$D/s/one.sh" "$D/s/two.sh" >"$D/term.log" 2>&1 &
PIDS+=($!)
runner=$!
for ((i = 0; i < 300; i++)); do [ "$(wc -l 2>/dev/null <"$D/started")" = 2 ] && break; sleep 0.1; done
kill -TERM "$runner"
wait "$runner"
rc=$?
left=""
for p in $(cat "$D/started"); do t_alive "$p" && left+="$p "; done
if [ $rc = 143 ] && [ -z "$left" ] && [ "$(grep -c 'stopped by SIGTERM' "$D/term.log")" = 2 ]; then
        t_ok
else
        t_fail "exit $rc; still running: ${left:-none}; $(cat "$D/term.log")"
fi

t_case "t_port: distinct free ports below the kernel's range for port 0"
read -r low _ </proc/sys/net/ipv4/ip_local_port_range
ports=$(for i in 1 2 3 4 5 6; do t_port & done; wait)
bad=""
[ "$(sort -u <<<"$ports" | wc -l)" = 6 ] || bad+="not six different ports; "
for p in $ports; do
        [ "$p" -ge 20000 ] && [ "$p" -lt "$low" ] || bad+="$p out of range; "
done
if [ -z "$bad" ]; then t_ok "$(tr '\n' ' ' <<<"$ports")"; else t_fail "$bad: $ports"; fi

t_end
