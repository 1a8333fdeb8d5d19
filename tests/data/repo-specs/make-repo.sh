#!/bin/bash
# Builds the fixture RPMs of fixtures.spec, and of versioned.spec in three
# versions, into OUTDIR/Packages, signs them with a key of their own (kept in
# OUTDIR-gnupg, its public key written to OUTDIR/RPM-GPG-KEY-fixture) and
# makes OUTDIR an rpm-md repository with
# createrepo_c. Used by the unit tests.
#
#   tests/data/repo-specs/make-repo.sh OUTDIR
#
# Exits 77 (skip) when rpmbuild, createrepo_c, gpg or rpmsign is missing.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
for t in rpmbuild createrepo_c gpg rpmsign; do
    command -v "$t" >/dev/null || { echo "make-repo: $t is not installed" >&2; exit 77; }
done
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
top=$out/.rpmbuild
mkdir -p "$top/tmp" "$out/Packages"
export SOURCE_DATE_EPOCH=1700000000 LC_ALL=C TZ=UTC

rpmb() { # SPEC [RPMBUILD-OPTION...]
    local spec=$1
    shift
    rpmbuild -bb \
        --define "_topdir $top" \
        --define "_builddir $top/BUILD" \
        --define "_buildrootdir $top/BUILDROOT" \
        --define "_tmppath $top/tmp" \
        --define "_rpmdir $out/Packages" \
        --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
        --define "_binary_payload w9.gzdio" \
        --define "_binary_filedigest_algorithm 8" \
        --define "use_source_date_epoch_as_buildtime 1" \
        "$@" "$here/$spec" >"$top/rpmbuild.log" 2>&1 ||
        { cat "$top/rpmbuild.log" >&2; echo "make-repo: rpmbuild $spec $* failed" >&2; exit 1; }
}
rpmb fixtures.spec
for v in 1.0 2.0 3.0; do
    rpmb versioned.spec --define "pkg_version $v"
done
rm -rf "$top"
"$here/../../../images/sign-rpms.sh" -n "Slipway test fixtures" "$out-gnupg" "$out/RPM-GPG-KEY-fixture" \
    "$out"/Packages/*.rpm >/dev/null
createrepo_c --quiet --no-database --workers 1 "$out" >/dev/null
