#!/bin/bash
# Configuration files: every INI example in README.md and docs/*.md passes
# the check of the program it is for, as printed; and slipway-agent's
# --check-config names the file and line of what it refuses.
#
# An example is an indented or fenced block (a fence tagged ini, or untagged)
# whose lines are all section headers, key = value lines and comments, or the
# body of a `cat >FILE.conf <<'EOF'` in a block. Its sections say what it is:
# [image], [packages], [modules], [repo ID], [repos], [boot], [disk],
# [rootfs]: an image definition, checked with `slipway-build check`;
# [server], [dhcp], [ipxe], [webhook NAME]: slipwayd's configuration,
# checked with `slipwayd --check-config`; [agent], [backend]: the agent's,
# checked with `slipway-agent --check-config`. Other sections with a baseurl, mirrorlist
# or metalink make a .repo file, checked by a definition that includes it.
#
# A definition that shows a few sections only is completed with what it
# leaves out, and nothing else: an [image] name, version and releasever, a
# package to install, a repository. A definition that includes /etc/yum.repos.d/NAME.repo
# finds there the .repo example printed in the same file with a section
# [NAME], or an empty file.
#
# Examples name the paths of a real host. The check runs them against a
# scratch root instead: every path under /etc/slipway/ and /var/lib/slipway
# is taken below $ROOT, which holds what docs/operations.md sets up (a public
# key in etc/slipway/keys/) and a CA certificate at etc/slipway/ca.pem; for
# slipwayd, [server] trusted-keys and state-dir default to $ROOT's, before
# the example's own lines. Nothing else is changed.
. "$(dirname "$0")/../lib.sh"
t_begin config

B=$BIN/slipway-build
SD=$BIN/slipwayd
AG=$BIN/slipway-agent
D=$T_DIR
ROOT=$D/root

mkdir -p "$ROOT/etc/slipway/keys" "$ROOT/var/lib" "$D/examples"
"$B" keygen "$ROOT/etc/slipway/signing.key" "$ROOT/etc/slipway/keys/signing.pub" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ca \
        -keyout "$D/ca.key" -out "$ROOT/etc/slipway/ca.pem" >/dev/null 2>&1

# Writes each example to $D/examples/N.conf and one line per example to
# $D/examples/list: "N KIND SOURCE:LINE" (KIND is definition, slipwayd, agent,
# or unknown when its sections say nothing).
python3 - "$TOP" "$D/examples" <<'EOF'
import glob, os, re, sys

top, out = sys.argv[1], sys.argv[2]
header = re.compile(r'^\[([^\]]+)\]\s*(#.*)?$')
keyval = re.compile(r'^[A-Za-z0-9_.-]+\s*=')
comment = re.compile(r'^[#;]')
kinds = {'image': 'definition', 'packages': 'definition', 'modules': 'definition', 'repo': 'definition',
         'repos': 'definition', 'boot': 'definition', 'disk': 'definition', 'rootfs': 'definition',
         'server': 'slipwayd', 'dhcp': 'slipwayd',
         'ipxe': 'slipwayd', 'state': 'slipwayd', 'webhook': 'slipwayd', 'pipelines': 'slipwayd', 'agent': 'agent', 'backend': 'agent'}

def dedent(lines):
    width = min((len(l) - len(l.lstrip(' ')) for l in lines if l.strip()), default=0)
    return [l[width:] for l in lines]

def blocks(path):
    """(first line number, lines, fenced language or None) of each code block."""
    lines = open(path).read().split('\n')
    i = 0
    while i < len(lines):
        m = re.match(r'^\s*```(\S*)', lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not re.match(r'^\s*```\s*$', lines[j]):
                j += 1
            yield i + 2, dedent(lines[i + 1:j]), m.group(1)
            i = j + 1
            continue
        if lines[i].startswith('    ') and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith('    ') or not lines[j].strip()):
                j += 1
            yield i + 1, dedent(lines[i:j]), None
            i = j
            continue
        i += 1

def heredocs(first, lines):
    i = 0
    while i < len(lines):
        m = re.search(r'cat\s+>\s*\S+\.conf\s+<<\s*[\'"]?(\w+)[\'"]?\s*$', lines[i])
        if m:
            j = i + 1
            while j < len(lines) and lines[j].strip() != m.group(1):
                j += 1
            yield first + i + 1, dedent(lines[i + 1:j])
            i = j
        i += 1

def is_ini(lines):
    body = [l.strip() for l in lines if l.strip()]
    return bool(body) and any(header.match(l) for l in body) and \
        all(header.match(l) or keyval.match(l) or comment.match(l) for l in body)

