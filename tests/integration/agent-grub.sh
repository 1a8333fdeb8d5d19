#!/bin/bash
# slipway-agent with the sim backend and the GRUB boot back end: the sim
# firmware runs the generated grub.cfg over the host's grubenv. An update
# that is blessed, one that fails its health check and falls back, status in
# words, and the agent killed (or the power cut) at each grubenv write and at
# the cycle's steps around them. After each, the host boots a complete slot
# and finishes the update.
. "$(dirname "$0")/../lib.sh"
t_begin agent-grub

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
"$SD" --state-dir "$D/srv" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no --enroll-token sekrit \
        >>"$D/srv.log" 2>&1 &
PIDS+=("$!")
for ((i = 0; i < 1200; i++)); do
        [ -s "$D/srv/slipwayd.url" ] && curl -s -o /dev/null "$(cat "$D/srv/slipwayd.url")/v1/status" && break
        sleep 0.05
done
URL=$(cat "$D/srv/slipwayd.url")
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
for v in 1.0 2.0 3.0; do
        for f in "$D/img-$v"/*; do api -o /dev/null -T "$f" "$URL/v1/blobs/sha256/$(sha "$f")"; done
        api -o /dev/null -H 'Content-Type: application/json' \
                -d "{\"manifest\":\"$(sha "$D/img-$v/manifest.json")\",\"signature\":\"$(sha "$D/img-$v/manifest.sig")\"}" \
                "$URL/v1/images"
done

agent() {
        local h=$1
        shift
        "$AG" --backend sim --boot grub --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" \
                --keys-dir "$D/keys" --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M \
                --enroll-token sekrit "$@"
}
agent_bg() {
        local h=$1
        shift
        (exec "$AG" --backend sim --boot grub --sim-dir "$D/$h" --state-dir "$D/$h/state" --server "$URL" \
                --keys-dir "$D/keys" --health-dir "$D/health" --checkin-interval 1 --sim-slot-size 32M \
                --enroll-token sekrit "$@" >>"$D/$h.log" 2>&1) &
        APID=$!
        PIDS+=("$APID")
}
host_json() { api "$URL/v1/hosts/$(cat "$D/$1/id")"; }
run_until() { # HOST JQ-CONDITION [SECONDS]
        local h=$1 cond=$2 secs=${3:-30} i
        agent_bg "$h" run
        for ((i = 0; i < secs * 10; i++)); do
                host_json "$h" | jq -e "$cond" >/dev/null 2>&1 && break
                sleep 0.1
        done
        kill "$APID" 2>/dev/null
        wait "$APID" 2>/dev/null
        host_json "$h" | jq -e "$cond" >/dev/null 2>&1
}
register() { # HOST MAC
        agent "$1" register "$2" >>"$D/$1.log" 2>&1 && jq -r .host_id "$D/$1/state/agent.json" >"$D/$1/id"
}
assign() { # HOST IMAGE
        api -o /dev/null -X PUT -H 'Content-Type: application/json' -d "{\"image\": \"$2\"}" \
                "$URL/v1/hosts/$(cat "$D/$1/id")/image"
}
env_of() { # HOST: the grubenv's variables, one line
        grep -a '^slipway_' "$D/$1/esp/slipway/grubenv" | tr '\n' ' '
}
slot_sha() { # HOST SLOT SIZE
        head -c "$3" "$D/$1/root-$2" | sha256sum | cut -c1-64
}
mkdir -p "$D/health"
cat >"$D/health/10-version" <<'EOF'
#!/bin/sh
echo "checking $SLIPWAY_VERSION in slot $SLIPWAY_SLOT"
[ "$SLIPWAY_VERSION" != 3.0 ] || { echo "service does not answer on 3.0"; exit 1; }
EOF
chmod +x "$D/health"/*
S1=$(stat -c %s "$D/img-1.0/rootfs.erofs")
S2=$(stat -c %s "$D/img-2.0/rootfs.erofs")
R1=$(sha "$D/img-1.0/rootfs.erofs")
R2=$(sha "$D/img-2.0/rootfs.erofs")

t_case "a blank GRUB host converges on 1.0 (slot b): grub.cfg on the ESP, slot b good and first"
register g1 52:54:00:03:00:01
assign g1 tiny:1.0
if run_until g1 '.state == "healthy" and .version == "1.0" and .booted_slot == "b"' 30 &&
        [ "$(slot_sha g1 b "$S1")" = "$R1" ] && [ -s "$D/g1/esp/slipway/grub.cfg" ] &&
        [ "$(stat -c %s "$D/g1/esp/slipway/grubenv")" = 1024 ] &&
        [[ $(env_of g1) == *"slipway_order=b a"*"slipway_b=good"*"slipway_b_version=1.0"* ]] &&
        [ -z "$(ls "$D/g1/esp/loader/entries")" ]; then
        t_ok
else
        t_fail "$(host_json g1 | jq -c '{state,version,booted_slot}') $(env_of g1) $(tail -5 "$D/g1.log")"
fi

t_case "update to 2.0 through GRUB: slot a on trial, booted, blessed"
assign g1 tiny:2.0
if run_until g1 '.state == "healthy" and .version == "2.0" and .booted_slot == "a"' 30 &&
        [[ $(env_of g1) == *"slipway_order=a b"*"slipway_a=good"*"slipway_a_version=2.0"*"slipway_b=good"* ]] &&
        [ "$(slot_sha g1 b "$S1")" = "$R1" ] && [ "$(slot_sha g1 a "$S2")" = "$R2" ]; then
        t_ok
else
        t_fail "$(host_json g1 | jq -c '{state,version,booted_slot}') $(env_of g1) $(tail -5 "$D/g1.log")"
fi

t_case "3.0 fails its health check: slot b given up in grubenv, back on 2.0"
assign g1 tiny:3.0
if run_until g1 '.state == "rolled-back" and .version == "2.0" and .booted_slot == "a"' 30 &&
        [[ $(env_of g1) == *"slipway_order=a b"*"slipway_a=good"*"slipway_b=bad"*"slipway_b_version=3.0"* ]]; then
        t_ok
else
        t_fail "$(host_json g1 | jq -c '{state,version,message}') $(env_of g1) $(tail -5 "$D/g1.log")"
fi

t_case "status says in words which slot GRUB boots next and why"
out=$(agent g1 status 2>/dev/null)
if grep -q '^boot: *grub$' <<<"$out" &&
        grep -q '^boots next:  slot a (slot a is good and first in order)$' <<<"$out" &&
        grep -q '^grub slot a: 2.0 good$' <<<"$out" && grep -q '^grub slot b: 3.0 bad$' <<<"$out"; then
        t_ok
else
        t_fail "$out"
fi

# Killed at each step of an update to 2.0 (or, for marked-bad, to the broken
# 3.0), then the agent restarted or the power cut: the host boots a complete
# slot, never the one being written, and ends where it should. The
# grubenv-* points count the agent's grubenv writes in that run: 1 the
# drop, 2 staged, 3 the arm.
POINTS="entry-dropped grubenv-first-sector:1 grubenv-written:1 grubenv-first-sector:2 grubenv-written:2 entry-written
staged before-arm grubenv-first-sector:3 grubenv-written:3 before-reboot blessed marked-bad"
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
                register $h "52:54:00:04:00:$(printf %02x $n)"
                assign $h tiny:1.0
                run_until $h '.state == "healthy" and .version == "1.0"' 30 >/dev/null
                assign $h tiny:$to
                SLIPWAY_CRASH_AT=$point agent $h run >>"$D/$h.log" 2>&1
                rc=$?
                written_active=no
                [ "$(slot_sha $h b "$S1")" = "$R1" ] || written_active=yes
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
                if [ "$point" = marked-bad ]; then
                        agent_bg $h power-on
                        sleep 1
                        kill $APID 2>/dev/null
                        wait $APID 2>/dev/null
                        final="$final $(jq -r .slot "$D/$h/firmware.json")"
                        if [ $rc = 137 ] && [ $written_active = no ] && [ $ok = 0 ] && [ "$final" = "b b" ] &&
                                [[ $(env_of $h) == *"slipway_a=bad"* ]] &&
                                [ "$(grep -c 'staging tiny:3.0' "$D/$h.log")" = 1 ]; then
                                t_ok
                        else
                                t_fail "rc=$rc active written=$written_active booted=$final $(env_of $h) $(host_json $h | jq -c '{state,version,message}') $(tail -3 "$D/$h.log")"
                        fi
                        continue
                fi
                if [ $rc = 137 ] && [ $written_active = no ] && [[ $state == *'"ok":true'* ]] && [ $ok = 0 ] &&
                        [ "$final" = a ] && [ "$(slot_sha $h a "$S2")" = "$R2" ]; then
                        t_ok
                else
                        t_fail "rc=$rc active written=$written_active booted=$booted $state final=$final $(env_of $h) $(host_json $h | jq -c '{state,version,message}') $(tail -3 "$D/$h.log")"
                fi
        done
done

t_end
