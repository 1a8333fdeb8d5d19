#!/bin/bash
# Resolution against dnf as the oracle: repositories made here (rpmbuild,
# createrepo_c with comps, modifyrepo_c with modules.yaml), then for each
# case the packages dnf would download and those `slipway-build resolve`
# locks, compared by NEVRA and sha256 (the sha256 tells apart the same
# NEVRA from two repositories). Where slipway differs on purpose, the case
# says why and asserts the difference.
. "$(dirname "$0")/../lib.sh"
t_begin dnf-oracle

B=$BIN/slipway-build
D=$T_DIR
export SLIPWAY_CACHE=$D/cache SOURCE_DATE_EPOCH=1700000000 LC_ALL=C TZ=UTC

for tool in dnf rpmbuild createrepo_c modifyrepo_c jq; do
        if ! command -v $tool >/dev/null; then
                t_case tools
                t_skip "$tool is not installed"
                # locked_build DIR CONF: a --locked build of DIR's lock with CONF; its
# stderr in DIR/locked.err.
locked_build() {
        $B --store "$D/store" build --key "$D/signing.key" --locked --lock "$1/def.lock" --no-disk "$2" \
                >"$1/locked.out" 2>"$1/locked.err"
}
# refused_lock DIR CONF: the build is refused, the lock named as another's.
refused_lock() {
        if locked_build "$1" "$2"; then
                t_fail "the build went ahead"
        elif ! grep -q "lock '.*' was resolved for a different package list or module streams" "$1/locked.err"; then
                t_fail "$(cat "$1/locked.err")"
        else
                t_ok
        fi
}

t_case "--locked refuses a lock of other module streams"
dir=$(case_dir "module stream enabled")
sed 's/^enable = nodejs:20$/enable = nodejs:18/' "$dir/def.conf" >"$dir/other.conf"
$B keygen "$D/signing.key" "$D/signing.pub" >/dev/null
# (the repositories' gpgcheck = 0 warnings come first)
if ! jq -e '.format == 1' "$dir/def.lock" >/dev/null; then
        t_fail "resolve did not write a lock of format 1 (resolved, signatures not checked)"
else
        refused_lock "$dir" "$dir/other.conf"
fi

t_case "--locked refuses a lock whose default stream is now disabled"
dir=$(case_dir "module default stream")
printf '\n[modules]\ndisable = nodejs\n' | cat "$dir/def.conf" - >"$dir/disabled.conf"
refused_lock "$dir" "$dir/disabled.conf"

# The lock passes the check and the build goes on to install (and stops
# there: the test's packages make no kernel).
t_case "--locked takes a lock with a required stream"
dir=$(case_dir "module requires a stream of another")
locked_build "$dir" "$dir/def.conf"
if grep -q "resolved for a different" "$dir/locked.err" || ! grep -q "has no kernel" "$dir/locked.err"; then
        t_fail "$(tail -3 "$dir/locked.err")"
else
        t_ok
fi

t_end
                exit $?
        fi
done

# ---- the repositories ------------------------------------------------------

# pkg REPO NAME VERSION [SPEC-HEADER-LINE...]: a noarch package with
# /usr/bin/NAME (in primary.xml) and /opt/NAME/data (only in filelists.xml).
pkg() {
        local repo=$1 name=$2 version=$3 top=$D/rpmbuild
        shift 3
        mkdir -p "$top" "$D/repos/$repo/Packages"
        {
                printf 'Name: %s\nVersion: %s\nRelease: 1\nSummary: %s from %s\nLicense: MIT\nBuildArch: noarch\n' \
                        "$name" "$version" "$name" "$repo"
                for h in "$@"; do printf '%s\n' "$h"; done
                printf '%%description\n%s, a test package of %s.\n' "$name" "$repo"
                printf '%%install\nmkdir -p %%{buildroot}/usr/bin %%{buildroot}/opt/%s\n' "$name"
                printf 'echo %s >%%{buildroot}/usr/bin/%s\necho %s >%%{buildroot}/opt/%s/data\n' \
                        "$repo" "$name" "$repo" "$name"
                printf '%%files\n/usr/bin/%s\n/opt/%s/data\n' "$name" "$name"
        } >"$top/$name.spec"
        rpmbuild -bb --define "_topdir $top" --define "_rpmdir $D/repos/$repo/Packages" \
                --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
                --define "use_source_date_epoch_as_buildtime 1" \
                "$top/$name.spec" >"$top/$name.log" 2>&1 || { cat "$top/$name.log"; return 1; }
}

