#!/bin/bash
# make bench: slipway-agent's figures from one run on this machine.
#
#  (a) install rate: the agent staging a 1 GiB rootfs into slot b of a sim
#      host (download from slipwayd on loopback, SHA-256 while writing,
#      checkpoints, fsync, read-back verify, kernel and initrd to the ESP,
#      boot entry), against dd of the same bytes to the same kind of target
#      (a 1 GiB file on the same file system) and against `rauc install` of
#      the same bytes as a plain bundle into a file slot (PEERS.md);
#  (b) the agent's peak resident memory while staging (VmHWM) and the size
#      of its binary.
#
# The 1 GiB image is made here, not by slipway-build: random bytes as the
# rootfs, small random kernel and initrd, and a manifest written by hand and
# signed with openssl (raw Ed25519, what slipway verifies); slipwayd checks
# the signature when it is published and the agent checks it again.
#
# A benchmark, not a test: exits 0 whatever the figures; a side that cannot
# run shows "n/a" and why. Daemons run privately on loopback under a
# temporary directory and are stopped by pid at the end.
#
# BENCH_RUNS (default 3): timed runs per figure, the median is printed.
# BENCH_AGENT_MIB (default 1024): the rootfs size. SLIPWAY_AGENT: the agent
# binary (default build/bin/slipway-agent). BENCH_AGENT_BEFORE: another
# agent binary (one built from an older tree), measured in the same runs,
# alternated with the others, and compared.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$TOP/build/bin
AG=${SLIPWAY_AGENT:-$BIN/slipway-agent}
AG0=${BENCH_AGENT_BEFORE:-}
SD=$BIN/slipwayd
B=$BIN/slipway-build
RUNS=${BENCH_RUNS:-3}
MIB=${BENCH_AGENT_MIB:-1024}
# The temporary directory must be on the file system the figures are about:
# the slot files, the dd target and rauc's slot are all here.
D=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench-agent.XXXXXX")
SW_PID="" BUS_PID="" RAUC_PID="" AG_PID=""

# shellcheck disable=SC2317 # called by cleanup, from the EXIT trap
stop() { # PID: SIGTERM, then SIGKILL after 5 s
        local pid=$1
        [ -n "$pid" ] || return 0
        kill -0 "$pid" 2>/dev/null || return 0
        kill -TERM "$pid" 2>/dev/null
        kill -CONT "$pid" 2>/dev/null
        for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
        [ -n "$AG_PID" ] && kill -KILL "$AG_PID" 2>/dev/null
        stop "$RAUC_PID"
        stop "$BUS_PID"
        stop "$SW_PID"
        wait 2>/dev/null
        rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

row() {
        local unit=${3:-}
        [ "$2" = n/a ] && unit=""
        printf '    %-44s %8s %s\n' "$1" "$2" "$unit" | sed 's/ *$//'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
why() { sed -n '1,8s/^/      | /p'; }
median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "n/a" }'; }
# rate MS: MiB/s of $MIB MiB in MS milliseconds.
rate() { awk -v ms="$1" -v mib="$MIB" 'BEGIN { if (ms ~ /^[0-9.]+$/ && ms > 0) printf "%.0f", mib * 1000 / ms; else print "n/a" }'; }
now_ms() { local t=$EPOCHREALTIME; echo "${t%.*}${t#*.}" | cut -c1-13; }
sha() { openssl dgst -sha256 -r "$1" | cut -c1-64; }

echo "== agent: staging a $MIB MiB rootfs into a slot, against dd and rauc install"
for x in "$AG" "$SD" "$B" ${AG0:+"$AG0"}; do
        [ -x "$x" ] || { echo "   $x is missing: run make first"; exit 0; }
done

# --- the image ---------------------------------------------------------------
mkdir -p "$D/img" "$D/keys"
head -c $((MIB << 20)) /dev/urandom >"$D/img/rootfs.img"
head -c 4M /dev/urandom >"$D/img/vmlinuz"
head -c 8M /dev/urandom >"$D/img/initrd"
"$B" keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
art() { jq -n --arg t "$1" --arg s "$(sha "$2")" --argjson n "$(stat -c %s "$2")" '{type: $t, sha256: $s, size: $n}'; }
jq -n -S --indent 2 --argjson root $((MIB << 20)) --arg arch "$(uname -m)" \
        --argjson r "$(art rootfs "$D/img/rootfs.img" | jq '. + {fstype: "erofs"}')" \
        --argjson k "$(art kernel "$D/img/vmlinuz")" --argjson i "$(art initrd "$D/img/initrd")" \
        '{format: 1, name: "bench", version: "1.0", arch: $arch, build_time: 1700000000,
          cmdline: "console=ttyS0", root_size: $root, artifacts: [$r, $k, $i], lock: {}}' >"$D/img/manifest.json"
