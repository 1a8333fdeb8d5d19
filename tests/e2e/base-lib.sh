# Shared by the suites of Slipway Base on VMs (tests/e2e/base.sh under UEFI
# and Secure Boot, tests/e2e/base-bios.sh under SeaBIOS): the image built
# through GRUB, a namespace with slipwayd and its dnsmasq, the VM on a tap
# device of it, and what the VM's console and slipwayd say about the host.
#
# Sourced after tests/lib.sh and t_begin (and t_reuse_dir): D is the
# suite's directory, and what the suite starts is stopped at its end. The
# suite then sets NS, SERVER_IP and URL (the namespace and slipwayd's
# address in it) and MAC (the VM's); base_slipwayd sets TOKEN and SPID,
# vm sets QPID, and the suite BPID for base_later.

B=$BIN/slipway-build
SD=$BIN/slipwayd
CTL=$BIN/slipctl
REPO=$TOP/build/base-repo
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
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

# clean LOG: the console log without carriage returns.
clean() { tr -d '\r' 2>/dev/null <"$1"; }
log_has() { clean "$1" | grep -a -q "$2"; }
# boots LOG SLOT: how often the initramfs switched to SLOT in LOG.
boots() { clean "$1" | grep -a -c "SLIPWAY-INITRAMFS slot=$2"; }
# first_boot LOG: the slot the first boot in LOG went to.
first_boot() { clean "$1" | grep -a -m1 -o 'SLIPWAY-INITRAMFS slot=[ab]' | cut -d= -f2; }
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

# base_netns: network namespace NS with the bridge br0 at SERVER_IP/24 and
# the tap device tap0 on it; its error in $D/netns.err.
base_netns() {
        t_netns_add "$NS" 2>"$D/netns.err" && ip -n "$NS" link set lo up &&
                ip -n "$NS" link add br0 type bridge && ip -n "$NS" addr add "$SERVER_IP/24" dev br0 &&
                ip -n "$NS" link set br0 up && ip -n "$NS" tuntap add dev tap0 mode tap &&
                ip -n "$NS" link set tap0 master br0 && ip -n "$NS" link set tap0 up
}

# base_first: the site's key and keys repository, then Base 1.0 built with
# its disk into $D/store and exported to $D/img; its log in
# $D/build-1.0.log. Fails without build/base-repo.
base_first() {
        mkdir -p "$D/keys"
        [ -s "$D/k.key" ] || $B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
        [ -d "$D/keys-repo" ] || "$TOP/images/keys-repo.sh" "$D/keys-repo" "$D/keys" >/dev/null
        if [ ! -s "$REPO/repodata/repomd.xml" ]; then
                echo "no repository in $REPO (make base-repo)" >"$D/build-1.0.log"
                return 1
        fi
        base_def "$D/base-1.0.conf" 1.0
        $B -q --store "$D/store" build --key "$D/k.key" "$D/base-1.0.conf" >"$D/build-1.0.log" 2>&1 &&
                $B -q --store "$D/store" export base:1.0 "$D/img" >/dev/null 2>&1 &&
                jq -e '.loader == "grub" and .firmware == "both" and
                        (.boot | has("shim") and has("grub") and has("grub-pc"))' "$D/img/manifest.json" >/dev/null
}

# base_later BROKEN VERSION...: each VERSION built without a disk into
# $D/store-later (only 1.0 is installed from bare metal), the one equal to
# BROKEN with base-broken; their logs in $D/build-VERSION.log.
base_later() {
        local broken=$1 v
        shift
        for v in "$@"; do
                if [ "$v" = "$broken" ]; then base_def "$D/base-$v.conf" "$v" base-broken; else base_def "$D/base-$v.conf" "$v"; fi
                $B -q --store "$D/store-later" build --key "$D/k.key" --no-disk "$D/base-$v.conf" \
                        >"$D/build-$v.log" 2>&1 || return 1
        done
}

# base_push STORE VERSION...: each base:VERSION pushed to slipwayd; the logs
# in $D/push-VERSION.log.
base_push() {
        local store=$1 v
        shift
        for v in "$@"; do
                in_ns "$B" -q --store "$store" push --token "$TOKEN" "$URL" "base:$v" >"$D/push-$v.log" 2>&1 || return 1
        done
}

