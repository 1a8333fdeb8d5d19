#!/bin/bash
# Integration tests of repositories as .repo files describe them: mirrors
# served over loopback HTTP (one down, one too slow, one serving corrupt
# packages, one dropping downloads mid-way, one good), a mirrorlist and a
# metalink, $releasever and $basearch, an included .repo file, repomd.xml
# signed with a key the test makes (repo_gpgcheck), and downloads that resume.
. "$(dirname "$0")/../lib.sh"
t_begin repos

B=$BIN/slipway-build
REPO=$TOP/build/sample-repo
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$T_DIR/cache
D=$T_DIR
WWW=$D/www
KEY=$D/keys/signing.key
PUB=$D/keys/signing.pub
export GNUPGHOME=$D/gnupg

for tool in rpmbuild createrepo_c gpg python3 curl; do
        command -v $tool >/dev/null || {
                t_case setup
                t_skip "$tool is not installed"
                t_end
                exit
        }
done

# fails_with PATTERN CMD...: CMD must exit non-zero with exactly one error
# line (warnings about skipped mirrors may come before it), matching PATTERN.
fails_with() {
        local pattern=$1 err rc lines
        shift
        err=$("$@" 2>&1 >/dev/null)
        rc=$?
        LAST_ERR=$err
        if [ $rc -eq 0 ]; then
                t_fail "expected failure, got exit 0"
                return 1
        fi
        lines=$(printf '%s\n' "$err" | grep -E '^slipway-build: ' | grep -vc '^slipway-build: warning: ' || true)
        if [ "$lines" -ne 1 ]; then
                t_fail "expected one error line, got $lines: $err"
                return 1
        fi
        if ! printf '%s\n' "$err" | grep -v '^slipway-build: warning: ' | grep -q -E "$pattern"; then
                t_fail "error does not match /$pattern/: $err"
                return 1
        fi
}

# free_port: a port for a server that is not told port 0 (t_port).
free_port() { t_port; }

# start_mirror NAME MODE VAR: serves $WWW in MODE on a port of its own, put
# in VAR; the request log is $D/NAME.requests.
SERVER_PIDS=()
start_mirror() {
        local port i
        port=$(free_port)
        python3 "$TOP/tests/integration/repos-mirror.py" "$port" "$WWW" "$2" "$D/$1.requests" \
                >"$D/$1.server.log" 2>&1 &
        SERVER_PIDS+=($!)
        for ((i = 0; i < 600; i++)); do
                curl -s -o /dev/null "http://127.0.0.1:$port/" && break
                sleep 0.1
        done
        printf -v "$3" %s "$port"
}
t_on_exit 't_stop "${SERVER_PIDS[@]}"'

# sign_repomd DIR: signs DIR/repodata/repomd.xml with the default key of GNUPGHOME.
sign_repomd() {
        gpg --batch --yes --armor --detach-sign -o "$1/repodata/repomd.xml.asc" "$1/repodata/repomd.xml"
}

t_case "setup: a signed sample repository, a site repository made with rpmbuild, loopback mirrors"
mkdir -p -m 0700 "$GNUPGHOME" "$D/other-gnupg"
mkdir -p "$WWW" "$D/keys" "$D/yum.repos.d"
setup_ok=1
{
        # the repository key (repo_gpgcheck), and another one
        gpg --batch --passphrase '' --quick-gen-key "Slipway repos test <repos@test>" rsa3072 sign never &&
                gpg --batch --armor --export >"$D/repo-key.asc" &&
                GNUPGHOME=$D/other-gnupg gpg --batch --passphrase '' --quick-gen-key "Other <other@test>" \
                        rsa3072 sign never &&
                # the sample repository's packages, metadata made again and signed
                mkdir -p "$WWW/sample" && cp -al "$REPO/Packages" "$WWW/sample/" &&
                createrepo_c -q --no-database "$WWW/sample" && sign_repomd "$WWW/sample" &&
                # a site package of its own, for $basearch
                mkdir -p "$D/rpmbuild/SPECS" &&
                cat >"$D/rpmbuild/SPECS/site-hello.spec" <<'EOF' &&
Name: site-hello
Version: 1.0
Release: 1
Summary: A site's own package
License: MIT
BuildArch: noarch
%description
A file, for the repository tests.
%install
mkdir -p %{buildroot}/usr/share/site-hello
echo hello >%{buildroot}/usr/share/site-hello/hello.txt
%files
/usr/share/site-hello/hello.txt
EOF
                rpmbuild -bb --define "_topdir $D/rpmbuild" --define "_rpmdir $WWW/site/x86_64/Packages" \
                        --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
                        "$D/rpmbuild/SPECS/site-hello.spec" &&
                createrepo_c -q --no-database "$WWW/site/x86_64" && sign_repomd "$WWW/site/x86_64" &&
                # the same metadata unsigned, and signed by the other key
                mkdir -p "$WWW/unsigned" "$WWW/otherkey" &&
                cp -al "$WWW/sample/Packages" "$WWW/sample/repodata" "$WWW/unsigned/" &&
                rm "$WWW/unsigned/repodata/repomd.xml.asc" &&
                cp -al "$WWW/sample/Packages" "$WWW/otherkey/" && cp -a "$WWW/sample/repodata" "$WWW/otherkey/" &&
                GNUPGHOME=$D/other-gnupg sign_repomd "$WWW/otherkey" &&
                $B keygen "$KEY" "$PUB"
} >"$D/setup.log" 2>&1 || setup_ok=0
gpgconf --kill gpg-agent 2>/dev/null
GNUPGHOME=$D/other-gnupg gpgconf --kill gpg-agent 2>/dev/null
FPR=$(gpg --batch --with-colons --show-keys "$D/repo-key.asc" 2>/dev/null | awk -F: '$1 == "fpr" { print tolower($10); exit }')
OTHER_KEYID=$(GNUPGHOME=$D/other-gnupg gpg --batch --with-colons --list-keys 2>/dev/null |
        awk -F: '$1 == "pub" { print tolower($5); exit }')
