#!/bin/bash
# An agent and slipctl that know two slipwayd instances. Each instance has
# a state directory of its own; until several instances share a database,
# a copy of one instance's state stands in for it, so that both know the
# host, its token and (in the second part) its lease. The image is pushed
# to each. The first instance dies in the middle of the agent's download:
# the agent goes on at the second from its checkpoint, takes its lease
# there, switches, and keeps checking in. Then the second dies while the
# host holds a lease: the agent renews the same epoch at the first.
. "$(dirname "$0")/../lib.sh"
t_begin failover

B=$BIN/slipway-build
SD=$BIN/slipwayd
AG=$BIN/slipway-agent
C=$BIN/slipctl
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'


mkdir -p "$D/keys"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
for v in 1.0 2.0; do
        tiny_def "$D/tiny-$v.conf" $v
        $B -q --store "$D/store" build --key "$D/k.key" --no-disk "$D/tiny-$v.conf" >/dev/null
        $B -q --store "$D/store" export tiny:$v "$D/img-$v" >/dev/null
done
TOKEN=$("$SD" --state-dir "$D/a" --log-json no token create ci)

# start NAME [HOST:PORT]: starts the instance with state directory $D/NAME;
# its PID in PID_NAME, its URL in URL_NAME.
start() {
        local n=$1 i pid
        rm -f "$D/$n/slipwayd.url"
        "$SD" --state-dir "$D/$n" --listen "${2:-127.0.0.1:0}" --trusted-keys "$D/keys" --log-json no \
                --enroll-token sekrit >>"$D/$n.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        for ((i = 0; i < 1200; i++)); do
                [ -s "$D/$n/slipwayd.url" ] && curl -s -o /dev/null "$(cat "$D/$n/slipwayd.url")/v1/status" && break
                sleep 0.05
        done
        printf -v "PID_$n" %s "$pid"
        printf -v "URL_$n" %s "$(cat "$D/$n/slipwayd.url")"
}
# copy FROM TO: TO's state becomes a copy of FROM's (FROM stopped).
copy() {
        t_state_copy "${D:?}/$1" "$D/$2"
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
host_json() { api "$1/v1/hosts/$H"; }
served() { curl -s "$1/metrics" | awk '$1 == "slipway_blob_bytes_served_total" { print $2 }'; }
agent() {
        "$AG" --backend sim --sim-dir "$D/h" --state-dir "$D/h/state" --server "$SERVERS" --keys-dir "$D/keys" \
                --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M --enroll-token sekrit "$@"
}
agent_bg() {
        (exec "$AG" --backend sim --sim-dir "$D/h" --state-dir "$D/h/state" --server "$SERVERS" --keys-dir "$D/keys" \
                --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M --enroll-token sekrit "$@" \
                >>"$D/h.log" 2>&1) &
        APID=$!
        PIDS+=("$APID")
}
# wait_paused: until the agent stops itself at its pause point.
wait_paused() {
        local i
        for ((i = 0; i < 300; i++)); do
                [ "$(ps -o stat= -p "$APID" | cut -c1)" = T ] && return 0
                sleep 0.1
        done
        return 1
}
# wait_for URL JQ-CONDITION [SECONDS]: until the host's record there satisfies it.
wait_for() {
        local i
        for ((i = 0; i < ${3:-60} * 10; i++)); do
                host_json "$1" | jq -e "$2" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}
# grants URL: the lease grants of the host in that instance's audit log, one epoch a line.
grants() {
        api "$1/v1/audit?action=lease.grant" | jq -r --arg h "$H" '.entries[] | select(.target == $h) | .detail.epoch'
}
# releases URL: how many times the host gave a lease back there.
releases() {
        api "$1/v1/audit?action=lease.release" | jq --arg h "$H" '[.entries[] | select(.target == $h)] | length'
}
mkdir -p "$D/health"
printf '#!/bin/sh\nexit 0\n' >"$D/health/10-ok"
chmod +x "$D/health/10-ok"

# The host registers with a, whose state b then copies; each gets the image.
# a starts again later on the same port (t_port: no other program takes
# it meanwhile).
start a "127.0.0.1:$(t_port)"
SERVERS=$URL_a
agent register 52:54:00:0f:00:01 >>"$D/h.log" 2>&1
H=$(jq -r .host_id "$D/h/state/agent.json")
t_stop "$PID_a"
copy a b
start a "${URL_a#http://}"
start b
for n in a b; do
        url=URL_$n
        $B -q --store "$D/store" push --token "$TOKEN" "${!url}" tiny:1.0 >/dev/null 2>>"$D/push.log"
        $C --server "${!url}" --token "$TOKEN" host assign "$H" tiny:1.0 >/dev/null
done
SERVERS="$URL_a, $URL_b"
S1=$(stat -c %s "$D/img-1.0/rootfs.erofs")
R1=$(sha "$D/img-1.0/rootfs.erofs")
others=0
for f in "$D/img-1.0"/*; do [ "$f" = "$D/img-1.0/rootfs.erofs" ] || others=$((others + $(stat -c %s "$f"))); done

t_case "the first server dies mid-download: the agent goes on at the second from its checkpoint"
before=$(served "$URL_b")
SLIPWAY_PAUSE_AT=slot-write:1 agent_bg run
paused=no
wait_paused && paused=yes
kill -9 "$PID_a"
wait "$PID_a" 2>/dev/null
kill -CONT "$APID"
wait_for "$URL_b" '.state == "healthy" and .version == "1.0"' 60
# What the agent had written when a went away, and what b sent since.
at=$(sed -n 's/.*slot b: resuming at \([0-9]*\) of .*/\1/p' "$D/h.log" | head -n 1)
sent=$(($(served "$URL_b") - before))
if [ $paused = yes ] && [ -n "$at" ] && [ "$at" -gt 0 ] && [ "$at" -lt "$S1" ] &&
        grep -q "going on with $URL_b" "$D/h.log" && [ "$(head -c "$S1" "$D/h/root-b" | sha256sum | cut -c1-64)" = "$R1" ] &&
        [ $((S1 - at)) -le "$sent" ] && [ "$sent" -le $((S1 - at + others)) ] &&
        [ "$(host_json "$URL_b" | jq -r .version)" = 1.0 ]; then
        t_ok "resumed at $at of $S1 bytes; b sent $sent bytes"
else
        t_fail "paused: $paused; resumed at: '$at' of $S1; b sent $sent (rootfs rest $((S1 - ${at:-0})) + at most $others);" \
                "$(grep -E 'resum|going on|stopped|interrupted|talking' "$D/h.log" | tail -5)"
fi

t_case "the lease comes from the second server; after the reboot the agent renews that epoch there"
epochs=$(grants "$URL_b" | tr '\n' ' ')
e=${epochs%% *}
if [ "$(wc -w <<<"$epochs")" = 1 ] && grep -q "lease $e granted" "$D/h.log" && grep -q "lease $e renewed" "$D/h.log" &&
        [ "$(jq -r .lease_epoch "$D/h/state/agent.json")" = 0 ] &&
        [ "$(releases "$URL_b")" = 1 ]; then
        t_ok "epoch $e"
else
        t_fail "grants at b: '$epochs'; $(grep -E 'lease' "$D/h.log" | tail -4)"
fi

t_case "the agent goes on checking in with the second server; status names it"
seen1=$(host_json "$URL_b" | jq .last_seen)
checked_in() { seen2=$(host_json "$URL_b" | jq .last_seen) && [ "$seen2" -gt "$seen1" ]; }
t_wait_until 60 checked_in
out=$(agent status 2>&1)
if [ "$seen2" -gt "$seen1" ] && grep -q "^talking to:  $URL_b\$" <<<"$out" &&
        grep -q "^server: *$URL_a $URL_b\$" <<<"$out" && grep -q "talking to $URL_b now, not $URL_a" "$D/h.log"; then
        t_ok
else
        t_fail "last_seen $seen1 -> $seen2; status: $out"
fi

t_case "slipctl with both servers answers from the one that is up"
if out=$($C --server "$URL_a $URL_b" --token "$TOKEN" host show "$H") && grep -q "1.0" <<<"$out" &&
        st=$(SLIPWAY_SERVER="$URL_a,$URL_b" $C status) && grep -q "^server: *$URL_b\$" <<<"$st" &&
        grep -q "^servers: *$URL_a $URL_b\$" <<<"$st"; then
        t_ok
else
        t_fail "host show: $out; status: ${st:-}"
fi

t_case "slipctl: when no server answers, each is named, exit status 2"
t_stop "$APID"
err=$($C --server "$URL_a,http://127.0.0.1:1" status 2>&1)
rc=$?
if [ $rc = 2 ] && grep -q "cannot reach the server at $URL_a: .*; cannot reach the server at http://127.0.0.1:1: " <<<"$err"; then
        t_ok
else
        t_fail "exit $rc: $err"
fi

# Part two: the host takes a lease for 2.0 at b and is stopped right after;
# a gets a copy of b's state (lease included) and b goes away.
$B -q --store "$D/store" push --token "$TOKEN" "$URL_b" tiny:2.0 >/dev/null 2>>"$D/push.log"
$C --server "$URL_b" --token "$TOKEN" host assign "$H" tiny:2.0 >/dev/null

t_case "the second server dies while the host holds its lease: the first renews the same epoch"
SLIPWAY_PAUSE_AT=before-arm:1 agent_bg run
paused=no
wait_paused && paused=yes
held=$(jq -r .lease_epoch "$D/h/state/agent.json")
granted=$(grants "$URL_b" | tr '\n' ' ')
released=$(releases "$URL_b")
t_stop "$PID_b"
copy b a
start a "${URL_a#http://}"
kill -CONT "$APID"
wait_for "$URL_a" '.state == "healthy" and .version == "2.0"' 60
# No new grant at a: the agent renewed the lease it held, then gave it back.
if [ $paused = yes ] && [ "$held" -gt 0 ] && [[ " $granted" == *" $held "* ]] &&
        grep -q "lease $held renewed" "$D/h.log" && [ "$(grants "$URL_a" | tr '\n' ' ')" = "$granted" ] &&
        [ "$(releases "$URL_a")" = $((released + 1)) ] && [ "$(jq -r .lease_epoch "$D/h/state/agent.json")" = 0 ] &&
        grep -q "talking to $URL_a now, not $URL_b" "$D/h.log"; then
        t_ok "epoch $held"
else
        t_fail "paused: $paused; held: $held; grants at a: $(grants "$URL_a" | tr '\n' ' '); $(grep -E 'lease|talking' "$D/h.log" | tail -4)"
fi
t_stop "$APID"

t_end
