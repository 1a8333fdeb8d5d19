#!/bin/bash
# Webhooks: a receiver (webhook-receiver.py) checks every delivery's
# HMAC-SHA256 signature and timestamp; its first two answers are 500, so
# the first event is sent three times. A rollout over two hosts that check
# in with curl (no agent) goes through its waves to done, then a second one
# fails and pauses: the receiver gets every rollout.* entry of the audit log
# once, in its order. A webhook whose receiver is not there gives its event
# up after its retries (webhook.failed, the metric). slipwayd killed while
# the receiver holds a delivery: after the restart that event comes again
# (the one duplicate the docs allow) and nothing is lost.
. "$(dirname "$0")/../lib.sh"
t_begin webhooks

B=$BIN/slipway-build
SD=$BIN/slipwayd
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'
MACS=(52:54:00:e0:00:01 52:54:00:e0:00:02)
SECRET=webhook-test-secret

start_server() {
        rm -f "$D/state/slipwayd.url"
        "$SD" --config "$D/slipwayd.conf" --log-json no >>"$D/server.log" 2>&1 &
        SPID=$!
        PIDS+=("$SPID")
        t_wait_until 60 test -s "$D/state/slipwayd.url"
        URL=$(cat "$D/state/slipwayd.url" 2>/dev/null)
}

api() {
        curl -s -H "Authorization: Bearer $TOKEN" "$@"
}

# checkin HOST-ID JSON: reports as the host's agent would.
checkin() {
        api -o /dev/null -H 'Content-Type: application/json' -d "$2" "$URL/v1/hosts/$1/checkin"
}

# drive ROLLOUT IMAGE-ID: the hosts the rollout assigned report healthy on
# it, the others on what they run; until the rollout is not running.
drive() {
        local h want state
        for h in "${H[@]}"; do
                want=$(api "$URL/v1/hosts/$h" | jq -r '.image // empty')
                [ -n "$want" ] || want=$(api "$URL/v1/hosts/$h" | jq -r '.current_image // empty')
                checkin "$h" "{\"state\": \"healthy\", \"image\": \"$want\", \"version\": \"x\"}"
        done
        state=$(api "$URL/v1/rollouts/$1" | jq -r .state)
        [ "$state" != running ]
}

# The rollout.* entries of the audit log as "ID EVENT" lines.
audit_rollout() {
        api "$URL/v1/audit?action=rollout&limit=1000" | jq -r '.entries[] | "\(.id) \(.action)"'
}
# What the receiver answered 200 (and did not hold), as "ID EVENT" lines, in
# the order received.
received_ok() {
        jq -r 'select(.status == 200 and (.held | not)) | "\(.id) \(.event)"' "$D/received.log" 2>/dev/null
}

mkdir -p "$D/keys"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
for v in 1.0 2.0; do
        tiny_def "$D/tiny-$v.conf" $v
        $B -q --store "$D/store" build --key "$D/k.key" --lock "$D/tiny.lock" --no-disk "$D/tiny-$v.conf" \
                >/dev/null 2>>"$D/build.log" || echo "building tiny $v failed: $(tail -3 "$D/build.log")"
done
python3 "$TOP/tests/integration/webhook-receiver.py" "$D/receiver.port" "$D/received.log" "$SECRET" 2 "$D/hold" \
        2>"$D/receiver.err" &
PIDS+=("$!")
t_wait_until 60 test -s "$D/receiver.port"
RPORT=$(cat "$D/receiver.port")
cat >"$D/slipwayd.conf" <<EOF
[server]
listen = 127.0.0.1:0
state-dir = $D/state
trusted-keys = $D/keys
enroll-token = site-secret

[webhook ops]
url = http://127.0.0.1:$RPORT/hook
secret = $SECRET
events = rollout.*

[webhook gone]
url = http://127.0.0.1:1/nobody
secret = other
events = rollout.start
retries = 1
timeout = 2
EOF

t_case "--check-config takes [webhook NAME] sections and refuses a bad one with its line"
cp "$D/slipwayd.conf" "$D/bad.conf"
printf '[webhook bad]\nurl = ftp://x\n' >>"$D/bad.conf"
cp "$D/slipwayd.conf" "$D/nosecret.conf"
printf '[webhook half]\nurl = http://127.0.0.1:1/\n' >>"$D/nosecret.conf"
if "$SD" --config "$D/slipwayd.conf" --check-config >/dev/null 2>"$D/check.err" &&
        ! "$SD" --config "$D/bad.conf" --check-config 2>"$D/bad.err" >/dev/null &&
        grep -q "bad.conf:[0-9]*: \[webhook bad\]: 'url': not an http(s) URL" "$D/bad.err" &&
        ! "$SD" --config "$D/nosecret.conf" --check-config 2>"$D/nosecret.err" >/dev/null &&
        grep -q "\[webhook half\]: 'secret' is not set" "$D/nosecret.err"; then t_ok; else
        t_fail "$(cat "$D/check.err" "$D/bad.err" "$D/nosecret.err")"; fi