# base_slipwayd: slipwayd in the namespace with its dnsmasq on br0 (DHCP for
# the VM, and the boot URL for its iPXE), base:1.0 the default image;
# waits until it answers.
base_slipwayd() {
        TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create e2e)
        in_ns "$SD" --state-dir "$D/srv" --listen "$SERVER_IP:8080" --public-url "$URL" --trusted-keys "$D/keys" \
                --default-image base:1.0 --dhcp-mode full --dhcp-interface br0 \
                --dhcp-range "${SERVER_IP%.1}.100,${SERVER_IP%.1}.150" \
                --checkin-interval 2 --heartbeat-timeout 300 --log-json no >>"$D/srv.log" 2>&1 &
        SPID=$!
        until_true 10 in_ns curl -sf -o /dev/null "$URL/v1/status"
}

# vm LOG QEMU-ARGS...: powers the VM on: the disk first, then the network
# (with VM_NET_FIRST=1 the network first); its serial console goes to LOG.
# The agent's reboots stay in the same qemu.
vm() {
        local log=$1 disk=1 net=2
        shift
        [ "${VM_NET_FIRST:-0}" = 1 ] && disk=2 net=1
        in_ns qemu-system-x86_64 -accel "$(qemu_accel)" -m 1024 -smp 1 -display none -monitor none \
                -serial "file:$log" \
                -drive "file=$D/disk.img,format=raw,if=none,id=d0" -device "virtio-blk-pci,drive=d0,bootindex=$disk" \
                -netdev "tap,id=n0,ifname=tap0,script=no,downscript=no" \
                -device "virtio-net-pci,netdev=n0,mac=$MAC,bootindex=$net" "$@" </dev/null >"$log.qemu" 2>&1 &
        QPID=$!
}
# vm_off: the VM's power pulled: qemu killed, nothing synced by the guest
# (tests/lib.sh's cut_when calls it).
vm_off() {
        t_stop "$QPID"
        QPID=
}

# The file set: an /etc file, and a required health check that prints it,
# so that what the guest's /etc holds comes back in the host's health
# report. base_motd_files writes its files to $D.
base_motd_files() {
        printf '#!/bin/sh\ncat /etc/motd\n' >"$D/show-motd"
        printf 'Slipway Base e2e: one ({{host.mac}})\n' >"$D/motd-1"
        printf 'Slipway Base e2e: two ({{host.mac}})\n' >"$D/motd-2"
}
# motd_is TEXT: the guest's /etc/motd says TEXT, as the last health report
# has it (the report follows the agent's "healthy" by a check-in).
motd_is() { host_is ".health[\"50-show-motd\"].output | test(\"e2e: $1 \")"; }
motd_was() { until_true 120 motd_is "$1"; }
health() { host_json | jq -c .health; }

# ---- cases both suites run -------------------------------------------------
# The suite's VM runs 1.0 or later from here on, its console in LOG; PREFIX
# starts each case's name ("Secure Boot: ").

# base_setup: the first cases: the namespace (without it the suite ends,
# skipped), Base 1.0 and its disk (without them it ends, failed), slipwayd
# with 1.0 pushed.
base_setup() {
        local t0 ok=1
        t_case "a namespace with a bridge and a tap device"
        if base_netns; then
                t_ok
        else
                t_skip "cannot make network namespaces here ($(cat "$D/netns.err"))"
                t_end
                exit $?
        fi

        t_case "Base 1.0 with loader = grub, firmware = both, and its disk"
        t0=$(date +%s)
        if base_first; then
                t_ok "$(($(date +%s) - t0)) s"
        else
                t_fail "$(tail -q -n 5 "$D"/build-*.log)"
                t_end
                exit 1
        fi

        t_case "slipwayd with its dnsmasq on the bridge, 1.0 pushed and the default"
        base_slipwayd
        base_push "$D/store" 1.0 || ok=0
        if [ $ok = 1 ] && [ "$(ctl --json image list | jq '.images | length')" = 1 ]; then
                t_ok
        else
                t_fail "$(cat "$D"/push-*.log | tail -5); $(tail -5 "$D/srv.log")"
        fi
}

