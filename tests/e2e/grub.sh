#!/bin/bash
# End to end on a VM that boots through GRUB: the sample image built with
# [boot] loader = grub and firmware = both, so that one disk boots under UEFI
# with Secure Boot (Debian's signed shim, signed GRUB, signed kernel) and
# under SeaBIOS (GRUB's boot.img and core.img on the BIOS boot partition).
#
#   1. bring-up: `slipway-agent install` from the image's initramfs (the
#      kernel booted directly) writes the disk and the host's grubenv;
#   2. Secure Boot: OVMF's secboot firmware with Microsoft's keys enrolled
#      (q35, SMM, secure flash), enforcing as the guest sees it (the
#      SecureBoot EFI variable, read in the guest's shell, and the kernel's
#      "Secure boot enabled"); an update to 2.0 into slot b, blessed; 3.0,
#      whose required health check fails, falls back to 2.0 by itself;
#      the update to 4.0 with a power cut as the agent writes grubenv to
#      offer slot a;
#   3. the same ESP with GRUB's signature stripped: shim refuses it;
#   4. BIOS: the same disk under SeaBIOS boots its good slot, updates to
#      5.0 through a power cut while slot b is written, and falls back from
#      6.0 (broken as 3.0; the agent takes no downgrade) to 5.0.
#
# slipwayd runs on the loopback; a VM reaches it through qemu's user
# network as http://10.0.2.100:8080, each connection of the guest relayed by
# a socat of its own (a character device would carry one connection only,
# and the agent opens one per request). Each VM's serial console goes to
# $T_DIR/<phase>.log; the guest's shell takes commands from its fifo.
# GRUB_E2E_DIR=DIR keeps the store and build cache there, so that a second
# run finds its images built.
. "$(dirname "$0")/../lib.sh"
t_begin e2e-grub
[ -z "${GRUB_E2E_DIR:-}" ] || t_reuse_dir "$GRUB_E2E_DIR" '*.log' '*.img' srv img

B=$BIN/slipway-build
SD=$BIN/slipwayd
CTL=$BIN/slipctl
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
MAC=52:54:00:98:00:01
GUEST_URL=http://10.0.2.100:8080
CODE_SB=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
VARS_MS=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
SB_VAR=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
START=$(date +%s)
QPID=
SPID=
t_on_exit 't_stop "$QPID" "$SPID" "${CATPID:-}"'
elapsed() { echo "$(($(date +%s) - START)) s"; }

# The definition: GRUB for both firmwares, the image's own shim and GRUBs;
# no "quiet", so that the kernel says whether Secure Boot is on.
# slipway-keys puts the site's key in the image, for the install's check.
grub_def() { # FILE VERSION [PACKAGE...]
        tiny_def "$@" shim-signed grub-efi-amd64-signed grub-pc-bin slipway-keys
        printf '\n[repo keys]\nbaseurl = %s\ngpgkey = %s/RPM-GPG-KEY-slipway-keys\n' "$D/keys-repo" "$D/keys-repo" >>"$1"
        sed -i -e 's/ systemd-boot-efi//' -e 's/^cmdline = .*/cmdline = console=ttyS0 no_timer_check/' \
                -e 's/^\[boot\]/[boot]\nloader = grub\nfirmware = both/' "$1"
}

t_case "images 1.0 to 6.0 with loader = grub, firmware = both (3.0 and 6.0 broken)"
mkdir -p "$D/keys"
[ -s "$D/k.key" ] || $B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
[ -d "$D/keys-repo" ] || "$TOP/images/keys-repo.sh" "$D/keys-repo" "$D/keys" >/dev/null
ok=1
for v in 1.0 2.0 3.0 4.0 5.0 6.0; do
        case $v in
        3.0) grub_def "$D/tiny-$v.conf" $v tiny-broken ;;
        # tiny-base goes up to 4.0 in the sample repository
        5.0) grub_def "$D/tiny-$v.conf" $v && sed -i 's/tiny-base = 5.0/tiny-base = 4.0/' "$D/tiny-$v.conf" ;;
        6.0) grub_def "$D/tiny-$v.conf" $v tiny-broken && sed -i 's/tiny-base = 6.0/tiny-base = 4.0/' "$D/tiny-$v.conf" ;;
        *) grub_def "$D/tiny-$v.conf" $v ;;
        esac
        args=("$D/tiny-$v.conf")
        [ "$v" != 1.0 ] && args=(--no-disk "${args[@]}")
        $B -q --store "$D/store" build --key "$D/k.key" "${args[@]}" >"$D/build-$v.log" 2>&1 || ok=0
