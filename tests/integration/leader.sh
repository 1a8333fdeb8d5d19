#!/bin/bash
# Three slipwayd instances on one PostgreSQL database of the suite's own:
# exactly one coordinates (holds the leader lease) and all three agree
# which; the registry, /metrics and slipctl status show it. A rollout of
# real agents (sim backend) that know all three URLs runs, and the leader
# is killed with SIGKILL in its middle: another instance leads within 10 s
# with a higher epoch, and the rollout goes on and completes. Then the new
# leader stops with SIGTERM and hands over at once. Epochs, sampled all
# along from every live instance, only grow. The measured takeover times
# are printed.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin leader

B=$BIN/slipway-build
SD=$BIN/slipwayd
AG=$BIN/slipway-agent
C=$BIN/slipctl
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'
# ms_since T0: milliseconds since T0 (an $EPOCHREALTIME).
ms_since() {
        local now=${EPOCHREALTIME/./} then=${1/./}
        echo $(((now - then) / 1000))
}

t_case "a PostgreSQL server of the suite's own"
if pg_start >"$D/pg.log" 2>&1; then t_ok; else
        t_fail "pg_start: $(tail -n 5 "$D/pg.log")"
        t_end
        exit
fi

mkdir -p "$D/keys" "$D/health"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
for v in 1.0 2.0; do
        tiny_def "$D/tiny-$v.conf" $v
        $B -q --store "$D/store" build --key "$D/k.key" --no-disk "$D/tiny-$v.conf" >/dev/null
        $B -q --store "$D/store" export tiny:$v "$D/img-$v" >/dev/null
done
printf '#!/bin/sh\nexit 0\n' >"$D/health/10-ok"
chmod +x "$D/health/10-ok"
TOKEN=$("$SD" --state-dir "$D/a" --database "$PGURL" --log-json no token create ci 2>>"$D/token.log")

# start NAME: an instance called NAME with state directory $D/NAME on the
# shared database; its PID in PID_NAME, its URL in URL_NAME.
start() {
        local n=$1 i pid
        rm -f "$D/$n/slipwayd.url"
        "$SD" --state-dir "$D/$n" --database "$PGURL" --instance "$n" --listen 127.0.0.1:0 \
                --trusted-keys "$D/keys" --log-json no --enroll-token sekrit --checkin-interval 1 \
                --heartbeat-timeout 4 --leader-ttl 3 >>"$D/$n.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        for ((i = 0; i < 1200; i++)); do
                [ -s "$D/$n/slipwayd.url" ] && curl -s -o /dev/null "$(cat "$D/$n/slipwayd.url")/v1/status" && break
                sleep 0.05
        done
        printf -v "PID_$n" %s "$pid"
        printf -v "URL_$n" %s "$(cat "$D/$n/slipwayd.url" 2>/dev/null)"
}
api() { curl -s -m 5 -H "Authorization: Bearer $TOKEN" "$@"; }
url_of() { local u=URL_$1; echo "${!u}"; }
pid_of() { local p=PID_$1; echo "${!p}"; }
# leader_at NAME: "LEADER EPOCH" as instance NAME sees the lease ("- E"
# when no one holds it); nothing when it does not answer.
leader_at() {
        curl -s -m 2 "$(url_of "$1")/v1/instances" | jq -r '"\(.leader.instance // "-") \(.leader.epoch)"' 2>/dev/null
}
LIVE="a b c"
# sample: appends "EPOCH" per live instance's answer to $D/epochs.
sample() {
        local n
        for n in $LIVE; do leader_at "$n" | awk '{ print $2 }' >>"$D/epochs"; done
}
# wait_leader NOT SECONDS: until every live instance names one same leader
# other than NOT; prints it. Samples the epochs meanwhile.
wait_leader() {
        local not=$1 i n l first
        for ((i = 0; i < $2 * 10; i++)); do
                first=""
                for n in $LIVE; do
                        l=$(leader_at "$n" | awk '{ print $1 }')
                        [ -z "$first" ] && first=$l
                        [ "$l" = "$first" ] || first=mixed
                done
                sample
                if [ -n "$first" ] && [ "$first" != mixed ] && [ "$first" != - ] && [ "$first" != "$not" ]; then
                        echo "$first"
                        return 0
                fi
                sleep 0.1
        done
        return 1
}

