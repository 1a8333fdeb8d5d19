#!/bin/bash
# End to end on real VMs (qemu, OVMF, virtio) in a network namespace of its
# own: slipwayd with its dnsmasq on a bridge, two VMs with empty disks on tap
# devices of that bridge.
#
#   1. bring-up: both VMs PXE-boot, register, install tiny 1.0 to disk,
#      reboot from disk into slot a and report healthy;
#   2. a rollout of 2.0 (canary 1, then the rest, at most 1 down): each VM
#      stages into slot b, reboots under its lease, blesses; never both down;
#   3. a rollout of 3.0, whose required health check fails: the canary falls
#      back to 2.0 by itself, the rollout pauses, the other VM stays on 2.0;
#   4. power cut: a VM is killed while it writes a slot; restarted, it boots
#      its last good slot and finishes the update;
#   5. identity: through all of the above each VM kept its machine-id, the
#      hostname, the file under /etc and the SSH host key it made on its
#      first boot (tiny-identity), on an /etc overlay.
#
# Assertions come from slipwayd's API and from each VM's serial console
# ($T_DIR/vmN.log). E2E_KEEP=1 keeps the directory and the namespace's
# processes' logs; E2E_PHASES="1 2" runs only those phases.
. "$(dirname "$0")/../lib.sh"
t_begin e2e
# development: reuse the images built in E2E_DIR by an earlier run
[ -z "${E2E_DIR:-}" ] || t_reuse_dir "$E2E_DIR" 'vm*' state slipwayd.log store

B=$BIN/slipway-build
SD=$BIN/slipwayd
CTL=$BIN/slipctl
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
NS=slw-e2e-$$
SERVER_IP=10.97.0.1
URL=http://$SERVER_IP:8080
PHASES=${E2E_PHASES:-1 2 3 4}
MACS=(52:54:00:97:00:01 52:54:00:97:00:02)
declare -a QPIDS=()
START=$(date +%s)

# The VMs, then slipwayd, which stops its dnsmasq; t_exit then stops
# whatever is left in the namespace and deletes it.
cleanup() {
        t_stop "${QPIDS[@]}"
        t_stop "${SPID:-}"
        [ "${E2E_KEEP:-0}" = 1 ] && echo "e2e: kept $D"
}
t_on_exit cleanup

in_ns() { ip netns exec "$NS" "$@"; }
elapsed() { echo "$(($(date +%s) - START)) s"; }
phase() { [[ " $PHASES " == *" $1 "* ]]; }
ctl() { in_ns "$CTL" --server "$URL" --token "$TOKEN" "$@"; }
host_json() { ctl --json host show "$1" 2>/dev/null; }

# host_is MAC JQ-EXPR: the host's API record satisfies the expression.
host_is() {
        local j
        j=$(host_json "$1") && [ -n "$j" ] && jq -e "$2" <<<"$j" >/dev/null 2>&1
}

# vm_start N: powers VM N on (disk first, then the network, as racks are
# usually set up); its serial console appends to $D/vmN.log.
vm_start() {
        local n=$1
        [ -e "$D/vm$n.img" ] || truncate -s 1G "$D/vm$n.img"
        [ -e "$D/vm$n.vars" ] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$D/vm$n.vars"
        echo "=== power on at $(elapsed)" >>"$D/vm$n.log"
        ip netns exec "$NS" qemu-system-x86_64 -accel "$(qemu_accel)" -m 768 -smp 1 -display none -monitor none \
                -serial "file:$D/vm$n.serial.$(date +%s%N)" \
                -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
                -drive "if=pflash,format=raw,file=$D/vm$n.vars" \
                -drive "file=$D/vm$n.img,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0,bootindex=1 \
                -netdev "tap,id=n0,ifname=tap$n,script=no,downscript=no" \
                -device "virtio-net-pci,netdev=n0,mac=${MACS[$n]},bootindex=2" \
                </dev/null >"$D/vm$n.qemu" 2>&1 &
        QPIDS[$n]=$!
}

