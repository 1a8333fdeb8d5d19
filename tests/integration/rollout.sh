#!/bin/bash
# Rollouts with real slipway-agent processes (sim backend) against slipwayd
# on loopback: a canary then the rest within budgets and in service order,
# a failing version that pauses the rollout, one that rolls back by itself,
# and a host that is away during a rollout and converges when it returns.
# The budgets are checked from samples of the server's host list. Then what
# once stopped the coordinator for the whole fleet: a rollback to an image
# deleted under it, and a host token that reports an image the server does
# not know and then fails inside a rollout that rolls back.
. "$(dirname "$0")/../lib.sh"
t_begin rollout

B=$BIN/slipway-build
SD=$BIN/slipwayd
AG=$BIN/slipway-agent
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

mkdir -p "$D/keys" "$D/health"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
for v in 1.0 2.0 3.0; do
        tiny_def "$D/tiny-$v.conf" $v
        $B -q --store "$D/store" build --key "$D/k.key" --no-disk "$D/tiny-$v.conf" >/dev/null
        $B -q --store "$D/store" export tiny:$v "$D/img-$v" >/dev/null
done
cat >"$D/health/10-version" <<'EOF'
#!/bin/sh
[ "$SLIPWAY_VERSION" != 3.0 ] || { echo "3.0 does not serve"; exit 1; }
EOF
chmod +x "$D/health/10-version"

TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create ci)
: >"$D/srv.conf"
"$SD" --config "$D/srv.conf" --state-dir "$D/srv" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no \
        --enroll-token sekrit --checkin-interval 1 --heartbeat-timeout 4 >"$D/srv.log" 2>&1 &
