#!/bin/bash
# make test-ha: the control plane loses parts while a rollout runs, and the
# fleet does not notice. A PostgreSQL primary with a synchronous streaming
# standby; three slipwayd on it (replicas = 2), in one namespace; HA_HOSTS
# real agents (default 200, sim backend) in two others, each knowing all
# three servers. Budgets: 1 host per rack, 10% of a service; a rollout of
# fleet:2.0 in waves. During it:
#   - the instance that leads the coordinator is killed -9 (and started
#     again later), then another instance;
#   - the primary stops and the standby is promoted: the instances find it
#     through their multi-host connection string;
#   - fleet:3.0 is pushed to one instance, which is killed -9 before any
#     other holds its blobs: no instance may show it; once the instance is
#     back and the blobs reach two instances, every instance shows it whole.
# Asserted: no budget exceeded in 100 ms samples or in the audit log
# replayed grant by grant; lease epochs only grow and none is given twice;
# every lease an agent was granted is in the audit log; the rollout
# completes; no published image is lost. Printed: leader loss → new
# leader, and primary loss → the first write acknowledged again.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin ha

AG=$BIN/slipway-agent
B=$BIN/slipway-build
SD=$BIN/slipwayd
D=$T_DIR
HOSTS=${HA_HOSTS:-200}
REBOOT=2
export SOURCE_DATE_EPOCH=1700000000 SLIPWAY_CACHE=$D/cache
SRV=slw-hs-$$
N=3
URLS=(http://10.96.0.1:8081 http://10.96.0.1:8082 http://10.96.0.1:8083)
URL=${URLS[0]}
declare -a SPIDS=() APIDS=()
SAMPLER=
. "$TOP/tests/fleet/fleet-lib.sh"

cleanup() {
        t_stop "$SAMPLER" "${APIDS[@]}"
        t_stop "${SPIDS[@]}"
}
t_on_exit cleanup

# api CURL-ARGS...: curl with the admin token against the first instance
# that answers: "$URL" in the arguments stands for each instance in turn.
api() {
        local i a out
        local -a args
        for ((i = 0; i < N; i++)); do
                args=()
                for a in "$@"; do args+=("${a/#$URL/${URLS[$i]}}"); done
                if out=$(ip netns exec "$SRV" curl -s -f --max-time 3 -H "Authorization: Bearer $TOKEN" "${args[@]}"); then
                        printf '%s' "$out"
                        return 0
                fi
        done
        return 1
}
# on I CURL-ARGS...: curl with the admin token against instance I only.
on() {
        local i=$1
        shift
        ip netns exec "$SRV" curl -s --max-time 3 -H "Authorization: Bearer $TOKEN" "${@/#$URL/${URLS[$i]}}"
}
# Host n knows the three servers, starting from its own share of them.
agent_server() {
        local k=$(($1 % N))
        echo "${URLS[@]:$k} ${URLS[*]:0:$k}" | xargs | tr ' ' ,
}
failing() { false; }

t_case "namespaces: the servers' bridge and two host namespaces"
fleet_netns "$SRV" "slw-ha-$$" "slw-hb-$$"
rc=$?
if [ $rc = 1 ]; then
        t_skip "cannot make network namespaces here ($(cat "$D/netns.err"))"
        t_end
        exit $?
fi
[ $rc = 0 ] && t_ok || t_fail "veth setup failed"

t_case "images fleet:1.0, 2.0 and 3.0"
fleet_images 1.0 2.0 3.0 && t_ok || t_fail "$(tail -n 5 "$D/build.log")"

t_case "a PostgreSQL primary and a synchronous streaming standby"
if pg_start pg >"$D/pg.log" 2>&1 && pg_standby pg2 pg >>"$D/pg.log" 2>&1 && pg_sync pg pg2 >>"$D/pg.log" 2>&1; then
        DB=$(pg_multi_url pg pg2)
        t_ok
else
        t_fail "$(tail -n 5 "$D/pg.log")"
fi

# start_instance I: instance I (s1, s2, s3) on the shared database.
start_instance() {
        local i=$1 port=$((8081 + $1))
        ip netns exec "$SRV" "$SD" --state-dir "$D/s$i" --listen "10.96.0.1:$port" --public-url "${URLS[$i]}" \
                --instance "s$((i + 1))" --database "$DB" --replicas 2 --leader-ttl 3 --trusted-keys "$D/keys" \
                --log-json no --enroll-token fleet --checkin-interval 2 --heartbeat-timeout 10 \
                >>"$D/s$i.log" 2>&1 &
        SPIDS[$i]=$!
        for ((t = 0; t < 100; t++)); do on "$i" -o /dev/null -f "$URL/v1/status" && return 0; sleep 0.1; done
        return 1
}
# image_on I IMAGE: instance I shows IMAGE (visible, not replicating).
image_on() { on "$1" -f "$URL/v1/images/$2" | jq -e '.state == "visible"' >/dev/null; }
# image_pending I IMAGE: instance I has IMAGE replicating.
image_pending() { on "$1" -f "$URL/v1/images/$2" | jq -e '.state == "replicating"' >/dev/null; }
# leader: the index of the instance that leads, by the instances' own word.
leader() {
        api "$URL/v1/instances" | jq -r '.leader.instance // empty' | sed -n 's/^s\([0-9]\)$/\1/p' |
                { read -r n && echo $((n - 1)); }
}

t_case "three slipwayd on the database; fleet:1.0 and 2.0 pushed, reach two instances, shown by all"
TOKEN=$("$SD" --state-dir "$D/s0" --database "$DB" --log-json no token create ha 2>>"$D/s0.log")
ok=1
for ((i = 0; i < N; i++)); do start_instance "$i" || ok=0; done
for v in 1.0 2.0; do
        ip netns exec "$SRV" "$B" -q --store "$D/store" push --token "$TOKEN" "$URL" "fleet:$v" >>"$D/push.log" 2>&1 || ok=0
done
visible=0
for ((i = 0; i < N; i++)); do
        image_on "$i" fleet:2.0 && visible=$((visible + 1))
done
[ $ok = 1 ] && [ $visible = $N ] && [ -n "$(leader)" ] && t_ok "s$(($(leader) + 1)) leads" ||
        t_fail "fleet:2.0 visible on $visible instances; $(tail -n 3 "$D/push.log" "$D/s0.log")"

t_case "$HOSTS hosts register, labelled 5 services x 10 racks, and converge on 1.0"
mkdir -p "$D/h"
fleet_register 0 2 &
r0=$!
fleet_register 1 2
rc1=$?
wait $r0 && [ $rc1 = 0 ] || t_fail "registration failed: $(tail -n 3 "$D/h/1.log")"
for ((n = 0; n < HOSTS; n++)); do
        # shellcheck disable=SC2046
        ip netns exec "$(host_ns "$n")" "$AG" $(fleet_agent_args "$n") run >>"$D/h/$n.log" 2>&1 &
        APIDS[$n]=$!
done
for ((i = 0; i < 300; i++)); do [ "$(fleet_count_on 1.0)" = "$HOSTS" ] && break; sleep 1; done
[ "$(fleet_count_on 1.0)" = "$HOSTS" ] && t_ok "$i s" || t_fail "$(fleet_count_on 1.0) of $HOSTS on 1.0"

# ms_until CMD...: milliseconds until CMD succeeds (tried every 100 ms, for
# at most a minute); 60000 and a failure when it never does.
ms_until() {
        local t0 i
        t0=$(now_ms)
        for ((i = 0; i < 600; i++)); do
                "$@" >/dev/null 2>&1 && { echo $(($(now_ms) - t0)); return 0; }
                sleep 0.1
        done
        echo 60000
        return 1
}
# new_leader OLD: another instance than OLD leads.
new_leader() { local l; l=$(leader) && [ -n "$l" ] && [ "$l" != "$1" ]; }
# a_write: a write acknowledged by any instance (a label on the first host).
a_write() {
        api -o /dev/null -X POST -H 'Content-Type: application/json' -d "{\"set\": {\"probe\": \"$(now_ms)\"}}" \
                "$URL/v1/hosts/$(cat "$D/h/0/id")/labels"
}

t_case "a rollout of 2.0 through the loss of the leader, another instance, the primary, and a push cut short"
audit0=$(api "$URL/v1/audit?last=1" | jq '.entries[-1].id // 0')
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack"
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": "10%"}' "$URL/v1/budgets/service"
svc_allowed=$((HOSTS / 5 * 10 / 100))
[ "$svc_allowed" -ge 1 ] || svc_allowed=1
start=$(now_ms)
id=$(api -X POST -H 'Content-Type: application/json' \
        -d '{"image": "fleet:2.0", "waves": ["1%", "10%", "50%", "100%"], "max_failures": 5, "on_failure": "pause"}' \
        "$URL/v1/rollouts" | jq -r .id)
# Samples every 100 ms from any instance: a group over its budget.
(
        while :; do
                if j=$(api "$URL/v1/rollouts/$id"); then
                        jq -c --argjson svc "$svc_allowed" '.groups[]? | select(.down >
                                (if (.group | startswith("rack=")) then 1 else $svc end))' <<<"$j" >>"$D/violations"
                        echo >>"$D/samples"
                else
                        echo >>"$D/unanswered"
                fi
                sleep 0.1
        done
) &
SAMPLER=$!
faults=
sleep 5
# 1. The leader dies; another takes over; the dead one comes back.
old=$(leader)
kill -9 "${SPIDS[$old]}"
wait "${SPIDS[$old]}" 2>/dev/null
leader_ms=$(ms_until new_leader "$old") || faults+=" no new leader after s$((old + 1)) died;"
start_instance "$old" || faults+=" s$((old + 1)) did not start again;"
sleep 5
# 2. The primary stops; the standby is promoted.
pg_crash pg >>"$D/pg.log" 2>&1 || faults+=" the primary did not stop;"
t0=$(now_ms)
pg_promote pg2 >>"$D/pg.log" 2>&1 || faults+=" the standby was not promoted;"
ms_until a_write >/dev/null || faults+=" no write after the promotion;"
primary_ms=$(($(now_ms) - t0))
sleep 3
# 3. fleet:3.0 to one instance, which dies before any other holds its blobs:
# the others are stopped while it takes the push (after a write through it
# shows that none of them holds the database's write lock).
x=$(((old + 1) % N))
others=()
for ((i = 0; i < N; i++)); do [ $i = $x ] || others+=("${SPIDS[$i]}"); done
for ((try = 0; try < 20; try++)); do
        kill -STOP "${others[@]}"
        on "$x" -o /dev/null -f --max-time 1 -X POST -H 'Content-Type: application/json' \
                -d '{"set": {"probe": "push"}}' "$URL/v1/hosts/$(cat "$D/h/0/id")/labels" && break
        kill -CONT "${others[@]}"
        sleep 0.5
