#!/bin/bash
# Package a site's trusted image signing keys as the RPM slipway-keys, in a
# repository of its own that an image definition adds next to its others:
#
#   images/keys-repo.sh OUTDIR KEYDIR [VERSION]
#
# KEYDIR holds the *.pub files (slipway-build keygen KEY PUB). The image's
# agent trusts exactly these keys, in the OS and in the PXE initramfs.
#
# The RPM is signed with the repository's own OpenPGP key
# (images/sign-rpms.sh), made on the first run and kept in OUTDIR-gnupg; the
# public key is OUTDIR/RPM-GPG-KEY-slipway-keys, for the definition's gpgkey:
#
#   [repo keys]
#   baseurl = OUTDIR
#   gpgkey = OUTDIR/RPM-GPG-KEY-slipway-keys
set -euo pipefail

die() { echo "keys-repo: error: $*" >&2; exit 1; }

[ $# -eq 2 ] || [ $# -eq 3 ] || die "usage: $0 OUTDIR KEYDIR [VERSION]"
here=$(cd "$(dirname "$0")" && pwd)
keys=$(cd "$2" 2>/dev/null && pwd) || die "no key directory $2"
ls "$keys"/*.pub >/dev/null 2>&1 || die "no *.pub files in $keys"
version=${3:-1}
for t in rpmbuild rpmsign gpg createrepo_c; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} LC_ALL=C TZ=UTC
mkdir -p "$(dirname "$1")"
out=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
tmp=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/top/BUILD" "$tmp/top/tmp" "$tmp/repo/Packages"
rpmbuild -bb --define "_topdir $tmp/top" --define "_builddir $tmp/top/BUILD" \
    --define "_buildrootdir $tmp/top/BUILDROOT" --define "_tmppath $tmp/top/tmp" \
    --define "_rpmdir $tmp/repo/Packages" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "_buildhost slipway" --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" --define "_binary_payload w9.gzdio" \
    --define "keys_dir $keys" --define "keys_version $version" \
    "$here/slipway-keys.spec" >"$tmp/rpmbuild.log" 2>&1 ||
    { cat "$tmp/rpmbuild.log" >&2; die "rpmbuild failed"; }
"$here/sign-rpms.sh" -n "Slipway site keys repository" "$out-gnupg" "$tmp/repo/RPM-GPG-KEY-slipway-keys" \
    "$tmp"/repo/Packages/*.rpm >/dev/null || die "signing failed"
createrepo_c --quiet --no-database --workers 1 --revision "$SOURCE_DATE_EPOCH" \
    --set-timestamp-to-revision "$tmp/repo" >/dev/null
rm -rf "$out"
mv "$tmp/repo" "$out"
echo "keys-repo: $out: $(cd "$out/Packages" && echo *.rpm) ($(ls "$keys"/*.pub | wc -l) keys)"
