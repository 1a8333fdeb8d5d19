#!/bin/bash
# The tests' PostgreSQL servers (tests/pg.sh): a cluster of the suite's own
# answers psql on its socket and nowhere else, keeps what was committed
# across a stop, and leaves no process behind however the suite ends; a
# unit test binary that leaves its server running fails.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin pg
D=$T_DIR
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

# ms_since T0: milliseconds since T0 (an $EPOCHREALTIME).
ms_since() {
        local now=${EPOCHREALTIME/./} then=${1/./}
        echo $(((now - then) / 1000))
}
# sql SQL: the answer of psql on $PGURL, unaligned, without headers.
sql() {
        psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$PGURL" -c "$1"
}
# server_pids DIR: the pids of the server of the cluster in DIR, its
# postmaster first.
server_pids() {
        local pm
        read -r pm <"$1/data/postmaster.pid" || return 1
        # shellcheck disable=SC2046
        echo "$pm" $(ps -o pid= --ppid "$pm")
}
# all_gone PID...: none of the PIDs runs any more.
all_gone() {
        local p
        for p in "$@"; do t_alive "$p" && return 1; done
        return 0
}

t_case "pg_start makes a cluster of the suite's own and psql reaches it"
t0=$EPOCHREALTIME
if ! pg_start >"$D/start.log" 2>&1; then
        t_fail "pg_start failed: $(cat "$D/start.log")"
