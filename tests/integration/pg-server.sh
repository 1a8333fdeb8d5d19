#!/bin/bash
# slipwayd's [state] database: a connection string checked by libpq's own
# parser at --check-config, at the start and on SIGHUP, one error naming
# file:line and never the password; a database that cannot be reached
# stops the start with one error; libpq's multi-host form passes through
# (the first host down, the second serves); the start-up line says where
# the state is; a reload keeps the database it started with.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin pg-server

SD=$TOP/build/bin/slipwayd
D=$T_DIR
SECRET=s3cr3t-pw
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'
mkdir -p "$D/keys" "$D/nosrv"

# no_secret FILE...: none of the files holds the password.
no_secret() { ! grep -q -- "$SECRET" "$@"; }

# start_server CONF [FLAGS...]: slipwayd with config file CONF on a free
# loopback port; sets PID and URL (empty when it did not start).
start_server() {
        local conf=$1 i
        shift
        rm -f "$D/state/slipwayd.url"
        "$SD" --config "$conf" --state-dir "$D/state" --listen 127.0.0.1:0 --trusted-keys "$D/keys" \
                --log-json no "$@" >>"$D/srv.log" 2>&1 &
        PID=$!
        PIDS+=("$PID")
        for ((i = 0; i < 1200; i++)); do
                [ -s "$D/state/slipwayd.url" ] && break
                t_alive "$PID" || break
                sleep 0.05
        done
        URL=$(cat "$D/state/slipwayd.url" 2>/dev/null)
}

t_case "a connection string libpq cannot parse: one error with file:line and libpq's reason, no password"
printf '[state]\ndatabase = host=/nowhere password=%s dbname=x bogus=1\n' "$SECRET" >"$D/bad1.conf"
printf '# a URI whose password is not well encoded\n[state]\ndatabase = postgresql://u:%%zz%s@h/db\n' "$SECRET" \
        >"$D/bad2.conf"
if expect_fail "bad1.conf:2: database: not a PostgreSQL connection string: invalid connection option \"bogus\"" \
        "$SD" --config "$D/bad1.conf" --state-dir "$D/state" --check-config && e1=$T_LAST_ERROR &&
        expect_fail "bad2.conf:3: database: not a PostgreSQL connection string: invalid percent-encoded token" \
                "$SD" --config "$D/bad2.conf" --state-dir "$D/state" --check-config && e2=$T_LAST_ERROR &&
        expect_fail "^slipwayd: --database: database: not a PostgreSQL connection string: missing \"=\"" \
                "$SD" --database "dbname=x $SECRET" --state-dir "$D/state" --check-config && e3=$T_LAST_ERROR; then
        if [[ "$e1$e2$e3" == *"$SECRET"* ]]; then t_fail "the password is in an error: $e1 / $e2 / $e3"; else t_ok; fi
fi

t_case "a database that cannot be reached: one error and a non-zero exit"
t0=$SECONDS
if expect_fail "^slipwayd: cannot connect to the PostgreSQL state database: .*$D/nosrv" \
        "$SD" --state-dir "$D/state" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no \
        --database "host=$D/nosrv dbname=slipway user=postgres password=$SECRET connect_timeout=5"; then
        if [[ $T_LAST_ERROR == *"$SECRET"* ]]; then t_fail "the password is in the error: $T_LAST_ERROR"; else
                t_ok "$((SECONDS - t0)) s"; fi
fi

