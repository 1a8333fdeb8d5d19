#!/bin/bash
# Integration tests of slipwayd on loopback with a real HTTP client (curl):
# blobs (Range, ETag, uploads that fail halfway), publishing (signatures,
# missing blobs), hosts (PXE registration, enrollment, check-ins, labels),
# tokens, audit, metrics, reload, TLS, and every kind of bad request.
. "$(dirname "$0")/../lib.sh"
t_begin server

B=$BIN/slipway-build
SD=$BIN/slipwayd
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

# start_server STATE [FLAGS...]: runs slipwayd on a free loopback port; sets
# URL and PID.
start_server() {
        local state=$1 i
        shift
        rm -f "$state/slipwayd.url"
        "$SD" --state-dir "$state" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no "$@" \
                >>"$state.log" 2>&1 &
        PID=$!
        PIDS+=("$PID")
        for ((i = 0; i < 1200; i++)); do
                [ -s "$state/slipwayd.url" ] && break
                sleep 0.05
        done
        URL=$(cat "$state/slipwayd.url" 2>/dev/null)
}

# api METHOD PATH [CURL-ARGS...]: sets CODE and BODY. The admin token is
# sent, or $AS when set.
api() {
        local method=$1 path=$2 out
        shift 2
        out=$(curl -s -X "$method" -w '\n%{http_code}' -H "Authorization: Bearer ${AS:-$TOKEN}" "$@" "$URL$path")
        CODE=${out##*$'\n'}
        BODY=${out%$'\n'*}
}
post_json() { api "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3"; }
kind_is() { [ "$CODE" = "$1" ] && [ "$(jq -r .kind <<<"$BODY")" = "$2" ]; }
upload() { api PUT "/v1/blobs/sha256/$(sha "$1")" -T "$1"; }
# raw_http: sends stdin to the server byte for byte (a request that ends in
# "Connection: close") and prints the whole answer; for what curl will not
# send. raw_status and raw_body take that answer apart.
raw_http() {
        python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(sys.stdin.buffer.read())
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        sys.stdout.buffer.write(b)
except OSError:
    pass
' "${URL##*:}"
}
raw_status() { head -n 1 <<<"$1" | cut -d' ' -f2; }
raw_body() { sed '1,/^\r$/d' <<<"$1"; }
raw_kind() { [ "$(raw_status "$2")" = "$1" ] && [ "$(raw_body "$2" | jq -r .kind 2>/dev/null)" = "$3" ]; }

# One image, built and exported, and a second signing key nobody trusts.
mkdir -p "$D/keys" "$D/other"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
$B keygen "$D/other/o.key" "$D/other/o.pub" >/dev/null
sample_def "$D/tiny.conf"
$B -q --store "$D/store" build --key "$D/k.key" --no-disk --image-version 1.0 "$D/tiny.conf" >/dev/null
$B -q --store "$D/store" export tiny:1.0 "$D/v1" >/dev/null
E=$D/v1
M=$(sha "$E/manifest.json")
S=$(sha "$E/manifest.sig")
K=$(sha "$E/vmlinuz")

t_case "token create, and the server starts"
TOKEN=$("$SD" --state-dir "$D/state" --log-json no token create ci 2>"$D/token.err")
start_server "$D/state" --max-json 64K --enroll-ttl 600
api GET /v1/status
if [[ $TOKEN == slw_* ]] && [ "$CODE" = 200 ] && [ "$(jq -r .images <<<"$BODY")" = 0 ]; then t_ok; else
        t_fail "token=$TOKEN code=$CODE $BODY $(cat "$D/token.err" "$D/state.log")"; fi

t_case "admin calls need a known token"
ok=1
out=$(curl -s -w ' %{http_code}' "$URL/v1/images")
[[ $out == *'"kind":"unauthorized"'*' 401' ]] || ok=0
out=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer slw_nope' "$URL/v1/images")
[[ $out == *'"kind":"unauthorized"'*' 401' ]] || ok=0
[ $ok = 1 ] && t_ok || t_fail "$out"

t_case "a token command beside the running server leaves its uploads in tmp/ alone"
echo partial >"$D/state/tmp/upload-in-progress"
if "$SD" --state-dir "$D/state" --log-json no token create beside >/dev/null 2>"$D/beside.err" &&
        [ -f "$D/state/tmp/upload-in-progress" ]; then t_ok; else
        t_fail "the upload is gone from tmp/ ($(ls "$D/state/tmp"); $(cat "$D/beside.err"))"; fi
rm -f "$D/state/tmp/upload-in-progress"

t_case "a blob whose bytes do not match its name is refused, nothing kept"
api PUT "/v1/blobs/sha256/$K" --data-binary "not the kernel"
if kind_is 400 digest_mismatch && [ -z "$(ls -A "$D/state/tmp")" ] &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/blobs/sha256/$K")" = 404 ]; then t_ok; else
        t_fail "$CODE $BODY; tmp: $(ls "$D/state/tmp")"; fi

t_case "an upload cut off halfway leaves nothing"
exec 3<>/dev/tcp/127.0.0.1/"${URL##*:}"
printf 'PUT /v1/blobs/sha256/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 8000000\r\n\r\n' \
        "$K" "$TOKEN" >&3
head -c 1000000 "$E/vmlinuz" >&3
sleep 0.3
exec 3>&-
# The server removes what it had written once it sees the connection end.
t_wait_until 60 eval '[ -z "$(ls -A "$D/state/tmp")" ]'
if [ -z "$(ls -A "$D/state/tmp")" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/blobs/sha256/$K")" = 404 ]; then
        t_ok; else t_fail "tmp: $(ls -A "$D/state/tmp")"; fi

t_case "publishing before the blobs are there names what is missing"
upload "$E/manifest.json"
upload "$E/manifest.sig"
post_json POST /v1/images "{\"manifest\":\"$M\",\"signature\":\"$S\"}"
if kind_is 409 missing_blobs && [ "$(jq '.missing | length' <<<"$BODY")" = 3 ]; then t_ok; else t_fail "$CODE $BODY"; fi

t_case "upload the artifacts (201, then 200 when already there)"
codes=""
for f in "$E/vmlinuz" "$E/initrd.img" "$E/rootfs.erofs"; do upload "$f"; codes+="$CODE "; done
upload "$E/vmlinuz"
codes+="$CODE"
[ "$codes" = "201 201 201 200" ] && t_ok || t_fail "$codes"

