#!/bin/bash
# The host's identity and /etc as the initramfs sets them up (the functions
# of builder/initramfs-init.sh, run by busybox sh in a mount namespace of
# their own): an overlay on /etc whose upper layer is on var, kept across
# two different images as across a slot switch; slipway.etc=bind; the
# machine-id made once, and power cuts at each step of writing it; and
# `slipway-agent etc-diff` on what the host changed. Needs root (mounts).
. "$(dirname "$0")/../lib.sh"
t_begin etc

D=$T_DIR
AGENT=$BIN/slipway-agent
INIT=$TOP/builder/initramfs-init.sh

# initramfs SCRIPT: SCRIPT in busybox sh with the initramfs's functions, in
# a mount namespace of its own (its mounts go away with it), in $D.
initramfs() {
        unshare -m busybox sh -c "SLIPWAY_INITRAMFS_FUNCTIONS=1; . '$INIT'; cd '$D' && $1"
}

# image DIR VERSION: a root with the /etc of release VERSION, read-only once
# mounted by ro_root.
image() {
        mkdir -p "$1/etc/ssh" "$1/run" "$1/var"
        printf 'VERSION_ID=%s\n' "$2" >"$1/etc/os-release"
        printf 'slipway-tiny-%s\n' "$2" >"$1/etc/hostname"
        printf 'root:x:0:0::/root:/bin/sh # %s\n' "$2" >"$1/etc/passwd"
        printf 'welcome to %s\n' "$2" >"$1/etc/motd"
        printf 'Host *\n' >"$1/etc/ssh/ssh_config"
        : >"$1/etc/machine-id"
}
# The prelude that makes root $R what the initramfs has: read-only, with
# the tmpfs /run it moves in.
RO='mount --bind "$R" "$R" && mount -o remount,bind,ro "$R" "$R" && mount -t tmpfs tmpfs "$R/run"'

t_case "as root, with busybox and mount namespaces"
if [ "$(id -u)" != 0 ] || ! command -v busybox >/dev/null || ! unshare -m true 2>/dev/null; then
        t_skip "needs root, busybox and unshare -m"
        t_end
        exit $?
fi
t_ok

image "$D/r1" 1.0
image "$D/r2" 2.0
echo "new in 2.0" >"$D/r2/etc/issue"
mkdir -p "$D/var"
idre='^[0-9a-f]{32}$'