: >"$D/epochs"
start a
start b
start c

t_case "three instances register; exactly one leads and all agree which"
L=$(wait_leader none 10)
reg=$(api "$URL_a/v1/instances" | jq -c '[.instances[] | {name, state, leader}]')
n_leaders=$(api "$URL_b/v1/instances" | jq '[.instances[] | select(.leader)] | length')
if [ -z "$L" ]; then
        t_fail "no single leader: a: $(leader_at a), b: $(leader_at b), c: $(leader_at c)"
elif [ "$(echo "$reg" | jq -c '[.[] | .name]')" != '["a","b","c"]' ] ||
        [ "$(echo "$reg" | jq '[.[] | select(.state == "up")] | length')" != 3 ] || [ "$n_leaders" != 1 ]; then
        t_fail "registry: $reg, $n_leaders leader(s)"
elif [ "$(grep -c 'took the lease' "$D/a.log" "$D/b.log" "$D/c.log" | awk -F: '{ s += $2 } END { print s }')" != 1 ]; then
        t_fail "not one 'took the lease' in the logs: $(grep -h 'lease' "$D"/[abc].log)"
else
        t_ok "$L leads"
fi

t_case "metrics: one instance says it leads, each lists the three up; slipctl status marks the leader"
sum=0
for n in a b c; do
        m=$(curl -s "$(url_of $n)/metrics")
        sum=$((sum + $(echo "$m" | awk '$1 == "slipway_coordinator_leader" { print $2 }')))
        echo "$m" | grep -q "^slipway_instance_info{instance=\"$n\",version=" || sum=bad
        [ "$(echo "$m" | grep -c '^slipway_instance_up{instance="[abc]"} 1$')" = 3 ] || sum=bad
done
st=$($C --server "$URL_b" --token "$TOKEN" status 2>&1)
if [ "$sum" != 1 ]; then
        t_fail "slipway_coordinator_leader summed over the instances: $sum"
elif ! echo "$st" | grep -Eq "^coordinator: +$L \(epoch [0-9]+\)" ||
        ! echo "$st" | grep -Eq "^$L( \(this\))? +http.* up +yes \(epoch" || ! echo "$st" | grep -q '^b (this)' ||
        ! echo "$st" | grep -Eq '^version: '; then
        t_fail "slipctl status: $st"
else
        t_ok
fi

