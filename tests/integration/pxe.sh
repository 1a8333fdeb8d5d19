#!/bin/bash
# A PXE boot end to end, in a network namespace of its own: slipwayd with its
# dnsmasq (full DHCP) on a bridge, and a qemu VM (TCG) with an empty disk on a
# tap device of that bridge. The VM's iPXE gets its address and boot URL from
# dnsmasq, chains to slipwayd's /boot/ipxe, receives the install script and
# boots the sample image's kernel and initramfs over HTTP, whose agent gets
# a DHCP lease and registers. (The whole install is tests/e2e/run.sh.) A
# host assigned the image to boot live gets it into memory, verified, and
# runs it; a signature from an untrusted key and a rootfs that is not the
# manifest's are refused before anything boots.
. "$(dirname "$0")/../lib.sh"
t_begin pxe

B=$BIN/slipway-build
SD=$BIN/slipwayd
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
NS=slw-pxe-$$
SERVER_IP=10.98.0.1
URL=http://$SERVER_IP:8080

# The VM, then slipwayd, which stops its dnsmasq; t_exit then stops whatever
# is left in the namespace and deletes it.
cleanup() {
        t_stop "${QPID:-}"
        t_stop "${SPID:-}"
}
t_on_exit cleanup

in_ns() { ip netns exec "$NS" "$@"; }

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

t_case "slipwayd with its dnsmasq serves the sample image"
mkdir -p "$D/keys"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
# The site's key in the image (and so in its initramfs), for live boots.
"$TOP/images/keys-repo.sh" "$D/keys-repo" "$D/keys" >/dev/null
tiny_def "$D/tiny.conf" 1.0 slipway-keys
printf '\n[repo keys]\nbaseurl = %s\ngpgkey = %s/RPM-GPG-KEY-slipway-keys\n' "$D/keys-repo" "$D/keys-repo" >>"$D/tiny.conf"
$B -q --store "$D/store" build --key "$D/k.key" --no-disk --image-version 1.0 "$D/tiny.conf" >/dev/null
$B -q --store "$D/store" export tiny:1.0 "$D/img" >/dev/null
TOKEN=$("$SD" --state-dir "$D/state" --log-json no token create ci)
ip netns exec "$NS" "$SD" --state-dir "$D/state" --listen "$SERVER_IP:8080" --public-url "$URL" --trusted-keys "$D/keys" \
        --default-image tiny --dhcp-mode full --dhcp-interface br0 --dhcp-range 10.98.0.100,10.98.0.150 \
        --log-json no --log-level debug >"$D/slipwayd.log" 2>&1 &