done
$B -q --store "$D/store" export tiny:1.0 "$D/img" >/dev/null || ok=0
if [ $ok = 1 ] && jq -e '.loader == "grub" and .firmware == "both" and
        (.boot | has("shim") and has("grub") and has("grub-pc")) and (.tools | has("grub-mkimage"))' \
        "$D/img/manifest.json" >/dev/null; then
        t_ok "$(elapsed)"
else
        t_fail "$(tail -q -n 5 "$D"/build-*.log)"
        t_end
        exit 1
fi

t_case "slipwayd on the loopback, the images pushed, 1.0 the default"
TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create e2e)
"$SD" --state-dir "$D/srv" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no --enroll-token sekrit \
        --default-image tiny:1.0 --checkin-interval 2 --heartbeat-timeout 120 >>"$D/srv.log" 2>&1 &
SPID=$!
until_true 10 test -s "$D/srv/slipwayd.url"
URL=$(cat "$D/srv/slipwayd.url")
PORT=${URL##*:}
ctl() { "$CTL" --server "$URL" --token "$TOKEN" "$@"; }
host_is() { ctl --json host show "$MAC" 2>/dev/null | jq -e "$1" >/dev/null 2>&1; }
host_line() { ctl --json host show "$MAC" 2>/dev/null | jq -c '{state,version,booted_slot,message}'; }
for v in 1.0 2.0 3.0 4.0 5.0 6.0; do
        $B -q --store "$D/store" push --token "$TOKEN" "$URL" "tiny:$v" >"$D/push-$v.log" 2>&1 || ok=0
done
[ $ok = 1 ] && t_ok || t_fail "$(cat "$D"/push-*.log | tail -5)"

# vm LOG QEMU-ARGS...: starts a VM on the disk with the user network; its
# console goes to LOG, its shell reads $D/ser.in.
vm() {
        local log=$1
        shift
        rm -f "$D/ser.in" "$D/ser.out"
        mkfifo "$D/ser.in" "$D/ser.out"
        : >"$log"
        (exec cat "$D/ser.out" >>"$log") &
        CATPID=$!
        qemu-system-x86_64 -accel "$(qemu_accel)" -m 512 -smp 1 -display none -monitor none \
                -serial "pipe:$D/ser" -drive "file=$D/disk.img,format=raw,if=virtio" \
                -netdev "user,id=n0,guestfwd=tcp:10.0.2.100:8080-cmd:socat STDIO TCP:127.0.0.1:$PORT" \
                -device "virtio-net-pci,netdev=n0,mac=$MAC" "$@" </dev/null >"$log.qemu" 2>&1 &
        QPID=$!
}
vm_off() {
        t_stop "$QPID" "$CATPID"
        QPID=
        CATPID=
}
# in_guest CMD: runs CMD in the guest's console shell.
in_guest() { printf '%s\n' "$1" >"$D/ser.in"; }
log_has() { tr -d '\r' <"$1" | grep -a -q "$2"; }
# boots LOG SLOT: how often the initramfs switched to SLOT in LOG.
boots() { tr -d '\r' <"$1" | grep -a -c "SLIPWAY-INITRAMFS slot=$2"; }
sb_vm() { # LOG
        cp "$VARS_MS" "$D/vars.fd"
        vm "$1" -machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on \
                -drive "if=pflash,format=raw,unit=0,readonly=on,file=$CODE_SB" \
                -drive "if=pflash,format=raw,unit=1,file=$D/vars.fd"
}

t_case "bring-up: the initramfs's agent installs 1.0 and writes the host's grubenv"
truncate -s 1G "$D/disk.img"
t0=$(date +%s)
# What a PXE boot asks first: the host is made and given the default
# image; its script holds the one-time secret the install registers with.
curl -s "$URL/boot/ipxe?mac=$MAC" >"$D/install.ipxe"
enroll=$(grep -o 'slipway\.enroll=[^ ]*' "$D/install.ipxe" | head -n 1)
vm "$D/install.log" -no-reboot -kernel "$D/img/vmlinuz" -initrd "$D/img/initrd.img" \
        -append "console=ttyS0 no_timer_check slipway.mode=install slipway.server=$GUEST_URL ${enroll:-slipway.enroll=sekrit} slipway.mac=$MAC"
until_true 300 eval '! kill -0 "$QPID" 2>/dev/null'
vm_off
if log_has "$D/install.log" 'install: grubenv: slot a good with 1.0' &&
        log_has "$D/install.log" 'install: done, rebooting into slot a'; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "$(tr -d '\r' <"$D/install.log" | tail -n 15)"
fi

t_case "Secure Boot: shim, GRUB and kernel, all signed, boot slot a; enforcing in the guest"
t0=$(date +%s)
sb_vm "$D/sb.log"
until_true 180 log_has "$D/sb.log" SLIPWAY-SHELL-READY
boot_s=$(($(date +%s) - t0))
in_guest "mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null; echo SB-VAR=\$(od -An -tx1 $SB_VAR | tr -d ' ')"
until_true 20 log_has "$D/sb.log" 'SB-VAR=[0-9a-f]'
until_true 120 host_is '.state == "healthy" and .version == "1.0" and .booted_slot == "a"'
if log_has "$D/sb.log" 'SB-VAR=0600000001' && log_has "$D/sb.log" 'Secure boot enabled' &&
        log_has "$D/sb.log" 'SLIPWAY-INITRAMFS slot=a' &&
        host_is '.state == "healthy" and .version == "1.0" and .booted_slot == "a"'; then
        t_ok "shell after ${boot_s} s"
else
        t_fail "$(host_line); $(tr -d '\r' <"$D/sb.log" | grep -a -i 'secure\|SB-VAR\|violation\|SLIPWAY' | tail -n 8)"
fi

t_case "Secure Boot: the update to 2.0 stages slot b, GRUB tries it, the agent blesses it"
t0=$(date +%s)
ctl host assign "$MAC" tiny:2.0 >/dev/null
until_true 300 host_is '.state == "healthy" and .version == "2.0" and .booted_slot == "b"'
if host_is '.state == "healthy" and .version == "2.0" and .booted_slot == "b"' && [ "$(boots "$D/sb.log" b)" -ge 1 ]; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "$(host_line); $(tr -d '\r' <"$D/sb.log" | tail -n 12)"
fi

# fallback LOG BROKEN VERSION SLOT: BROKEN fails its required health check;
# the host comes back to VERSION in slot SLOT by itself.
fallback() {
        local log=$1 broken=$2 version=$3 slot=$4 other before
        other=$([ "$slot" = a ] && echo b || echo a)
        before=$(boots "$log" "$other")
        ctl host assign "$MAC" "tiny:$broken" >/dev/null
        until_true 300 host_is '.state == "rolled-back"'
        until_true 200 host_is ".version == \"$version\" and .booted_slot == \"$slot\""
        if host_is ".version == \"$version\" and .booted_slot == \"$slot\"" &&
                host_is '.message | test("60-tiny-service.*did not come up")' &&
                [ "$(boots "$log" "$other")" -gt "$before" ]; then
                return 0
        fi
        echo "$(host_line); $(tr -d '\r' <"$log" | tail -n 12)"
        return 1
}

t_case "Secure Boot: 3.0 fails its health check and falls back to 2.0 in slot b"
t0=$(date +%s)
if out=$(fallback "$D/sb.log" 3.0 2.0 b); then t_ok "$(($(date +%s) - t0)) s"; else t_fail "$out"; fi

# first_boot LOG: the slot the first boot in LOG went to.
first_boot() { tr -d '\r' <"$1" | grep -a -m1 -o 'SLIPWAY-INITRAMFS slot=[ab]' | cut -d= -f2; }

t_case "Secure Boot: power cut as the agent writes grubenv to offer slot a; back up, it finishes the update to 4.0"
# The agent reports "rebooting" to the server right before it writes grubenv
# to offer the new slot: the cut lands before, during or just after that
# write, and each must end on 4.0 in slot a (docs/agent.md, power cuts).
t0=$(date +%s)
ctl host assign "$MAC" tiny:4.0 >/dev/null
cut=0
cut_when host_is '.state == "rebooting"' && cut=1
sb_vm "$D/sb-cut.log"
until_true 300 host_is '.state == "healthy" and .version == "4.0" and .booted_slot == "a"'
if [ $cut = 1 ] && host_is '.state == "healthy" and .version == "4.0" and .booted_slot == "a"'; then
        t_ok "$(($(date +%s) - t0)) s; first boot after the cut: slot $(first_boot "$D/sb-cut.log")"
else
        t_fail "cut=$cut; $(host_line); $(tr -d '\r' <"$D/sb-cut.log" | tail -n 10)"
fi
vm_off

t_case "Secure Boot: GRUB without its signature is refused (Security Violation)"
cp "$D/disk.img" "$D/disk-good.img"
esp=$(($(sgdisk -i 2 "$D/disk.img" | awk '/^First sector/ { print $3 }') * 512))
if mcopy -n -i "$D/disk.img@@$esp" ::/EFI/BOOT/grubx64.efi "$D/grub-signed.efi" &&
        python3 - "$D/grub-signed.efi" "$D/grub-unsigned.efi" <<'EOF' &&
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
pe = struct.unpack_from("<I", data, 0x3c)[0]
magic = struct.unpack_from("<H", data, pe + 24)[0]
cert = pe + 24 + (112 if magic == 0x20b else 96) + 4 * 8  # data directory 4: the signatures
off, size = struct.unpack_from("<II", data, cert)
assert off and size, "no signature to strip"
struct.pack_into("<II", data, cert, 0, 0)
open(sys.argv[2], "wb").write(data[:off])
EOF
        mcopy -o -i "$D/disk.img@@$esp" "$D/grub-unsigned.efi" ::/EFI/BOOT/grubx64.efi; then
        sb_vm "$D/unsigned.log"
        until_true 120 log_has "$D/unsigned.log" 'Security Violation\|SLIPWAY-INITRAMFS'
        vm_off
        if log_has "$D/unsigned.log" 'Security Violation' && ! log_has "$D/unsigned.log" 'SLIPWAY-INITRAMFS'; then
                t_ok "$(tr -d '\r' <"$D/unsigned.log" | grep -a -m1 -o 'Verification failed[^]]*Security Violation')"
        else
                t_fail "$(tr -d '\r' <"$D/unsigned.log" | tail -n 8)"
        fi
else
        t_fail "cannot strip GRUB's signature on the ESP at byte $esp"
fi
mv "$D/disk-good.img" "$D/disk.img"

t_case "BIOS: SeaBIOS boots the same disk through core.img, slot a (4.0)"
t0=$(date +%s)
vm "$D/bios.log"
until_true 180 log_has "$D/bios.log" SLIPWAY-SHELL-READY
until_true 60 host_is '.state == "healthy" and .version == "4.0" and .booted_slot == "a"'
if log_has "$D/bios.log" 'SLIPWAY-INITRAMFS slot=a' && ! log_has "$D/bios.log" 'BdsDxe' &&
        host_is '.state == "healthy" and .version == "4.0" and .booted_slot == "a"'; then
        t_ok "$(($(date +%s) - t0)) s"
else
        t_fail "$(host_line); $(tr -d '\r' <"$D/bios.log" | tail -n 10)"
fi

t_case "BIOS: power cut while slot b is written; the VM boots slot a and finishes the update to 5.0"
t0=$(date +%s)
ctl host assign "$MAC" tiny:5.0 >/dev/null
cut=0
cut_when log_has "$D/bios.log" 'staging tiny:5.0' && cut=1
vm "$D/bios2.log"
until_true 300 host_is '.state == "healthy" and .version == "5.0" and .booted_slot == "b"'
if [ $cut = 1 ] && [ "$(first_boot "$D/bios2.log")" = a ] &&
        host_is '.state == "healthy" and .version == "5.0" and .booted_slot == "b"'; then
        t_ok "$(($(date +%s) - t0)) s; after the cut: $(tr -d '\r' <"$D/bios2.log" | grep -a -m1 -o 'resuming[^(]*\|staging tiny:5.0[^(]*')"
else
        t_fail "cut=$cut, first boot after it: slot '$(first_boot "$D/bios2.log")'; $(host_line);" \
                "$(tr -d '\r' <"$D/bios2.log" | tail -n 10)"
fi

t_case "BIOS: 6.0 fails its health check and falls back to 5.0 in slot b"
t0=$(date +%s)
if out=$(fallback "$D/bios2.log" 6.0 5.0 b); then t_ok "$(($(date +%s) - t0)) s"; else t_fail "$out"; fi
vm_off

t_end
