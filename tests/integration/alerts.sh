#!/bin/bash
# The operator's view from outside: /metrics as Prometheus reads it, the
# alert rules (promtool's unit tests), the Grafana dashboard, and JSON log
# lines. One slipwayd on loopback, with JSON logs at debug level: a budget
# of one on FleetLock's groups, one node holding a lease and one refused;
# then an image, two hosts on two racks and a rollout whose reboot window
# is closed, a lease request waiting for it, and the rollout paused.
. "$(dirname "$0")/../lib.sh"
t_begin alerts

SD=${SLIPWAYD:-$BIN/slipwayd}
BUILD=$BIN/slipway-build
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
RULES=$TOP/contrib/prometheus/slipway-alerts.yml
DASHBOARD=$TOP/contrib/grafana/slipway.json
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

A=c988d2509fdf4cdcbed39037c56406fb
B=5b2a9c7e3f1d4e8a9b0c6d2e7f8a1b3c

# api METHOD PATH [CURL-ARGS...]: an admin call; sets CODE and BODY.
api() {
        local method=$1 path=$2 out
        shift 2
        out=$(curl -s -X "$method" -w '\n%{http_code}' -H "Authorization: Bearer $TOKEN" "$@" "$URL$path")
        CODE=${out##*$'\n'}
        BODY=${out%$'\n'*}
}

# pre_reboot ID: FleetLock's lock call for ID in group default; sets CODE.
pre_reboot() {
        CODE=$(printf '{"client_params": {"id": "%s", "group": "default"}}' "$1" |
                curl -s -o /dev/null -w '%{http_code}' -X POST -H 'fleet-lock-protocol: true' \
                        -H 'Content-Type: application/json' --data-binary @- "$URL/v1/pre-reboot")
}

# value SERIES: the value of one exact series (name{labels}) in $D/metrics.
value() {
        awk -v s="$1" '$1 == s { print $2 }' "$D/metrics"
}

# expect SERIES=VALUE...: each series has that value in $D/metrics.
expect() {
        local want
        for want in "$@"; do
                [ "$(value "${want% *}")" = "${want##* }" ] || t_fail "expected '$want', got '$(value "${want% *}")'"
        done
}

# scrape_until SERIES VALUE: scrapes into $D/metrics until SERIES has
# VALUE, for up to 30 s (what it waits for is a tick or a waiting request).
scrape_until() {
        local i
        for ((i = 0; i < 150; i++)); do
                curl -s "$URL/metrics" >"$D/metrics"
                [ "$(value "$1")" = "$2" ] && return 0
                sleep 0.2
        done
        return 1
}

# names_in FILE: the slipway_ metric names an expression file names.
names_in() {
        grep -o 'slipway_[a-z0-9_]*' "$1" | sort -u
}

# unknown_names FILE: those not exported by the scraped slipwayd (a
# summary's _sum and _count belong to it).
unknown_names() {
        local n
        for n in $(names_in "$1"); do
                grep -qx "$n" "$D/families" && continue
                grep -qx "${n%_sum}" "$D/families" && [ "$(grep -c "^# TYPE ${n%_sum} summary" "$D/metrics")" = 1 ] && continue
                grep -qx "${n%_count}" "$D/families" && [ "$(grep -c "^# TYPE ${n%_count} summary" "$D/metrics")" = 1 ] && continue
                echo "$n"
        done
}

if [ ! -x "$SD" ]; then
        t_case "slipwayd is built"
        t_fail "no $SD (make, or set SLIPWAYD)"
        t_end
        exit 1
fi

t_case "slipwayd with --log-format json, a budget, a lease held and one refused"
mkdir -p "$D/keys"
$BUILD keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
tiny_def "$D/tiny.conf" 1.0
$BUILD -q --store "$D/store" build --key "$D/k.key" --no-disk "$D/tiny.conf" >/dev/null 2>"$D/build.log" ||
        t_fail "building tiny 1.0: $(tail -3 "$D/build.log")"
TOKEN=$("$SD" --state-dir "$D/state" --log-json no token create ci)
"$SD" --state-dir "$D/state" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-format json --log-level debug \
        >"$D/stdout" 2>"$D/log" &
PIDS+=("$!")
for ((i = 0; i < 1200; i++)); do
        [ -s "$D/state/slipwayd.url" ] && break
        sleep 0.05
done
URL=$(cat "$D/state/slipwayd.url" 2>/dev/null)
api PUT /v1/budgets/fleetlock -H 'Content-Type: application/json' -d '{"max_unavailable": 1}'
[ "$CODE" = 200 ] || t_fail "budget: $CODE $BODY"
pre_reboot $A
[ "$CODE" = 200 ] || t_fail "the first node: $CODE"
pre_reboot $B
[ "$CODE" = 409 ] || t_fail "the second node: $CODE, expected a refusal"
api GET /v1/hosts/no-such-host
[ "$CODE" = 404 ] || t_fail "an unknown host: $CODE"
[ "$T_VERDICT" = pending ] && t_ok

t_case "/metrics: the lease, the group at its budget, the refusal"
curl -s "$URL/metrics" >"$D/metrics"
awk '$1 == "#" && $2 == "TYPE" { print $3 }' "$D/metrics" | sort -u >"$D/families"
for want in 'slipway_leases_held 1' 'slipway_group_hosts{group="fleetlock=default"} 2' \
        'slipway_group_down{group="fleetlock=default"} 1' 'slipway_group_down_allowed{group="fleetlock=default"} 1' \
        'slipway_group_leases_held{group="fleetlock=default"} 1' 'slipway_lease_refusals_total{reason="budget"} 1' \
        'slipway_lease_refusals_total{reason="window"} 0' 'slipway_hosts_quarantined 0' \
        'slipway_rollouts{state="running"} 0' 'slipway_hosts_blocked{reason="budget"} 0' \
        'slipway_hosts_by_version{version="none"} 2'; do
        [ "$(value "${want% *}")" = "${want##* }" ] || t_fail "expected '$want', got '$(value "${want% *}")'"
done
[ "$T_VERDICT" = pending ] && t_ok "$(wc -l <"$D/families") metrics"

t_case "/metrics: a rollout, its closed window, a request waiting for it, the pause"
SLIPWAY_TOKEN=$TOKEN $BUILD -q --store "$D/store" push "$URL" tiny:1.0 >/dev/null 2>"$D/push.log" ||
        t_fail "push: $(tail -3 "$D/push.log")"
H=()
for m in 52:54:00:a1:00:01 52:54:00:a1:00:02; do
        curl -sf -o /dev/null "$URL/boot/ipxe?mac=$m"
        api GET "/v1/hosts/$m"
        H+=("$(jq -r .id <<<"$BODY")")
done
api POST "/v1/hosts/${H[0]}/labels" -H 'Content-Type: application/json' -d '{"set": {"rack": "r1"}}'
api POST "/v1/hosts/${H[1]}/labels" -H 'Content-Type: application/json' -d '{"set": {"rack": "r2"}}'
for h in "${H[@]}"; do
        api POST "/v1/hosts/$h/checkin" -H 'Content-Type: application/json' -d '{"state": "healthy"}'
done
# A window that opens in an hour and closes in two: closed now.
now=$(date -u +%s)
window="$(date -u -d @$((now + 3600)) +%H:%M)-$(date -u -d @$((now + 7200)) +%H:%M)"
api POST /v1/rollouts -H 'Content-Type: application/json' \
        -d "{\"image\": \"tiny:1.0\", \"waves\": [\"100%\"], \"windows\": {\"rack\": \"$window\"}}"
RID=$(jq -r .id <<<"$BODY")
[ "$CODE" = 201 ] || [ "$CODE" = 200 ] || t_fail "rollout start: $CODE $BODY"
# Every host: the two FleetLock nodes too.
scrape_until "slipway_rollout_hosts{rollout=\"$RID\",status=\"assigned\"}" 4 || t_fail "not all four hosts assigned"
curl -s -o "$D/lease.json" -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d '{"wait": 60}' "$URL/v1/hosts/${H[0]}/lease" &
PIDS+=("$!")
scrape_until 'slipway_hosts_blocked{reason="window"}' 1 || t_fail "no request waits for the window"
expect "slipway_rollout_info{rollout=\"$RID\",kind=\"rollout\",image=\"tiny:1.0\",state=\"running\"} 1" \
        "slipway_rollout_paused{rollout=\"$RID\"} 0" "slipway_rollout_wave{rollout=\"$RID\"} 1" \
        "slipway_rollout_waves{rollout=\"$RID\"} 1" "slipway_rollout_hosts{rollout=\"$RID\",status=\"pending\"} 0" \
        "slipway_rollout_window_open{rollout=\"$RID\",selector=\"rack\"} 0" 'slipway_rollouts{state="running"} 1' \
        'slipway_lease_waiting{group="rack=r1"} 1' 'slipway_lease_refusals_total{reason="window"} 1' \
        'slipway_hosts_by_version{version="none"} 4'
api POST "/v1/rollouts/$RID/pause"
scrape_until "slipway_rollout_paused{rollout=\"$RID\"}" 1 || t_fail "the pause does not show: $CODE $BODY"
expect 'slipway_rollouts{state="paused"} 1' 'slipway_rollouts{state="running"} 0' \
        "slipway_rollout_info{rollout=\"$RID\",kind=\"rollout\",image=\"tiny:1.0\",state=\"paused\"} 1"
[ "$T_VERDICT" = pending ] && t_ok

t_case "/metrics: Prometheus's names and no empty label value"
bad=$(grep -v '^#' "$D/metrics" | grep -F '=""' | head -3)
[ -z "$bad" ] || t_fail "empty label values: $bad"
bad=$(grep -v '^slipway_' "$D/families")
[ -z "$bad" ] || t_fail "not slipway_: $bad"
# Counters, and only counters, end in _total.
bad=$(awk '$1 == "#" && $2 == "TYPE" && (($3 ~ /_total$/) != ($4 == "counter")) { print $3 }' "$D/metrics")
[ -z "$bad" ] || t_fail "counter names: $bad"
# Every sample is of a family announced by HELP and TYPE.
bad=$(grep -v '^#' "$D/metrics" | sed 's/[{ ].*//; s/_sum$//; s/_count$//' | sort -u | grep -vxFf "$D/families")
[ -z "$bad" ] || t_fail "samples without TYPE: $bad"
[ "$T_VERDICT" = pending ] && t_ok

t_case "alert rules: promtool check rules and test rules"
if ! command -v promtool >/dev/null; then
        t_skip "no promtool (Debian's prometheus package)"
else
        promtool check rules "$RULES" >"$D/check.log" 2>&1 || t_fail "check rules: $(tail -3 "$D/check.log")"
        (cd "$(dirname "$RULES")" && promtool test rules slipway-alerts.test.yml) >"$D/test.log" 2>&1 ||
                t_fail "test rules: $(tail -20 "$D/test.log")"
        n=$(grep -c '^ *- alert:' "$RULES")
        for a in $(awk '/^ *- alert:/ { print $3 }' "$RULES"); do
                grep -q "alertname: $a\$" "$(dirname "$RULES")/slipway-alerts.test.yml" || t_fail "no unit test of $a"
        done
        [ "$T_VERDICT" = pending ] && t_ok "$n rules"
fi

t_case "alert rules name only metrics slipwayd exports"
bad=$(unknown_names "$RULES")
[ -z "$bad" ] || t_fail "not exported: $bad"
[ "$(names_in "$RULES" | wc -l)" -ge 8 ] || t_fail "too few metrics named: $(names_in "$RULES")"
[ "$T_VERDICT" = pending ] && t_ok

t_case "the Grafana dashboard: valid JSON, every query PromQL on metrics that exist"
if ! jq -e '.panels | length > 0' "$DASHBOARD" >/dev/null; then
        t_fail "not JSON, or no panels"
else
        jq -r '.. | objects | select(has("expr")) | .expr' "$DASHBOARD" >"$D/exprs"
        [ -s "$D/exprs" ] || t_fail "no query"
        bad=$(grep -v 'slipway_' "$D/exprs")
        [ -z "$bad" ] || t_fail "a query names no slipway metric: $bad"
        bad=$(unknown_names "$D/exprs")
        [ -z "$bad" ] || t_fail "not exported: $bad"
        bad=$(jq -r '.panels[] | select(.type != "row") | select((.targets // []) | length == 0) | .title' "$DASHBOARD")
        [ -z "$bad" ] || t_fail "panels without a query: $bad"
        # Each query parses as PromQL: promtool checks them as recording rules.
        if command -v promtool >/dev/null; then
                jq '{groups: [{name: "dashboard", rules: [.. | objects | select(has("expr")) | .expr] |
                        to_entries | map({record: "slipway:dashboard:\(.key)", expr: .value})}]}' "$DASHBOARD" \
                        >"$D/dashboard-rules.json"
                promtool check rules "$D/dashboard-rules.json" >"$D/dashboard-check.log" 2>&1 ||
                        t_fail "a query is no PromQL: $(tail -5 "$D/dashboard-check.log")"
        fi
        [ "$T_VERDICT" = pending ] && t_ok "$(jq '[.panels[] | select(.type != "row")] | length' "$DASHBOARD") panels, $(wc -l <"$D/exprs") queries"
