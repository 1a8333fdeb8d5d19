#!/bin/bash
# `slipwayd migrate` (docs/operations.md, "Moving to PostgreSQL"): a state
# made by a real rollout on sqlite (agents with the sim backend, leases
# taken and given back, one lease still held, audit entries, tokens) is
# copied into a PostgreSQL database with the documented short stop; a
# slipwayd started on PostgreSQL serves the same hosts, images, rollouts,
# leases (with their epochs), tokens and audit log; a new lease's epoch is
# above every copied one, and a new rollout runs to its end. The bad cases
# each fail with one clear error and write nothing: a server running, no
# sqlite state, a bad connection string, a target that holds a fleet, a
# copy that fails half way. Prints the stop (slipwayd stopped → serving on
# PostgreSQL).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin migrate

B=$BIN/slipway-build
SD=$BIN/slipwayd
AG=$BIN/slipway-agent
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

t_case "a PostgreSQL server of the suite's own"
if pg_start >"$D/pg-start.log" 2>&1; then t_ok; else t_fail "$(cat "$D/pg-start.log")"; t_end; fi

mkdir -p "$D/keys"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
for v in 1.0 2.0 3.0; do
        tiny_def "$D/tiny-$v.conf" $v
        $B -q --store "$D/store" build --key "$D/k.key" --no-disk "$D/tiny-$v.conf" >/dev/null
        $B -q --store "$D/store" export tiny:$v "$D/img-$v" >/dev/null
done

TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create ci)
"$SD" --state-dir "$D/srv" --log-json no token create second >/dev/null
: >"$D/srv.conf"
start_server() { # LISTEN [FLAGS...]
        rm -f "$D/srv/slipwayd.url"
        "$SD" --config "$D/srv.conf" --state-dir "$D/srv" --listen "$1" --trusted-keys "$D/keys" --log-json no \
                --enroll-token sekrit --checkin-interval 1 --heartbeat-timeout 4 --lease-ttl 600 "${@:2}" \
                >>"$D/srv.log" 2>&1 &
        SRV=$!
        PIDS+=($SRV)
        t_wait_until 60 test -s "$D/srv/slipwayd.url"
        URL=$(cat "$D/srv/slipwayd.url")
}
# The server on PostgreSQL takes the port over (t_port: no other program
# takes it meanwhile).
LISTEN=127.0.0.1:$(t_port)
start_server "$LISTEN"
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
post() { api -H 'Content-Type: application/json' -d "$2" "$URL$1"; }
push() { # VERSION
        local f
        for f in "$D/img-$1"/*; do api -o /dev/null -T "$f" "$URL/v1/blobs/sha256/$(sha "$f")"; done
        post /v1/images "{\"manifest\":\"$(sha "$D/img-$1/manifest.json")\",\"signature\":\"$(sha "$D/img-$1/manifest.sig")\"}" |
                jq -r .id
}
push 1.0 >/dev/null
push 2.0 >/dev/null
push 3.0 >/dev/null

# Four hosts of service web in two racks (one down per rack at a time).
HOSTS="h1 h2 h3 h4"
start_agent() {
        (exec "$AG" --backend sim --sim-dir "$D/$1" --state-dir "$D/$1/state" --server "$URL" --keys-dir "$D/keys" \
                --checkin-interval 1 --sim-slot-size 32M --enroll-token sekrit run >>"$D/$1.log" 2>&1) &
        PIDS+=($!)
}
n=0
for h in $HOSTS; do
        n=$((n + 1))
        "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" --enroll-token sekrit \
                register "52:54:00:0c:00:0$n" >>"$D/$h.log" 2>&1
        id=$(jq -r .host_id "$D/$h/state/agent.json")
        post "/v1/hosts/$id/labels" "{\"set\": {\"service\": \"web\", \"rack\": \"r$(((n - 1) % 2 + 1))\"}}" >/dev/null
        api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:1.0"}' "$URL/v1/hosts/$id/image"
done
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack"

hosts() { api "$URL/v1/hosts"; }
on() { # VERSION COUNT: COUNT hosts of service web healthy on VERSION
        [ "$(hosts | jq "[.hosts[] | select(.version == \"$1\" and .state == \"healthy\" and
                .labels.service == \"web\")] | length")" = "$2" ]
}
wait_for() { # SECONDS CONDITION...
        local i
        for ((i = 0; i < $1 * 5; i++)); do
                "${@:2}" && return 0
                sleep 0.2
        done
        return 1
}
rollout_state() { api "$URL/v1/rollouts/$1" | jq -r .state; }
rollout_done() { [ "$(rollout_state "$1")" = done ]; }
max_epoch() { api "$URL/v1/audit?action=lease.grant&limit=1000" | jq '[.entries[].detail.epoch] | max // 0'; }

t_case "on sqlite: four hosts come up on 1.0 and a rollout takes them to 2.0"
for h in $HOSTS; do start_agent $h; done
R1=""
if wait_for 60 on 1.0 4; then
        R1=$(post /v1/rollouts '{"image": "tiny:2.0", "selector": {"service": "web"}, "waves": [1, "100%"]}' | jq -r .id)
fi
if [ -n "$R1" ] && wait_for 120 on 2.0 4 && wait_for 30 rollout_done "$R1"; then
        t_ok "rollout $R1, $(api "$URL/v1/audit?action=lease.grant&limit=1000" | jq '.entries | length') leases granted"
else
        t_fail "rollout ${R1:-?} $(rollout_state "${R1:-0}"); $(hosts | jq -c '[.hosts[] | {version, state}]')"
fi

# A host without an agent holds its lease across the migration.
reg=$(curl -s -H 'Content-Type: application/json' -d '{"mac": "52:54:00:0c:00:99", "enroll": "sekrit"}' \
        "$URL/v1/hosts/register")
SPARE=$(jq -r .id <<<"$reg")
SPARE_TOKEN=$(jq -r .token <<<"$reg")
spare() { curl -s -H "Authorization: Bearer $SPARE_TOKEN" -H 'Content-Type: application/json' "$@"; }
post "/v1/hosts/$SPARE/labels" '{"set": {"role": "spare"}}' >/dev/null
spare -o /dev/null -d '{"state": "healthy"}' "$URL/v1/hosts/$SPARE/checkin"
HELD=$(spare -d '{}' "$URL/v1/hosts/$SPARE/lease" | jq -r .epoch)

# What the API shows, to be shown the same after the move.
snapshot() { # OUT
        # The host without an agent is seen, as the agents are every second.
        spare -o /dev/null -d '{"state": "healthy"}' "$URL/v1/hosts/$SPARE/checkin"
        hosts | jq -S '[.hosts[] | {id, mac, version, state, current_image, labels, quarantined,
                lease: (.lease // null | if . then {epoch} else null end)}] | sort_by(.id)' >"$1.hosts"
        api "$URL/v1/images" | jq -S '[.images[] | {id, name, version}]' >"$1.images"
        api "$URL/v1/rollouts" | jq -S '[.rollouts[] | {id, state, image}]' >"$1.rollouts"
        api "$URL/v1/audit?limit=1000" | jq -S '[.entries[] | {id, actor, action, target, detail}]' >"$1.audit"
        api "$URL/v1/budgets" | jq -S . >"$1.budgets"
}
snapshot "$D/before"
E1=$(max_epoch)

t_case "migrate refuses while slipwayd serves the state directory, and writes nothing"
"$SD" --state-dir "$D/srv" --log-json no migrate --to "$PGURL" >"$D/running.out" 2>&1
rc=$?
tables=$(sql "$PGURL" "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
if [ $rc != 0 ] && grep -q "slipwayd is running on .* (pid $SRV): stop it before a migration" "$D/running.out" &&
        [ "$(wc -l <"$D/running.out")" = 1 ] && [ "$tables" = 0 ]; then
        t_ok
else
        t_fail "rc $rc, $tables tables: $(cat "$D/running.out")"
fi

t_case "the short stop: slipwayd stopped, migrate, started on PostgreSQL at the same address"
T0=$(now_ms)
t_stop $SRV
T1=$(now_ms)
"$SD" --config "$D/srv.conf" --state-dir "$D/srv" --log-json no migrate --to "$PGURL" >"$D/migrate.out" \
        2>"$D/migrate.err"
rc=$?
T2=$(now_ms)
start_server "$LISTEN" --database "$PGURL"
for ((i = 0; i < 1200; i++)); do [ "$(api -o /dev/null -w '%{http_code}' "$URL/v1/hosts")" = 200 ] && break; sleep 0.05; done
T3=$(now_ms)
STOP=$((T3 - T0))
rows=$(sed -n 's/^  \([0-9]*\) rows copied.*/\1/p' "$D/migrate.out")
if [ $rc = 0 ] && [ "$(api -o /dev/null -w '%{http_code}' "$URL/v1/hosts")" = 200 ] &&
        grep -q "^migrate: hosts: 5 rows, done" "$D/migrate.err" &&
        ! awk '/^  [a-z_]+ +[0-9]+  [0-9a-f]{16} = / && $3 != $5 { bad = 1 } END { exit !bad }' "$D/migrate.out" &&
        [ "$(grep -cE '^  [a-z_]+ +[0-9]+  [0-9a-f]{16} = [0-9a-f]{16}$' "$D/migrate.out")" -ge 12 ]; then
        t_ok "stop $STOP ms: slipwayd stopped $((T1 - T0)) ms, migrate $((T2 - T1)) ms ($rows rows), start $((T3 - T2)) ms"
else
        t_fail "rc $rc: $(cat "$D/migrate.out" "$D/migrate.err"); $(tail -n 3 "$D/srv.log")"
fi

t_case "on PostgreSQL: the same hosts, images, rollouts, budgets, leases with their epochs, audit log and tokens"
snapshot "$D/after"
bad=""
for what in hosts images rollouts budgets audit; do
        cmp -s "$D/before.$what" "$D/after.$what" || bad+=" $what"
done
"$SD" --state-dir "$D/srv" --database "$PGURL" --log-json no token list >"$D/tokens" 2>&1
grep -q '^ci ' "$D/tokens" && grep -q '^second ' "$D/tokens" || bad+=" tokens"
held=$(jq -r ".[] | select(.id == \"$SPARE\") | .lease.epoch" "$D/after.hosts")
[ "$held" = "$HELD" ] || bad+=" lease($held, not $HELD)"
[ "$(sql "$PGURL" "SELECT count(*) FROM hosts")" = 5 ] || bad+=" pg-hosts"
# The images in the order they were pushed.
[ "$(sql "$PGURL" "SELECT string_agg(version, ',' ORDER BY seq) FROM images")" = "1.0,2.0,3.0" ] || bad+=" seq"
# The instance records itself as the holder of every blob of its state
# directory (the holders were not copied): its peers can fetch them.
for ((i = 0; i < 600; i++)); do
        unheld=$(sql "$PGURL" "SELECT count(*) FROM blobs WHERE sha256 NOT IN (SELECT sha256 FROM blob_holders)")
        [ "$unheld" = 0 ] && break
        sleep 0.1
done
[ "$unheld" = 0 ] && [ "$(sql "$PGURL" "SELECT count(DISTINCT instance) FROM blob_holders")" = 1 ] ||
        bad+=" holders($unheld blobs unheld)"
if [ -z "$bad" ]; then
        t_ok "$(jq length "$D/after.hosts") hosts, $(jq length "$D/after.audit") audit entries, the held lease's epoch $HELD"
else
        t_fail "differ:$bad; $(diff "$D/before.hosts" "$D/after.hosts" | head -n 5)"
fi

t_case "the held lease renews with its epoch; a new lease's epoch is above every copied one; new rows get new ids"
renew=$(spare -d '{}' "$URL/v1/hosts/$SPARE/lease" | jq -r .epoch)
reg=$(curl -s -H 'Content-Type: application/json' -d '{"mac": "52:54:00:0c:00:98", "enroll": "sekrit"}' \
        "$URL/v1/hosts/register")
S2=$(jq -r .id <<<"$reg")
S2_TOKEN=$(jq -r .token <<<"$reg")
curl -s -o /dev/null -H "Authorization: Bearer $S2_TOKEN" -H 'Content-Type: application/json' \
        -d '{"state": "healthy"}' "$URL/v1/hosts/$S2/checkin"
new=$(curl -s -H "Authorization: Bearer $S2_TOKEN" -H 'Content-Type: application/json' -d '{}' \
        "$URL/v1/hosts/$S2/lease" | jq -r .epoch)
last_copied=$(jq 'map(.id) | max' "$D/before.audit")
first_new=$(api "$URL/v1/audit?limit=1000" | jq "[.entries[].id | select(. > $last_copied)] | min // 0")
spare -o /dev/null -X DELETE -d "{\"epoch\": $HELD}" "$URL/v1/hosts/$SPARE/lease"
if [ "$renew" = "$HELD" ] && [[ $new =~ ^[0-9]+$ ]] && [ "$new" -gt "$E1" ] && [ "$new" -gt "$HELD" ] &&
        [ "$first_new" = $((last_copied + 1)) ]; then
        t_ok "renewed $renew; new $new > $E1; audit goes on at $first_new"
else
        t_fail "renewed $renew (held $HELD); new $new (copied up to $E1); audit after $last_copied: $first_new"
fi

t_case "a new rollout runs on PostgreSQL: the agents go to 3.0"
R2=$(post /v1/rollouts '{"image": "tiny:3.0", "selector": {"service": "web"}, "waves": [1, "100%"]}' | jq -r .id)
if [[ $R2 =~ ^[0-9]+$ ]] && [ "$R2" -gt "$R1" ] && wait_for 120 on 3.0 4 && wait_for 30 rollout_done "$R2"; then
        t_ok "rollout $R2 done"
else
        t_fail "rollout ${R2:-?} $(rollout_state "${R2:-0}"); $(hosts | jq -c '[.hosts[] | {version, state}]')"
fi
t_stop $SRV
for p in "${PIDS[@]}"; do t_stop "$p"; done

t_case "migrate into a database that holds a fleet: refused, nothing written"
before=$(sql "$PGURL" "SELECT (SELECT count(*) FROM audit) || ' ' || (SELECT count(*) FROM hosts)")
"$SD" --state-dir "$D/srv" --log-json no migrate --to "$PGURL" >"$D/full.out" 2>&1
rc=$?
after=$(sql "$PGURL" "SELECT (SELECT count(*) FROM audit) || ' ' || (SELECT count(*) FROM hosts)")
if [ $rc != 0 ] && grep -q "holds a fleet already (table '[a-z_]*' has rows): migrate into an empty database" \
        "$D/full.out" && [ "$before" = "$after" ]; then
        t_ok "$(cat "$D/full.out")"
else
        t_fail "rc $rc, $before → $after: $(cat "$D/full.out")"
fi

t_case "no sqlite state, a bad connection string: each a clear error, nothing written"
sql "$PGURL" "CREATE DATABASE empty" >/dev/null
EMPTY=${PGURL/\/slipway\?//empty?}
mkdir -p "$D/nostate"
"$SD" --state-dir "$D/nostate" --log-json no migrate --to "$EMPTY" >"$D/nostate.out" 2>&1
rc1=$?
"$SD" --state-dir "$D/srv" --log-json no migrate --to "postgresql:///nosuchdb?host=$D/pg/run&user=postgres" \
        >"$D/badurl.out" 2>&1
rc2=$?
"$SD" --state-dir "$D/srv" --log-json no migrate --to "$D/other.db" >"$D/notpg.out" 2>&1
rc3=$?
tables=$(sql "$EMPTY" "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
if [ $rc1 != 0 ] && grep -q "no sqlite state in '$D/nostate'" "$D/nostate.out" && [ ! -e "$D/nostate/state.db" ] &&
        [ $rc2 != 0 ] && grep -q "cannot connect to the PostgreSQL state database:" "$D/badurl.out" &&
        [ $rc3 != 0 ] && grep -q "is not a PostgreSQL connection string" "$D/notpg.out" && [ ! -e "$D/other.db" ] &&
        [ "$tables" = 0 ]; then
        t_ok
else
        t_fail "no state: rc $rc1 $(cat "$D/nostate.out"); bad URL: rc $rc2 $(cat "$D/badurl.out");" \
                "not PostgreSQL: rc $rc3 $(cat "$D/notpg.out"); $tables tables in the empty database"
fi

t_case "a copy that fails half way keeps nothing; the sqlite state is untouched"
# The schema first (any command on the database makes it), then a
# constraint the hosts' rows break: the tables before hosts are copied by
# then.
"$SD" --state-dir "$D/nostate" --database "$EMPTY" --log-json no token list >/dev/null 2>&1
sql "$EMPTY" "ALTER TABLE hosts ADD CONSTRAINT no_spare CHECK (mac <> '52:54:00:0c:00:99')"
sum_before=$(sha "$D/srv/state.db")
"$SD" --state-dir "$D/srv" --log-json no migrate --to "$EMPTY" >"$D/half.out" 2>"$D/half.err"
rc=$?
counts=$(sql "$EMPTY" "SELECT (SELECT count(*) FROM audit) || ' ' || (SELECT count(*) FROM images) || ' ' ||
        (SELECT count(*) FROM tokens) || ' ' || (SELECT count(*) FROM hosts)")
if [ $rc != 0 ] && grep -q "cannot copy the state into PostgreSQL (nothing was kept): .*no_spare" "$D/half.err" &&
        grep -q "^migrate: images: 3 rows, done" "$D/half.err" && [ "$counts" = "0 0 0 0" ] &&
        [ "$(sha "$D/srv/state.db")" = "$sum_before" ] && [ ! -s "$D/half.out" ]; then
        t_ok
else
        t_fail "rc $rc, counts $counts: $(cat "$D/half.err")"
fi

echo "migrate: the stop $STOP ms (slipwayd stopped → migrated → serving on PostgreSQL), $rows rows"
t_end
