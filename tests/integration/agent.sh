#!/bin/bash
# slipway-agent with the sim backend against slipwayd on loopback: updates
# that succeed, fail their health checks or are refused, downloads that
# break, and the agent killed (or the power cut) at every step of staging,
# switching and blessing. After each, the host boots a complete, verified
# slot and reports the truth. Live mode's download, checked against the
# signed manifest, and its refusals.
. "$(dirname "$0")/../lib.sh"
t_begin agent

B=$BIN/slipway-build
SD=$BIN/slipwayd
AG=$BIN/slipway-agent
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'


# Images 1.0, 2.0, 3.0 signed by the trusted key; 4.0 by another one.
mkdir -p "$D/keys" "$D/other"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
$B keygen "$D/o.key" "$D/other/o.pub" >/dev/null
for v in 1.0 2.0 3.0 4.0; do
        key=$D/k.key
        [ $v = 4.0 ] && key=$D/o.key
        tiny_def "$D/tiny-$v.conf" $v
        $B -q --store "$D/store" build --key "$key" --no-disk "$D/tiny-$v.conf" >/dev/null
        $B -q --store "$D/store" export tiny:$v "$D/img-$v" >/dev/null
done

TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create ci)
start_server() {
        "$SD" --state-dir "$D/srv" --listen "${LISTEN:-127.0.0.1:0}" --trusted-keys "$D/keys" --trusted-keys "$D/keys" \
                --log-json no --enroll-token sekrit >>"$D/srv.log" 2>&1 &
        SPID=$!
        PIDS+=("$SPID")
        for ((i = 0; i < 1200; i++)); do
                [ -s "$D/srv/slipwayd.url" ] && curl -s -o /dev/null "$(cat "$D/srv/slipwayd.url")/v1/status" && break
                sleep 0.05
        done
        URL=$(cat "$D/srv/slipwayd.url")
}
# Restarts keep the port (t_port: no other program takes it meanwhile), so
# the agents find it again.
LISTEN=127.0.0.1:$(t_port)
start_server
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
publish() { # DIR: uploads every blob (even when signed by a key the server does not trust, see below)
        local f
        for f in "$1"/*; do api -o /dev/null -T "$f" "$URL/v1/blobs/sha256/$(sha "$f")"; done
        api -o /dev/null -H 'Content-Type: application/json' \
                -d "{\"manifest\":\"$(sha "$1/manifest.json")\",\"signature\":\"$(sha "$1/manifest.sig")\"}" \
                "$URL/v1/images"
}
for v in 1.0 2.0 3.0; do publish "$D/img-$v"; done
# 4.0 is signed by a key the agents do not trust; the server is told to
# trust it so that the refusal is the agent's own.
cp "$D/other/o.pub" "$D/keys/o.pub"
publish "$D/img-4.0"
rm "$D/keys/o.pub"

# agent HOST [ARGS...]: runs slipway-agent for HOST with the sim backend.
# agent_bg HOST [ARGS...]: the same in the background, its PID in APID.
agent() {
        local h=$1
        shift
        "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" --keys-dir "$D/keys" \
                --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M --enroll-token sekrit "$@"
}
agent_bg() {
        local h=$1
        shift
        (exec "$AG" --backend sim --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" --keys-dir "$D/keys" \
                --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M --enroll-token sekrit "$@" \
                >>"$D/$h.log" 2>&1) &
        APID=$!
        PIDS+=("$APID")
}
# run_until HOST JQ-CONDITION [SECONDS] [AGENT-ARGS...]: runs the agent in
# the background until the server's record of HOST satisfies the condition.
run_until() {
        local h=$1 cond=$2 secs=${3:-30} i
        shift 3 2>/dev/null || shift $#
        agent_bg "$h" "$@" run
        for ((i = 0; i < secs * 10; i++)); do
                host_json "$h" | jq -e "$cond" >/dev/null 2>&1 && break
                sleep 0.1
        done
        kill "$APID" 2>/dev/null
        wait "$APID" 2>/dev/null
        host_json "$h" | jq -e "$cond" >/dev/null 2>&1
}
host_json() { api "$URL/v1/hosts/$(cat "$D/$1/id")"; }
register() { # HOST MAC
        agent "$1" register "$2" >>"$D/$1.log" 2>&1 && jq -r .host_id "$D/$1/state/agent.json" >"$D/$1/id"
}
assign() { # HOST IMAGE
        api -o /dev/null -X PUT -H 'Content-Type: application/json' -d "{\"image\": \"$2\"}" \
                "$URL/v1/hosts/$(cat "$D/$1/id")/image"
}
slot_sha() { # HOST SLOT SIZE: sha256 of the slot's first SIZE bytes
        head -c "$3" "$D/$1/root-$2" | sha256sum | cut -c1-64
}
# tools_slot HOST: the slot that tools which discover partitions would take:
# the one without the no-auto mark (b when neither has it).
tools_slot() {
        case $(cat "$D/$1/no-auto" 2>/dev/null) in a) echo b ;; b) echo a ;; *) echo b ;; esac
}
mkdir -p "$D/health"
cat >"$D/health/10-version" <<'EOF'
#!/bin/sh
# Version 3.0 is broken on purpose.
echo "checking $SLIPWAY_VERSION in slot $SLIPWAY_SLOT"
[ "$SLIPWAY_VERSION" != 3.0 ] || { echo "service does not answer on 3.0"; exit 1; }
EOF
cat >"$D/health/50-extra.wanted" <<'EOF'
#!/bin/sh
echo "optional check fails, and that is fine"
exit 1
EOF
# Slow only while $D/slow exists (the lease renewal case).
cat >"$D/health/05-slow" <<EOF
#!/bin/sh
[ -e "$D/slow" ] || exit 0
touch "$D/slow.started"
sleep 3
EOF
chmod +x "$D/health"/*
R1=$(sha "$D/img-1.0/rootfs.erofs")
S1=$(stat -c %s "$D/img-1.0/rootfs.erofs")
S2=$(stat -c %s "$D/img-2.0/rootfs.erofs")

t_case "a blank host registers and converges on 1.0 (slot b), its entry blessed"
register h1 52:54:00:01:00:01
assign h1 tiny:1.0
if run_until h1 '.state == "healthy" and .version == "1.0"' 30 && [ "$(slot_sha h1 b "$S1")" = "$R1" ] &&
        ls "$D/h1/esp/loader/entries" | grep -qx 'slipway-1-1.0.conf' &&
        [ "$(jq -r '.health["50-extra.wanted"].ok' <<<"$(host_json h1)")" = false ]; then
        t_ok
else
        t_fail "$(host_json h1) $(ls "$D/h1/esp/loader/entries") $(tail -5 "$D/h1.log")"
fi

t_case "the host remembers the server it registered with: no --server needed"
out=$("$AG" --backend sim --sim-dir "$D/h1" --state-dir "$D/h1/state" --keys-dir "$D/keys" --health-dir "$D/health" \
        --sim-slot-size 32M status 2>&1)
if [ "$(jq -r .server "$D/h1/state/agent.json")" = "$URL" ] && grep -q "^server: *$URL\$" <<<"$out" &&
        "$AG" --backend sim --sim-dir "$D/h1" --state-dir "$D/h1/state" --keys-dir "$D/keys" --health-dir "$D/health" \
                --sim-slot-size 32M once >>"$D/h1.log" 2>&1; then
        t_ok
else
        t_fail "$(jq -c .server "$D/h1/state/agent.json"); $out; $(tail -3 "$D/h1.log")"
fi

t_case "JSON log lines name the host once it is registered"
agent hj --log-format json register 52:54:00:01:00:09 >"$D/hj.log" 2>&1
agent hj --log-format json status >/dev/null 2>>"$D/hj.log"
hj=$(jq -r .host_id "$D/hj/state/agent.json")
if [ -n "$hj" ] && [ "$hj" != null ] &&
        jq -se --arg h "$hj" 'any(.msg == "registered as \($h)" and .host == $h) and
                any((.msg | startswith("booted slot")) and .host == $h)' "$D/hj.log" >/dev/null; then
        t_ok
else
        t_fail "host $hj: $(cat "$D/hj.log")"
fi

t_case "an option after the command is an error, not ignored"
if expect_fail "option '--server' after the command 'status': options go before it" \
        "$AG" --backend sim --sim-dir "$D/h1" --state-dir "$D/h1/state" status --server "$URL"; then t_ok; else t_fail "the option after the command was not refused as expected"; fi

t_case "update to 2.0: staged into slot a, lease, reboot, health, bless; then slot a is what tools see"
assign h1 tiny:2.0
before=$(slot_sha h1 b "$S1")
tools_before=$(tools_slot h1)
if run_until h1 '.state == "healthy" and .version == "2.0" and .booted_slot == "a"' 30 &&
        [ "$tools_before" = b ] && [ "$(tools_slot h1)" = a ] &&
        [ "$(slot_sha h1 b "$S1")" = "$before" ] &&
        [ "$(slot_sha h1 a "$S2")" = "$(sha "$D/img-2.0/rootfs.erofs")" ] &&
        ls "$D/h1/esp/loader/entries" | grep -qx 'slipway-2-2.0.conf' &&
        api "$URL/v1/audit?action=lease" | jq -e '[.entries[].action] | index("lease.grant") and index("lease.release")' >/dev/null; then
        t_ok
else
        t_fail "$(host_json h1) $(tail -5 "$D/h1.log")"
fi

t_case "the lease is renewed after the reboot, before the health checks"
# A 2 s reboot: a renewal after it moves the expiry past the grant's.
register r1 52:54:00:01:00:31
assign r1 tiny:1.0
run_until r1 '.state == "healthy" and .version == "1.0"' 30 >/dev/null
kill "$APID" 2>/dev/null
wait "$APID" 2>/dev/null
touch "$D/slow"
assign r1 tiny:2.0
agent_bg r1 --sim-reboot-time 2 run
for ((i = 0; i < 300; i++)); do [ -e "$D/slow.started" ] && break; sleep 0.1; done
lease_now=$(host_json r1 | jq -c .lease)
rm -f "$D/slow"
grant=$(api "$URL/v1/audit?action=lease.grant" | jq -c --arg h "$(cat "$D/r1/id")" '[.entries[] | select(.target == $h)][-1]')
for ((i = 0; i < 600; i++)); do host_json r1 | jq -e '.state == "healthy" and .version == "2.0"' >/dev/null && break; sleep 0.1; done
kill "$APID" 2>/dev/null
wait "$APID" 2>/dev/null
if [ -e "$D/slow.started" ] && jq -e --argjson g "$grant" '.epoch == $g.detail.epoch and
        .expires >= $g.time + $g.detail.ttl + 1' <<<"$lease_now" >/dev/null &&
        grep -q "lease $(jq .detail.epoch <<<"$grant") renewed" "$D/r1.log" &&
        host_json r1 | jq -e '.state == "healthy" and .version == "2.0" and .lease == null' >/dev/null; then
        t_ok
else
        t_fail "lease during the checks $lease_now, grant $grant; $(grep -E 'lease' "$D/r1.log" | tail -3)"
fi

t_case "3.0 fails its required health check: marked bad, back on 2.0, reported with the reason"
assign h1 tiny:3.0
if run_until h1 '.state == "rolled-back" and .version == "2.0" and .booted_slot == "a"' 30; then
        msg=$(host_json h1 | jq -r .message)
        entries=$(ls "$D/h1/esp/loader/entries" | tr '\n' ' ')
        if [[ $msg == *"10-version"*"does not answer on 3.0"* ]] && [[ $entries == *"slipway-3-3.0+0-1.conf"* ]] &&
                [ "$(tools_slot h1)" = a ]; then
                t_ok
        else
                t_fail "message: $msg; entries: $entries; tools see slot $(tools_slot h1)"
        fi
else
        t_fail "$(host_json h1) $(tail -8 "$D/h1.log")"
fi

t_case "the failed image is not retried; the report stays"
run_until h1 '.state == "never"' 3 >/dev/null
if [ "$(host_json h1 | jq -r .state)" = rolled-back ] && [ "$(grep -c 'staging tiny:3.0' "$D/h1.log")" = 1 ]; then
        t_ok; else t_fail "$(grep -c 'staging tiny:3.0' "$D/h1.log") stagings; $(host_json h1 | jq -c '{state,version}')"; fi

t_case "the ESP keeps only the kernels and initrds that entries boot"
# 1.0's entry went when 3.0 was staged into its slot; 2.0 and 3.0 (marked bad) remain.
esp_versions=$(ls "$D/h1/esp/slipway" | tr '\n' ' ')
if [ "$esp_versions" = "2.0 3.0 " ] && grep -q "ESP: removed the kernel and initrd of 1.0" "$D/h1.log"; then
        t_ok; else t_fail "ESP has: $esp_versions; $(ls "$D/h1/esp/loader/entries" | tr '\n' ' ')"; fi

t_case "a downgrade the server did not mark as a rollback is refused"
assign h1 tiny:1.0
if run_until h1 '.state == "failed"' 10 && [[ $(host_json h1 | jq -r .message) == *"refusing a downgrade from 2.0 to 1.0"* ]] &&
        [ "$(host_json h1 | jq -r .version)" = 2.0 ]; then t_ok; else t_fail "$(host_json h1 | jq -c '{state,version,message}')"; fi

t_case "an image signed by an unknown key is refused"
assign h1 tiny:4.0
if run_until h1 '.state == "failed" and (.message | test("does not verify"))' 10 &&
        [ "$(host_json h1 | jq -r .version)" = 2.0 ]; then t_ok; else t_fail "$(host_json h1 | jq -c '{state,message}')"; fi

t_case "a manifest for another architecture is refused"
register h2 52:54:00:01:00:02
assign h2 tiny:1.0
if run_until h2 '.state == "failed" and (.message | test("is for x86_64, this host is aarch64"))' 10 --arch aarch64 &&
        [ ! -e "$D/h2/firmware.json" ]; then t_ok; else t_fail "$(host_json h2 | jq -c '{state,message}')"; fi

t_case "a rootfs larger than the slot is refused"
register h3 52:54:00:01:00:03
assign h3 tiny:1.0
if run_until h3 '.state == "failed" and (.message | test("larger than slot b"))' 10 --sim-slot-size 1M &&
        [ -z "$(ls "$D/h3/esp/loader/entries")" ]; then t_ok; else t_fail "$(host_json h3 | jq -c '{state,message}')"; fi

t_case "a server that returns other bytes than the blob asked for"
register h4 52:54:00:01:00:04
assign h4 tiny:1.0
blob=$D/srv/blobs/sha256/${R1:0:2}/$R1
chmod u+w "$blob"
cp "$blob" "$D/rootfs.good"
printf 'garbage' | dd of="$blob" bs=1 seek=4096 conv=notrunc status=none
if run_until h4 '.state == "failed" and (.message | test("other bytes than blob"))' 10 &&
        [ -z "$(ls "$D/h4/esp/loader/entries")" ] && [ ! -e "$D/h4/firmware.json" ]; then t_ok; else
        t_fail "$(host_json h4 | jq -c '{state,message}')"; fi
cp "$D/rootfs.good" "$blob"

t_case "a server that sends more than the blob: reported as such, the download starts over"
register h6 52:54:00:01:00:06
assign h6 tiny:1.0
cat "$D/rootfs.good" "$D/rootfs.good" >"$blob"
if run_until h6 '.state == "failed" and (.message | test("other bytes than blob .*: more than its"))' 10 &&
        [ "$(jq -r .written "$D/h6/state/agent.json")" = 0 ] && ! grep -q 'resuming at' "$D/h6.log" &&
        ! grep -q 'Failure writing' "$D/h6.log"; then t_ok; else
        t_fail "$(host_json h6 | jq -c '{state,message}'); written $(jq -r .written "$D/h6/state/agent.json")"; fi
cp "$D/rootfs.good" "$blob"

# live HOST CMDLINE [ARGS...]: slipway-agent live with CMDLINE as the kernel's.
live() {
        local h=$1 cmdline=$2
        shift 2
        SLIPWAY_CMDLINE=$cmdline "$AG" --state-dir "$D/$h/state" --keys-dir "$D/keys" --live-dir "$D/$h/live" "$@" live
}
live_args() { # VERSION: the live script's command line for it
        echo "console=ttyS0 slipway.mode=live slipway.server=$URL slipway.host=h-live" \
                "slipway.image=$(sha "$D/img-$1/manifest.json") slipway.signature=$(sha "$D/img-$1/manifest.sig")"
}

t_case "live: the rootfs of 2.0 into live-dir, checked against its signed manifest"
if live l1 "$(live_args 2.0)" >"$D/l1.log" 2>&1 && cmp -s "$D/l1/live/rootfs" "$D/img-2.0/rootfs.erofs" &&
        grep -qx 'VERSION=2.0' "$D/l1/live/image" && grep -qx "IMAGE=$(sha "$D/img-2.0/manifest.json")" "$D/l1/live/image" &&
        grep -q 'live: tiny:2.0 is in memory, verified against its signed manifest' "$D/l1.log"; then t_ok; else
        t_fail "$(tail -3 "$D/l1.log")"; fi

t_case "live: a manifest signed by a key the host does not trust is refused, nothing is left"
if expect_fail "live boot refused: the signature of image $(sha "$D/img-4.0/manifest.json" | cut -c1-12) does not verify" \
        live l2 "$(live_args 4.0)" && [ ! -e "$D/l2/live/rootfs" ]; then t_ok; else
        t_fail "$(ls "$D/l2/live" 2>&1)"; fi

t_case "live: a rootfs that is not the manifest's is refused, nothing is left"
cp "$D/rootfs.good" "$blob"
printf 'garbage' | dd of="$blob" bs=1 seek=4096 conv=notrunc status=none
if expect_fail "live boot failed: the server sent other bytes than blob ${R1:0:12}" live l3 "$(live_args 1.0)" &&
        [ ! -e "$D/l3/live/rootfs" ]; then t_ok; else t_fail "$(ls "$D/l3/live" 2>&1)"; fi
cp "$D/rootfs.good" "$blob"

t_case "live: a command line without the signature is refused"
if expect_fail "live: the kernel command line lacks slipway.server, slipway.image or slipway.signature" \
        live l4 "slipway.mode=live slipway.server=$URL slipway.image=$(sha "$D/img-1.0/manifest.json")"; then t_ok; else
        t_fail "not refused as expected"; fi

t_case "a truncated download: the server vanishes mid-download, the agent resumes"
register h5 52:54:00:01:00:05
assign h5 tiny:1.0
SLIPWAY_PAUSE_AT=slot-write:1 agent_bg h5 run
for ((i = 0; i < 600; i++)); do [ "$(ps -o stat= -p $APID | cut -c1)" = T ] && break; sleep 0.1; done
kill -9 "$SPID"
wait "$SPID" 2>/dev/null
kill -CONT "$APID"
sleep 2
nothing_bootable=$(ls "$D/h5/esp/loader/entries" | wc -l)
start_server
for ((i = 0; i < 600; i++)); do host_json h5 | jq -e '.state == "healthy"' >/dev/null 2>&1 && break; sleep 0.1; done
kill "$APID" 2>/dev/null
wait "$APID" 2>/dev/null
# The interruption is no failure of the image: never reported as one.
failed_reports=$(api "$URL/v1/audit?action=host.state" |
        jq --arg h "$(cat "$D/h5/id")" '[.entries[] | select(.target == $h and .detail.to == "failed")] | length')
if [ "$nothing_bootable" = 0 ] && grep -q 'download of .* stopped at' "$D/h5.log" && grep -q 'resuming at' "$D/h5.log" &&
        grep -q 'staging interrupted' "$D/h5.log" && [ "$failed_reports" = 0 ] &&
        [ "$(host_json h5 | jq -r .version)" = 1.0 ] && [ "$(slot_sha h5 b "$S1")" = "$R1" ]; then t_ok; else
        t_fail "entries while broken: $nothing_bootable; failed reports: $failed_reports; $(grep -E 'stopped|resum|error|interrupted' "$D/h5.log" | tail -3)"; fi

t_case "a fallback while the server is away: the lease is given back once it returns"
# Paused where a failed switch is given up, the server is killed, so the
# release after the fallback cannot get through; the host must give the
# lease back at a later check-in, not keep it until it expires.
register h6 52:54:00:01:00:06
assign h6 tiny:1.0
run_until h6 '.state == "healthy" and .version == "1.0"' 30 >/dev/null
assign h6 tiny:3.0
SLIPWAY_PAUSE_AT=marked-bad agent_bg h6 run
for ((i = 0; i < 300; i++)); do [ "$(ps -o stat= -p $APID | cut -c1)" = T ] && break; sleep 0.1; done
paused=$(ps -o stat= -p $APID | cut -c1)
held=$(host_json h6 | jq -r '.lease.epoch // empty')
kill -9 "$SPID"
wait "$SPID" 2>/dev/null
kill -CONT "$APID"
sleep 2
start_server
for ((i = 0; i < 600; i++)); do
        host_json h6 | jq -e '.state == "rolled-back" and .lease == null' >/dev/null 2>&1 && break
        sleep 0.1
done
kill "$APID" 2>/dev/null
wait "$APID" 2>/dev/null
if [ "$paused" = T ] && [ -n "$held" ] && host_json h6 | jq -e '.state == "rolled-back" and .lease == null' >/dev/null &&
        grep -q "lease $held given back" "$D/h6.log"; then t_ok; else
        t_fail "paused: $paused, lease held: ${held:-none}; $(host_json h6 | jq -c '{state,lease}'); $(grep -E 'lease' "$D/h6.log" | tail -3)"; fi

# Crash safety: the agent is killed at one step of an update from 1.0 to
# 2.0; then either only the agent restarts or the power is cut too. Each
# time the host must end up booted from a complete, verified slot, the
# slot it ran from never written, and the update finished; the slot tools
# that discover partitions take is the complete one it ran from until the
# new one is blessed, then the new one. marked-bad is on
# the failure path: the update goes to the broken 3.0, whose health check
# fails; the host must end up back on 1.0, report rolled-back, and never
# boot 3.0's entry again.
POINTS="entry-dropped slot-write:1 slot-write:2 slot-write:3 slot-synced slot-verified esp-kernel esp-initrd
entry-written staged before-arm before-reboot blessed marked-bad"
n=0
for point in $POINTS; do
        for power in agent power; do
                n=$((n + 1))
                h=c$n
                t_case "killed at $point, then $([ $power = power ] && echo 'power cut' || echo 'agent restart')"
                if [ "$point" = marked-bad ]; then
                        to=3.0 want='.state == "rolled-back" and .version == "1.0"'
                else
                        to=2.0 want='.state == "healthy" and .version == "2.0"'
                fi
                register $h "52:54:00:02:00:$(printf %02x $n)"
                assign $h tiny:1.0
                run_until $h '.state == "healthy" and .version == "1.0"' 30 >/dev/null
                active_before=$(slot_sha $h b "$S1")
                assign $h tiny:$to
                SLIPWAY_CRASH_AT=$point agent $h run >>"$D/$h.log" 2>&1
                rc=$?
                tools=$(tools_slot $h)
                written_active=no
                [ "$(slot_sha $h b "$S1")" = "$active_before" ] || written_active=yes
                if [ $power = power ]; then
                        agent_bg $h power-on
                        sleep 1
                        kill $APID 2>/dev/null
                        wait $APID 2>/dev/null
                fi
                booted=$(jq -r .slot "$D/$h/firmware.json")
                state=$(jq -c "{v: .slots.$booted.version, ok: .slots.$booted.complete}" "$D/$h/state/agent.json")
                run_until $h "$want" 30
                ok=$?
                final=$(jq -r .slot "$D/$h/firmware.json")
                tools="$tools $(tools_slot $h)"
                if [ "$point" = marked-bad ]; then
                        # Another power cut and cold boot: still the good slot,
                        # and 3.0 neither booted nor staged again.
                        agent_bg $h power-on
                        sleep 1
                        kill $APID 2>/dev/null
                        wait $APID 2>/dev/null
                        final="$final $(jq -r .slot "$D/$h/firmware.json")"
                        fsum=$(slot_sha $h b "$S1")
                        bad=$(ls "$D/$h/esp/loader/entries" | grep -c '^slipway-[0-9]*-3\.0+0-[0-9]*\.conf$')
                        if [ $rc = 137 ] && [ $written_active = no ] && [ $ok = 0 ] && [ "$final" = "b b" ] &&
                                [ "$tools" = "b b" ] &&
                                [ "$fsum" = "$R1" ] && [ "$bad" = 1 ] && host_json $h | jq -e "$want" >/dev/null &&
                                [ "$(grep -c 'staging tiny:3.0' "$D/$h.log")" = 1 ] &&
                                [ "$(grep -c 'booting slipway-[0-9]*-3\.0' "$D/$h.log")" = 1 ]; then
                                t_ok
                        else
                                t_fail "rc=$rc active written=$written_active booted=$final tools=$tools bad entries=$bad $(host_json $h | jq -c '{state,version,message}') $(ls "$D/$h/esp/loader/entries" | tr '\n' ' ') $(tail -3 "$D/$h.log")"
                        fi
                        continue
                fi
                fsum=$(slot_sha $h "$final" "$S2")
                if [ $rc = 137 ] && [ $written_active = no ] && [[ $state == *'"ok":true'* ]] && [ $ok = 0 ] &&
                        [ "$fsum" = "$(sha "$D/img-2.0/rootfs.erofs")" ] && [ "$tools" = "b $final" ]; then
                        t_ok
                else
                        t_fail "rc=$rc active written=$written_active booted=$booted tools=$tools $state final=$(host_json $h | jq -c '{state,version,message}') $(tail -3 "$D/$h.log")"
                fi
        done
done

t_case "status shows slots, entries and counters for a person"
out=$(agent h1 status 2>/dev/null)
if grep -q '^slot a:      2.0  <- running' <<<"$out" && grep -q 'slipway-3-3.0+0-1.conf .*bad (no tries left)' <<<"$out" &&
        grep -q '^reported:    failed' <<<"$out" && grep -q "^etc:         no overlay (the image's /etc)" <<<"$out"; then
        t_ok
else
        t_fail "$out"
fi

t_case "under systemd: 2.0's required unit fails; back on 1.0, the unit and its last log lines at the API and in slipctl"
# The fake systemctl and journalctl (tests/bin) answer for the version being
# judged: app.service runs on 1.0 and fails on 2.0.
mkdir -p "$D/sd/1.0/units" "$D/sd/2.0/units" "$D/sd/2.0/journal"
echo "active running" >"$D/sd/1.0/units/app.service"
echo "failed failed" >"$D/sd/2.0/units/app.service"
printf '%s\n' "app: starting" "app: reading /etc/app.conf" "app: unknown key 'colour' on line 3" \
        "app.service: Main process exited, code=exited, status=1/FAILURE" >"$D/sd/2.0/journal/app.service"
export SLIPWAY_FAKE_SYSTEMD=$D/sd PATH=$TOP/tests/bin:$PATH
register u1 52:54:00:01:00:21
assign u1 tiny:1.0
units=(--required-units app.service --health-log-lines 3)
if run_until u1 '.state == "healthy" and .version == "1.0"' 30 "${units[@]}" &&
        [ "$(host_json u1 | jq -r '.health["app.service"].state')" = active ]; then
        assign u1 tiny:2.0
        if run_until u1 '.state == "rolled-back" and .version == "1.0"' 30 "${units[@]}"; then
                j=$(host_json u1)
                show=$(SLIPWAY_SERVER=$URL SLIPWAY_TOKEN=$TOKEN "$BIN/slipctl" host show 52:54:00:01:00:21)
                if [[ $(jq -r .message <<<"$j") == *"app.service is failed (failed); last log lines:"*"unknown key 'colour'"* ]] &&
                        [ "$(jq -r '.health["app.service"] | [.required, .ok, .state] | @tsv' <<<"$j")" = "$(printf 'true\tfalse\tfailed')" ] &&
                        [ "$(jq -r '.health["app.service"].output' <<<"$j")" = "$(tail -n 3 "$D/sd/2.0/journal/app.service")" ] &&
                        grep -q "app.service: FAILED (required), failed$" <<<"$show" &&
                        grep -q "^ *| app: unknown key 'colour' on line 3$" <<<"$show" &&
                        grep -q "^message: .*app.service is failed (failed); last log lines:$" <<<"$show" &&
                        grep -q "^ *app: unknown key 'colour' on line 3$" <<<"$show" &&
                        ! grep -q "app: starting" <<<"$show" && grep -q "journalctl .* -n 3 -u app.service" "$D/sd/calls"; then
                        t_ok
                else
                        t_fail "message: $(jq -r .message <<<"$j"); health: $(jq -c .health <<<"$j"); show: $show"
                fi
        else
                t_fail "$(host_json u1 | jq -c '{state,version,message}') $(tail -5 "$D/u1.log")"
        fi
else
        t_fail "$(host_json u1 | jq -c '{state,version,message,health}') $(tail -5 "$D/u1.log")"
fi

t_end
