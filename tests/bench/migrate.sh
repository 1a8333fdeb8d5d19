#!/bin/bash
# The stop a move to PostgreSQL takes at fleet scale (docs/operations.md,
# "Moving to PostgreSQL"): a slipwayd on sqlite with HOSTS registered and
# labelled hosts (tests/bench/checkins.c registers them and runs
# check-ins and lease requests for MIGRATE_BENCH_SECONDS, which fill the
# audit log), then the documented stop: slipwayd stopped, `slipwayd
# migrate`, slipwayd started on PostgreSQL until it answers. Prints each
# part and the migration's own figures. Then a backup of that database
# with pg_dump and its restore into a new one (the RTO of the PostgreSQL
# path). Figures, not a test.
#
#     tests/bench/migrate.sh [HOSTS]
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SD=$TOP/build/bin/slipwayd
CK=$TOP/build/bench/checkins
HOSTS=${1:-10000}
SECS=${MIGRATE_BENCH_SECONDS:-10}
D=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench-migrate.XXXXXX")
SRV=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
        [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
        "$TOP/tests/pg.sh" stop "$D/pg" >/dev/null 2>&1
        rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ms() { echo $((($2 - $1) / 1000000)); }
answers() { # URL
        local i
        for ((i = 0; i < 1000; i++)); do
                [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$1/v1/status")" = 200 ] &&
                        return 0
                sleep 0.01
        done
        return 1
}
start() { # STATE-DIR [FLAGS...]
        rm -f "$1/slipwayd.url"
        "$SD" --state-dir "$1" --listen 127.0.0.1:0 --log-json no --enroll-token sekrit --trusted-keys "$D/keys" \
                "${@:2}" >>"$D/srv.log" 2>&1 &
        SRV=$!
        for ((i = 0; i < 1000; i++)); do [ -s "$1/slipwayd.url" ] && break; sleep 0.01; done
        URL=$(cat "$1/slipwayd.url" 2>/dev/null)
}

echo "== moving to PostgreSQL: $HOSTS hosts, check-ins and leases from 8 threads for $SECS s first"
if ! PGURL=$("$TOP/tests/pg.sh" start "$D/pg" "$D" 2>"$D/pg.err"); then
        echo "  no PostgreSQL server: $(tail -n 2 "$D/pg.err")"
        exit 0
fi
TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create bench)
mkdir -p "$D/keys"
start "$D/srv"
if ! "$CK" --url "$URL" --admin-token "$TOKEN" --enroll sekrit --hosts "$HOSTS" --threads 8 --seconds "$SECS" \
        --lease-every 10 >"$D/load" 2>"$D/load.err"; then
        echo "  the load failed: $(head -3 "$D/load.err")"
        exit 0
fi
t0=$(date +%s%N)
kill "$SRV" && wait "$SRV" 2>/dev/null
SRV=""
t1=$(date +%s%N)
if ! "$SD" --state-dir "$D/srv" --log-json no migrate --to "$PGURL" >"$D/migrate.out" 2>"$D/migrate.err"; then
        echo "  the migration failed: $(tail -n 3 "$D/migrate.err")"
        exit 0
fi
t2=$(date +%s%N)
start "$D/srv" --database "$PGURL"
answers "$URL"
t3=$(date +%s%N)
size=$(du -k "$D/srv/state.db" | cut -f1)
printf '  state.db %s MiB; %s\n' "$((size / 1024))" "$(sed -n 's/^  \([0-9]* hosts.*\)/\1/p' "$D/migrate.out")"
printf '  %-40s %s ms\n' "the stop: stopped → serving on PostgreSQL" "$(ms "$t0" "$t3")"
printf '  %-40s %s ms\n' "  slipwayd stops" "$(ms "$t0" "$t1")"
printf '  %-40s %s ms (%s)\n' "  slipwayd migrate" "$(ms "$t1" "$t2")" \
        "$(sed -n 's/^  \([0-9]* rows copied.*\); done.*/\1/p' "$D/migrate.out")"
printf '  %-40s %s ms\n' "  slipwayd starts on PostgreSQL" "$(ms "$t2" "$t3")"
grep -E '^  (hosts|audit|host_labels) ' "$D/migrate.out" | sed 's/^/    /'

# The PostgreSQL backup of that state, and its restore into a new database.
"$SD" --state-dir "$D/srv" --database "$PGURL" --log-json no backup --no-blobs "$D/bk" >"$D/backup.out" 2>&1
kill "$SRV" && wait "$SRV" 2>/dev/null
SRV=""
psql -X -q -d "$PGURL" -c 'CREATE DATABASE dr' >/dev/null 2>&1
DRURL=${PGURL/\/slipway\?//dr?}
t0=$(date +%s%N)
"$SD" --state-dir "$D/srv" --database "$DRURL" --log-json no restore "$D/bk" >"$D/restore.out" 2>&1
t1=$(date +%s%N)
start "$D/srv" --database "$DRURL"
answers "$URL"
t2=$(date +%s%N)
printf '  %-40s %s\n' "backup (pg_dump, custom format)" "$(sed -n 's/^  \(snapshot in [0-9.]* s\).*/\1/p' "$D/backup.out"), \
$(du -k "$D/bk/state.pgdump" | cut -f1) KiB"
printf '  %-40s %s ms (pg_restore and epochs %s ms, start until it answers %s ms)\n' \
        "RTO: restore into a new database, serve" "$(ms "$t0" "$t2")" "$(ms "$t0" "$t1")" "$(ms "$t1" "$t2")"
grep -q '^restored' "$D/restore.out" || echo "  the restore failed: $(tail -n 3 "$D/restore.out")"