t_case "re-uploading a stored blob still checks the bytes"
api PUT "/v1/blobs/sha256/$K" --data-binary @"$E/initrd.img"
kind_is 400 digest_mismatch && t_ok || t_fail "$CODE $BODY"

t_case "a manifest signed by an untrusted key is refused"
$B keygen "$D/x.key" "$D/x.pub" >/dev/null 2>&1
openssl pkeyutl -sign -rawin -inkey "$D/other/o.key" -in "$E/manifest.json" -out "$D/bad.sig" 2>/dev/null ||
        head -c 64 /dev/urandom >"$D/bad.sig"
upload "$D/bad.sig"
post_json POST /v1/images "{\"manifest\":\"$M\",\"signature\":\"$(sha "$D/bad.sig")\"}"
kind_is 400 bad_signature && t_ok || t_fail "$CODE $BODY"

t_case "an unsigned manifest (garbage signature) is refused"
head -c 64 /dev/urandom >"$D/garbage.sig"
upload "$D/garbage.sig"
post_json POST /v1/images "{\"manifest\":\"$M\",\"signature\":\"$(sha "$D/garbage.sig")\"}"
kind_is 400 bad_signature && t_ok || t_fail "$CODE $BODY"

t_case "a version with '+' is refused, naming it and what a version may hold"
# Signed by the trusted key, so only the version is wrong: an agent could not
# tell "1.0+1" from 1.0 with one boot try left.
jq '.version = "1.0+1"' "$E/manifest.json" >"$D/plus.json"
openssl pkeyutl -sign -rawin -inkey "$D/k.key" -in "$D/plus.json" -out "$D/plus.sig"
upload "$D/plus.json"
upload "$D/plus.sig"
post_json POST /v1/images "{\"manifest\":\"$(sha "$D/plus.json")\",\"signature\":\"$(sha "$D/plus.sig")\"}"
refusal="$CODE $BODY"
if kind_is 400 invalid_value && [[ $(jq -r .error <<<"$BODY") == *"invalid version '1.0+1'"*"letters, digits and . _ - ~ ^"* ]] &&
        api GET /v1/images && [ "$(jq '.images | length' <<<"$BODY")" = 0 ]; then t_ok; else
        t_fail "$refusal; then $CODE $BODY"; fi

t_case "publish, then publishing again is idempotent"
post_json POST /v1/images "{\"manifest\":\"$M\",\"signature\":\"$S\"}"
c1=$CODE
post_json POST /v1/images "{\"manifest\":\"$M\",\"signature\":\"$S\"}"
if [ "$c1" = 201 ] && [ "$CODE" = 200 ] && [ "$(jq -r .id <<<"$BODY")" = "$M" ] &&
        [ "$(jq -r .signed_by <<<"$BODY")" = k.pub ]; then t_ok; else t_fail "$c1 $CODE $BODY"; fi

t_case "image list and show by name:version, name and ID prefix"
api GET /v1/images
n=$(jq '.images | length' <<<"$BODY")
ok=1
for ref in tiny:1.0 tiny "${M:0:12}"; do
        api GET "/v1/images/$ref"
        [ "$(jq -r .id <<<"$BODY")" = "$M" ] || ok=0
done
api GET /v1/images/tiny:9.9
[ "$n" = 1 ] && [ $ok = 1 ] && kind_is 404 not_found && t_ok || t_fail "n=$n $CODE $BODY"

t_case "a NUL or control character in a path or query is 400, before anything acts on the name cut there"
ok=1
for req in "DELETE /v1/images/tiny%00:9.9" "GET /v1/images/tiny%00" "GET /blobs/sha256/$K%00" \
        "PUT /v1/budgets/rack%00x" "GET /boot/ipxe?mac=52:54:00:00:00:09%00zz" "GET /v1/status?x=%00" \
        "GET /v1/images/tiny%0a" "GET /v1/images/tiny%7F" "GET /v1/audit?action=host%1F"; do
        data=()
        [[ $req == PUT* ]] && data=(--data-binary '{"max_unavailable": 1}')
        out=$(curl -s -w ' %{http_code}' -X "${req%% *}" -H "Authorization: Bearer $TOKEN" \
                -H 'Content-Type: application/json' "${data[@]}" "$URL${req#* }")
        [[ $out == *'"kind":"bad_request"'*' 400' ]] || { ok=0; echo "$req -> $out"; }
done
# sent as is (not percent-encoded), which curl will not do
out=$(printf 'DELETE /v1/images/tiny\0:9.9 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' \
        "$TOKEN" | raw_http)
raw_kind 400 "$out" bad_request || { ok=0; echo "raw NUL -> $out"; }
out=$(printf 'GET /v1/images/tiny\001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' \
        "$TOKEN" | raw_http)
raw_kind 400 "$out" bad_request || { ok=0; echo "raw 0x01 -> $out"; }
api GET /v1/images/tiny:1.0
c1=$CODE
api GET /v1/budgets
n=$(jq '.budgets | length' <<<"$BODY")
api GET /v1/hosts/52:54:00:00:00:09
c3=$CODE
# UTF-8 is not a control character
api GET /v1/images/caf%C3%A9
if [ $ok = 1 ] && [ "$c1" = 200 ] && [ "$n" = 0 ] && [ "$c3" = 404 ] && kind_is 404 not_found; then t_ok; else
        t_fail "image: $c1, budgets: $n, host: $c3, UTF-8: $CODE $BODY"; fi

t_case "blob GET: whole, HEAD, ETag, immutable caching"
hdr=$(curl -s -D - -o "$D/k.out" "$URL/blobs/sha256/$K")
head_hdr=$(curl -s -I "$URL/blobs/sha256/$K")
if cmp -s "$D/k.out" "$E/vmlinuz" && grep -qi "^etag: \"$K\"" <<<"$hdr" &&
        grep -qi '^cache-control: public, max-age=31536000, immutable' <<<"$hdr" &&
        grep -qi "^content-length: $(stat -c %s "$E/vmlinuz")" <<<"$head_hdr" &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: \"$K\"" "$URL/blobs/sha256/$K")" = 304 ]; then
        t_ok; else t_fail "$hdr"; fi

