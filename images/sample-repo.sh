#!/bin/bash
# Build Slipway's sample RPM repository (rpm-md, createrepo_c) into OUTDIR.
#
#   images/sample-repo.sh build/sample-repo [build/bin/slipway-agent]
#   images/sample-repo.sh --base build/base-repo [build/bin/slipway-agent]
#
# The RPMs repackage real Debian 12 binaries: busybox-static, the kernel
# that linux-image-amd64 currently depends on, systemd-boot-efi (the
# image's own boot loader), and for images that boot through GRUB: shim-signed
# and grub-efi-amd64-signed (the Secure Boot chain, signed by Microsoft and
# Debian) and grub-pc-bin (GRUB for BIOS); slipway-agent is packaged
# from the given binary with the Debian libraries it is linked with. Downloaded .debs are cached in
# OUTDIR/../debs, rpmbuild works under OUTDIR/../rpmbuild (emptied after). Every RPM is
# signed with the repository's own key (images/sign-rpms.sh), made on the first run and
# kept in OUTDIR-gnupg; its public key is OUTDIR/RPM-GPG-KEY-slipway-sample. The repository is
# assembled in a temporary directory and renamed into OUTDIR at the end, so a
# rerun replaces it cleanly and an interrupted run leaves the old one intact.
#
# --base builds the repository of Slipway Base (images/base.conf) instead:
# systemd as PID 1, udev, dbus, systemd-networkd, sshd and the agent as a
# service. Its RPMs are sets of Debian 12 packages (images/specs/deb-set.spec):
# each set names a few packages, apt resolves what they need against the
# host's package lists as for an empty system, and the set gets whatever no
# earlier set has. base-release (os-release, accounts, unit configuration)
# stands in for Debian's base-files and maintainer scripts; base-broken is a
# release whose service fails, for the tests. Its rpmbuild tree
# is OUTDIR/../rpmbuild-base, so both repositories can be built at once.
#
# Reproducible: SOURCE_DATE_EPOCH (default 1700000000) is the build time, the
# clamp for every file mtime and the repodata revision/timestamp; with the
# same .debs and the same key the RPMs and the repodata come out byte-identical.
set -euo pipefail

die() { echo "sample-repo: error: $*" >&2; exit 1; }
step() { echo "sample-repo: $*"; }

image=tiny
if [ "${1:-}" = --base ]; then
    image=base
    shift
