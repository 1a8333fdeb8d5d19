#!/bin/bash
# Host files with real slipway-agent processes (sim backend) against
# slipwayd on loopback: a file set for rack=r1 rendered per host and
# staged with a slot; a change of files alone goes through the cycle
# (stage, lease, reboot, judge); a file a health check refuses falls back
# to the other slot, whose files come back, and is not tried again; a fixed
# version goes on; the hosts' files are what `slipctl files render` shows;
# a power cut while the files are staged or applied loses nothing.
. "$(dirname "$0")/../lib.sh"
t_begin files

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
# The check a bad network file fails: the rack file must not say "bad".
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

# Three hosts: h1 and h2 in rack r1, h3 in rack r2; one r1 host down at a
# time.
HOSTS="h1 h2 h3"
declare -A APIDS
start_agent() { # HOST [ENV...]
        local h=$1
        shift
        (exec env "$@" "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" \
                --keys-dir "$D/keys" --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M \
                --enroll-token sekrit run >>"$D/$h.log" 2>&1) &
        APIDS[$h]=$!
        PIDS+=($!)
}
stop_agent() { kill "${APIDS[$1]}" 2>/dev/null; wait "${APIDS[$1]}" 2>/dev/null; }
n=0
for h in $HOSTS; do
        n=$((n + 1))
        "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" --enroll-token sekrit \
                register "52:54:00:05:00:0$n" >>"$D/$h.log" 2>&1
        jq -r .host_id "$D/$h/state/agent.json" >"$D/$h.id"
        rack=r1
        [ $n = 3 ] && rack=r2
        post "/v1/hosts/$(cat "$D/$h.id")/labels" "{\"set\": {\"rack\": \"$rack\"}}" >/dev/null
        api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:1.0"}' \
                "$URL/v1/hosts/$(cat "$D/$h.id")/image"
done
api -X PUT -H 'Content-Type: application/json' -d '{"max_unavailable": 1}' "$URL/v1/budgets/rack" >/dev/null

host_json() { api "$URL/v1/hosts/$(cat "$D/$1.id")"; }
# files_of HOST: the digest of the files of the slot HOST runs, as it
# reports it.
files_of() { host_json "$1" | jq -r '.slots[.booted_slot].files // empty'; }
want_of() { api "$URL/v1/hosts/$(cat "$D/$1.id")/files" | jq -r .digest; }
healthy_with() { # HOST: healthy, running the files the server renders for it
        local j
        j=$(host_json "$1")
        [ "$(jq -r .state <<<"$j")" = healthy ] && [ "$(jq -r .version <<<"$j")" = 1.0 ] &&
                [ "$(jq -r '.slots[.booted_slot].files' <<<"$j")" = "$(want_of "$1")" ]
}
all_healthy_with() { for h in "$@"; do healthy_with "$h" || return 1; done; }
wait_for() { # SECONDS COMMAND...
        local secs=$1 i
        shift
        for ((i = 0; i < secs * 5; i++)); do "$@" && return 0; sleep 0.2; done
        return 1
}
# same_as_render HOST: every file `slipctl files render HOST` shows is in
# the host's root with that content and mode, and no other file is there.
same_as_render() {
        local h=$1 id root n p
        id=$(cat "$D/$h.id")
        root=$D/$h/root
        $C --json files render "$id" >"$D/render.json" || return 1
        n=$(jq '.files | length' "$D/render.json")
        for ((i = 0; i < n; i++)); do
                p=$(jq -r ".files[$i].path" "$D/render.json")
                cmp -s <(jq -j ".files[$i].content" "$D/render.json") "$root$p" || return 1
                [ "$(stat -c %a "$root$p")" = "$(jq -r ".files[$i].mode" "$D/render.json" | sed 's/^0//')" ] ||
                        return 1
        done
        [ "$(find "$root" -type f 2>/dev/null | wc -l)" = "$n" ]
}

t_case "three hosts come up on 1.0 with no host files"
for h in $HOSTS; do start_agent $h; done
if wait_for 60 all_healthy_with $HOSTS && [ "$(find "$D"/h?/root -type f 2>/dev/null | wc -l)" = 0 ]; then t_ok; else
        t_fail "$(api "$URL/v1/hosts" | jq -c '[.hosts[] | {state, version, slots}]')"; fi

t_case "a file set for rack=r1, rendered per host, reaches the r1 hosts through the cycle"
printf 'rack={{label.rack}}\nhost={{host.id}}\n' >"$D/rack.conf"
printf 'nameserver 10.0.0.53\n' >"$D/resolv.conf"
before3=$(files_of h3)
slot_before=$(host_json h1 | jq -r .booted_slot)
if $C files add net --selector rack=r1 /etc/slipway-test/rack.conf="$D/rack.conf" \
        /etc/slipway-test/resolv.conf:0600="$D/resolv.conf" >/dev/null &&
        wait_for 90 all_healthy_with h1 h2 && same_as_render h1 && same_as_render h2 &&
        grep -qx "host=$(cat "$D/h1.id")" "$D/h1/root/etc/slipway-test/rack.conf" &&
        grep -qx "host=$(cat "$D/h2.id")" "$D/h2/root/etc/slipway-test/rack.conf" &&
        [ "$(host_json h1 | jq -r .booted_slot)" != "$slot_before" ] &&
        [ "$(files_of h3)" = "$before3" ] && same_as_render h3; then
        t_ok