# base_later_pushed VERSION...: waits for base_later (BPID), which built
# each VERSION, and pushes them.
base_later_pushed() {
        local t0 ok=1
        t_case "Base $1 to ${*: -1} (3.0 broken) built meanwhile, and pushed"
        t0=$(date +%s)
        wait "$BPID" || ok=0
        BPID=
        [ $ok = 1 ] && { base_push "$D/store-later" "$@" || ok=0; }
        if [ $ok = 1 ] && [ "$(ctl --json image list | jq '.images | length')" = $(($# + 1)) ]; then
                t_ok "waited $(($(date +%s) - t0)) s"
        else
                t_fail "$(tail -q -n 5 "$D"/build-*.log "$D"/push-*.log)"
        fi
}

# base_rollout_files PREFIX LOG: a rollout of 2.0 with the file set e2e
# (base_motd_files) stages slot b, blessed, the guest's /etc/motd the set's.
base_rollout_files() {
        local prefix=$1 log=$2 t0 ok=1 id
        base_motd_files
        t_case "${prefix}a rollout of 2.0 with a file set stages slot b; GRUB tries it, the agent blesses it"
        t0=$(date +%s)
        ctl host label "$MAC" e2e=base >/dev/null || ok=0
        ctl files add e2e --hold --selector e2e=base /etc/motd="$D/motd-1" \
                /etc/slipway/health.d/50-show-motd:0755="$D/show-motd" >/dev/null || ok=0
        id=$(ctl --json rollout start base:2.0 --files e2e | jq -r .id)
        until_true 600 eval '[ "$(rollout_state "$id")" = done ]'
        if [ $ok = 1 ] && [ "$(rollout_state "$id")" = done ] &&
                host_is '.state == "healthy" and .version == "2.0" and .booted_slot == "b"' &&
                [ "$(boots "$log" b)" -ge 1 ] && motd_was one; then
                t_ok "$(($(date +%s) - t0)) s"
        else
                t_fail "ok=$ok rollout $id $(rollout_state "$id"); $(host_line); health $(health)"
        fi
}

# base_fallback PREFIX LOG: 3.0, whose service fails, is assigned; GRUB
# takes the host back to 2.0 in slot b, which it is assigned again.
base_fallback() {
        local prefix=$1 log=$2 t0 before
        t_case "${prefix}3.0's service fails, its health check says so; GRUB takes the host back to 2.0 in slot b"
        t0=$(date +%s)
        before=$(boots "$log" a)
        ctl host assign "$MAC" base:3.0 >/dev/null
        until_true 600 host_is '.state == "rolled-back"'
        until_true 300 host_is '.version == "2.0" and .booted_slot == "b"'
        if host_is '.version == "2.0" and .booted_slot == "b"' &&
                host_is '.message | test("60-base-app.*base-app.service did not come up")' &&
                [ "$(boots "$log" a)" -gt "$before" ]; then
                t_ok "$(($(date +%s) - t0)) s"
        else
                t_fail "$(host_line); $(clean "$log" | tail -n 12)"
        fi
        # The host is to run 2.0, which it runs: nothing to do.
        ctl host assign "$MAC" base:2.0 >/dev/null
}

# base_files_change PREFIX LOG VERSION: a change of /etc/motd, held back,
# rolled out (its rollout in FILES_ROLLOUT) to the host on VERSION: it
# reboots into slot a with the new file.
base_files_change() {
        local prefix=$1 log=$2 version=$3 t0 before ok=1 id
        t_case "${prefix}a change of /etc/motd, held back, rolled out: the guest's /etc has it after the reboot"
        t0=$(date +%s)
        before=$(boots "$log" a)
        # The files given are the new version's: the health check goes along.
        ctl files set e2e --hold /etc/motd="$D/motd-2" /etc/slipway/health.d/50-show-motd:0755="$D/show-motd" \
                >/dev/null || ok=0
        motd_is one || ok=0
        id=$(ctl --json rollout start --files e2e | jq -r .id)
        FILES_ROLLOUT=$id
        until_true 600 eval '[ "$(rollout_state "$id")" = done ]'
        if [ $ok = 1 ] && [ "$(rollout_state "$id")" = done ] &&
                host_is ".state == \"healthy\" and .version == \"$version\" and .booted_slot == \"a\"" &&
                [ "$(boots "$log" a)" -gt "$before" ] && motd_was two; then
                t_ok "$(($(date +%s) - t0)) s"
        else
                t_fail "ok=$ok rollout $id $(rollout_state "$id"); $(host_line); health $(health)"
        fi
}

# base_files_back PREFIX LOG VERSION: FILES_ROLLOUT rolled back: the host
# reboots into slot b with the old /etc/motd.
base_files_back() {
        local prefix=$1 log=$2 version=$3 t0 before back
        t_case "${prefix}the rollout rolled back: the old /etc/motd is back after the reboot"
        t0=$(date +%s)
        before=$(boots "$log" b)
        back=$(ctl --json rollout rollback "$FILES_ROLLOUT" | jq -r '.id // .rollback // empty')
        [ -n "$back" ] && until_true 600 eval '[ "$(rollout_state "$back")" = done ]'
        if [ -n "$back" ] && [ "$(rollout_state "$back")" = done ] &&
                host_is ".state == \"healthy\" and .version == \"$version\" and .booted_slot == \"b\"" &&
                [ "$(boots "$log" b)" -gt "$before" ] && motd_was one; then
                t_ok "$(($(date +%s) - t0)) s"
        else
                t_fail "rollback '$back' $(rollout_state "$back"); $(host_line); health $(health)"
        fi
}