# console N: everything VM N printed, over all its power-ons.
console() { cat "$D"/vm"$1".serial.* 2>/dev/null | tr -d '\r'; }

# vm_kill N: pulls VM N's power.
vm_kill() {
        [ -n "${QPIDS[$1]:-}" ] && kill -9 "${QPIDS[$1]}" 2>/dev/null
        wait "${QPIDS[$1]}" 2>/dev/null
        QPIDS[$1]=
}

t_case "a namespace with a bridge and two tap devices"
if t_netns_add "$NS" 2>"$D/netns.err" && ip -n "$NS" link set lo up &&
        ip -n "$NS" link add br0 type bridge && ip -n "$NS" addr add "$SERVER_IP/24" dev br0 &&
        ip -n "$NS" link set br0 up &&
        for n in 0 1; do
                ip -n "$NS" tuntap add dev "tap$n" mode tap && ip -n "$NS" link set "tap$n" master br0 &&
                        ip -n "$NS" link set "tap$n" up || exit 1
        done; then
        t_ok
else
        t_skip "cannot make network namespaces here ($(cat "$D/netns.err"))"
        t_end
        exit $?
fi

t_case "images 1.0 to 4.0 (3.0 broken) with the agent and the site's key"
mkdir -p "$D/keys"
[ -s "$D/k.key" ] || $B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
"$TOP/images/keys-repo.sh" "$D/keys-repo" "$D/keys" >/dev/null
define() { # define FILE VERSION [EXTRA-PACKAGE...]
        tiny_def "$@" slipway-keys tiny-identity
        printf '\n[repo keys]\nbaseurl = %s\ngpgkey = %s/RPM-GPG-KEY-slipway-keys\n' "$D/keys-repo" "$D/keys-repo" >>"$1"
}
ok=1
for v in 1.0 2.0 3.0 4.0; do
        # each release carries its own tiny-base; 3.0 also tiny-broken, whose required health check fails
        if [ "$v" = 3.0 ]; then define "$D/tiny-$v.conf" "$v" tiny-broken; else define "$D/tiny-$v.conf" "$v"; fi
        # only 1.0 is installed from bare metal: the others need no disk artifact
        args=("$D/tiny-$v.conf")
        [ "$v" != 1.0 ] && args=(--no-disk "${args[@]}")
        $B -q --store "$D/store" build --key "$D/k.key" "${args[@]}" >"$D/build-$v.log" 2>&1 || ok=0
done
[ $ok = 1 ] && t_ok "$(elapsed)" || t_fail "$(tail -q -n 5 "$D"/build-*.log)"

t_case "slipwayd with its dnsmasq on the bridge, 1.0 published as the default image"
TOKEN=$("$SD" --state-dir "$D/state" --log-json no token create e2e)
ip netns exec "$NS" "$SD" --state-dir "$D/state" --listen "$SERVER_IP:8080" --public-url "$URL" --trusted-keys "$D/keys" \
        --default-image tiny:1.0 --dhcp-mode full --dhcp-interface br0 --dhcp-range 10.97.0.100,10.97.0.150 \
        --checkin-interval 5 --heartbeat-timeout 60 --log-json no --log-level debug >>"$D/slipwayd.log" 2>&1 &
SPID=$!
until_true 10 in_ns curl -sf -o /dev/null "$URL/v1/status"
for v in 1.0 2.0 3.0 4.0; do
        in_ns "$B" -q --store "$D/store" push --token "$TOKEN" "$URL" "tiny:$v" >"$D/push-$v.log" 2>&1 || ok=0
done
if [ $ok = 1 ] && [ "$(ctl --json image list | jq '.images | length')" = 4 ]; then t_ok; else
        t_fail "$(cat "$D"/push-*.log | tail -5); $(tail -5 "$D/slipwayd.log")"; fi