else
        t_fail "$(api "$URL/v1/hosts" | jq -c '[.hosts[] | {state, version, booted_slot, message}]') $(tail -3 "$D/h1.log")"
fi

t_case "the r1 hosts switched one at a time (the rack budget)"
# The most r1 hosts holding a lease at once, replayed from the audit log's
# grants and releases since the set was added.
since=$(api "$URL/v1/audit?action=files.add" | jq -r '.entries[0].id')
r1="[\"$(cat "$D/h1.id")\", \"$(cat "$D/h2.id")\"]"
most=$(api "$URL/v1/audit?action=lease&since=$since" | jq -r --argjson r1 "$r1" '
        reduce (.entries[] | select((.action == "lease.grant" or .action == "lease.release") and
                (.target as $t | $r1 | index($t)))) as $e ({held: {}, most: 0};
                .held[$e.target] = ($e.action == "lease.grant") |
                .most = ([.most, ([.held[] | select(.)] | length)] | max)) | .most')
if [ "$most" = 1 ]; then t_ok; else t_fail "at most $most r1 hosts held a lease at once"; fi

t_case "a bad rack file fails its check: the host falls back and its old files come back"
good1=$(files_of h1)
cp "$D/h1/root/etc/slipway-test/rack.conf" "$D/h1-good"
printf 'rack={{label.rack}} bad\n' >"$D/rack-bad.conf"
$C files set net /etc/slipway-test/rack.conf="$D/rack-bad.conf" >/dev/null
# The first r1 host to take the change falls back; it does not try it again.
rolled() { host_json h1 | jq -e '.state == "rolled-back"' >/dev/null || host_json h2 | jq -e '.state == "rolled-back"' >/dev/null; }
if wait_for 90 rolled; then
        rb=h1
        host_json h1 | jq -e '.state == "rolled-back"' >/dev/null || rb=h2
        sleep 3
        if [ "$(host_json $rb | jq -r .state)" = rolled-back ] && [ "$(host_json $rb | jq -r .version)" = 1.0 ] &&
                ! grep -q bad "$D/$rb/root/etc/slipway-test/rack.conf" &&
                grep -q '^rack=r1$' "$D/$rb/root/etc/slipway-test/rack.conf" &&
                [ "$(grep -c 'rack.conf is bad' "$D/$rb.log")" -ge 1 ] &&
                [ "$(host_json $rb | jq -r '.slots[.booted_slot].files')" != "$(want_of $rb)" ]; then
                t_ok
        else
                t_fail "$rb: $(host_json $rb | jq -c '{state, message}') $(cat "$D/$rb/root/etc/slipway-test/rack.conf")"
        fi
else
        t_fail "no host fell back: $(api "$URL/v1/hosts" | jq -c '[.hosts[] | {state, message}]')"
fi

t_case "a fixed version goes on to every r1 host; r2 never changed"
printf 'rack={{label.rack}} fixed\n' >"$D/rack-fixed.conf"
$C files set net /etc/slipway-test/rack.conf="$D/rack-fixed.conf" /etc/slipway-test/resolv.conf:0600="$D/resolv.conf" \
        >/dev/null
if wait_for 90 all_healthy_with h1 h2 && same_as_render h1 && same_as_render h2 &&
        grep -qx 'rack=r1 fixed' "$D/h2/root/etc/slipway-test/rack.conf" && [ "$(files_of h3)" = "$before3" ]; then
        t_ok
else
        t_fail "$(api "$URL/v1/hosts" | jq -c '[.hosts[] | {state, message}]')"
fi

t_case "history and audit: every change, who and when"
if [ "$($C --json files history net | jq '.versions | length')" = 3 ] &&
        [ "$(api "$URL/v1/audit?action=files" | jq -r '[.entries[].action] | join(" ")')" = \
                "files.add files.set files.set" ] &&
        $C files diff net 2 3 | grep -qx -- '+rack={{label.rack}} fixed'; then t_ok; else
        t_fail "$($C files history net)"; fi

# Power cuts: h3 (rack r2) gets a set of its own; the agent is killed as the
# files are staged, then while they are applied at the boot of the new slot.
# Each time it must come up with the server's files in place.
for point in files-staged files-applying files-applied; do
        t_case "killed at $point: the host ends up with the files it should have"
        stop_agent h3
        printf 'zone %s {{label.rack}}\n' "$point" >"$D/zone.conf"
        if [ "$point" = files-staged ]; then
                $C files add zone-r2 --selector rack=r2 /etc/slipway-test/zone.conf="$D/zone.conf" >/dev/null
        else
                $C files set zone-r2 /etc/slipway-test/zone.conf="$D/zone.conf" >/dev/null
        fi
        { timeout 120 env SLIPWAY_CRASH_AT=$point "$AG" --backend sim --sim-dir "$D/h3" --state-dir "$D/h3/state" \
                --server "$URL" --keys-dir "$D/keys" --health-dir "$D/health" --checkin-interval 1 \
                --sim-slot-size 32M run >>"$D/h3.log" 2>&1; } 2>/dev/null
        rc=$?
        start_agent h3
        if [ $rc = 137 ] && wait_for 60 all_healthy_with h3 && same_as_render h3 &&
                grep -qx "zone $point r2" "$D/h3/root/etc/slipway-test/zone.conf"; then
                t_ok
        else
                t_fail "rc=$rc $(host_json h3 | jq -c '{state, message, booted_slot}') $(tail -3 "$D/h3.log")"
        fi
done

t_case "API: refusals name what is wrong; a host reads its own files only"
code() { curl -s -o "$D/resp.json" -w '%{http_code}' "$@"; }
h1tok=$(jq -r .token "$D/h1/state/agent.json")
ok=1
[ "$(code -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d '{"name": "net", "files": []}' "$URL/v1/files")" = 409 ] || ok=0
[ "$(code -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -X PUT \
        -d '{"files": [{"path": "/etc/x", "content": "{{label.rack"}]}' "$URL/v1/files/net")" = 400 ] &&
        grep -q "file '/etc/x': '{{' without '}}'" "$D/resp.json" || ok=0
[ "$(code -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -X PUT \
        -d '{"files": [], "owner": 0}' "$URL/v1/files/net")" = 400 ] && grep -q unknown_field "$D/resp.json" || ok=0
[ "$(code -H "Authorization: Bearer $TOKEN" "$URL/v1/files/nope")" = 404 ] || ok=0
[ "$(code -H "Authorization: Bearer $TOKEN" "$URL/v1/files/net?version=99")" = 404 ] || ok=0
[ "$(code -H "Authorization: Bearer $h1tok" "$URL/v1/hosts/$(cat "$D/h1.id")/files")" = 200 ] || ok=0
[ "$(code -H "Authorization: Bearer $h1tok" "$URL/v1/hosts/$(cat "$D/h2.id")/files")" = 403 ] || ok=0
[ "$(code -H "Authorization: Bearer $h1tok" "$URL/v1/files")" = 403 ] || ok=0
[ "$(code "$URL/v1/files")" = 401 ] || ok=0
# A label a template needs and a host lacks: the host is told of no new
# files and keeps what it has; render says which file and variable.
before=$(files_of h2)
printf 'zone={{label.zone}}\n' >"$D/zone-r1.conf"
$C files add zone-r1 --selector rack=r1 /etc/slipway-test/zone.conf="$D/zone-r1.conf" >/dev/null
sleep 3
err=$($C files render "$(cat "$D/h2.id")" 2>&1)
grep -q "file '/etc/slipway-test/zone.conf': host '$(cat "$D/h2.id")' has no value for 'label.zone'" <<<"$err" || ok=0
[ "$(files_of h2)" = "$before" ] && [ "$(host_json h2 | jq -r .state)" = healthy ] || ok=0
$C files delete zone-r1 >/dev/null || ok=0
if [ $ok = 1 ]; then t_ok; else t_fail "$(cat "$D/resp.json") $err"; fi

t_case "apply-files puts the booted slot's files back"
rm -f "$D/h1/root/etc/slipway-test/rack.conf"
if "$AG" --backend sim --sim-dir "$D/h1" --state-dir "$D/h1/state" apply-files >>"$D/h1.log" 2>&1 &&
        same_as_render h1; then t_ok; else t_fail "$(tail -2 "$D/h1.log")"; fi

t_case "a deletion held back: the set stays live and listed, marked deleted"
live=$($C --json files list | jq '.file_sets[] | select(.name == "zone-r2") | .version')
$C files delete zone-r2 --hold >/dev/null
j=$($C --json files list | jq -c '.file_sets[] | select(.name == "zone-r2")')
if [ "$(jq -r '[.deleted, .live == '"$live"', .version == '"$live"' + 1, (.files | length > 0)] | join(" ")' <<<"$j")" = \
        "true true true true" ] && $C files list | grep -q "^zone-r2  *$((live + 1)) deleted  *$live "; then
        t_ok
else
        t_fail "$j; $($C files list)"
fi

t_case "a set deleted: its files leave the hosts with their next slot"
$C files delete net >/dev/null
if wait_for 90 all_healthy_with h1 h2 && same_as_render h1 && same_as_render h2 &&
        [ ! -e "$D/h1/root/etc/slipway-test/rack.conf" ] && [ ! -e "$D/h2/root/etc/slipway-test/resolv.conf" ] &&
        [ "$($C --json files list | jq '.file_sets | map(.name) | join(" ")' -r)" = zone-r2 ]; then
        t_ok
else
        t_fail "$(api "$URL/v1/hosts" | jq -c '[.hosts[] | {state, message}]') $(find "$D/h1/root" -type f)"
fi

t_end
