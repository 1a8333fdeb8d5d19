#!/bin/bash
# An interrupted build leaves nothing visible. slipway-build is killed with
# SIGKILL (its crash points, SLIPWAY_CRASH_AT) at the end of every phase of
# a build, one run after another into the same store and cache: after each
# kill the store lists no image and every file under blobs/ is a whole blob.
# Each run gets further than the last, so each one starts from what the
# killed ones left; the run after the last kill completes, leaves no
# temporary file behind, and makes the same image as a clean build.
#
# The disk phase (libguestfs) has a case of its own: killed with the
# appliance running and the disk image begun. A disk build takes
# minutes under TCG, so the build after that kill is the same definition
# without the disk, which must give the clean build's image; that a disk
# build is reproducible is tests/integration/boot.sh's to show.
. "$(dirname "$0")/../lib.sh"
t_begin build-crash

B=$BIN/slipway-build
export SOURCE_DATE_EPOCH=1700000000
D=$T_DIR
KEY=$D/k.key
PID=""

# Kills a build still running, and what it started (its process group).
stop_build() {
        [ -n "$PID" ] && kill -KILL -- "-$PID" 2>/dev/null
        PID=""
}
t_on_exit stop_build

$B keygen "$KEY" "$D/k.pub" >/dev/null
tiny_def "$D/tiny.conf" 1.0

# images_in STORE: how many images `slipway-build list` shows.
images_in() {
        $B --store "$1" --json list | jq length
}

# blobs_whole STORE: every file under blobs/ is a blob, named by the sha256
# of its bytes; prints the others.
blobs_whole() {
        local f bad=""
        while IFS= read -r f; do
                [[ $f == "$1/blobs/sha256/"??/* ]] && [ "$(basename "$f")" = "$(sha256sum <"$f" | cut -c1-64)" ] ||
                        bad="$bad $f"
        done < <(find "$1/blobs" -type f)
        [ -z "$bad" ] || { echo "not whole blobs:$bad"; return 1; }
}

# crash_build POINT STORE CACHE [BUILD-OPTION...]: builds tiny.conf with
# SLIPWAY_CRASH_AT=POINT in its own process group (so that a tool it runs,
# mkfs or the libguestfs appliance, goes with it); true when it died of
# SIGKILL at that point.
crash_build() {
        local point=$1 store=$2 cache=$3 rc
        shift 3
        SLIPWAY_CRASH_AT=$point SLIPWAY_CACHE=$cache setsid "$B" --store "$store" build --key "$KEY" "$@" \
                "$D/tiny.conf" >"$D/crash.log" 2>&1 &
        PID=$!
        wait "$PID" 2>/dev/null # bash's own "Killed" line
        rc=$?
        stop_build
        [ "$rc" = 137 ] && grep -q "crash point '${point%%:*}'" "$D/crash.log"
}

# after_kill STORE: nothing of the killed build is visible in STORE.
after_kill() {
        local n
        n=$(images_in "$1") || { t_fail "cannot list the store: $(tail -2 "$D/crash.log")"; return; }
        if [ "$n" != 0 ]; then
                t_fail "the store lists $n image(s)"
        elif ! out=$(blobs_whole "$1"); then
                t_fail "$out"
        else
                t_ok
        fi
}

# complete STORE CACHE WANT-ID [BUILD-OPTION...]: the build after the kills
# makes WANT-ID, and neither the store's tmp/ nor the work directory keeps
# anything of the killed builds.
complete() {
        local store=$1 cache=$2 want=$3 id left
        shift 3
        if ! id=$(SLIPWAY_CACHE=$cache $B --store "$store" build --key "$KEY" "$@" "$D/tiny.conf" 2>"$D/final.log"); then
                t_fail "the build after the kills failed: $(tail -3 "$D/final.log")"
                return
        fi
        left=$(ls -A "$store/tmp" "$cache/work" 2>&1)
        if [ "$id" != "$want" ]; then
                t_fail "image $id, a clean build makes $want"
        elif [ "$(images_in "$store")" != 1 ] || ! $B --store "$store" verify --key "$D/k.pub" "$id" >/dev/null; then
                t_fail "the store does not hold the image, whole and signed: $(images_in "$store") image(s)"
        elif [ -n "$(ls -A "$store/tmp")" ] || [ -n "$(ls -A "$cache/work")" ]; then
                t_fail "left behind: $left"
        elif ! out=$(blobs_whole "$store"); then
                t_fail "$out"
        else
                t_ok
        fi
}

t_case "a clean build, for reference"
if clean=$(SLIPWAY_CACHE=$D/cache-clean $B --store "$D/clean" build --key "$KEY" --lock "$D/clean.lock" \
        --no-disk "$D/tiny.conf" 2>"$D/clean.log"); then t_ok; else t_fail "$(tail -3 "$D/clean.log")"; fi

# resolve (lock written), fetch (RPMs in the cache), install (staging root),
# initramfs and rootfs (made side by side), blob:2 (the kernel's blob in
# place, the initrd's complete in tmp/, not yet renamed), sign (every
# artifact in the store, the manifest signed), publish (manifest and
# signature in the store, no catalog row), catalog (inside the catalog's
# transaction, not committed).
for point in resolve fetch install initramfs rootfs blob:2 sign publish catalog; do
        t_case "killed at '$point': the store shows nothing of it"
        if crash_build "$point" "$D/store" "$D/cache" --lock "$D/tiny.lock" --no-disk; then
                after_kill "$D/store"
        else
                t_fail "the build did not die at its crash point: $(tail -3 "$D/crash.log")"
        fi
done

t_case "the build after the kills completes clean, with the clean build's image"
complete "$D/store" "$D/cache" "$clean" --lock "$D/tiny.lock" --no-disk

t_case "killed at 'disk' (libguestfs running): nothing visible, then the clean build's image"
if ! crash_build disk "$D/store-disk" "$D/cache-disk" --lock "$D/tiny-disk.lock"; then
        t_fail "the build did not die at its crash point: $(tail -3 "$D/crash.log")"
elif [ "$(images_in "$D/store-disk")" != 0 ] || ! out=$(blobs_whole "$D/store-disk"); then
        t_fail "visible after the kill: $(images_in "$D/store-disk") image(s) ${out:-}"
else
        complete "$D/store-disk" "$D/cache-disk" "$clean" --lock "$D/tiny-disk.lock" --no-disk
fi

t_end
