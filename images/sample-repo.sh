#!/bin/bash
# Build Slipway's sample RPM repository (rpm-md, createrepo_c) into OUTDIR.
#
#   images/sample-repo.sh build/sample-repo [build/bin/slipway-agent]
#
# The RPMs repackage real Debian 12 binaries: busybox-static, the kernel
# that linux-image-amd64 currently depends on and systemd-boot-efi (the
# image's own boot loader); slipway-agent is packaged
# from the given binary with the Debian libraries it is linked with. Downloaded .debs are cached in
# OUTDIR/../debs, rpmbuild works under OUTDIR/../rpmbuild (emptied after). Every RPM is
# signed with the repository's own key (images/sign-rpms.sh), made on the first run and
# kept in OUTDIR-gnupg; its public key is OUTDIR/RPM-GPG-KEY-slipway-sample. The repository is
# assembled in a temporary directory and renamed into OUTDIR at the end, so a
# rerun replaces it cleanly and an interrupted run leaves the old one intact.
#
# Reproducible: SOURCE_DATE_EPOCH (default 1700000000) is the build time, the
# clamp for every file mtime and the repodata revision/timestamp; with the
# same .debs and the same key the RPMs and the repodata come out byte-identical.
set -euo pipefail

die() { echo "sample-repo: error: $*" >&2; exit 1; }
step() { echo "sample-repo: $*"; }

