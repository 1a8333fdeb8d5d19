#!/bin/busybox sh
# /init of Slipway's initramfs (busybox ash, POSIX sh).
#
# Contents the builder puts next to it:
#   /bin/busybox                          static busybox
#   /lib/modules/<kver>/...               the slot's modules + modules.dep
#   /etc/slipway/initramfs-modules        modules to load, one per line (# comments)
#   /usr/bin/slipway-agent                optional, for slipway.mode=install|live,
#                                         with its libraries and /etc/slipway/keys/
#
# Kernel command line:
#   slipway.slot=a|b        root slot to boot (default a): partition root-<slot>
#   slipway.root=DEV        override: /dev/..., PARTNAME=..., UUID=..., LABEL=...
#   slipway.mode=normal|install|live   (default normal)
#   slipway.poweroff=1      on failure (and in the OS, after boot) power off
#   live mode: slipway.server=, slipway.image=, slipway.signature= and
#   slipway.rootfs= for the agent (the bootserver's live script sets them)
#
# Output contract (the tests grep for these):
#   SLIPWAY-INITRAMFS slot=<x> root=<dev>     just before switch_root
#   SLIPWAY-INITRAMFS live=<name>:<version> root=<loop dev>   the same, live
#   SLIPWAY-INITRAMFS-FAIL: <reason>          once, then a shell or poweroff
#                                             (install and live: a reboot
#                                             after 30 s instead of a shell)

# udhcpc (install mode, below) runs this same file as its lease script.
if [ "$$" != 1 ] && [ -n "${interface:-}" ]; then
    case "${1:-}" in
        deconfig)
            ip addr flush dev "$interface"
            ip link set "$interface" up
            ;;
        bound|renew)
            ip addr flush dev "$interface"
            ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
            for r in ${router:-}; do
                route add default gw "$r" dev "$interface" && break
            done
            echo "slipway-initramfs: $interface has $ip"
            ;;
    esac
    exit 0
fi

/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /run /sysroot /tmp
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
# The kernel runs /sbin/modprobe for request_module() (crypto-crc32c, nls_*).
[ -e /sbin/modprobe ] || ln -s /bin/busybox /sbin/modprobe

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
# If the cpio had no /dev/console node the kernel gave us no stdio.
[ -t 1 ] || exec 0<>/dev/console 1>&0 2>&0

slot=a mode=normal root_override='' poweroff=0
set -f
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        slipway.slot=*)     slot=${arg#*=} ;;
        slipway.mode=*)     mode=${arg#*=} ;;
        slipway.root=*)     root_override=${arg#*=} ;;
        slipway.poweroff=*) poweroff=${arg#*=} ;;
    esac
done
set +f

fail() {
    echo "SLIPWAY-INITRAMFS-FAIL: $*"
    if [ "$poweroff" = 1 ]; then
        sync
        poweroff -f
    fi
    # PID 1 must not exit: keep a shell on the console.
    while :; do
        setsid cttyhack sh || sh
        sleep 1
    done
}

# --- modules -----------------------------------------------------------------
kver=$(uname -r)
if [ -r /etc/slipway/initramfs-modules ]; then
    [ -d "/lib/modules/$kver" ] || echo "slipway-initramfs: no /lib/modules/$kver"
    while read -r m _; do
        case "$m" in ''|'#'*) continue ;; esac
        # Built-in or missing modules are not fatal here: the mounts below
        # are what decide whether this boot can go on.
        modprobe "$m" 2>/dev/null || echo "slipway-initramfs: modprobe $m failed"
    done < /etc/slipway/initramfs-modules
fi

# net_up: a DHCP lease on the first interface that gets one (a NIC's
# driver may take a moment to register it: up to ~5 s for the first).
net_up() {
    n=0
    while [ "$n" -lt 50 ]; do
        for d in /sys/class/net/*; do
            i=${d##*/}
            [ "$i" = lo ] && continue
            ip link set "$i" up 2>/dev/null
            udhcpc -i "$i" -f -q -n -t 5 -T 2 -s /init 2>&1 && return 0
        done
        usleep 100000
        n=$((n + 1))
    done
    return 1
}

case "$slot" in
    a|b) ;;
    *) fail "bad slipway.slot=$slot (want a or b)" ;;
esac