# The images: blobs on every instance (each keeps its own), published once.
for n in a b c; do
        for v in 1.0 2.0; do
                for f in "$D/img-$v"/*; do api -o /dev/null -T "$f" "$(url_of $n)/v1/blobs/sha256/$(sha "$f")"; done
        done
done
for v in 1.0 2.0; do
        api -H 'Content-Type: application/json' -o /dev/null \
                -d "{\"manifest\":\"$(sha "$D/img-$v/manifest.json")\",\"signature\":\"$(sha "$D/img-$v/manifest.sig")\"}" \
                "$URL_a/v1/images"
done

# Four hosts in two racks, one down per rack at a time; each agent knows
# the three instances, in an order of its own.
HOSTS="h1 h2 h3 h4"
n=0
for h in $HOSTS; do
        n=$((n + 1))
        case $n in 1) S="$URL_a, $URL_b, $URL_c" ;; 2) S="$URL_b, $URL_c, $URL_a" ;; *) S="$URL_c, $URL_a, $URL_b" ;; esac
        echo "$S" >"$D/$h.servers"
        "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$S" --enroll-token sekrit \
                register "52:54:00:13:00:0$n" >>"$D/$h.log" 2>&1
        id=$(jq -r .host_id "$D/$h/state/agent.json")
        api -o /dev/null -H 'Content-Type: application/json' -d "{\"set\": {\"rack\": \"r$(((n - 1) % 2 + 1))\"}}" \
                "$URL_a/v1/hosts/$id/labels"
        api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:1.0"}' "$URL_b/v1/hosts/$id/image"
done
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 1}' "$URL_c/v1/budgets/rack"
for h in $HOSTS; do
        (exec "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$(cat "$D/$h.servers")" \
                --keys-dir "$D/keys" --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M \
                --enroll-token sekrit run >>"$D/$h.log" 2>&1) &
        PIDS+=($!)
done
# any_api PATH: the reply of the first live instance that answers.
any_api() {
        local n out
        for n in $LIVE; do
                out=$(api "$(url_of $n)$1") && [ -n "$out" ] && { echo "$out"; return 0; }
        done
        return 1
}
on() { # VERSION: how many hosts run it, healthy
        any_api /v1/hosts | jq "[.hosts[] | select(.version == \"$1\" and .state == \"healthy\")] | length"
}
wait_on() { # VERSION SECONDS
        local i
        for ((i = 0; i < $2 * 5; i++)); do
                [ "$(on "$1")" = 4 ] && return 0
                sample
                sleep 0.2
        done
        return 1
}

t_case "four agents that know the three instances come up on 1.0"
if wait_on 1.0 90; then t_ok; else t_fail "$(any_api /v1/hosts | jq -c '[.hosts[] | {version, state}]')"; fi

t_case "kill -9 of the leader during a rollout: another leads within 10 s with a higher epoch"
R=$(api -H 'Content-Type: application/json' -d '{"image": "tiny:2.0", "waves": [1, "100%"], "bake": 2}' \
        "$URL_a/v1/rollouts" | jq -r .id)
# The canary is on its way: the rollout has assigned a host.
for ((i = 0; i < 300; i++)); do
        [ "$(any_api "/v1/rollouts/$R" | jq '[.waves[]? | .assigned + .done] | add // 0')" -gt 0 ] 2>/dev/null && break
        sample
        sleep 0.1
done
L1=$(wait_leader none 5)
E1=$(leader_at "$L1" | awk '{ print $2 }')
t0=$EPOCHREALTIME
{
        kill -KILL "$(pid_of "$L1")"
        wait "$(pid_of "$L1")"
} 2>/dev/null
LIVE=$(echo "a b c" | tr ' ' '\n' | grep -vx "$L1" | tr '\n' ' ')
L2=$(wait_leader "$L1" 15)
TAKEOVER_MS=$(ms_since "$t0")
E2=$(leader_at "${L2:-none}" | awk '{ print $2 }')
if [ -z "$R" ] || [ "$R" = null ]; then
        t_fail "the rollout did not start"
elif [ -z "$L2" ]; then
        t_fail "no instance leads after $TAKEOVER_MS ms: $(for n in $LIVE; do echo "$n: $(leader_at $n);"; done)"
elif [ "$TAKEOVER_MS" -gt 10000 ]; then
        t_fail "$L2 leads only after $TAKEOVER_MS ms"
elif [ -z "$E2" ] || [ -z "$E1" ] || [ "$E2" -le "$E1" ]; then
        t_fail "epoch $E1 then $E2"
elif ! grep -q "took the lease (epoch $E2)" "$D/$L2.log"; then
        t_fail "$L2 does not log that it took the lease: $(grep lease "$D/$L2.log")"
else
        t_ok "$L1 (epoch $E1) killed, $L2 leads (epoch $E2) after $TAKEOVER_MS ms"
fi

t_case "the rollout goes on under the new leader and completes"
rollout_done() { [ "$(any_api "/v1/rollouts/$R" | jq -r .state)" = done ]; }
wait_on 2.0 120
for ((i = 0; i < 300; i++)); do rollout_done && break; sleep 0.2; done
if [ "$(on 2.0)" = 4 ] && rollout_done; then
        t_ok "$(any_api "/v1/rollouts/$R" | jq -c '[.waves[] | .done]')"
else
        t_fail "rollout $R: $(any_api "/v1/rollouts/$R" | jq -c '{state, reason}'); hosts: $(any_api /v1/hosts |
                jq -c '[.hosts[] | {version, state}]')"
fi

t_case "the killed instance goes stale in the registry and on /metrics"
for ((i = 0; i < 600; i++)); do
        st=$(any_api /v1/instances | jq -r --arg n "$L1" '.instances[] | select(.name == $n) | .state')
        [ "$st" = stale ] && break
        sleep 0.1
done
up=$(curl -s "$(url_of "$L2")/metrics" | awk -v n="slipway_instance_up{instance=\"$L1\"}" '$1 == n { print $2 }')
if [ "$st" = stale ] && [ "$up" = 0 ]; then t_ok; else t_fail "state $st, slipway_instance_up $up"; fi

t_case "SIGTERM: the leader gives the lease up and leaves the registry; the last instance takes it at once"
L3_CANDIDATE=$(echo "$LIVE" | tr ' ' '\n' | grep -v '^$' | grep -vx "$L2")
t0=$EPOCHREALTIME
kill -TERM "$(pid_of "$L2")"
wait "$(pid_of "$L2")" 2>/dev/null
# Gone: had it not given the lease up, the row would still name it until
# the lease ran out.
AFTER=$(leader_at "$L3_CANDIDATE" | awk '{ print $1 }')
LIVE=$L3_CANDIDATE
L3=$(wait_leader "$L2" 10)
HANDOVER_MS=$(ms_since "$t0")
E3=$(leader_at "${L3:-none}" | awk '{ print $2 }')
if [ "$L3" != "$L3_CANDIDATE" ]; then
        t_fail "leader '$L3' after $HANDOVER_MS ms, not $L3_CANDIDATE"
elif ! grep -q "gave up the lease (epoch $E2)" "$D/$L2.log"; then
        t_fail "$L2 does not log that it gave the lease up: $(grep lease "$D/$L2.log")"
elif [ "$(api "$(url_of "$L3")/v1/instances" | jq -c '[.instances[] | .name]')" != "[\"$L1\",\"$L3\"]" ]; then
        t_fail "the registry after the stop of $L2: $(api "$(url_of "$L3")/v1/instances" | jq -c '[.instances[] | .name]')"
elif [ "$AFTER" = "$L2" ]; then
        t_fail "the lease still names $L2 once it stopped"
elif [ "$HANDOVER_MS" -gt 10000 ]; then
        t_fail "the hand-over took $HANDOVER_MS ms"
elif [ -z "$E3" ] || [ "$E3" -le "$E2" ]; then
        t_fail "epoch $E2 then $E3"
else
        t_ok "$L3 leads (epoch $E3) $HANDOVER_MS ms after the SIGTERM"
fi

t_case "the epochs every instance reported, in the order sampled, only grow"
if [ ! -s "$D/epochs" ]; then
        t_fail "no samples"
elif ! awk 'NF && $1 != "null" { if ($1 < last) { print "epoch " $1 " after " last; bad = 1; exit } last = $1 }
        END { exit bad }' "$D/epochs" >"$D/epochs.check"; then
        t_fail "$(cat "$D/epochs.check")"
else
        t_ok "$(grep -c . "$D/epochs") samples, epochs $(sort -n "$D/epochs" | uniq | tr '\n' ' ')"
fi

t_case "--check-config refuses a bad instance name and a leader-ttl below 2 s"
cc() { "$SD" --state-dir "$D/cc" --trusted-keys "$D/keys" --log-json no "$@" --check-config; }
if expect_fail "instance: 1 to 64 letters, digits and .-_: expected, got \"a b\"" cc --instance "a b" &&
        expect_fail "leader-ttl: 1 is outside 2..3600" cc --leader-ttl 1; then
        if cc --instance web-1.example.com:8080 --leader-ttl 2 >/dev/null 2>&1; then t_ok; else
                t_fail "a good name and ttl refused: $(cc --instance web-1.example.com:8080 --leader-ttl 2 2>&1)"
        fi
fi

echo "leader: takeover after kill -9: $TAKEOVER_MS ms (leader-ttl 3 s); hand-over on SIGTERM: $HANDOVER_MS ms"
t_end
