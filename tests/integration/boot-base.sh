#!/bin/bash
# Builds Slipway Base (images/base.conf: systemd as PID 1) with its GPT disk
# and boots the disk under OVMF through systemd-boot. slipway.report=1 on the
# kernel command line makes the image print a report of its boot on the
# serial console once systemd is done (SLIPWAY-BASE lines, see
# images/specs/base-release.spec); the cases check that report. A second
# boot of the same disk, with agent state put on the var partition
# beforehand, shows the agent running as a service on a registered host,
# and the host keeping the identity its first boot made.
# Needs build/base-repo (make base-repo).
. "$(dirname "$0")/../lib.sh"
t_begin boot-base

B=$BIN/slipway-build
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$T_DIR/cache
D=$T_DIR
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
REPO=$TOP/build/base-repo

sed -e "s|^baseurl = .*|baseurl = $REPO|" -e "s|^gpgkey = .*|gpgkey = $REPO/RPM-GPG-KEY-slipway-base|" \
        -e "s|^cmdline = .*|& slipway.report=1 slipway.poweroff=1|" "$TOP/images/base.conf" >"$D/base.conf"
$B keygen "$D/k.key" "$D/k.pub" >/dev/null

t_case "build base with the disk image"
start=$(date +%s)
if [ ! -s "$REPO/repodata/repomd.xml" ]; then
        t_fail "no repository in $REPO (make base-repo)"
elif id=$($B --store "$D/store" build --key "$D/k.key" --lock "$D/base.lock" "$D/base.conf" 2>"$D/build.log") &&
        $B --store "$D/store" export "$id" "$D/img" >/dev/null && [ -s "$D/img/disk.img" ]; then
        t_ok "$(($(date +%s) - start)) s, rootfs $(($(stat -c %s "$D/img/rootfs.erofs") / 1048576)) MiB erofs"
else
        t_fail "$(tail -5 "$D/build.log")"
fi

t_case "UEFI boot of the disk reaches the end of the boot report"
cp "$D/img/disk.img" "$D/uefi.img" 2>/dev/null
cp "$OVMF_VARS" "$D/vars.fd"
start=$(date +%s)
# 1 GiB: the initramfs and systemd's start fit in less, but TCG is slow to
# page. The virtio NIC gets a DHCP lease from qemu, which is what
# systemd-networkd-wait-online (wanted by the agent's unit) waits for.
if qemu_until SLIPWAY-BASE-END 300 "$D/uefi.log" -m 1024 \
        -drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE" -drive "if=pflash,format=raw,file=$D/vars.fd" \
        -drive "file=$D/uefi.img,format=raw,if=virtio" -nic user,model=virtio-net-pci; then
        t_ok "$(($(date +%s) - start)) s; $(sed -n 's/.*SLIPWAY-BASE time=//p' "$D/uefi.log" | tr -d '\r')"
else
        t_fail "no report; console: $(tail -c 1500 "$D/uefi.log")"
fi

# report KEY [LOG]: the value of "SLIPWAY-BASE KEY=..." in the console log.
report() {
        sed -n "s/.*SLIPWAY-BASE $1=//p" "${2:-$D/uefi.log}" | tr -d '\r' | head -n1
}
# unit NAME [LOG]: "active=... enabled=..." of the report's line for unit NAME.
unit() {
        sed -n "s/.*SLIPWAY-BASE unit=$1 //p" "${2:-$D/uefi.log}" | tr -d '\r' | head -n1
}

t_case "PID 1 is systemd"
if [ "$(report pid1)" = systemd ]; then t_ok; else t_fail "pid1=$(report pid1)"; fi

t_case "systemctl is-system-running says running, no unit failed"
state=$(report state) failed=$(report failed)
if [ "$state" = running ] && [ -z "${failed// /}" ] && ! grep -q -a 'FAILED' "$D/uefi.log"; then
        t_ok
else
        t_fail "state=$state failed=$failed; $(grep -a 'FAILED\|SLIPWAY-BASE log' "$D/uefi.log" | head -5)"
fi

t_case "journald, udevd, networkd, resolved, dbus and sshd are active"
bad=""
for u in systemd-journald systemd-udevd systemd-networkd systemd-resolved dbus ssh; do
        case "$(unit $u)" in active=active\ *) ;; *) bad="$bad $u: $(unit $u);" ;; esac
done
if [ -z "$bad" ]; then t_ok; else t_fail "$bad"; fi

t_case "slipway-agent.service is enabled, and waits for the host to be registered"
# An unregistered host has no server to ask: the unit's condition
# (/var/lib/slipway/agent.json) keeps it from starting and failing.
if [ "$(unit slipway-agent)" = "active=inactive enabled=enabled" ] && [ "$(report agent-condition)" = no ]; then
        t_ok
else
        t_fail "$(unit slipway-agent), condition $(report agent-condition)"
fi

t_case "slipway-apply-files.service is enabled, and skipped on a host not registered"
if [ "$(unit slipway-apply-files)" = "active=inactive enabled=enabled" ]; then t_ok; else
        t_fail "$(unit slipway-apply-files)"; fi

t_case "DNS: /etc/resolv.conf is resolved's stub, which has the server DHCP gave"
# qemu's user network hands out 10.0.2.3 as its DNS server
resolv=$(report resolv) dns=$(report dns)
if [[ $resolv == "../run/systemd/resolve/stub-resolv.conf 127.0.0.53"* ]] && [[ " $dns " == *" 10.0.2.3 "* ]]; then
        t_ok
