#!/bin/bash
# A fleet of real slipway-agent processes (sim backend) against slipwayd,
# over network namespaces: slipwayd on a bridge in one namespace, the hosts
# split between two others, each joined to the bridge by a veth pair.
#
# FLEET_HOSTS hosts (default 500) labelled into 5 services (a..e) x 10 racks,
# on fleet:1.0. Budgets: 1 host per rack, 10% of a service. A rollout of
# fleet:2.0 with waves 1%, 10%, 50%, 100%, service b after service a. During
# it, 2% of the hosts stop answering for 40 s, 1% fail their health check on
# 2.0, and slipwayd is killed -9 and started again. Asserted: the budgets
# hold in every 100 ms sample of the rollout's groups and in a replay of the
# audit log's leases; every other host ends on 2.0, the failing ones on 1.0
# reported rolled-back, the stopped ones converge after they return. Prints
# the rollout's time against the lower bound the rack budget allows.
# FLEET_FAULTS=0 leaves the stops, the failing hosts and the kill out: a
# clean rollout, whose time against the lower bound is make bench's figure.
. "$(dirname "$0")/../lib.sh"
t_begin fleet

AG=$BIN/slipway-agent
B=$BIN/slipway-build
SD=$BIN/slipwayd
D=$T_DIR
HOSTS=${FLEET_HOSTS:-500}
FAULTS=${FLEET_FAULTS:-1}
REBOOT=2
export SOURCE_DATE_EPOCH=1700000000 SLIPWAY_CACHE=$D/cache
SRV=slw-fs-$$
URL=http://10.96.0.1:8080

declare -a APIDS=()
SPID=
SAMPLER=
. "$TOP/tests/fleet/fleet-lib.sh"

# The sampler, the agents (stopped ones too), slipwayd; t_exit then stops
# whatever is left in the namespaces and deletes them.
cleanup() {
        t_stop "$SAMPLER" "${APIDS[@]}"
        t_stop "$SPID"
}
t_on_exit cleanup

