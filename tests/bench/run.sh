#!/bin/bash
# make bench: Slipway's figures side by side with the tools people would
# otherwise use, from one run on this machine. Prints ratios; never fails
# because the machine is slow. A peer that fails shows "n/a" and the first
# lines of its output, never a figure.
#
# BENCH_RUNS (default 5): timed runs per figure; the median is printed.
# An argument "checkins" runs the check-in figures alone, "build" the image
# build figures alone.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=$TOP/build/bin/slipway-build
REPO=$TOP/build/sample-repo
D=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench.XXXXXX")
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
        rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export SOURCE_DATE_EPOCH=1700000000
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
# The package list both sides install: images/tiny.conf's, with each
# "NAME = VERSION" as dnf spells it (NAME-VERSION), so that both ask for the
# same thing; the NEVRAs they install are compared before any timing.
read -ra PKGS < <(sed -n 's/^install = //p' "$TOP/images/tiny.conf" | sed 's/ = /-/g')
RUNS=${BENCH_RUNS:-5}
# What builder/rootfs.c passes to mkfs.erofs (keep the two in step), so that
# both sides make the same kind of filesystem.
EROFS_FLAGS=(--quiet -zlz4hc --max-extent-bytes=32768 "-T$SOURCE_DATE_EPOCH" -U6c1d3f0e-8a52-4b8e-9d17-0f2a6b4c9e31)
# The compress hints builder/rootfs-hints.c writes for the tiny root, spelled
# by hand: its compressed-data suffixes, and the kernel image (a bzImage,
# found by its content by the builder). For the figure of dnf's side given
# what the builder does beyond the flags.
HINTS_TEXT='0 \.(gz|tgz|xz|txz|zst|bz2|lz4|zip|jar|png|jpg|jpeg|woff2|rpm)$
0 ^lib/modules/[^/]*/vmlinuz$'
# PEERS.md's recipe: the sample repo only, nothing from the host's repos;
# signatures checked against the repository's key, as slipway-build does.
# shellcheck disable=SC2054 # the comma belongs to --repofrompath
DNF_FLAGS=(-y --releasever=1 --setopt=reposdir=/dev/null --repofrompath=local,"file://$REPO"
        --setopt=local.gpgcheck=1 --setopt=local.gpgkey="file://$REPO/RPM-GPG-KEY-slipway-sample"
        --setopt=install_weak_deps=0)