done
ip netns exec "$SRV" timeout 20 "$B" -q --store "$D/store" push --replicas-timeout 0 --token "$TOKEN" "${URLS[$x]}" fleet:3.0 \
        >>"$D/push3.log" 2>&1 || faults+=" the push of fleet:3.0 failed;"
image_pending "$x" fleet:3.0 || faults+=" fleet:3.0 is not replicating on s$((x + 1));"
kill -9 "${SPIDS[$x]}"
wait "${SPIDS[$x]}" 2>/dev/null
kill -CONT "${others[@]}"
seen3=
for check in 1 2; do
        sleep 3
        for ((i = 0; i < N; i++)); do
                [ $i = $x ] && continue
                image_on "$i" fleet:3.0 && seen3+=" s$((i + 1)) (check $check)"
        done
done
start_instance "$x" || faults+=" s$((x + 1)) did not start again;"
sleep 5
# 4. Another instance dies, and comes back.
y=$(((x + 1) % N))
kill -9 "${SPIDS[$y]}"
wait "${SPIDS[$y]}" 2>/dev/null
sleep 5
start_instance "$y" || faults+=" s$((y + 1)) did not start again;"
state=
for ((i = 0; i < 900; i++)); do
        state=$(api "$URL/v1/rollouts/$id" | jq -r .state)
        [ "$state" = done ] || [ "$state" = paused ] && break
        sleep 1