DOWN=$(free_port) # nothing listens there
start_mirror slow slow SLOW
start_mirror corrupt corrupt CORRUPT
start_mirror drop drop DROP
start_mirror good good GOOD
if [ $setup_ok = 1 ] && [ ${#FPR} = 40 ] && [ ${#OTHER_KEYID} = 16 ] &&
        curl -sf -o /dev/null "http://127.0.0.1:$GOOD/site/x86_64/repodata/repomd.xml.asc"; then
        t_ok
else
        t_fail "$(tail -5 "$D/setup.log")"
fi

u() { # NAME PATH: the URL of PATH on mirror NAME
        local port
        case $1 in down) port=$DOWN ;; slow) port=$SLOW ;; corrupt) port=$CORRUPT ;; drop) port=$DROP ;; good) port=$GOOD ;; esac
        echo "http://127.0.0.1:$port/$2"
}

# write_def FILE REPO-SECTIONS: the sample image (release 1.0) with site-hello
# too, [image] releasever = 1, and these repositories instead of its own.
write_def() {
        sample_def "$1" -e '/^\[repo sample\]/,/^\[boot\]/{/^\[boot\]/!d}' \
                -e 's/^arch = x86_64$/arch = x86_64\nreleasever = 1/' \
                -e '/^install = /s/$/ site-hello/'
        printf '%s\n' "$2" >>"$1"
}

# The site's .repo file: a metalink whose preferred mirror is down, and a
# disabled repository.
repomd_sha=$(sha "$WWW/site/x86_64/repodata/repomd.xml")
size=$(stat -c %s "$WWW/site/x86_64/repodata/repomd.xml")
cat >"$D/site-metalink.xml" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/" type="dynamic">
 <files>
  <file name="repomd.xml">
   <size>$size</size>
   <verification><hash type="sha256">$repomd_sha</hash></verification>
   <resources maxconnections="1">
    <url protocol="http" type="http" preference="50">$(u good 'site/x86_64/repodata/repomd.xml')</url>
    <url protocol="http" type="http" preference="100">$(u down 'site/x86_64/repodata/repomd.xml')</url>
   </resources>
  </file>
 </files>
</metalink>
EOF
cat >"$D/yum.repos.d/site.repo" <<EOF
# the site's repositories, as dnf reads them
[site]
name=Site \$releasever
metalink=file://$D/site-metalink.xml?arch=\$basearch
gpgcheck=0
repo_gpgcheck=1
gpgkey=file://$D/repo-key.asc

[site-debug]
name=Site debug
baseurl=$(u down 'site-debug/$basearch')
enabled=0
EOF
# the sample repository's mirrors: its baseurl is down, then the mirrorlist's
cat >"$D/mirrorlist.txt" <<EOF
# mirrors of the sample repository
$(u slow sample)
$(u corrupt sample)
$(u drop sample)
$(u good sample)/
EOF
SAMPLE_KEY=$REPO/RPM-GPG-KEY-slipway-sample
write_def "$D/repos.conf" "[repo sample]
name = Sample \$releasever for \$basearch
baseurl = $(u down sample)
mirrorlist = $D/mirrorlist.txt
gpgcheck = 1
repo_gpgcheck = 1
gpgkey = $SAMPLE_KEY, file://$D/repo-key.asc
timeout = 2

[repos]
include = yum.repos.d/site.repo"

