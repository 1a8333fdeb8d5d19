#!/bin/bash
# End to end with Slipway Base (images/base.conf: systemd as PID 1, the agent
# a systemd service) on a BIOS machine: SeaBIOS, GRUB's boot.img and
# core.img, the same images as tests/e2e/base.sh (loader = grub, firmware =
# both), from bare metal on.
#
#   1. bring-up over PXE under SeaBIOS: the blank disk does not boot, the
#      NIC's iPXE option ROM asks slipwayd's dnsmasq, which gives it the
#      boot URL; the install script's kernel and initramfs register the host
#      and write 1.0 with the host's grubenv; SeaBIOS then boots the disk;
#   2. a rollout of 2.0 with a file set (an /etc file, and a health check
#      that prints it from inside the guest) into slot b, blessed;
#   3. 3.0, whose service fails and whose required health check says so,
#      falls back to 2.0 through GRUB's counters by itself;
#   4. a power cut while 4.0 is written to slot a (once the slot holds the
#      first chunk of 4.0's rootfs); powered on again with the network
#      first, the VM gets slipwayd's script for an installed host, whose
#      iPXE boots the disk; GRUB boots 2.0 from slot b, the agent goes on
#      staging and the host ends on 4.0 in slot a;
#   5. a power cut as the agent writes grubenv to offer slot b with 5.0 (it
#      reports "rebooting" right before): the grubenv left on the disk is a
#      whole block, the VM boots the slot that block names, and the host
#      ends on 5.0 in slot b;
#   6. a change of the /etc file, held back, then rolled out: the guest's
#      /etc has it after the reboot; the rollout rolled back: the old
#      content is back.
#
# The namespace, slipwayd and the helpers are tests/e2e/base-lib.sh's; this
# suite's namespace, subnet and MAC are its own, so it runs beside the other
# e2e suites. SeaBIOS and iPXE print on the serial console too
# (-machine graphics=off: SeaBIOS's serial console), so each VM's log in
# $T_DIR/<phase>.log shows the firmware, iPXE, GRUB, the kernel and the
# image's boot report (slipway.report=1). BASE_BIOS_E2E_DIR=DIR keeps the
# build cache and the keys there for a second run. Needs build/base-repo
# (make base-repo).
. "$(dirname "$0")/../lib.sh"
t_begin e2e-base-bios
[ -z "${BASE_BIOS_E2E_DIR:-}" ] || t_reuse_dir "$BASE_BIOS_E2E_DIR" '*.log' '*.img' srv store store-later 'img*'

. "$TOP/tests/e2e/base-lib.sh"
NS=slw-bbios-$$
SERVER_IP=10.94.0.1
URL=http://$SERVER_IP:8080
MAC=52:54:00:94:01:01

# bios LOG: powers the VM on under SeaBIOS (qemu's default firmware), with
# SeaBIOS's serial console on.
bios() { vm "$1" -machine graphics=off; }
# healthy_on VERSION SLOT: the host reports healthy on VERSION in SLOT.
healthy_on() { host_is ".state == \"healthy\" and .version == \"$1\" and .booted_slot == \"$2\""; }
# part_start NAME: the first sector of partition NAME of the VM's disk.
part_start() { sgdisk -p "$D/disk.img" | awk -v n="$1" '$NF == n { print $2 }'; }
# slot_head START FILE: the first 256 KiB (one chunk of the agent's slot
# write) of the partition at sector START, into FILE.
slot_head() { dd if="$D/disk.img" of="$2" bs=512 skip="$1" count=512 status=none; }
# slot_begun START HEAD: the partition at sector START begins with HEAD.
slot_begun() { slot_head "$1" "$D/head-now" && cmp -s "$D/head-now" "$2"; }
# grub_next ENV: the slot GRUB boots from the grubenv ENV, by the rule of
# common/grubcfg.h: the first in slipway_order that is good, or on trial
# with tries left; when none is, a unless it is empty, else b.
grub_next() {
        local s state tries
        for s in $(sed -n 's/^slipway_order=//p' "$1"); do
                state=$(sed -n "s/^slipway_$s=//p" "$1")
                tries=$(sed -n "s/^slipway_${s}_tries=//p" "$1")
                if [ "$state" = good ] || { [ "$state" = trial ] && [ "${tries:-0}" -gt 0 ]; }; then
                        echo "$s"
                        return
                fi
        done
        [ "$(sed -n 's/^slipway_a=//p' "$1")" != empty ] && echo a || echo b
}

base_setup

# The later releases, built while the VM installs and boots 1.0; 3.0
# carries base-broken.
base_later 3.0 2.0 3.0 4.0 5.0 &
BPID=$!

t_case "bring-up over PXE under SeaBIOS: the blank disk, iPXE, the install script, 1.0 written with the grubenv"
t0=$(date +%s)
truncate -s 2G "$D/disk.img"
LOG=$D/bios.log
bios "$LOG"
until_true 900 log_has "$LOG" 'install: done, rebooting into slot a\|install failed\|Slipway: boot failed'
if log_has "$LOG" 'SeaBIOS (version' && log_has "$LOG" 'Boot failed: not a bootable disk' &&
        log_has "$LOG" 'Booting from ROM' && log_has "$LOG" 'Slipway: installing base 1.0' &&
        log_has "$LOG" 'install: grubenv: slot a good with 1.0' &&
        log_has "$LOG" 'install: done, rebooting into slot a'; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "$(host_line); $(clean "$LOG" | grep -a -v '^\s*$' | tail -n 15)"
fi