if phase 1; then
        t_case "bring-up: two empty VMs PXE-boot, install 1.0 and come up healthy from disk"
        vm_start 0
        vm_start 1
        for n in 0 1; do
                until_true 600 host_is "${MACS[$n]}" '.state == "healthy" and .version == "1.0"'
        done
        if host_is "${MACS[0]}" '.state == "healthy" and .version == "1.0" and .booted_slot == "a"' &&
                host_is "${MACS[1]}" '.state == "healthy" and .version == "1.0" and .booted_slot == "a"' &&
                [ "$(console 0 | grep -c 'SLIPWAY-INITRAMFS slot=a')" -ge 1 ] &&
                console 0 | grep -q 'install: done, rebooting into slot a'; then
                t_ok "$(elapsed)"
        else
                t_fail "$(host_json "${MACS[0]}" | jq -c '{state,version,message}'); $(console 0 | tail -15)"
        fi
fi

# max_leases: the most reboot leases held at once, replaying the audit log's
# grants and releases in order (a renewal is a grant to the holder).
max_leases() {
        ctl --json audit --action lease --limit 1000 | jq -r '.entries[] | "\(.action) \(.target)"' |
                awk '$1 == "lease.grant" { held[$2] = 1 } $1 == "lease.release" { delete held[$2] }
                     { n = 0; for (h in held) n++; if (n > max) max = n } END { print max + 0 }'
}

# rollout_state ID: the rollout's state.
rollout_state() { ctl --json rollout status "$1" | jq -r .state; }

# boots N SLOT: how many times VM N's initramfs switched to SLOT, all power-ons.
boots() { console "$1" | grep -c "SLIPWAY-INITRAMFS slot=$2"; }

if phase 2; then
        t_case "rollout of 2.0: canary, then the other VM, at most 1 down, each into slot b"
        ok=1
        for n in 0 1; do ctl host label "${MACS[$n]}" rack=r1 service=tiny >/dev/null || ok=0; done
        ctl budget set rack --max-unavailable 1 >/dev/null || ok=0
        id=$(ctl --json rollout start tiny:2.0 --waves 1,100% --on-failure pause | jq -r .id)
        until_true 600 eval '[ "$(rollout_state "$id")" = done ]'
        if [ $ok = 1 ] && [ "$(rollout_state "$id")" = done ] &&
                host_is "${MACS[0]}" '.state == "healthy" and .version == "2.0" and .booted_slot == "b"' &&
                host_is "${MACS[1]}" '.state == "healthy" and .version == "2.0" and .booted_slot == "b"' &&
                [ "$(boots 0 b)" -ge 1 ] && [ "$(boots 1 b)" -ge 1 ] && [ "$(max_leases)" = 1 ]; then
                t_ok "$(elapsed)"
        else
                t_fail "rollout $id $(rollout_state "$id"), most leases at once $(max_leases);" \
                        "$(for n in 0 1; do host_json "${MACS[$n]}" | jq -c '{state,version,booted_slot,message}'; done)"
        fi
fi

if phase 3; then
        t_case "rollout of 3.0: the canary fails its health check, falls back to 2.0, the rollout pauses"
        id=$(ctl --json rollout start tiny:3.0 --waves 1,100% --on-failure pause | jq -r .id)
        until_true 600 eval '[ "$(rollout_state "$id")" = paused ]'
        canary=
        for n in 0 1; do host_is "${MACS[$n]}" '.state == "rolled-back"' && canary=$n; done
        other=$((1 - ${canary:-0}))
        # The failure is reported before the canary reboots back into slot b.
        [ -n "$canary" ] && until_true 300 host_is "${MACS[$canary]}" '.version == "2.0" and .booted_slot == "b"'
        if [ "$(rollout_state "$id")" = paused ] && [ -n "$canary" ] &&
                host_is "${MACS[$canary]}" '.version == "2.0" and .booted_slot == "b"' &&
                host_is "${MACS[$canary]}" '.message | test("60-tiny-service.*did not come up")' &&
                host_is "${MACS[$other]}" '.state == "healthy" and .version == "2.0" and .booted_slot == "b"' &&
                [ "$(boots "$canary" a)" -ge 2 ] && [ "$(boots "$other" a)" = 1 ] &&
                ctl --json rollout status "$id" | jq -e '.reason | test("fail")' >/dev/null; then
                t_ok "$(elapsed)"
        else
                t_fail "rollout $id $(ctl --json rollout status "$id" | jq -c '{state,reason}');" \
                        "$(for n in 0 1; do host_json "${MACS[$n]}" | jq -c '{state,version,booted_slot,message}'; done)"
        fi
        ctl rollout abort "$id" >/dev/null