t_case "blob Range: first bytes, suffix, open end, unsatisfiable"
size=$(stat -c %s "$E/vmlinuz")
ok=1
curl -s -r 0-99 -o "$D/r1" "$URL/blobs/sha256/$K"
cmp -s "$D/r1" <(head -c 100 "$E/vmlinuz") || ok=0
curl -s -r -100 -o "$D/r2" "$URL/blobs/sha256/$K"
cmp -s "$D/r2" <(tail -c 100 "$E/vmlinuz") || ok=0
curl -s -r $((size - 10))- -o "$D/r3" "$URL/blobs/sha256/$K"
cmp -s "$D/r3" <(tail -c 10 "$E/vmlinuz") || ok=0
h416=$(curl -s -D - -o "$D/r4" -r "$size-" "$URL/blobs/sha256/$K")
grep -q '^HTTP/1.1 416' <<<"$h416" || ok=0
grep -qi "^content-range: bytes \*/$size" <<<"$h416" || ok=0
[ "$(jq -r .kind "$D/r4")" = range_not_satisfiable ] || ok=0
h206=$(curl -s -D - -o /dev/null -r 10-19 "$URL/blobs/sha256/$K")
grep -qi "^content-range: bytes 10-19/$size" <<<"$h206" || ok=0
[ $ok = 1 ] && t_ok || t_fail "$h416 $h206"

t_case "conditional GETs: If-None-Match takes lists, weak tags and *; If-Range compares strongly; 304 has no length"
ok=1
cond() { curl -s -o "$D/cond.out" -w '%{http_code}' "$@" "$URL/blobs/sha256/$K"; }
for h in "\"a\", \"$K\"" "W/\"$K\"" "\"a\",W/\"$K\" , \"b\"" '*'; do
        c=$(cond -H "If-None-Match: $h")
        [ "$c" = 304 ] || { ok=0; echo "If-None-Match: $h -> $c"; }
done
for h in '"a", W/"b"' "\"${K:0:20}\"" "$K" "\"$K\" junk"; do
        c=$(cond -H "If-None-Match: $h")
        [ "$c" = 200 ] && cmp -s "$D/cond.out" "$E/vmlinuz" || { ok=0; echo "If-None-Match: $h -> $c"; }
done
for h in '"other"' "W/\"$K\"" 'Wed, 21 Oct 2015 07:28:00 GMT' "\"a\", \"$K\""; do
        c=$(cond -r 0-9 -H "If-Range: $h")
        [ "$c" = 200 ] && cmp -s "$D/cond.out" "$E/vmlinuz" || { ok=0; echo "If-Range: $h -> $c"; }
done
c=$(cond -r 0-9 -H "If-Range: \"$K\"")
[ "$c" = 206 ] && cmp -s "$D/cond.out" <(head -c 10 "$E/vmlinuz") || { ok=0; echo "If-Range: matching -> $c"; }
hdr=$(printf 'GET /blobs/sha256/%s HTTP/1.1\r\nHost: x\r\nIf-None-Match: "%s"\r\nConnection: close\r\n\r\n' "$K" "$K" |
        raw_http)
[ "$(raw_status "$hdr")" = 304 ] && grep -qi "^etag: \"$K\"" <<<"$hdr" && [ -z "$(raw_body "$hdr")" ] &&
        ! grep -qi '^content-length\|^transfer-encoding' <<<"$hdr" || { ok=0; echo "304: $hdr"; }
[ $ok = 1 ] && t_ok || t_fail "see above"

t_case "path traversal in blob and image names"
ok=1
for p in "/blobs/sha256/..%2F..%2Fstate.db" "/blobs/sha256/../../state.db" "/blobs/sha256/${K^^}" \
        "/v1/images/..%2F..%2Fetc" "/blobs/sha256/$K/../../state.db"; do
        out=$(curl -s --path-as-is -w ' %{http_code}' -H "Authorization: Bearer $TOKEN" "$URL$p")
        case "$out" in *'"kind":'*' 400' | *'"kind":'*' 404') ;; *) ok=0; echo "$p -> $out" ;; esac
done
[ $ok = 1 ] && t_ok || t_fail "a traversal was served"

t_case "malformed JSON, unknown members, wrong content type, oversized bodies"
ok=1
post_json POST /v1/images '{"manifest": '
kind_is 400 invalid_json || ok=0
post_json POST /v1/images '[1]'
kind_is 400 invalid_json || ok=0
post_json POST /v1/images "{\"manifest\":\"$M\",\"signature\":\"$S\",\"force\":true}"
kind_is 400 unknown_field || ok=0
api POST /v1/images -H 'Content-Type: text/plain' --data-binary '{}'
kind_is 415 unsupported_media_type || ok=0
head -c 70000 /dev/zero | tr '\0' ' ' >"$D/big.json"
api POST /v1/images -H 'Content-Type: application/json' --data-binary @"$D/big.json"
kind_is 413 too_large || ok=0
api PUT /v1/blobs/sha256/nothex --data-binary x
kind_is 400 invalid_value || ok=0
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 70000 /dev/zero | tr '\0' a)" "$URL/v1/status")
[ "$code" -ge 400 ] && [ "$code" -lt 500 ] || ok=0
api DELETE /v1/status
kind_is 405 method_not_allowed || ok=0
[ $ok = 1 ] && t_ok || t_fail "last: $CODE $BODY (header cap: $code)"

t_case "HTTP-level errors are JSON: the 16 KiB header cap, a body where none is taken, bodies framed twice"
ok=1
# a GET of /v1/status whose request line and headers are $1 bytes (64 without the padding)
head_of() {
        printf 'GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: %s\r\n\r\n' \
                "$(head -c $(($1 - 64)) /dev/zero | tr '\0' a)"
}
[ "$(head_of 100 | wc -c)" = 100 ] || { ok=0; echo "head_of is off"; }
out=$(head_of 16384 | raw_http)
[ "$(raw_status "$out")" = 200 ] || { ok=0; echo "16384 -> $out"; }
for n in 16385 40000; do
        out=$(head_of $n | raw_http)
        raw_kind 431 "$out" headers_too_large || { ok=0; echo "$n -> $(head -c 300 <<<"$out")"; }
done
api GET /v1/status --data-binary x
kind_is 400 bad_request || { ok=0; echo "GET with a body: $CODE $BODY"; }
api DELETE /v1/images/nope:1 --data-binary '{}'
kind_is 400 bad_request || { ok=0; echo "DELETE with a body: $CODE $BODY"; }
out=$(printf 'GET /v1/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n' |
        raw_http)