[ $# -eq 1 ] || [ $# -eq 2 ] || die "usage: $0 OUTDIR [SLIPWAY-AGENT]"
agent=$(readlink -f "${2:-$(dirname "$0")/../build/bin/slipway-agent}")
[ -x "$agent" ] || die "no slipway-agent binary at $agent (make all first)"
here=$(cd "$(dirname "$0")" && pwd)
specs=$here/specs
mkdir -p "$(dirname "$1")"
parent=$(cd "$(dirname "$1")" && pwd)
out=$parent/$(basename "$1")
debs=$parent/debs
top=$parent/rpmbuild
gnupg=$out-gnupg
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export LC_ALL=C TZ=UTC
arch=x86_64

for t in apt-get apt-cache dpkg-deb rpmbuild rpmsign gpg createrepo_c depmod modinfo ldd; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done

# --- 1. resolve the Debian packages -------------------------------------
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-[0-9]/ && !found++ { print $2 }')
if [ -z "$kpkg" ]; then
    # No apt lists: fall back to whatever kernel is in the cache.
    kpkg=$(ls "$debs" 2>/dev/null | sed -n 's/^\(linux-image-[0-9][^_]*-amd64\)_.*\.deb$/\1/p' |
           sort -V | tail -n1)
fi
[ -n "$kpkg" ] || die "cannot resolve the kernel package behind linux-image-amd64 (apt-get update?)"
step "packages: busybox-static $kpkg systemd-boot-efi"

# --- 2. download (cached) -----------------------------------------------
mkdir -p "$debs"
# fetch PKG -> $fetched: the cached .deb of apt's candidate version
fetch() {
    local pkg=$1 ver file part
    ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" && !found++ { print $2 }')
    if [ -n "$ver" ] && [ "$ver" != "(none)" ]; then
        file=$debs/${pkg}_${ver//:/%3a}_amd64.deb
        if [ ! -s "$file" ]; then
            part=$(mktemp -d "$debs/.partial.XXXXXX")
            (cd "$part" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) ||
                { rm -rf "$part"; die "apt-get download $pkg=$ver failed"; }
            mv "$part"/*.deb "$file"
            rm -rf "$part"
            step "downloaded $(basename "$file")"
        else
            step "cached $(basename "$file")"
        fi
    else
        file=$(ls "$debs/${pkg}"_*_amd64.deb 2>/dev/null | sort -V | tail -n1)
        [ -n "$file" ] || die "no candidate for $pkg and nothing cached"
        step "cached (no apt candidate) $(basename "$file")"
    fi
    fetched=$file
}
fetch busybox-static; bb_deb=$fetched
fetch "$kpkg"; k_deb=$fetched
fetch systemd-boot-efi; sb_deb=$fetched

# --- 3. extract -----------------------------------------------------------
# (about 2 s for the kernel; not cached, the tree is 400 MB and goes away below)
# extract DEB -> $extracted: the extracted tree
extract() {
    local deb=$1 dir
    dir=$top/deb-root/$(basename "$deb" .deb)
    rm -rf "$dir"
    mkdir -p "$dir"
    dpkg-deb -x "$deb" "$dir"
    step "extracted $(basename "$deb")"
    extracted=$dir
}
extract "$bb_deb"; bb_root=$extracted
extract "$k_deb"; k_root=$extracted
extract "$sb_deb"; sb_root=$extracted

# Debian version "1:1.35.0-4+deb12u1+b1" -> RPM version 1.35.0, release 4.deb12u1.b1
upstream() { local v=${1#*:}; echo "${v%-*}"; }
revision() { local v=${1#*:}; case "$v" in *-*) v=${v##*-} ;; *) v=1 ;; esac
             echo "$v" | tr -c 'A-Za-z0-9.~\n' '.'; }
bb_ver=$(dpkg-deb -f "$bb_deb" Version)
k_ver=$(dpkg-deb -f "$k_deb" Version)
sb_ver=$(dpkg-deb -f "$sb_deb" Version)
kver=$(ls "$k_root/lib/modules")
[ "$(echo "$kver" | wc -w)" -eq 1 ] || die "expected one module dir in $k_deb, got: $kver"
[ -f "$k_root/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $k_deb"
step "busybox-static $bb_ver, $kpkg $k_ver (kernel $kver)"

# --- 4. rpmbuild ----------------------------------------------------------
tmp=$(mktemp -d "$parent/.$(basename "$out").tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rm -rf "$top/BUILD" "$top/BUILDROOT" "$top/tmp"
mkdir -p "$top/BUILD" "$top/tmp" "$tmp/Packages"

rpmb() {
    local spec=$1; shift
    rpmbuild -bb --target "$arch" \
        --define "_topdir $top" \
        --define "_builddir $top/BUILD" \
        --define "_buildrootdir $top/BUILDROOT" \
        --define "_tmppath $top/tmp" \
        --define "_rpmdir $tmp/Packages" \
        --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
        --define "_buildhost slipway" \
        --define "source_date_epoch_from_changelog 0" \
        --define "use_source_date_epoch_as_buildtime 1" \
        --define "clamp_mtime_to_source_date_epoch 1" \
        --define "_binary_payload w9.gzdio" \
        --define "_binary_filedigest_algorithm 8" \
        --define "_enable_debug_packages 0" \
        --define "debug_package %{nil}" \
        --define "_build_id_links none" \
        --define "__os_install_post %{nil}" \
        --define "__arch_install_post %{nil}" \
        --define "_changelog_trimtime 0" \
        "$@" "$specs/$spec" >"$top/tmp/rpmbuild.log" 2>&1 ||
        { cat "$top/tmp/rpmbuild.log" >&2; die "rpmbuild $spec $* failed"; }
}

rpmb busybox.spec --define "deb_root $bb_root" \
    --define "bb_version $(upstream "$bb_ver")" --define "bb_release $(revision "$bb_ver")"
step "built busybox $(upstream "$bb_ver")-$(revision "$bb_ver")"
rpmb kernel.spec --define "deb_root $k_root" --define "kver $kver" \
    --define "kernel_version $(upstream "$k_ver")" --define "kernel_release $(revision "$k_ver")"
step "built kernel $(upstream "$k_ver")-$(revision "$k_ver"): $(sed -n 's/^kernel.spec: \([^ ]*\) <-.*/\1/p' "$top/tmp/rpmbuild.log" | sort | tr '\n' ' ')"
rpmb systemd-boot-efi.spec --define "deb_root $sb_root" \
    --define "sb_version $(upstream "$sb_ver")" --define "sb_release $(revision "$sb_ver")"
step "built systemd-boot-efi $(upstream "$sb_ver")-$(revision "$sb_ver")"
# One tiny-base per release of the sample image: each release's definition
# installs "tiny-base = VERSION", so 1.0 and 2.0 differ in what they carry.
for v in 1.0 2.0 3.0 4.0; do
    rpmb tiny-base.spec --define "tiny_version $v"
    step "built tiny-base $v-1"
done
rpmb tiny-broken.spec
step "built tiny-broken 1.0-1"
rpmb tiny-identity.spec
step "built tiny-identity 1.0-1"
agent_version=$("$agent" --version 2>/dev/null | awk '{ print $NF; exit }')
rpmb slipway-agent.spec --define "agent_bin $agent" --define "agent_version ${agent_version:-0.1}"
step "built slipway-agent ${agent_version:-0.1}-1 from $agent"
rm -rf "$top/BUILD" "$top/BUILDROOT" "$top/deb-root"

# --- 4b. sign ---------------------------------------------------------------
fpr=$("$here/sign-rpms.sh" -n "Slipway sample repository" "$gnupg" "$tmp/RPM-GPG-KEY-slipway-sample" \
      "$tmp"/Packages/*.rpm) || die "signing failed"
step "signed with key $fpr (RPM-GPG-KEY-slipway-sample)"

# --- 5. repodata ------------------------------------------------------------
find "$tmp" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
createrepo_c --quiet --no-database --workers 1 \
    --revision "$SOURCE_DATE_EPOCH" --set-timestamp-to-revision "$tmp" >/dev/null
chmod 0755 "$tmp"
step "createrepo_c: $(ls "$tmp/Packages" | wc -l) packages"

# --- 6. swap into place -----------------------------------------------------
if [ -e "$out" ]; then
    rm -rf "$out.old"
    mv "$out" "$out.old"
fi
mv "$tmp" "$out"
trap - EXIT
rm -rf "$out.old"
step "repository ready: $out ($(cd "$out/Packages" && echo *.rpm))"
