#!/bin/bash
# A host file set rolled out in waves, with real slipway-agent processes
# (sim backend) against slipwayd on loopback: a version held back reaches
# no host; a rollout of it takes the canary first while the other hosts of
# the set keep the version they have until their wave; a version that a
# health check fails falls back on the canary and pauses the rollout, the
# later wave never gets it, and a change of the set is refused meanwhile;
# the rollback puts the old version back everywhere.
. "$(dirname "$0")/../lib.sh"
t_begin files-rollout

B=$BIN/slipway-build
SD=$BIN/slipwayd
AG=$BIN/slipway-agent
C=$BIN/slipctl
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
unset SLIPWAY_CRASH_AT
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

mkdir -p "$D/keys" "$D/health"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
tiny_def "$D/tiny.conf" 1.0
$B -q --store "$D/store" build --key "$D/k.key" --no-disk "$D/tiny.conf" >/dev/null
$B -q --store "$D/store" export tiny:1.0 "$D/img" >/dev/null
# The check a bad version fails: the rack file must not say "bad".
cat >"$D/health/10-rack" <<'EOF2'
#!/bin/sh
f="$SLIPWAY_FILES_ROOT/etc/slipway-test/rack.conf"
! grep -q bad "$f" 2>/dev/null || { echo "rack.conf is bad"; exit 1; }
EOF2
chmod +x "$D/health/10-rack"

TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create ci)
"$SD" --state-dir "$D/srv" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no \
        --enroll-token sekrit --checkin-interval 1 >"$D/srv.log" 2>&1 &