fi
[ $# -eq 1 ] || [ $# -eq 2 ] || die "usage: $0 [--base] OUTDIR [SLIPWAY-AGENT]"
agent=$(readlink -f "${2:-$(dirname "$0")/../build/bin/slipway-agent}")
[ -x "$agent" ] || die "no slipway-agent binary at $agent (make all first)"
here=$(cd "$(dirname "$0")" && pwd)
specs=$here/specs
mkdir -p "$(dirname "$1")"
parent=$(cd "$(dirname "$1")" && pwd)
out=$parent/$(basename "$1")
debs=$parent/debs
top=$parent/rpmbuild
keyname=RPM-GPG-KEY-slipway-sample
if [ "$image" = base ]; then
    top=$parent/rpmbuild-base
    keyname=RPM-GPG-KEY-slipway-base
fi
gnupg=$out-gnupg
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export LC_ALL=C TZ=UTC
arch=x86_64

for t in apt-get apt-cache dpkg-deb rpmbuild rpmsign gpg createrepo_c depmod modinfo ldd; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
if [ "$image" = base ]; then
    command -v systemd-sysusers >/dev/null || die "missing tool: systemd-sysusers"
    command -v dpkg >/dev/null || die "missing tool: dpkg"
fi

# --- 1. resolve the Debian packages -------------------------------------
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-[0-9]/ && !found++ { print $2 }')
if [ -z "$kpkg" ]; then
    # No apt lists: fall back to whatever kernel is in the cache.
    kpkg=$(ls "$debs" 2>/dev/null | sed -n 's/^\(linux-image-[0-9][^_]*-amd64\)_.*\.deb$/\1/p' |
           sort -V | tail -n1)
fi
[ -n "$kpkg" ] || die "cannot resolve the kernel package behind linux-image-amd64 (apt-get update?)"
if [ "$image" = tiny ]; then
    step "packages: busybox-static $kpkg systemd-boot-efi shim-signed grub-efi-amd64-signed grub-pc-bin"
fi

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
if [ "$image" = tiny ]; then
    fetch busybox-static; bb_deb=$fetched
fi
fetch "$kpkg"; k_deb=$fetched
fetch systemd-boot-efi; sb_deb=$fetched
fetch shim-signed; shim_deb=$fetched
fetch grub-efi-amd64-signed; ge_deb=$fetched
fetch grub-pc-bin; gp_deb=$fetched

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
if [ "$image" = tiny ]; then
    extract "$bb_deb"; bb_root=$extracted
fi
extract "$k_deb"; k_root=$extracted
extract "$sb_deb"; sb_root=$extracted
extract "$shim_deb"; shim_root=$extracted
extract "$ge_deb"; ge_root=$extracted
extract "$gp_deb"; gp_root=$extracted

# Debian version "1:1.35.0-4+deb12u1+b1" -> RPM version 1.35.0, release 4.deb12u1.b1
upstream() { local v=${1#*:}; echo "${v%-*}"; }
revision() { local v=${1#*:}; case "$v" in *-*) v=${v##*-} ;; *) v=1 ;; esac
             echo "$v" | tr -c 'A-Za-z0-9.~\n' '.'; }
bb_ver=
[ "$image" = base ] || bb_ver=$(dpkg-deb -f "$bb_deb" Version)
k_ver=$(dpkg-deb -f "$k_deb" Version)
sb_ver=$(dpkg-deb -f "$sb_deb" Version)
kver=$(ls "$k_root/lib/modules")
[ "$(echo "$kver" | wc -w)" -eq 1 ] || die "expected one module dir in $k_deb, got: $kver"
[ -f "$k_root/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $k_deb"
step "${bb_ver:+busybox-static $bb_ver, }$kpkg $k_ver (kernel $kver)"

# --- 3b. base: the Debian package sets --------------------------------------
# Each set: its RPM name, the Debian packages it is built around, and the one
# whose version it carries ("-": none, version 12 for Debian 12). In this
# order, each set gets what its packages need and no earlier set holds.
# agent-libs is what slipway-agent is linked with: dpkg -S of its libraries.
base_sets=(base-system systemd openssh-server agent-libs)
declare -A set_top set_lead
set_top[base-system]="base-passwd bash dash coreutils login util-linux mount findutils grep sed gzip procps iproute2 kmod less ncurses-base libc-bin busybox-static"
set_lead[base-system]=-
set_top[systemd]="systemd systemd-sysv systemd-resolved udev dbus"
set_lead[systemd]=systemd
set_top[openssh-server]="openssh-server"
set_lead[openssh-server]=openssh-server
set_lead[agent-libs]=-
# Taken as present: they only serve dpkg and maintainer scripts (debconf
# and perl, the usr merge), or base-release does their work.
base_skip="dpkg debconf perl-base usrmerge usr-is-merged init-system-helpers adduser ucf runit-helper sensible-utils base-files"

# deb_of FILE: the Debian package that holds FILE on this host.
deb_of() {
    local f real
    real=$(readlink -f "$1")
    for f in "$1" "$real" "${real#/usr}"; do
        dpkg -S "$f" 2>/dev/null | sed -n '1s/[:,].*//p' | grep . && return 0
    done
    return 1
}

# installed PKG=VERSION...: dpkg status stanzas saying each is installed,
# without its dependencies, so that apt leaves it and what it needs alone.
installed() {
    apt-cache show "$@" 2>/dev/null | awk '
        /^$/ { if (p) print "Status: install ok installed\n"; p = 0; next }
        /^(Package|Version|Architecture|Multi-Arch|Provides):/ { print; p = 1 }
        END { if (p) print "Status: install ok installed\n" }'
}

if [ "$image" = base ]; then
    mkdir -p "$top/sets"
    set_top[agent-libs]=$(ldd "$agent" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
        while read -r lib; do deb_of "$lib" || die "no Debian package holds $lib"; done | sort -u | tr '\n' ' ')
    status=$top/sets/status
    : >"$status"
    # shellcheck disable=SC2086
    installed $(apt-cache policy $base_skip 2>/dev/null |
        awk '/^[^ ]/ { p = $1; sub(/:$/, "", p) } $1 == "Candidate:" && $2 != "(none)" { print p "=" $2 }') >>"$status"
    for s in "${base_sets[@]}"; do
        # "Inst libc6 (2.36-9+deb12u14 Debian-Security:12/stable-security [amd64])"
        # shellcheck disable=SC2086
        apt-get -q -s -o Dir::State::status="$status" install --no-install-recommends ${set_top[$s]} \
            >"$top/sets/$s.apt" 2>&1 || { cat "$top/sets/$s.apt" >&2; die "apt cannot resolve set $s"; }
        awk '$1 == "Inst" { for (i = 3; i <= NF; i++) if ($i ~ /^\(/) break; v = $i; sub(/^\(/, "", v); print $2, v }' "$top/sets/$s.apt" | LC_ALL=C sort >"$top/sets/$s.list"
        [ -s "$top/sets/$s.list" ] || die "set $s is empty"
        # shellcheck disable=SC2046
        installed $(awk '{ print $1 "=" $2 }' "$top/sets/$s.list") >>"$status"
        step "set $s: $(wc -l <"$top/sets/$s.list") Debian packages (${set_top[$s]})"
    done

    # Download what the cache lacks in one apt-get call, then extract.
    missing=()
    for s in "${base_sets[@]}"; do
        while read -r p v; do
            [ -s "$debs/${p}_${v//:/%3a}_amd64.deb" ] || missing+=("$p=$v")
        done <"$top/sets/$s.list"
    done
    if [ ${#missing[@]} -gt 0 ]; then
        part=$(mktemp -d "$debs/.partial.XXXXXX")
        (cd "$part" && apt-get download -q "${missing[@]}" >/dev/null 2>&1) ||
            { rm -rf "$part"; die "apt-get download failed for some of: ${missing[*]}"; }
        for f in "$part"/*.deb; do
            p=$(dpkg-deb -f "$f" Package)
            v=$(dpkg-deb -f "$f" Version)
            mv "$f" "$debs/${p}_${v//:/%3a}_amd64.deb"
        done
        rm -rf "$part"
        step "downloaded ${#missing[@]} .debs"
    fi
    rm -rf "$top/sysusers"
    mkdir -p "$top/sysusers"
    for s in "${base_sets[@]}"; do
        : >"$top/sets/$s.roots"
        : >"$top/sets/$s.deps"
        while read -r p v; do
            extract "$debs/${p}_${v//:/%3a}_amd64.deb" >/dev/null
            dpkg-deb -f "$debs/${p}_${v//:/%3a}_amd64.deb" Pre-Depends Depends |
                sed 's/^[A-Za-z-]*: //' | tr ',|' '\n\n' | awk '{ sub(/:.*/, "", $1); if ($1 != "") print $1 }' \
                >>"$top/sets/$s.deps"
            echo "$extracted" >>"$top/sets/$s.roots"
            for d in "$extracted/usr/lib/sysusers.d" "$extracted/lib/sysusers.d"; do
                [ -d "$d" ] && cp "$d"/*.conf "$top/sysusers/"
            done
        done <"$top/sets/$s.list"
    done
    step "extracted the sets"
fi

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

if [ "$image" = tiny ]; then
    rpmb busybox.spec --define "deb_root $bb_root" \
        --define "bb_version $(upstream "$bb_ver")" --define "bb_release $(revision "$bb_ver")"
    step "built busybox $(upstream "$bb_ver")-$(revision "$bb_ver")"
fi
rpmb kernel.spec --define "deb_root $k_root" --define "kver $kver" \
    --define "kernel_version $(upstream "$k_ver")" --define "kernel_release $(revision "$k_ver")"
step "built kernel $(upstream "$k_ver")-$(revision "$k_ver"): $(sed -n 's/^kernel.spec: \([^ ]*\) <-.*/\1/p' "$top/tmp/rpmbuild.log" | sort | tr '\n' ' ')"
rpmb systemd-boot-efi.spec --define "deb_root $sb_root" \
    --define "sb_version $(upstream "$sb_ver")" --define "sb_release $(revision "$sb_ver")"
step "built systemd-boot-efi $(upstream "$sb_ver")-$(revision "$sb_ver")"
# rpmdeb SPEC DEB ROOT: a spec that repackages one .deb's files verbatim
rpmdeb() {
    local v
    v=$(dpkg-deb -f "$2" Version)
    rpmb "$1.spec" --define "deb_root $3" \
        --define "pkg_version $(upstream "$v")" --define "pkg_release $(revision "$v")"
    step "built $1 $(upstream "$v")-$(revision "$v")"
}
rpmdeb shim-signed "$shim_deb" "$shim_root"
rpmdeb grub-efi-amd64-signed "$ge_deb" "$ge_root"
rpmdeb grub-pc-bin "$gp_deb" "$gp_root"
agent_version=$("$agent" --version 2>/dev/null | awk '{ print $NF; exit }')
if [ "$image" = tiny ]; then
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
    rpmb slipway-agent.spec --define "agent_bin $agent" --define "agent_version ${agent_version:-0.1}"
else
    prev=()
    for s in "${base_sets[@]}"; do
        # It needs the earlier sets that hold a package its packages depend on.
        req=()
        for e in "${prev[@]}"; do
            awk 'NR == FNR { d[$1] = 1; next } ($1 in d) { found = 1 } END { exit !found }' \
                "$top/sets/$s.deps" "$top/sets/$e.list" && req+=("$e")
        done
        lead=${set_lead[$s]} sv=12 sr=1
        if [ "$lead" != - ]; then
            lv=$(awk -v p="$lead" '$1 == p { print $2 }' "$top/sets/$s.list")
            [ -n "$lv" ] || die "set $s lacks its lead package $lead"
            sv=$(upstream "$lv") sr=$(revision "$lv")
        fi
        # The release names the set's contents: a Debian update changes it.
        sr=$sr.$(sha256sum "$top/sets/$s.list" | cut -c1-8)
        rpmb deb-set.spec --define "set_name $s" --define "set_version $sv" --define "set_release $sr" \
            --define "set_summary Debian 12 packages of the $s set" \
            --define "set_roots $top/sets/$s.roots" --define "set_list $top/sets/$s.list" \
            ${req[0]:+--define "set_requires ${req[*]}"}
        step "built $s $sv-$sr${req[0]:+ (needs ${req[*]})}"
        prev+=("$s")
    done
    rpmb base-release.spec --define "base_version 1.0" --define "sysusers_dir $top/sysusers"
    step "built base-release 1.0-1"
    rpmb base-broken.spec
    step "built base-broken 1.0-1"
    rpmb slipway-agent.spec --define "agent_bin $agent" --define "agent_version ${agent_version:-0.1}" \
        --define "agent_libs 0" --define "agent_requires agent-libs" \
        --define "agent_unit $here/../agent/slipway-agent.service" \
        --define "apply_unit $here/../agent/slipway-apply-files.service"
fi
step "built slipway-agent ${agent_version:-0.1}-1 from $agent"
rm -rf "$top/BUILD" "$top/BUILDROOT" "$top/deb-root" "$top/sets" "$top/sysusers"

# --- 4b. sign ---------------------------------------------------------------
fpr=$("$here/sign-rpms.sh" -n "Slipway sample repository" "$gnupg" "$tmp/$keyname" \
      "$tmp"/Packages/*.rpm) || die "signing failed"
step "signed with key $fpr ($keyname)"

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