make_repos() {
        # base: dependencies, weak dependencies, provides, file paths, groups
        pkg base a 1.0 "Requires: b" "Recommends: r"
        pkg base b 1.0
        pkg base r 1.0
        pkg base s 1.0 "Supplements: a"
        pkg base p 1.0 "Provides: virt-thing"
        pkg base f 1.0
        pkg base g-mand 1.0
        pkg base g-def 1.0
        pkg base g-opt 1.0
        pkg base g-cond 1.0
        pkg base g-cond2 1.0
        pkg base trig 1.0
        pkg base e-pkg 1.0
        pkg base x-extra 1.0
        pkg base dup 2.0
        pkg base xa 1.0
        pkg base xa 2.0
        pkg base incp 1.0
        pkg base nodejs 16.0
        cat >"$D/comps.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<comps>
  <group>
    <id>core</id>
    <name>Core</name>
    <name xml:lang="de">Kern</name>
    <packagelist>
      <packagereq type="mandatory">g-mand</packagereq>
      <packagereq type="default">g-def</packagereq>
      <packagereq type="optional">g-opt</packagereq>
      <packagereq type="conditional" requires="trig">g-cond</packagereq>
      <packagereq type="conditional" requires="not-there">g-cond2</packagereq>
      <packagereq type="mandatory">g-missing</packagereq>
    </packagelist>
  </group>
  <group>
    <id>tools</id>
    <name>Handy Tools</name>
    <packagelist>
      <packagereq type="mandatory">e-pkg</packagereq>
      <packagereq type="default">trig</packagereq>
    </packagelist>
  </group>
  <group>
    <id>extras</id>
    <name>Extras</name>
    <packagelist>
      <packagereq type="mandatory">x-extra</packagereq>
    </packagelist>
  </group>
  <environment>
    <id>server-env</id>
    <name>Server</name>
    <grouplist><groupid>core</groupid><groupid>tools</groupid></grouplist>
    <optionlist><groupid>extras</groupid></optionlist>
  </environment>
</comps>
XML
        createrepo_c -q -g "$D/comps.xml" "$D/repos/base" >/dev/null

        # pri: an older dup at a better priority
        pkg pri dup 1.0
        createrepo_c -q "$D/repos/pri" >/dev/null
        # cheap and dear: the same NEVRA, different bytes
        pkg cheap cst 1.0
        pkg dear cst 1.0
        createrepo_c -q "$D/repos/cheap" >/dev/null
        createrepo_c -q "$D/repos/dear" >/dev/null
        # inc: a newer incp, which its includepkgs leave out
        pkg inc incp 2.0
        pkg inc other 1.0
        createrepo_c -q "$D/repos/inc" >/dev/null

        # mod: two streams of nodejs, 18 the default; profile common
        pkg mod nodejs 18.1
        pkg mod npm 18.1
        pkg mod nodejs 20.1
        pkg mod npm 20.1
        # webapp:1 requires nodejs:20, not the default stream
        pkg mod webapp 1.0
        cat >"$D/modules.yaml" <<'YAML'
---
document: modulemd
version: 2
data:
  name: nodejs
  stream: "18"
  version: 1
  context: c0ffee42
  arch: noarch
  summary: nodejs 18
  description: nodejs 18
  license:
    module: [MIT]
  profiles:
    common:
      rpms: [nodejs, npm]
  artifacts:
    rpms:
      - nodejs-0:18.1-1.noarch
      - npm-0:18.1-1.noarch
...
---
document: modulemd
version: 2
data:
  name: nodejs
  stream: "20"
  version: 1
  context: c0ffee42
  arch: noarch
  summary: nodejs 20
  description: nodejs 20
  license:
    module: [MIT]
  profiles:
    common:
      rpms: [nodejs, npm]
  artifacts:
    rpms:
      - nodejs-0:20.1-1.noarch
      - npm-0:20.1-1.noarch
...
---
document: modulemd
version: 2
data:
  name: webapp
  stream: "1"
  version: 1
  context: c0ffee42
  arch: noarch
  summary: an application on nodejs 20
  description: an application on nodejs 20
  license:
    module: [MIT]
  dependencies:
    - requires:
        nodejs: ["20"]
  artifacts:
    rpms:
      - webapp-0:1.0-1.noarch
...
---
document: modulemd-defaults
version: 1
data:
  module: nodejs
  stream: "18"
  profiles:
    "18": [common]
...
YAML
        createrepo_c -q "$D/repos/mod" >/dev/null
        modifyrepo_c --mdtype=modules "$D/modules.yaml" "$D/repos/mod/repodata" >/dev/null
        # hot: a non-modular nodejs of stream 18's line, newer than the module's
        pkg hot nodejs 18.5
        createrepo_c -q "$D/repos/hot" >/dev/null
}