n = 0
with open(os.path.join(out, 'list'), 'w') as listing:
    for path in [os.path.join(top, 'README.md')] + sorted(glob.glob(os.path.join(top, 'docs', '*.md'))):
        for first, lines, lang in blocks(path):
            found = list(heredocs(first, lines))
            if lang in (None, '', 'ini') and is_ini(lines):
                found.append((first, lines))
            for line, text in found:
                if not is_ini(text):
                    continue
                while text and not text[-1].strip():
                    text.pop()
                section = next(header.match(l.strip()).group(1) for l in text if header.match(l.strip()))
                kind = kinds.get(section.split()[0], 'unknown')
                if kind == 'unknown' and any(re.match(r'^(baseurl|mirrorlist|metalink)\s*=', l.strip()) for l in text):
                    kind = 'repofile'
                n += 1
                open(os.path.join(out, '%d.conf' % n), 'w').write('\n'.join(text) + '\n')
                listing.write('%d %s %s:%d\n' % (n, kind, os.path.relpath(path, top), line))
EOF

# below_root FILE: the example with its host paths taken below $ROOT.
below_root() {
        sed -e "s|/etc/slipway/|$ROOT/etc/slipway/|g" -e "s|/var/lib/slipway|$ROOT/var/lib/slipway|g" \
                -e "s|/etc/yum.repos.d/|$ROOT/etc/yum.repos.d/|g" "$1"
}

# complete FILE: what a definition fragment leaves out, for its check.
complete() {
        grep -q '^\[image\]' "$1" || printf '[image]\nname = example\nversion = 1\nreleasever = 9\n'
        grep -Eq '^install[[:space:]]*=' "$1" || printf '[packages]\ninstall = example\n'
        grep -Eq '^\[(repo .*|repos)\]' "$1" || printf '[repo example]\nbaseurl = /srv/example\ngpgcheck = 0\n'
}

# A definition's include of /etc/yum.repos.d/NAME.repo gets the .repo
# example of the same file that has a section [NAME], or an empty file.
mkdir -p "$ROOT/etc/yum.repos.d"
while read -r m k w; do
        [ "$k" = definition ] || continue
        for f in $(sed -n 's|^include[[:space:]]*=||p' "$D/examples/$m.conf" | tr ',' ' '); do
                case $f in /etc/yum.repos.d/*.repo) ;; *) continue ;; esac
                name=$(basename "$f" .repo)
                : >>"$ROOT$f"
                while read -r n kind where; do
                        [ "$kind" = repofile ] && [ "${where%%:*}" = "${w%%:*}" ] &&
                                grep -qx "\[$name\]" "$D/examples/$n.conf" && cp "$D/examples/$n.conf" "$ROOT$f"
                done <"$D/examples/list"
        done
done <"$D/examples/list"

declare -A seen
while read -r n kind where; do
        ex=$D/examples/$n.conf
        seen[$kind]=1
        t_case "$where: the $kind example passes its check"
        case $kind in
        definition)
                mkdir -p "$D/def$n/images"
                { below_root "$ex"; complete "$ex"; } >"$D/def$n/images/example.conf"
                cmd=("$B" check "$D/def$n/images/example.conf")
                ;;
        repofile)
                mkdir -p "$D/repo$n"
                below_root "$ex" >"$D/repo$n/example.repo"
                { printf '[repos]\ninclude = example.repo\n'; complete "$D/repo$n/example.repo"; } >"$D/repo$n/example.conf"
                cmd=("$B" check "$D/repo$n/example.conf")
                ;;
        slipwayd)
                { printf '[server]\ntrusted-keys = %s\nstate-dir = %s\n' "$ROOT/etc/slipway/keys" \
                        "$ROOT/var/lib/slipway"; below_root "$ex"; } >"$D/slipwayd$n.conf"
                cmd=("$SD" --check-config --config "$D/slipwayd$n.conf")
                ;;
        agent)
                below_root "$ex" >"$D/agent$n.conf"
                cmd=("$AG" --check-config --config "$D/agent$n.conf")
                ;;
        *)
                t_fail "its sections name no program: $(cat "$ex")"
                continue
                ;;
        esac
        if out=$("${cmd[@]}" 2>&1); then t_ok; else t_fail "$out; the example: $(cat "$ex")"; fi
done <"$D/examples/list"

# norm FILE: the settings of an INI file, without comments and blank lines.
norm() { sed -e 's/^[[:space:]]*[#;].*//' -e 's/[[:space:]]#.*//' -e 's/[[:space:]]*$//' "$1" | grep -v '^$'; }

t_case "README's sample definition is images/tiny.conf's"
readme=$(awk '$3 ~ /^README.md:/ && $2 == "definition" { print $1; exit }' "$D/examples/list")
if [ -n "$readme" ] && diff <(norm "$TOP/images/tiny.conf") <(norm "$D/examples/$readme.conf") >"$D/tiny.diff"; then
        t_ok; else t_fail "$(cat "$D/tiny.diff")"; fi

