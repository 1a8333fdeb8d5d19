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
#   6. power cuts under Secure Boot, the VM's qemu killed: 4 MiB into the
#      write of 2.1 into slot a (slot b boots, the agent stages again, the
#      host ends on 2.1 in slot a); and as the agent's write to grubenv that
#      blesses 2.2 in slot b lands (slot b boots again, the host ends
#      healthy on 2.2; grubenv, read from the disk, and the agent's own
#      `slipway-agent status`, which a health check in the file set prints
#      into the host's health report, say so);
#   7. BIOS: the same disk under SeaBIOS boots its good slot and updates
#      to 4.0.
#
# tests/e2e/grub.sh cuts the power too, with the busybox image: as the
# agent writes grubenv to offer the new slot, and while a slot is written
# under SeaBIOS. The cuts here add two updates and two Base boots.
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
[ -z "${BASE_E2E_DIR:-}" ] || t_reuse_dir "$BASE_E2E_DIR" '*.log' '*.img' '*.fd' srv store store-later img

. "$TOP/tests/e2e/base-lib.sh"
NS=slw-base-$$
SERVER_IP=10.98.0.1
URL=http://$SERVER_IP:8080
MAC=52:54:00:98:01:01
CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
CODE_SB=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
VARS_MS=/usr/share/OVMF/OVMF_VARS_4M.ms.fd

base_setup

# The later releases are built while the VM installs and boots 1.0, in a
# store of their own; only 1.0 is installed from bare metal, so they need
# no disk artifact. 3.0 carries base-broken; 2.1 and 2.2 are for the power
# cuts.
base_later 3.0 2.0 3.0 4.0 2.1 2.2 &
BPID=$!

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

base_later_pushed 2.0 3.0 4.0 2.1 2.2
base_rollout_files "Secure Boot: " "$D/sb.log"
base_fallback "Secure Boot: " "$D/sb.log"
base_files_change "Secure Boot: " "$D/sb.log" 2.0
base_files_back "Secure Boot: " "$D/sb.log" 2.0

# The power cuts, under Secure Boot. A cut is the VM's qemu killed with
# SIGKILL: nothing in the guest runs after it, nothing is synced. The cases
# watch the disk from outside the VM: grubenv, which the agent rewrites in
# place (docs/agent.md), so that it stays where it is on the disk; and how
# much qemu has written (/proc/PID/io), which tells how far the slot is.

# part NAME: "OFFSET SIZE" in bytes of the disk's partition NAME.
part() {
        sfdisk -J "$D/disk.img" | jq -r --arg n "$1" '.partitiontable | (.sectorsize // 512) as $s |
                .partitions[] | select(.name == $n) | "\(.start * $s) \(.size * $s)"'
}
# grubenv_find: the byte offset on the disk of the ESP's /slipway/grubenv,
# the one place on the ESP that holds what mtools reads as the file.
grubenv_find() {
        local esp size
        read -r esp size <<<"$(part esp)"
        [ -n "$size" ] && mcopy -n -i "$D/disk.img@@$esp" ::/slipway/grubenv "$D/grubenv.now" &&
                python3 - "$D/disk.img" "$esp" "$size" "$D/grubenv.now" <<'PY'
import sys
img, start, size, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), open(sys.argv[4], "rb").read()
with open(img, "rb") as f:
    f.seek(start)
    esp = f.read(size)
hits, at = [], esp.find(want)
while at >= 0:
    if at % 512 == 0:
        hits.append(start + at)
    at = esp.find(want, at + 1)
if len(want) < 1024 or len(hits) != 1:
    sys.exit(f"grubenv ({len(want)} bytes) is at {len(hits)} places on the ESP at byte {start}")
