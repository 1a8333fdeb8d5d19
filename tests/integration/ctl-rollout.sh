#!/bin/bash
# Integration tests of slipctl's coordination commands against slipwayd on
# loopback: budget list/set/delete, rollout plan (waves and counts), start,
# list, status, pause, resume, abort, rollback and watch, --json, and the
# errors with their exit statuses. No agent runs: the hosts are registered
# the way iPXE does it and the tests assert what the API shows (who was
# assigned what, the rollout's state); one case checks in for two hosts with
# curl, as an agent would, to see a rollout finish.
. "$(dirname "$0")/../lib.sh"
t_begin ctl-rollout

C=$BIN/slipctl
SLIPWAYD=${SLIPWAYD:-$BIN/slipwayd}
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$T_DIR/cache
unset SLIPWAY_SERVER SLIPWAY_TOKEN SLIPWAY_CA_FILE
D=$T_DIR
PIDS=""
# Five hosts: web on r1, r1, r2; db on r2, r3.
MACS="52:54:00:d0:00:01 52:54:00:d0:00:02 52:54:00:d0:00:03 52:54:00:d0:00:04 52:54:00:d0:00:05"
LABELS=("rack=r1 service=web" "rack=r1 service=web" "rack=r2 service=web" "rack=r2 service=db"
        "rack=r3 service=db")

stop_all() {
        # shellcheck disable=SC2086
        t_stop $PIDS
        PIDS=""
}
t_on_exit stop_all

# ctl_fail STATUS PATTERN CMD...: CMD must exit with STATUS and print exactly
# one "slipctl: " line on stderr, matching PATTERN (grep -E).
ctl_fail() {
        local status=$1 pattern=$2 err rc lines
        shift 2
        err=$("$@" 2>&1 >/dev/null)
        rc=$?
        if [ $rc -ne "$status" ]; then
                t_fail "expected exit $status, got $rc: $err"
                return 1
        fi
        lines=$(printf '%s\n' "$err" | grep -c '^slipctl: ' || true)
        if ! printf '%s\n' "$err" | grep -q -E -e "$pattern"; then
                t_fail "error does not match /$pattern/: $err"
                return 1
        fi
        if [ "$lines" -ne 1 ]; then
                t_fail "expected one error line, got $lines: $err"
                return 1
        fi
        return 0
}

# json_ok CMD...: CMD's output must parse as JSON.
json_ok() {
        "$@" >"$D/out.json" 2>"$D/out.err" && jq . "$D/out.json" >/dev/null 2>&1 || {
                t_fail "'$*' gave no JSON: $(head -c 300 "$D/out.json") $(cat "$D/out.err")"
                return 1
        }
}

# The hosts check in again with what they last reported, as their agents
# would: a rollout assigns only hosts heard from lately (heartbeat-timeout),
# and this keeps them so however slow the test. (An iPXE request would not:
# firmware asking for a script is no sign of a running system.)
refresh_hosts() {
        local m h
        for m in $MACS; do
                h=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL/v1/hosts/$m") || continue
                jq -c '{state, image: .current_image, version}' <<<"$h" |
                        curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
                                --data-binary @- "$URL/v1/hosts/$(jq -r .id <<<"$h")/checkin"
        done
}

# checkin HOST IMAGE-ID: reports HOST healthy on IMAGE-ID, as its agent would.
checkin() {
        curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
                -d "{\"state\": \"healthy\", \"image\": \"$2\", \"version\": \"x\"}" "$URL/v1/hosts/$1/checkin"
}

# host_image HOST: the image ID assigned to HOST ("null" for none).
host_image() { $C --json host show "$1" | jq -r .image; }

# db_hosts_on IMAGE-ID: both db hosts are assigned IMAGE-ID.
db_hosts_on() { [ "$(host_image "${H[3]}") $(host_image "${H[4]}")" = "$1 $1" ]; }

if [ ! -x "$SLIPWAYD" ] || [ ! -x "$C" ]; then
        t_case "slipwayd and slipctl are built"
        t_fail "no $SLIPWAYD or $C (make, or set SLIPWAYD)"
        t_end
        exit 1
fi