t_case "the docs have examples of all three kinds"
if [ -n "${seen[definition]:-}" ] && [ -n "${seen[slipwayd]:-}" ] && [ -n "${seen[agent]:-}" ]; then t_ok; else
        t_fail "found: $(cat "$D/examples/list")"; fi

# The agent's own checks: one line, naming the file and line of the key.
A=$D/agent.conf
# agent_fails PATTERN TEXT: --check-config of TEXT fails with one line
# matching PATTERN; the case's verdict.
agent_fails() {
        printf '%b' "$2" >"$A"
        if expect_fail "$1" "$AG" --config "$A" --check-config; then t_ok; else t_fail "--check-config of: $2"; fi
}

t_case "slipway-agent --check-config: an unknown backend names its line"
agent_fails "^slipway-agent: $A:4: backend: expected disk or sim, got \"floppy\"" \
        "[agent]\nserver = http://127.0.0.1:8080\n[backend]\ntype = floppy\n"

t_case "slipway-agent --check-config: an unknown boot back end names its line"
agent_fails "^slipway-agent: $A:3: boot: expected systemd-boot, grub or auto, got \"lilo\"" \
        "[agent]\n[backend]\nboot = lilo\n"

t_case "slipway-build check: [boot] loader and firmware: unknown words and systemd-boot on BIOS name their line"
printf '[image]\nname = t\nversion = 1\n[packages]\ninstall = busybox\n[repo r]\nbaseurl = file:///r\ngpgcheck = 0\n[boot]\n' \
        >"$D/boot.conf"
{ cat "$D/boot.conf"; printf 'loader = lilo\n'; } >"$D/boot1.conf"
{ cat "$D/boot.conf"; printf 'loader = grub\nfirmware = coreboot\n'; } >"$D/boot2.conf"
{ cat "$D/boot.conf"; printf 'firmware = bios\n'; } >"$D/boot3.conf"
{ cat "$D/boot.conf"; printf 'loader = grub\nfirmware = both\n'; } >"$D/boot4.conf"
if expect_fail "boot1.conf:10: unknown loader 'lilo' \\(systemd-boot or grub\\)" "$B" check "$D/boot1.conf" &&
        expect_fail "boot2.conf:11: unknown firmware 'coreboot' \\(uefi, bios or both\\)" "$B" check "$D/boot2.conf" &&
        expect_fail "boot3.conf:10: firmware = bios needs loader = grub" "$B" check "$D/boot3.conf" &&
        "$B" check "$D/boot4.conf" >/dev/null 2>&1; then
        t_ok
else
        t_fail "see above"
fi

t_case "slipway-agent --check-config: the sim backend without sim-dir names the backend's line"
agent_fails "^slipway-agent: $A:2: the sim backend needs sim-dir" "[backend]\ntype = sim\n"

t_case "slipway-agent --check-config: a server URL the agent cannot use names its line"
agent_fails "^slipway-agent: $A:3: server: 'http://boot:8080/x\?y=1' is not an http:// or https:// URL" \
        "[agent]\n\nserver = http://boot:8080/x?y=1\n"

t_case "slipway-agent --check-config: of several server URLs, the one it cannot use is named"
agent_fails "^slipway-agent: $A:2: server: 'boot2:8080' is not an http:// or https:// URL" \
        "[agent]\nserver = http://boot1:8080, boot2:8080 http://boot3:8080\n"

t_case "slipway-agent --check-config: a missing CA file names its line"
agent_fails "^slipway-agent: $A:3: ca-file '$D/none.pem': No such file or directory" \
        "[agent]\nserver = https://boot:8080\nca-file = $D/none.pem\n"

t_case "slipway-agent --check-config: a required unit that is no unit name names its line"
agent_fails "^slipway-agent: $A:3: required-units: \"-app.service\" is not a unit name" \
        "[agent]\nboot-complete = yes\nrequired-units = db.service, -app.service\n"

t_case "slipway-agent --check-config: health-log-lines out of range, a relative greenboot dir, a bad boolean"
printf '[agent]\nhealth-log-lines = 0\n' >"$A"
expect_fail "^slipway-agent: $A:2: health-log-lines: from 1 to 100" "$AG" --config "$A" --check-config &&
        printf '[agent]\ngreenboot-dirs = /usr/lib/greenboot/check etc/greenboot/check\n' >"$A" &&
        expect_fail "^slipway-agent: $A:2: greenboot-dirs: \"etc/greenboot/check\" is not an absolute path" \
                "$AG" --config "$A" --check-config &&
        printf '[agent]\nno-failed-units = maybe\n' >"$A" &&
        expect_fail "^slipway-agent: $A:2: .*no-failed-units.*not a boolean" "$AG" --config "$A" --check-config &&
        t_ok || t_fail "see above"

t_end