SPID=$!
for ((i = 0; i < 600; i++)); do in_ns curl -s -o /dev/null "$URL/v1/status" && break; sleep 0.1; done
for f in "$D/img"/*; do
        in_ns curl -s -o /dev/null -T "$f" -H "Authorization: Bearer $TOKEN" "$URL/v1/blobs/sha256/$(sha "$f")"
done
code=$(in_ns curl -s -o "$D/publish.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' \
        --data-binary "{\"manifest\":\"$(sha "$D/img/manifest.json")\",\"signature\":\"$(sha "$D/img/manifest.sig")\"}" \
        "$URL/v1/images")
sleep 0.5
if [ "$code" = 201 ] && kill -0 "$SPID" && grep -q 'dnsmasq started' "$D/slipwayd.log"; then t_ok; else
        t_fail "publish $code; $(tail -5 "$D/slipwayd.log")"; fi

# vm NAME MAC MARKER [QEMU-ARGS...]: runs a VM with an empty disk on the
# bridge until MARKER shows on its console (or it stops, or 300 s pass).
# With PROBE=1, another client (the server's own address) asks for the VM's
# script once the VM has its install script, into $D/NAME.probe.
vm() {
        local name=$1 mac=$2 marker=$3 i start
        shift 3
        truncate -s 1G "$D/$name.img"
        : >"$D/$name.log"
        start=$(date +%s)
        ip netns exec "$NS" qemu-system-x86_64 -accel "$(qemu_accel)" -m 512 -no-reboot -display none -monitor none \
                -serial "file:$D/$name.log" "$@" \
                -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$mac" \
                -drive "file=$D/$name.img,format=raw,if=virtio" </dev/null >"$D/$name.qemu" 2>&1 &
        QPID=$!
        for ((i = 0; i < 1500; i++)); do
                grep -q -a "$marker" "$D/$name.log" && break
                if [ "${PROBE:-0}" = 1 ] && [ ! -e "$D/$name.probe" ] &&
                        grep -q "($mac) .*gets the install script" "$D/slipwayd.log"; then
                        in_ns curl -s "$URL/boot/ipxe?mac=$mac" >"$D/$name.probe"
                fi
                kill -0 "$QPID" 2>/dev/null || break
                sleep 0.2
        done
        kill "$QPID" 2>/dev/null
        wait "$QPID" 2>/dev/null
        QPID=
        ELAPSED=$(($(date +%s) - start))
        grep -q -a "$marker" "$D/$name.log"
}

# pxe_boot NAME MAC [QEMU-ARGS...]: boots a VM with an empty disk from the
# network until the initramfs's agent has registered.
pxe_boot() {
        local name=$1 mac=$2
        shift 2
        vm "$name" "$mac" 'registered as h-' -boot n "$@" && grep -q -i "dhcpack.*$mac" "$D/slipwayd.log"
}

t_case "a BIOS VM PXE-boots through iPXE into the image's initramfs, whose agent registers"
if pxe_boot bios 52:54:00:98:00:01 && grep -q "gets the install script" "$D/slipwayd.log"; then
        t_ok "$ELAPSED s"
else
        t_fail "console: $(tail -c 800 "$D/bios.log"); server: $(grep -i 'dhcp\|ipxe\|error' "$D/slipwayd.log" | tail -8)"
fi

t_case "a UEFI VM (OVMF) does the same, while another client asks for its script"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$D/vars.fd"
if PROBE=1 pxe_boot uefi 52:54:00:98:00:02 -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
        -drive "if=pflash,format=raw,file=$D/vars.fd"; then
        t_ok "$ELAPSED s"
else
        t_fail "console: $(tail -c 800 "$D/uefi.log"); server: $(grep -i 'dhcp\|ipxe\|error' "$D/slipwayd.log" | tail -8)"
fi

t_case "the other client got no secret, and the VM's own still worked"
if [ -s "$D/uefi.probe" ] && grep -q 'enrollment secret went to another client' "$D/uefi.probe" &&
        ! grep -q 'slipway.enroll' "$D/uefi.probe" && grep -q -a 'registered as h-' "$D/uefi.log"; then t_ok; else
        t_fail "probe: $(cat "$D/uefi.probe" 2>/dev/null)"; fi

# The secret is bound to the address that fetched the install script: iPXE's
# and the initramfs's DHCP clients must get the same one.
t_case "each VM registered from the address its iPXE fetched the install script from"
audit=$(in_ns curl -s -H "Authorization: Bearer $TOKEN" "$URL/v1/audit?limit=1000")
ok=1 out=""
for mac in 52:54:00:98:00:01 52:54:00:98:00:02; do
        h=$(jq -r ".entries[] | select(.action == \"host.token\" and .detail.mac == \"$mac\") | .target" <<<"$audit" | tail -1)
        issued=$(jq -r ".entries[] | select(.action == \"enroll.issue\" and .target == \"$h\") | .detail.address" <<<"$audit" | sort -u)
        used=$(jq -r ".entries[] | select(.action == \"host.token\" and .target == \"$h\") | .detail.address" <<<"$audit" | sort -u)
        refused=$(jq -r ".entries[] | select(.action == \"enroll.refuse\" and .target == \"$h\") | .detail.address" <<<"$audit" | sort -u)
        out+=" $mac: issued to [$issued], registered from [$used], refused [$refused];"
        [[ $issued == 10.98.0.* ]] && [ "$issued" = "$used" ] || ok=0
        [ $mac = 52:54:00:98:00:02 ] && [ "$refused" != "$SERVER_IP" ] && ok=0
done
if [ $ok = 1 ]; then t_ok "${out# }"; else t_fail "$out"; fi

t_case "the host is registered with its MAC and the default image"
host=$(in_ns curl -s -H "Authorization: Bearer $TOKEN" "$URL/v1/hosts/52:54:00:98:00:01")
if [ "$(jq -r .image <<<"$host")" = "$(sha "$D/img/manifest.json")" ] &&
        in_ns curl -s "$URL/metrics" | grep -q "^slipway_blob_bytes_served_total [1-9]"; then t_ok; else t_fail "$host"; fi

api() { in_ns curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
LIVE_MAC=52:54:00:98:00:03
t_case "a host assigned boot=live PXE-boots the image into memory, verified, and runs its init"
# (its /etc an overlay on the tmpfs /var, with a machine-id for this boot)
# Its first PXE request makes the host known; then it is assigned 1.0 live.
in_ns curl -s -o /dev/null "$URL/boot/ipxe?mac=$LIVE_MAC"
live_id=$(api "$URL/v1/hosts/$LIVE_MAC" | jq -r .id)
api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "tiny:1.0", "boot": "live"}' \
        "$URL/v1/hosts/$live_id/image"
in_ns curl -s -o "$D/live.ipxe" "$URL/boot/ipxe?mac=$LIVE_MAC"
if vm live "$LIVE_MAC" SLIPWAY-SHELL-READY -boot n && grep -q "gets the live script" "$D/slipwayd.log" &&
        grep -q -a "live: tiny:1.0 is in memory, verified against its signed manifest" "$D/live.log" &&
        grep -q -a "SLIPWAY-INITRAMFS live=tiny:1.0 root=/dev/loop" "$D/live.log" &&
        grep -q -a "SLIPWAY-INITRAMFS etc=overlay machine-id=[0-9a-f]\{32\}" "$D/live.log" &&
        grep -q -a "SLIPWAY-BOOT-OK" "$D/live.log" && cmp -s -n 1048576 "$D/live.img" /dev/zero; then
        t_ok "$ELAPSED s"
else
        t_fail "script: $(grep '^kernel' "$D/live.ipxe" | cut -c1-300); console: $(tail -c 1200 "$D/live.log")"
fi

# live_direct NAME CMDLINE: the image's kernel and initramfs booted
# directly (the firmware and iPXE are covered above) with CMDLINE and
# slipway.poweroff=1, until the initramfs gives up.
live_direct() {
        vm "$1" "$LIVE_MAC" SLIPWAY-INITRAMFS-FAIL -kernel "$D/img/vmlinuz" -initrd "$D/img/initrd.img" \
                -append "$2 slipway.poweroff=1"
}
# not_booted LOG: nothing was switched to.
not_booted() { ! grep -q -a -e "SLIPWAY-INITRAMFS live=" -e "SLIPWAY-BOOT-OK" "$1"; }
# The live script's kernel command line, as iPXE passes it on.
live_cmdline=$(sed -n 's/^kernel [^ ]* initrd=initrd.img \(.*\) || goto retry$/\1/p' "$D/live.ipxe")

t_case "live: a manifest signed by a key the initramfs does not trust is refused, nothing boots"
# The same manifest, signed with another key; the signature blob uploaded.
$B keygen "$D/o.key" "$D/o.pub" >/dev/null
openssl pkeyutl -sign -inkey "$D/o.key" -rawin -in "$D/img/manifest.json" -out "$D/other.sig" 2>"$D/other.sig.err"
in_ns curl -s -o /dev/null -T "$D/other.sig" -H "Authorization: Bearer $TOKEN" \
        "$URL/v1/blobs/sha256/$(sha "$D/other.sig")"
bad=$(sed "s/slipway.signature=[0-9a-f]*/slipway.signature=$(sha "$D/other.sig")/" <<<"$live_cmdline")
if [ -n "$live_cmdline" ] && [ "$bad" != "$live_cmdline" ] && live_direct badsig "$bad" &&
        grep -q -a "live boot refused: the signature of image $(sha "$D/img/manifest.json" | cut -c1-12) does not verify" \
                "$D/badsig.log" &&
        grep -q -a "SLIPWAY-INITRAMFS-FAIL: slipway-agent --mode=live exited with status 1" "$D/badsig.log" &&
        not_booted "$D/badsig.log"; then
        t_ok "$ELAPSED s"
else
        t_fail "cmdline: ${bad:0:300}; console: $(tail -c 1200 "$D/badsig.log")"
fi

t_case "live: a rootfs whose bytes are not the manifest's is refused, nothing boots"
rootfs_sha=$(sha "$D/img/rootfs.erofs")
blob=$D/state/blobs/sha256/${rootfs_sha:0:2}/$rootfs_sha
chmod u+w "$blob"
printf 'garbage' | dd of="$blob" bs=1 seek=4096 conv=notrunc status=none
if live_direct badroot "$live_cmdline" &&
        grep -q -a "live boot failed: the server sent other bytes than blob ${rootfs_sha:0:12}" "$D/badroot.log" &&
        grep -q -a "SLIPWAY-INITRAMFS-FAIL: slipway-agent --mode=live exited with status 1" "$D/badroot.log" &&
        not_booted "$D/badroot.log"; then
        t_ok "$ELAPSED s"
else
        t_fail "console: $(tail -c 1200 "$D/badroot.log")"
fi
cp "$D/img/rootfs.erofs" "$blob"

t_end
