#!/bin/bash
# Integration tests of `slipway-build push` against slipwayd on loopback:
# only missing blobs are uploaded, a second push sends nothing, and every
# failure (untrusted key, unreachable server, bad token, corrupt blob) is one
# clear line and publishes nothing.
. "$(dirname "$0")/../lib.sh"
t_begin push

B=$BIN/slipway-build
SLIPWAYD=${SLIPWAYD:-$BIN/slipwayd}
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$T_DIR/cache
unset SLIPWAY_TOKEN SLIPWAY_CA_FILE
D=$T_DIR
PIDS=""

stop_servers() {
        # shellcheck disable=SC2086
        t_stop $PIDS
        PIDS=""
}
t_on_exit stop_servers

# start_server NAME KEYDIR [SLIPWAYD-OPTION...]: runs slipwayd on a free
# loopback port trusting the keys in KEYDIR; sets URL and TOKEN (a new admin
# token named ci).
start_server() {
        local dir=$D/$1 keys=$2 i
        shift 2
        TOKEN=$("$SLIPWAYD" --state-dir "$dir" --log-json no token create ci) || return 1
        "$SLIPWAYD" --state-dir "$dir" --listen 127.0.0.1:0 --trusted-keys "$keys" --log-json no "$@" \
                >"$dir.log" 2>&1 &
        PIDS="$PIDS $!"
        for ((i = 0; i < 600; i++)); do
                [ -s "$dir/slipwayd.url" ] && break
                sleep 0.1
        done
        URL=$(cat "$dir/slipwayd.url" 2>/dev/null) || { echo "slipwayd did not start: $(cat "$dir.log")"; return 1; }
}

# py EXPR < JSON: evaluates EXPR with the parsed input as j.
py() {
        python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"
}

# images_on URL TOKEN: the number of images the server publishes.
images_on() {
        curl -s -H "Authorization: Bearer $2" "$1/v1/images" | py 'len(j["images"])'
}

# blob_status URL HEX: the HTTP status of HEAD /blobs/sha256/HEX.
blob_status() {
        curl -s -o /dev/null -I -w '%{http_code}' "$1/blobs/sha256/$2"
}

if [ ! -x "$SLIPWAYD" ]; then
        t_case "slipwayd is built"
        t_fail "no $SLIPWAYD (make build/bin/slipwayd, or set SLIPWAYD)"
        t_end
        exit 1
fi

# An image to push, signed with a key the first server trusts.
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
$B keygen "$D/other.key" "$D/other-keys/other.pub" >/dev/null
sample_def "$D/tiny.conf"
id1=$($B -q --store "$D/store" build --key "$D/k.key" --lock "$D/tiny.lock" --no-disk --image-version 1.0 \
        "$D/tiny.conf" 2>"$D/build.log")
$B --store "$D/store" export tiny:1.0 "$D/export" >/dev/null
n_blobs=$(python3 -c 'import json,sys; print(2 + len(set(a["sha256"] for a in json.load(open(sys.argv[1]))["artifacts"])))' \
        "$D/export/manifest.json")

start_server srv "$D/keys" || exit 1
SRV=$URL SRV_TOKEN=$TOKEN

t_case "first push uploads every blob"
if out=$(SLIPWAY_TOKEN=$SRV_TOKEN $B --store "$D/store" push "$SRV" tiny:1.0 2>"$D/push1.log") &&
        grep -q "^pushed tiny 1.0 (${id1:0:12}) to $SRV: $n_blobs blob(s) uploaded, 0 already there" <<<"$out" &&
        [ "$(images_on "$SRV" "$SRV_TOKEN")" = 1 ] &&
        [ "$(blob_status "$SRV" "$(sha256sum <"$D/export/rootfs.erofs" | cut -c1-64)")" = 200 ] &&
        [ "$(blob_status "$SRV" "$(sha256sum <"$D/export/manifest.sig" | cut -c1-64)")" = 200 ]; then
        t_ok "$n_blobs blobs"
else
        t_fail "${out:-no output}: $(tail -3 "$D/push1.log")"
fi

t_case "the published image is the one built"
got=$(curl -s -H "Authorization: Bearer $SRV_TOKEN" "$SRV/v1/images/tiny:1.0" |
        python3 -c 'import json,sys; i=json.load(sys.stdin); print(i["id"], i["signed_by"])')