PIDS+=($!)
t_wait_until 60 test -s "$D/srv/slipwayd.url"
URL=$(cat "$D/srv/slipwayd.url")
export SLIPWAY_SERVER=$URL SLIPWAY_TOKEN=$TOKEN
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
post() { api -H 'Content-Type: application/json' -d "$2" "$URL$1"; }
for f in "$D/img"/*; do api -o /dev/null -T "$f" "$URL/v1/blobs/sha256/$(sha "$f")"; done
post /v1/images "{\"manifest\":\"$(sha "$D/img/manifest.json")\",\"signature\":\"$(sha "$D/img/manifest.sig")\"}" >/dev/null

# h1 to h3 in rack r1, h4 in rack r2; one host of a rack down at a time.
HOSTS="h1 h2 h3 h4"
R1="h1 h2 h3"
n=0
for h in $HOSTS; do
        n=$((n + 1))
        "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" --enroll-token sekrit \
                register "52:54:00:06:00:0$n" >>"$D/$h.log" 2>&1
        jq -r .host_id "$D/$h/state/agent.json" >"$D/$h.id"
        rack=r1
        [ $n = 4 ] && rack=r2
        post "/v1/hosts/$(cat "$D/$h.id")/labels" "{\"set\": {\"rack\": \"$rack\"}}" >/dev/null
        api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:1.0"}' \
                "$URL/v1/hosts/$(cat "$D/$h.id")/image"
        (exec "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" \
                --keys-dir "$D/keys" --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M \
                run >>"$D/$h.log" 2>&1) &
        PIDS+=($!)
done
api -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack" >/dev/null

host_json() { api "$URL/v1/hosts/$(cat "$D/$1.id")"; }
# files_of HOST: the files digest of the slot HOST runs, as it reports it;
# want_of HOST: the one the server renders for it now.
files_of() { host_json "$1" | jq -r '.slots[.booted_slot].files // empty'; }
want_of() { api "$URL/v1/hosts/$(cat "$D/$1.id")/files" | jq -r .digest; }
healthy_with() { # HOST: healthy, running the files the server renders for it
        local j
        j=$(host_json "$1")
        [ "$(jq -r .state <<<"$j")" = healthy ] && [ "$(jq -r '.slots[.booted_slot].files' <<<"$j")" = "$(want_of "$1")" ]
}
all_healthy_with() { for h in "$@"; do healthy_with "$h" || return 1; done; }
wait_for() { # SECONDS COMMAND...
        local secs=$1 i
        shift
        for ((i = 0; i < secs * 5; i++)); do "$@" && return 0; sleep 0.2; done
        return 1
}
rollout_state() { api "$URL/v1/rollouts/$1" | jq -r .state; }
rollout_is() { [ "$(rollout_state "$1")" = "$2" ]; }
hosts_brief() { api "$URL/v1/hosts" | jq -c '[.hosts[] | {id, state, message}]'; }

t_case "four hosts come up on 1.0 with no host files"
if wait_for 60 all_healthy_with $HOSTS; then t_ok; else t_fail "$(hosts_brief)"; fi
declare -A OLD
for h in $HOSTS; do OLD[$h]=$(files_of $h); done

t_case "a version held back reaches no host, and the list says so"
printf 'rack={{label.rack}} one\nhost={{host.id}}\n' >"$D/rack1.conf"
out=$($C files add net --hold --selector rack=r1 /etc/slipway-test/rack.conf="$D/rack1.conf")
sleep 2
ok=1
for h in $HOSTS; do [ "$(want_of $h)" = "${OLD[$h]}" ] && [ "$(files_of $h)" = "${OLD[$h]}" ] || ok=0; done
list=$($C files list)
grep -q 'held back' <<<"$out" || ok=0
grep -Eq '^net +1 +none ' <<<"$list" || ok=0
grep -q 'rollout start --files NAME' <<<"$list" || ok=0
if [ $ok = 1 ]; then t_ok; else t_fail "$out / $list / $(hosts_brief)"; fi

t_case "rolled out in two waves: the later wave keeps the old files until its turn"
# The canary's wave bakes for 4 s: the other r1 hosts must not get the
# version in that time.
id=$($C --json rollout start --files net --waves 1,100% --bake 4 --max-failures 0 | jq -r .id)
canary=""
find_canary() {
        for h in $R1; do [ "$(want_of $h)" != "${OLD[$h]}" ] && canary=$h && return 0; done
        return 1
}
ok=1
wait_for 20 find_canary || ok=0
wait_for 60 healthy_with "$canary" || ok=0
[ "$(api "$URL/v1/rollouts/$id" | jq -r '.waves[0].done')" = 1 ] || wait_for 10 \
        eval '[ "$(api "$URL/v1/rollouts/$id" | jq -r ".waves[0].done")" = 1 ]' || ok=0
# The bake: the others still want and run what they had.
for h in $R1 h4; do
        [ "$h" = "$canary" ] && continue
        [ "$(want_of $h)" = "${OLD[$h]}" ] && [ "$(files_of $h)" = "${OLD[$h]}" ] || ok=0
done
wait_for 60 rollout_is "$id" done || ok=0
wait_for 60 all_healthy_with $R1 || ok=0
grep -qx "host=$(cat "$D/h2.id")" "$D/h2/root/etc/slipway-test/rack.conf" || ok=0
[ "$(files_of h4)" = "${OLD[h4]}" ] || ok=0
[ "$($C --json files list | jq -r '.file_sets[0].live')" = 1 ] || ok=0
if [ $ok = 1 ]; then t_ok; else
        t_fail "canary=$canary $(api "$URL/v1/rollouts/$id" | jq -c '{state, waves}') $(hosts_brief)"; fi
declare -A ONE
for h in $HOSTS; do ONE[$h]=$(files_of $h); done

t_case "a bad version falls back on the canary, pauses the rollout, and goes no further"
printf 'rack={{label.rack}} bad\n' >"$D/rack-bad.conf"
$C files set net --hold /etc/slipway-test/rack.conf="$D/rack-bad.conf" >/dev/null
id=$($C --json rollout start --files net --waves 1,100% --max-failures 0 | jq -r .id)
ok=1
wait_for 90 rollout_is "$id" paused || ok=0
reason=$(api "$URL/v1/rollouts/$id" | jq -r .reason)
grep -q 'wave 1: 1 of 1 hosts failed' <<<"$reason" || ok=0
sleep 2
bad=""
for h in $R1; do
        if [ "$(host_json $h | jq -r .state)" = rolled-back ]; then
                bad=$h
                grep -q 'rack.conf is bad' "$D/$h.log" || ok=0
        else
                # The later wave: still wanting and running version 1.
                [ "$(want_of $h)" = "${ONE[$h]}" ] && [ "$(files_of $h)" = "${ONE[$h]}" ] || ok=0
        fi
        grep -q bad "$D/$h/root/etc/slipway-test/rack.conf" && ok=0
done
[ -n "$bad" ] || ok=0
if [ $ok = 1 ]; then t_ok; else t_fail "reason='$reason' $(hosts_brief)"; fi

t_case "a set a rollout moves changes only held back"
code=$(curl -s -o "$D/resp.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -X PUT -d '{"files": []}' "$URL/v1/files/net")
if [ "$code" = 409 ] && grep -q "being rolled out by rollout $id" "$D/resp.json"; then t_ok; else
        t_fail "$code $(cat "$D/resp.json")"; fi

t_case "the rollback puts version 1 back everywhere"
back=$($C --json rollout rollback "$id" | jq -r '.id // .rollback // empty')
ok=1
wait_for 60 all_healthy_with $R1 h4 || ok=0
for h in $HOSTS; do [ "$(files_of $h)" = "${ONE[$h]}" ] || ok=0; done
for h in $R1; do grep -q bad "$D/$h/root/etc/slipway-test/rack.conf" && ok=0; done
[ "$(rollout_state "$id")" = aborted ] || ok=0
[ "$($C --json files list | jq -r '.file_sets[0].live')" = 1 ] || ok=0
if [ $ok = 1 ]; then t_ok; else t_fail "back=$back $(hosts_brief)"; fi

t_end