api() { ip netns exec "$SRV" curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
agent_server() { echo "$URL"; }

t_case "a bridge namespace for slipwayd and two host namespaces joined by veth pairs"
fleet_netns "$SRV" "slw-fa-$$" "slw-fb-$$"
rc=$?
if [ $rc = 0 ]; then
        t_ok
elif [ $rc = 2 ]; then
        t_fail "veth setup failed"
else
        t_skip "cannot make network namespaces here ($(cat "$D/netns.err"))"
        t_end
        exit $?
fi

t_case "images fleet:1.0 and fleet:2.0 (busybox and a placeholder kernel)"
fleet_images 1.0 2.0 && t_ok || t_fail "$(tail -n 5 "$D/build.log")"

start_server() {
        ip netns exec "$SRV" "$SD" --state-dir "$D/state" --listen 10.96.0.1:8080 --trusted-keys "$D/keys" \
                --log-json no --enroll-token fleet --checkin-interval 2 \
                --heartbeat-timeout 10 >>"$D/slipwayd.log" 2>&1 &
        SPID=$!
        for ((i = 0; i < 100; i++)); do api -o /dev/null -f "$URL/v1/status" && return 0; sleep 0.1; done
        return 1
}

t_case "slipwayd in its namespace, both images published"
TOKEN=$("$SD" --state-dir "$D/state" --log-json no token create fleet)
start_server
ok=1
for v in 1.0 2.0; do
        ip netns exec "$SRV" "$B" -q --store "$D/store" push --token "$TOKEN" "$URL" "fleet:$v" >>"$D/push.log" 2>&1 || ok=0
done
[ $ok = 1 ] && t_ok || t_fail "$(tail -n 5 "$D/push.log" "$D/slipwayd.log")"

# The hosts: 1% fail their health check on 2.0 (every 100th, from host 50).
failing() { [ "$FAULTS" = 1 ] && [ $(($1 % 100)) = 50 ]; }

t_case "$HOSTS hosts register from both namespaces, labelled 5 services x 10 racks"
mkdir -p "$D/h"
fleet_register 0 2 &
r0=$!
fleet_register 1 2
rc1=$?
wait $r0 && [ $rc1 = 0 ] && [ "$(api "$URL/v1/hosts" | jq '.hosts | length')" = "$HOSTS" ] &&
        t_ok || t_fail "$(api "$URL/v1/hosts" | jq '.hosts | length') hosts; $(tail -n 3 "$D/h/1.log")"

t_case "all $HOSTS agents run and converge on 1.0"
for ((n = 0; n < HOSTS; n++)); do
        # shellcheck disable=SC2046
        ip netns exec "$(host_ns "$n")" "$AG" $(fleet_agent_args "$n") run >>"$D/h/$n.log" 2>&1 &
        APIDS[$n]=$!
done
for ((i = 0; i < 300; i++)); do [ "$(fleet_count_on 1.0)" = "$HOSTS" ] && break; sleep 1; done
[ "$(fleet_count_on 1.0)" = "$HOSTS" ] && t_ok "$i s" || t_fail "$(fleet_count_on 1.0) of $HOSTS on 1.0"

if [ "$FAULTS" = 1 ]; then
        t_case "a rollout of 2.0 through stopped hosts, failing hosts and a slipwayd kill -9"
else
        t_case "a rollout of 2.0 (no faults)"
fi
# Leases from here on are under the budgets (1.0's came before them).
audit0=$(api "$URL/v1/audit?last=1" | jq '.entries[-1].id // 0')
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack"
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": "10%"}' "$URL/v1/budgets/service"
# The stopped hosts (2%): every 50th from host 7. Each group may show one
# more host down per stopped member: going quiet is not the coordinator's doing.
declare -a STOPPED=()
if [ "$FAULTS" = 1 ]; then
        for ((n = 7; n < HOSTS; n += 50)); do STOPPED+=("$n"); done
fi
extra=$(for n in "${STOPPED[@]}"; do echo "rack=$(rack_of "$n")"; echo "service=$(service_of "$n")"; done |
        jq -R . | jq -s 'reduce .[] as $g ({}; .[$g] += 1)')
svc_allowed=$((HOSTS / 5 * 10 / 100))
[ "$svc_allowed" -ge 1 ] || svc_allowed=1
start=$(now_ms)
id=$(api -X POST -H 'Content-Type: application/json' \
        -d '{"image": "fleet:2.0", "waves": ["1%", "10%", "50%", "100%"], "max_failures": 5, "on_failure": "pause",
             "order": {"key": "service", "values": ["a", "b"]}}' "$URL/v1/rollouts" | jq -r .id)
# Samples every 100 ms: a group over its budget (plus its stopped members).
(
        while :; do
                api "$URL/v1/rollouts/$id" | jq -c --argjson extra "$extra" --argjson svc "$svc_allowed" \
                        '.groups[]? | select(.down > (if (.group | startswith("rack=")) then 1 else $svc end)
                                                     + ($extra[.group] // 0))' >>"$D/violations" 2>/dev/null
                echo >>"$D/samples"
                sleep 0.1
        done
) &
SAMPLER=$!
if [ "$FAULTS" = 1 ]; then
        sleep 5
        for n in "${STOPPED[@]}"; do kill -STOP "${APIDS[$n]}"; done
        sleep 15
        kill -9 "$SPID"
        wait "$SPID" 2>/dev/null
        sleep 2
        start_server
        sleep 23
        for n in "${STOPPED[@]}"; do kill -CONT "${APIDS[$n]}"; done
fi
state=
for ((i = 0; i < 900; i++)); do
        state=$(api "$URL/v1/rollouts/$id" | jq -r .state)
        [ "$state" = done ] || [ "$state" = paused ] && break
        sleep 1
done
done_ms=$(now_ms)
expect=$HOSTS
[ "$FAULTS" = 1 ] && expect=$((HOSTS - HOSTS / 100))
for ((i = 0; i < 120; i++)); do [ "$(fleet_count_on 2.0)" -ge "$expect" ] && break; sleep 1; done
kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
SAMPLER=
on2=$(fleet_count_on 2.0)
if [ "$state" = done ] && [ "$on2" = "$expect" ]; then
        t_ok "$(((done_ms - start) / 1000)) s; $on2 hosts on 2.0"
else
        t_fail "rollout $state; $on2 of $expect on 2.0; $(api "$URL/v1/rollouts/$id" | jq -c '{state,reason,waves}')"
fi

t_case "no budget exceeded in $(wc -l <"$D/samples" 2>/dev/null || echo 0) samples of the rollout's groups"
[ ! -s "$D/violations" ] && [ "$(wc -l <"$D/samples")" -gt 100 ] && t_ok || t_fail "$(head -n 5 "$D/violations")"

fleet_audit "$audit0" >"$D/audit.jsonl"
fleet_labels >"$D/labels.json"

t_case "no budget exceeded in the audit log's leases, replayed grant by grant"
over=$(fleet_over "$D/audit.jsonl" "$D/labels.json" "$svc_allowed")
grants=$(grep -c '"lease.grant"' "$D/audit.jsonl")
[ -z "$over" ] && [ "$grants" -ge "$expect" ] && t_ok "$grants grants" || t_fail "$grants grants; $over"

t_case "the failing hosts are back on 1.0 and reported; the stopped ones converged"
bad=
for ((n = 0; n < HOSTS; n++)); do
        j=$(api "$URL/v1/hosts/$(cat "$D/h/$n/id")")
        if failing "$n"; then
                jq -e '.version == "1.0" and .state == "rolled-back" and (.message | test("fails on 2.0"))' \
                        <<<"$j" >/dev/null || bad="$bad h$n:$(jq -c '{state,version}' <<<"$j")"
        else
                jq -e '.version == "2.0" and .state == "healthy"' <<<"$j" >/dev/null ||
                        bad="$bad h$n:$(jq -c '{state,version}' <<<"$j")"
        fi
done
[ -z "$bad" ] && t_ok "${#STOPPED[@]} stopped, $((HOSTS - expect)) failing" || t_fail "${bad:0:600}"

t_case "rollout time against the lower bound of the budgets"
lb=$(fleet_lower_bound "$D/audit.jsonl" "$D/labels.json" "$svc_allowed")
total=$(((done_ms - start) / 1000))
if [ "$lb" -gt 0 ]; then
        t_ok "rollout $total s, lower bound $lb s (lease times of the busiest group over its budget), ratio $(awk -v t="$total" -v l="$lb" 'BEGIN { printf "%.2f", t / l }')"
else
        t_fail "no lease times in the audit log"
fi

t_end