fi

if phase 4; then
        t_case "power cut while a slot is written: the VM boots its good slot and finishes the update"
        # The canary, whose ESP has seen the most versions.
        n=${canary:-1}
        ctl host assign "${MACS[$n]}" tiny:4.0 >/dev/null
        cut=0
        for ((i = 0; i < 3000; i++)); do
                if console "$n" | grep -q 'staging tiny:4.0'; then
                        vm_kill "$n"
                        cut=1
                        break
                fi
                sleep 0.1
        done
        before=$(boots "$n" b)
        vm_start "$n"
        until_true 300 host_is "${MACS[$n]}" '.state == "healthy" and .version == "4.0"'
        last=$(ls "$D"/vm$n.serial.* | tail -n 1)
        first_boot=$(grep -a -m1 -o 'SLIPWAY-INITRAMFS slot=[ab]' "$last")
        if [ $cut = 1 ] && [ "$first_boot" = "SLIPWAY-INITRAMFS slot=b" ] &&
                host_is "${MACS[$n]}" '.state == "healthy" and .version == "4.0" and .booted_slot == "a"'; then
                t_ok "$(elapsed); after the cut: $(grep -a -o 'resuming[^\r]*\|staging tiny:4.0[^\r]*' "$last" | head -n 1)"
        else
                t_fail "cut=$cut, first boot after it: '$first_boot';" \
                        "$(host_json "${MACS[$n]}" | jq -c '{state,version,booted_slot,message}'); $(tr -d '\r' <"$last" | tail -n 12)"
        fi
fi

if phase 2 || phase 3 || phase 4; then
        t_case "identity: each VM kept its machine-id, hostname, /etc file and SSH host key across every switch"
        ok=1 why=
        for n in 0 1; do
                ids=$(console "$n" | grep -a -o 'SLIPWAY-IDENTITY .*' | sort -u)
                mids=$(console "$n" | grep -a -o 'SLIPWAY-INITRAMFS etc=[a-z]* machine-id=[0-9a-f]*' | sort -u)
                # Boots from disk: at least one from each slot.
                if [ "$(echo "$ids" | wc -l)" != 1 ] || [ "$(echo "$mids" | wc -l)" != 1 ] ||
                        [[ "$mids" != "SLIPWAY-INITRAMFS etc=overlay machine-id="* ]] ||
                        [[ "$ids" != *"machine-id=${mids##*=} "* ]] || [[ "$ids" != *"hostname=tiny-"* ]] ||
                        [ "$(boots "$n" a)" -lt 1 ] || [ "$(boots "$n" b)" -lt 1 ]; then
                        ok=0
                        why+="VM $n: $(echo "$ids" "$mids" | tr '\n' ';') boots a $(boots "$n" a), b $(boots "$n" b); "
                fi
                mid[$n]=${mids##*=}
        done
        [ "${mid[0]}" != "${mid[1]}" ] || { ok=0; why+="both VMs have machine-id ${mid[0]}"; }
        if [ $ok = 1 ]; then
                t_ok "$(console 0 | grep -a -c 'SLIPWAY-IDENTITY') and $(console 1 | grep -a -c 'SLIPWAY-IDENTITY') boots"
        else
                t_fail "$why"
        fi
fi

t_end