t_case "overlay: the first boot makes a machine-id; the host's writes go to var"
if mode=$(initramfs "R=r1; $RO && etc_setup \$PWD/r1 \$PWD/var overlay &&
                cat r1/etc/machine-id >mid1 && echo host-a >r1/etc/hostname && echo mine >r1/etc/site.conf &&
                echo secret >r1/etc/ssh/ssh_host_ed25519_key && rm r1/etc/motd &&
                cat r1/run/slipway/etc-image/hostname >image-hostname" 2>"$D/setup1.err") &&
        [ "$mode" = overlay ] && grep -Eq "$idre" "$D/mid1" && [ "$(wc -c <"$D/mid1")" = 33 ] &&
        [ "$(cat "$D/var/etc/upper/site.conf")" = mine ] && [ "$(cat "$D/image-hostname")" = slipway-tiny-1.0 ] &&
        [ "$(cat "$D/r1/etc/hostname")" = slipway-tiny-1.0 ]; then
        t_ok "machine-id $(cat "$D/mid1")"
else
        t_fail "mode '$mode'; $(cat "$D/setup1.err" "$D/mid1" 2>/dev/null)"
fi

t_case "another image (a slot switch): the host's files win, the rest is the new image's"
out=$(initramfs "R=r2; $RO && etc_setup \$PWD/r2 \$PWD/var overlay >/dev/null &&
        cd r2/etc && cat machine-id hostname site.conf os-release passwd issue ssh/ssh_host_ed25519_key &&
        ! [ -e motd ] && echo no-motd" 2>&1)
want="$(cat "$D/mid1")
host-a
mine
VERSION_ID=2.0
root:x:0:0::/root:/bin/sh # 2.0
new in 2.0
secret
no-motd"
if [ "$out" = "$want" ]; then t_ok; else t_fail "got: $out"; fi

t_case "slipway-agent etc-diff: the host's changes against the new image's /etc"
want="changed  /etc/hostname  (content)
changed  /etc/machine-id  (content)
deleted  /etc/motd  (whiteout)
new      /etc/site.conf
new      /etc/ssh/ssh_host_ed25519_key"
got=$("$AGENT" --state-dir "$D/var" --etc-image "$D/r2/etc" etc-diff 2>&1)
json=$("$AGENT" --state-dir "$D/var" --etc-image "$D/r2/etc" etc-diff --json 2>&1)
status=$("$AGENT" --backend sim --sim-dir "$D/sim" --state-dir "$D/var" --etc-image "$D/r2/etc" status 2>&1)
if [ "$got" = "$want" ] && "$AGENT" --state-dir "$D/var" --etc-image "$D/r2/etc" etc-diff --all | grep -qx 'same     /etc/ssh/' &&
        [ "$(jq -r '.[] | "\(.change) \(.path) \(.note // "-")"' <<<"$json")" = "changed /etc/hostname content
changed /etc/machine-id content
deleted /etc/motd whiteout
new /etc/site.conf -
new /etc/ssh/ssh_host_ed25519_key -" ] &&
        grep -qx 'etc:         overlay, 2 changed, 2 new, 1 deleted (slipway-agent etc-diff)' <<<"$status"; then
        t_ok
else
        t_fail "got: $got; $json; $status"
fi

t_case "slipway.etc=bind: only the identity paths are the host's, the rest of /etc is read-only"
out=$(initramfs "R=r2; $RO && etc_setup \$PWD/r2 \$PWD/var bind && cd r2/etc &&
        cat machine-id hostname ssh/ssh_host_ed25519_key motd && ! [ -e site.conf ] &&
        echo host-b >hostname && ! (echo x >>passwd) 2>/dev/null && echo read-only" 2>&1)
want="bind
$(cat "$D/mid1")
host-a
secret
welcome to 2.0
read-only"
if [ "$out" = "$want" ] && [ "$(cat "$D/var/etc/upper/hostname")" = host-b ]; then
        t_ok
else
        t_fail "got: $out"
fi

t_case "a machine-id is never made again; a malformed one is replaced"
before=$(stat -c '%i %Y' "$D/var/etc/upper/machine-id")
initramfs "machine_id_ensure \$PWD/var/etc/upper"
mkdir -p "$D/bad"
: >"$D/bad/machine-id"
initramfs "machine_id_ensure \$PWD/bad"
if [ "$(stat -c '%i %Y' "$D/var/etc/upper/machine-id")" = "$before" ] &&
        [ "$(cat "$D/var/etc/upper/machine-id")" = "$(cat "$D/mid1")" ] && grep -Eq "$idre" "$D/bad/machine-id"; then
        t_ok
else
        t_fail "kept: $(cat "$D/var/etc/upper/machine-id"), replaced: $(cat "$D/bad/machine-id")"
fi

t_case "a power cut at each step of making the machine-id: no file or the whole ID, then the same ever after"
ok=1 why= note=
for cp in machine-id-written machine-id-synced machine-id-renamed; do
        v=$D/cut-$cp
        mkdir -p "$v"
        # (in a command substitution, with bash's word on the kill kept out of the output)
        rc=$({ SLIPWAY_CRASH_AT=$cp setsid -w busybox sh -c \
                "SLIPWAY_INITRAMFS_FUNCTIONS=1; . '$INIT'; machine_id_ensure '$v'" 2>"$v.err"; echo $?; } 2>/dev/null)
        after=$(cat "$v/machine-id" 2>/dev/null)
        if [ $rc != 137 ] || ! grep -q "SLIPWAY-CRASH at $cp" "$v.err"; then
                ok=0 why+="$cp: not cut (rc $rc); "
                continue
        fi
        # Either nothing (the next boot makes one) or the whole ID.
        if [ -e "$v/machine-id" ] && ! [[ "$after" =~ $idre ]]; then ok=0 why+="$cp: left '$after'; "; fi
        initramfs "machine_id_ensure '$v'"
        now=$(cat "$v/machine-id")
        if ! [[ "$now" =~ $idre ]] || [ -e "$v/machine-id.new" ] || { [ -n "$after" ] && [ "$now" != "$after" ]; }; then
                ok=0 why+="$cp: after the next boot '$now' (was '$after'), $(ls "$v"); "
        fi
        if [ -n "$after" ]; then note+="$cp: kept; "; else note+="$cp: made anew; "; fi
done
if [ $ok = 1 ]; then t_ok "$note"; else t_fail "$why"; fi

t_end