fi

t_case "JSON logs: every line parses, with ts (RFC 3339, UTC), level, prog and msg"
n=$(wc -l <"$D/log")
[ "$n" -gt 2 ] || t_fail "only $n lines"
if ! jq -e . "$D/log" >/dev/null 2>"$D/jq.err"; then
        t_fail "a line is no JSON: $(head -2 "$D/jq.err")"
fi
bad=$(jq -c 'select((.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$") | not)
        or (.level | IN("error", "warning", "info", "debug") | not) or .prog != "slipwayd"
        or (.msg | type) != "string")' "$D/log" | head -3)
[ -z "$bad" ] || t_fail "bad fields: $bad"
[ "$T_VERDICT" = pending ] && t_ok "$n lines"

t_case "JSON logs: the instance on the start line; a request's id, actor and host"
jq -e -s 'map(select(.msg | startswith("serving on"))) | length == 1 and (.[0].instance | length > 0)' "$D/log" \
        >/dev/null || t_fail "no start line with the instance"
line=$(jq -c 'select(.msg | test("^GET /v1/hosts/no-such-host: "))' "$D/log" | head -1)
if [ -z "$line" ]; then
        t_fail "no line of the 404"
else
        jq -e '.level == "debug" and (.request | test("^[0-9]+$")) and .actor == "ci" and .host == "no-such-host"
                and (.instance | length > 0)' <<<"$line" >/dev/null || t_fail "fields: $line"
fi
[ "$T_VERDICT" = pending ] && t_ok

t_case "log-format: text or json, anything else named with its key"
expect_fail "log-format" "$SD" --state-dir "$D/state" --trusted-keys "" --log-format yaml --check-config
"$SD" --state-dir "$D/state" --trusted-keys "" --log-format text --check-config >"$D/text.log" 2>&1 ||
        t_fail "text is refused: $(cat "$D/text.log")"
[ "$T_VERDICT" = pending ] && t_ok

t_end