print(hits[0])
PY
}
# grubenv_has LINE...: the first sector of grubenv on the disk (all of
# Slipway's variables) has each LINE.
grubenv_has() {
        local s l
        s=$(dd if="$D/disk.img" bs=512 skip=$((ENV_AT / 512)) count=1 status=none | tr -d '\0') || return 1
        for l; do grep -q -x -- "$l" <<<"$s" || return 1; done
}
# qemu_of PID: the qemu process that PID (vm's) runs.
qemu_of() {
        local p c
        for p in "$1" $(t_descendants "$1"); do
                read -r c <"/proc/$p/comm" 2>/dev/null && [ "$c" = qemu-system-x86 ] && echo "$p" && return 0
        done
        return 1
}
# written PID: the bytes process PID has written so far.
written() {
        local k v
        while read -r k v; do [ "$k" = wchar: ] && echo "$v" && return 0; done <"/proc/$1/io"
        return 1
}
# soon SECONDS CMD...: polls CMD every 50 ms, for SECONDS at most.
soon() {
        local end=$((SECONDS + $1))
        shift
        until "$@"; do
                [ $SECONDS -lt $end ] || return 1
                sleep 0.05
        done
}
# power_cut PID: qemu PID killed, the VM gone.
power_cut() {
        kill -KILL "$1"
        vm_off
}
# sb_on LOG: the VM powered on again under Secure Boot, with the variable
# store it had.
sb_on() {
        vm "$1" -machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on \
                -drive "if=pflash,format=raw,readonly=on,file=$CODE_SB" -drive "if=pflash,format=raw,file=$D/vars.fd"
}
# first_slot LOG: the slot the first boot in LOG went to.
first_slot() { clean "$1" | grep -a -m1 -o 'SLIPWAY-INITRAMFS slot=[ab]' | cut -d= -f2; }
# agent_status: `slipway-agent status` in the guest, as a health check of
# the file set printed it at the last judgement.
agent_status() { host_json | jq -r '.health["45-agent-status.wanted"].output // empty'; }
# status_says REGEX: a line of agent_status matches REGEX.
status_says() { agent_status | grep -q -E "$1"; }
# sb_said LOG: the boot reports in LOG (one qemu, one firmware) say that
# Secure Boot is on, and none says otherwise.
sb_said() { log_has "$1" 'SLIPWAY-BASE firmware=uefi secure-boot=on' && ! log_has "$1" 'SLIPWAY-BASE firmware=.*=off'; }
printf '#!/bin/sh\nexec slipway-agent status 2>&1\n' >"$D/agent-status"

t_case "Secure Boot: power cut while slot a is written with 2.1; slot b boots, the agent stages again, ends on 2.1 in slot a"
t0=$(date +%s)
ok=1
cut=
ENV_AT=$(grubenv_find 2>"$D/grubenv.err") || ok=0
read -r slot_a _ <<<"$(part root-a)"
rootfs=$(ctl --json image show base:2.1 | jq -r '.artifacts[] | select(.type == "rootfs") | "\(.sha256) \(.size)"')
read -r sha size <<<"$rootfs"
qp=$(qemu_of "$QPID") || ok=0
# The file set gains a check that prints the agent's own status.
[ $ok = 1 ] && ! grubenv_has slipway_a=empty &&
        ctl files set e2e --hold /etc/motd="$D/motd-1" /etc/slipway/health.d/50-show-motd:0755="$D/show-motd" \
                /etc/slipway/health.d/45-agent-status.wanted:0755="$D/agent-status" >/dev/null &&
        id=$(ctl --json rollout start base:2.1 --files e2e | jq -r .id) || ok=0
# Slot a "empty" in grubenv (nothing boots it) comes right before its
# write; 4 MiB later the write is under way, with most of it to come.
w=0
grown() { w=$(($(written "$qp") - w0)) && [ "$w" -ge $((4 << 20)) ]; }
if [ $ok = 1 ] && soon 300 grubenv_has slipway_a=empty && w0=$(written "$qp") && soon 300 grown; then
        power_cut "$qp"
        cut="after $w bytes"
        # As the cut left it: slot a begun with 2.1's bytes, and not
        # bootable; slot b good and first.
        dd if="$D/disk.img" bs=4096 iflag=skip_bytes skip="$slot_a" count=1 status=none >"$D/slot-a.head"
        in_ns curl -sf -r 0-4095 "$URL/blobs/sha256/$sha" >"$D/rootfs.head" &&
                cmp -s "$D/slot-a.head" "$D/rootfs.head" && [ "$w" -lt "$size" ] &&
                grubenv_has slipway_a=empty slipway_b=good 'slipway_order=b a' && cut=mid-write