if [ "$got" = "$id1 k.pub" ]; then t_ok; else t_fail "server has '$got', built $id1"; fi

t_case "progress in a pipe is plain lines"
if grep -q '^==> upload' "$D/push1.log" && grep -q '^==> publish' "$D/push1.log" &&
        ! grep -q $'\r' "$D/push1.log"; then t_ok; else t_fail "$(cat "$D/push1.log")"; fi

t_case "a second push uploads nothing and succeeds"
if out=$($B --store "$D/store" push --token "$SRV_TOKEN" "$SRV" tiny:1.0 2>"$D/push2.log") &&
        grep -q "already published on $SRV: 0 blob(s) uploaded, $n_blobs already there, 0 B sent" <<<"$out"; then
        t_ok
else
        t_fail "${out:-no output}: $(tail -3 "$D/push2.log")"
fi

t_case "a new version uploads only the blobs that changed"
echo "$SRV_TOKEN" >"$D/token"
tiny_def "$D/tiny-2.0.conf" 2.0
$B -q --store "$D/store" build --key "$D/k.key" --lock "$D/tiny.lock" --no-disk "$D/tiny-2.0.conf" \
        >/dev/null 2>"$D/build2.log"
if out=$($B -q --store "$D/store" push --token-file "$D/token" "$SRV" tiny:2.0 2>&1) &&
        [[ $out =~ ^pushed\ tiny\ 2.0\ .*\ ([0-9]+)\ blob\(s\)\ uploaded,\ ([0-9]+)\ already\ there ]] &&
        [ "${BASH_REMATCH[2]}" -ge 1 ] && [ "$(images_on "$SRV" "$SRV_TOKEN")" = 2 ]; then
        t_ok "${BASH_REMATCH[1]} uploaded, ${BASH_REMATCH[2]} already there"
else
        t_fail "${out:-no output}"
fi

t_case "another image under a published NAME:VERSION fails before it uploads anything"
# Same packages, another command line: the same artifacts but another
# manifest, so only the manifest and its signature are new to the server.
sed -e 's/^cmdline = .*/cmdline = console=ttyS0 other/' "$D/tiny.conf" >"$D/other.conf"
$B -q --store "$D/store-other" build --key "$D/k.key" --lock "$D/other.lock" --no-disk --image-version 1.0 \
        "$D/other.conf" >/dev/null 2>"$D/build-other.log"
blob_files() { find "$D/srv/blobs" -type f | wc -l; }
before=$(blob_files)
if expect_fail "cannot push tiny 1.0: tiny:1.0 is already published on $SRV as image ${id1:0:12}, this one is .*versions are immutable" \
        $B --store "$D/store-other" push --token "$SRV_TOKEN" "$SRV" tiny:1.0 &&
        [ "$(blob_files)" = "$before" ]; then
        t_ok
else
        t_fail "blob files on the server: $before before, $(blob_files) after; $(tail -3 "$D/build-other.log")"
fi

# A second server that trusts another key only.
start_server strict "$D/other-keys" || exit 1
STRICT=$URL STRICT_TOKEN=$TOKEN
manifest_hex=$(sha256sum <"$D/export/manifest.json" | cut -c1-64)

t_case "a wrong token fails with 401 and uploads nothing"
if expect_fail "cannot look for tiny 1.0 on $STRICT: server: unknown token \(unauthorized\)" \
        $B --store "$D/store" push --token slw_wrong "$STRICT" tiny:1.0 &&
        [ "$(blob_status "$STRICT" "$manifest_hex")" = 404 ]; then t_ok; else t_fail "blob status after the refused push: $(blob_status "$STRICT" "$manifest_hex")"; fi

t_case "no token at all says how to pass one"
if expect_fail "a bearer token is required \(unauthorized\); pass --token" \
        $B --store "$D/store" push "$STRICT" tiny:1.0; then t_ok; else t_fail "the push without a token was not refused as expected"; fi

t_case "an untrusted signature is refused with bad_signature, nothing published"
if expect_fail "cannot publish tiny 1.0 on $STRICT: server: .*\(bad_signature\)" \
        env SLIPWAY_TOKEN="$STRICT_TOKEN" $B --store "$D/store" push "$STRICT" tiny:1.0 &&
        [ "$(images_on "$STRICT" "$STRICT_TOKEN")" = 0 ]; then t_ok; else t_fail "images on the server: $(images_on "$STRICT" "$STRICT_TOKEN")"; fi

