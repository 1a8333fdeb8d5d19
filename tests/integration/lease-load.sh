#!/bin/bash
# Reboot leases over HTTP. A request that waits ("wait") is granted as
# soon as a group mate gives its lease back (well before its wait is over),
# or refused when the wait is over, with one audit entry; slipwayd stops
# promptly while requests wait. Then lease decisions under concurrent load:
# 200 registered hosts (services of 40, racks of 10) check in from 8 threads
# while asking for and giving back their reboot leases (tests/bench/checkins.c,
# the bench's load at a smaller scale). Every grant and release is in the
# audit log; replaying them must never find two hosts of a rack, or more
# than 10% of a service, holding a lease at once. Last, a rollout plan over
# those hosts spreads every wave evenly over the racks.
. "$(dirname "$0")/../lib.sh"
t_begin lease-load

SD=$BIN/slipwayd
CK=$TOP/build/bench/checkins
D=$T_DIR
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create ci)
mkdir -p "$D/keys"
"$BIN/slipway-build" keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
start_server() {
        rm -f "$D/srv/slipwayd.url"
        "$SD" --state-dir "$D/srv" --listen 127.0.0.1:0 --log-json no --enroll-token sekrit --trusted-keys "$D/keys" \
                >>"$D/srv.log" 2>&1 &
        SPID=$!
        PIDS+=($SPID)
        t_wait_until 60 test -s "$D/srv/slipwayd.url"
        URL=$(cat "$D/srv/slipwayd.url")
}
start_server
api() { curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
register() { # MAC: prints the host ID, labelled rack=w1
        local id
        id=$(api -d "{\"mac\": \"$1\", \"enroll\": \"sekrit\"}" "$URL/v1/hosts/register" | jq -r .id)
        api -o /dev/null -d '{"set": {"rack": "w1"}}' "$URL/v1/hosts/$id/labels"
        echo "$id"
}
HA=$(register 52:54:00:0a:00:01)
HB=$(register 52:54:00:0a:00:02)
api -o /dev/null -X PUT -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack"

t_case "a waiting lease request is granted as soon as its rack mate gives the lease back"
api -o /dev/null -d '{}' "$URL/v1/hosts/$HA/lease"
t0=$(now_ms)
api -d '{"wait": 20}' "$URL/v1/hosts/$HB/lease" >"$D/wait1" &
WPID=$!
sleep 1.5
kill -0 $WPID 2>/dev/null && still=yes || still=no
t1=$(now_ms)
api -o /dev/null -X DELETE "$URL/v1/hosts/$HA/lease"
wait $WPID
t2=$(now_ms)
if [ $still = yes ] && jq -e '.granted == true and .waited >= 1' "$D/wait1" >/dev/null && [ $((t2 - t1)) -lt 10000 ]; then
        t_ok "answered $((t2 - t1)) ms after the release, $((t2 - t0)) ms after asking"
else
        t_fail "still waiting at 1.5 s: $still; $(cat "$D/wait1"); $((t2 - t1)) ms after the release"
fi

t_case "a wait that runs out: the refusal with its reason and waited, one audit entry"
refusals() { api "$URL/v1/audit?action=lease.refuse" | jq --arg h "$1" '[.entries[] | select(.target == $h)] | length'; }
before=$(refusals "$HA")
t0=$(now_ms)
reply=$(api -d '{"wait": 2}' "$URL/v1/hosts/$HA/lease")
t1=$(now_ms)
after=$(refusals "$HA")
if jq -e '.granted == false and .waited == 2 and .group == "rack=w1" and (.reason | test("max_unavailable 1"))' \
        <<<"$reply" >/dev/null && [ $((t1 - t0)) -ge 1900 ] && [ $((after - before)) = 1 ]; then
        t_ok
else
        t_fail "$reply after $((t1 - t0)) ms; refusals logged: $((after - before))"
fi

t_case "'wait' must be 0 to 60 seconds: 400 invalid_value"
ok=1
for body in '{"wait": 61}' '{"wait": -1}' '{"wait": "5"}' '{"wait": 1.5}'; do
        code=$(api -o "$D/bad" -w '%{http_code}' -d "$body" "$URL/v1/hosts/$HA/lease")
        [ "$code" = 400 ] && jq -e '.kind == "invalid_value" and (.error | test("wait"))' "$D/bad" >/dev/null ||
                { ok=0; echo "$body: $code $(cat "$D/bad")"; }
done >"$D/bad.log"
code=$(api -o "$D/bad" -w '%{http_code}' -d '{"wiat": 5}' "$URL/v1/hosts/$HA/lease")
[ "$code" = 400 ] && jq -e '.kind == "unknown_field"' "$D/bad" >/dev/null || { ok=0; echo "wiat: $code" >>"$D/bad.log"; }
[ $ok = 1 ] && t_ok || t_fail "$(cat "$D/bad.log")"

t_case "slipwayd stops promptly while a lease request waits"
api -d '{"wait": 60}' "$URL/v1/hosts/$HA/lease" >"$D/wait2" &
WPID=$!
sleep 1
t0=$(now_ms)
kill -TERM "$SPID"
wait "$SPID"
rc=$?
t1=$(now_ms)
wait $WPID
if [ $rc = 0 ] && [ $((t1 - t0)) -lt 5000 ]; then
        t_ok "$((t1 - t0)) ms"
else
        t_fail "exit $rc after $((t1 - t0)) ms"
fi
start_server
api -o /dev/null -X DELETE "$URL/v1/hosts/$HB/lease"
audit0=$(api "$URL/v1/audit?last=1" | jq '.entries[-1].id // 0')

t_case "200 hosts, 8 threads: check-ins, lease requests and releases all answered"
if "$CK" --url "$URL" --admin-token "$TOKEN" --enroll sekrit --hosts 200 --threads 8 --seconds 4 --lease-every 2 \
        >"$D/ck.out" 2>"$D/ck.err"; then
        granted=$(sed -n '1s/.*leases: \([0-9]*\) granted, \([0-9]*\) refused.*/\1/p' "$D/ck.out")
        refused=$(sed -n '1s/.*leases: \([0-9]*\) granted, \([0-9]*\) refused.*/\2/p' "$D/ck.out")
        if [ "${granted:-0}" -gt 0 ] && [ "${refused:-0}" -gt 0 ]; then
                t_ok "$granted granted, $refused refused"
        else
                t_fail "expected grants and refusals: $(head -1 "$D/ck.out")"
        fi
else
        t_fail "$(cat "$D/ck.err")"
fi

t_case "the audit log's grants and releases never exceed a budget"
# Every lease entry, page by page.
: >"$D/audit.json"
since=$audit0
while :; do
        page=$(api "$URL/v1/audit?action=lease&since=$since&limit=1000")
        n=$(jq '.entries | length' <<<"$page")
        [ "$n" -gt 0 ] || break
        jq -c '.entries[] | select(.action == "lease.grant" or .action == "lease.release") | [.action, .target]' \
                <<<"$page" >>"$D/audit.json"
        since=$(jq '.entries[-1].id' <<<"$page")
        [ "$n" -lt 1000 ] && break
done
labels=$(api "$URL/v1/hosts" | jq -c '[.hosts[] | {key: .id, value: .labels}] | from_entries')
# Only a granted lease's release counts (a release of nothing is logged too).
max=$(jq -rs --argjson L "$labels" '
        reduce .[] as $e ({held: {}, rack: {}, svc: {}, r: 0, s: 0, n: 0};
                $L[$e[1]] as $l
                | if $e[0] == "lease.grant" and (.held[$e[1]] | not) then
                        .held[$e[1]] = true | .n += 1
                        | .rack[$l.rack] += 1 | .svc[$l.service] += 1
                        | .r = ([.r, .rack[$l.rack]] | max) | .s = ([.s, .svc[$l.service]] | max)
                  elif $e[0] == "lease.release" and .held[$e[1]] then
                        .held[$e[1]] = false | .rack[$l.rack] -= 1 | .svc[$l.service] -= 1
                  else . end)
        | "\(.n) \(.r) \(.s)"' "$D/audit.json")
read -r n r s <<<"$max"
if [ "${n:-0}" -gt 0 ] && [ "${r:-9}" -le 1 ] && [ "${s:-9}" -le 4 ]; then
        t_ok "$n grants; at most $r per rack and $s per service at once"
else
        t_fail "grants ${n:-?}, most at once: rack ${r:-?} (budget 1), service ${s:-?} (budget 4 of 40)"
fi

t_case "a rollout plan spreads each wave evenly over the racks (the bottleneck of 1 per rack)"
# 20 racks of 10 (and rack w1 of 2): waves end at 1, 21, 101 and 202 hosts,
# so after the third wave every rack r0..r19 has exactly 5 of its 10.
sample_def "$D/tiny.conf"
export SOURCE_DATE_EPOCH=1700000000 SLIPWAY_CACHE=$D/cache
if "$BIN/slipway-build" -q --store "$D/store" build --key "$D/k.key" --no-disk --image-version 1.0 "$D/tiny.conf" \
        >"$D/build.log" 2>&1 &&
        "$BIN/slipway-build" -q --store "$D/store" push --token "$TOKEN" "$URL" tiny:1.0 >>"$D/build.log" 2>&1; then
        labels=$(api "$URL/v1/hosts" | jq -c '[.hosts[] | {key: .id, value: .labels.rack}] | from_entries')
        plan=$(api -d '{"image": "tiny:1.0", "waves": [1, "10%", "50%", "100%"]}' "$URL/v1/rollouts/plan")
        # Per wave, the hosts of each rack r0..r19 so far.
        counts=$(jq -c --argjson L "$labels" '[.waves as $w | range(0; $w | length) as $i
                | [$w[:$i + 1][].hosts[] | $L[.] | select(startswith("r"))] | group_by(.) | map(length)
                | {wave: ($i + 1), racks: length, min: min, max: max}]' <<<"$plan")
        if [ "$(jq -c '[.waves[].hosts_count]' <<<"$plan")" = '[1,20,80,101]' ] &&
                jq -e '.[2] == {wave: 3, racks: 20, min: 5, max: 5} and .[3].min == 10 and .[3].max == 10
                        and .[1].max - .[1].min <= 1' <<<"$counts" >/dev/null; then
                t_ok "racks so far after each wave: $(jq -c '[.[] | "\(.min)-\(.max)"]' <<<"$counts")"
        else
                t_fail "$(jq -c '[.waves[].hosts_count]' <<<"$plan") $counts"
        fi
else
        t_fail "$(tail -n 5 "$D/build.log")"
fi

t_end