fi
vm_off
sb_on "$D/cut-slot.log"
[ -n "${id:-}" ] && until_true 900 eval '[ "$(rollout_state "$id")" = done ]'
# The health report, with the agent's status, follows "healthy" by a
# check-in; the boot report comes when the boot has ended.
until_true 120 status_says '^slot a: +2\.1 +<- running'
until_true 120 log_has "$D/cut-slot.log" 'SLIPWAY-BASE firmware='
if [ "$cut" = mid-write ] && [ "$(rollout_state "$id")" = done ] && [ "$(first_slot "$D/cut-slot.log")" = b ] &&
        host_is '.state == "healthy" and .version == "2.1" and .booted_slot == "a"' &&
        sb_said "$D/cut-slot.log" && status_says '^slot a: +2\.1 +<- running' && motd_was one; then
        t_ok "$(($(date +%s) - t0)) s; the cut $((w >> 20)) MiB into the write of the slot's $((size >> 20)) MiB"
else
        t_fail "ok=$ok cut: ${cut:-none} (the slot ${size:-?} bytes; $(cat "$D/grubenv.err")), rollout ${id:-} $(rollout_state "${id:-0}");" \
                "first boot after it: slot '$(first_slot "$D/cut-slot.log")', firmware '$(last_report "$D/cut-slot.log" firmware)';" \
                "$(host_line); health $(health | cut -c1-300); status: $(agent_status | tr '\n' ';' | cut -c1-400)"
fi

t_case "Secure Boot: power cut as the agent writes grubenv to bless 2.2 in slot b; slot b boots again, healthy on 2.2"
t0=$(date +%s)
cut=
at_cut=
qp=$(qemu_of "$QPID")
# The bless: slot b "good" with 2.2, written while the agent has yet to
# tell the server (the cut may land before or after it did).
if [ -n "$qp" ] && [ -n "$ENV_AT" ] && ctl host assign "$MAC" base:2.2 >/dev/null &&
        soon 900 grubenv_has slipway_b=good slipway_b_version=2.2; then
        power_cut "$qp"
        cut=1
        at_cut=$(host_json | jq -r .state)
fi
vm_off
sb_on "$D/cut-env.log"
until_true 600 host_is '.state == "healthy" and .version == "2.2" and .booted_slot == "b"'
until_true 120 status_says '^slot b: +2\.2 +<- running'
until_true 120 log_has "$D/cut-env.log" 'SLIPWAY-BASE firmware='
# What grubenv and the agent say of it: slot b good and first; the
# agent's status from the last judgement (after the cut, when its state
# still said "rebooting" there; before it otherwise).
if [ -n "$cut" ] && [ "$(first_slot "$D/cut-env.log")" = b ] &&
        host_is '.state == "healthy" and .version == "2.2" and .booted_slot == "b"' &&
        grubenv_has slipway_b=good slipway_b_version=2.2 'slipway_order=b a' &&
        sb_said "$D/cut-env.log" && { status_says '^booted: +slot b' && status_says '^slot b: +2\.2 +<- running' &&
        status_says '^grub slot b: 2\.2 (good|on trial)' || ! status_says '^phase: +(healthy|rebooting 2\.2)'; }; then
        judged=$(agent_status | grep -E '^(phase|grub slot b):' | tr -s ' ' | paste -s -d ',')
        t_ok "$(($(date +%s) - t0)) s; the server had '$at_cut' at the cut; the last judgement's status: $judged"
else
        t_fail "cut=${cut:-no} (server: '$at_cut'), first boot after it: slot '$(first_slot "$D/cut-env.log")'," \
                "firmware '$(last_report "$D/cut-env.log" firmware)'; $(host_line);" \
                "status: $(agent_status | tr '\n' ';' | cut -c1-600)"
fi

# The agent is idle on a healthy host: the power can go.
vm_off

t_case "BIOS: SeaBIOS boots the same disk through core.img, 2.2 from slot b"
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
