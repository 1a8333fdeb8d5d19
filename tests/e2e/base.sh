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
# no disk artifact. 3.0 carries base-broken.
base_later 3.0 2.0 3.0 4.0 &
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

base_later_pushed 2.0 3.0 4.0
base_rollout_files "Secure Boot: " "$D/sb.log"
base_fallback "Secure Boot: " "$D/sb.log"
base_files_change "Secure Boot: " "$D/sb.log" 2.0
base_files_back "Secure Boot: " "$D/sb.log" 2.0

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