TOKEN=$("$SD" --config "$D/slipwayd.conf" --log-json no token create ci)
start_server
# A webhook new to the state starts after the newest entry once the leader
# has taken it up: the events come after that.
cursors_made() {
        [ "$(t_state_sql "$D/state" "SELECT count(*) FROM webhook_cursors")" = 2 ]
}
t_wait_until 30 cursors_made || echo "the webhooks' cursors were not made: $(tail -n 5 "$D/server.log")"
for v in 1.0 2.0; do
        $B -q --store "$D/store" push --token "$TOKEN" "$URL" tiny:$v >/dev/null || echo "pushing tiny $v failed"
done
ID1=$(api "$URL/v1/images/tiny:1.0" | jq -r .id)
ID2=$(api "$URL/v1/images/tiny:2.0" | jq -r .id)
H=()
for m in "${MACS[@]}"; do
        H+=("$(curl -s -H 'Content-Type: application/json' -d "{\"mac\": \"$m\", \"enroll\": \"site-secret\"}" \
                "$URL/v1/hosts/register" | jq -r .id)")
done
for h in "${H[@]}"; do checkin "$h" "{\"state\": \"healthy\", \"image\": \"$ID1\", \"version\": \"1.0\"}"; done

t_case "a rollout to done: started, each wave done, done; signed, in the audit log's order; the first sent three times"
T0=$SECONDS
R1=$(api -H 'Content-Type: application/json' -d '{"image": "tiny:2.0", "waves": [1, "100%"], "bake": 0}' \
        "$URL/v1/rollouts" | jq -r .id)
t_wait_until 60 drive "$R1"
t_wait_until 30 eval '[ "$(received_ok)" = "$(audit_rollout)" ]'
want=$(audit_rollout)
first=$(head -n 1 <<<"$want" | cut -d' ' -f1)
tries=$(jq -r "select(.id == $first) | .status" "$D/received.log" | tr '\n' ' ')
bad=$(jq -c 'select((.sig_ok and .ts_ok and .delivery == (.id | tostring) and .header_event == .event) | not)' \
        "$D/received.log")
events=$(cut -d' ' -f2 <<<"$want" | tr '\n' ' ')
if [ "$(api "$URL/v1/rollouts/$R1" | jq -r .state)" = done ] && [ "$(received_ok)" = "$want" ] &&
        [ "$tries" = "500 500 200 " ] && [ -z "$bad" ] &&
        [[ $events == "rollout.start "*"rollout.wave-complete "*"rollout.wave "*"rollout.wave-complete rollout.done " ]]; then
        t_ok "$(wc -l <<<"$want") events in $((SECONDS - T0)) s"
else
        t_fail "state $(api "$URL/v1/rollouts/$R1" | jq -r .state); want [$want]; got [$(received_ok)]; tries $tries; bad $bad"
fi

t_case "a webhook whose receiver is not there: its event given up after its retries, audited and counted"
if t_wait_until 30 eval '[ -n "$(api "$URL/v1/audit?action=webhook.failed" | jq -r ".entries[] | select(.target == \"gone\") | .detail.event")" ]'; then
        gone=$(api "$URL/v1/audit?action=webhook.failed" | jq -c '.entries[0] | [.target, .detail.event, .detail.attempts]')
        metrics=$(curl -s "$URL/metrics" | grep '^slipway_webhook_deliveries_total')
        if [ "$gone" = '["gone","rollout.start",2]' ] &&
                grep -q '^slipway_webhook_deliveries_total{webhook="gone",outcome="failed"} 1$' <<<"$metrics" &&
                grep -q '^slipway_webhook_deliveries_total{webhook="ops",outcome="retried"} 2$' <<<"$metrics"; then
                t_ok; else t_fail "$gone; $metrics"; fi
else
        t_fail "no webhook.failed: $(api "$URL/v1/audit?last=5")"
fi

t_case "a rollout that fails: rollout.failed and rollout.pause, with the reason"
R2=$(api -H 'Content-Type: application/json' -d '{"image": "tiny:1.0", "waves": ["100%"], "max_failures": 0}' \
        "$URL/v1/rollouts" | jq -r .id)
t_wait_until 20 eval '[ "$(api "$URL/v1/hosts/${H[0]}" | jq -r .image)" = "$ID1" ]'
checkin "${H[0]}" "{\"state\": \"failed\", \"version\": \"2.0\", \"image\": \"$ID2\", \"failed_image\": \"$ID1\"}"
t_wait_until 20 eval '[ "$(api "$URL/v1/rollouts/$R2" | jq -r .state)" = paused ]'
t_wait_until 30 eval '[ "$(received_ok)" = "$(audit_rollout)" ]'
want=$(audit_rollout)
failed=$(jq -c "select(.event == \"rollout.failed\" and .target == \"rollout $R2\") | .detail | [.wave, .failed, .then]" \
        "$D/received.log")
if [ "$(received_ok)" = "$want" ] && [ "$failed" = '[1,1,"pause"]' ] &&
        [ "$(tail -n 1 <<<"$want" | cut -d' ' -f2)" = rollout.pause ]; then t_ok; else
        t_fail "failed=$failed; want [$want]; got [$(received_ok)]"; fi

t_case "slipwayd killed while the receiver holds a delivery: sent again after the restart, nothing lost"
touch "$D/hold"
api -o /dev/null -X POST "$URL/v1/rollouts/$R2/abort"
held=""
t_wait_until 20 eval '[ -n "$(jq -r "select(.held and .event == \"rollout.abort\") | .id" "$D/received.log")" ]' &&
        held=$(jq -r 'select(.held and .event == "rollout.abort") | .id' "$D/received.log" | head -n 1)
# (stderr away: bash reports the kill of its job)
{
        kill -KILL "$SPID"
        wait "$SPID"
} 2>/dev/null
rm -f "$D/hold"
start_server
t_wait_until 30 eval '[ "$(received_ok)" = "$(audit_rollout)" ]'
want=$(audit_rollout)
# Every delivery the receiver took, the held one too: that one twice.
dups=$(jq -r 'select(.status == 200) | "\(.id) \(.event)"' "$D/received.log" | sort -n | uniq -d | tr '\n' ' ')
if [ -n "$held" ] && [ "$(received_ok)" = "$want" ] && [ "$dups" = "$held rollout.abort " ]; then
        t_ok; else t_fail "held=$held dups=[$dups]; want [$want]; got [$(received_ok)]"; fi

t_case "the cursor is in the database: after a clean restart nothing is sent again"
n_before=$(wc -l <"$D/received.log")
t_stop "$SPID"
start_server
api -o /dev/null -H 'Content-Type: application/json' -X PUT -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack"
# The budget's entry is not one of the webhook's events: the cursor moves
# past it without sending.
cursor_at_end() {
        cursor=$(t_state_sql "$D/state" "SELECT last_id FROM webhook_cursors WHERE name = 'ops'")
        last=$(t_state_sql "$D/state" "SELECT max(id) FROM audit")
        [ -n "$cursor" ] && [ "$cursor" = "$last" ]
}
t_wait_until 20 cursor_at_end
if [ "$(wc -l <"$D/received.log")" = "$n_before" ] && [ -n "$cursor" ] && [ "$cursor" = "$last" ]; then t_ok; else
        t_fail "$(wc -l <"$D/received.log") deliveries, $n_before before; cursor $cursor, last entry $last"; fi

if [ "$T_STORE" = postgresql ]; then
        t_case "on PostgreSQL, two instances: the leader sends, the other carries on when it stops, each event once"
        "$SD" --config "$D/slipwayd.conf" --state-dir "$D/state2" --database "$(pg_state_url "$D/state")" \
                --log-json no >>"$D/server2.log" 2>&1 &
        PID2=$!
        PIDS+=("$PID2")
        t_wait_until 60 test -s "$D/state2/slipwayd.url"
        URL2=$(cat "$D/state2/slipwayd.url")
        # start_abort URL: a rollout started and aborted through URL.
        start_abort() {
                local r
                r=$(api -H 'Content-Type: application/json' -d '{"image": "tiny:2.0", "waves": ["100%"]}' \
                        "$1/v1/rollouts" | jq -r .id)
                api -o /dev/null -X POST "$1/v1/rollouts/$r/abort"
        }
        start_abort "$URL2"
        t_wait_until 30 eval '[ "$(received_ok)" = "$(audit_rollout)" ]'
        t_stop "$SPID"
        URL=$URL2
        start_abort "$URL2"
        t_wait_until 30 eval '[ "$(received_ok)" = "$(audit_rollout)" ]'
        dups=$(received_ok | sort -n | uniq -d)
        if [ "$(received_ok)" = "$(audit_rollout)" ] && [ -z "$dups" ] &&
                grep -q 'coordinator: took the lease' "$D/server2.log"; then t_ok; else
                t_fail "dups [$dups]; want [$(audit_rollout)]; got [$(received_ok)]; $(tail -n 3 "$D/server2.log")"; fi
fi

t_end