SRV=$!
PIDS+=($SRV)
t_wait_until 60 test -s "$D/srv/slipwayd.url"
URL=$(cat "$D/srv/slipwayd.url")
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
post() { api -H 'Content-Type: application/json' -d "$2" "$URL$1"; }
for v in 1.0 2.0 3.0; do
        for f in "$D/img-$v"/*; do api -o /dev/null -T "$f" "$URL/v1/blobs/sha256/$(sha "$f")"; done
        post /v1/images "{\"manifest\":\"$(sha "$D/img-$v/manifest.json")\",\"signature\":\"$(sha "$D/img-$v/manifest.sig")\"}" >/dev/null
done

# Six hosts: services a and b, one host of each in racks r1..r3.
HOSTS="h1 h2 h3 h4 h5 h6"
declare -A APIDS
start_agent() {
        (exec "$AG" --backend sim --sim-dir "$D/$1" --state-dir "$D/$1/state" --server "$URL" --keys-dir "$D/keys" \
                --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M --enroll-token sekrit run \
                >>"$D/$1.log" 2>&1) &
        APIDS[$1]=$!
        PIDS+=($!)
}
stop_agent() { kill "${APIDS[$1]}" 2>/dev/null; wait "${APIDS[$1]}" 2>/dev/null; }
n=0
for h in $HOSTS; do
        n=$((n + 1))
        "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" --enroll-token sekrit \
                register "52:54:00:03:00:0$n" >>"$D/$h.log" 2>&1
        id=$(jq -r .host_id "$D/$h/state/agent.json")
        echo "$id" >"$D/$h.id"
        svc=a
        [ $n -gt 3 ] && svc=b
        post "/v1/hosts/$id/labels" "{\"set\": {\"service\": \"$svc\", \"rack\": \"r$(((n - 1) % 3 + 1))\"}}" >/dev/null
        api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:1.0"}' "$URL/v1/hosts/$id/image"
done
post /v1/budgets/rack '{"max_unavailable": 1}' >/dev/null
post /v1/budgets/service '{"max_unavailable": 1}' >/dev/null
api -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack" >/dev/null
api -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 1}' "$URL/v1/budgets/service" >/dev/null

hosts() { api "$URL/v1/hosts"; }
all_on() { # VERSION [HOSTS]
        local v=$1 want=${2:-6}
        [ "$(hosts | jq "[.hosts[] | select(.version == \"$v\" and .state == \"healthy\")] | length")" = "$want" ]
}
# sample_budgets FILE: appends, per sample, the most leases held at once in
# any rack and in any service.
sample_budgets() {
        hosts | jq -r '[.hosts[] | select(.lease != null)] as $l |
                ([$l[] | .labels.rack] | group_by(.) | map(length) | max // 0) as $r |
                ([$l[] | .labels.service] | group_by(.) | map(length) | max // 0) as $s | "\($r) \($s)"' >>"$1"
}
wait_until() { # SECONDS CONDITION...: samples budgets while waiting
        local secs=$1 i
        shift
        for ((i = 0; i < secs * 5; i++)); do
                sample_budgets "$D/samples"
                "$@" && return 0
                sleep 0.2
        done
        return 1
}
rollout_state() { api "$URL/v1/rollouts/$1" | jq -r .state; }

t_case "six hosts come up on 1.0"
for h in $HOSTS; do start_agent $h; done
if wait_until 60 all_on 1.0; then t_ok; else t_fail "$(hosts | jq -c '[.hosts[] | {version, state}]')"; fi

t_case "rollout of 2.0: canary, then the rest; service b after a; one per rack and service at a time"
: >"$D/samples"
R=$(post /v1/rollouts '{"image": "tiny:2.0", "waves": [1, "100%"], "bake": 1, "max_failures": 0,
        "on_failure": "pause", "order": {"key": "service", "values": ["a", "b"]}}' | jq -r .id)
ok=1
wait_until 120 all_on 2.0 || ok=0
t_wait_until 120 eval '[ "$(rollout_state $R)" = done ]'
# The most leases held at once per rack and per service, replayed from the
# audit log's grants and releases since the rollout started.
labels=$(hosts | jq -c '[.hosts[] | {key: .id, value: .labels}] | from_entries')
since=$(api "$URL/v1/audit?action=rollout.start&last=1" | jq -r '.entries[0].id')
max=$(api "$URL/v1/audit?action=lease&since=$since" | jq -r --argjson L "$labels" '
        reduce (.entries[] | select(.action == "lease.grant" or .action == "lease.release")) as $e
                ({held: {}, r: 0, s: 0};
                 .held[$e.target] = ($e.action == "lease.grant")
                 | ([.held | to_entries[] | select(.value) | $L[.key].rack] | group_by(.) | map(length) | max // 0) as $r
                 | ([.held | to_entries[] | select(.value) | $L[.key].service] | group_by(.) | map(length) | max // 0) as $s
                 | .r = ([.r, $r] | max) | .s = ([.s, $s] | max))
        | "\(.r) \(.s)"')
sampled=$(sort -n "$D/samples" | awk '{ if ($1 > r) r = $1; if ($2 > s) s = $2 } END { print r + 0, s + 0 }')
# Service order: every host of a got its lease before any host of b.
audit=$(api "$URL/v1/audit?action=lease.grant&since=$since")
last_a=0 first_b=999999
for h in h1 h2 h3; do
        e=$(jq "[.entries[] | select(.target == \"$(cat "$D/$h.id")\") | .id] | max" <<<"$audit")
        [ "$e" != null ] && [ "$e" -gt $last_a ] && last_a=$e
done
for h in h4 h5 h6; do
        e=$(jq "[.entries[] | select(.target == \"$(cat "$D/$h.id")\") | .id] | max" <<<"$audit")
        [ "$e" != null ] && [ "$e" -lt $first_b ] && first_b=$e
done
if [ $ok = 1 ] && [ "$(rollout_state $R)" = done ] && [ "$max" = "1 1" ] && [ $last_a -lt $first_b ] &&
        [[ $sampled == [01]\ [01] ]]; then
        t_ok "most leases at once: rack ${max% *}, service ${max#* }"
else
        t_fail "state $(rollout_state $R); max leases $max (sampled $sampled); a last $last_a, b first $first_b; $(hosts | jq -c '[.hosts[] | {version, state}]')"
fi

t_case "rollout of 3.0 whose health check fails: the canary falls back, the rollout pauses"
R3=$(post /v1/rollouts '{"image": "tiny:3.0", "waves": [1, "100%"], "max_failures": 0, "on_failure": "pause"}' | jq -r .id)
for ((i = 0; i < 1500; i++)); do [ "$(rollout_state $R3)" = paused ] && break; sleep 0.2; done
# The canary reports its failure on its way back: it is on 2.0 again a
# little after the pause.
canary_back() {
        all_on 2.0 5 && [ "$(hosts | jq '[.hosts[] | select(.state == "rolled-back" and .version == "2.0")] | length')" = 1 ]
}
t_wait_until 120 canary_back
ro=$(api "$URL/v1/rollouts/$R3")
if [ "$(jq -r .state <<<"$ro")" = paused ] && [[ $(jq -r .reason <<<"$ro") == *"1 of 1 hosts failed"* ]] && canary_back &&
        hosts | jq -e '[.hosts[] | select(.state == "rolled-back")][0].message | test("3.0 does not serve")' >/dev/null; then
        t_ok
else
        t_fail "$(jq -c '{state, reason, waves}' <<<"$ro") $(hosts | jq -c '[.hosts[] | {version, state}]')"
fi

t_case "resume accepts the canary's failure; the next host's failure pauses the rollout again"
api -o /dev/null -X POST "$URL/v1/rollouts/$R3/resume"
t0=$SECONDS
paused_in_2() {
        ro=$(api "$URL/v1/rollouts/$R3")
        [ "$(jq -r .state <<<"$ro")" = paused ] && [ "$(jq -r .wave <<<"$ro")" = 2 ]
}
t_wait_until 300 paused_in_2
t_paused=$((SECONDS - t0))
# Hosts of wave 2 already on their way when it pauses still go and fall
# back, one after the other (one lease per rack and service): they are
# all back when none is assigned any more, each having failed, and every
# host runs 2.0. On a slow machine that takes minutes.
none_off_2() { [ "$(hosts | jq '[.hosts[] | select(.version != "2.0")] | length')" = 0 ]; }
assigned_3() { api "$URL/v1/rollouts/$R3" | jq '[.waves[].assigned] | add'; }
all_back() { [ "$(assigned_3)" = 0 ] && none_off_2; }
t0=$SECONDS
t_wait_until 600 all_back
if [ "$(jq -r .state <<<"$ro")" = paused ] && [[ $(jq -r .reason <<<"$ro") == "wave 2: "*" of 5 hosts failed, 0 allowed" ]] &&
        [ "$(jq '.waves[0].failed' <<<"$ro")" = 1 ] && all_back &&
        [ "$(api "$URL/v1/audit?action=rollout.resume" | jq "[.entries[] | select(.target == \"rollout $R3\")] | length")" = 1 ]; then
        t_ok "paused $t_paused s after the resume, all back on 2.0 $((SECONDS - t0)) s later"
else
        t_fail "$(jq -c '{state, wave, reason, waves}' <<<"$ro"), $(assigned_3) still assigned;" \
                "$(hosts | jq -c '[.hosts[] | {version, state}]')"
fi
api -o /dev/null -X POST "$URL/v1/rollouts/$R3/abort"

t_case "the same with on_failure rollback: rolled back by itself, the other hosts never leave 2.0"
# The canary of the last rollout has 3.0 marked as failed; this time another host goes first.
R4=$(post /v1/rollouts '{"image": "tiny:3.0", "selector": {"service": "b"}, "waves": [1, "100%"], "max_failures": 0,
        "on_failure": "rollback"}' | jq -r .id)
for ((i = 0; i < 1500; i++)); do [ "$(rollout_state $R4)" = aborted ] && break; sleep 0.2; done
RB=$(api "$URL/v1/rollouts" | jq -r "[.rollouts[] | select(.kind == \"rollback\")][0].id")
for ((i = 0; i < 1500; i++)); do [ "$(rollout_state "$RB")" = done ] && break; sleep 0.2; done
if [ "$(rollout_state $R4)" = aborted ] && [ "$(rollout_state "$RB")" = done ] &&
        [ "$(hosts | jq '[.hosts[] | select(.version == "2.0")] | length')" = 6 ] &&
        [[ $(api "$URL/v1/rollouts/$R4" | jq -r .reason) == *"rolled back by rollout $RB"* ]]; then
        t_ok
else
        t_fail "$(api "$URL/v1/rollouts" | jq -c '[.rollouts[] | {id, kind, state}]') $(hosts | jq -c '[.hosts[] | {version, state}]')"
fi

t_case "a host away during a rollout is skipped, then converges when it returns; an unmarked downgrade refused first does not hold back the rollback"
# Back to a clean slate on 2.0, then 1.0 ... roll forward to a fresh image is not
# possible without a new build, so the rollout goes back to 1.0 as a rollback.
# An absent host counts as down in its rack and service: with budgets of 1
# it would hold back its group mates (as it should); with 2 they go on.
api -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 2}' "$URL/v1/budgets/rack" >/dev/null
api -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 2}' "$URL/v1/budgets/service" >/dev/null
stop_agent h6
sleep 5
R5=$(post /v1/rollouts '{"image": "tiny:1.0", "waves": ["100%"]}' | jq -r .id)
# 1.0 is older than what runs: only a rollback may go there, so the hosts
# refuse. Once one has refused, R5 is aborted and the rollback of rollout $R
# (2.0) goes to 1.0 at once, before the refusing host checks in again: its
# refusal of the unmarked downgrade must not count against the rollback, and
# the host must take 1.0 once it is marked one.
for ((i = 0; i < 300; i++)); do
        hosts | jq -e '[.hosts[] | select(.message // "" | test("refusing a downgrade"))] | length > 0' \
                >/dev/null && break
        sleep 0.1
done
refused=$(hosts | jq '[.hosts[] | select(.message // "" | test("refusing a downgrade"))] | length')
api -o /dev/null -X POST "$URL/v1/rollouts/$R5/abort"
RB2=$(api -X POST "$URL/v1/rollouts/$R/rollback" | jq -r .id)
for ((i = 0; i < 1500; i++)); do
        [ "$(rollout_state "$RB2")" = done ] && break
        sleep 0.2
done
away_version=$(hosts | jq -r ".hosts[] | select(.id == \"$(cat "$D/h6.id")\") | .version")
start_agent h6
for ((i = 0; i < 1500; i++)); do all_on 1.0 && break; sleep 0.2; done
if [ "$refused" -gt 0 ] && [ "$(rollout_state "$RB2")" = done ] && [ "$away_version" = 2.0 ] && all_on 1.0; then
        t_ok
else
        t_fail "$refused refused the unmarked downgrade; rollback $(rollout_state "$RB2") ($(api "$URL/v1/rollouts/$RB2" |
                jq -r .reason)), away host on $away_version; $(hosts | jq -c '[.hosts[] | {version, state}]')"
fi

# The coordinator's ticks against what used to stop them for good. A spare
# host without an agent, outside every budget, takes leases and lets them
# expire (with a lease TTL of 3 s for these cases), and is what a new
# rollout selects. After each trigger:
#   (a) an expired lease still quarantines its host;
#   (b) another running rollout still advances;
#   (c) a new rollout can start;
#   (d) where the fix is a refusal, the trigger itself is refused;
#   (e) slipwayd's log has a failing tick once at most, not every second.
reg=$(curl -s -H 'Content-Type: application/json' -d '{"mac": "52:54:00:03:00:99", "enroll": "sekrit"}' \
        "$URL/v1/hosts/register")
SPARE=$(jq -r .id <<<"$reg")
SPARE_TOKEN=$(jq -r .token <<<"$reg")
post "/v1/hosts/$SPARE/labels" '{"set": {"role": "spare"}}' >/dev/null
set_lease_ttl() {
        local reloads
        reloads=$(grep -c 'configuration reloaded' "$D/srv.log")
        printf '[server]\nlease-ttl = %s\n' "$1" >"$D/srv.conf"
        kill -HUP "$SRV"
        t_wait_until 60 eval '[ "$(grep -c "configuration reloaded" "$D/srv.log")" -gt "$reloads" ]'
}
set_lease_ttl 3
spare() { curl -s -H "Authorization: Bearer $SPARE_TOKEN" -H 'Content-Type: application/json' "$@"; }
# (a): the spare host reports healthy (lifting an earlier quarantine), takes
# a lease and never gives it back.
expiry_quarantines() {
        spare -o /dev/null -d '{"state": "healthy"}' "$URL/v1/hosts/$SPARE/checkin"
        [ "$(spare -d '{}' "$URL/v1/hosts/$SPARE/lease" | jq -r .granted)" = true ] || return 1
        t_wait_until 120 eval '[ "$(api "$URL/v1/hosts/$SPARE" | jq -r .quarantined)" = true ]'
}
# (c): a rollout of the spare host starts (201), and is aborted again.
new_rollout_starts() {
        local out code
        out=$(api -w '\n%{http_code}' -H 'Content-Type: application/json' \
                -d '{"image": "tiny:2.0", "selector": {"role": "spare"}}' "$URL/v1/rollouts")
        code=$(tail -n 1 <<<"$out")
        [ "$code" = 201 ] || { echo "new rollout: $out"; return 1; }
        api -o /dev/null -X POST "$URL/v1/rollouts/$(head -n 1 <<<"$out" | jq -r .id)/abort"
}
# (e): lines of the log since line $1 that say the coordinator failed.
tick_errors() { tail -n "+$(($1 + 1))" "$D/srv.log" | grep 'coordinator: ' | grep -vc 'working again'; }
rollout_done() {
        local rid=$1
        t_wait_until 120 eval '[ "$(rollout_state "$rid")" = done ]'
}
# after_trigger MARK VERSION ROLLOUT: (a), (b) with ROLLOUT moving service b
# to VERSION, (c) into a, b and c (1: it holds), and (e) since log line
# MARK into e.
after_trigger() {
        a=0 b=0 c=0
        new_rollout_starts && c=1
        expiry_quarantines && a=1
        wait_until 90 on_image "$2" b
        rollout_done "$3" && b=1
        e=$(tick_errors "$1")
}
on_image() { # VERSION SERVICE: every host of the service runs VERSION healthy
        [ "$(hosts | jq "[.hosts[] | select(.labels.service == \"$2\" and (.version != \"$1\" or .state != \"healthy\"))] | length")" = 0 ]
}
ID1=$(sha "$D/img-1.0/manifest.json")
ID2=$(sha "$D/img-2.0/manifest.json")

t_case "an image a rollout may roll back to cannot be deleted: in_use, naming the rollout"
RA=$(post /v1/rollouts '{"image": "tiny:2.0", "selector": {"service": "a"}, "waves": ["100%"]}' | jq -r .id)
RB=$(post /v1/rollouts '{"image": "tiny:2.0", "selector": {"service": "b"}, "waves": [1, "100%"], "bake": 3}' | jq -r .id)
wait_until 120 all_on 2.0
rollout_done "$RA"
rollout_done "$RB"
# No host runs 1.0 or is assigned it now; both rollouts may roll back to it.
del=$(api -w '\n%{http_code}' -X DELETE "$URL/v1/images/tiny:1.0")
if [ "$(tail -n 1 <<<"$del")" = 409 ] && [ "$(head -n 1 <<<"$del" | jq -r .kind)" = in_use ] &&
        [[ $(head -n 1 <<<"$del" | jq -r .error) == *"rollouts $RA, $RB may roll back to it"* ]] &&
        api "$URL/v1/images/tiny:1.0" | jq -e .id >/dev/null; then
        t_ok
else
        t_fail "$del; rollouts $(rollout_state "$RA") $(rollout_state "$RB")"
fi

t_case "rolling back to it: leases expire, the other rollback advances, a new rollout starts, the log stays quiet"
mark=$(wc -l <"$D/srv.log")
RBA=$(api -X POST "$URL/v1/rollouts/$RA/rollback" | jq -r .id)
RBB=$(api -X POST "$URL/v1/rollouts/$RB/rollback" | jq -r .id)
after_trigger "$mark" 1.0 "$RBB"
wait_until 60 on_image 1.0 a
rollout_done "$RBA"
if [ $a$b$c = 111 ] && [ "$e" -le 1 ] && [ "$(rollout_state "$RBA")" = done ] && all_on 1.0; then
        t_ok
else
        t_fail "expiry $a, other rollback $b ($(rollout_state "$RBB")), new rollout $c, $e tick error line(s)," \
                "rollback $(rollout_state "$RBA"); $(tail -n 3 "$D/srv.log" | tr '\n' ' ')"
fi

t_case "a host reports an unknown image, then fails in a rollout that rolls back: it is recorded, nothing stops"
mark=$(wc -l <"$D/srv.log")
RB3=$(post /v1/rollouts '{"image": "tiny:2.0", "selector": {"service": "b"}, "waves": [1, "100%"], "bake": 3}' | jq -r .id)
stop_agent h3
ID3=$(cat "$D/h3.id")
TOKEN3=$(jq -r .token "$D/h3/state/agent.json")
UNKNOWN=$(printf 'never published' | sha256sum | cut -c1-64)
lie() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN3" -H 'Content-Type: application/json' \
        -d "$1" "$URL/v1/hosts/$ID3/checkin"; }
lied=$(lie "{\"state\": \"healthy\", \"version\": \"9.9\", \"image\": \"$UNKNOWN\"}")
RL=$(post /v1/rollouts '{"image": "tiny:2.0", "selector": {"service": "a"}, "waves": ["100%"], "on_failure": "rollback"}' |
        jq -r .id)
FAILED="{\"state\": \"failed\", \"version\": \"9.9\", \"image\": \"$UNKNOWN\", \"failed_image\": \"$ID2\"}"
for ((i = 0; i < 600; i++)); do
        lie "$FAILED" >/dev/null
        [ "$(rollout_state "$RL")" = aborted ] && break
        sleep 0.2
done
# The token holder goes on checking in, so h3 stays reachable: the rollback
# keeps trying to assign it what it goes back to.
(while :; do lie "$FAILED" >/dev/null; sleep 0.5; done) &
LIAR=$!
PIDS+=($LIAR)
RBL=$(api "$URL/v1/rollouts" | jq -r "[.rollouts[] | select(.kind == \"rollback\")][0].id")
for ((i = 0; i < 300; i++)); do
        h3=$(api "$URL/v1/hosts/$ID3")
        [ "$(jq -r .image <<<"$h3")" = "$ID1" ] && break
        sleep 0.2
done
after_trigger "$mark" 2.0 "$RB3"
kill "$LIAR"
wait "$LIAR" 2>/dev/null
# The check-in was recorded as what h3 runs; the rollback sends it back to
# what it was assigned, 1.0, never to the image nobody has.
if [ "$lied" = 200 ] && [ "$(jq -r .current_image <<<"$h3")" = "$UNKNOWN" ] && [ "$(rollout_state "$RL")" = aborted ] &&
        [ "$(jq -r .image <<<"$h3")" = "$ID1" ] && [ $a$b$c = 111 ] && [ "$e" -le 1 ]; then
        t_ok
else
        t_fail "check-in $lied, h3 runs $(jq -r .current_image <<<"$h3") and is assigned $(jq -r .image <<<"$h3"); rollout" \
                "$(rollout_state "$RL"), rollback $RBL $(rollout_state "$RBL"); expiry $a, other rollout $b, new rollout $c," \
                "$e tick error line(s); $(tail -n 3 "$D/srv.log" | tr '\n' ' ')"
fi
start_agent h3
set_lease_ttl 900 || true
# h3 back on its agent finishes the rollback, which frees it for the next rollout.
for ((i = 0; i < 300; i++)); do
        [ "$(api "$URL/v1/rollouts/$RBL" | jq '[.waves[] | .pending + .assigned] | add')" = 0 ] && break
        sleep 0.2
done

t_case "a host whose firmware only fetches its iPXE script stays unreachable: no lease, the wave goes on without it"
# A dead disk: the machine ran 1.0 once; now its firmware loops on the
# local-boot script and nothing on it checks in.
M7=52:54:00:03:00:07
"$AG" --backend sim --sim-dir "$D/h7" --state-dir "$D/h7/state" --server "$URL" --enroll-token sekrit \
        register "$M7" >>"$D/h7.log" 2>&1
h7=$(jq -r .host_id "$D/h7/state/agent.json")
post "/v1/hosts/$h7/labels" '{"set": {"service": "a", "rack": "r1"}}' >/dev/null
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:1.0"}' "$URL/v1/hosts/$h7/image"
curl -s -o /dev/null -H "Authorization: Bearer $(jq -r .token "$D/h7/state/agent.json")" \
        -H 'Content-Type: application/json' \
        -d "{\"state\": \"healthy\", \"version\": \"1.0\", \"image\": \"$(sha "$D/img-1.0/manifest.json")\"}" \
        "$URL/v1/hosts/$h7/checkin"
(while :; do curl -s -o /dev/null "$URL/boot/ipxe?mac=$M7"; sleep 0.3; done) &
LOOP=$!
PIDS+=($LOOP)
sleep 6 # past the heartbeat timeout (4 s)
R6=$(post /v1/rollouts '{"image": "tiny:2.0", "selector": {"service": "a"}, "waves": ["100%"]}' | jq -r .id)
for ((i = 0; i < 600; i++)); do [ "$(rollout_state "$R6")" = done ] && break; sleep 0.2; done
ro=$(api "$URL/v1/rollouts/$R6")
h=$(api "$URL/v1/hosts/$h7")
script=$(curl -s "$URL/boot/ipxe?mac=$M7")
kill $LOOP 2>/dev/null
wait $LOOP 2>/dev/null
now=$(date +%s)
if [ "$(jq -r .state <<<"$ro")" = done ] && [ "$(jq -c '.waves[0] | [.hosts, .pending, .done]' <<<"$ro")" = "[4,1,3]" ] &&
        [ "$(jq -r '.groups[] | select(.group == "service=a") | .down' <<<"$ro")" = 1 ] &&
        [ "$(jq -r .image <<<"$h")" = "$(sha "$D/img-1.0/manifest.json")" ] && [ "$(jq -r .lease <<<"$h")" = null ] &&
        [ "$(jq -r .last_seen <<<"$h")" -lt $((now - 4)) ] && [ "$(jq -r .pxe_seen <<<"$h")" -ge $((now - 5)) ] &&
        [[ $script == *"boots from its disk"* ]] &&
        [ "$(api "$URL/v1/audit?action=lease.grant&last=1000" | jq "[.entries[] | select(.target == \"$h7\")] | length")" = 0 ]; then
        t_ok
else
        t_fail "$(jq -c '{state, waves, groups}' <<<"$ro") $(jq -c '{image, lease, last_seen, pxe_seen}' <<<"$h") now $now"
fi

t_case "the audit log has every decision"
actions=$(api "$URL/v1/audit?last=1000" | jq -r '[.entries[].action] | unique | join(" ")')
ok=1
for a in rollout.start lease.grant lease.release rollout.wave-complete rollout.wave rollout.done rollout.pause \
        rollout.rollback budget.set; do
        [[ " $actions " == *" $a "* ]] || { ok=0; echo "missing $a"; }
done
[ $ok = 1 ] && t_ok || t_fail "$actions"

for h in $HOSTS; do stop_agent $h; done
t_end