now() { date +%s%N; }
ms() { echo $((($(now) - $1) / 1000000)); }
is_num() { [[ $1 =~ ^[0-9]+$ ]]; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
add_ms() { if is_num "$1" && is_num "$2"; then echo $(($1 + $2)); else echo n/a; fi; }
median() { tr ' ' '\n' | grep -E '^[0-9]+$' | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "n/a" }'; }
# row LABEL VALUE [UNIT...]: one line of the table; n/a goes without the unit.
row() {
        local unit=${3:-}
        [ "$2" = n/a ] && unit=${unit#ms}
        printf '    %-44s %8s %s\n' "$1" "$2" "$unit" | sed 's/ *$//'
}

# timed LABEL CMD...: runs CMD with its output in $D/last.log and sets T to
# the elapsed ms. On failure T=n/a, and LABEL and the first lines of the
# output are shown.
timed() {
        local label=$1 t0 rc
        shift
        t0=$(now)
        "$@" >"$D/last.log" 2>&1
        rc=$?
        T=$(ms "$t0")
        if [ $rc -ne 0 ]; then
                T=n/a
                echo "    $label failed (exit $rc); its first lines of output:"
                sed -n '1,12s/^/      | /p' "$D/last.log"
        fi
        return $rc
}

# slipway DIR ARGS...: a build with DIR's cache, store and lock; its
# --timings line goes to the log with the rest of stderr.
slipway() {
        local dir=$1
        shift
        SLIPWAY_CACHE=$dir/cache "$B" -q --store "$dir/store" build --key "$D/k.key" --lock "$dir/l.lock" --no-disk \
                --timings "$@" "$D/tiny.conf"
}

# phase_ms PHASE: the ms of PHASE in the last build's --timings line, or n/a.
phase_ms() {
        sed -n "s/^timings:.* $1 \([0-9]*\) ms[,]*.*/\1/p" "$D/last.log" | grep . || echo n/a
}

# Per-phase figures of the cold builds: "phase ms ms ..." lines in $D/phases.
# mkfs and initramfs run side by side; artifacts is the two together.
PHASES="resolve tools fetch install mkfs initramfs artifacts boot publish"
phases_add() {
        local p
        for p in $PHASES; do
                echo "$p $(phase_ms "$p")" >>"$D/phases"
        done
}
phases_rows() {
        local p
        for p in $PHASES; do
                row "  of which $p" "$(awk -v p="$p" '$1 == p { print $2 }' "$D/phases" | tr '\n' ' ' | median)" ms
        done
}

# slipway_disk DIR: the same, a new version, with the GPT disk; no image ID.
slipway_disk() {
        SLIPWAY_CACHE=$1/cache "$B" -q --store "$1/store" build --key "$D/k.key" --lock "$1/l.lock" --locked \
                --timings --image-version 1.1 "$D/tiny.conf" >/dev/null
}

# dnf_install ROOT CACHE: dnf into an empty ROOT with the metadata cache CACHE.
dnf_install() {
        dnf "${DNF_FLAGS[@]}" --installroot="$1" --setopt=cachedir="$2" install "${PKGS[@]}"
}

# dnf_build ROOT CACHE: dnf, then mkfs.erofs; sets DNF_T and MKFS_T (ms or n/a).
dnf_build() {
        MKFS_T=n/a
        timed "dnf --installroot" dnf_install "$1" "$2"
        DNF_T=$T
        is_num "$DNF_T" || return 1
        timed "mkfs.erofs" mkfs.erofs "${EROFS_FLAGS[@]}" "$1.erofs" "$1"
        MKFS_T=$T
        is_num "$MKFS_T"
}

# mkfs_hinted ROOT: mkfs.erofs of ROOT with HINTS_TEXT; sets HINTED_T.
mkfs_hinted() {
        printf '%s\n' "$HINTS_TEXT" >"$D/hints"
        timed "mkfs.erofs --compress-hints" mkfs.erofs "${EROFS_FLAGS[@]}" --compress-hints="$D/hints" "$1.hinted" "$1"
        HINTED_T=$T
        rm -f "$1.hinted"
}

# The NEVRAs of a lock, and of what dnf installed, one a line, sorted.
lock_nevras() {
        python3 -c 'import json, sys
for p in json.load(open(sys.argv[1]))["packages"]:
    print("%s-%s-%s.%s" % (p["name"], p["version"], p["release"], p["arch"]))' "$1" | sort
}
words() { tr '\n' ' ' | sed 's/ *$//'; }
# (dnf records the repository key it imported as a gpg-pubkey "package")
root_nevras() { rpm --root "$1" -qa --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n' | grep -v '^gpg-pubkey-' | sort; }

# The same coordinator behind slipwayd's HTTP API: 10,000 registered hosts
# checking in as fast as 8 connections go, each asking for its reboot lease
# every 10th turn, on sqlite, on one slipwayd on PostgreSQL and on three
# sharing its database; then the coordinator's tick during a rollout of
# those hosts on sqlite and on PostgreSQL (tests/bench/checkins.sh).
fleet_checkins() {
        echo
        "$TOP/tests/bench/checkins.sh" || echo "check-ins bench: broken (exit $?)"
}

# "build": the image build figures alone.
# "checkins": the check-in figures alone (slipwayd against nginx, then at
# fleet scale), without the image build, blob, agent and rollout parts.
if [ "${1:-}" = checkins ]; then
        "$TOP/tests/bench/server.sh" checkins || echo "server bench: broken (exit $?)"
        fleet_checkins
        exit 0
fi

sed -e "s|^baseurl = .*|baseurl = $REPO|" -e "s|^gpgkey = .*|gpgkey = $REPO/RPM-GPG-KEY-slipway-sample|" \
        "$TOP/images/tiny.conf" >"$D/tiny.conf"
"$B" keygen "$D/k.key" "$D/k.pub" >/dev/null
# Both sides read the same RPMs: have them in the page cache for both.
cat "$REPO"/Packages/*.rpm "$REPO"/repodata/* >/dev/null

echo "== image build: slipway-build vs dnf --installroot + mkfs.erofs (${PKGS[*]})"
echo "   median of $RUNS timed runs; same repo, signatures checked on both sides, same mkfs.erofs flags"
echo "   (builder/rootfs.c)"

# Untimed first runs: they fill the warm caches, load the programs from disk
# and show whether either side works at all.
slip_ok=1 dnf_ok=1
mkdir -p "$D/s-warm" "$D/d-warm"
timed "slipway-build" slipway "$D/s-warm" || slip_ok=0
dnf_build "$D/d-warm/root0" "$D/d-warm/cache" || dnf_ok=0
if [ $slip_ok = 1 ] && [ $dnf_ok = 1 ]; then
        if [ "$(lock_nevras "$D/s-warm/l.lock")" = "$(root_nevras "$D/d-warm/root0")" ]; then
                echo "   same package set: $(lock_nevras "$D/s-warm/l.lock" | words)"
        else
                # Figures for two different package sets would compare nothing.
                echo "   the package sets differ, no figures; slipway: $(lock_nevras "$D/s-warm/l.lock" | words)"
                echo "                                             dnf: $(root_nevras "$D/d-warm/root0" | words)"
                slip_ok=0 dnf_ok=0
        fi
fi
rm -rf "$D/d-warm/root0" "$D/d-warm/root0.erofs"

# Cold: no metadata or package cache on either side (a fresh cache, store and
# root every run). The two alternate so that neither gets a quieter machine.
s_cold="" d_cold="" dnf_only="" mkfs_only="" d_hinted=""
for _ in $(seq "$RUNS"); do
        if [ $slip_ok = 1 ]; then
                mkdir -p "$D/s-cold"
                timed "slipway-build" slipway "$D/s-cold" || slip_ok=0
                s_cold+=" $T"
                phases_add
                rm -rf "$D/s-cold"
        fi
        if [ $dnf_ok = 1 ]; then
                dnf_build "$D/d-cold/root" "$D/d-cold/cache" || dnf_ok=0
                d_cold+=" $(add_ms "$DNF_T" "$MKFS_T")" dnf_only+=" $DNF_T" mkfs_only+=" $MKFS_T"
                mkfs_hinted "$D/d-cold/root" && d_hinted+=" $(add_ms "$DNF_T" "$HINTED_T")"
                rm -rf "$D/d-cold"
        fi
done
s=$(median <<<"$s_cold") d=$(median <<<"$d_cold")
echo "  cold (empty caches)"
row "slipway-build --no-disk (resolve..publish)" "$s" ms
phases_rows
row "dnf --installroot + mkfs.erofs" "$d" ms
row "  of which dnf" "$(median <<<"$dnf_only")" ms
row "  of which mkfs.erofs" "$(median <<<"$mkfs_only")" ms
echo "    (mkfs and initramfs run side by side; dnf's side makes no initramfs)"
row "ratio slipway/dnf" "$(ratio "$s" "$d")" "     (aim <= 0.5)"
h=$(median <<<"$d_hinted")
row "dnf + mkfs.erofs with the builder's hints" "$h" ms
row "ratio slipway/that" "$(ratio "$s" "$h")"
echo "    (the builder stores files whose content is compressed already as they are;"
echo "     dnf's side gets the same hints by hand in the second figure)"

# Warm: repository metadata and packages cached from the first runs. dnf
# resolves every time, and so does slipway-build without --locked; --force
# makes it build instead of finding the image already in the store.
s_warm="" s_locked="" d_warm=""
for _ in $(seq "$RUNS"); do
        if [ $slip_ok = 1 ]; then
                timed "slipway-build --force" slipway "$D/s-warm" --force || slip_ok=0
                s_warm+=" $T"
                timed "slipway-build --force --locked" slipway "$D/s-warm" --force --locked || slip_ok=0
                s_locked+=" $T"
        fi
        if [ $dnf_ok = 1 ]; then
                dnf_build "$D/d-warm/root" "$D/d-warm/cache" || dnf_ok=0
                d_warm+=" $(add_ms "$DNF_T" "$MKFS_T")"
                rm -rf "$D/d-warm/root" "$D/d-warm/root.erofs"
        fi
done
s=$(median <<<"$s_warm") d=$(median <<<"$d_warm")
echo "  warm (metadata and packages cached)"
row "slipway-build --no-disk --force" "$s" ms
row "dnf --installroot + mkfs.erofs" "$d" ms
row "ratio slipway/dnf" "$(ratio "$s" "$d")"
row "slipway-build --no-disk --force --locked" "$(median <<<"$s_locked")" ms

echo "  slipway-build alone"
if [ $slip_ok = 1 ]; then
        timed "slipway-build --locked" slipway "$D/s-warm" --locked
        row "rebuild of an unchanged lock" "$T" "ms   (aim < 1000)"
        row "  of which lock, tools (probing their versions)" "$(phase_ms lock), $(phase_ms tools)" ms
        # With the disk: the only figure that starts libguestfs (and, with
        # --guestfs-accel=auto, the KVM probe); its notes are shown.
        if timed "slipway-build with the disk" slipway_disk "$D/s-warm"; then
                grep -v '^timings:' "$D/last.log" | sed 's/^/      | /'
        fi
        row "build with the GPT disk (libguestfs)" "$T" ms
        row "  of which disk" "$(phase_ms disk)" ms
else
        row "rebuild of an unchanged lock" n/a
fi

[ "${1:-}" = build ] && exit 0

# The server against nginx, the agent against dd and rauc, the coordinator
# at fleet scale: each prints its own table.
echo
"$TOP/tests/bench/server.sh" || echo "server bench: broken (exit $?)"
echo
"$TOP/tests/bench/backup.sh" || echo "backup bench: broken (exit $?)"
echo
"$TOP/tests/bench/migrate.sh" || echo "migrate bench: broken (exit $?)"
if [ -x "$TOP/tests/bench/agent.sh" ] || [ -f "$TOP/tests/bench/agent.sh" ]; then
        echo
        bash "$TOP/tests/bench/agent.sh" || echo "agent bench: broken (exit $?)"
fi
if [ -x "$TOP/build/fleet/sim" ]; then
        echo
        echo "== coordinator: 10,000 virtual hosts (tests/fleet/sim)"
        "$TOP/tests/fleet/run.sh" bench 2>&1 | sed 's/^/  /'
fi
fleet_checkins
# The fleet page in headless Chromium at 10,000 hosts: the first render and
# how it keeps up with a rollout of all of them (tests/bench/page.sh).
echo
"$TOP/tests/bench/page.sh" || echo "page bench: broken (exit $?)"
# 500 real agents through a rollout: its time against the budgets' lower
# bound (the last line of tests/fleet/agents.sh), without faults (the
# coordinator's own pace; make test-fleet runs the same with stopped hosts,
# failing hosts and a kill -9).
echo
echo "== rollout: 500 slipway-agent processes, 1 per rack and 10% of a service down, 2 s reboots (tests/fleet/agents.sh)"
FLEET_FAULTS=0 "$TOP/tests/fleet/agents.sh" 2>&1 | grep -E '^(ok|FAIL) +fleet: (rollout time|a rollout of)' |
        sed 's/^/  /'
echo "  (aim: ratio <= 1.10)"
