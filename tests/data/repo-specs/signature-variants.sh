#!/bin/bash
# Makes copies of a signed RPM with other signatures, for the tests of
# gpgcheck. The first three must be refused by the RPM's own repository:
#
#   tests/data/repo-specs/signature-variants.sh RPM OUTDIR
#
#   OUTDIR/unsigned.rpm   its signature removed (rpmsign --delsign)
#   OUTDIR/other-key.rpm  signed with another key instead (made in
#                         OUTDIR/other-gnupg; its public key in OUTDIR/other-key.asc)
#   OUTDIR/broken.rpm     the last byte of its header signature inverted: the
#                         key ID still reads, the signature no longer verifies
#   OUTDIR/subkey.rpm     signed by the signing subkey of yet another key (as
#                         many distributions sign), whose public key, subkey
#                         included, is OUTDIR/subkey.asc
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 RPM OUTDIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
rpm=$1 out=$2
mkdir -p "$out"
out=$(cd "$out" && pwd)
cp "$rpm" "$out/unsigned.rpm"
rpmsign --delsign "$out/unsigned.rpm" >/dev/null 2>&1
cp "$out/unsigned.rpm" "$out/other-key.rpm"
"$here/../../../images/sign-rpms.sh" -n "Another key" "$out/other-gnupg" "$out/other-key.asc" \
    "$out/other-key.rpm" >/dev/null
cp "$out/unsigned.rpm" "$out/subkey.rpm"
(
    export GNUPGHOME=$out/subkey-gnupg
    mkdir -p -m 0700 "$GNUPGHOME"
    trap 'gpgconf --kill gpg-agent >/dev/null 2>&1 || true' EXIT
    gpg --batch --quiet --gen-key 2>/dev/null <<KEY
%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: cert
Subkey-Type: eddsa
Subkey-Curve: ed25519
Subkey-Usage: sign
Name-Real: Key with a signing subkey
%commit
KEY
    sub=$(gpg --batch --with-colons --list-keys | awk -F: '$1 == "sub" { s = 1 } s && $1 == "fpr" { print $10; exit }')
    gpg --batch --armor --export >"$out/subkey.asc"
    # "!": this subkey, not whichever gpg would pick
    rpmsign --addsign --define "__gpg $(command -v gpg)" --define "_gpg_path $GNUPGHOME" --define "_gpg_name $sub!" \
        --define "_gpg_sign_cmd_extra_args --batch --no-tty" "$out/subkey.rpm" </dev/null >/dev/null 2>&1
)
cp "$rpm" "$out/broken.rpm"
python3 - "$out/broken.rpm" <<'PY'
import struct, sys
# The signature header follows the 96-byte lead: a 16-byte intro (il index
# entries, dl bytes of data), the entries (tag, type, offset, count), the data.
with open(sys.argv[1], "r+b") as f:
    f.seek(96)
    intro = f.read(16)
    il = struct.unpack(">I", intro[8:12])[0]
    entries = [struct.unpack(">IIII", f.read(16)) for _ in range(il)]
    data = 96 + 16 + 16 * il
    # RPMSIGTAG_DSA (DSA, EdDSA) or RPMSIGTAG_RSA: the header signature
    sig = [e for e in entries if e[0] in (267, 268)]
    if not sig:
        sys.exit(sys.argv[1] + ": no header signature")
    at = data + sig[0][2] + sig[0][3] - 1
    f.seek(at)
    b = f.read(1)[0]
    f.seek(at)
    f.write(bytes([b ^ 0xff]))
PY
