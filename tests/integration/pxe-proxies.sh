#!/bin/bash
# PXE boots against two slipwayd instances on one PostgreSQL database, each
# with its dnsmasq in proxy mode, beside a plain DHCP server of the site's
# (addresses only), as docs/dhcp.md recommends. Each server is a machine
# of its own: a network namespace joined to a bridge by a veth pair (two
# dnsmasq in one namespace would share its ports 67 and 4011). A qemu VM
# with an empty disk on the bridge takes its address from the site's
# server and its boot from one of the proxies, chains to that instance,
# boots the sample image's kernel and initramfs, and its agent registers.
# Then that instance stops, its dnsmasq with it, and a second VM boots the
# same way from the other one alone. The boot scripts name the instances
# that are live at the time.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin pxe-proxies

B=$BIN/slipway-build
SD=$BIN/slipwayd
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
NS=slw-pxp-$$
NET=10.95.0
SITE_IP=$NET.1
PIDS=()
# The VM, then the instances, which stop their dnsmasq, then the site's
# server; t_exit then stops whatever is left in the namespaces.
t_on_exit 't_stop "${QPID:-}" "${PIDS[@]}"'
in_ns() { ip netns exec "$NS" "$@"; }

# The bridge, the VM's tap device and the site's server (SITE_IP) are in
# $NS; instance a (.2) and b (.3) each in $NS-NAME on its device lan.
t_case "namespaces: a bridge with a tap device, and one per instance joined to it"
net_up() {
        local n ip
        t_netns_add "$NS" && ip -n "$NS" link set lo up && ip -n "$NS" link add br0 type bridge &&
                ip -n "$NS" addr add "$SITE_IP/24" dev br0 && ip -n "$NS" link set br0 up &&
                ip -n "$NS" tuntap add dev tap0 mode tap && ip -n "$NS" link set tap0 master br0 &&
                ip -n "$NS" link set tap0 up || return
        for n in a b; do
                ip=$NET.$([ $n = a ] && echo 2 || echo 3)
                t_netns_add "$NS-$n" && ip -n "$NS-$n" link set lo up &&
                        ip -n "$NS" link add "v$n" type veth peer name lan netns "$NS-$n" &&
                        ip -n "$NS" link set "v$n" master br0 && ip -n "$NS" link set "v$n" up &&
                        ip -n "$NS-$n" addr add "$ip/24" dev lan && ip -n "$NS-$n" link set lan up || return
        done
}
if net_up 2>"$D/netns.err"; then
        t_ok
else
        t_skip "cannot make network namespaces here ($(cat "$D/netns.err"))"
        t_end
        exit $?
fi

t_case "the site's DHCP server, a PostgreSQL server and two instances with proxy dnsmasq"
# The site's server: addresses only, no PXE options, no ping check (what is
# under test is the proxies).
in_ns dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --interface=br0 --bind-interfaces \
        --log-facility=- --pid-file= --dhcp-leasefile="$D/site.leases" --no-ping \
        --dhcp-range="$NET.100,$NET.150,255.255.255.0,1h" >"$D/site.log" 2>&1 &
PIDS+=($!)
if ! pg_start >"$D/pg-start.log" 2>&1; then
        t_fail "pg_start: $(tail -n 5 "$D/pg-start.log")"
        t_end
        exit 1
fi
TOKEN=$("$SD" --state-dir "$D/a" --database "$PGURL" --log-json no token create ci 2>>"$D/token.log")
mkdir -p "$D/keys"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
sample_def "$D/tiny.conf"
$B -q --store "$D/store" build --key "$D/k.key" --no-disk --image-version 1.0 "$D/tiny.conf" >/dev/null
$B -q --store "$D/store" export tiny:1.0 "$D/img" >/dev/null