raw_kind 400 "$out" bad_request || { ok=0; echo "chunked GET: $out"; }
for framing in 'Content-Length: 2\r\nContent-Length: 12' 'Content-Length: 2\r\nTransfer-Encoding: chunked' \
        'Transfer-Encoding: gzip' 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked'; do
        out=$(printf "POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n$framing\r\nConnection: close\r\n\r\n{}\r\n0\r\n\r\n" \
                "$TOKEN" | raw_http)
        raw_kind 400 "$out" bad_request || { ok=0; echo "$framing -> $out"; }
done
out=$(printf 'POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}' \
        "$TOKEN" | raw_http)
raw_kind 400 "$out" invalid_value || { ok=0; echo "the same Content-Length twice: $out"; }
[ $ok = 1 ] && t_ok || t_fail "see above"

t_case "bad MAC and UUID strings"
ok=1
for q in "mac=zz:00" "mac=52:54:00:12:34:5g" "mac=52:54:00:12:34:56&uuid=not-a-uuid"; do
        out=$(curl -s -w ' %{http_code}' "$URL/boot/ipxe?$q")
        [[ $out == *'"kind":"invalid_value"'*' 400' ]] || ok=0
done
post_json POST /v1/hosts/register '{"mac": "nope", "enroll": "x"}'
kind_is 400 invalid_value || ok=0
[ $ok = 1 ] && t_ok || t_fail "$out"

MAC=52:54:00:12:34:56
UUID=8c2e8b8e-2d7e-4c1a-9b1e-0a1b2c3d4e5f
t_case "an unknown host without an image gets the wait script and is registered"
curl -s "$URL/boot/ipxe?mac=${MAC^^}&uuid=$UUID" >"$D/wait.ipxe"
api GET "/v1/hosts/$MAC"
HID=$(jq -r .id <<<"$BODY")
if head -1 "$D/wait.ipxe" | grep -q '^#!ipxe' && grep -q 'sleep 30' "$D/wait.ipxe" && [[ $HID == h-* ]] &&
        [ "$(jq -r .uuid <<<"$BODY")" = "$UUID" ] && [ "$(jq -r .state <<<"$BODY")" = registered ]; then
        t_ok; else t_fail "$(cat "$D/wait.ipxe") $BODY"; fi

t_case "a script request is pxe_seen, not last_seen: firmware is no sign of a running system"
api GET "/v1/hosts/$MAC"
if [ "$(jq -r .last_seen <<<"$BODY")" = null ] && [ "$(jq -r .pxe_seen <<<"$BODY")" -ge "$(($(date +%s) - 60))" ]; then
        t_ok; else t_fail "$BODY"; fi

t_case "an iPXE client that does not say who it is gets a chain script"
out=$(curl -s "$URL/boot/ipxe")
[[ $out == *'chain --replace '"$URL"'/boot/ipxe?mac=${mac}&uuid=${uuid}'* ]] && t_ok || t_fail "$out"