done
done_ms=$(now_ms)
for ((i = 0; i < 120; i++)); do [ "$(fleet_count_on 2.0)" -ge "$HOSTS" ] && break; sleep 1; done
kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
SAMPLER=
on2=$(fleet_count_on 2.0)
if [ "$state" = done ] && [ "$on2" = "$HOSTS" ] && [ -z "$faults" ]; then
        t_ok "$(((done_ms - start) / 1000)) s; $on2 hosts on 2.0"
else
        t_fail "rollout $state; $on2 of $HOSTS on 2.0;$faults"
fi

t_case "failover times (aim: under 10 s each)"
if [ "${leader_ms:-60000}" -lt 60000 ] && [ "$primary_ms" -lt 60000 ]; then
        t_ok "leader loss → new leader $((leader_ms / 1000)).$((leader_ms % 1000 / 100)) s; primary loss → first write acknowledged $((primary_ms / 1000)).$((primary_ms % 1000 / 100)) s"
else
        t_fail "leader loss → new leader ${leader_ms:-none} ms; primary loss → first write $primary_ms ms"
fi

t_case "fleet:3.0, cut short on its instance, was shown by none of the others"
[ -z "$seen3" ] && t_ok || t_fail "shown by$seen3"

t_case "fleet:3.0 reaches two instances once its instance is back, and every instance shows it whole"
ok=0
for ((i = 0; i < 60; i++)); do
        n3=0
        for ((j = 0; j < N; j++)); do image_on "$j" fleet:3.0 && n3=$((n3 + 1)); done
        [ $n3 = $N ] && ok=1 && break
        sleep 1