t_case "an unreachable server fails clearly"
if expect_fail "cannot push tiny 1.0: cannot reach the server at http://127.0.0.1:9: " \
        $B --store "$D/store" push --token x http://127.0.0.1:9 tiny:1.0; then t_ok; else t_fail "the unreachable server was not reported as expected"; fi

t_case "a blob corrupted in the store is refused (digest_mismatch)"
cp -a "$D/store" "$D/store-bad"
rootfs=$(sha256sum <"$D/export/rootfs.erofs" | cut -c1-64)
blob=$D/store-bad/blobs/sha256/${rootfs:0:2}/$rootfs
chmod u+w "$blob"
printf 'X' | dd of="$blob" bs=1 seek=4096 conv=notrunc 2>/dev/null
start_server fresh "$D/keys" || exit 1
if expect_fail "cannot upload the rootfs of tiny 1.0 to $URL: server: .*\(digest_mismatch\)" \
        $B --store "$D/store-bad" push --token "$TOKEN" "$URL" tiny:1.0 &&
        [ "$(blob_status "$URL" "$rootfs")" = 404 ] && [ "$(images_on "$URL" "$TOKEN")" = 0 ]; then t_ok; else t_fail "rootfs blob status $(blob_status "$URL" "$rootfs"), images $(images_on "$URL" "$TOKEN")"; fi

t_case "a blob whose catalog row was lost still counts"
# HEAD and publishing both go by the blob files; a file without its row (a
# crash between rename and commit) gets its row back when an image uses it.
start_server lost "$D/keys" || exit 1
for f in "$D"/export/*; do
        curl -sf -o /dev/null -T "$f" -H "Authorization: Bearer $TOKEN" \
                "$URL/v1/blobs/sha256/$(sha256sum <"$f" | cut -c1-64)"
done
t_state_sql "$D/lost" "DELETE FROM blobs WHERE sha256 = '$rootfs'"
if out=$($B -q --store "$D/store" push --token "$TOKEN" "$URL" tiny:1.0 2>&1) &&
        grep -q "^pushed tiny 1.0 .*: 0 blob(s) uploaded, $n_blobs already there" <<<"$out" &&
        [ "$(images_on "$URL" "$TOKEN")" = 1 ] &&
        [ "$(t_state_sql "$D/lost" "SELECT count(*) FROM blobs WHERE sha256 = '$rootfs'")" = 1 ]; then
        t_ok
else
        t_fail "${out:-no output}"
fi

t_case "push over https, verified against --ca-file"
if command -v openssl >/dev/null; then
        mkdir -p "$D/tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
                -addext subjectAltName=IP:127.0.0.1 -keyout "$D/tls/key.pem" -out "$D/tls/cert.pem" 2>/dev/null
        start_server tls "$D/keys" --tls-cert "$D/tls/cert.pem" --tls-key "$D/tls/key.pem"
        if [ "${URL:0:8}" = https:// ] &&
                expect_fail "cannot push tiny 1.0: cannot talk TLS with the server at $URL: .*certificate" \
                        $B --store "$D/store" push --token "$TOKEN" "$URL" tiny:1.0 &&
                out=$($B -q --store "$D/store" push --token "$TOKEN" --ca-file "$D/tls/cert.pem" "$URL" tiny:1.0) &&
                grep -q "^pushed tiny 1.0 .* $n_blobs blob(s) uploaded" <<<"$out" &&
                [ "$(curl -s --cacert "$D/tls/cert.pem" -H "Authorization: Bearer $TOKEN" "$URL/v1/images/tiny:1.0" |
                        py 'j["id"]')" = "$id1" ]; then
                t_ok
        else
                t_fail "TLS push: url $URL, output: ${out:-no output}"
        fi
else
        t_skip "no openssl for a test certificate"
fi

t_case "usage errors"
if expect_fail "is not an http:// or https:// URL" $B --store "$D/store" push --token x ftp://host tiny:1.0 &&
        expect_fail "no image 'tiny:9' in store" $B --store "$D/store" push --token x "$SRV" tiny:9 &&
        expect_fail "usage: slipway-build push URL IMAGE" $B --store "$D/store" push "$SRV"; then t_ok; else t_fail "a usage error was not refused as expected"; fi

stop_servers
t_end