# A server with two versions of the sample image and five hosts.
t_tiny_images "$D"
TOKEN=$("$SLIPWAYD" --state-dir "$D/srv" --log-json no token create ci)
t_slipwayd "$D" 127.0.0.1:0 || exit 1
PIDS="$PIDS $T_SLIPWAYD_PID"
export SLIPWAY_SERVER=$URL SLIPWAY_TOKEN=$TOKEN
t_tiny_push "$D"
for m in $MACS; do curl -sf -o /dev/null "$URL/boot/ipxe?mac=$m"; done
refresh_hosts
i=0
for m in $MACS; do
        # shellcheck disable=SC2086
        $C host label "$m" ${LABELS[$i]} >/dev/null || echo "labelling $m failed"
        i=$((i + 1))
done
H=()
for m in $MACS; do H+=("$($C --json host show "$m" | jq -r .id)"); done

t_case "budget list with none"
if out=$($C budget list) && [ "$out" = "no budgets are set" ] && [ ${#ID1} = 64 ] && [ ${#ID2} = 64 ]; then t_ok; else
        t_fail "${out:-} ids: $ID1 $ID2"; fi

t_case "budget set: a key's groups, one group, a percentage, a minimum"
if out1=$($C budget set rack --max-unavailable 2) && [ "$out1" = "budget rack: max_unavailable 2" ] &&
        out2=$($C budget set service=web --max-unavailable 50%) &&
        [ "$out2" = "budget service=web: max_unavailable 50%" ] &&
        out3=$($C budget set service=db --min-available 1) && [ "$out3" = "budget service=db: min_available 1" ] &&
        out4=$($C budget set rack --max-unavailable 1) && [ "$out4" = "budget rack: max_unavailable 1" ]; then
        t_ok
else
        t_fail "${out1:-} / ${out2:-} / ${out3:-} / ${out4:-}"
fi

t_case "budget list"
expected="SELECTOR     BUDGET               APPLIES TO
rack         max_unavailable 1    each rack=... group
service=db   min_available 1      group service=db
service=web  max_unavailable 50%  group service=web"
if out=$($C budget list) && [ "$out" = "$expected" ] &&
        [ "$($C --json budget list | jq -c '[.budgets[] | [.selector, .max_unavailable, .max_unavailable_pct, .min_available]]')" = \
                '[["rack",1,null,null],["service=db",null,null,1],["service=web",null,50,null]]' ]; then
        t_ok
else
        t_fail "$out"
fi

t_case "budget delete"
if out=$($C budget delete service=db) && [ "$out" = "deleted budget service=db" ] &&
        [ "$($C --json budget list | jq -c '[.budgets[].selector]')" = '["rack","service=web"]' ] &&
        ctl_fail 1 "cannot delete the budget of 'service=db': server: budget 'service=db': not found \(not_found\)" \
                $C budget delete service=db; then
        t_ok
else
        t_fail "budget delete: $out; list: $($C --json budget list 2>&1)"
fi

t_case "budget set: usage errors and the server's refusals"
if ctl_fail 1 "budget set needs --max-unavailable or --min-available" $C budget set rack &&
        ctl_fail 1 "--max-unavailable and --min-available cannot be used together" \
                $C budget set rack --max-unavailable 1 --min-available 2 &&
        ctl_fail 1 "--max-unavailable: expected a count or a percentage \(10%\), got '150%'" \
                $C budget set rack --max-unavailable 150% &&
        ctl_fail 1 "--min-available: expected a count, got 'two'" $C budget set rack --min-available two &&
        ctl_fail 1 "usage: slipctl budget set SELECTOR" $C budget set --max-unavailable 1 &&
        ctl_fail 1 "--waves is not an option of 'budget set'" $C budget set rack --max-unavailable 1 --waves 1 &&
        ctl_fail 1 "cannot set the budget of 'rack=r1=x': server: 'rack=r1=x' is not a label key or KEY=VALUE group \(invalid_value\)$" \
                $C budget set rack=r1=x --max-unavailable 1 &&
        [ "$($C --json budget list | jq -c '[.budgets[].selector]')" = '["rack","service=web"]' ]; then
        t_ok
else
        t_fail "budgets now: $($C --json budget list 2>&1)"
fi

t_case "rollout plan: waves with host counts and an estimate"
if out=$($C rollout plan tiny:2.0 --waves 1,50%,100% --bake 30) &&
        grep -q "^image: *tiny:2.0 (${ID2:0:12})\$" <<<"$out" && grep -q '^hosts: *5$' <<<"$out" &&
        grep -q '^waves: *3$' <<<"$out" && grep -q '^bake: *30 s between waves$' <<<"$out" &&
        grep -q '^estimate: *4 min at best' <<<"$out" && grep -q '^WAVE  HOSTS  TOTAL  MEMBERS$' <<<"$out" &&
        grep -q '^1     1      1      h-[0-9a-f]\{12\}$' <<<"$out" &&
        grep -q '^2     2      3      h-[0-9a-f]\{12\}, h-[0-9a-f]\{12\}$' <<<"$out" &&
        grep -q '^3     2      5      h-[0-9a-f]\{12\}, h-[0-9a-f]\{12\}$' <<<"$out" &&
        [ "$($C --json rollout plan tiny:2.0 --waves 1,50%,100% --bake 30 |
                jq -c '[.hosts, .estimate_sec, [.waves[].hosts_count]]')" = '[5,240,[1,2,2]]' ]; then
        t_ok
else
        t_fail "$out"
fi

t_case "rollout plan: --selector, --order, and many members"
plan=$($C --json rollout plan tiny:2.0 --selector service=web --waves 2,100% --order rack=r2,r1)
first=$(jq -r '.waves[0].hosts[0]' <<<"$plan")
if [ "$(jq -c '[.hosts, [.waves[].hosts_count]]' <<<"$plan")" = '[3,[2,1]]' ] && [ "$first" = "${H[2]}" ] &&
        [ "$($C --json rollout plan tiny:2.0 --selector service=web --selector rack=r1 | jq .hosts)" = 2 ] &&
        out=$($C rollout plan tiny:2.0 --selector rack=r9) && grep -q '^hosts: *0$' <<<"$out" &&
        grep -q '^no host matches' <<<"$out" &&
        $C rollout plan tiny:2.0 | grep -q '^1     5      5      h-.*, h-.*, h-.*, h-[0-9a-f]* +1 more$'; then
        t_ok
else
        t_fail "$plan / ${out:-}"
fi

t_case "rollout plan: an unknown image is the server's refusal, exit 1"
if ctl_fail 1 "cannot plan a rollout of 'tiny:9': server: 'image': tiny:9: no such image \(not_found\)$" \
        $C rollout plan tiny:9 &&
        ctl_fail 1 "cannot start a rollout of 'nope': server: .*no such image \(not_found\)$" $C rollout start nope; then
        t_ok
else
        t_fail "an unknown image was not refused as expected"
fi

t_case "rollout options: usage errors, exit 1, nothing sent"
# The server named does not exist: a request would be exit 2.
X=(--server http://127.0.0.1:9)
if ctl_fail 1 "--waves: expected counts or percentages separated by commas \(1,10%,50%,100%\), got '1,,50%'" \
        $C "${X[@]}" rollout plan tiny:2.0 --waves 1,,50% &&
        ctl_fail 1 "--waves: .*got 'ten'" $C "${X[@]}" rollout start tiny:2.0 --waves ten &&
        ctl_fail 1 "--waves: .*got '1,150%'" $C "${X[@]}" rollout start tiny:2.0 --waves 1,150% &&
        ctl_fail 1 "--waves: .*got ''" $C "${X[@]}" rollout start tiny:2.0 --waves '' &&
        ctl_fail 1 "--bake: expected seconds, got '-1'" $C "${X[@]}" rollout plan tiny:2.0 --bake -1 &&
        ctl_fail 1 "--max-failures: expected a count or a percentage" $C "${X[@]}" rollout plan tiny:2.0 --max-failures x &&
        ctl_fail 1 "--on-failure: expected pause or rollback, got 'retry'" \
                $C "${X[@]}" rollout plan tiny:2.0 --on-failure retry &&
        ctl_fail 1 "--order: expected KEY=VALUE,VALUE,..., got 'service'" $C "${X[@]}" rollout plan tiny:2.0 --order service &&
        ctl_fail 1 "--selector: expected KEY=VALUE, got 'web'" $C "${X[@]}" rollout plan tiny:2.0 --selector web &&
        ctl_fail 1 "--selector: label 'service' given twice, as 'web' and 'db'" \
                $C "${X[@]}" rollout plan tiny:2.0 --selector service=web --selector service=db &&
        ctl_fail 1 "--waves is not an option of 'rollout list'" $C "${X[@]}" rollout list --waves 1 &&
        ctl_fail 1 "usage: slipctl rollout plan \[IMAGE\] \[--selector K=V\]" $C "${X[@]}" rollout plan &&
        ctl_fail 1 "rollout ID: expected a rollout number \(see rollout list\), got 'abc'" \
                $C "${X[@]}" rollout status abc &&
        ctl_fail 1 "rollout ID: .*got '0'" $C "${X[@]}" rollout pause 0 &&
        ctl_fail 1 "unknown command 'rollout frob'" $C "${X[@]}" rollout frob; then
        t_ok
else
        t_fail "a usage error was not refused as expected"
fi

t_case "rollout list with none"
if out=$($C rollout list) && [ "$out" = "no rollouts" ]; then t_ok; else t_fail "${out:-}"; fi

t_case "rollout start: wave 1 is assigned at once"
refresh_hosts
R1=""
if out=$($C rollout start tiny:2.0 --selector service=web --waves 1,100% --bake 5 --max-failures 1 \
        --order rack=r2,r1 2>"$D/start.err"); then
        R1=$($C --json rollout list | jq -r '.rollouts[0].id')
fi
# Ordered by rack: the web host on r2 goes first, alone in wave 1.
if [ -n "$R1" ] && grep -q "^started rollout $R1: tiny:2.0 to 3 hosts in 2 waves\$" <<<"$out" &&
        grep -q '^state: *running$' <<<"$out" &&
        grep -q '^spec: *waves 1, 100%; bake 5 s; max failures 1; on failure pause; selector service=web; order rack: r2, r1$' <<<"$out" &&
        grep -q '^1     1      0        1         0     0       0$' <<<"$out" &&
        grep -q '^2     2      2        0         0     0       0$' <<<"$out" &&
        [ "$(host_image "${H[2]}")" = "$ID2" ] && [ "$(host_image "${H[0]}")" = null ] &&
        [ "$(host_image "${H[3]}")" = null ]; then
        t_ok
else
        t_fail "${out:-} $(cat "$D/start.err")"
fi
R1=${R1:-1}

t_case "rollout list"
if out=$($C rollout list) && grep -q '^ID  KIND  *STATE  *WAVE  IMAGE  *HOSTS  DONE  CREATED$' <<<"$out" &&
        grep -E -q "^$R1  +rollout  +running  +1/2  +tiny:2.0  +3  +0  +[0-9]+ s ago\$" <<<"$out"; then
        t_ok
else
        t_fail "$out"
fi

t_case "rollout status: waves, groups, state"
if out=$($C rollout status "$R1") && grep -q "^rollout: *$R1\$" <<<"$out" && grep -q '^kind: *rollout$' <<<"$out" &&
        grep -q '^image: *tiny:2.0$' <<<"$out" && grep -q '^state: *running$' <<<"$out" &&
        grep -q '^reason: *-$' <<<"$out" && grep -q '^wave: *1 of 2$' <<<"$out" && grep -q '^hosts: *3$' <<<"$out" &&
        grep -q '^WAVE  HOSTS  PENDING  ASSIGNED  DONE  FAILED  SKIPPED$' <<<"$out" &&
        grep -q '^GROUP  *HOSTS  DONE  FAILED  DOWN$' <<<"$out" && grep -E -q '^rack=r1  +2  +0  +0  +0$' <<<"$out" &&
        grep -E -q '^rack=r2  +1  +0  +0  +0$' <<<"$out" && grep -E -q '^service=web  +3  +0  +0  +0$' <<<"$out" &&
        [ "$($C --json rollout status "$R1" | jq -c '[.state, .wave, .waves_total, [.waves[] | .assigned]]')" = \
                '["running",1,2,[1,0]]' ]; then
        t_ok
else
        t_fail "$out"
fi

t_case "a host is in one running rollout at a time"
if ctl_fail 1 "cannot start a rollout of 'tiny:2.0': server: host h-[0-9a-f]+ is still in rollout $R1 \(conflict\)$" \
        $C rollout start tiny:2.0 --selector rack=r1; then
        t_ok
else
        t_fail "a second rollout over rack=r1 was not refused"
fi

t_case "rollout pause, resume"
if paused=$($C rollout pause "$R1") && [ "$paused" = "rollout $R1: paused (paused by an operator)" ] &&
        $C rollout status "$R1" | grep -q '^reason: *paused by an operator$' &&
        ctl_fail 1 "cannot pause rollout $R1: server: rollout $R1 is paused: cannot pause it \(conflict\)$" \
                $C rollout pause "$R1" &&
        resumed=$($C rollout resume "$R1") && [ "$resumed" = "rollout $R1: running" ] &&
        [ "$($C --json rollout status "$R1" | jq -r .state)" = running ] &&
        ctl_fail 1 "cannot resume rollout $R1: server: rollout $R1 is running: cannot resume it \(conflict\)$" \
                $C rollout resume "$R1"; then
        t_ok
else
        t_fail "${paused:-} / ${resumed:-}"
fi

t_case "rollout watch in a pipe: a line per change, exit 3 with the reason when paused"
$C rollout watch "$R1" >"$D/watch.out" 2>"$D/watch.err" &
wpid=$!
# Paused once watch has shown the rollout running, not before.
t_wait_until 60 test -s "$D/watch.out"
$C rollout pause "$R1" >/dev/null
t_wait_until 60 grep -q "is paused" "$D/watch.out"
kill $wpid 2>/dev/null
wait $wpid
rc=$?
if [ $rc = 3 ] && [ "$(wc -l <"$D/watch.out")" = 3 ] &&
        grep -E -q "^[0-9]{2}:[0-9]{2}:[0-9]{2} rollout $R1: running, wave 1/2, 3 hosts: 2 pending, 1 assigned, 0 done, 0 failed\$" "$D/watch.out" &&
        grep -E -q "^[0-9:]{8} rollout $R1: paused, wave 1/2, .*; paused by an operator\$" "$D/watch.out" &&
        [ "$(tail -n 1 "$D/watch.out")" = "rollout $R1 is paused: paused by an operator" ] &&
        ! grep -q $'\033' "$D/watch.out" && [ ! -s "$D/watch.err" ]; then
        t_ok
else
        t_fail "exit $rc: $(cat "$D/watch.out" "$D/watch.err")"
fi

t_case "rollout watch on a terminal: redrawn with clear and home"
if command -v script >/dev/null; then
        script -q -e -c "$C rollout watch $R1" /dev/null >"$D/tty.out" 2>&1
        rc=$?
        if [ $rc = 3 ] && grep -q $'\033\[H\033\[2J' "$D/tty.out" && grep -q '^state: *paused' "$D/tty.out" &&
                grep -q "^rollout $R1 is paused: paused by an operator" "$D/tty.out"; then
                t_ok
        else
                t_fail "exit $rc: $(head -c 600 "$D/tty.out" | cat -v)"
        fi
else
        t_skip "no script(1) for a terminal"
fi

t_case "rollout abort: pending hosts skipped, watch ends with 0"
$C rollout resume "$R1" >/dev/null
if out=$($C rollout abort "$R1") && [ "$out" = "rollout $R1: aborted (aborted by an operator)" ] &&
        status=$($C rollout status "$R1") && grep -q '^state: *aborted$' <<<"$status" &&
        grep -q '^2     2      0        0         0     0       2$' <<<"$status" &&
        watch=$($C rollout watch "$R1") && [ "$(tail -n 1 <<<"$watch")" = "rollout $R1 is aborted: aborted by an operator" ] &&
        ctl_fail 1 "cannot resume rollout $R1: server: rollout $R1 is aborted: cannot resume it \(conflict\)$" \
                $C rollout resume "$R1" &&
        [ "$(host_image "${H[2]}")" = "$ID2" ] && [ "$(host_image "${H[0]}")" = null ]; then
        t_ok
else
        t_fail "${out:-} / ${status:-} / ${watch:-}"
fi

t_case "rollout rollback: a new rollout moves the hosts back"
for h in "${H[3]}" "${H[4]}"; do $C host assign "$h" tiny:1.0 >/dev/null; done
refresh_hosts
R2=$($C --json rollout start tiny:2.0 --selector service=db | jq -r .id)
assigned=$(for h in "${H[3]}" "${H[4]}"; do host_image "$h"; done | sort -u)
refresh_hosts
if out=$($C rollout rollback "$R2") && R3=$($C --json rollout list | jq -r '.rollouts[0].id') &&
        [ "$out" = "rollout $R2: rolled back by rollout $R3, which moves 2 host(s) back to what they ran" ] &&
        [ "$assigned" = "$ID2" ] &&
        status=$($C rollout status "$R3") && grep -q "^kind: *rollback of rollout $R2\$" <<<"$status" &&
        grep -q "^image: *what each host ran before rollout $R2\$" <<<"$status" &&
        [ "$($C --json rollout status "$R2" | jq -r '.state + ": " + .reason')" = \
                "aborted: rolled back by rollout $R3: asked by an operator" ] &&
        t_wait_until 60 db_hosts_on "$ID1" &&
        $C rollout list | grep -E -q "^$R3  +rollback  +running  +1/1  +-  +2  +0 "; then
        t_ok
else
        t_fail "R2=$R2 R3=${R3:-} assigned=$assigned ${out:-} / ${status:-} / $(host_image "${H[3]}")"
fi

t_case "rollout watch: exit 0 once the hosts report the image"
$C rollout watch "${R3:-0}" >"$D/done.out" 2>"$D/done.err" &
wpid=$!
t_wait_until 60 test -s "$D/done.out"
for h in "${H[3]}" "${H[4]}"; do checkin "$h" "$ID1"; done
t_wait_until 60 grep -q "is done" "$D/done.out"
kill $wpid 2>/dev/null
wait $wpid
rc=$?
if [ $rc = 0 ] && [ "$(tail -n 1 "$D/done.out")" = "rollout $R3 is done" ] &&
        grep -E -q "^[0-9:]{8} rollout $R3: done, wave 1/1, 2 hosts: 0 pending, 0 assigned, 2 done, 0 failed\$" "$D/done.out" &&
        [ "$($C --json rollout list | jq -r ".rollouts[] | select(.id == $R3) | .done")" = 2 ]; then
        t_ok
else
        t_fail "exit $rc: $(cat "$D/done.out" "$D/done.err")"
fi

t_case "an unknown rollout: exit 1 and the server's message"
if ctl_fail 1 "cannot show rollout 99: server: rollout 99: not found \(not_found\)$" $C rollout status 99 &&
        ctl_fail 1 "cannot pause rollout 99: server: rollout 99: not found \(not_found\)$" $C rollout pause 99 &&
        ctl_fail 1 "cannot watch rollout 99: server: rollout 99: not found \(not_found\)$" $C rollout watch 99 &&
        ctl_fail 2 "cannot list rollouts: cannot reach the server at http://127.0.0.1:9" \
                $C --server http://127.0.0.1:9 rollout list; then
        t_ok
else
        t_fail "an unknown rollout was not refused as expected"
fi

t_case "--json output parses"
if json_ok $C --json budget list && json_ok $C --json budget set zone --max-unavailable 10% &&
        json_ok $C --json budget delete zone && json_ok $C --json rollout plan tiny:2.0 &&
        json_ok $C --json rollout list && json_ok $C --json rollout status "$R1" &&
        json_ok $C --json rollout rollback "$R3" && json_ok $C --json rollout pause "$((R3 + 1))" &&
        json_ok $C --json rollout resume "$((R3 + 1))" && json_ok $C --json rollout abort "$((R3 + 1))" &&
        $C --json rollout watch "$R1" >"$D/watch.json" && [ "$(wc -l <"$D/watch.json")" = 1 ] &&
        [ "$(jq -r .state "$D/watch.json")" = aborted ]; then
        t_ok
else
        t_fail "watch gave: $(head -c 300 "$D/watch.json" 2>/dev/null)"
fi

t_case "rollout --window: a lease outside the group's reboot window is refused, inside it granted"
h=${H[3]}
rack=$($C --json host show "$h" | jq -r .labels.rack)
now_min=$(($(date -u +%s) / 60 % 1440))
hhmm() { local m=$((($1 % 1440 + 1440) % 1440)); printf '%02d:%02d' $((m / 60)) $((m % 60)); }
closed="$(hhmm $((now_min + 120)))-$(hhmm $((now_min + 180)))"
open="$(hhmm $((now_min - 60)))-$(hhmm $((now_min + 60)))"
lease() { curl -s -X "$1" -H "Authorization: Bearer $TOKEN" "$URL/v1/hosts/$2/lease"; }
refresh_hosts
R4=$($C --json rollout start tiny:2.0 --selector service=db --window "rack@$closed" | jq -r .id)
t_wait_until 60 db_hosts_on "$ID2"
refused=$(lease POST "$h")
$C rollout abort "$R4" >/dev/null
refresh_hosts
R5=$($C --json rollout start tiny:2.0 --selector service=db --window "rack=$rack@$open" | jq -r .id)
t_wait_until 60 db_hosts_on "$ID2"
granted=$(lease POST "$h")
lease DELETE "$h" >/dev/null
$C rollout abort "$R5" >/dev/null
if jq -e --arg g "rack=$rack" --arg w "$closed" '.granted == false and .group == $g and
                (.reason | contains("outside its reboot window " + $w)) and .retry_after >= 1' <<<"$refused" >/dev/null &&
        jq -e '.granted == true' <<<"$granted" >/dev/null &&
        $C rollout status "$R4" | grep -q "reboots of rack $closed UTC" &&
        ctl_fail 1 "'windows': the window of 'rack' is not \"HH:MM-HH:MM\"" \
                $C rollout start tiny:2.0 --window rack@25:00-01:00 &&
        ctl_fail 1 "--window: expected SELECTOR@HH:MM-HH:MM, got 'rack'" $C rollout start tiny:2.0 --window rack; then
        t_ok
else
        t_fail "refused: $refused; granted: $granted; $($C rollout status "$R4" | head -n 3)"
fi

t_case "rollout --budget: slipctl refuses a malformed one, the server a bad amount; the plan takes a good one"
if ! out=$($C rollout plan tiny:2.0 --budget rack:1 --budget service=db:min=1 2>&1); then
        t_fail "$out"
elif ctl_fail 1 "--budget: expected SELECTOR:N, SELECTOR:N% or SELECTOR:min=N, got 'rack'" \
                $C rollout plan tiny:2.0 --budget rack &&
        ctl_fail 1 "'budgets': the budget of 'rack' is not a count" $C rollout plan tiny:2.0 --budget rack:101%; then
        t_ok
fi

t_case "the audit log has the budgets and rollouts"
if out=$($C audit --limit 1000) && grep -q " ci  *budget.set  *rack  *budget=max_unavailable 1$" <<<"$out" &&
        grep -q " ci  *budget.delete  *service=db " <<<"$out" && grep -q " ci  *rollout.start  *rollout $R1 " <<<"$out" &&
        grep -q " ci  *rollout.pause  *rollout $R1 " <<<"$out" && grep -q " ci  *rollout.abort  *rollout $R1 " <<<"$out" &&
        grep -q " ci  *rollout.rollback  *rollout $R3 " <<<"$out" &&
        grep -q " coordinator  *rollout.done  *rollout $R3 " <<<"$out"; then
        t_ok
else
        t_fail "$(grep -E 'budget|rollout' <<<"$out")"
fi

t_case "every command is in --help and the man page"
help=$($C --help)
missing=""
for cmd in "budget list" "budget set" "budget delete" "rollout plan" "rollout start" "rollout list" \
        "rollout status" "rollout pause" "rollout resume" "rollout abort" "rollout rollback" "rollout watch"; do
        grep -q "^  $cmd" <<<"$help" || missing="$missing help:'$cmd'"
        grep -q "^\.B $cmd" "$TOP/docs/man/slipctl.1" || missing="$missing man:'$cmd'"
done
for opt in --max-unavailable --min-available --selector --waves --bake --max-failures --on-failure --order --window \
        --budget; do
        grep -q "^  $opt" <<<"$help" || missing="$missing help:$opt"
        grep -F -- "${opt//-/\\-}" "$TOP/docs/man/slipctl.1" | grep -q '^\.B' || missing="$missing man:$opt"
done
if [ -z "$missing" ]; then t_ok; else t_fail "missing$missing"; fi

stop_all
t_end