t_case "assign an image: the host gets an install script with a one-time secret"
post_json PUT "/v1/hosts/$HID/image" '{"image": "tiny:1.0"}'
curl -s "$URL/boot/ipxe?mac=$MAC&uuid=$UUID" >"$D/install.ipxe"
ENROLL=$(grep -o 'slipway.enroll=[0-9a-f]*' "$D/install.ipxe" | cut -d= -f2)
if [ "$CODE" = 200 ] && grep -q "^kernel $URL/blobs/sha256/$K " "$D/install.ipxe" &&
        grep -q 'slipway.mode=install' "$D/install.ipxe" && grep -q "slipway.host=$HID" "$D/install.ipxe" &&
        grep -q " slipway.server=$URL " "$D/install.ipxe" &&
        grep -q "^initrd --name initrd.img $URL/blobs/sha256/$(sha "$E/initrd.img")" "$D/install.ipxe" &&
        [ ${#ENROLL} = 64 ]; then t_ok; else t_fail "$(cat "$D/install.ipxe")"; fi

# Another client on the PXE network: loopback answers for all of 127/8.
OTHER=127.0.0.2
secret_of() { grep -o 'slipway.enroll=[0-9a-f]*' "$1" | cut -d= -f2; }

t_case "the same client asking again gets the same secret"
curl -s "$URL/boot/ipxe?mac=$MAC&uuid=$UUID" >"$D/install2.ipxe"
api GET "/v1/hosts/$MAC"
if [ "$(secret_of "$D/install2.ipxe")" = "$ENROLL" ] && [ "$(jq -r .enrollment.address <<<"$BODY")" = 127.0.0.1 ] &&
        [ "$(jq -r .enrollment.expires <<<"$BODY")" -gt "$(date +%s)" ]; then t_ok; else
        t_fail "$(cat "$D/install2.ipxe") $BODY"; fi

t_case "another client asking for the script gets no secret, and that is audited"
curl -s --interface $OTHER "$URL/boot/ipxe?mac=$MAC&uuid=$UUID" >"$D/other.ipxe"
api GET "/v1/audit?action=enroll&last=1"
if head -1 "$D/other.ipxe" | grep -q '^#!ipxe' && ! grep -q 'slipway.enroll\|^kernel' "$D/other.ipxe" &&
        grep -q 'enrollment secret went to another client' "$D/other.ipxe" &&
        [ "$(jq -c '.entries[0] | [.action, .target, .detail.address, .detail.issued_to]' <<<"$BODY")" = \
                "[\"enroll.refuse\",\"$HID\",\"$OTHER\",\"127.0.0.1\"]" ]; then t_ok; else
        t_fail "$(cat "$D/other.ipxe") $BODY"; fi

t_case "the secret from another client, or for another MAC, is refused (403, audited)"
api POST /v1/hosts/register --interface $OTHER -H 'Content-Type: application/json' \
        --data-binary "{\"mac\":\"$MAC\",\"enroll\":\"$ENROLL\"}"
c1=$CODE k1=$(jq -r .kind <<<"$BODY")
post_json POST /v1/hosts/register "{\"mac\":\"52:54:00:00:00:09\",\"enroll\":\"$ENROLL\"}"
c2=$CODE
api GET "/v1/audit?action=enroll.reject&last=2"
reasons=$(jq -r '.entries[].detail.reason' <<<"$BODY")
if [ "$c1" = 403 ] && [ "$k1" = forbidden ] && [ "$c2" = 403 ] &&
        grep -q "issued to 127.0.0.1, not to $OTHER" <<<"$reasons" && grep -q 'no host has the MAC' <<<"$reasons"; then
        t_ok; else t_fail "$c1 $k1 $c2 $BODY"; fi

t_case "register with the first secret after those requests; it works once"
post_json POST /v1/hosts/register "{\"mac\":\"$MAC\",\"uuid\":\"$UUID\",\"hostname\":\"node1\",\"enroll\":\"$ENROLL\",\"facts\":{\"arch\":\"x86_64\"}}"
HTOKEN=$(jq -r .token <<<"$BODY")
c1=$CODE
post_json POST /v1/hosts/register "{\"mac\":\"$MAC\",\"enroll\":\"$ENROLL\"}"
c2=$CODE k2=$(jq -r .kind <<<"$BODY")
api GET "/v1/hosts/$MAC"
if [ "$c1" = 200 ] && [[ $HTOKEN == slh_* ]] && [ "$c2" = 403 ] && [ "$k2" = forbidden ] &&
        [ "$(jq -r .enrollment <<<"$BODY")" = null ]; then t_ok; else t_fail "$c1 $c2 $k2 $BODY"; fi

t_case "once used, the next install boot gets a new secret, whoever asks first"
curl -s --interface $OTHER "$URL/boot/ipxe?mac=$MAC&uuid=$UUID" >"$D/other2.ipxe"
s2=$(secret_of "$D/other2.ipxe")
curl -s "$URL/boot/ipxe?mac=$MAC&uuid=$UUID" >"$D/install3.ipxe"
# An operator's assignment revokes it: the next boot asks anew.
post_json PUT "/v1/hosts/$HID/image" '{"image": "tiny:1.0"}'
curl -s "$URL/boot/ipxe?mac=$MAC&uuid=$UUID" >"$D/install4.ipxe"
s4=$(secret_of "$D/install4.ipxe")
if [ ${#s2} = 64 ] && [ "$s2" != "$ENROLL" ] && ! grep -q slipway.enroll "$D/install3.ipxe" && [ ${#s4} = 64 ] &&
        [ "$s4" != "$s2" ]; then t_ok; else t_fail "$(cat "$D/other2.ipxe" "$D/install3.ipxe" "$D/install4.ipxe")"; fi
post_json PUT "/v1/hosts/$HID/image" '{"image": "tiny:1.0"}'

t_case "check-in with the host token returns the desired image"
AS=$HTOKEN api POST "/v1/hosts/$HID/checkin" -H 'Content-Type: application/json' \
        --data-binary '{"state":"installing","version":null,"message":"writing disk"}'
if [ "$CODE" = 200 ] && [ "$(jq -r .desired.image <<<"$BODY")" = "$M" ] &&
        [ "$(jq -r .desired.version <<<"$BODY")" = 1.0 ] && [ "$(jq -r .checkin_interval <<<"$BODY")" = 30 ]; then
        t_ok; else t_fail "$CODE $BODY"; fi

t_case "a host token cannot act for another host or as admin"
curl -s "$URL/boot/ipxe?mac=52:54:00:00:00:02" >/dev/null
api GET /v1/hosts/52:54:00:00:00:02
HID2=$(jq -r .id <<<"$BODY")
AS=$HTOKEN api POST "/v1/hosts/$HID2/checkin" -H 'Content-Type: application/json' \
        --data-binary '{"state":"healthy"}'
c1=$CODE k1=$(jq -r .kind <<<"$BODY")
AS=$HTOKEN api GET /v1/images
if [ "$c1" = 403 ] && [ "$k1" = forbidden ] && kind_is 403 forbidden; then t_ok; else t_fail "$c1 $k1 $CODE $BODY"; fi

t_case "unknown and revoked tokens on host routes are 401"
ok=1
T2=$("$SD" --state-dir "$D/state" --log-json no token create short-lived)
"$SD" --state-dir "$D/state" --log-json no token revoke short-lived 2>/dev/null
for t in slw_nope slh_nope "$T2"; do
        for call in "POST /v1/hosts/$HID/checkin" "POST /v1/hosts/$HID/lease" "DELETE /v1/hosts/$HID/lease" \
                "POST /v1/hosts/h-000000000000/checkin" "POST /v1/hosts/52:54:00:00:00:02/lease"; do
                AS=$t api "${call%% *}" "${call#* }" -H 'Content-Type: application/json' --data-binary '{}'
                kind_is 401 unauthorized || { ok=0; echo "${t:0:8}… $call -> $CODE $BODY"; }
        done
done
[ -n "$T2" ] && [ $ok = 1 ] && t_ok || t_fail "see above"

t_case "check-in validation"
ok=1
for body in '{"state":"dancing"}' '{"state":"healthy","booted_slot":"c"}' '{"state":"healthy","image":"xyz"}' \
        '{"state":"healthy","slots":[1]}' '{"state":"healthy","extra":1}'; do
        AS=$HTOKEN api POST "/v1/hosts/$HID/checkin" -H 'Content-Type: application/json' \
                --data-binary "$body"
        [ "$CODE" = 400 ] || { ok=0; echo "$body -> $CODE $BODY"; }
done
[ $ok = 1 ] && t_ok || t_fail "a bad check-in was accepted"

t_case "an installed host boots its disk"
AS=$HTOKEN api POST "/v1/hosts/$HID/checkin" -H 'Content-Type: application/json' \
        --data-binary "{\"state\":\"healthy\",\"version\":\"1.0\",\"image\":\"$M\",\"booted_slot\":\"a\",\"slots\":{\"a\":{\"version\":\"1.0\"}}}"
curl -s "$URL/boot/ipxe?mac=$MAC" >"$D/local.ipxe"
if grep -q 'exit 1' "$D/local.ipxe" && grep -q 'sanboot --no-describe --drive 0x80' "$D/local.ipxe" &&
        grep -q ':retry' "$D/local.ipxe" && ! grep -q '^kernel' "$D/local.ipxe"; then t_ok; else
        t_fail "$(cat "$D/local.ipxe")"; fi

t_case "reinstall: the next PXE boot installs again"
post_json PUT "/v1/hosts/$HID/image" '{"image": "tiny:1.0", "reinstall": true}'
out=$(curl -s "$URL/boot/ipxe?mac=$MAC")
api POST "/v1/hosts/$HID/checkin" -H "Authorization: Bearer $HTOKEN" -H 'Content-Type: application/json' \
        --data-binary "{\"state\":\"healthy\",\"version\":\"1.0\",\"image\":\"$M\"}" -o /dev/null
if [[ $out == *slipway.mode=install* ]] && [[ $(curl -s "$URL/boot/ipxe?mac=$MAC") == *'exit 1'* ]]; then t_ok; else
        t_fail "$out"; fi

t_case "labels and filtered host lists"
post_json POST "/v1/hosts/$HID/labels" '{"set": {"service": "web", "rack": "r1", "tmp": "x"}}'
post_json POST "/v1/hosts/$HID/labels" '{"remove": ["tmp"]}'
l=$(jq -c .labels <<<"$BODY")
api GET "/v1/hosts?label=service=web"
n1=$(jq '.hosts | length' <<<"$BODY")
api GET "/v1/hosts?label=service=db"
n2=$(jq '.hosts | length' <<<"$BODY")
post_json PUT "/v1/hosts/$HID/image" '{"image": "nope:1"}'
[[ $(jq -r .error <<<"$BODY") == *"image 'nope:1': not found"* ]] || l="unknown image: $BODY"
post_json POST "/v1/hosts/$HID/labels" '{"set": {"bad key": "x"}}'
if [ "$l" = '{"rack":"r1","service":"web"}' ] && [ "$n1" = 1 ] && [ "$n2" = 0 ] && kind_is 400 invalid_value; then
        t_ok; else t_fail "$l $n1 $n2 $CODE $BODY"; fi

t_case "an image in use cannot be deleted; once free its blobs go"
api DELETE /v1/images/tiny:1.0
c1=$CODE k1=$(jq -r .kind <<<"$BODY")
post_json PUT "/v1/hosts/$HID/image" '{"image": null}'
AS=$HTOKEN api POST "/v1/hosts/$HID/checkin" -H 'Content-Type: application/json' \
        --data-binary '{"state":"healthy","image":null}'
api DELETE /v1/images/tiny:1.0
if [ "$c1" = 409 ] && [ "$k1" = in_use ] && [ "$CODE" = 200 ] && [ "$(jq -r .blobs_removed <<<"$BODY")" = 5 ] &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/blobs/sha256/$K")" = 404 ]; then t_ok; else
        t_fail "$c1 $k1 $CODE $BODY"; fi

t_case "the audit log has every change"
api GET /v1/audit
actions=$(jq -r '.entries[].action' <<<"$BODY" | sort -u | tr '\n' ' ')
ok=1
for a in token.create blob.upload image.publish host.register host.token host.assign host.labels host.state image.delete; do
        [[ " $actions" == *" $a "* ]] || ok=0
done
first=$(jq -r '.entries[0].id' <<<"$BODY")
newest=$(jq -r '.entries[-1].id' <<<"$BODY")
api GET "/v1/audit?since=$first&limit=2"
[ "$(jq '.entries | length' <<<"$BODY")" = 2 ] || ok=0
api GET "/v1/audit?last=2"
[ "$(jq -c '[.entries[].id]' <<<"$BODY")" = "[$((newest - 1)),$newest]" ] || ok=0
api GET "/v1/audit?action=host"
[ "$(jq -r '[.entries[].action | startswith("host.")] | all' <<<"$BODY")" = true ] || ok=0
[ $ok = 1 ] && t_ok || t_fail "$actions"

t_case "metrics in Prometheus text format"
out=$(curl -s "$URL/metrics")
if grep -q '^slipway_hosts{state="healthy"} 1$' <<<"$out" && grep -q '^slipway_hosts{state="registered"} 1$' <<<"$out" &&
        grep -q '^slipway_blob_bytes_served_total [1-9]' <<<"$out" &&
        grep -q '^slipway_http_errors_total{kind="digest_mismatch"} 2$' <<<"$out" &&
        grep -q '^slipway_http_requests_total{code="200"} [1-9]' <<<"$out"; then t_ok; else t_fail "$out"; fi

t_case "max-blob holds for chunked uploads: 413, nothing written, no temp file left"
MAIN=("$URL" "$TOKEN" "$PID")
TOKEN=$("$SD" --state-dir "$D/caps" --log-json no token create ci)
start_server "$D/caps" --max-blob 17M
head -c $((17 * 1024 * 1024 + 1)) /dev/urandom >"$D/over.bin"
api PUT "/v1/blobs/sha256/$(sha "$D/over.bin")" -T - <"$D/over.bin"
c1=$CODE b1=$BODY
head -c $((16 * 1024 * 1024 + 1)) "$D/over.bin" >"$D/manifest.big"
rm -f "$D/over.bin"
api PUT "/v1/blobs/sha256/$(sha "$D/manifest.big")" -T - <"$D/manifest.big"
if CODE=$c1 BODY=$b1 kind_is 413 too_large && [ -z "$(ls -A "$D/caps/tmp")" ] && [ "$CODE" = 201 ] &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/blobs/sha256/$(sha "$D/manifest.big")")" = 200 ] &&
        [ "$(find "$D/caps/blobs" -type f | wc -l)" = 1 ]; then t_ok; else
        t_fail "over: $c1 $b1; under: $CODE $BODY; tmp: $(ls -A "$D/caps/tmp")"; fi

t_case "publish names an oversized manifest or signature: 413, not 500"
ok=1
head -c 5000 /dev/urandom >"$D/sig.big"
upload "$E/manifest.json"
upload "$D/sig.big"
post_json POST /v1/images "{\"manifest\":\"$(sha "$D/manifest.big")\",\"signature\":\"$S\"}"
kind_is 413 too_large && [[ $(jq -r .error <<<"$BODY") == *manifest* ]] || { ok=0; echo "big manifest: $CODE $BODY"; }
post_json POST /v1/images "{\"manifest\":\"$M\",\"signature\":\"$(sha "$D/sig.big")\"}"
kind_is 413 too_large && [[ $(jq -r .error <<<"$BODY") == *signature* ]] || { ok=0; echo "big signature: $CODE $BODY"; }
[ $ok = 1 ] && t_ok || t_fail "see above"
kill "$PID"
wait "$PID" 2>/dev/null
URL=${MAIN[0]} TOKEN=${MAIN[1]} PID=${MAIN[2]}
rm -f "$D/manifest.big"

# log_count PATTERN: how many lines of the server's log match.
log_count() { grep -c -- "$1" "$D/state.log"; }
# wait_log PATTERN N: waits (up to 60 s) until N lines of the log match.
wait_log() {
        local i
        for ((i = 0; i < 600; i++)); do
                [ "$(log_count "$1")" -ge "$2" ] && return 0
                sleep 0.1
        done
        return 1
}

t_case "SIGHUP reloads the config; a broken one is refused and the old kept"
printf '[server]\ndefault-image = tiny\n' >"$D/slipwayd.conf"
kill "$PID"
wait "$PID" 2>/dev/null
rc=$?
start_server "$D/state" --config "$D/slipwayd.conf"
# publish again so that the default image exists
for f in "$E"/*; do upload "$f"; done
post_json POST /v1/images "{\"manifest\":\"$M\",\"signature\":\"$S\"}"
out1=$(curl -s "$URL/boot/ipxe?mac=52:54:00:00:00:03")
printf '[server]\ndefault-image = other\n' >"$D/slipwayd.conf"
n=$(log_count 'configuration reloaded')
kill -HUP "$PID"
wait_log 'configuration reloaded' $((n + 1))
out2=$(curl -s "$URL/boot/ipxe?mac=52:54:00:00:00:04")
printf '[server]\nbogus = 1\n' >"$D/slipwayd.conf"
n=$(log_count 'keeping the old one')
kill -HUP "$PID"
wait_log 'keeping the old one' $((n + 1))
if [ $rc = 0 ] && [[ $out1 == *slipway.mode=install* ]] && [[ $out2 == *'sleep 30'* ]] && kill -0 "$PID" &&
        grep -q "unknown key 'bogus'" "$D/state.log" && grep -q 'keeping the old one' "$D/state.log"; then
        t_ok; else t_fail "rc=$rc $out1 / $out2 $(tail -3 "$D/state.log")"; fi

t_case "SIGHUP: a configuration the server could not start with is refused whole, naming file:line"
printf '[server]\ndefault-image = tiny\n' >"$D/slipwayd.conf"
n=$(log_count 'configuration reloaded')
kill -HUP "$PID"
wait_log 'configuration reloaded' $((n + 1))
printf '[server]\ndefault-image = other\n[dhcp]\nmode = full\ninterface = eth1\n' >"$D/slipwayd.conf"
n=$(log_count 'keeping the old one')
kill -HUP "$PID"
wait_log 'keeping the old one' $((n + 1))
out=$(curl -s "$URL/boot/ipxe?mac=52:54:00:00:00:05")
if [[ $out == *slipway.mode=install* ]] &&
        grep -q "slipwayd.conf:4: dhcp: range is required with DHCP mode 'full'" "$D/state.log"; then t_ok; else
        t_fail "$out / $(tail -3 "$D/state.log")"; fi

t_case "SIGTERM stops the server cleanly"
kill "$PID"
wait "$PID"
rc=$?
[ $rc = 0 ] && t_ok || t_fail "exit $rc"

t_case "--check-config names file:line of an unknown key"
printf '[server]\nlisten = 127.0.0.1:1\n\n[dhcp]\ncolour = blue\n' >"$D/bad.conf"
out=$("$SD" --config "$D/bad.conf" --check-config 2>&1)
rc=$?
printf '[server]\nlisten = 127.0.0.1:1\n' >"$D/good.conf"
out2=$("$SD" --config "$D/good.conf" --listen nonsense --check-config 2>&1)
rc2=$?
if [ $rc != 0 ] && [[ $out == *"bad.conf:5: unknown key 'colour' in [dhcp]"* ]] && [ $rc2 != 0 ] &&
        [[ $out2 == *"listen: expected ADDR:PORT"* ]]; then t_ok; else t_fail "$rc $out / $rc2 $out2"; fi

# What slipwayd refuses at start, --check-config refuses first, with the
# file and line (or the flag) of the setting to fix. check_conf TEXT writes
# $D/check.conf: three lines of [server] that are fine, then TEXT (line 4 on).
mkdir -p "$D/tftp" "$D/afile.d"
printf efi >"$D/tftp/ipxe.efi"
printf bios >"$D/tftp/undionly.kpxe"
: >"$D/afile"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=a -keyout "$D/a.key" \
        -out "$D/a.crt" >/dev/null 2>&1
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$D/b.key" >/dev/null 2>&1
printf -- '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n' >"$D/junk.crt"
check_conf() { printf '[server]\ntrusted-keys = %s\nstate-dir = %s\n%b' "$D/keys" "$D/chk" "$1" >"$D/check.conf"; }
C=$D/check.conf
# check_fails PATTERN [FLAGS...]: --check-config of $C fails with one line
# matching PATTERN; the case's verdict.
check_fails() {
        if expect_fail "$1" "$SD" --config "$C" "${@:2}" --check-config; then t_ok; else
                t_fail "--check-config of: $(cat "$C")"; fi
}
DHCP_OK="tftp-root = $D/tftp\ndnsmasq = /bin/true\n"

t_case "--check-config accepts a DHCP configuration that would start (comments after values too)"
check_conf "public-url = http://10.0.0.1:8080   # what PXE clients reach\n[dhcp]\nmode = proxy # beside the site's DHCP
interface = eth1\nrange = 10.0.0.0\n$DHCP_OK"
if out=$("$SD" --config "$C" --check-config 2>&1) && [[ $out == *"configuration is valid"* ]]; then t_ok; else
        t_fail "$out"; fi

t_case "--check-config: DHCP full without a range names the mode's line"
check_conf "[dhcp]\nmode = full\ninterface = eth1\n$DHCP_OK"
check_fails "^slipwayd: $C:5: dhcp: range is required with DHCP mode 'full'"

t_case "--check-config: a range with junk names the range's line"
check_conf "[dhcp]\nmode = full\ninterface = eth1\nrange = 10.0.0.100,10.0.0.200junk\n$DHCP_OK"
check_fails "^slipwayd: $C:7: dhcp: range '10.0.0.100,10.0.0.200junk': '10.0.0.200junk' is not an IPv4 address"

t_case "--check-config: an interface name with ';' names the interface's line"
check_conf "[dhcp]\nmode = proxy\ninterface = eth1;reboot\nrange = 10.0.0.0\n$DHCP_OK"
check_fails "^slipwayd: $C:6: dhcp: interface 'eth1;reboot' is not a network interface name"

t_case "--check-config: a tftp root without the iPXE binaries names its line"
check_conf "[dhcp]\nmode = proxy\ninterface = eth1\nrange = 10.0.0.0\ntftp-root = $D/afile.d\n"
check_fails "^slipwayd: $C:8: dhcp: tftp-root '$D/afile.d' has no ipxe.efi"

t_case "--check-config: a bad value from a flag names the flag"
check_conf "[dhcp]\nmode = proxy\ninterface = eth1\nrange = 10.0.0.0\n$DHCP_OK"
check_fails "^slipwayd: --dhcp-range: dhcp: range 'junk': 'junk' is not an IPv4 address" --dhcp-range junk

t_case "--check-config: an unreadable TLS certificate names its line"
check_conf "tls-cert = $D/none.crt\ntls-key = $D/a.key\n"
check_fails "^slipwayd: $C:4: tls-cert '$D/none.crt': No such file or directory"

t_case "--check-config: a TLS certificate GnuTLS cannot load names its line"
check_conf "tls-cert = $D/junk.crt\ntls-key = $D/a.key\n"
check_fails "^slipwayd: $C:4: tls-cert '$D/junk.crt': not a PEM certificate"

t_case "--check-config: a TLS key that is not one names its line"
check_conf "tls-cert = $D/a.crt\ntls-key = $D/a.crt\n"
check_fails "^slipwayd: $C:5: tls-key '$D/a.crt': not an unencrypted PEM private key"

t_case "--check-config: a TLS key of another certificate names its line"
check_conf "tls-cert = $D/a.crt\ntls-key = $D/b.key\n"
check_fails "^slipwayd: $C:5: tls-key '$D/b.key' does not go with tls-cert '$D/a.crt'"

t_case "--check-config: an iPXE template with an unknown placeholder names both lines"
printf '#!ipxe\necho {{host}}\nchain {{server}}/{{hostname}}\n' >"$D/bad.ipxe"
check_conf "[ipxe]\ninstall = $D/bad.ipxe\n"
check_fails "^slipwayd: $C:5: ipxe install template $D/bad.ipxe:3: unknown placeholder \{\{hostname\}\}"

t_case "--check-config: an iPXE template iPXE would not run names its line"
printf 'echo {{host}}\n' >"$D/nomagic.ipxe"
check_conf "[ipxe]\nwait = $D/nomagic.ipxe\n"
check_fails "^slipwayd: $C:5: ipxe wait template $D/nomagic.ipxe:1: does not start with #!ipxe"

t_case "--check-config: a missing trusted-keys directory names its line"
check_conf "trusted-keys = $D/no-keys\n"
check_fails "^slipwayd: $C:4: trusted-keys '$D/no-keys' .*: No such file or directory"

t_case "--check-config: a listen address the server cannot bind names its line"
check_conf "listen = localhost:8080\n"
check_fails "^slipwayd: $C:4: listen: expected ADDR:PORT with a numeric address"

t_case "--check-config: a state directory that cannot be made names its line"
check_conf "state-dir = $D/afile/state\n"
check_fails "^slipwayd: $C:4: state-dir '$D/afile/state': '$D/afile' is not a directory"

t_case "--check-config: a check-in interval of zero names its line"
check_conf "checkin-interval = 0\n"
check_fails "^slipwayd: $C:4: checkin-interval: at least 1 second"

t_case "the server refuses at start with the line --check-config prints"
check_conf "listen = 127.0.0.1:0\n[dhcp]\nmode = full\ninterface = eth1\nrange = 10.0.0.100,10.0.0.200junk\n$DHCP_OK"
if expect_fail "^slipwayd: $C:8: dhcp: range '10.0.0.100,10.0.0.200junk'" \
        timeout 20 "$SD" --config "$C" --log-json no && [ ! -e "$D/chk/slipwayd.url" ]; then t_ok; else t_fail "the server started: $(cat "$D/chk/slipwayd.url")"; fi

t_case "a state directory that fills up during a push: 507, nothing half-stored"
mkdir -p "$D/small"
if mount -t tmpfs -o size=6m tmpfs "$D/small" 2>/dev/null; then
        TOKEN=$("$SD" --state-dir "$D/small/state" --log-json no token create ci)
        start_server "$D/small/state"
        upload "$E/rootfs.erofs"
        c1=$CODE k1=$(jq -r .kind <<<"$BODY")
        api GET /v1/status
        if [ "$c1" = 507 ] && [ "$k1" = no_space ] && [ -z "$(ls -A "$D/small/state/tmp")" ] && [ "$CODE" = 200 ] &&
                [ ! -e "$D/small/state/blobs/sha256/$(sha "$E/rootfs.erofs" | cut -c1-2)" ]; then t_ok; else
                t_fail "$c1 $k1 $(ls -A "$D/small/state/tmp")"; fi
        kill "$PID"
        wait "$PID" 2>/dev/null
        umount "$D/small"
else
        t_skip "cannot mount a tmpfs here"
fi

t_case "TLS: served over HTTPS, verified against the CA"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$D/tls.key" -out "$D/tls.crt" >/dev/null 2>&1
TOKEN=$("$SD" --state-dir "$D/tls" --log-json no token create ci)
start_server "$D/tls" --tls-cert "$D/tls.crt" --tls-key "$D/tls.key"
port=${URL##*:}
c1=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/tls.crt" "https://127.0.0.1:$port/v1/status")
c2=$(curl -s -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/v1/status")
if [[ $URL == https://* ]] && [ "$c1" = 200 ] && [ "$c2" = 000 ]; then t_ok; else t_fail "$URL $c1 $c2"; fi
kill "$PID"

t_case "connections kept open: past half the open-file limit (64 here), answers close theirs"
# 40 connections opened one after another and all kept: the first ones'
# answers keep them, those past 32 say Connection: close.
(
        ulimit -n 64 && exec "$SD" --state-dir "$D/keep" --listen 127.0.0.1:0 --trusted-keys "$D/keys" \
                --log-json no >>"$D/keep.log" 2>&1
) &
PID=$!
PIDS+=("$PID")
t_wait_until 60 test -s "$D/keep/slipwayd.url"
port=$(sed 's/.*://' "$D/keep/slipwayd.url" 2>/dev/null)
says=$(python3 -c '
import http.client, sys
kept, says = [], ""
for i in range(40):
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
    c.request("GET", "/v1/status")
    r = c.getresponse()
    r.read()
    says += "c" if (r.getheader("Connection") or "").lower() == "close" else "k"
    kept.append(c)
print(says)
' "$port" 2>"$D/keep.err")
if [[ $says =~ ^k{20,32}c+$ ]] && [ ${#says} = 40 ]; then t_ok; else t_fail "answers ($says) $(tail -n 3 "$D/keep.err" "$D/keep.log")"; fi
kill "$PID"

t_end