else
        start_ms=$(ms_since "$t0")
        port=${PGURL##*port=}
        port=${port%%&*}
        if [ "$(sql 'SELECT 1')" != 1 ]; then
                t_fail "SELECT 1 on $PGURL: $(sql 'SELECT 1' 2>&1)"
        elif [ "$(sql "SELECT current_setting('server_version_num')::int >= 150000")" != t ]; then
                t_fail "server version $(sql 'SHOW server_version')"
        elif [ "$(sql 'SELECT current_database()')" != slipway ]; then
                t_fail "database $(sql 'SELECT current_database()')"
        elif [ "$(sql 'SHOW data_directory')" != "$D/pg/data" ]; then
                t_fail "data directory $(sql 'SHOW data_directory'), not $D/pg/data"
        elif [[ $PGURL != "postgresql:///slipway?host=$D/pg/run&port=$port&user=postgres" ]] || [ "$port" = 5432 ]; then
                t_fail "URL $PGURL"
        elif [ "$(sql 'SELECT current_user')" != postgres ] || [ "$(stat -c %U "$D/pg/data")" != postgres ]; then
                t_fail "not the postgres user's: $(sql 'SELECT current_user'), $(stat -c %U "$D/pg/data")"
        else
                t_ok "started in $start_ms ms"
        fi
fi

t_case "it listens on its socket only: no TCP port"
pm=$(server_pids "$D/pg" | cut -d' ' -f1)
tcp=$(ss -Hltnp 2>/dev/null | grep "pid=$pm," || true)
if [ -z "$pm" ] || ! t_alive "$pm"; then
        t_fail "no server"
elif [ -n "$tcp" ] || [ -n "$(sql 'SHOW listen_addresses')" ]; then
        t_fail "listens on TCP: $tcp"
elif [ ! -S "$D/pg/run/.s.PGSQL.$port" ]; then
        t_fail "no socket $D/pg/run/.s.PGSQL.$port: $(ls -a "$D/pg/run")"
else
        t_ok
fi

t_case "pg_stop stops every process of the server; pg_start starts it again with its data"
sql "CREATE TABLE hosts (name text PRIMARY KEY); INSERT INTO hosts VALUES ('web-1')" >"$D/write.log" 2>&1
pids=$(server_pids "$D/pg")
t0=$EPOCHREALTIME
pg_stop
stop_ms=$(ms_since "$t0")
# shellcheck disable=SC2086
if ! all_gone $pids; then
        t_fail "still running after pg_stop: $(ps -o pid=,args= -p "$pids" | tr '\n' ';')"
elif [ -e "$D/pg/data/postmaster.pid" ] || [ -e "$D/pg/run/.s.PGSQL.$port" ]; then
        t_fail "postmaster.pid or the socket is left"
elif ! pg_start >>"$D/start.log" 2>&1; then
        t_fail "pg_start again failed: $(tail -n 3 "$D/start.log")"
elif [ "$(sql "SELECT string_agg(name, ',') FROM hosts")" != web-1 ]; then
        t_fail "the committed row is lost: $(cat "$D/write.log")"
else
        t_ok "stopped in $stop_ms ms"
fi

t_case "after pg_stop nothing runs from the suite's directory and the cluster can go"
pids=$(server_pids "$D/pg")
pg_stop
# shellcheck disable=SC2086
left=$(for p in $pids $(t_marked); do [ "$p" != $$ ] && t_alive "$p" && echo "$p"; done)
if [ -n "$left" ]; then
        t_fail "still running: $(ps -o pid=,args= -p "$(echo $left | tr ' ' ,)" | tr '\n' ';')"
elif ! rm -rf "$D/pg" || [ -e "$D/pg" ]; then
        t_fail "$D/pg cannot be removed"
else
        t_ok
fi

t_case "two clusters in one suite are two servers, each with its own socket and data"
pg_start one >>"$D/start.log" 2>&1 && url_one=$PGURL
pg_start two >>"$D/start.log" 2>&1 && url_two=$PGURL
PGURL=${url_one:-} sql "CREATE TABLE only_here (x int)" >>"$D/write.log" 2>&1
if [ -z "${url_one:-}" ] || [ -z "${url_two:-}" ]; then
        t_fail "pg_start failed: $(tail -n 3 "$D/start.log")"
elif [ "$url_one" = "$url_two" ] || [ ! -S "$(echo "$D"/one/run/.s.PGSQL.*[0-9])" ] ||
        [ ! -S "$(echo "$D"/two/run/.s.PGSQL.*[0-9])" ]; then
        t_fail "one: $url_one, two: $url_two"
elif [ "$(PGURL=$url_one sql "SELECT to_regclass('only_here') IS NOT NULL")" != t ] ||
        [ "$(PGURL=$url_two sql "SELECT to_regclass('only_here') IS NOT NULL")" != f ]; then
        t_fail "the table made in one is not in one alone: $(cat "$D/write.log")"
else
        t_ok
fi
pg_stop one
pg_stop two

# A suite that starts a server and never stops it: it ends normally, by
# `exit`, or by SIGTERM. Its directory is made in ours (TMPDIR).
cat >"$D/careless.sh" <<EOF
#!/bin/bash
. "$TOP/tests/lib.sh"
. "$TOP/tests/pg.sh"
t_begin careless
t_case start
pg_start && t_ok || t_fail "pg_start failed"
head -n 1 "\$T_DIR/pg/data/postmaster.pid" >"$D/careless.pid"
[ "\${HOW:-}" = exit ] && exit 3
[ "\${HOW:-}" = term ] && { touch "$D/careless.waiting"; sleep 300 & wait; }
t_end
EOF
chmod +x "$D/careless.sh"

for how in end exit term; do
        t_case "a suite that ends by $how without pg_stop leaves no server running"
        rm -f "$D/careless.pid" "$D/careless.waiting"
        if [ $how = term ]; then
                HOW=$how TMPDIR=$D "$D/careless.sh" >"$D/careless-$how.log" 2>&1 &
                suite=$!
                PIDS+=("$suite")
                for ((i = 0; i < 200; i++)); do [ -e "$D/careless.waiting" ] && break; sleep 0.1; done
                kill -TERM "$suite"
                wait "$suite"
        else
                HOW=$how TMPDIR=$D "$D/careless.sh" >"$D/careless-$how.log" 2>&1
        fi
        rc=$?
        pm=$(cat "$D/careless.pid" 2>/dev/null)
        if [ -z "$pm" ]; then
                t_fail "exit $rc; the server did not start: $(tail -n 3 "$D/careless-$how.log")"
        elif t_alive "$pm"; then
                t_fail "exit $rc; postmaster $pm still runs"
                PIDS+=("$pm")
        elif grep -q 'stopping what was left running:.*postgres' "$D/careless-$how.log"; then
                # The safety net of tests/lib.sh caught it: pg_start's own
                # clean-up did not.
                t_fail "exit $rc; pg_stop did not run at the end: $(grep stopping "$D/careless-$how.log")"
        else
                t_ok "exit $rc"
        fi
done

t_case "a unit test binary that leaves its server running fails, and the server is stopped"
cat >"$D/test-careless" <<EOF
#!/bin/bash
"$TOP/tests/pg.sh" start "\$PWD/pg" "\$SLIPWAY_TEST_DIR" >/dev/null
head -n 1 pg/data/postmaster.pid >"$D/unit.pid"
echo "[  PASSED  ] 1 test(s)."
EOF
chmod +x "$D/test-careless"
rm -f "$D/unit.pid"
TMPDIR=$D "$TOP/tests/run-unit.sh" "$D/test-careless" >"$D/unit.log" 2>&1
rc=$?
pm=$(cat "$D/unit.pid" 2>/dev/null)
if [ -z "$pm" ]; then
        t_fail "the server did not start: $(tail -n 5 "$D/unit.log")"
elif t_alive "$pm"; then
        t_fail "postmaster $pm still runs"
        PIDS+=("$pm")
elif [ $rc = 0 ] || ! grep -q 'test-careless: left running, now stopped: .*postgres' "$D/unit.log"; then
        t_fail "exit $rc: $(tail -n 5 "$D/unit.log")"
else
        t_ok
fi

t_end
