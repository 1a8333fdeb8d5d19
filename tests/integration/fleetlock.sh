#!/bin/bash
# Integration tests of FleetLock v1 on slipwayd (loopback): curl speaks the
# protocol as Zincati does (POST, fleet-lock-protocol: true, a pretty-printed
# {"client_params": {"id", "group"}} body, no Content-Type), against a budget
# on the fleetlock label: the lock is a counting semaphore per group, owned
# and recursive; refusals are 409 {"kind", "value"}; every decision is in
# the audit log under the actor fleetlock:<id>.
. "$(dirname "$0")/../lib.sh"
t_begin fleetlock

SD=${SLIPWAYD:-$BIN/slipwayd}
D=$T_DIR
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

# Zincati's node IDs: the app-specific machine ID, 32 hex digits.
A=c988d2509fdf4cdcbed39037c56406fb
B=5b2a9c7e3f1d4e8a9b0c6d2e7f8a1b3c
C=0f7e6d5c4b3a49281706f5e4d3c2b1a0
W=9d8c7b6a5f4e43d2c1b0a9f8e7d6c5b4

# start_server STATE [FLAGS...]: runs slipwayd on a free loopback port; sets
# URL and TOKEN (a new admin token). No trusted keys: no image is pushed here.
start_server() {
        local state=$1 i
        shift
        TOKEN=$("$SD" --state-dir "$state" --log-json no token create ci) || return 1
        "$SD" --state-dir "$state" --listen 127.0.0.1:0 --trusted-keys "" --log-json no "$@" >>"$state.log" 2>&1 &
        PIDS+=("$!")
        for ((i = 0; i < 1200; i++)); do
                [ -s "$state/slipwayd.url" ] && break
                sleep 0.05
        done
        URL=$(cat "$state/slipwayd.url" 2>/dev/null)
}