# agent_or_retry: runs slipway-agent --mode=$mode; when it fails, says so
# and powers off (slipway.poweroff=1) or reboots after 30 s, so that the
# host asks the server again.
agent_or_retry() {
    [ -x /usr/bin/slipway-agent ] ||
        fail "slipway.mode=$mode needs /usr/bin/slipway-agent, which this initramfs lacks"
    net_up || fail "no network interface got a DHCP lease"
    mkdir -p /var/lib/slipway
    /usr/bin/slipway-agent --mode="$mode" && return 0
    echo "SLIPWAY-INITRAMFS-FAIL: slipway-agent --mode=$mode exited with status $?"
    [ "$poweroff" = 1 ] && { sync; poweroff -f; }
    echo "slipway-initramfs: rebooting in 30 s to try again"
    sleep 30
    reboot -f
    fail "cannot reboot"
}

case "$mode" in
    normal) ;;
    install)
        # On success the agent reboots the machine into what it installed
        # (and should the reboot not have happened yet, so does this).
        agent_or_retry
        sync
        reboot -f
        fail "cannot reboot after the install"
        ;;
    live)
        # The agent leaves the rootfs, verified against the signed
        # manifest, in /run/slipway-live (a tmpfs: memory).
        agent_or_retry
        ;;
    *) fail "unknown slipway.mode=$mode" ;;
esac

# --- block devices -------------------------------------------------------------
# by_partname NAME: print /dev/<dev> of the partition whose GPT name is NAME.
by_partname() {
    for u in /sys/class/block/*/uevent; do
        [ -r "$u" ] || continue
        if grep -qx "PARTNAME=$1" "$u"; then
            d=$(sed -n 's/^DEVNAME=//p' "$u")
            [ -n "$d" ] && [ -b "/dev/$d" ] && { echo "/dev/$d"; return 0; }
        fi
    done
    return 1
}

# resolve SPEC: /dev/..., PARTNAME=..., or anything findfs knows (UUID=, LABEL=).
resolve() {
    case "$1" in
        /dev/*)     [ -b "$1" ] && echo "$1" ;;
        PARTNAME=*) by_partname "${1#PARTNAME=}" ;;
        *=*)        findfs "$1" 2>/dev/null ;;
        *)          return 1 ;;
    esac
}

# wait_for SPEC [TENTHS]: poll until SPEC resolves (default ~10 s).
wait_for() {
    n=0 max=${2:-100}
    while [ "$n" -lt "$max" ]; do
        dev=$(resolve "$1") && [ -n "$dev" ] && { echo "$dev"; return 0; }
        usleep 100000
        n=$((n + 1))
    done
    return 1
}

if [ "$mode" = live ]; then
    live=/run/slipway-live
    # Read-only from the start: nothing written in the OS reaches the file.
    root=$(losetup -f) && losetup -r "$root" "$live/rootfs" ||
        fail "cannot attach $live/rootfs to a loop device (is loop among the initramfs modules?)"
elif [ -n "$root_override" ]; then
    root=$(wait_for "$root_override") || fail "root device $root_override did not appear within 10 s"
else
    root=$(wait_for "PARTNAME=root-$slot") || fail "root device PARTNAME=root-$slot did not appear within 10 s"
fi

mount -t erofs -o ro "$root" /sysroot 2>/dev/null ||
    mount -t squashfs -o ro "$root" /sysroot 2>/dev/null ||
    fail "cannot mount $root read-only as erofs or squashfs"

[ -d /sysroot/var ] || fail "rootfs on $root has no /var"
# var shows up together with the root partition; a short extra wait is
# enough. A live system keeps its state in memory and leaves disks alone.
var=''
[ "$mode" = live ] || var=$(wait_for PARTNAME=var 10) || echo "slipway-initramfs: no var partition"
if [ -n "$var" ]; then
    mount -t ext4 -o rw,nodev,nosuid "$var" /sysroot/var ||
        fail "cannot mount $var (PARTNAME=var) as ext4 on /var"
else
    echo "slipway-initramfs: /var is a tmpfs"
    mount -t tmpfs -o mode=0755,nodev,nosuid tmpfs /sysroot/var ||
        fail "cannot mount a tmpfs on /var"
fi

[ -e /sysroot/sbin/init ] || [ -L /sysroot/sbin/init ] ||
    fail "rootfs on $root has no /sbin/init"

# Hand the API filesystems over; the OS's init finds them mounted.
for m in /dev /proc /sys /run; do
    if [ -d "/sysroot$m" ]; then
        mount --move "$m" "/sysroot$m" || fail "cannot move $m into /sysroot"
    else
        umount -l "$m" 2>/dev/null
    fi
done

if [ "$mode" = live ]; then
    name=$(sed -n 's/^NAME=//p' /sysroot/run/slipway-live/image)
    version=$(sed -n 's/^VERSION=//p' /sysroot/run/slipway-live/image)
    echo "SLIPWAY-INITRAMFS live=$name:$version root=$root"
else
    echo "SLIPWAY-INITRAMFS slot=$slot root=$root"
fi
exec switch_root /sysroot /sbin/init