if ! openssl pkeyutl -sign -rawin -inkey "$D/k.key" -in "$D/img/manifest.json" -out "$D/img/manifest.sig" \
        2>"$D/sign.log" || [ "$(stat -c %s "$D/img/manifest.sig")" != 64 ]; then
        echo "   cannot sign the manifest with openssl:"
        why <"$D/sign.log"
        exit 0
fi
ROOTFS=$D/img/rootfs.img

# --- slipwayd on loopback ------------------------------------------------------
TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create bench 2>"$D/srv.log")
"$SD" --state-dir "$D/srv" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no --enroll-token sekrit \
        --checkin-interval 1 >>"$D/srv.log" 2>&1 &
SW_PID=$!
for _ in $(seq 100); do
        [ -s "$D/srv/slipwayd.url" ] && curl -s -o /dev/null "$(cat "$D/srv/slipwayd.url")/v1/status" && break
        sleep 0.05
done
URL=$(cat "$D/srv/slipwayd.url" 2>/dev/null)
case $URL in
http://127.0.0.1:*) ;;
*)
        echo "   slipwayd did not start on loopback:"
        why <"$D/srv.log"
        exit 0
        ;;
esac
api() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }
for f in "$D"/img/*; do
        api -o /dev/null -T "$f" "$URL/v1/blobs/sha256/$(sha "$f")"
done
if ! api -f -o "$D/publish.json" -H 'Content-Type: application/json' \
        -d "{\"manifest\":\"$(sha "$D/img/manifest.json")\",\"signature\":\"$(sha "$D/img/manifest.sig")\"}" \
        "$URL/v1/images" 2>"$D/publish.err"; then
        echo "   slipwayd refused the hand-made image:"
        cat "$D/publish.err" "$D/publish.json" 2>/dev/null | why
        exit 0
fi
echo "   image: $MIB MiB of random bytes as the rootfs; manifest signed with openssl, accepted by slipwayd"

# --- (a) the agent ---------------------------------------------------------------
mkdir -p "$D/health"
# agent_stage N [AGENT]: a fresh sim host registers, is assigned the image and runs
# one round, stopped (SIGSTOP) once staged and granted its reboot lease. Sets
# AG_MS (from the "staging" to the "staged" log line), AG_HWM (VmHWM, KiB,
# sampled every 0.1 s and read once more when stopped) and AG_ANON (RssAnon
# when stopped, KiB: what is the agent's own rather than shared libraries').
agent_stage() {
        local n=$1 ag=${2:-$AG} h=$D/host$1 id i st k a hwm=0 anon=n/a t0 t1 args
        AG_MS=n/a AG_HWM=n/a AG_ANON=n/a
        rm -rf "$D/host$((n - 1))"
        mkdir -p "$h"
        args=(--backend sim --sim-dir "$h" --state-dir "$h/state" --server "$URL" --keys-dir "$D/keys"
                --health-dir "$D/health" --checkin-interval 1 --sim-slot-size $((MIB << 20)) --enroll-token sekrit)
        if ! "$ag" "${args[@]}" register "52:54:00:0b:00:$(printf %02x "$n")" >"$h.log" 2>&1; then
                echo "   agent register failed:"
                why <"$h.log"
                return 1
        fi
        id=$(jq -r .host_id "$h/state/agent.json")
        api -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"image": "bench:1.0"}' "$URL/v1/hosts/$id/image"
        sync
        # Every line of the agent's output with the time it arrived (ms).
        SLIPWAY_PAUSE_AT=before-reboot "$ag" "${args[@]}" once 2> >(while IFS= read -r l; do
                echo "$(now_ms) $l"
        done >"$h.log") &
        AG_PID=$!
        for ((i = 0; i < 1800; i++)); do
                read -r st k a < <(awk '/^State:/ { s = $2 } /^VmHWM:/ { k = $2 } /^RssAnon:/ { a = $2 }
                        END { print s, k, a }' "/proc/$AG_PID/status" 2>/dev/null)
                [ -n "$st" ] || break
                [ "${k:-0}" -gt "$hwm" ] && hwm=$k
                [ "$st" = T ] && anon=$a && break
                sleep 0.1
        done
        kill -KILL "$AG_PID" 2>/dev/null
        wait "$AG_PID" 2>/dev/null
        AG_PID=""
        sleep 0.2
        t0=$(awk '$2 == "staging" { print $1; exit }' "$h.log")
        t1=$(awk '$2 == "staged" { print $1; exit }' "$h.log")
        if [ -z "$t0" ] || [ -z "$t1" ] || [ "$(head -c $((MIB << 20)) "$h/root-b" | sha256sum | cut -c1-64)" != \
                "$(sha "$ROOTFS")" ]; then
                echo "   the agent did not stage the image; its log:"
                grep -v '^[0-9]* *$' "$h.log" | cut -d' ' -f2- | why
                return 1
        fi
        AG_MS=$((t1 - t0))
        AG_HWM=$hwm AG_ANON=$anon
}

# dd_once: dd of the rootfs onto a fresh 1 GiB file, fsynced. Sets DD_MS.
dd_once() {
        local t0
        DD_MS=n/a
        rm -f "$D/dd-target"
        truncate -s $((MIB << 20)) "$D/dd-target"
        sync
        t0=$(now_ms)
        dd if="$ROOTFS" of="$D/dd-target" bs=4M conv=fsync,notrunc status=none 2>"$D/dd.log" || return 1
        DD_MS=$(($(now_ms) - t0))
}

# --- rauc (PEERS.md) -------------------------------------------------------------
# rauc_setup: a private system bus, a system.conf with two raw file slots, a
# plain bundle of the rootfs signed by a fresh certificate. Returns non-zero
# with the reason in $D/rauc.why when rauc cannot run here.
rauc_setup() {
        local r=$D/rauc
        if ! command -v rauc >/dev/null || ! command -v dbus-daemon >/dev/null; then
                { apt-get install -y rauc dbus || { apt-get update && apt-get install -y rauc dbus; }; } >"$D/apt.log" 2>&1
        fi
        if ! command -v rauc >/dev/null || ! command -v dbus-daemon >/dev/null; then
                { echo "rauc or dbus-daemon is not installed and apt-get could not install them:"; tail -3 "$D/apt.log"; } \
                        >"$D/rauc.why"
                return 1
        fi
        mkdir -p "$r/bundle" "$r/mnt"
        cat >"$r/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$r/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF
        BUS_PID=$(dbus-daemon --config-file="$r/bus.conf" --fork --print-pid 2>"$D/rauc.why" | head -n 1)
        [ -n "$BUS_PID" ] || return 1
        export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$r/bus.sock
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$r/key.pem" -out "$r/cert.pem" -days 30 \
                -subj "/CN=slipway-bench" >"$D/rauc.why" 2>&1 || return 1
        truncate -s $((MIB << 20)) "$r/slot-a"
        cat >"$r/system.conf" <<EOF
[system]
compatible=slipway-bench
bootloader=noop
data-directory=$r/data

[keyring]
path=$r/cert.pem

[slot.rootfs.0]
device=$r/slot-a
type=raw
bootname=A

[slot.rootfs.1]
device=$r/slot-b
type=raw
bootname=B
EOF
        cat >"$r/bundle/manifest.raucm" <<EOF
[update]
compatible=slipway-bench
version=1.0

[bundle]
format=plain

[image.rootfs]
filename=rootfs.img
EOF
        # A hard link: the same bytes, no copy. No compression: random bytes
        # would not shrink, and the bundle's making is not what is timed.
        ln "$ROOTFS" "$r/bundle/rootfs.img" 2>/dev/null || cp "$ROOTFS" "$r/bundle/rootfs.img"
        rauc bundle --cert "$r/cert.pem" --key "$r/key.pem" --mksquashfs-args="-noI -noD -noF -noX" \
                "$r/bundle" "$r/out.raucb" >"$D/rauc.why" 2>&1 || return 1
        rauc service --conf="$r/system.conf" --override-boot-slot=A --mount="$r/mnt" >"$D/rauc-service.log" 2>&1 &
        RAUC_PID=$!
        for _ in $(seq 50); do
                rauc status --conf="$r/system.conf" >/dev/null 2>&1 && break
                kill -0 "$RAUC_PID" 2>/dev/null || break
                sleep 0.1
        done
        if ! rauc status >"$D/rauc.why" 2>&1; then
                cat "$D/rauc-service.log" >>"$D/rauc.why"
                return 1
        fi
        return 0
}

# rauc_once: `rauc install` into slot B (a fresh 1 GiB file). Sets RAUC_MS.
rauc_once() {
        local t0
        RAUC_MS=n/a
        rm -f "$D/rauc/slot-b"
        truncate -s $((MIB << 20)) "$D/rauc/slot-b"
        sync
        t0=$(now_ms)
        rauc install "$D/rauc/out.raucb" >"$D/rauc-install.log" 2>&1 || return 1
        RAUC_MS=$(($(now_ms) - t0))
        [ "$(head -c $((MIB << 20)) "$D/rauc/slot-b" | sha256sum | cut -c1-64)" = "$(sha "$ROOTFS")" ] || {
                echo "slot B does not hold the rootfs after the install" >>"$D/rauc-install.log"
                RAUC_MS=n/a
                return 1
        }
}

have_rauc=1
rauc_setup || have_rauc=0

ag_all="" hwm_all="" anon_all="" dd_all="" rauc_all="" agent_ok=1 dd_ok=1
ag0_all="" hwm0_all="" agent0_ok=0
[ -n "$AG0" ] && agent0_ok=1
for n in $(seq "$RUNS"); do
        # Alternated, so that none of them gets a quieter machine.
        if [ $agent_ok = 1 ]; then
                agent_stage "$n" || agent_ok=0
                ag_all+=" $AG_MS" hwm_all+=" $AG_HWM" anon_all+=" $AG_ANON"
        fi
        if [ $agent0_ok = 1 ]; then
                agent_stage $((n + 100)) "$AG0" || agent0_ok=0
                ag0_all+=" $AG_MS" hwm0_all+=" $AG_HWM"
        fi
        if [ $dd_ok = 1 ]; then
                if ! dd_once; then
                        dd_ok=0
                        echo "   dd failed:"
                        why <"$D/dd.log"
                fi
                dd_all+=" $DD_MS"
        fi
        if [ $have_rauc = 1 ]; then
                if ! rauc_once; then
                        have_rauc=0
                        cp "$D/rauc-install.log" "$D/rauc.why"
                fi
                rauc_all+=" $RAUC_MS"
        fi
        rm -f "$D/dd-target" "$D/rauc/slot-b"
done
rm -rf "$D/host$RUNS" "$D/host$((RUNS + 100))"

ag=$(median <<<"$ag_all") dd=$(median <<<"$dd_all") ra=$(median <<<"$rauc_all") ag0=$(median <<<"$ag0_all")
echo "  install rate, median of $RUNS runs (MiB/s; each writes $MIB MiB into a fresh file on $(df --output=fstype "$D" | tail -n 1))"
row "slipway-agent (download, write, verify)" "$(rate "$ag")" "MiB/s  ($ag ms)"
[ -n "$AG0" ] && row "the agent before (BENCH_AGENT_BEFORE)" "$(rate "$ag0")" "MiB/s  ($ag0 ms)"
row "dd bs=4M conv=fsync" "$(rate "$dd")" "MiB/s  ($dd ms)"
if [ $have_rauc = 1 ]; then
        row "rauc install (plain bundle, raw slot)" "$(rate "$ra")" "MiB/s  ($ra ms)"
else
        row "rauc install (plain bundle, raw slot)" n/a
        why <"$D/rauc.why"
fi
row "ratio agent/dd" "$(ratio "$(rate "$ag")" "$(rate "$dd")")" "     (aim >= 0.95)"
if [ -n "$AG0" ]; then
        row "ratio agent before/dd" "$(ratio "$(rate "$ag0")" "$(rate "$dd")")"
        row "ratio agent/agent before" "$(ratio "$(rate "$ag")" "$(rate "$ag0")")"
fi
if [ $have_rauc = 1 ]; then
        row "ratio agent/rauc" "$(ratio "$(rate "$ag")" "$(rate "$ra")")" "     (aim >= 2)"
else
        row "ratio agent/rauc" n/a
fi

echo "  the agent's footprint"
# The largest of the runs.
peak() { tr ' ' '\n' | grep -E '^[0-9]+$' | sort -n | tail -n 1; }
mib() { awk -v k="${1:-}" 'BEGIN { if (k ~ /^[0-9]+$/) printf "%.1f", k / 1024; else print "n/a" }'; }
row "peak resident memory while staging (VmHWM)" "$(mib "$(peak <<<"$hwm_all")")" "MiB    (aim <= 8)"
row "  of which anonymous (RssAnon, staged)" "$(mib "$(peak <<<"$anon_all")")" "MiB    (the rest: shared libraries)"
[ -n "$AG0" ] && row "  the agent before: VmHWM" "$(mib "$(peak <<<"$hwm0_all")")" "MiB"
strip -o "$D/agent.stripped" "$AG" 2>/dev/null
row "build/bin/slipway-agent" "$(stat -c %s "$AG" | awk '{ printf "%.0f", $1 / 1024 }')" "KiB"
[ -s "$D/agent.stripped" ] && row "  stripped" "$(stat -c %s "$D/agent.stripped" | awk '{ printf "%.0f", $1 / 1024 }')" "KiB"
exit 0
