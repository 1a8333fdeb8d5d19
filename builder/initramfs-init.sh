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
#   slipway.etc=overlay|bind  /etc: an overlay whose upper layer is on var
#                           (default), or only the host's identity bound in
#                           from var (docs/host-config.md)
#   live mode: slipway.server=, slipway.image=, slipway.signature= and
#   slipway.rootfs= for the agent (the bootserver's live script sets them)
#
# Output contract (the tests grep for these):
#   SLIPWAY-INITRAMFS etc=overlay|bind machine-id=<id>   /etc is set up
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

# --- host identity and /etc (docs/host-config.md) -------------------------------
# What a host keeps across slot switches lives on var, in STATE/etc (STATE is
# /var/lib/slipway): upper/ and work/ of the /etc overlay. With
# slipway.etc=bind only these paths under /etc are the host's own, bound in
# from upper/; everything else under /etc is the image's, read-only.
IDENTITY_PATHS='machine-id hostname ssh network systemd/network NetworkManager/system-connections sysconfig/network-scripts'

# crashpoint NAME: a power cut here when slipway.crash-at=NAME (the tests'
# fault injection): as PID 1 a poweroff without sync, else SIGKILL to the
# whole process group (the tests run this under setsid).
crashpoint() {
    [ "${SLIPWAY_CRASH_AT:-}" = "$1" ] || return 0
    echo "SLIPWAY-CRASH at $1" >&2
    if [ "$$" = 1 ]; then poweroff -f -n; else kill -KILL 0; fi
    sleep 5
}

# machine_id_ensure DIR: DIR/machine-id holds the host's ID, 32 lower-case
# hex digits and a newline. Made once, from the kernel's random UUID, when
# DIR has none or a malformed one; never changed after. A new file is
# written, fsynced, renamed over and the directory fsynced: a power cut
# leaves no file (the next boot makes one) or the whole ID, never an empty
# or partial one.
machine_id_ensure() {
    f=$1/machine-id
    id=$(cat "$f" 2>/dev/null)
    [ "${#id}" = 32 ] && [ -z "$(printf '%s' "$id" | tr -d 0-9a-f)" ] && return 0
    id=$(tr -d '-' </proc/sys/kernel/random/uuid) && [ "${#id}" = 32 ] || return 1
    rm -f "$f.new"
    printf '%s\n' "$id" >"$f.new" || return 1
    crashpoint machine-id-written
    sync "$f.new" || return 1
    crashpoint machine-id-synced
    mv -f "$f.new" "$f" || return 1
    sync "$1"
    crashpoint machine-id-renamed
}

# etc_bind SYSROOT UPPER PATH: binds UPPER/PATH over SYSROOT/etc/PATH, a file
# over a file or a directory over a directory. The first time, UPPER/PATH is
# seeded with the image's copy; from then on it is the host's. A path the
# image lacks cannot be bound on a read-only root, and is left out.
etc_bind() {
    img=$1/etc/$3 own=$2/$3
    if [ -L "$img" ] || ! [ -e "$img" ]; then
        [ -e "$own" ] && echo "slipway-initramfs: the image has no /etc/$3 to bind the host's over" >&2
        return 0
    fi
    if ! [ -e "$own" ]; then
        mkdir -p "${own%/*}" && cp -a "$img" "$own" || return 1
    fi
    mount --bind "$own" "$img"
}

# etc_setup SYSROOT STATE MODE [RUN]: sets up SYSROOT/etc from the image's
# read-only /etc and the host's STATE/etc/upper; prints the mode it set up.
# MODE overlay: an overlayfs, upper/ its upper layer (the host's copy of a
# file wins over the image's); bind when the kernel cannot mount one. MODE
# bind: IDENTITY_PATHS only (etc_bind). The image's own /etc stays visible
# read-only at RUN/slipway/etc-image (RUN: SYSROOT/run, or the /run that
# becomes it), for slipway-agent etc-diff. Needs /proc (the machine-id).
etc_setup() {
    root=$1 up=$2/etc/upper work=$2/etc/work mode=$3 run=${4:-$1/run}
    mkdir -p "$up" "$work" || return 1
    machine_id_ensure "$up" || echo "slipway-initramfs: cannot write $up/machine-id" >&2
    if [ -d "$run" ]; then
        mkdir -p "$run/slipway/etc-image" &&
            mount --bind "$root/etc" "$run/slipway/etc-image" ||
            echo "slipway-initramfs: the image's /etc is not kept at /run/slipway/etc-image" >&2
    fi
    if [ "$mode" = overlay ]; then
        if mount -t overlay overlay -o "lowerdir=$root/etc,upperdir=$up,workdir=$work" "$root/etc"; then
            echo overlay
            return 0
        fi
        echo "slipway-initramfs: cannot mount an overlay on /etc (is overlay among the initramfs modules?)" >&2
    fi
    for p in $IDENTITY_PATHS; do
        etc_bind "$root" "$up" "$p" || echo "slipway-initramfs: cannot bind /etc/$p" >&2
    done
    echo bind
}

# The tests source this file for the functions above.
[ "${SLIPWAY_INITRAMFS_FUNCTIONS:-0}" = 1 ] && return 0

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

slot=a mode=normal root_override='' poweroff=0 etc_mode=overlay
set -f
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        slipway.slot=*)     slot=${arg#*=} ;;
        slipway.mode=*)     mode=${arg#*=} ;;
        slipway.root=*)     root_override=${arg#*=} ;;
        slipway.poweroff=*) poweroff=${arg#*=} ;;
        slipway.etc=*)      etc_mode=${arg#*=} ;;
        slipway.crash-at=*) SLIPWAY_CRASH_AT=${arg#*=} ;;
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

# The host's identity and its /etc, before any init reads them (systemd
# reads /etc/machine-id first thing). On a tmpfs /var (live) they last
# until the next boot: a new machine-id each time. Here, while /proc is the
# initramfs's (the machine-id comes from it) and /run moves into the root
# below with the image's /etc bound in it.
case "$etc_mode" in
    overlay|bind) ;;
    *) echo "slipway-initramfs: unknown slipway.etc=$etc_mode, using overlay"; etc_mode=overlay ;;
esac
etc=$(etc_setup /sysroot /sysroot/var/lib/slipway "$etc_mode" /run) || etc=none
hostname -F /sysroot/etc/hostname 2>/dev/null
echo "SLIPWAY-INITRAMFS etc=$etc machine-id=$(cat /sysroot/var/lib/slipway/etc/upper/machine-id 2>/dev/null)"

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
