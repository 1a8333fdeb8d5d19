#!/bin/bash
# Sign RPMs with a repository's own OpenPGP key, made first when there is none:
#
#   images/sign-rpms.sh [-n NAME] GNUPGDIR PUBKEY [RPM...]
#
# GNUPGDIR is a GnuPG home for this key alone (created, mode 0700, when
# missing). Its first run makes an ed25519 signing key without a passphrase,
# user ID NAME (default "Slipway repository"), in batch mode; later runs sign
# with the same key. Each RPM is signed in place (rpmsign --addsign: a header
# signature) and the public key is written, ASCII-armored, to PUBKEY, the
# file a definition's gpgkey names. With SOURCE_DATE_EPOCH set, that is the
# signature time: the same key and the same RPM give the same bytes. The
# gpg-agent that gpg starts for GNUPGDIR is stopped before this exits. Prints
# the key's fingerprint.
set -euo pipefail

die() { echo "sign-rpms: error: $*" >&2; exit 1; }

name="Slipway repository"
while getopts n: opt; do
    case $opt in
    n) name=$OPTARG ;;
    *) die "usage: $0 [-n NAME] GNUPGDIR PUBKEY [RPM...]" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || die "usage: $0 [-n NAME] GNUPGDIR PUBKEY [RPM...]"
gnupg=$1 pubkey=$2
shift 2
for t in gpg gpgconf rpmsign; do
    command -v "$t" >/dev/null || die "missing tool: $t (make deps)"
done

mkdir -p "$gnupg"
chmod 0700 "$gnupg"
gnupg=$(cd "$gnupg" && pwd)
export GNUPGHOME=$gnupg
log=$(mktemp)
trap 'gpgconf --kill gpg-agent >/dev/null 2>&1 || true; rm -f "$log"' EXIT
# Dated SOURCE_DATE_EPOCH when it is set, key and signatures alike.
faked=()
[ -z "${SOURCE_DATE_EPOCH:-}" ] || faked=(--faked-system-time "$SOURCE_DATE_EPOCH!")

fingerprint() {
    gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }'
}

fpr=$(fingerprint)
if [ -z "$fpr" ]; then
    gpg --batch --quiet "${faked[@]}" --gen-key >"$log" 2>&1 <<EOF || { cat "$log" >&2; die "gpg could not make a key in $gnupg"; }
%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Name-Real: $name
Expire-Date: 0
%commit
EOF
    fpr=$(fingerprint)
    [ -n "$fpr" ] || die "no key in $gnupg after making one"
fi

if [ $# -gt 0 ]; then
    rpmsign --addsign \
        --define "__gpg $(command -v gpg)" \
        --define "_gpg_path $gnupg" \
        --define "_gpg_name $fpr" \
        --define "_gpg_sign_cmd_extra_args --batch --no-tty --ignore-time-conflict ${faked[*]}" \
        "$@" </dev/null >"$log" 2>&1 || { cat "$log" >&2; die "rpmsign failed"; }
fi
gpg --batch --armor --export "$fpr" >"$pubkey.tmp" && mv "$pubkey.tmp" "$pubkey"
echo "$fpr"