t_case "SeaBIOS boots the installed disk through core.img: 1.0 from slot a, the agent's service reports it healthy"
t0=$(date +%s)
until_true 600 eval '[ "$(reports "$LOG")" -ge 1 ]'
report_s=$(($(date +%s) - t0))
until_true 300 healthy_on 1.0 a
if [ "$(last_report "$LOG" firmware)" = "bios secure-boot=off" ] && [ "$(boots "$LOG" a)" = 1 ] &&
        [ "$(last_report "$LOG" pid1)" = systemd ] &&
        [ "$(unit "$LOG" slipway-agent)" = "active=active enabled=enabled" ] &&
        healthy_on 1.0 a; then
        t_ok "report after ${report_s} s, healthy after $(($(date +%s) - t0)) s"
else
        t_fail "firmware=$(last_report "$LOG" firmware), agent $(unit "$LOG" slipway-agent); $(host_line);" \
                "$(clean "$LOG" | grep -a 'SLIPWAY' | tail -n 8)"
fi

base_later_pushed 2.0 3.0 4.0 5.0
base_rollout_files "" "$LOG"
base_fallback "" "$LOG"

t_case "power cut while slot a is written with 4.0; up again network first, slipwayd sends it to its disk, GRUB boots 2.0 from slot b; the host finishes the update"
t0=$(date +%s)
ok=1
size=0
# Slot a still holds 3.0: the cut comes once it begins with 4.0's first
# chunk, and must find the rest of the slot not yet written.
$B -q --store "$D/store-later" export base:4.0 "$D/img-4.0" >/dev/null 2>&1 || ok=0
root_a=$(part_start root-a)
if [ $ok = 1 ] && [ -n "$root_a" ] && head -c 262144 "$D/img-4.0/rootfs.erofs" >"$D/head-4.0" &&
        ! slot_begun "$root_a" "$D/head-4.0"; then
        size=$(stat -c %s "$D/img-4.0/rootfs.erofs")
else
        ok=0
fi
cut=0
[ $ok = 1 ] && ctl host assign "$MAC" base:4.0 >/dev/null && cut_when slot_begun "$root_a" "$D/head-4.0" && cut=1
# How much of 4.0 the slot held at the cut: cmp names the first byte that differs.
same=$(cmp "$D/img-4.0/rootfs.erofs" <(tail -c +$((root_a * 512 + 1)) "$D/disk.img" | head -c "$size") 2>/dev/null |
        sed -n 's/.* byte \([0-9]*\),.*/\1/p')
LOG=$D/bios-cut-slot.log
# Network first, as some racks boot: the iPXE script of an installed host
# boots the BIOS's first disk (sanboot --drive 0x80).
[ $cut = 1 ] && VM_NET_FIRST=1 bios "$LOG"
# An iPXE script that fails says so before it asks again, for ever.
until_true 900 eval 'healthy_on 4.0 a || log_has "$LOG" "Slipway: boot failed"'
if [ $cut = 1 ] && [ -n "$same" ] && log_has "$LOG" 'Slipway: h-[0-9a-f]* boots from its disk' &&
        [ "$(first_boot "$LOG")" = b ] &&
        healthy_on 4.0 a && [ "$(boots "$LOG" a)" -ge 1 ]; then
        t_ok "$(($(date +%s) - t0)) s; the cut came with $(((same - 1) >> 20)) of $((size >> 20)) MiB in the slot"
else
        t_fail "ok=$ok cut=$cut, 4.0 in the slot up to byte '$same' of $size, first boot after the cut:" \
                "slot '$(first_boot "$LOG")'; $(host_line); $(clean "$LOG" | tail -n 10)"
fi

t_case "power cut as the agent writes grubenv to offer slot b with 5.0: the VM boots the slot grubenv names, the host finishes the update"
# The agent reports "rebooting" right before it writes grubenv to offer the
# new slot: the cut lands before, during or after that write. Whichever,
# grubenv is a whole block and names a slot with a complete image.
t0=$(date +%s)
ctl host assign "$MAC" base:5.0 >/dev/null
cut=0
cut_when host_is '.state == "rebooting"' && cut=1
esp=$(($(part_start esp) * 512))
rm -f "$D/grubenv-cut"
mcopy -n -i "$D/disk.img@@$esp" ::/slipway/grubenv "$D/grubenv-cut" 2>/dev/null
next=
if [ "$(stat -c %s "$D/grubenv-cut" 2>/dev/null)" = 1024 ] && head -n 1 "$D/grubenv-cut" | grep -q '^# GRUB Environment Block$'; then
        next=$(grub_next "$D/grubenv-cut")
fi
env_line=$(grep '^slipway_' "$D/grubenv-cut" 2>/dev/null | tr '\n' ' ')
LOG=$D/bios-cut-env.log
[ $cut = 1 ] && bios "$LOG"
until_true 900 healthy_on 5.0 b
if [ $cut = 1 ] && [ -n "$next" ] && [ "$(first_boot "$LOG")" = "$next" ] &&
        healthy_on 5.0 b; then
        t_ok "$(($(date +%s) - t0)) s; after the cut grubenv said: ${env_line}; the first boot: slot $next"
else
        t_fail "cut=$cut, grubenv after the cut: '${env_line}' (GRUB's choice '$next')," \
                "first boot: slot '$(first_boot "$LOG")'; $(host_line); $(clean "$LOG" | tail -n 10)"
fi

base_files_change "" "$LOG" 5.0
base_files_back "" "$LOG" 5.0
vm_off
echo "e2e-base-bios: $(elapsed) in all"

t_end