t_case "make the repositories"
start=$(date +%s)
(set -e; make_repos) >"$D/repos.log" 2>&1
if [ $? -eq 0 ]; then t_ok "$(($(date +%s) - start)) s"; else t_fail "$(tail -5 "$D/repos.log")"; t_end; exit 1; fi

# ---- one case: a definition and the same request to dnf ----------------------

# Repo options are given as "ID KEY=VALUE..." words in REPOS (one repo per
# line); both sides get them. PACKAGES are the [packages] install words;
# EXTRA is more [packages]/[modules] text for slipway, DNF_OPTS and
# DNF_MODULE (`dnf module` commands run first, separated by ";") its dnf
# counterpart.
# A case's directory: its name without spaces (dnf splits reposdir on them).
case_dir() { echo "$D/cases/${1//[ ,@^]/-}"; }

write_case() { # NAME
        local dir line id kv
        dir=$(case_dir "$1")
        rm -rf "$dir"
        mkdir -p "$dir/repos.d" "$dir/root"
        printf '[main]\ngpgcheck=0\nreposdir=%s\n' "$dir/repos.d" >"$dir/dnf.conf"
        {
                printf '[image]\nname = oracle\nversion = 1.0\narch = x86_64\n\n[packages]\ninstall = %s\n' "$PACKAGES"
                [ -z "$EXTRA" ] || printf '%s\n' "$EXTRA"
        } >"$dir/def.conf"
        while read -r id kv; do
                [ -n "$id" ] || continue
                printf '\n[repo %s]\nbaseurl = %s\ngpgcheck = 0\n' "$id" "$D/repos/$id" >>"$dir/def.conf"
                printf '[%s]\nname=%s\nbaseurl=file://%s\ngpgcheck=0\n' "$id" "$id" "$D/repos/$id" >"$dir/repos.d/$id.repo"
                for o in $kv; do
                        printf '%s = %s\n' "${o%%=*}" "${o#*=}" >>"$dir/def.conf"
                        printf '%s=%s\n' "${o%%=*}" "${o#*=}" >>"$dir/repos.d/$id.repo"
                done
        done <<<"$REPOS"
}

dnf_cmd() { # DIR ARGS...
        local dir=$1
        shift
        dnf -y --config="$dir/dnf.conf" --installroot="$dir/root" --releasever=1 \
                --setopt=cachedir="$dir/root/cache" --setopt=module_platform_id=platform:oracle "$@"
}