# start NAME ADDRESS: instance NAME in $NS-NAME, listening on ADDRESS:8080
# with its dnsmasq in proxy mode on lan; its PID in PID_NAME, its URL in
# URL_NAME, its log in $D/NAME.log.
start() {
        local n=$1 url=http://$2:8080
        ip netns exec "$NS-$n" "$SD" --state-dir "$D/$n" --database "$PGURL" --instance "$n" \
                --listen "$2:8080" --public-url "$url" --trusted-keys "$D/keys" --default-image tiny \
                --dhcp-mode proxy --dhcp-interface lan --dhcp-range "$NET.0" \
                --log-json no --log-level debug >>"$D/$n.log" 2>&1 &
        PIDS+=($!)
        printf -v "PID_$n" %s "$!"
        printf -v "URL_$n" %s "$url"
}
api() { in_ns curl -s -m 5 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
# up URL N: waits until the registry, read through URL, names N live
# instances.
up() {
        local i
        for ((i = 0; i < 600; i++)); do
                [ "$(api "$1/v1/instances" | jq '[.instances[] | select(.state == "up")] | length')" = "$2" ] &&
                        return 0
                sleep 0.1
        done
        return 1
}
start a "$NET.2"
start b "$NET.3"
up "$URL_a" 2
# The image's blobs on both instances (each keeps its own), published once.
for n in a b; do
        u=URL_$n
        for f in "$D/img"/*; do api -o /dev/null -T "$f" "${!u}/v1/blobs/sha256/$(sha "$f")"; done
done
code=$(api -o "$D/publish.json" -w '%{http_code}' \
        -d "{\"manifest\":\"$(sha "$D/img/manifest.json")\",\"signature\":\"$(sha "$D/img/manifest.sig")\"}" \
        "$URL_a/v1/images")
IMAGE=$(sha "$D/img/manifest.json")
visible() { api "$1/v1/images" | jq -e ".images[] | select(.id == \"$IMAGE\")" >/dev/null; }
if [ "$code" = 201 ] && visible "$URL_a" && visible "$URL_b" && kill -0 "$PID_a" "$PID_b" &&
        grep -q 'dnsmasq started' "$D/a.log" && grep -q 'dnsmasq started' "$D/b.log" && t_alive "${PIDS[0]}"; then
        t_ok
else
        # Nothing after this could boot.
        t_fail "publish $code: $(cat "$D/publish.json"); a: $(tail -n 3 "$D/a.log"); b: $(tail -n 3 "$D/b.log");" \
                "site: $(tail -n 3 "$D/site.log")"
        t_end
        exit 1
fi

# pxe_boot NAME MAC: boots a VM (BIOS) with an empty disk from the network
# until the initramfs's agent has registered, or it stops, or 200 s pass;
# the seconds from power-on in ELAPSED.
pxe_boot() {
        local name=$1 mac=$2 i start ok=1
        truncate -s 1G "$D/$name.img"
        : >"$D/$name.log"
        start=$(date +%s%N)
        in_ns qemu-system-x86_64 -accel "$(qemu_accel)" -m 512 -no-reboot -display none -monitor none \
                -serial "file:$D/$name.log" -boot n \
                -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$mac" \
                -drive "file=$D/$name.img,format=raw,if=virtio" </dev/null >"$D/$name.qemu" 2>&1 &
        QPID=$!
        for ((i = 0; i < 1000; i++)); do
                grep -q -a 'registered as h-' "$D/$name.log" && break
                kill -0 "$QPID" 2>/dev/null || break
                sleep 0.2
        done
        ELAPSED=$((($(date +%s%N) - start) / 100000000))
        ELAPSED=$((ELAPSED / 10)).$((ELAPSED % 10))
        grep -q -a 'registered as h-' "$D/$name.log" || ok=0
        t_stop "$QPID"
        QPID=
        [ $ok = 1 ]
}
# served MAC: the instances whose dnsmasq made MAC a proxy offer, and then
# those that gave it its install script ("a b: b").
served() {
        local n offered="" scripted=""
        for n in a b; do
                grep -q -i "PXE(lan) $1 proxy" "$D/$n.log" && offered+=" $n"
                grep -q "($1) at .* gets the install script" "$D/$n.log" && scripted+=" $n"
        done
        echo "${offered# }: ${scripted# }"
}
# registered_with NAME: the servers the VM's agent registered with, as its
# console shows them (the kernel command line's slipway.server).
registered_with() {
        grep -a -o 'registering with [^ ]*' "$D/$1.log" | head -n 1 | cut -d' ' -f3 | tr -d '\r'
}
# host_seen URL MAC: the host with MAC is in URL's GET /v1/hosts,
# registered, with the default image.
host_seen() {
        api "$1/v1/hosts" | jq -e ".hosts[] | select(.mac == \"$2\" and .registered != null and .image == \"$IMAGE\")" \
                >/dev/null
}

MAC1=52:54:00:95:00:01
t_case "a VM PXE-boots from one of the two proxies and registers"
if pxe_boot one $MAC1; then
        how=$(served $MAC1)
        case $how in
        "a b: a") FIRST=a OTHER=b ;;
        "a b: b") FIRST=b OTHER=a ;;
        *) FIRST= ;;
        esac
        if [ -n "$FIRST" ]; then
                t_ok "$ELAPSED s from power-on to registered; both proxies offered, $FIRST served the boot"
        else
                t_fail "offered: scripted: $how"
        fi
else
        t_fail "console: $(tail -c 800 "$D/one.log"); a: $(grep -i 'pxe\|ipxe\|error' "$D/a.log" | tail -n 5);" \
                "b: $(grep -i 'pxe\|ipxe\|error' "$D/b.log" | tail -n 5); site: $(tail -n 5 "$D/site.log")"
fi
[ -n "${FIRST:-}" ] || FIRST=a OTHER=b
first_url=URL_$FIRST other_url=URL_$OTHER

t_case "its address came from the site's server, its script named both instances, the serving one first"
lease=$(grep -i "$MAC1" "$D/site.leases" | cut -d' ' -f3)
want=${!first_url},${!other_url}
got=$(registered_with one)
if [[ $lease == $NET.* ]] && grep -q -i "DHCPACK(br0) $lease $MAC1" "$D/site.log" && [ "$got" = "$want" ]; then
        t_ok "$lease; slipway.server=$got"
else
        t_fail "lease '$lease'; want slipway.server=$want, got '$got'"
fi

t_case "the host is in GET /v1/hosts through either instance"
if host_seen "$URL_a" $MAC1 && host_seen "$URL_b" $MAC1; then t_ok; else
        t_fail "a: $(api "$URL_a/v1/hosts" | head -c 400); b: $(api "$URL_b/v1/hosts" | head -c 400)"; fi

t_case "the serving instance stops, and its dnsmasq with it"
first_pid=PID_$FIRST
kill -TERM "${!first_pid}"
wait "${!first_pid}" 2>/dev/null
left=$(ip netns pids "$NS-$FIRST")
if [ -z "$left" ] && up "${!other_url}" 1; then t_ok; else
        t_fail "left in $FIRST's namespace: $(ps -o pid=,args= -p "${left:-0}" | tr '\n' ';');" \
                "instances: $(api "${!other_url}/v1/instances")"
fi

MAC2=52:54:00:95:00:02
t_case "a second VM PXE-boots from the other instance's proxy alone and registers through it"
if pxe_boot two $MAC2 && [ "$(served $MAC2)" = "$OTHER: $OTHER" ] && host_seen "${!other_url}" $MAC2; then
        t_ok "$ELAPSED s from power-on to registered"
else
        t_fail "offered: scripted: $(served $MAC2); console: $(tail -c 800 "$D/two.log");" \
                "$OTHER: $(grep -i 'pxe\|ipxe\|error' "$D/$OTHER.log" | tail -n 5)"
fi

t_case "its script named the live instance alone"
got=$(registered_with two)
[ "$got" = "${!other_url}" ] && t_ok "slipway.server=$got" || t_fail "want ${!other_url}, got '$got'"

t_end
