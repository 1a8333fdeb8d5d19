#!/bin/bash
# make bench: Slipway's figures side by side with the tools people would
# otherwise use, from one run on this machine. Prints ratios; never fails
# because the machine is slow.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=$TOP/build/bin/slipway-build
REPO=$TOP/build/sample-repo
D=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench.XXXXXX")
trap 'rm -rf "$D"' EXIT
export SOURCE_DATE_EPOCH=1700000000
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
PKGS="tiny-base kernel busybox"

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

sed -e "s|^baseurl = .*|baseurl = $REPO|" "$TOP/images/tiny.conf" >"$D/tiny.conf"
"$B" keygen "$D/k.key" "$D/k.pub" >/dev/null

echo "== image build: slipway-build vs dnf --installroot + mkfs.erofs ($PKGS)"
# Both cold: no metadata or package cache.
t=$(date +%s%N)
SLIPWAY_CACHE=$D/cache "$B" -q --store "$D/store" build --key "$D/k.key" --lock "$D/l.lock" --no-disk \
        "$D/tiny.conf" >/dev/null || echo "slipway-build failed"
slip=$(ms "$t")

t=$(date +%s%N)
dnf -q -y --installroot="$D/dnfroot" --releasever=1 --setopt=reposdir=/dev/null \
        --setopt=cachedir="$D/dnfcache" --repofrompath=local,"file://$REPO" --nogpgcheck \
        --setopt=install_weak_deps=0 install $PKGS >/dev/null 2>&1 || echo "dnf failed"
mkfs.erofs -q -T "$SOURCE_DATE_EPOCH" "$D/dnf.erofs" "$D/dnfroot" >/dev/null 2>&1 || echo "mkfs.erofs failed"
dnf_ms=$(ms "$t")

printf '  %-40s %8s ms\n' "slipway-build (resolve..publish, no disk)" "$slip"
printf '  %-40s %8s ms\n' "dnf --installroot + mkfs.erofs" "$dnf_ms"
printf '  %-40s %8s    (aim <= 0.5)\n' "ratio slipway/dnf" "$(ratio "$slip" "$dnf_ms")"

t=$(date +%s%N)
SLIPWAY_CACHE=$D/cache "$B" -q --store "$D/store" build --key "$D/k.key" --lock "$D/l.lock" --no-disk --locked \
        "$D/tiny.conf" >/dev/null
printf '  %-40s %8s ms   (aim < 1000)\n' "rebuild of an unchanged lock" "$(ms "$t")"

t=$(date +%s%N)
SLIPWAY_CACHE=$D/cache "$B" -q --store "$D/store" build --key "$D/k.key" --lock "$D/l.lock" --no-disk --locked \
        --force "$D/tiny.conf" >/dev/null
printf '  %-40s %8s ms\n' "forced rebuild, warm package cache" "$(ms "$t")"

t=$(date +%s%N)
SLIPWAY_CACHE=$D/cache "$B" -q --store "$D/store" build --key "$D/k.key" --lock "$D/l.lock" --locked \
        --image-version 1.1 "$D/tiny.conf" >/dev/null
printf '  %-40s %8s ms\n' "build with the GPT disk (libguestfs)" "$(ms "$t")"