done
bad=
if [ $ok = 1 ]; then
        for ((j = 0; j < N; j++)); do
                for digest in $(on "$j" "$URL/v1/images/fleet:3.0" | jq -r '.artifacts[].sha256' | sort -u); do
                        got=$(on "$j" "$URL/blobs/sha256/$digest" | sha256sum | cut -d' ' -f1)
                        [ "$got" = "$digest" ] || bad+=" s$((j + 1)):${digest:0:12}"
                done
        done
fi
[ $ok = 1 ] && [ -z "$bad" ] && t_ok "after $i s" || t_fail "shown by $n3 of $N; blobs not served whole:$bad"

t_case "no published image lost: fleet:1.0 and 2.0 on every instance, their blobs served whole"
bad=
for v in 1.0 2.0; do
        for ((j = 0; j < N; j++)); do
                image_on "$j" "fleet:$v" || { bad+=" fleet:$v not on s$((j + 1))"; continue; }
                for digest in $(on "$j" "$URL/v1/images/fleet:$v" | jq -r '.artifacts[].sha256' | sort -u); do
                        got=$(on "$j" "$URL/blobs/sha256/$digest" | sha256sum | cut -d' ' -f1)
                        [ "$got" = "$digest" ] || bad+=" s$((j + 1)):${digest:0:12}"
                done
        done
done
[ -z "$bad" ] && t_ok || t_fail "$bad"

fleet_audit "$audit0" >"$D/audit.jsonl"
fleet_audit 0 >"$D/audit-all.jsonl"
fleet_labels >"$D/labels.json"

t_case "no budget exceeded in $(cat "$D/samples" 2>/dev/null | wc -l) samples ($(cat "$D/unanswered" 2>/dev/null | wc -l) unanswered)"
[ ! -s "$D/violations" ] && [ "$(wc -l <"$D/samples")" -gt 100 ] && t_ok || t_fail "$(head -n 5 "$D/violations")"

t_case "no budget exceeded in the audit log's leases, replayed grant by grant"
over=$(fleet_over "$D/audit.jsonl" "$D/labels.json" "$svc_allowed")
grants=$(grep -c '"lease.grant"' "$D/audit.jsonl")
[ -z "$over" ] && [ "$grants" -ge "$HOSTS" ] && t_ok "$grants grants" || t_fail "$grants grants; $over"

t_case "lease epochs only grow, and none was given twice"
reused=$(jq -s -r '[.[] | select(.action == "lease.grant") | .detail.epoch] as $e
        | [range(1; $e | length) | select($e[.] <= $e[. - 1]) | "\($e[. - 1]) then \($e[.])"] | .[:5] | join("; ")' \
        "$D/audit.jsonl")
[ -z "$reused" ] && t_ok || t_fail "$reused"

t_case "every lease an agent was granted is in the audit log"
for ((n = 0; n < HOSTS; n++)); do
        sed -n "s/.*lease \([0-9]*\) granted.*/$(cat "$D/h/$n/id") \1/p" "$D/h/$n.log"
done | sort -u >"$D/granted-agents"
jq -r 'select(.action == "lease.grant") | "\(.target) \(.detail.epoch)"' "$D/audit-all.jsonl" | sort -u >"$D/granted-audit"
lost=$(comm -23 "$D/granted-agents" "$D/granted-audit" | head -n 5 | xargs)
[ -s "$D/granted-agents" ] && [ -z "$lost" ] && t_ok "$(wc -l <"$D/granted-agents") grants seen by agents" ||
        t_fail "not in the audit log: ${lost:-(no grant seen by any agent)}"

t_end
