#!/bin/bash
# slipwayd while its PostgreSQL server goes away. First the server stops
# and starts again under a running slipwayd: during the outage every
# request that needs the database is answered 503 with a JSON error and
# nothing is granted; once it is back, the next requests succeed, with no
# restart of slipwayd. Then a primary with a synchronous streaming standby,
# slipwayd on the multi-host connection string: the primary is stopped at
# once (immediate) and the standby promoted; slipwayd writes on the new
# primary by itself, and what it acknowledged before is there. The times
# (server back -> first good answer, primary loss -> first write) are
# measured and printed.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin pg-failover

SD=$BIN/slipwayd
D=$T_DIR
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

# give_up MESSAGE: a step the rest depends on failed.
give_up() {
        t_fail "$1"
        t_end
        exit 1
}

t_case "a primary of the suite's own"
pg_start pg >"$D/pg-start.log" 2>&1 || give_up "pg_start: $(cat "$D/pg-start.log")"
t_ok
TOKEN=$("$SD" --state-dir "$D/a" --database "$PGURL" --log-json no token create ci 2>>"$D/token.log")
mkdir -p "$D/keys"
"$BIN/slipway-build" keygen "$D/k.key" "$D/keys/k.pub" >/dev/null

# start DATABASE: starts slipwayd (state directory $D/a) on DATABASE; its
# PID in SPID, its URL in URL.
start() {
        local i
        rm -f "$D/a/slipwayd.url"
        "$SD" --state-dir "$D/a" --database "$1" --listen 127.0.0.1:0 --log-json no --enroll-token sekrit \
                --trusted-keys "$D/keys" --checkin-interval 5 ${SD_EXTRA:-} >>"$D/a.log" 2>&1 &
        SPID=$!
        PIDS+=($SPID)
        for ((i = 0; i < 1200; i++)); do
                [ -s "$D/a/slipwayd.url" ] && curl -s -o /dev/null "$(cat "$D/a/slipwayd.url")/v1/status" && break
                sleep 0.05
        done
        [ -s "$D/a/slipwayd.url" ] || give_up "slipwayd does not start: $(tail -n 5 "$D/a.log")"
        URL=$(cat "$D/a/slipwayd.url")
}
api() { curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
register() { # MAC: prints the host ID, labelled rack=w1
        local id
        id=$(api -d "{\"mac\": \"$1\", \"enroll\": \"sekrit\"}" "$URL/v1/hosts/register" | jq -r .id)
        api -o /dev/null -d '{"set": {"rack": "w1"}}' "$URL/v1/hosts/$id/labels"
        echo "$id"
}
# lease HOST: asks for HOST's lease; prints the HTTP status, then the body.
lease() { api -w '\n%{http_code}' -d '{}' "$URL/v1/hosts/$1/lease" | tac; }
# grants HOST: the epochs of HOST's lease grants in the audit log.
grants() {
        api "$URL/v1/audit?action=lease.grant" | jq -r --arg h "$1" '.entries[] | select(.target == $h) | .detail.epoch'
}

start "$PGURL"
H1=$(register 52:54:00:0c:00:01)
H2=$(register 52:54:00:0c:00:02)
api -o /dev/null -X PUT -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack"

t_case "the database stops under slipwayd: 503 with a JSON error, nothing granted"
pg_stop pg
ok=1 seen=""
for i in 1 2 3; do
        out=$(lease "$H1")
        code=$(head -n 1 <<<"$out")
        body=$(tail -n +2 <<<"$out")
        seen+="$code "
        if [ "$code" != 503 ] || [ "$(jq -r .kind <<<"$body" 2>/dev/null)" != unavailable ]; then
                ok=0
                seen+="($body) "
        fi
        sleep 0.2
done
code=$(api -o "$D/host.json" -w '%{http_code}' "$URL/v1/hosts/$H1")
seen+="host: $code"
[ "$code" = 503 ] && jq -e '.kind == "unavailable" and (.error | length > 0)' "$D/host.json" >/dev/null || ok=0
if [ $ok = 1 ] && t_alive "$SPID"; then
        t_ok "$seen"
else
        t_fail "answers: $seen; slipwayd alive: $(t_alive "$SPID" && echo yes || echo no)"
fi

t_case "the database back: slipwayd answers again without a restart"
pg_start pg >>"$D/pg-start.log" 2>&1 || give_up "pg_start again: $(tail -n 5 "$D/pg-start.log")"
t0=$(now_ms)
code="" tries=0
while [ $(($(now_ms) - t0)) -lt 30000 ]; do
        out=$(lease "$H1")
        code=$(head -n 1 <<<"$out")
        tries=$((tries + 1))
        [ "$code" = 200 ] && break
        sleep 0.02
done
back_ms=$(($(now_ms) - t0))
body=$(tail -n +2 <<<"$out")
n=$(grants "$H1" | wc -l)
if [ "$code" = 200 ] && [ "$(jq -r .granted <<<"$body")" = true ] && [ "$n" = 1 ] && t_alive "$SPID"; then
        t_ok "server back -> first good answer: $back_ms ms ($tries requests)"
else
        t_fail "after $back_ms ms: $code $body; grants of $H1: $n"
fi
api -o /dev/null -X DELETE "$URL/v1/hosts/$H1/lease"

t_case "a streaming standby, synchronous: slipwayd on the multi-host string"
if ! pg_standby stby pg >"$D/standby.log" 2>&1 || ! pg_sync pg stby >>"$D/standby.log" 2>&1; then
        give_up "$(cat "$D/standby.log")"
fi
t_stop "$SPID"
start "$(pg_multi_url pg stby)"
out=$(lease "$H1")
E1=$(tail -n +2 <<<"$out" | jq -r .epoch)
api -o /dev/null -X PUT -d '{"max_unavailable": 2}' "$URL/v1/budgets/service"
if [ "$(head -n 1 <<<"$out")" = 200 ] && [[ $E1 =~ ^[0-9]+$ ]] &&
        [ "$(pg_sql stby "SELECT lease_epoch FROM hosts WHERE id = '$H1'")" = "$E1" ]; then
        t_ok "lease epoch $E1 granted and on the standby"
else
        t_fail "lease: $out; on the standby: $(pg_sql stby "SELECT lease_epoch FROM hosts WHERE id = '$H1'" 2>&1)"
fi

t_case "the primary lost, the standby promoted: slipwayd writes on it by itself, nothing acknowledged lost"
t0=$(now_ms)
pg_crash pg
# Before the promotion no host takes writes: refused, nothing done.
codes=" $(api -o "$D/put.json" -w '%{http_code}' -X PUT -d '{"max_unavailable": 3}' "$URL/v1/budgets/rack") "
pg_promote stby >>"$D/standby.log" 2>&1 || give_up "pg_promote: $(tail -n 5 "$D/standby.log")"
promoted_ms=$(($(now_ms) - t0))
code=""
while [ $(($(now_ms) - t0)) -lt 60000 ]; do
        # A write: the budget set again (the same value).
        code=$(api -o "$D/put.json" -w '%{http_code}' -X PUT -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack")
        [[ $codes == *" $code "* ]] || codes+="$code "
        [ "$code" = 200 ] && break
        sleep 0.02
done
write_ms=$(($(now_ms) - t0))
held=$(api "$URL/v1/hosts/$H1" | jq -r .lease.epoch)
rack=$(api "$URL/v1/budgets" | jq -r '.budgets[] | select(.selector == "rack") | .max_unavailable' 2>/dev/null)
service=$(api "$URL/v1/budgets" | jq -r '.budgets[] | select(.selector == "service") | .max_unavailable' 2>/dev/null)
# Epochs go on growing: H1 gives its lease back, H2 takes the next.
api -o /dev/null -X DELETE -d "{\"epoch\": $E1}" "$URL/v1/hosts/$H1/lease"
out=$(lease "$H2")
E2=$(tail -n +2 <<<"$out" | jq -r .epoch)
bad_codes=$(tr ' ' '\n' <<<"$codes" | grep -vxE '200|503|' || true)
if [ "$code" != 200 ]; then
        t_fail "no write within 60 s: codes$codes; $(cat "$D/put.json"); $(tail -n 5 "$D/a.log")"
elif [ -n "$bad_codes" ] || [[ $codes != " 503 "* ]] || [ "$rack" != 1 ]; then
        t_fail "answers during the failover:$codes (503 first, then 503 or 200); budget rack: $rack (1)"
elif [ "$held" != "$E1" ] || [ "$service" != 2 ]; then
        t_fail "acknowledged before the loss: lease $E1 (now $held), budget service 2 (now $service)"
elif ! [[ $E2 =~ ^[0-9]+$ ]] || [ "$E2" -le "$E1" ]; then
        t_fail "a lease after the failover: $out (epoch before: $E1)"
elif ! t_alive "$SPID"; then
        t_fail "slipwayd died: $(tail -n 5 "$D/a.log")"
else
        t_ok "primary loss -> promoted: $promoted_ms ms; -> first successful write: $write_ms ms; answers:$codes"
fi

t_end
