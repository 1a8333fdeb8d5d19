#!/bin/bash
# Integration tests of slipway-build against the sample repository: builds,
# reproducibility, the cache, inspect/verify/export, and every kind of bad
# input (each must fail with one clear message and publish nothing).
. "$(dirname "$0")/../lib.sh"
t_begin build

B=$BIN/slipway-build
REPO=$TOP/build/sample-repo
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$T_DIR/cache
D=$T_DIR
KEY=$D/keys/signing.key
PUB=$D/keys/signing.pub

# A definition of the sample image pointing at the sample repository.
write_def() { # FILE [EXTRA-SECTION-TEXT]
        sample_def "$1"
        [ $# -lt 2 ] || printf '%s\n' "$2" >>"$1"
}

# The sample repository's signing key: fingerprint, and key ID (its end).
# gpg reads keys here, never from the user's home.
export GNUPGHOME=$D/gnupg
mkdir -p -m 0700 "$GNUPGHOME"
FPR=$(gpg --batch --with-colons --show-keys "$REPO/RPM-GPG-KEY-slipway-sample" 2>/dev/null |
        awk -F: '$1 == "fpr" { print tolower($10); exit }')
KEYID=${FPR:24}

# bad_repo NAME VARIANT: a copy of the sample repository (hard links) at
# $D/NAME whose busybox is a signature-variants.sh VARIANT (unsigned, other-key,
# broken); prints that file's sha256.
bad_repo() {
        local dir=$D/$1 rpm
        [ -d "$D/bad-rpms" ] || "$TOP/tests/data/repo-specs/signature-variants.sh" \
                "$(ls "$REPO"/Packages/busybox-*.rpm)" "$D/bad-rpms" >/dev/null
        rm -rf "$dir"
        cp -al "$REPO" "$dir"
        rpm=$(ls "$dir"/Packages/busybox-*.rpm)
        rm -f "$rpm"
        cp "$D/bad-rpms/$2.rpm" "$rpm"
        createrepo_c -q "$dir" >/dev/null
        sha256sum <"$rpm" | cut -d' ' -f1
}

images_in() { # STORE: number of published images
        [ -f "$1/catalog.db" ] || { echo 0; return; }
        sqlite3 "$1/catalog.db" 'SELECT count(*) FROM images'
}

t_case keygen
if $B keygen "$KEY" "$PUB" >/dev/null && [ "$(stat -c %a "$KEY")" = 600 ] &&
        expect_fail "already exists" $B keygen "$KEY" "$PUB"; then t_ok; else t_fail "key mode $(stat -c %a "$KEY" 2>&1), or a second keygen did not refuse"; fi

write_def "$D/tiny.conf"

t_case "build v1"
start=$(date +%s%N)
if id1=$($B --store "$D/store" build --key "$KEY" --lock "$D/tiny.lock" --no-disk "$D/tiny.conf" 2>"$D/build1.log") &&
        [ ${#id1} -eq 64 ] && [ -f "$D/tiny.lock" ]; then
        t_ok "$((($(date +%s%N) - start) / 1000000)) ms"
else
        t_fail "$(cat "$D/build1.log")"
fi

t_case "the lock and the manifest carry the signing key"
# every package signed by the sample key, the repository checked with it
lock_keys=$(jq -r '[.packages[].key_id] | unique | join(" ")' "$D/tiny.lock" 2>&1)
manifest_keys=$($B --store "$D/store" inspect --json tiny:1.0 | jq -c '.manifest.lock.repos[0] | [.gpgcheck, .keys]' 2>&1)
if [ ${#FPR} -eq 40 ] && [ "$lock_keys" = "$KEYID" ] &&
        [ "$(jq -c '.repos[0] | [.gpgcheck, .keys]' "$D/tiny.lock")" = "[true,[\"$FPR\"]]" ] &&
        [ "$manifest_keys" = "[true,[\"$FPR\"]]" ] &&
        $B --store "$D/store" inspect tiny:1.0 | grep -q "^  sample  *key $FPR"; then
        t_ok
else
        t_fail "key $FPR, lock: $lock_keys, manifest: $manifest_keys"
fi

t_case "progress in a pipe is plain lines"
if grep -q '^==> resolve' "$D/build1.log" && grep -q '^==> publish' "$D/build1.log" &&
        ! grep -q $'\r' "$D/build1.log"; then t_ok; else t_fail "$(head -5 "$D/build1.log")"; fi

t_case "inspect lists packages and artifacts"
out=$($B --store "$D/store" inspect tiny:1.0)
if grep -q '^  busybox-' <<<"$out" && grep -q '^  kernel-' <<<"$out" && grep -q '^  tiny-base-' <<<"$out" &&
        grep -q '^  rootfs ' <<<"$out" && grep -q '^  initrd ' <<<"$out" && grep -q "$id1" <<<"$out"; then
        t_ok
else
        t_fail "$out"
fi

t_case "verify checks signature and hashes"
if $B --store "$D/store" verify --key "$PUB" "$id1" >/dev/null; then t_ok; else t_fail "verify failed"; fi

t_case "unchanged rebuild comes from the cache"
rm -f "$D/tiny.lock"
start=$(date +%s%N)
id1b=$($B --store "$D/store" build --key "$KEY" --lock "$D/tiny.lock" --no-disk "$D/tiny.conf" 2>"$D/build1b.log")
ms=$((($(date +%s%N) - start) / 1000000))
# the lock it writes is the published image's, signing keys included
if [ "$id1b" = "$id1" ] && grep -q unchanged "$D/build1b.log" &&
        [ "$(jq -r '.packages[0].key_id' "$D/tiny.lock")" = "$KEYID" ]; then
        t_ok "${ms} ms"
else
        t_fail "$id1b vs $id1, lock: $(head -c 300 "$D/tiny.lock")"
fi

t_case "reproducible: a second store and cache, from the lock alone"
if id2=$(SLIPWAY_CACHE=$D/cache2 $B --store "$D/store2" build --locked --key "$KEY" --lock "$D/tiny.lock" \
        --no-disk "$D/tiny.conf" 2>"$D/build2.log") && [ "$id2" = "$id1" ] &&
        diff -r "$D/store/blobs" "$D/store2/blobs" >/dev/null; then
        t_ok
else
        t_fail "ids $id1 / ${id2:-none}: $(tail -3 "$D/build2.log")"
fi

t_case "a lock from before signatures were checked (format 1) still builds"
jq 'del(.packages[].key_id, .repos[].gpgcheck, .repos[].keys) | .format = 1' "$D/tiny.lock" >"$D/old.lock"
if id2b=$($B --store "$D/store3" build --locked --key "$KEY" --lock "$D/old.lock" --no-disk "$D/tiny.conf" \
        2>"$D/build2b.log") && [ "$id2b" = "$id1" ]; then
        t_ok
else
        t_fail "ids $id1 / ${id2b:-none}: $(tail -3 "$D/build2b.log")"
fi

t_case "a second version gets another ID"
tiny_def "$D/tiny-2.0.conf" 2.0
if id3=$($B --store "$D/store" build --key "$KEY" --lock "$D/tiny-2.0.lock" --no-disk "$D/tiny-2.0.conf" \
        2>"$D/build3.log") && [ "$id3" != "$id1" ] && [ "$(images_in "$D/store")" = 2 ]; then
        t_ok
else
        t_fail "$(tail -3 "$D/build3.log")"
fi

t_case "export writes the artifacts"
if $B --store "$D/store" export tiny:2.0 "$D/export" >/dev/null && [ -s "$D/export/manifest.json" ] &&
        [ -s "$D/export/vmlinuz" ] && [ -s "$D/export/initrd.img" ] && [ -s "$D/export/rootfs.erofs" ] &&
        [ "$(sha256sum <"$D/export/manifest.json" | cut -d' ' -f1)" = "$id3" ]; then
        t_ok
else
        t_fail "export incomplete"
fi

t_case "an exported file is a copy: changing it leaves the store intact"
rootfs=$(jq -r '.artifacts[] | select(.type == "rootfs") | .sha256' "$D/export/manifest.json")
blob=$D/store/blobs/sha256/${rootfs:0:2}/$rootfs
printf 'appended by the user' >>"$D/export/rootfs.erofs"
if [ "$(stat -c %h "$blob")" = 1 ] && [ "$(sha256sum <"$blob" | cut -c1-64)" = "$rootfs" ] &&
        $B --store "$D/store" verify --key "$PUB" tiny:2.0 >"$D/verify-export.log" 2>&1; then
        t_ok
else
        t_fail "blob links $(stat -c %h "$blob"), sha256 $(sha256sum <"$blob" | cut -c1-12), $(tail -2 "$D/verify-export.log")"
fi

t_case "each version carries its own tiny-base: the lock and /etc/os-release say 1.0, then 2.0"
$B --store "$D/store" export tiny:1.0 "$D/export-1.0" >/dev/null
ok=1 seen=""
for v in 1.0 2.0; do
        lock=$D/tiny.lock exp=$D/export-1.0
        [ $v = 2.0 ] && lock=$D/tiny-2.0.lock exp=$D/export
        in_lock=$(jq -r '.packages[] | select(.name == "tiny-base") | .version' "$lock")
        fsck.erofs --extract="$D/root-$v" "$exp/rootfs.erofs" >"$D/extract-$v.log" 2>&1
        os=$(sed -n 's/^VERSION_ID=//p' "$D/root-$v/etc/os-release" 2>/dev/null)
        release=$(sed -n 's/^VERSION=//p' "$D/root-$v/etc/slipway/release" 2>/dev/null)
        seen="$seen $v: lock $in_lock, os-release $os, release $release;"
        [ "$in_lock" = $v ] && [ "$os" = $v ] && [ "$release" = $v ] || ok=0
done
if [ $ok = 1 ]; then t_ok; else t_fail "$seen $(tail -2 "$D"/extract-*.log)"; fi

t_case "verify catches a corrupted artifact"
cp -a "$D/store" "$D/store-bad"
blob=$D/store-bad/blobs/sha256/${rootfs:0:2}/$rootfs
chmod u+w "$blob"
printf 'X' | dd of="$blob" bs=1 seek=4096 conv=notrunc 2>/dev/null
if expect_fail "artifact 'rootfs' .* is corrupt" $B --store "$D/store-bad" verify --key "$PUB" tiny:2.0; then t_ok; else t_fail "the corrupt rootfs was not found"; fi

t_case "verify with the wrong key"
$B keygen "$D/other.key" "$D/other.pub" >/dev/null
if expect_fail "signature of tiny 2.0 does not match key" $B --store "$D/store" verify --key "$D/other.pub" tiny:2.0; then
        t_ok
else
        t_fail "the wrong key was not refused"
fi

t_case "a published version is immutable"
sed -i 's/^cmdline = .*/cmdline = console=ttyS0 changed/' "$D/tiny.conf"
if expect_fail "already exists with another ID" $B --store "$D/store" build --key "$KEY" --lock "$D/tiny.lock" \
        --no-disk "$D/tiny.conf" && [ "$(images_in "$D/store")" = 2 ]; then t_ok; else t_fail "images in the store: $(images_in "$D/store")"; fi
write_def "$D/tiny.conf"

# ---- bad input: each fails with one message naming what and where ----
n_before=$(images_in "$D/store")

t_case "unknown key"
write_def "$D/bad.conf" $'[image]\nflavour = vanilla'
line=$(grep -n flavour "$D/bad.conf" | cut -d: -f1)
if expect_fail "bad.conf:$line: unknown key 'flavour'" $B --store "$D/store" build --key "$KEY" \
        --image-version 9.1 --lock "$D/bad.lock" "$D/bad.conf"; then t_ok; else t_fail "the unknown key was not refused with its line"; fi

t_case "missing package"
write_def "$D/bad.conf"
sed -i 's/^install = .*/install = tiny-base no-such-package/' "$D/bad.conf"
if expect_fail "package 'no-such-package' not found" $B --store "$D/store" build --key "$KEY" \
        --image-version 9.2 --lock "$D/bad.lock" "$D/bad.conf"; then t_ok; else t_fail "the unknown package was not refused"; fi

t_case "conflicting packages"
CREPO=$D/conflict-repo
mkdir -p "$CREPO"
cp "$REPO"/Packages/*.rpm "$CREPO"/ 2>/dev/null || cp "$REPO"/*.rpm "$CREPO"/
for p in alpha beta; do
        other=$([ $p = alpha ] && echo beta || echo alpha)
        cat >"$D/$p.spec" <<SPEC
Name: conflict-$p
Version: 1
Release: 1
Summary: test package that conflicts with conflict-$other
License: MIT
BuildArch: noarch
Conflicts: conflict-$other
%description
Conflicts with conflict-$other.
%files
SPEC
        rpmbuild -bb --quiet --define "_topdir $D/rpmbuild" --define "_rpmdir $CREPO" "$D/$p.spec" >/dev/null 2>&1
done
createrepo_c -q "$CREPO" >/dev/null
write_def "$D/bad.conf"
sed -i -e "s|^baseurl = .*|baseurl = $CREPO|" -e 's/^install = .*/install = tiny-base kernel conflict-alpha conflict-beta/' "$D/bad.conf"
if expect_fail "cannot resolve" $B --store "$D/store" build --key "$KEY" --image-version 9.3 \
        --lock "$D/bad.lock" "$D/bad.conf"; then t_ok; else t_fail "the conflict was not refused"; fi

t_case "an RPM whose digest does not match"
TREPO=$D/tampered-repo
cp -a "$REPO" "$TREPO"
rpm=$(find "$TREPO" -name 'busybox-*.rpm' | head -1)
printf 'tampered' | dd of="$rpm" bs=1 seek=2000 conv=notrunc 2>/dev/null
write_def "$D/bad.conf"
sed -i "s|^baseurl = .*|baseurl = $TREPO|" "$D/bad.conf"
if expect_fail "busybox.*sha256 mismatch" env SLIPWAY_CACHE="$D/cache-tampered" $B --store "$D/store" build \
        --key "$KEY" --image-version 9.4 --lock "$D/bad.lock" "$D/bad.conf" &&
        [ -z "$(find "$D/cache-tampered/rpms" -name '*.rpm' -newer "$rpm" 2>/dev/null | xargs -r grep -l tampered)" ]; then
        t_ok
else
        t_fail "the tampered RPM was not refused, or it entered the cache"
fi

t_case "an unsigned RPM"
sha=$(bad_repo unsigned-repo unsigned)
write_def "$D/bad.conf"
sed -i "s|^baseurl = .*|baseurl = $D/unsigned-repo|" "$D/bad.conf"
if expect_fail "package 'busybox-[^']*' from repository 'sample' refused: it is not signed" $B --store "$D/store" \
        build --key "$KEY" --image-version 9.41 --lock "$D/sig.lock" "$D/bad.conf" &&
        [ ! -e "$SLIPWAY_CACHE/rpms/$sha.rpm" ] && [ ! -e "$D/sig.lock" ]; then
        t_ok
else
        t_fail "the unsigned RPM was not refused, or it entered the cache, or a lock was written"
fi

t_case "an RPM signed with a key the repository does not list"
sha=$(bad_repo other-key-repo other-key)
other=$(gpg --batch --with-colons --show-keys "$D/bad-rpms/other-key.asc" 2>/dev/null |
        awk -F: '$1 == "fpr" { print tolower($10); exit }')
sed -i "s|^baseurl = .*|baseurl = $D/other-key-repo|" "$D/bad.conf"
if expect_fail "package 'busybox-[^']*' from repository 'sample' refused: signed with key ${other:24}, which is not" \
        $B --store "$D/store" build --key "$KEY" --image-version 9.42 --lock "$D/sig.lock" "$D/bad.conf" &&
        [ -n "$other" ] && [ ! -e "$SLIPWAY_CACHE/rpms/$sha.rpm" ]; then
        t_ok
else
        t_fail "the RPM of another key (${other:-none}) was not refused, or it entered the cache"
fi

t_case "an RPM whose signature was broken"
sha=$(bad_repo broken-repo broken)
sed -i "s|^baseurl = .*|baseurl = $D/broken-repo|" "$D/bad.conf"
if expect_fail "package 'busybox-[^']*' from repository 'sample' refused: bad signature \(key $KEYID\)" \
        $B --store "$D/store" build --key "$KEY" --image-version 9.43 --lock "$D/sig.lock" "$D/bad.conf" &&
        [ ! -e "$SLIPWAY_CACHE/rpms/$sha.rpm" ]; then
        t_ok
else
        t_fail "the broken signature was not refused, or the RPM entered the cache"
fi

t_case "gpgcheck on without a gpgkey"
write_def "$D/bad.conf"
sed -i '/^gpgkey = /d' "$D/bad.conf"
line=$(grep -n '^baseurl = ' "$D/bad.conf" | cut -d: -f1)
if expect_fail "bad.conf:$line: repository 'sample' has gpgcheck on but no gpgkey" $B --store "$D/store" \
        build --key "$KEY" --image-version 9.44 --lock "$D/bad.lock" "$D/bad.conf" &&
        expect_fail "bad.conf:$line: repository 'sample' has gpgcheck on but no gpgkey" $B check "$D/bad.conf"; then
        t_ok
else
        t_fail "not refused"
fi

t_case "an unreachable repository"
write_def "$D/bad.conf"
sed -i "s|^baseurl = .*|baseurl = http://127.0.0.1:9/repo|" "$D/bad.conf"
if expect_fail "repository 'sample' at http://127.0.0.1:9/repo is unreachable" $B --store "$D/store" build \
        --key "$KEY" --image-version 9.5 --lock "$D/bad.lock" "$D/bad.conf"; then t_ok; else t_fail "the unreachable repository was not reported"; fi

t_case "a missing signing key"
if expect_fail "signing key '$D/nokey' does not exist" $B --store "$D/store" build --key "$D/nokey" \
        --image-version 9.6 --lock "$D/bad.lock" "$D/tiny.conf"; then t_ok; else t_fail "the missing key was not reported"; fi

t_case "a wrong signing key (a public key)"
if expect_fail "signing key '$PUB' is not an Ed25519 private key" $B --store "$D/store" build --key "$PUB" \
        --image-version 9.7 --lock "$D/bad.lock" "$D/tiny.conf"; then t_ok; else t_fail "the public key was not refused"; fi

t_case "a version with '+' is refused, naming it and what a version may hold"
# Boot entries count their tries with "+N": the agent could not install it.
write_def "$D/bad.conf"
sed -i 's/^version = .*/version = 1.0+1/' "$D/bad.conf"
line=$(grep -n '^version' "$D/bad.conf" | cut -d: -f1)
rule="1 to 64 ASCII letters, digits and \. _ - ~ \^"
if expect_fail "bad.conf:$line: invalid version '1\.0\+1' \(a version is $rule" $B --store "$D/store" build \
        --key "$KEY" --lock "$D/bad.lock" "$D/bad.conf" &&
        expect_fail "invalid --image-version '2\.0\+git5' \(a version is $rule" $B --store "$D/store" build \
                --key "$KEY" --image-version 2.0+git5 --lock "$D/bad.lock" "$D/tiny.conf"; then t_ok; else t_fail "a version with '+' was not refused"; fi

t_case "a definition without a version names --image-version"
write_def "$D/bad.conf"
sed -i '/^version = /d' "$D/bad.conf"
if expect_fail "bad.conf: \[image\] version is missing \(or pass --image-version\)$" $B --store "$D/store" build \
        --key "$KEY" --lock "$D/bad.lock" "$D/bad.conf"; then t_ok; else t_fail "the missing version was not reported"; fi

t_case "usage errors (a wrong number of arguments, --token with --token-file): exit 2 and one line"
bad=
for args in "build" "build $D/tiny.conf $D/tiny.conf" "check" "keygen $D/k1" "list x" "inspect" "verify a b" \
        "export tiny:1.0" "push http://127.0.0.1:1"; do
        # shellcheck disable=SC2086 # the words of args are the arguments
        err=$($B --store "$D/store" $args 2>&1 >/dev/null)
        rc=$?
        verb=${args%% *}
        if [ $rc != 2 ] || [ "$(printf '%s\n' "$err" | wc -l)" != 1 ] ||
                ! printf '%s\n' "$err" | grep -q "^slipway-build: usage: slipway-build $verb"; then
                bad+="'$args': exit $rc, $err; "
        fi
done
err=$($B --store "$D/store" push --token x --token-file "$D/none" http://127.0.0.1:1 tiny:1.0 2>&1 >/dev/null)
rc=$?
[ $rc = 2 ] && [ "$err" = "slipway-build: --token and --token-file cannot be used together" ] ||
        bad+="push with --token and --token-file: exit $rc, $err"
if [ -z "$bad" ] && [ ! -e "$D/k1" ]; then t_ok; else t_fail "$bad"; fi

t_case "nothing was published by the failures"
if [ "$(images_in "$D/store")" = "$n_before" ]; then t_ok; else t_fail "$(images_in "$D/store") images, expected $n_before"; fi

t_case "gpgcheck = 0 builds, and says so loudly"
bad_repo unsigned-repo unsigned >/dev/null
write_def "$D/lab.conf"
sed -i -e "s|^baseurl = .*|baseurl = $D/unsigned-repo|" -e 's/^gpgcheck = .*/gpgcheck = 0/' "$D/lab.conf"
if idl=$($B --store "$D/store-lab" build --key "$KEY" --image-version 8.0 --lock "$D/lab.lock" --no-disk \
        "$D/lab.conf" 2>"$D/lab.log") &&
        [ "$(grep -c "^slipway-build: warning: repository 'sample' has gpgcheck = 0: its packages are NOT checked" \
                "$D/lab.log")" = 1 ] &&
        [ "$(jq -c '[.repos[0].gpgcheck, .repos[0].keys, ([.packages[] | select(.key_id)] | length)]' "$D/lab.lock")" = \
                '[false,[],0]' ] &&
        [ "$($B --store "$D/store-lab" inspect --json "$idl" | jq -c '.manifest.lock.repos[0].gpgcheck')" = false ] &&
        $B --store "$D/store-lab" inspect "$idl" | grep -q "^  sample  *NOT CHECKED (gpgcheck = 0)"; then
        t_ok
else
        t_fail "$(cat "$D/lab.log")"
fi

t_case "a store on a full file system"
if [ "$(id -u)" = 0 ]; then
        mkdir -p "$D/full"
        mount -t tmpfs -o size=4m tmpfs "$D/full"
        if expect_fail "store '$D/full/store' is full" $B --store "$D/full/store" build --key "$KEY" \
                --lock "$D/tiny.lock" --locked --no-disk "$D/tiny.conf" &&
                [ "$(images_in "$D/full/store")" = 0 ] && [ -z "$(ls -A "$D/full/store/tmp")" ]; then
                t_ok
        else
                t_fail "images in the full store: $(images_in "$D/full/store"), tmp: $(ls -A "$D/full/store/tmp" 2>&1)"
        fi
        umount "$D/full"
else
        t_skip "needs root for a small tmpfs"
fi

# ---- the boot chain and the tools: from the image's own packages ----------

build_key_of() { # STORE ID: the build key the catalog holds for the image
        sqlite3 "$1/catalog.db" "SELECT build_key FROM images WHERE id = '$2'"
}

t_case "the disk's systemd-boot comes from the image's systemd-boot-efi package"
# The manifest names the lock's NEVRA and the sha256 of the package's file,
# and both copies on the ESP are that file.
sb_rpm=$(ls "$REPO"/Packages/systemd-boot-efi-*.rpm)
sb_nevra=$(rpm -qp --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}' "$sb_rpm" 2>/dev/null)
mkdir -p "$D/sb-rpm"
(cd "$D/sb-rpm" && rpm2cpio "$sb_rpm" | cpio -idm --quiet ./usr/lib/systemd/boot/efi/systemd-bootx64.efi)
sb_sha=$(sha256sum <"$D/sb-rpm/usr/lib/systemd/boot/efi/systemd-bootx64.efi" | cut -d' ' -f1)
host_sha=$(sha256sum </usr/lib/systemd/boot/efi/systemd-bootx64.efi 2>/dev/null | cut -d' ' -f1)
bad=""
if idd=$($B --store "$D/store-disk" build --key "$KEY" --lock "$D/tiny.lock" --locked "$D/tiny.conf" \
        2>"$D/disk.log"); then
        boot=$($B --store "$D/store-disk" inspect --json "$idd" | jq -c '.manifest.boot["systemd-boot"]')
        want="{\"package\":\"$sb_nevra\",\"path\":\"/usr/lib/systemd/boot/efi/systemd-bootx64.efi\","
        want+="\"sha256\":\"$sb_sha\",\"source\":\"package\"}"
        [ "$boot" = "$want" ] || bad+="manifest boot: $boot (expected $sb_nevra, $sb_sha); "
        $B --store "$D/store-disk" inspect "$idd" |
                grep -qF "  systemd-boot /usr/lib/systemd/boot/efi/systemd-bootx64.efi  from package $sb_nevra" ||
                bad+="inspect does not name the package; "
        ! grep -q "warning" "$D/disk.log" || bad+="a warning: $(grep warning "$D/disk.log"); "
        mkdir -p "$D/disk-out"
        $B --store "$D/store-disk" export "$idd" "$D/disk-out" >/dev/null || bad+="export failed; "
        # the ESP is the first partition; sgdisk gives its first sector and size in sectors
        esp_start=$(sgdisk -i 1 "$D/disk-out/disk.img" | awk '/^First sector:/ { print $3 }')
        esp_sectors=$(sgdisk -i 1 "$D/disk-out/disk.img" | awk '/^Partition size:/ { print $3 }')
        dd if="$D/disk-out/disk.img" of="$D/esp.img" bs=512 skip="$esp_start" count="$esp_sectors" status=none
        for f in ::/EFI/BOOT/BOOTX64.EFI ::/EFI/systemd/systemd-bootx64.efi; do
                rm -f "$D/esp.efi"
                MTOOLS_SKIP_CHECK=1 mcopy -i "$D/esp.img" "$f" "$D/esp.efi"
                got=$(sha256sum <"$D/esp.efi" | cut -d' ' -f1)
                [ "$got" = "$sb_sha" ] || bad+="$f on the ESP is $got, not the package's $sb_sha; "
        done
else
        bad+="the build failed: $(tail -5 "$D/disk.log")"
fi
if [ -z "$bad" ]; then
        t_ok "$sb_nevra$([ "$sb_sha" != "$host_sha" ] || echo ", the same file as this host's")"
else
        t_fail "$bad"
fi

t_case "without systemd-boot-efi the ESP gets the build host's, with a warning naming it"
sample_def "$D/nosb.conf" -e 's/^install = \(.*\) systemd-boot-efi$/install = \1/' -e 's/^version = .*/version = 9.0/'
if [ ! -f /usr/lib/systemd/boot/efi/systemd-bootx64.efi ] || ! command -v dpkg-query >/dev/null; then
        t_skip "this host has no systemd-boot from dpkg"
elif idn=$($B --store "$D/store-disk" build --key "$KEY" --lock "$D/nosb.lock" "$D/nosb.conf" 2>"$D/nosb.log") &&
        host_pkg=$(dpkg-query -W -f '${Package} ${Version}' systemd-boot-efi) &&
        grep -qF "slipway-build: warning: the image has no systemd-boot (no package installs /usr/lib/systemd/boot/efi/systemd-bootx64.efi): the ESP gets the build host's /usr/lib/systemd/boot/efi/systemd-bootx64.efi ($host_pkg)" "$D/nosb.log" &&
        [ "$($B --store "$D/store-disk" inspect --json "$idn" | jq -c '.manifest.boot["systemd-boot"] | [.source, .package, .sha256]')" = \
                "[\"build host\",\"$host_pkg\",\"$host_sha\"]" ] &&
        ! jq -e '.packages[] | select(.name == "systemd-boot-efi")' "$D/nosb.lock" >/dev/null; then
        t_ok
else
        t_fail "$(cat "$D/nosb.log")"
fi

t_case "the manifest and inspect name the tools that made the image"
tools=$($B --store "$D/store-disk" inspect --json "$idd" | jq -c '.manifest.tools | keys')
erofs_v=$(mkfs.erofs --version 2>&1 | awk '$1 == "mkfs.erofs" { print $2; exit }')
nodisk_tools=$($B --store "$D/store" inspect --json "$id1" | jq -c '.manifest.tools')
if [ "$tools" = '["libguestfs","libzstd","mke2fs","mkfs.erofs","mkfs.fat","mtools","zlib"]' ] &&
        [ "$(jq -c 'del(.libzstd, .zlib)' <<<"$nodisk_tools")" = "{\"mkfs.erofs\":\"$erofs_v\"}" ] &&
        jq -e '.libzstd | test("^1\\.[0-9]")' <<<"$nodisk_tools" >/dev/null &&
        jq -e '.zlib | test("^1\\.[0-9]")' <<<"$nodisk_tools" >/dev/null &&
        $B --store "$D/store" inspect "$id1" | grep -q "^  mkfs.erofs   $erofs_v\$"; then
        t_ok
else
        t_fail "tools of the disk image: $tools, of the --no-disk image: $nodisk_tools"
fi

t_case "another mkfs.erofs version is another build key (the real tool still makes the same bytes)"
# A mkfs.erofs first in PATH that reports another version and hands every
# real run to the real tool.
real_erofs=$(command -v mkfs.erofs)
mkdir -p "$D/shim"
printf '#!/bin/sh\ncase "$1" in --version|-V) echo "mkfs.erofs 1.5.99-test"; exit 0 ;; esac\nexec %s "$@"\n' \
        "$real_erofs" >"$D/shim/mkfs.erofs"
chmod +x "$D/shim/mkfs.erofs"
bad=""
ids=$(PATH=$D/shim:$PATH $B --store "$D/store-shim" build --key "$KEY" --lock "$D/tiny.lock" --locked --no-disk \
        "$D/tiny.conf" 2>"$D/shim.log") || bad+="the build failed: $(tail -3 "$D/shim.log"); "
if [ -z "$bad" ]; then
        k1=$(build_key_of "$D/store" "$id1") ks=$(build_key_of "$D/store-shim" "$ids")
        { [ ${#k1} = 64 ] && [ ${#ks} = 64 ] && [ "$k1" != "$ks" ]; } || bad+="build keys '$k1' and '$ks'; "
        [ "$ids" != "$id1" ] || bad+="the same image ID; "
        [ "$($B --store "$D/store-shim" inspect --json "$ids" | jq -r '.manifest.tools["mkfs.erofs"]')" = 1.5.99-test ] ||
                bad+="the manifest does not name the other version; "
        rootfs_sha() { $B --store "$1" inspect --json "$2" | jq -r '.manifest.artifacts[] | select(.type == "rootfs") | .sha256'; }
        [ "$(rootfs_sha "$D/store" "$id1")" = "$(rootfs_sha "$D/store-shim" "$ids")" ] ||
                bad+="another rootfs although the real tool made it; "
        # the real tool again in that store: not "unchanged", it builds (and
        # meets the version it already holds)
        $B --store "$D/store-shim" build --key "$KEY" --lock "$D/tiny.lock" --locked --no-disk "$D/tiny.conf" \
                >/dev/null 2>"$D/shim2.log"
        ! grep -q unchanged "$D/shim2.log" || bad+="the real mkfs.erofs found the shim's image unchanged; "
        grep -q "already exists with another ID" "$D/shim2.log" || bad+="$(tail -2 "$D/shim2.log"); "
fi
if [ -z "$bad" ]; then t_ok; else t_fail "$bad"; fi

t_case "--timings prints each phase on one line"
if $B --store "$D/store-t" build --key "$KEY" --lock "$D/tiny.lock" --locked --no-disk --timings -q "$D/tiny.conf" \
        2>"$D/timings.log" >/dev/null &&
        grep -Eq '^timings: lock [0-9]+ ms, tools [0-9]+ ms, fetch [0-9]+ ms, install [0-9]+ ms, mkfs [0-9]+ ms, initramfs [0-9]+ ms, artifacts [0-9]+ ms, boot [0-9]+ ms, publish [0-9]+ ms, total [0-9]+ ms$' \
                "$D/timings.log"; then
        t_ok "$(cat "$D/timings.log")"
else
        t_fail "$(cat "$D/timings.log")"
fi

t_end
