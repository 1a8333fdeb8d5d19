#!/bin/bash
# End to end with Slipway Base (images/base.conf: systemd as PID 1, the agent
# a systemd service) on a VM that boots through GRUB. The images are built
# with [boot] loader = grub and firmware = both, from the image's own
# packages (Debian's signed shim, signed GRUB and signed kernel; GRUB for
# BIOS), so that one disk boots under UEFI with Secure Boot and under
# SeaBIOS.
#
#   1. bring-up over PXE: qemu's iPXE (OVMF without Secure Boot) gets
#      slipwayd's install script from its dnsmasq, the image's initramfs
#      registers the host and writes 1.0 to the disk and the host's grubenv;
#   2. Secure Boot: the disk under OVMF's secboot firmware with Microsoft's
#      keys, enforcing as the guest sees it (the boot report's
#      secure-boot=on, the kernel's "Secure boot enabled"); the agent runs
#      as a systemd service and reports the host healthy;
#   3. a rollout of 2.0 with a file set (an /etc file, and a health check
#      that prints it from inside the guest) into slot b, blessed;
#   4. 3.0, whose service fails and whose required health check says so,
#      falls back to 2.0 through the GRUB back end by itself;
#   5. a change of the /etc file, held back, then rolled out: the guest's
#      /etc has the new content after the reboot; the rollout rolled back:
#      the old content is back;
#   6. BIOS: the same disk under SeaBIOS boots its good slot and updates
#      to 4.0.
#
# The power cuts (while a slot is written, while grubenv is written) are
# tests/e2e/grub.sh's, with the busybox image: the agent's cycle and the
# GRUB back end are the same code under systemd, and each cut costs a Base
# boot or two under TCG.
#
# Everything runs in a network namespace of its own: slipwayd with its
# dnsmasq on a bridge, the VM on a tap device of it. Each VM's serial
# console goes to $T_DIR/<phase>.log; the image's boot report
# (slipway.report=1: SLIPWAY-BASE lines) says what each boot came to.
# The releases after 1.0 are built while the VM installs and boots 1.0.
# BASE_E2E_DIR=DIR keeps the build cache and the keys there for a second
# run. Needs build/base-repo (make base-repo).
. "$(dirname "$0")/../lib.sh"
t_begin e2e-base
if [ -n "${BASE_E2E_DIR:-}" ]; then
        rm -rf "$T_DIR"
        T_DIR=$BASE_E2E_DIR
        export SLIPWAY_TEST_SUITE=$T_DIR
        mkdir -p "$T_DIR"
        rm -rf "$T_DIR"/*.log "$T_DIR"/*.img "$T_DIR"/*.fd "$T_DIR/srv" "$T_DIR/store" "$T_DIR/store-later" "$T_DIR/img"
fi

B=$BIN/slipway-build
SD=$BIN/slipwayd
CTL=$BIN/slipctl
D=$T_DIR
REPO=$TOP/build/base-repo
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
NS=slw-base-$$
SERVER_IP=10.98.0.1
URL=http://$SERVER_IP:8080
MAC=52:54:00:98:01:01
CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
CODE_SB=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
VARS_MS=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
START=$(date +%s)
QPID=
SPID=
BPID=
t_on_exit 't_stop "$QPID" "$BPID"; t_stop "$SPID"'

in_ns() { ip netns exec "$NS" "$@"; }
elapsed() { echo "$(($(date +%s) - START)) s"; }
ctl() { in_ns "$CTL" --server "$URL" --token "$TOKEN" "$@"; }
host_json() { ctl --json host show "$MAC" 2>/dev/null; }
host_is() { local j; j=$(host_json) && [ -n "$j" ] && jq -e "$1" <<<"$j" >/dev/null 2>&1; }
host_line() { host_json | jq -c '{state,version,booted_slot,message}'; }
rollout_state() { ctl --json rollout status "$1" | jq -r .state; }

# until_true SECONDS CMD...: polls CMD every second.
until_true() {
        local deadline=$(($(date +%s) + $1))
        shift
        while [ "$(date +%s)" -lt "$deadline" ]; do
                "$@" && return 0
                sleep 1
        done
        "$@"
}

# clean LOG: the console log without carriage returns.
clean() { tr -d '\r' 2>/dev/null <"$1"; }
log_has() { clean "$1" | grep -a -q "$2"; }
# boots LOG SLOT: how often the initramfs switched to SLOT in LOG.
boots() { clean "$1" | grep -a -c "SLIPWAY-INITRAMFS slot=$2"; }
# last_report LOG KEY: the value of "SLIPWAY-BASE KEY=..." in the last boot
# report of LOG.
last_report() { clean "$1" | sed -n "s/.*SLIPWAY-BASE $2=//p" | tail -n 1; }
# unit LOG NAME: "active=... enabled=..." of unit NAME in the last report.
unit() { clean "$1" | sed -n "s/.*SLIPWAY-BASE unit=$2 //p" | tail -n 1; }
# reports LOG: how many boot reports LOG has.
reports() { clean "$1" | grep -a -c 'SLIPWAY-BASE-END'; }

# base_def FILE VERSION [PACKAGE...]: images/base.conf at VERSION, booting
# through GRUB for both firmwares with the image's own shim and GRUBs, the
# site's key in the image (slipway-keys, for the install's check) and each
# PACKAGE; no "quiet", so that the kernel says whether Secure Boot is on,
# and the boot report on the console.
base_def() {
        local file=$1 version=$2
        shift 2
        sed -e "s|^baseurl = .*|baseurl = $REPO|" -e "s|^gpgkey = .*|gpgkey = $REPO/RPM-GPG-KEY-slipway-base|" \
                -e "s|^version = .*|version = $version|" \
                -e "s|^cmdline = .*|cmdline = console=ttyS0 no_timer_check slipway.report=1|" \
                -e "/^install = /s| systemd-boot-efi| shim-signed grub-efi-amd64-signed grub-pc-bin slipway-keys${*:+ $*}|" \
                -e 's/^\[boot\]/[boot]\nloader = grub\nfirmware = both/' "$TOP/images/base.conf" >"$file"
        printf '\n[repo keys]\nbaseurl = %s\ngpgkey = %s/RPM-GPG-KEY-slipway-keys\n' "$D/keys-repo" "$D/keys-repo" >>"$file"
}

t_case "a namespace with a bridge and a tap device"
if t_netns_add "$NS" 2>"$D/netns.err" && ip -n "$NS" link set lo up &&
        ip -n "$NS" link add br0 type bridge && ip -n "$NS" addr add "$SERVER_IP/24" dev br0 &&
        ip -n "$NS" link set br0 up && ip -n "$NS" tuntap add dev tap0 mode tap &&
        ip -n "$NS" link set tap0 master br0 && ip -n "$NS" link set tap0 up; then
        t_ok
else
        t_skip "cannot make network namespaces here ($(cat "$D/netns.err"))"
        t_end
        exit $?
fi

t_case "Base 1.0 with loader = grub, firmware = both, and its disk"
t0=$(date +%s)
mkdir -p "$D/keys"
[ -s "$D/k.key" ] || $B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
[ -d "$D/keys-repo" ] || "$TOP/images/keys-repo.sh" "$D/keys-repo" "$D/keys" >/dev/null
ok=1
if [ ! -s "$REPO/repodata/repomd.xml" ]; then
        ok=0
        echo "no repository in $REPO (make base-repo)" >"$D/build-1.0.log"
fi
base_def "$D/base-1.0.conf" 1.0
[ $ok = 1 ] && $B -q --store "$D/store" build --key "$D/k.key" "$D/base-1.0.conf" >"$D/build-1.0.log" 2>&1 || ok=0
[ $ok = 1 ] && $B -q --store "$D/store" export base:1.0 "$D/img" >/dev/null 2>&1 || ok=0
if [ $ok = 1 ] && jq -e '.loader == "grub" and .firmware == "both" and
        (.boot | has("shim") and has("grub") and has("grub-pc"))' "$D/img/manifest.json" >/dev/null; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "$(tail -q -n 5 "$D"/build-*.log)"
        t_end
        exit 1
fi

t_case "slipwayd with its dnsmasq on the bridge, the images pushed, 1.0 the default"
TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create e2e)
in_ns "$SD" --state-dir "$D/srv" --listen "$SERVER_IP:8080" --public-url "$URL" --trusted-keys "$D/keys" \
        --default-image base:1.0 --dhcp-mode full --dhcp-interface br0 --dhcp-range 10.98.0.100,10.98.0.150 \
        --checkin-interval 2 --heartbeat-timeout 300 --log-json no >>"$D/srv.log" 2>&1 &
SPID=$!
until_true 10 in_ns curl -sf -o /dev/null "$URL/v1/status"
in_ns "$B" -q --store "$D/store" push --token "$TOKEN" "$URL" base:1.0 >"$D/push-1.0.log" 2>&1 || ok=0
if [ $ok = 1 ] && [ "$(ctl --json image list | jq '.images | length')" = 1 ]; then t_ok; else
        t_fail "$(cat "$D"/push-*.log | tail -5); $(tail -5 "$D/srv.log")"; fi

# The later releases are built while the VM installs and boots 1.0, in a
# store of their own; only 1.0 is installed from bare metal, so they need
# no disk artifact. 3.0 carries base-broken.
(
        for v in 2.0 3.0 4.0; do
                if [ $v = 3.0 ]; then base_def "$D/base-$v.conf" $v base-broken; else base_def "$D/base-$v.conf" $v; fi
                $B -q --store "$D/store-later" build --key "$D/k.key" --no-disk "$D/base-$v.conf" \
                        >"$D/build-$v.log" 2>&1 || exit 1
        done
) &
BPID=$!

# vm LOG QEMU-ARGS...: powers the VM on: the disk first, then the network;
# its serial console goes to LOG. The agent's reboots stay in the same qemu.
vm() {
        local log=$1
        shift
        in_ns qemu-system-x86_64 -accel "$(qemu_accel)" -m 1024 -smp 1 -display none -monitor none \
                -serial "file:$log" \
                -drive "file=$D/disk.img,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0,bootindex=1 \
                -netdev "tap,id=n0,ifname=tap0,script=no,downscript=no" \
                -device "virtio-net-pci,netdev=n0,mac=$MAC,bootindex=2" "$@" </dev/null >"$log.qemu" 2>&1 &
        QPID=$!
}
# vm_off: the VM's power pulled (the guest is idle when the cases do it).
vm_off() {
        t_stop "$QPID"
        QPID=
}

t_case "bring-up over PXE: iPXE, the install script, 1.0 written with the host's grubenv"
t0=$(date +%s)
truncate -s 2G "$D/disk.img"
cp "$VARS" "$D/vars.fd"
# -no-reboot: qemu exits where the install reboots into the disk, which the
# next case boots under Secure Boot.
vm "$D/install.log" -no-reboot -drive "if=pflash,format=raw,readonly=on,file=$CODE" \
        -drive "if=pflash,format=raw,file=$D/vars.fd"
until_true 900 eval '! kill -0 "$QPID" 2>/dev/null'
vm_off
if log_has "$D/install.log" 'install: grubenv: slot a good with 1.0' &&
        log_has "$D/install.log" 'install: done, rebooting into slot a' &&
        host_is '.state == "installed" or .state == "rebooting" or .state == "healthy"'; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "$(host_line); $(clean "$D/install.log" | tail -n 15)"
fi

t_case "Secure Boot: shim, GRUB and kernel, all signed, boot 1.0 from slot a; enforcing in the guest"
t0=$(date +%s)
cp "$VARS_MS" "$D/vars.fd"
vm "$D/sb.log" -machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on \
        -drive "if=pflash,format=raw,readonly=on,file=$CODE_SB" -drive "if=pflash,format=raw,file=$D/vars.fd"
until_true 600 eval '[ "$(reports "$D/sb.log")" -ge 1 ]'
boot_s=$(($(date +%s) - t0))
if [ "$(last_report "$D/sb.log" firmware)" = "uefi secure-boot=on" ] &&
        log_has "$D/sb.log" 'Secure boot enabled' && log_has "$D/sb.log" 'SLIPWAY-INITRAMFS slot=a' &&
        [ "$(last_report "$D/sb.log" pid1)" = systemd ]; then
        t_ok "report after ${boot_s} s ($(last_report "$D/sb.log" time))"
else
        t_fail "firmware=$(last_report "$D/sb.log" firmware), pid1=$(last_report "$D/sb.log" pid1);" \
                "$(clean "$D/sb.log" | grep -a -i 'secure\|violation\|SLIPWAY' | tail -n 8)"
fi

t_case "Secure Boot: the agent runs as a systemd service, registered, and reports the host healthy"
t0=$(date +%s)
until_true 300 host_is '.state == "healthy" and .version == "1.0" and .booted_slot == "a"'
if [ "$(unit "$D/sb.log" slipway-agent)" = "active=active enabled=enabled" ] &&
        [ "$(last_report "$D/sb.log" state)" = running ] &&
        host_is '.state == "healthy" and .version == "1.0" and .booted_slot == "a"'; then
        t_ok "$(($(date +%s) - t0)) s after the report"
else
        t_fail "$(host_line); agent $(unit "$D/sb.log" slipway-agent), state" \
                "$(last_report "$D/sb.log" state) $(last_report "$D/sb.log" failed)"
fi

t_case "Base 2.0 to 4.0 (3.0 broken) built meanwhile, and pushed"
t0=$(date +%s)
ok=1
wait "$BPID" || ok=0
BPID=
for v in 2.0 3.0 4.0; do
        [ $ok = 1 ] || break
        in_ns "$B" -q --store "$D/store-later" push --token "$TOKEN" "$URL" "base:$v" >"$D/push-$v.log" 2>&1 || ok=0
done
if [ $ok = 1 ] && [ "$(ctl --json image list | jq '.images | length')" = 4 ]; then t_ok "waited $(($(date +%s) - t0)) s"; else
        t_fail "$(tail -q -n 5 "$D"/build-*.log "$D"/push-*.log)"; fi

# The file set: an /etc file, and a required health check that prints it,
# so that what the guest's /etc holds comes back in the host's health report.
printf '#!/bin/sh\ncat /etc/motd\n' >"$D/show-motd"
printf 'Slipway Base e2e: one ({{host.mac}})\n' >"$D/motd-1"
printf 'Slipway Base e2e: two ({{host.mac}})\n' >"$D/motd-2"
# motd_is TEXT: the guest's /etc/motd says TEXT, as the last health report
# has it (the report follows the agent's "healthy" by a check-in).
motd_is() { host_is ".health[\"50-show-motd\"].output | test(\"e2e: $1 \")"; }
motd_was() { until_true 120 motd_is "$1"; }
health() { host_json | jq -c .health; }

t_case "Secure Boot: a rollout of 2.0 with a file set stages slot b; GRUB tries it, the agent blesses it"
t0=$(date +%s)
ok=1
ctl host label "$MAC" e2e=base >/dev/null || ok=0
ctl files add e2e --hold --selector e2e=base /etc/motd="$D/motd-1" \
        /etc/slipway/health.d/50-show-motd:0755="$D/show-motd" >/dev/null || ok=0
id=$(ctl --json rollout start base:2.0 --files e2e | jq -r .id)
until_true 600 eval '[ "$(rollout_state "$id")" = done ]'
if [ $ok = 1 ] && [ "$(rollout_state "$id")" = done ] &&
        host_is '.state == "healthy" and .version == "2.0" and .booted_slot == "b"' &&
        [ "$(boots "$D/sb.log" b)" -ge 1 ] && motd_was one; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "ok=$ok rollout $id $(rollout_state "$id"); $(host_line); health $(health)"
fi

t_case "Secure Boot: 3.0's service fails, its health check says so; GRUB takes the host back to 2.0 in slot b"
t0=$(date +%s)
before=$(boots "$D/sb.log" a)
ctl host assign "$MAC" base:3.0 >/dev/null
until_true 600 host_is '.state == "rolled-back"'
until_true 300 host_is '.version == "2.0" and .booted_slot == "b"'
if host_is '.version == "2.0" and .booted_slot == "b"' &&
        host_is '.message | test("60-base-app.*base-app.service did not come up")' &&
        [ "$(boots "$D/sb.log" a)" -gt "$before" ]; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "$(host_line); $(clean "$D/sb.log" | tail -n 12)"
fi
# The host is to run 2.0, which it runs: nothing to do.
ctl host assign "$MAC" base:2.0 >/dev/null

t_case "Secure Boot: a change of /etc/motd, held back, rolled out: the guest's /etc has it after the reboot"
t0=$(date +%s)
before=$(boots "$D/sb.log" a)
ok=1
# The files given are the new version's: the health check goes along.
ctl files set e2e --hold /etc/motd="$D/motd-2" /etc/slipway/health.d/50-show-motd:0755="$D/show-motd" >/dev/null || ok=0
motd_is one || ok=0
id=$(ctl --json rollout start --files e2e | jq -r .id)
until_true 600 eval '[ "$(rollout_state "$id")" = done ]'
if [ $ok = 1 ] && [ "$(rollout_state "$id")" = done ] &&
        host_is '.state == "healthy" and .version == "2.0" and .booted_slot == "a"' &&
        [ "$(boots "$D/sb.log" a)" -gt "$before" ] && motd_was two; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "ok=$ok rollout $id $(rollout_state "$id"); $(host_line);" \
                "health $(health)"
fi

t_case "Secure Boot: the rollout rolled back: the old /etc/motd is back after the reboot"
t0=$(date +%s)
before=$(boots "$D/sb.log" b)
back=$(ctl --json rollout rollback "$id" | jq -r '.id // .rollback // empty')
[ -n "$back" ] && until_true 600 eval '[ "$(rollout_state "$back")" = done ]'
if [ -n "$back" ] && [ "$(rollout_state "$back")" = done ] &&
        host_is '.state == "healthy" and .version == "2.0" and .booted_slot == "b"' &&
        [ "$(boots "$D/sb.log" b)" -gt "$before" ] && motd_was one; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "rollback '$back' $(rollout_state "$back"); $(host_line);" \
                "health $(health)"
fi
# The agent is idle on a healthy host: the power can go.
vm_off

t_case "BIOS: SeaBIOS boots the same disk through core.img, 2.0 from slot b"
t0=$(date +%s)
vm "$D/bios.log"
until_true 600 eval '[ "$(reports "$D/bios.log")" -ge 1 ]'
if [ "$(last_report "$D/bios.log" firmware)" = "bios secure-boot=off" ] &&
        log_has "$D/bios.log" 'SLIPWAY-INITRAMFS slot=b' && ! log_has "$D/bios.log" 'BdsDxe' &&
        [ "$(unit "$D/bios.log" slipway-agent)" = "active=active enabled=enabled" ]; then
        t_ok "report after $(($(date +%s) - t0)) s"
else
        t_fail "firmware=$(last_report "$D/bios.log" firmware); $(clean "$D/bios.log" | grep -a 'SLIPWAY' | tail -n 8)"
fi

t_case "BIOS: the update to 4.0 stages slot a; GRUB tries it, the agent blesses it"
t0=$(date +%s)
ctl host assign "$MAC" base:4.0 >/dev/null
until_true 600 host_is '.state == "healthy" and .version == "4.0" and .booted_slot == "a"'
if host_is '.state == "healthy" and .version == "4.0" and .booted_slot == "a"' &&
        [ "$(boots "$D/bios.log" a)" -ge 1 ] && motd_was one; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "$(host_line); $(clean "$D/bios.log" | tail -n 12)"
fi
vm_off
echo "e2e-base: $(elapsed) in all"

t_end