# api METHOD PATH [CURL-ARGS...]: an admin call; sets CODE and BODY.
api() {
        local method=$1 path=$2 out
        shift 2
        out=$(curl -s -X "$method" -w '\n%{http_code}' -H "Authorization: Bearer $TOKEN" "$@" "$URL$path")
        CODE=${out##*$'\n'}
        BODY=${out%$'\n'*}
        BODY=${BODY%$'\n'}
}

# fleetlock ENDPOINT ID [GROUP [CURL-ARGS...]]: one FleetLock call the way
# Zincati makes it (reqwest: the body as a string, no Content-Type, the
# protocol header); sets CODE and BODY.
fleetlock() {
        local endpoint=$1 id=$2 group=${3:-default} out
        shift 3 2>/dev/null || shift $#
        out=$(printf '{\n  "client_params": {\n    "id": "%s",\n    "group": "%s"\n  }\n}' "$id" "$group" |
                curl -s -X POST -w '\n%{http_code}' -H 'fleet-lock-protocol: true' -H 'Content-Type:' \
                        --data-binary @- "$@" "$URL/v1/$endpoint")
        CODE=${out##*$'\n'}
        BODY=${out%$'\n'*}
        BODY=${BODY%$'\n'}
}

# raw ENDPOINT BODY [CURL-ARGS...]: a POST with exactly these headers and body.
raw() {
        local endpoint=$1 body=$2 out
        shift 2
        out=$(curl -s -X POST -w '\n%{http_code}' -H 'Content-Type:' --data-binary "$body" "$@" "$URL/v1/$endpoint")
        CODE=${out##*$'\n'}
        BODY=${out%$'\n'*}
        BODY=${BODY%$'\n'}
}

# empty_object JSON: the body is {} (the server ends it with a newline).
empty_object() { [ "$(jq -c . <<<"$1" 2>/dev/null)" = "{}" ]; }
granted() { [ "$CODE" = 200 ] && empty_object "$BODY"; }
# refused GROUP: 409 with FleetLock's error object naming the group.
refused() {
        [ "$CODE" = 409 ] && [ "$(jq -r .kind <<<"$BODY")" = failed_lock ] &&
                jq -r .value <<<"$BODY" | grep -q "group $1: "
}
kind_is() { [ "$CODE" = "$1" ] && [ "$(jq -r .kind <<<"$BODY")" = "$2" ]; }

if [ ! -x "$SD" ]; then
        t_case "slipwayd is built"
        t_fail "no $SD (make, or set SLIPWAYD)"
        t_end
        exit 1
fi

t_case "a budget of one on the fleetlock groups"
start_server "$D/state"
api PUT /v1/budgets/fleetlock -H 'Content-Type: application/json' -d '{"max_unavailable": 1}'
c1=$CODE
api GET /v1/budgets
if [ -n "$URL" ] && [ "$c1" = 200 ] &&
        [ "$(jq -c '.budgets' <<<"$BODY")" = '[{"budget":"max_unavailable 1","max_unavailable":1,"selector":"fleetlock"}]' ]; then
        t_ok
else
        t_fail "put=$c1 $CODE $BODY $(cat "$D/state.log")"
fi

t_case "node A takes the lock"
fleetlock pre-reboot $A
granted && t_ok || t_fail "$CODE $BODY"

t_case "node B is refused while A holds it, naming the group"
fleetlock pre-reboot $B
refused fleetlock=default && t_ok || t_fail "$CODE $BODY"

t_case "A asking again keeps its lock (recursive)"
fleetlock pre-reboot $A
granted && t_ok || t_fail "$CODE $BODY"

t_case "A releases at steady state"
fleetlock steady-state $A
granted && t_ok || t_fail "$CODE $BODY"

t_case "B takes the lock once A released it"
fleetlock pre-reboot $B
granted && t_ok || t_fail "$CODE $BODY"

t_case "A is refused while B holds it"
fleetlock pre-reboot $A
refused fleetlock=default && t_ok || t_fail "$CODE $BODY"

t_case "steady state without the lock succeeds and leaves B's lock alone"
fleetlock steady-state $A
c1=$CODE b1=$BODY
fleetlock pre-reboot $C
if [ "$c1" = 200 ] && empty_object "$b1" && refused fleetlock=default; then t_ok; else
        t_fail "steady-state: $c1 $b1; C: $CODE $BODY"; fi

t_case "another group has its own slot"
fleetlock pre-reboot $W workers
c1=$CODE b1=$BODY
fleetlock steady-state $W workers
if [ "$c1" = 200 ] && empty_object "$b1" && granted; then t_ok; else t_fail "$c1 $b1 / $CODE $BODY"; fi

t_case "Content-Type: application/json is accepted too"
fleetlock steady-state $B default -H 'Content-Type: application/json'
granted && t_ok || t_fail "$CODE $BODY"

t_case "the nodes are hosts with the fleetlock label"
api GET "/v1/hosts?label=fleetlock=default"
if [ "$CODE" = 200 ] && [ "$(jq '.hosts | length' <<<"$BODY")" = 3 ] &&
        [ "$(jq -r '.hosts[].hostname' <<<"$BODY" | sort | tr '\n' ' ')" = "$(printf 'fleetlock:%s\n' $A $B $C | sort | tr '\n' ' ')" ] &&
        [ "$(jq '[.hosts[] | select(.lease != null)] | length' <<<"$BODY")" = 0 ]; then
        t_ok
else
        t_fail "$CODE $BODY"
fi

t_case "without the fleet-lock-protocol header: 400"
raw pre-reboot "{\"client_params\":{\"group\":\"default\",\"id\":\"$A\"}}"
c1=$CODE k1=$(jq -r .kind <<<"$BODY")
raw pre-reboot "{\"client_params\":{\"group\":\"default\",\"id\":\"$A\"}}" -H 'fleet-lock-protocol: false'
# FleetLock clients read the reason from "value".
if [ "$c1" = 400 ] && [ "$k1" = bad_request ] && kind_is 400 bad_request &&
        jq -e '.value | test("fleet-lock-protocol: true")' <<<"$BODY" >/dev/null; then t_ok; else
        t_fail "$c1 $k1 / $CODE $BODY"; fi

t_case "a malformed body: 400"
ok=1 out=""
for body in '{"client_params": {"group": "default", "id": ' 'not json' '[]' '{}' '{"client_params": {"group": "default"}}' \
        '{"client_params": {"id": "x"}}' '{"client_params": {"group": "no/slash", "id": "x"}}' \
        '{"client_params": {"group": "default", "id": ""}}' '{"client_params": {"group": "default", "id": 7}}'; do
        raw pre-reboot "$body" -H 'fleet-lock-protocol: true'
        [ "$CODE" = 400 ] || { ok=0; out="$out [$body] $CODE $BODY"; }
done
[ $ok = 1 ] && t_ok || t_fail "$out"

t_case "nothing was granted by the bad requests"
fleetlock pre-reboot $A
c1=$CODE b1=$BODY
fleetlock steady-state $A
if [ "$c1" = 200 ] && empty_object "$b1" && granted; then t_ok; else t_fail "$c1 $b1 / $CODE $BODY"; fi

t_case "the audit log has grants, refusals and releases by fleetlock:<id>"
api GET "/v1/hosts?label=fleetlock=default"
HA=$(jq -r ".hosts[] | select(.hostname == \"fleetlock:$A\") | .id" <<<"$BODY")
HB=$(jq -r ".hosts[] | select(.hostname == \"fleetlock:$B\") | .id" <<<"$BODY")
api GET "/v1/audit?action=lease&limit=1000"
# "actor action target" per entry, in order.
log=$(jq -r '.entries[] | "\(.actor) \(.action) \(.target)"' <<<"$BODY")
expected="fleetlock:$A lease.grant $HA
fleetlock:$B lease.refuse $HB
fleetlock:$A lease.release $HA
fleetlock:$B lease.grant $HB
fleetlock:$A lease.refuse $HA"
refuse_group=$(jq -r "[.entries[] | select(.action == \"lease.refuse\")][0].detail.group" <<<"$BODY")
if [ -n "$HA" ] && [ -n "$HB" ] && [ "$(head -n 5 <<<"$log")" = "$expected" ] &&
        [ "$refuse_group" = fleetlock=default ] &&
        grep -q "^fleetlock:$B lease.release $HB\$" <<<"$log"; then
        t_ok
else
        t_fail "$log"
fi

t_case "many nodes at once: exactly one gets the slot"
for i in $(seq 1 8); do
        (fleetlock pre-reboot "$(printf 'race%028d' "$i")" race; echo "$CODE" >"$D/race.$i") &
done
for ((i = 0; i < 600; i++)); do
        [ "$(cat "$D"/race.* 2>/dev/null | wc -l)" = 8 ] && break
        sleep 0.1
done
codes=$(cat "$D"/race.* | sort | uniq -c | tr -s ' ' | tr '\n' ',')
if [ "$(grep -c '^200$' "$D"/race.* | awk -F: '{s += $2} END {print s}')" = 1 ] &&
        [ "$(grep -c '^409$' "$D"/race.* | awk -F: '{s += $2} END {print s}')" = 7 ]; then
        t_ok
else
        t_fail "codes: $codes"
fi

# Zincati calls the server only around an update: a node that took and gave
# back its slot, then stayed quiet past the heartbeat timeout, is not down.
t_case "quiet nodes do not count as down (heartbeat timeout)"
start_server "$D/quiet" --heartbeat-timeout 1
api PUT /v1/budgets/fleetlock -H 'Content-Type: application/json' -d '{"max_unavailable": 1}'
fleetlock pre-reboot $A
c1=$CODE
fleetlock steady-state $A
sleep 2.5
fleetlock pre-reboot $B
if [ "$c1" = 200 ] && granted; then t_ok; else t_fail "A: $c1; B after the timeout: $CODE $BODY"; fi

# holders_max: the most lock holders of one fleetlock group, now.
holders_max() {
        api GET /v1/hosts
        jq '[.hosts[] | select(.lease != null) | .labels.fleetlock] | group_by(.) | map(length) | max // 0' <<<"$BODY"
}

t_case "a holder asking in another group is refused, naming the group it holds in"
start_server "$D/groups"
api PUT /v1/budgets/fleetlock -H 'Content-Type: application/json' -d '{"max_unavailable": 1}'
fleetlock pre-reboot $A g1
c1=$CODE
fleetlock pre-reboot $A g2
if [ "$c1" = 200 ] && [ "$CODE" = 409 ] && [ "$(jq -r .kind <<<"$BODY")" = failed_lock ] &&
        [[ $(jq -r .value <<<"$BODY") == "the lock is held in group fleetlock=g1:"*"fleetlock=g2" ]]; then t_ok; else
        t_fail "$c1 / $CODE $BODY"; fi

t_case "three nodes alternating groups never hold more locks in a group than its budget"
most=0 codes=""
for pass in "g1 g2" "g2 g1" "g1 g2"; do
        for n in $A $B $C; do
                for g in $pass; do
                        fleetlock pre-reboot "$n" "$g"
                        codes+="$CODE "
                        m=$(holders_max)
                        [ "$m" -gt "$most" ] && most=$m
                done
        done
done
# The audit log replayed: each node's group (from its registration and its
# moves) and its grants and releases, in order.
api GET "/v1/audit?limit=1000"
replayed=$(jq 'reduce .entries[] as $e ({g: {}, held: {}, max: 0};
        if $e.action == "host.register" and $e.detail.fleetlock then .g[$e.target] = $e.detail.fleetlock
        elif $e.action == "host.labels" and $e.detail.set.fleetlock then .g[$e.target] = $e.detail.set.fleetlock
        elif $e.action == "lease.grant" then .held[$e.target] = true
        elif $e.action == "lease.release" then .held[$e.target] = false
        else . end
        | .g as $g | ([.held | to_entries[] | select(.value) | $g[.key]] | group_by(.) | map(length) | max // 0) as $n
        | .max = ([.max, $n] | max)) | .max' <<<"$BODY")
grants=$(jq '[.entries[] | select(.action == "lease.grant")] | length' <<<"$BODY")
if [ "$most" = 1 ] && [ "$replayed" = 1 ] && [ "$grants" = 2 ]; then t_ok; else
        t_fail "most holders in a group $most, replayed $replayed, $grants grants; codes $codes"; fi

t_case "steady-state in another group gives the lock back, then moves the node"
fleetlock steady-state $A g2
c1=$CODE
api GET "/v1/hosts?label=fleetlock=g2"
moved=$(jq -r ".hosts[] | select(.hostname == \"fleetlock:$A\") | .lease" <<<"$BODY")
fleetlock pre-reboot $C g1
if [ "$c1" = 200 ] && [ "$moved" = null ] && granted; then t_ok; else t_fail "$c1, A in g2 with lease '$moved'; C: $CODE $BODY"; fi

t_case "an id that is a known host's ID or MAC is refused (403): no second record, no lease"
curl -s -o /dev/null "$URL/boot/ipxe?mac=52:54:00:77:00:01"
api GET /v1/hosts/52:54:00:77:00:01
HK=$(jq -r .id <<<"$BODY")
api GET /v1/hosts
before=$(jq '.hosts | length' <<<"$BODY")
ok=1 out=""
for id in "$HK" 52:54:00:77:00:01 52-54-00-77-00-01; do
        for endpoint in pre-reboot steady-state; do
                fleetlock $endpoint "$id" g1
                kind_is 403 forbidden && jq -r .value <<<"$BODY" | grep -q "host $HK" || { ok=0; out+=" [$endpoint $id] $CODE $BODY"; }
        done
done
api GET /v1/hosts
after=$(jq '.hosts | length' <<<"$BODY")
lease=$(jq -r ".hosts[] | select(.id == \"$HK\") | .lease" <<<"$BODY")
if [[ $HK == h-* ]] && [ $ok = 1 ] && [ "$before" = "$after" ] && [ "$lease" = null ]; then t_ok; else
        t_fail "$HK hosts $before -> $after, lease $lease;$out"; fi

t_end
