#!/bin/bash
# make demo: builds the two sample images into build/demo and shows what was
# built. Later the bootserver and agents join the story here.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=$TOP/build/bin/slipway-build
D=$TOP/build/demo
export SLIPWAY_CACHE=$D/cache
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
mkdir -p "$D"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ ! -f "$D/keys/signing.key" ]; then
        step "a signing key pair"
        "$B" keygen "$D/keys/signing.key" "$D/keys/signing.pub"
fi

for v in 1.0 2.0; do
        step "slipway-build build images/tiny.conf --image-version $v"
        "$B" --store "$D/store" build --key "$D/keys/signing.key" --lock "$D/tiny.lock" --image-version "$v" \
                "$TOP/images/tiny.conf" >/dev/null
done

step "slipway-build list"
"$B" --store "$D/store" list
step "slipway-build inspect tiny:2.0"
"$B" --store "$D/store" inspect tiny:2.0
step "slipway-build verify tiny:2.0"
"$B" --store "$D/store" verify --key "$D/keys/signing.pub" tiny:2.0

cat <<TXT

What was built lives in $D/store (blobs by sha256 + catalog.db).
Try next:
  build/bin/slipway-build --store $D/store export tiny:2.0 /tmp/tiny
  qemu-system-x86_64 -accel tcg -m 512 -nographic \\
      -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \\
      -drive if=pflash,format=raw,snapshot=on,file=/usr/share/OVMF/OVMF_VARS_4M.fd \\
      -drive file=/tmp/tiny/disk.img,format=raw,if=virtio,snapshot=on
  make test        # unit, integration and boot tests
TXT
