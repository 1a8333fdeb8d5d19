#!/bin/bash
# Backup and restore of a serving slipwayd (docs/operations.md, "Backup and
# restore"): real agents (sim backend) check in while a rollout runs; a
# backup is taken meanwhile; the fleet moves on (more of the rollout, an
# image pushed and installed on one host, a token made); then the server
# is killed as if its disk were lost, the backup restored into a fresh
# state directory and a server started on it at the same address. What
# came back is checked (hosts, images, rollouts, the audit log, tokens,
# blobs), and the agents carry on: the rollout ends, no epoch is handed out
# twice, the host on the image the restored catalog lacks is accepted and
# shown. A restore killed at each of its steps leaves the state as it
# was. Prints the RTO (kill → restored and serving) and the RPO (what was
# lost: everything after the backup).
#
# Then the same fleet on PostgreSQL (moved there with slipwayd migrate):
# a backup (pg_dump) while a rollout runs, the database and the state
# directory lost, the backup restored into a new database, the fleet
# carrying on; a restore refused while a slipwayd is connected; a pg_dump
# older than the server refused. Last, PostgreSQL's own point-in-time
# recovery (pg_basebackup and archived WAL), the way docs/operations.md
# gives for an RPO of seconds. Prints the RTO and RPO of each.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin backup

B=$BIN/slipway-build
SD=$BIN/slipwayd
AG=$BIN/slipway-agent
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

mkdir -p "$D/keys"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
for v in 1.0 2.0 3.0; do
        tiny_def "$D/tiny-$v.conf" $v
        $B -q --store "$D/store" build --key "$D/k.key" --no-disk "$D/tiny-$v.conf" >/dev/null
        $B -q --store "$D/store" export tiny:$v "$D/img-$v" >/dev/null
done

TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create ci)
: >"$D/srv.conf"
start_server() { # STATE-DIR LISTEN [FLAGS...]
        rm -f "$1/slipwayd.url"
        "$SD" --config "$D/srv.conf" --state-dir "$1" --listen "$2" --trusted-keys "$D/keys" --log-json no \
                --enroll-token sekrit --checkin-interval 1 --heartbeat-timeout 4 --lease-ttl 15 "${@:3}" \
                >>"$D/srv.log" 2>&1 &
        SRV=$!
        PIDS+=($SRV)
        for ((i = 0; i < 1200; i++)); do [ -s "$1/slipwayd.url" ] && break; sleep 0.05; done
        URL=$(cat "$1/slipwayd.url")
}
# The restored servers take the port over (t_port: no other program
# takes it meanwhile).
LISTEN=127.0.0.1:$(t_port)
start_server "$D/srv" "$LISTEN"
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
post() { api -H 'Content-Type: application/json' -d "$2" "$URL$1"; }
push() { # VERSION
        local f
        for f in "$D/img-$1"/*; do api -o /dev/null -T "$f" "$URL/v1/blobs/sha256/$(sha "$f")"; done
        post /v1/images "{\"manifest\":\"$(sha "$D/img-$1/manifest.json")\",\"signature\":\"$(sha "$D/img-$1/manifest.sig")\"}" |
                jq -r .id
}
ID1=$(push 1.0)
ID2=$(push 2.0)

# Six hosts of service web in racks r1 and r2 (one down per rack at a
# time) and one of service tools.
HOSTS="h1 h2 h3 h4 h5 h6 h7"
start_agent() {
        (exec "$AG" --backend sim --sim-dir "$D/$1" --state-dir "$D/$1/state" --server "$URL" --keys-dir "$D/keys" \
                --checkin-interval 1 --sim-slot-size 32M --enroll-token sekrit run >>"$D/$1.log" 2>&1) &
        PIDS+=($!)
}
n=0
for h in $HOSTS; do
        n=$((n + 1))
        "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" --enroll-token sekrit \
                register "52:54:00:0b:00:0$n" >>"$D/$h.log" 2>&1
        id=$(jq -r .host_id "$D/$h/state/agent.json")
        echo "$id" >"$D/$h.id"
        svc=web
        [ $n = 7 ] && svc=tools
        post "/v1/hosts/$id/labels" "{\"set\": {\"service\": \"$svc\", \"rack\": \"r$(((n - 1) % 2 + 1))\"}}" >/dev/null
        api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:1.0"}' "$URL/v1/hosts/$id/image"
done
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack"
H7=$(cat "$D/h7.id")

hosts() { api "$URL/v1/hosts"; }
on() { # VERSION COUNT [SERVICE]: COUNT hosts (of SERVICE) healthy on VERSION
        [ "$(hosts | jq "[.hosts[] | select(.version == \"$1\" and .state == \"healthy\" and
                (\"${3:-}\" == \"\" or .labels.service == \"${3:-}\"))] | length")" = "$2" ]
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
last_audit() { api "$URL/v1/audit?last=1" | jq '.entries[-1].id // 0'; }
max_epoch() { # the highest epoch granted in the audit log
        api "$URL/v1/audit?action=lease.grant&last=1" | jq '[.entries[].detail.epoch] | max // 0'
}

t_case "seven hosts come up on 1.0"
for h in $HOSTS; do start_agent $h; done
if wait_for 60 on 1.0 7; then t_ok; else t_fail "$(hosts | jq -c '[.hosts[] | {version, state}]')"; fi

t_case "a backup while hosts check in and a rollout runs"
R=$(post /v1/rollouts '{"image": "tiny:2.0", "selector": {"service": "web"}, "waves": [1, 2, 3, 4, 5, "100%"], "bake": 4}' |
        jq -r .id)
wait_for 60 on 2.0 1 web
A0=$(last_audit)
"$SD" --config "$D/srv.conf" --state-dir "$D/srv" --log-json no backup "$D/bk" >"$D/backup.out" 2>&1
rc=$?
A1=$(last_audit)
T_BACKUP=$(now_ms)
blobs=$(find "$D/bk/blobs" -type f 2>/dev/null | wc -l)
listed=$(jq '.blobs | length' "$D/bk/manifest.json" 2>/dev/null)
if [ $rc = 0 ] && [ "$blobs" -gt 0 ] && [ "$blobs" = "$listed" ] &&
        [ "$(jq -r .database.sha256 "$D/bk/manifest.json")" = "$(sha "$D/bk/state.db")" ] &&
        [ "$(rollout_state "$R")" != done ]; then
        t_ok "$(grep -o 'snapshot in [0-9.]* s' "$D/backup.out"), $blobs blobs"
else
        t_fail "rc $rc, $blobs blobs for ${listed:-?} listed, rollout $(rollout_state "$R"): $(cat "$D/backup.out")"
fi

t_case "a restore refuses while slipwayd serves the state directory; so does a second slipwayd"
"$SD" --config "$D/srv.conf" --state-dir "$D/srv" --log-json no restore "$D/bk" >"$D/refused.out" 2>&1
rc=$?
"$SD" --config "$D/srv.conf" --state-dir "$D/srv" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no \
        >"$D/second.out" 2>&1 &
SECOND=$!
PIDS+=($SECOND)
for ((i = 0; i < 600; i++)); do t_alive $SECOND || break; sleep 0.1; done
wait $SECOND 2>/dev/null
rc2=$?
if [ $rc != 0 ] && grep -q "slipwayd is running on .* (pid $SRV): stop it" "$D/refused.out" && [ $rc2 != 0 ] &&
        grep -q "another slipwayd (pid $SRV)" "$D/second.out" && [ ! -e "$D/srv/state.db.restore" ]; then
        t_ok
else
        t_fail "restore rc $rc: $(cat "$D/refused.out"); second server rc $rc2: $(cat "$D/second.out")"
fi

# The fleet moves on after the backup: a new image installed on h7, a
# token, more of the rollout.
ID3=$(push 3.0)
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:3.0"}' "$URL/v1/hosts/$H7/image"
"$SD" --state-dir "$D/srv" --log-json no token create after >/dev/null
wait_for 60 on 3.0 1 tools
wait_for 60 on 2.0 2 web

t_case "the disk is lost: restored into a fresh state directory, serving again at the same address"
A2=$(last_audit)
E2=$(max_epoch)
T_KILL=$(now_ms)
disown $SRV
kill -KILL $SRV
while t_alive $SRV; do sleep 0.01; done
"$SD" --config "$D/srv.conf" --state-dir "$D/dr" --log-json no restore "$D/bk" >"$D/restore.out" 2>&1
rc=$?
T_RESTORED=$(now_ms)
start_server "$D/dr" "$LISTEN"
for ((i = 0; i < 1200; i++)); do [ "$(api -o /dev/null -w '%{http_code}' "$URL/v1/hosts")" = 200 ] && break; sleep 0.05; done
T_SERVING=$(now_ms)
RTO=$((T_SERVING - T_KILL))
A3=$(api "$URL/v1/audit?action=state.restore" | jq '.entries[0].id // 0')
# What the restored log holds from before the kill: up to the backup's
# snapshot, right before the restore's own entry.
KEPT=$((A3 - 1))
if [ $rc = 0 ] && [ "$(api -o /dev/null -w '%{http_code}' "$URL/v1/hosts")" = 200 ] && [ "$A3" -gt 0 ]; then
        t_ok "RTO $RTO ms: restore $((T_RESTORED - T_KILL)) ms, start $((T_SERVING - T_RESTORED)) ms"
else
        t_fail "restore rc $rc: $(cat "$D/restore.out"); $(tail -n 3 "$D/srv.log")"
fi

t_case "what came back: hosts, images and their blobs, the rollout, the audit log, tokens; nothing after the backup"
ok=1
why=""
[ "$(hosts | jq '.hosts | length')" = 7 ] || { ok=0; why+=" hosts"; }
[ "$(api "$URL/v1/images" | jq -r '[.images[].version] | sort | join(",")')" = "1.0,2.0" ] || { ok=0; why+=" images"; }
for f in "$D/img-2.0"/*; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/blobs/sha256/$(sha "$f")")" = 200 ] || { ok=0; why+=" blob"; }
done
[ "$(api "$URL/v1/rollouts/$R" | jq -r .id)" = "$R" ] || { ok=0; why+=" rollout"; }
[ "$KEPT" -ge "$A0" ] && [ "$KEPT" -le "$A1" ] || { ok=0; why+=" audit($A0 <= $KEPT <= $A1)"; }
"$SD" --state-dir "$D/dr" --log-json no token list >"$D/tokens"
grep -q '^ci ' "$D/tokens" && ! grep -q '^after ' "$D/tokens" || { ok=0; why+=" tokens"; }
LOST=$((A2 - KEPT))
RPO=$((T_KILL - T_BACKUP))
if [ $ok = 1 ]; then
        t_ok "RPO: the $RPO ms after the backup, $LOST audit entries, the image 3.0, the token 'after'"
else
        t_fail "wrong:$why"
fi

t_case "the host running an image the restored catalog lacks is accepted and shown; pushed and assigned again, it is healthy"
seen=0
for ((i = 0; i < 300; i++)); do
        h7=$(api "$URL/v1/hosts/$H7")
        [ "$(jq -r .current_image <<<"$h7")" = "$ID3" ] && [ "$(jq -r .version <<<"$h7")" = 3.0 ] && { seen=1; break; }
        sleep 0.2
done
known=$(api -o /dev/null -w '%{http_code}' "$URL/v1/images/$ID3")
again=$(push 3.0)
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:3.0"}' "$URL/v1/hosts/$H7/image"
if [ $seen = 1 ] && [ "$known" = 404 ] && [ "$again" = "$ID3" ] && wait_for 30 on 3.0 1 tools; then
        t_ok "it reports $ID3 (unknown: $known) until the image is pushed again"
else
        t_fail "h7: $(jq -c '{version, current_image, state}' <<<"$h7"); image $known; pushed again: $again"
fi

t_case "the agents carry on: the rollout ends, every new epoch above any handed out before the loss"
if wait_for 180 on 2.0 6 web && wait_for 30 rollout_done "$R"; then
        # Every grant since the restore, against the highest before the kill.
        low=$(api "$URL/v1/audit?action=lease.grant&since=$A3&limit=1000" | jq '[.entries[].detail.epoch] | min // 0')
        grants=$(api "$URL/v1/audit?action=lease.grant&since=$A3&limit=1000" | jq '.entries | length')
        if [ "$grants" -gt 0 ] && [ "$low" -gt "$E2" ]; then
                t_ok "$grants grants after the restore, the lowest epoch $low > $E2"
        else
                t_fail "a grant after the restore has epoch $low, not above $E2"
        fi
else
        t_fail "rollout $(rollout_state "$R"); $(hosts | jq -c '[.hosts[] | {version, state, lease, quarantined}]')"
fi

t_case "killed at any step, a restore leaves the state as it was, a backup leaves no backup"
t_stop $SRV
state_of() { sqlite3 "$D/dr/state.db" "SELECT (SELECT max(id) FROM audit) || ' ' || value FROM meta WHERE key = 'lease_epoch'"; }
before=$(state_of)
bad=""
for point in restore-checked restore-copy restore-settle restore-keep restore-prepared; do
        # A subshell, so that its shell, not this one, tells of the kill.
        (SLIPWAY_CRASH_AT=$point "$SD" --config "$D/srv.conf" --state-dir "$D/dr" --log-json no restore "$D/bk"
                exit $?) >"$D/crash-$point.out" 2>&1
        rc=$?
        [ $rc = 137 ] && [ "$(state_of)" = "$before" ] || bad+=" $point(exit $rc, $(state_of))"
done
(SLIPWAY_CRASH_AT=backup-manifest "$SD" --config "$D/srv.conf" --state-dir "$D/dr" --log-json no backup "$D/bk-crash"
        exit $?) >"$D/crash-backup.out" 2>&1
rc=$?
[ $rc = 137 ] && [ ! -e "$D/bk-crash" ] || bad+=" backup-manifest(exit $rc)"
"$SD" --config "$D/srv.conf" --state-dir "$D/dr" --log-json no restore "$D/bk" >"$D/restore2.out" 2>&1
rc=$?
after=$(state_of)
if [ -z "$bad" ] && [ $rc = 0 ] && [ "$after" != "$before" ] &&
        [ "$(sqlite3 "$D/dr/state.db" 'PRAGMA integrity_check')" = ok ]; then
        t_ok "state '$before' after each, '$after' after a whole restore"
else
        t_fail "at:$bad; then restore rc $rc, state '$after' (was '$before')"
fi

# ---- PostgreSQL -------------------------------------------------------------
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
t_case "on PostgreSQL: the restored fleet moved with slipwayd migrate, served at the same address"
if pg_start >"$D/pg-start.log" 2>&1 &&
        "$SD" --state-dir "$D/dr" --log-json no migrate --to "$PGURL" >"$D/pg-migrate.out" 2>&1; then
        start_server "$D/dr" "$LISTEN" --database "$PGURL"
        # The last restore's catalog lacks 3.0.
        push 3.0 >/dev/null
        # The restored rollout goes on there: its hosts are on 2.0 already.
        if wait_for 30 on 2.0 6 web && wait_for 60 rollout_done "$R" &&
                [ "$(api -o /dev/null -w '%{http_code}' "$URL/v1/images/tiny:3.0")" = 200 ]; then
                t_ok
        else
                t_fail "rollout $R $(rollout_state "$R"); $(hosts | jq -c '[.hosts[] | {version, state}]');" \
                        "$(tail -n 3 "$D/srv.log")"
        fi
else
        t_fail "$(cat "$D/pg-start.log" "$D/pg-migrate.out" 2>/dev/null)"
fi

t_case "on PostgreSQL: a backup (pg_dump of one snapshot) while hosts check in and a rollout runs"
R3OUT=$(post /v1/rollouts '{"image": "tiny:3.0", "selector": {"service": "web"}, "waves": [1, 2, 3, 4, 5, "100%"], "bake": 4}')
R3=$(jq -r .id <<<"$R3OUT")
wait_for 60 on 3.0 1 web
P0=$(last_audit)
"$SD" --state-dir "$D/dr" --database "$PGURL" --log-json no backup "$D/pgbk" >"$D/pg-backup.out" 2>&1
rc=$?
P1=$(last_audit)
T_PGBACKUP=$(now_ms)
blobs=$(find "$D/pgbk/blobs" -type f 2>/dev/null | wc -l)
listed=$(jq '.blobs | length' "$D/pgbk/manifest.json" 2>/dev/null)
if [ $rc = 0 ] && [ "$(jq -r .store "$D/pgbk/manifest.json")" = postgresql ] && [ "$blobs" -gt 0 ] &&
        [ "$blobs" = "$listed" ] && [ "$(jq -r .database.file "$D/pgbk/manifest.json")" = state.pgdump ] &&
        [ "$(jq -r .database.sha256 "$D/pgbk/manifest.json")" = "$(sha "$D/pgbk/state.pgdump")" ] &&
        [[ $R3 =~ ^[0-9]+$ ]] && [ "$(rollout_state "$R3")" != done ]; then
        t_ok "$(grep -o 'snapshot in [0-9.]* s' "$D/pg-backup.out"), $blobs blobs"
else
        t_fail "rc $rc, $blobs blobs for ${listed:-?} listed, rollout $R3OUT $(rollout_state "$R3"): $(cat "$D/pg-backup.out")"
fi

t_case "on PostgreSQL: a restore refuses while a slipwayd is connected to the database, and changes nothing"
mkdir -p "$D/other"
restores() { sql "$PGURL" "SELECT count(*) || ' ' || (SELECT value FROM meta WHERE key = 'lease_epoch') FROM audit
        WHERE action = 'state.restore'"; }
before=$(restores)
"$SD" --state-dir "$D/other" --database "$PGURL" --log-json no restore "$D/pgbk" >"$D/pg-refused.out" 2>&1
rc=$?
if [ $rc != 0 ] && grep -q "other clients are connected to the state database: stop every slipwayd" \
        "$D/pg-refused.out" && [ "$(restores)" = "$before" ] && [ ! -e "$D/other/restore-epoch.pending" ]; then
        t_ok
else
        t_fail "rc $rc: $(cat "$D/pg-refused.out")"
fi

t_case "a pg_dump older than the server is refused, naming both; no backup is left"
mkdir -p "$D/oldbin"
printf '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n' >"$D/oldbin/pg_dump"
chmod +x "$D/oldbin/pg_dump"
PATH="$D/oldbin:$PATH" "$SD" --state-dir "$D/dr" --database "$PGURL" --log-json no backup "$D/pgbk-old" \
        >"$D/pg-old.out" 2>&1
rc=$?
if [ $rc != 0 ] && grep -q "'$D/oldbin/pg_dump' is pg_dump (PostgreSQL) 9.6.24, older than the server (PostgreSQL 1[0-9]" \
        "$D/pg-old.out" && [ ! -e "$D/pgbk-old" ] && [ -z "$(find "$D" -maxdepth 1 -name 'pgbk-old.partial-*')" ]; then
        t_ok "$(cat "$D/pg-old.out")"
else
        t_fail "rc $rc: $(cat "$D/pg-old.out")"
fi

# The fleet moves on after the backup: a token, more of the rollout.
"$SD" --state-dir "$D/dr" --database "$PGURL" --log-json no token create pgafter >/dev/null
wait_for 60 on 3.0 2 web

t_case "on PostgreSQL: database and state directory lost; restored into a new database, serving again"
P2=$(last_audit)
PE2=$(max_epoch)
# Leases granted after the backup: the restored state will not know them.
PUNKNOWN=$(api "$URL/v1/audit?action=lease.grant&since=$P1" | jq '.entries | length')
T_PGKILL=$(now_ms)
disown $SRV
kill -KILL $SRV
while t_alive $SRV; do sleep 0.01; done
sql "$PGURL" "CREATE DATABASE dr"
DRURL=${PGURL/\/slipway\?//dr?}
"$SD" --state-dir "$D/pgdr" --database "$DRURL" --log-json no restore "$D/pgbk" >"$D/pg-restore.out" 2>&1
rc=$?
T_PGRESTORED=$(now_ms)
start_server "$D/pgdr" "$LISTEN" --database "$DRURL"
for ((i = 0; i < 1200; i++)); do [ "$(api -o /dev/null -w '%{http_code}' "$URL/v1/hosts")" = 200 ] && break; sleep 0.05; done
T_PGSERVING=$(now_ms)
PGRTO=$((T_PGSERVING - T_PGKILL))
PA3=$(api "$URL/v1/audit?action=state.restore" | jq '.entries[-1].id // 0')
if [ $rc = 0 ] && [ "$(api -o /dev/null -w '%{http_code}' "$URL/v1/hosts")" = 200 ] && [ "$PA3" -gt 0 ] &&
        [ ! -e "$D/pgdr/restore-epoch.pending" ]; then
        t_ok "RTO $PGRTO ms: restore $((T_PGRESTORED - T_PGKILL)) ms, start $((T_PGSERVING - T_PGRESTORED)) ms"
else
        t_fail "restore rc $rc: $(cat "$D/pg-restore.out"); $(tail -n 3 "$D/srv.log")"
fi

t_case "on PostgreSQL: what came back: hosts, images and their blobs, the rollouts, the audit log, tokens"
ok=1
why=""
[ "$(hosts | jq '.hosts | length')" = 7 ] || { ok=0; why+=" hosts"; }
[ "$(api "$URL/v1/images" | jq -r '[.images[].version] | sort | join(",")')" = "1.0,2.0,3.0" ] || { ok=0; why+=" images"; }
for f in "$D/img-3.0"/*; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/blobs/sha256/$(sha "$f")")" = 200 ] || { ok=0; why+=" blob"; }
done
[ "$(api "$URL/v1/rollouts/$R3" | jq -r .id)" = "$R3" ] || { ok=0; why+=" rollout"; }
PKEPT=$(api "$URL/v1/audit?since=$P0&limit=1000" | jq "[.entries[].id | select(. < $PA3)] | max // $P0")
[ "$PKEPT" -ge "$P0" ] && [ "$PKEPT" -le "$P1" ] || { ok=0; why+=" audit($P0 <= $PKEPT <= $P1)"; }
"$SD" --state-dir "$D/pgdr" --database "$DRURL" --log-json no token list >"$D/pg-tokens"
grep -q '^ci ' "$D/pg-tokens" && ! grep -q '^pgafter ' "$D/pg-tokens" || { ok=0; why+=" tokens"; }
PLOST=$((P2 - PKEPT))
PGRPO=$((T_PGKILL - T_PGBACKUP))
if [ $ok = 1 ]; then
        t_ok "RPO: the $PGRPO ms after the backup, $PLOST audit entries, the token 'pgafter'"
else
        t_fail "wrong:$why"
fi

t_case "on PostgreSQL: the agents carry on (leases the restored state does not know included): the rollout ends, every new epoch above any before the loss"
if wait_for 180 on 3.0 6 web && wait_for 30 rollout_done "$R3"; then
        low=$(api "$URL/v1/audit?action=lease.grant&since=$PA3&limit=1000" | jq '[.entries[].detail.epoch] | min // 0')
        grants=$(api "$URL/v1/audit?action=lease.grant&since=$PA3&limit=1000" | jq '.entries | length')
        if [ "$grants" -gt 0 ] && [ "$low" -gt "$PE2" ]; then
                t_ok "$PUNKNOWN leases granted after the backup; $grants grants after the restore, the lowest epoch $low > $PE2"
        else
                t_fail "a grant after the restore has epoch $low, not above $PE2"
        fi
else
        t_fail "rollout $(rollout_state "$R3"); $(hosts | jq -c '[.hosts[] | {version, state, lease, quarantined}]')"
fi
t_stop $SRV

t_case "on PostgreSQL: a restore killed after pg_restore, run again, moves the epochs past all it knew"
epoch() { sql "$DRURL" "SELECT value FROM meta WHERE key = 'lease_epoch'"; }
known=$(epoch)
(SLIPWAY_CRASH_AT=restore-dumped "$SD" --state-dir "$D/pgdr" --database "$DRURL" --log-json no restore "$D/pgbk"
        exit $?) >"$D/pg-crash.out" 2>&1
rc=$?
pending=$(cat "$D/pgdr/restore-epoch.pending" 2>/dev/null)
mid=$(epoch)
"$SD" --state-dir "$D/pgdr" --database "$DRURL" --log-json no restore "$D/pgbk" >"$D/pg-again.out" 2>&1
rc2=$?
after=$(epoch)
if [ $rc = 137 ] && [ "$pending" = "$known" ] && [ "$mid" = "$(jq .lease_epoch "$D/pgbk/manifest.json")" ] &&
        [ $rc2 = 0 ] && [ "$after" -ge $((known + 4294967296)) ] && [ ! -e "$D/pgdr/restore-epoch.pending" ] &&
        grep -q "lease epoch $known known to a restore that did not finish" "$D/pg-again.out"; then
        t_ok "killed with the backup's epoch $mid in the database, $known known; run again: $after"
else
        t_fail "killed: rc $rc, pending '$pending' (known $known), $mid in the database; again: rc $rc2, $after:" \
                "$(cat "$D/pg-crash.out" "$D/pg-again.out")"
fi

t_case "point-in-time recovery: a base backup and archived WAL replayed to a restore point"
# A cluster of its own, archiving its WAL; the state is changed through
# slipwayd's commands (no server needed), a restore point set between two
# changes, the cluster lost, and a new one made from the base backup.
pitr_ok=0
mkdir -p "$D/pitr-wal" "$D/pitr2/run"
[ "$(id -u)" = 0 ] && chown postgres: "$D/pitr-wal" "$D/pitr2" "$D/pitr2/run"
if pg_start pitr >"$D/pitr.log" 2>&1; then
        PITR_URL=$PGURL
        printf '%s\n' "archive_mode = on" "archive_command = 'cp %p $D/pitr-wal/%f'" |
                pg_as tee -a "$D/pitr/data/postgresql.conf" >/dev/null
        pg_stop pitr && pg_start pitr >>"$D/pitr.log" 2>&1 && pitr_ok=1
fi
if [ $pitr_ok = 1 ]; then
        PITR_URL=$PGURL
        "$SD" --state-dir "$D/pitrsrv" --database "$PITR_URL" --log-json no token create base >/dev/null 2>&1
        port=${PITR_URL##*port=}
        port=${port%%&*}
        pg_as "$(pg_bindir)/pg_basebackup" -h "$D/pitr/run" -p "$port" -U postgres -D "$D/pitr2/data" -X stream \
                -c fast >>"$D/pitr.log" 2>&1 || pitr_ok=0
        "$SD" --state-dir "$D/pitrsrv" --database "$PITR_URL" --log-json no token create kept >/dev/null 2>&1
        sql "$PITR_URL" "SELECT pg_create_restore_point('before-loss')" >/dev/null
        "$SD" --state-dir "$D/pitrsrv" --database "$PITR_URL" --log-json no token create lost >/dev/null 2>&1
        wal=$(sql "$PITR_URL" "SELECT pg_walfile_name(pg_switch_wal())")
        for ((i = 0; i < 600; i++)); do [ -f "$D/pitr-wal/$wal" ] && break; sleep 0.1; done
        [ -f "$D/pitr-wal/$wal" ] || pitr_ok=0
        pg_stop pitr
fi
if [ $pitr_ok = 1 ]; then
        T_PITR=$(now_ms)
        printf '%s\n' "" "port = $(pg_free_port)" "unix_socket_directories = '$D/pitr2/run'" \
                "archive_mode = off" "restore_command = 'cp $D/pitr-wal/%f %p'" \
                "recovery_target_name = 'before-loss'" "recovery_target_action = 'promote'" |
                pg_as tee -a "$D/pitr2/data/postgresql.conf" >/dev/null
        pg_as touch "$D/pitr2/data/recovery.signal"
        pg_url "$D/pitr2" >"$D/pitr2/url"
        t_on_exit "pg_cluster_stop '$D/pitr2'"
        PITR2_URL=$(pg_cluster_start "$D/pitr2" "$D" 2>>"$D/pitr.log")
        for ((i = 0; i < 600; i++)); do [ "$(sql "$PITR2_URL" 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break; sleep 0.1; done
        "$SD" --state-dir "$D/pitrsrv" --database "$PITR2_URL" --log-json no token list >"$D/pitr-tokens" 2>&1
        T_PITR_UP=$(now_ms)
        if grep -q '^base ' "$D/pitr-tokens" && grep -q '^kept ' "$D/pitr-tokens" && ! grep -q '^lost ' "$D/pitr-tokens"; then
                t_ok "recovered to the restore point in $((T_PITR_UP - T_PITR)) ms: base and kept there, lost not"
        else
                t_fail "tokens after the recovery: $(cat "$D/pitr-tokens"); $(tail -n 5 "$D/pitr2/server.log")"
        fi
        pg_cluster_stop "$D/pitr2"
else
        t_fail "could not set up the archive or the base backup: $(tail -n 5 "$D/pitr.log")"
fi

echo "backup: RTO $RTO ms (kill -9 → restored → serving), RPO $RPO ms ($LOST audit entries after the backup lost)"
echo "backup on PostgreSQL (pg_dump): RTO $PGRTO ms (kill -9 → restored into a new database → serving)," \
        "RPO $PGRPO ms ($PLOST audit entries after the backup lost)"
t_end