else
        t_fail "resolv.conf: '$resolv', resolved's servers: '$dns'"
fi

t_case "the first boot's journal is kept on /var"
if [ "$(report journal)" -ge 1 ] 2>/dev/null; then t_ok; else t_fail "journal files on /var: '$(report journal)'"; fi

t_case "sshd has an ed25519 host key the first boot made"
if [[ $(report ssh-key) == SHA256:* ]]; then t_ok "$(report ssh-key)"; else t_fail "ssh-key='$(report ssh-key)'"; fi

t_case "/ is the read-only erofs, /var the var partition, /tmp a tmpfs, the ESP at /efi"
root=$(report root) var=$(report var) tmp=$(report tmp)
if [[ $root == erofs*" ro,"* ]] && [[ $var == *" ext4 partlabel=var" ]] && [ "$tmp" = "tmpfs efi=vfat" ]; then
        t_ok
else
        t_fail "root=$root var=$var tmp=$tmp"
fi

t_case "/etc is the overlay on var, with the machine ID the initramfs made"
# docs/host-config.md: systemd finds /etc/machine-id in place from the start
made=$(sed -n 's/.*SLIPWAY-INITRAMFS etc=overlay machine-id=\([0-9a-f]*\).*/\1/p' "$D/uefi.log" | head -n1)
if [[ $(report machine-id) =~ ^[0-9a-f]{32}$ ]] && [ "$(report machine-id)" = "$made" ] &&
        [ "$(report etc)" = overlay ]; then
        t_ok
else
        t_fail "machine-id=$(report machine-id), the initramfs's '$made', /etc $(report etc)"
fi

t_case "on a registered host slipway-agent.service and slipway-apply-files.service run"
# The state a registration leaves in /var/lib/slipway, with a server that
# is not there: the agent keeps trying it, as it does when a server is away.
# The disk is the one the first boot powered off.
cp "$D/uefi.img" "$D/reg.img" 2>/dev/null
cp "$D/vars.fd" "$D/vars2.fd"
first=$(sgdisk -i 4 "$D/reg.img" 2>/dev/null | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
last=$(sgdisk -i 4 "$D/reg.img" 2>/dev/null | sed -n 's/^Last sector: \([0-9]*\).*/\1/p')
printf '{"host_id": "base-test", "token": "t", "server": "http://10.0.2.2:9"}\n' >"$D/agent.json"
printf '%s\n' "mkdir lib" "mkdir lib/slipway" "set_inode_field lib/slipway mode 040700" \
        "write $D/agent.json lib/slipway/agent.json" >"$D/debugfs.cmd"
# The first boot ended as a power cut does (the test stops qemu once the
# report is out): e2fsck replays var's journal before debugfs writes to it,
# on a copy of the partition (e2fsck cannot replay at an offset).
if [ -z "$first" ] || [ -z "$last" ] ||
        ! dd if="$D/reg.img" of="$D/var.img" bs=512 skip="$first" count=$((last - first + 1)) status=none ||
        { e2fsck -fy "$D/var.img" >"$D/e2fsck.log" 2>&1; [ $? -gt 2 ]; } ||
        ! debugfs -w -f "$D/debugfs.cmd" "$D/var.img" >"$D/debugfs.log" 2>&1 ||
        ! debugfs -R "stat lib/slipway/agent.json" "$D/var.img" >>"$D/debugfs.log" 2>&1 ||
        ! dd if="$D/var.img" of="$D/reg.img" bs=512 seek="$first" conv=notrunc status=none; then
        t_fail "cannot write the agent's state on the var partition: $(tail -3 "$D/e2fsck.log" "$D/debugfs.log")"
elif ! qemu_until SLIPWAY-BASE-END 300 "$D/reg.log" -m 1024 \
        -drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE" -drive "if=pflash,format=raw,file=$D/vars2.fd" \
        -drive "file=$D/reg.img,format=raw,if=virtio" -nic user,model=virtio-net-pci; then
        t_fail "no report; console: $(tail -c 1500 "$D/reg.log")"
elif [ "$(unit slipway-agent "$D/reg.log")" = "active=active enabled=enabled" ] &&
        [ "$(unit slipway-apply-files "$D/reg.log")" = "active=active enabled=enabled" ] &&
        [ "$(report state "$D/reg.log")" = running ]; then
        t_ok
else
        t_fail "slipway-agent: $(unit slipway-agent "$D/reg.log"), slipway-apply-files:" \
                "$(unit slipway-apply-files "$D/reg.log"), state $(report state "$D/reg.log");" \
                "$(grep -a 'SLIPWAY-BASE log' "$D/reg.log" | head -5)"
fi

t_case "the second boot keeps the first's machine ID and SSH host key"
if [ -n "$(report ssh-key)" ] && [ "$(report ssh-key "$D/reg.log")" = "$(report ssh-key)" ] &&
        [ -n "$(report machine-id)" ] && [ "$(report machine-id "$D/reg.log")" = "$(report machine-id)" ]; then
        t_ok
else
        t_fail "machine-id $(report machine-id) then $(report machine-id "$D/reg.log"), ssh key" \
                "$(report ssh-key) then $(report ssh-key "$D/reg.log")"
fi

t_end