# What dnf downloads for the case, as "NEVRA sha256" lines, sorted.
dnf_side() { # NAME
        local dir f
        dir=$(case_dir "$1")
        local cmd cmds
        IFS=';' read -ra cmds <<<"$DNF_MODULE"
        for cmd in "${cmds[@]}"; do
                local dl=""
                [ "${cmd%% *}" != install ] || dl="--downloadonly --destdir=$dir/dl"
                # shellcheck disable=SC2086
                dnf_cmd "$dir" $DNF_OPTS $dl module $cmd >>"$dir/dnf.log" 2>&1 || return 1
        done
        if [ -n "$DNF_INSTALL" ]; then
                # shellcheck disable=SC2086
                dnf_cmd "$dir" $DNF_OPTS --downloadonly --destdir="$dir/dl" install $DNF_INSTALL \
                        >>"$dir/dnf.log" 2>&1 || return 1
        fi
        for f in "$dir"/dl/*.rpm; do
                [ -e "$f" ] || continue
                printf '%s %s\n' "$(rpm -qp --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}' "$f" 2>/dev/null)" \
                        "$(sha256sum <"$f" | cut -d' ' -f1)"
        done | sort
}

slipway_side() { # NAME
        local dir
        dir=$(case_dir "$1")
        $B resolve --lock "$dir/def.lock" "$dir/def.conf" >"$dir/resolve.out" 2>"$dir/resolve.err" || return 1
        jq -r '.packages[] | "\(.name)-\(.version)-\(.release).\(.arch) \(.sha256)"' "$dir/def.lock" | sort
}

names() { cut -d' ' -f1 | sed 's/-[^-]*-[^-]*$//' | tr '\n' ' ' | sed 's/ $//'; }

# oracle NAME EXPECTED-NAMES: both sides resolve, to the same packages,
# which are EXPECTED-NAMES (a check on the test's own repositories).
oracle() {
        local name=$1 expected=$2 ours theirs
        t_case "$name"
        write_case "$name"
        if ! theirs=$(dnf_side "$name"); then
                t_fail "dnf failed: $(tail -3 "$D/cases/$name/dnf.log")"
                return
        fi
        if ! ours=$(slipway_side "$name"); then
                t_fail "slipway-build resolve failed: $(cat "$D/cases/$name/resolve.err")"
                return
        fi
        if [ "$ours" != "$theirs" ]; then
                t_fail "dnf: [$(names <<<"$theirs")], slipway: [$(names <<<"$ours")]"
                diff <(echo "$theirs") <(echo "$ours") | sed 's/^/    /'
                return
        fi
        if [ "$(names <<<"$ours")" != "$expected" ]; then
                t_fail "both resolved [$(names <<<"$ours")], the case expects [$expected]"
                return
        fi
        t_ok "$expected"
}

# both_fail NAME PATTERN: dnf and slipway both refuse; slipway's one error
# matches PATTERN.
both_fail() {
        local name=$1 pattern=$2 dir
        t_case "$name"
        write_case "$name"
        if dnf_side "$name" >/dev/null; then
                t_fail "dnf resolved it"
                return
        fi
        dir=$(case_dir "$name")
        expect_fail "$pattern" $B resolve --lock "$dir/def.lock" "$dir/def.conf" &&
                { [ ! -e "$dir/def.lock" ] || t_fail "a lock was written"; } && t_ok
}

BASE="base"
REPOS=$BASE EXTRA="" DNF_OPTS="" DNF_MODULE="" DNF_INSTALL="" PACKAGES=""

PACKAGES="a" DNF_INSTALL="a" oracle "weak deps on" "a b r s"
PACKAGES="a" EXTRA="install_weak_deps = no" DNF_OPTS="--setopt=install_weak_deps=False" DNF_INSTALL="a" \
        oracle "weak deps off" "a b"
PACKAGES="virt-thing" DNF_INSTALL="virt-thing" oracle "a name only a Provides gives" "p"
PACKAGES="/usr/bin/f" DNF_INSTALL="/usr/bin/f" oracle "file path in primary" "f"
PACKAGES="/opt/f/data" DNF_INSTALL="/opt/f/data" oracle "file path in filelists" "f"

PACKAGES="@core" DNF_INSTALL="@core" oracle "group by id" "g-def g-mand"
PACKAGES="@handy*" DNF_INSTALL="@handy*" oracle "group by name glob" "e-pkg trig"
PACKAGES="@Core @tools" DNF_INSTALL="@Core @tools" oracle "conditional package" "e-pkg g-cond g-def g-mand trig"
PACKAGES="@core" EXTRA="group-package-types = mandatory default optional conditional" \
        DNF_OPTS="--setopt=group_package_types=mandatory,default,optional,conditional" DNF_INSTALL="@core" \
        oracle "group with optional packages" "g-def g-mand g-opt"
PACKAGES="@core" EXTRA="group-package-types = mandatory" DNF_OPTS="--setopt=group_package_types=mandatory" \
        DNF_INSTALL="@core" oracle "group mandatory only" "g-mand"
PACKAGES="@server-env" DNF_INSTALL="@server-env" oracle "environment" "e-pkg g-cond g-def g-mand trig"
# dnf 4 has no "@^": it looks for a group or environment called "^server-env"
# and fails. slipway takes "@^ID" as dnf 5 does: an environment only.
t_case "environment with @^ (dnf 4 refuses it)"
PACKAGES="@^server-env" DNF_INSTALL="@^server-env"
write_case caret
if dnf_side caret >/dev/null; then
        t_fail "dnf resolved @^server-env"
elif [ "$(slipway_side caret | names)" != "e-pkg g-cond g-def g-mand trig" ]; then
        t_fail "slipway: $(cat "$(case_dir caret)/resolve.err")"
else
        t_ok
fi
PACKAGES="" DNF_INSTALL=""

REPOS=$'base\npri priority=10' PACKAGES="dup" DNF_INSTALL="dup" oracle "priority beats version" "dup"
REPOS=$'base\ncheap cost=500\ndear cost=2000' PACKAGES="cst" DNF_INSTALL="cst" oracle "cost" "cst"
REPOS=$'base\ncheap cost=3000\ndear cost=2000' PACKAGES="cst" DNF_INSTALL="cst" oracle "cost, the other way" "cst"
REPOS=$'base\ncheap priority=20 cost=3000\ndear priority=30 cost=10' PACKAGES="cst" DNF_INSTALL="cst" \
        oracle "priority before cost" "cst"
PACKAGES="xa" EXTRA="exclude = xa-2*" DNF_OPTS="--setopt=excludepkgs=xa-2*" DNF_INSTALL="xa" \
        oracle "global exclude" "xa"
REPOS="base excludepkgs=xa-2.0-1.noarch" PACKAGES="xa" DNF_INSTALL="xa" oracle "repo excludepkgs" "xa"
REPOS=$'base\ninc includepkgs=oth*' PACKAGES="incp other" DNF_INSTALL="incp other" oracle "repo includepkgs" "incp other"
REPOS=$'base\ninc' PACKAGES="incp" DNF_INSTALL="incp" oracle "without includepkgs, the newer" "incp"

REPOS=$'base\nmod' PACKAGES="nodejs" DNF_INSTALL="nodejs" oracle "module default stream" "nodejs"
REPOS=$'base\nmod' PACKAGES="nodejs npm" EXTRA=$'[modules]\nenable = nodejs:20' DNF_MODULE="enable nodejs:20" \
        DNF_INSTALL="nodejs npm" oracle "module stream enabled" "nodejs npm"
REPOS=$'base\nmod' PACKAGES="" EXTRA=$'[modules]\nenable = nodejs:20/common' DNF_MODULE="install nodejs:20/common" \
        DNF_INSTALL="" oracle "module profile" "nodejs npm"
REPOS=$'base\nmod\nhot module_hotfixes=1' PACKAGES="nodejs" DNF_INSTALL="nodejs" oracle "module_hotfixes" "nodejs"
REPOS=$'base\nmod\nhot' PACKAGES="nodejs" DNF_INSTALL="nodejs" oracle "without module_hotfixes" "nodejs"
REPOS=$'base\nmod' PACKAGES="webapp nodejs" EXTRA=$'[modules]\nenable = webapp:1' DNF_MODULE="enable webapp:1" \
        DNF_INSTALL="webapp nodejs" oracle "module requires a stream of another" "nodejs webapp"
REPOS=$'base\nmod\nhot' PACKAGES="nodejs" EXTRA=$'[modules]\ndisable = nodejs' DNF_MODULE="disable nodejs" \
        DNF_INSTALL="nodejs" oracle "module disabled" "nodejs"
# base's own nodejs (16.0), which the default stream hides, is back
REPOS=$'base\nmod' PACKAGES="nodejs" EXTRA=$'[modules]\ndisable = nodejs' DNF_MODULE="disable nodejs" \
        DNF_INSTALL="nodejs" oracle "module disabled, no other repository" "nodejs"
REPOS=$'base\nmod' PACKAGES="webapp" EXTRA=$'[modules]\nenable = webapp:1\ndisable = nodejs' \
        DNF_MODULE="disable nodejs;enable webapp:1" DNF_INSTALL="webapp" \
        both_fail "a stream that requires a disabled module" "module stream 'webapp:1' requires module 'nodejs', which is disabled"
REPOS=$BASE PACKAGES="@nope a" DNF_INSTALL="@nope a" both_fail "a group no repository has" \
        "group 'nope' is in no repository's comps"
REPOS=$'base\nmod' PACKAGES="nodejs = 20.1" DNF_INSTALL="nodejs-20.1" \
        both_fail "a package only a stream not enabled has" "module stream 'nodejs:20'"

# The versions chosen, beyond the names the cases compare above.
t_case "versions chosen"
want="dup-1.0-1.noarch nodejs-18.5-1.noarch nodejs-20.1-1.noarch webapp-1.0-1.noarch nodejs-18.5-1.noarch"
want+=" nodejs-16.0-1.noarch"
got="$(jq -r '.packages[] | "\(.name)-\(.version)-\(.release).\(.arch)"' \
        "$(case_dir "priority beats version")/def.lock" "$(case_dir module_hotfixes)/def.lock" \
        "$(case_dir "module requires a stream of another")/def.lock" "$(case_dir "module disabled")/def.lock" \
        "$(case_dir "module disabled, no other repository")/def.lock" |
        tr '\n' ' ' | sed 's/ $//')"
if [ "$got" = "$want" ]; then t_ok; else t_fail "got $got, want $want"; fi

t_case "the lock says what was asked"
lock="$(case_dir "module profile")/def.lock"
glock="$(case_dir "conditional package")/def.lock"
if [ "$(jq -c '.modules' "$lock")" = '[{"default":false,"name":"nodejs","profile":"common","stream":"20"}]' ] &&
        [ "$(jq -c '.modules' "$(case_dir "module default stream")/def.lock")" = '[{"default":true,"name":"nodejs","stream":"18"}]' ] &&
        [ "$(jq -c '.modules' "$(case_dir "module requires a stream of another")/def.lock")" = \
                '[{"default":false,"name":"nodejs","required_by":"webapp:1","stream":"20"},{"default":false,"name":"webapp","stream":"1"}]' ] &&
        [ "$(jq -c '.modules' "$(case_dir "module disabled")/def.lock")" = null ] &&
        [ "$(jq -c '[.groups[] | .request, .ids]' "$glock")" = '["@Core",["core"],"@tools",["tools"]]' ] &&
        jq -e '.groups[0].packages | index("(g-cond if trig)")' "$glock" >/dev/null; then
        t_ok
else
        t_fail "modules $(jq -c .modules "$lock"), groups $(jq -c .groups "$glock")"
fi

t_case "--locked refuses a lock of other module streams"
dir=$(case_dir "module stream enabled")
sed 's/^enable = nodejs:20$/enable = nodejs:18/' "$dir/def.conf" >"$dir/other.conf"
$B keygen "$D/signing.key" "$D/signing.pub" >/dev/null
# (the repositories' gpgcheck = 0 warnings come first)
if ! jq -e '.format == 1' "$dir/def.lock" >/dev/null; then
        t_fail "resolve did not write a lock of format 1 (resolved, signatures not checked)"
elif $B --store "$D/store" build --key "$D/signing.key" --locked --lock "$dir/def.lock" --no-disk \
        "$dir/other.conf" >/dev/null 2>"$dir/locked.err"; then
        t_fail "the build went ahead"
elif ! grep -q "lock '.*' was resolved for a different package list or module streams" "$dir/locked.err"; then
        t_fail "$(cat "$dir/locked.err")"
else
        t_ok
fi

t_case "--locked refuses a lock whose default stream is now disabled"
dir=$(case_dir "module default stream")
printf '\n[modules]\ndisable = nodejs\n' | cat "$dir/def.conf" - >"$dir/disabled.conf"
if $B --store "$D/store" build --key "$D/signing.key" --locked --lock "$dir/def.lock" --no-disk \
        "$dir/disabled.conf" >/dev/null 2>"$dir/locked.err"; then
        t_fail "the build went ahead"
elif ! grep -q "lock '.*' was resolved for a different package list or module streams" "$dir/locked.err"; then
        t_fail "$(cat "$dir/locked.err")"
else
        t_ok
fi

# The lock passes the check and the build goes on to install (and stops
# there: the test's packages make no kernel).
t_case "--locked takes a lock with a required stream"
dir=$(case_dir "module requires a stream of another")
$B --store "$D/store" build --key "$D/signing.key" --locked --lock "$dir/def.lock" --no-disk \
        "$dir/def.conf" >"$dir/build.out" 2>"$dir/build.err"
if grep -q "resolved for a different" "$dir/build.err" || ! grep -q "has no kernel" "$dir/build.err"; then
        t_fail "$(tail -3 "$dir/build.err")"
else
        t_ok
fi

t_end