t_case "a build succeeds while one good mirror remains"
start=$(now_ms)
if id1=$($B --store "$D/store" build --key "$KEY" --lock "$D/repos.lock" --no-disk "$D/repos.conf" \
        2>"$D/build1.log") && [ ${#id1} -eq 64 ]; then
        t_ok "$(($(now_ms) - start)) ms"
else
        t_fail "$(grep -v '^==>' "$D/build1.log" | tail -5)"
fi

# skipped NAME WHAT REASON: the build log says mirror NAME was skipped for WHAT with REASON.
skipped() {
        grep -E "^slipway-build: warning: repository '[a-z]+': skipping mirror $(u "$1" "$2") \($3" "$D/build1.log" |
                head -1
}

t_case "each skipped mirror is logged with its reason"
down=$(skipped down sample 'repodata/repomd.xml: unreachable')
slow=$(skipped slow sample 'repodata/repomd.xml: timed out or too slow')
corrupt=$(skipped corrupt sample "'[^']+': sha256 mismatch")
drop=$(skipped drop sample "'[^']+': ")
site_down=$(skipped down site/x86_64 'repodata/repomd.xml: unreachable')
if [ -n "$down" ] && [ -n "$slow" ] && [ -n "$corrupt" ] && [ -n "$drop" ] && [ -n "$site_down" ]; then
        t_ok "$(sed 's/.*(//' <<<"$drop" | cut -c1-80)"
else
        t_fail "down '$down' slow '$slow' corrupt '$corrupt' drop '$drop' site '$site_down': $(grep warning "$D/build1.log")"
fi

t_case "a download broken off mid-way resumes from the next mirror with a Range request"
resumed=$(grep -c "^resuming '.*' at byte [0-9]* of [0-9]* from $(u good sample)" "$D/build1.log")
ranges=$(grep -c '\.rpm bytes=[1-9][0-9]*-$' "$D/good.requests")
if [ "$resumed" -ge 1 ] && [ "$ranges" -ge 1 ]; then
        t_ok "$resumed resumed, $ranges Range requests"
else
        t_fail "resumed $resumed, Range requests $ranges: $(grep -i resum "$D/build1.log")"
fi

t_case "the disabled repository is noted and not used"
if grep -q "site.repo:[0-9]*: repository 'site-debug' (Site debug) has enabled = 0: not used" "$D/build1.log" &&
        ! grep -q 'site-debug' "$D"/*.requests; then t_ok; else t_fail "$(grep site-debug "$D/build1.log")"; fi

t_case "the lock: baseurl is the first mirror (not the one that served), every mirror, the repomd key"
sample=$(jq -c '.repos[] | select(.id == "sample") | [.baseurl, (.mirrors | length), .repomd_key]' "$D/repos.lock")
site=$(jq -c '.repos[] | select(.id == "site") | [.baseurl, .mirrors, .repomd_key]' "$D/repos.lock")
if [ "$sample" = "[\"$(u down sample)\",5,\"$FPR\"]" ] &&
        [ "$site" = "[\"$(u down site/x86_64)\",[\"$(u down site/x86_64)\",\"$(u good site/x86_64)\"],\"$FPR\"]" ] &&
        [ "$(jq -r '.packages[] | select(.name == "site-hello") | .repo' "$D/repos.lock")" = site ]; then
        t_ok
else
        t_fail "sample $sample, site $site"
fi

t_case "the image's manifest carries the lock without the mirror lists"
if $B --store "$D/store" export "$id1" "$D/export1" >/dev/null 2>&1 &&
        [ "$(jq '[.lock.repos[] | select(has("mirrors"))] | length' "$D/export1/manifest.json")" = 0 ] &&
        [ "$(jq -r '.lock.repos[] | select(.id == "site") | .baseurl' "$D/export1/manifest.json")" = "$(u down site/x86_64)" ]; then
        t_ok
else
        t_fail "$(jq -c '.lock.repos' "$D/export1/manifest.json" 2>&1 | head -c 300)"
fi

t_case "--locked with a cache of its own: the lock's mirrors, the same image"
if id2=$(SLIPWAY_CACHE=$D/cache2 $B --store "$D/store2" build --locked --key "$KEY" --lock "$D/repos.lock" \
        --no-disk "$D/repos.conf" 2>"$D/build2.log") && [ "$id2" = "$id1" ]; then
        t_ok
else
        t_fail "ids $id1 / ${id2:-none}: $(tail -3 "$D/build2.log")"
fi

t_case "a partial package left in the cache continues with a Range request"
write_def "$D/good.conf" "[repo sample]
baseurl = $(u good sample)
gpgkey = $SAMPLE_KEY
[repo site]
baseurl = $(u good 'site/$basearch')
gpgcheck = 0"
mkdir -p "$D/cache3/rpms"
rpm=$(ls "$WWW"/sample/Packages/busybox-*.rpm)
rpm_sha=$(sha "$rpm")
half=$(($(stat -c %s "$rpm") / 2))
head -c $half "$rpm" >"$D/cache3/rpms/$rpm_sha.rpm.part"
: >"$D/good.requests"
if SLIPWAY_CACHE=$D/cache3 $B --store "$D/store3" build --key "$KEY" --lock "$D/good.lock" --no-disk "$D/good.conf" \
        >/dev/null 2>"$D/build3.log" && grep -q "^resuming 'busybox-.*' at byte $half of " "$D/build3.log" &&
        grep -q "busybox-.*\.rpm bytes=$half-$" "$D/good.requests" && [ -f "$D/cache3/rpms/$rpm_sha.rpm" ] &&
        [ ! -e "$D/cache3/rpms/$rpm_sha.rpm.part" ]; then
        t_ok
else
        t_fail "$(grep -v '^==>' "$D/build3.log" | tail -3); requests: $(grep busybox "$D/good.requests")"
fi

# ---- failures: one error each ----

t_case "every mirror bad: one error with each mirror's reason"
write_def "$D/bad.conf" "[repo sample]
baseurl = $(u down sample) $(u slow sample) $(u good nothing-here)
gpgkey = $SAMPLE_KEY
timeout = 2"
if fails_with "repository 'sample': no mirror could serve repodata/repomd.xml: $(u down sample): unreachable.*; $(u slow sample): timed out or too slow.*; $(u good nothing-here): not found" \
        $B --store "$D/store-bad" build --key "$KEY" --lock "$D/bad.lock" --no-disk "$D/bad.conf" &&
        [ ! -e "$D/bad.lock" ]; then
        t_ok
fi

t_case "repo_gpgcheck: repomd.xml without a signature is refused"
write_def "$D/bad.conf" "[repo sample]
baseurl = $(u good unsigned)
gpgkey = $SAMPLE_KEY $D/repo-key.asc
repo_gpgcheck = 1"
if fails_with "repository 'sample' at $(u good unsigned): repodata/repomd.xml: repomd.xml is not signed" \
        $B --store "$D/store-bad" build --key "$KEY" --lock "$D/bad.lock" --no-disk "$D/bad.conf"; then
        t_ok
fi

t_case "repo_gpgcheck: repomd.xml signed by another key is refused, naming the key"
write_def "$D/bad.conf" "[repo sample]
baseurl = $(u good otherkey)
gpgkey = $SAMPLE_KEY $D/repo-key.asc
repo_gpgcheck = 1"
if fails_with "repository 'sample' at $(u good otherkey): repodata/repomd.xml: signed with key $OTHER_KEYID, which is not one of the repository's gpgkey keys" \
        $B --store "$D/store-bad" build --key "$KEY" --lock "$D/bad.lock" --no-disk "$D/bad.conf"; then
        t_ok
fi

t_case "repo_gpgcheck off: the same repository builds"
write_def "$D/off.conf" "[repo sample]
baseurl = $(u good otherkey)
gpgkey = $SAMPLE_KEY
[repo site]
baseurl = $(u good 'site/$basearch')
gpgcheck = 0"
if $B --store "$D/store4" build --key "$KEY" --lock "$D/off.lock" --no-disk "$D/off.conf" >/dev/null 2>"$D/build4.log" &&
        [ "$(jq -r '.repos[0].repomd_key // "none"' "$D/off.lock")" = none ]; then
        t_ok
else
        t_fail "$(tail -3 "$D/build4.log")"
fi

t_case "an included .repo file with a bad key: its file and line"
printf '[extra]\nname=Extra\nbaseurl=%s\nsslverify=0\n' "$(u good sample)" >"$D/yum.repos.d/bad.repo"
write_def "$D/bad.conf" "[repos]
include = yum.repos.d/bad.repo"
if fails_with "yum.repos.d/bad.repo:4: unknown key 'sslverify' in section '\[repo extra\]'" \
        $B --store "$D/store-bad" build --key "$KEY" --lock "$D/bad.lock" --no-disk "$D/bad.conf"; then
        t_ok
fi

t_case "an unknown variable is named"
write_def "$D/bad.conf" "[repo sample]
baseurl = $(u good '$contentdir/sample')
gpgcheck = 0"
line=$(grep -n contentdir "$D/bad.conf" | cut -d: -f1)
if fails_with "bad.conf:$line: unknown variable '\\\$contentdir' in 'baseurl'" \
        $B --store "$D/store-bad" build --key "$KEY" --lock "$D/bad.lock" --no-disk "$D/bad.conf"; then
        t_ok
fi

t_case "nothing was published by the failures"
if [ ! -e "$D/store-bad/catalog.db" ] || [ "$(sqlite3 "$D/store-bad/catalog.db" 'SELECT count(*) FROM images')" = 0 ]; then
        t_ok
else
        t_fail "images in store-bad"
fi

t_end
