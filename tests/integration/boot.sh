#!/bin/bash
# Builds the sample image with its GPT disk and boots it in qemu twice: the
# kernel + initramfs directly, and the whole disk under OVMF through
# systemd-boot. Each boot must reach the sample OS's shell marker on the
# serial console; the direct one must have put /etc on an overlay and made
# a machine-id.
. "$(dirname "$0")/../lib.sh"
t_begin boot

B=$BIN/slipway-build
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$T_DIR/cache
D=$T_DIR
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd

sample_def "$D/tiny.conf"
$B keygen "$D/k.key" "$D/k.pub" >/dev/null

t_case "build with the disk image"
start=$(date +%s%N)
if id=$($B --store "$D/store" build --key "$D/k.key" --lock "$D/tiny.lock" "$D/tiny.conf" 2>"$D/build.log") &&
        $B --store "$D/store" export "$id" "$D/img" >/dev/null && [ -s "$D/img/disk.img" ]; then
        t_ok "$((($(date +%s%N) - start) / 1000000)) ms"
else
        t_fail "$(tail -5 "$D/build.log")"
fi

t_case "the disk image is reproducible"
if id2=$(SLIPWAY_CACHE=$D/cache2 $B --store "$D/store2" build --locked --key "$D/k.key" --lock "$D/tiny.lock" \
        "$D/tiny.conf" 2>"$D/build2.log") && [ "$id2" = "$id" ]; then
        t_ok
else
        t_fail "second build: ${id2:-failed}, first: $id; $(tail -3 "$D/build2.log")"
fi

t_case "GPT layout"
parts=$(sgdisk -p "$D/img/disk.img" 2>/dev/null | awk '/^ +[0-9]/ {print $1 ":" $NF}' | tr '\n' ' ')
if [ "$parts" = "1:esp 2:root-a 3:root-b 4:var " ]; then t_ok; else t_fail "partitions: $parts"; fi

t_case "systemd-dissect takes root-a for the root (root-b is no-auto), and finds the ESP"
if systemd-dissect --json=short "$D/img/disk.img" >"$D/dissect.json" 2>"$D/dissect.err" &&
        jq -e '([.mounts[] | select(.designator == "root") | .partition_label] == ["root-a"]) and
                ([.mounts[] | select(.designator == "esp") | .partno] == [1]) and
                (.osRelease | index("ID=slipway-tiny") != null)' "$D/dissect.json" >/dev/null; then
        t_ok
else
        t_fail "$(cat "$D/dissect.err" "$D/dissect.json" | tail -c 800)"
fi

t_case "direct kernel + initramfs boot"
cp "$D/img/disk.img" "$D/direct.img"
start=$(date +%s)
if qemu_until SLIPWAY-SHELL-READY 180 "$D/direct.log" -m 512 -kernel "$D/img/vmlinuz" -initrd "$D/img/initrd.img" \
        -append "console=ttyS0 slipway.slot=a slipway.poweroff=1" \
        -drive "file=$D/direct.img,format=raw,if=virtio"; then
        if ! grep -q -a "VERSION=1.0" "$D/direct.log"; then
                t_fail "no release in output"
        elif ! grep -q -a "SLIPWAY-INITRAMFS etc=overlay machine-id=[0-9a-f]\{32\}" "$D/direct.log"; then
                t_fail "no /etc overlay or machine-id: $(grep -a 'SLIPWAY-INITRAMFS\|slipway-initramfs' "$D/direct.log")"
        else
                t_ok "$(($(date +%s) - start)) s"
        fi
else
        t_fail "no shell marker; console: $(tail -c 1500 "$D/direct.log")"
fi

t_case "UEFI boot of the disk (OVMF, systemd-boot, slot A)"
cp "$D/img/disk.img" "$D/uefi.img"
cp "$OVMF_VARS" "$D/vars.fd"
start=$(date +%s)
if qemu_until SLIPWAY-SHELL-READY 300 "$D/uefi.log" -m 512 \
        -drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE" -drive "if=pflash,format=raw,file=$D/vars.fd" \
        -drive "file=$D/uefi.img,format=raw,if=virtio"; then
        if grep -q -a "SLIPWAY-INITRAMFS slot=a" "$D/uefi.log"; then t_ok "$(($(date +%s) - start)) s"; else t_fail "slot A not reported"; fi
else
        t_fail "no shell marker; console: $(tail -c 1500 "$D/uefi.log")"
fi

t_end