pg_start >"$D/pg.log" 2>&1 || { echo "pg_start failed: $(cat "$D/pg.log")"; exit 1; }
port=${PGURL##*port=}
port=${port%%&*}
MULTI="host=$D/nosrv,$D/pg/run port=$port,$port dbname=slipway user=postgres password=$SECRET"
MULTI+=" target_session_attrs=read-write connect_timeout=5"

t_case "multi-host: the first host down, slipwayd starts on the second; the start-up line says where"
printf '[state]\ndatabase = %s\n' "$MULTI" >"$D/multi.conf"
start_server "$D/multi.conf"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/status")
line=$(grep 'serving on' "$D/srv.log")
if [ "$code" != 200 ]; then
        t_fail "status $code: $(tail -n 3 "$D/srv.log")"
elif [[ $line != *"state in PostgreSQL host=$D/nosrv,$D/pg/run port=$port,$port dbname=slipway user=postgres, blobs in '$D/state'"* ]]; then
        t_fail "start-up line: $line"
elif ! no_secret "$D/srv.log"; then
        t_fail "the password is in the log: $(grep -- "$SECRET" "$D/srv.log")"
elif [ "$(psql -X -A -t -d "$PGURL" -c 'SELECT max(version) FROM schema_version')" -lt 13 ]; then
        t_fail "no schema in the database"
else
        t_ok
fi

t_case "SIGHUP with another database: logged as needing a restart, the old one kept"
TOKEN=$("$SD" --config "$D/multi.conf" --state-dir "$D/state" --log-json no token create ci 2>"$D/token.err")
printf '[state]\ndatabase = host=%s dbname=elsewhere password=%s\n' "$D/nosrv" "$SECRET" >"$D/multi.conf"
kill -HUP "$PID"
for ((i = 0; i < 1200; i++)); do grep -q 'configuration reloaded' "$D/srv.log" && break; sleep 0.05; done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL/v1/hosts")
if [ "$code" != 200 ] || ! t_alive "$PID"; then
        t_fail "after the reload: $code $(cat "$D/token.err") $(tail -n 3 "$D/srv.log")"
elif ! grep -q 'reload: database changed; restart slipwayd to move to it' "$D/srv.log"; then
        t_fail "no word of the restart: $(tail -n 3 "$D/srv.log")"
elif ! no_secret "$D/srv.log"; then
        t_fail "the password is in the log"
else
        t_ok
fi

t_case "SIGHUP with a database libpq cannot parse: refused with file:line, the old configuration kept"
printf '[server]\nlog-level = info\n[state]\ndatabase = host=x bogus=%s\n' "$SECRET" >"$D/multi.conf"
kill -HUP "$PID"
for ((i = 0; i < 1200; i++)); do grep -q 'keeping the old one' "$D/srv.log" && break; sleep 0.05; done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL/v1/hosts")
if [ "$code" = 200 ] && grep -q "multi.conf:4: database: not a PostgreSQL connection string: invalid connection option \"bogus\"" "$D/srv.log" &&
        grep -q 'keeping the old one' "$D/srv.log" && no_secret "$D/srv.log"; then
        t_ok
else
        t_fail "$code $(tail -n 3 "$D/srv.log")"
fi
t_stop "$PID"

t_case "the role and database docs/operations.md makes: slipwayd starts on them and owns its tables"
# The psql lines of "Running on PostgreSQL", as printed (run as the
# postgres user of the suite's cluster, in place of its database slipway).
sql=$(sed -n '/^## Running on PostgreSQL/,/^## /p' "$TOP/docs/operations.md" |
        sed -n "/psql -v ON_ERROR_STOP=1 <<'EOF'/,/^    EOF/p" | sed -e '1d' -e '$d' -e 's/^    //')
admin=${PGURL/\/slipway?/\/postgres?}
rm -rf "$D/state"
if [ -z "$sql" ]; then
        t_fail "no psql lines in docs/operations.md"
elif ! psql -X -q -d "$admin" -c 'DROP DATABASE slipway' >"$D/ops.log" 2>&1 ||
        ! psql -X -q -v ON_ERROR_STOP=1 -d "$admin" <<<"$sql" >>"$D/ops.log" 2>&1; then
        t_fail "$(cat "$D/ops.log")"
else
        printf '[state]\ndatabase = host=%s port=%s dbname=slipway user=slipway password=change-me\n' \
                "$D/pg/run" "$port" >"$D/ops.conf"
        start_server "$D/ops.conf"
        code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/status")
        owners=$(psql -X -A -t -d "$PGURL" -c "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE
                schemaname = 'public'")
        if [ "$code" = 200 ] && [ "$owners" = slipway ]; then t_ok; else
                t_fail "status $code, tables owned by '$owners': $(tail -n 3 "$D/srv.log")"; fi
        t_stop "$PID"
fi

t_end
