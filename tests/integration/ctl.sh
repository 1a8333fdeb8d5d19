#!/bin/bash
# Integration tests of slipctl against slipwayd on loopback: status, images,
# hosts (registered the way iPXE does it), labels, assignment, the audit log,
# --json for scripts, and the errors with their exit statuses.
. "$(dirname "$0")/../lib.sh"
t_begin ctl

B=$BIN/slipway-build
C=$BIN/slipctl
SLIPWAYD=${SLIPWAYD:-$BIN/slipwayd}
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$T_DIR/cache
unset SLIPWAY_SERVER SLIPWAY_TOKEN SLIPWAY_CA_FILE
D=$T_DIR
PIDS=""
MAC1=52:54:00:c7:00:01
MAC2=52:54:00:c7:00:02

stop_servers() {
        # shellcheck disable=SC2086
        t_stop $PIDS
        PIDS=""
}
t_on_exit stop_servers

# ctl_fail STATUS PATTERN CMD...: CMD must exit with STATUS and print exactly
# one "slipctl: " line on stderr, matching PATTERN (grep -E).
ctl_fail() {
        local status=$1 pattern=$2 err rc lines
        shift 2
        err=$("$@" 2>&1 >/dev/null)
        rc=$?
        if [ $rc -ne "$status" ]; then
                t_fail "expected exit $status, got $rc: $err"
                return 1
        fi
        lines=$(printf '%s\n' "$err" | grep -c '^slipctl: ' || true)
        if ! printf '%s\n' "$err" | grep -q -E -e "$pattern"; then
                t_fail "error does not match /$pattern/: $err"
                return 1
        fi
        if [ "$lines" -ne 1 ]; then
                t_fail "expected one error line, got $lines: $err"
                return 1
        fi
        return 0
}

# start_server NAME KEYDIR [SLIPWAYD-OPTION...]: runs slipwayd on a free
# loopback port; sets URL and TOKEN (a new admin token named ci).
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

# json_ok CMD...: CMD's output must parse as JSON.
json_ok() {
        "$@" >"$D/out.json" 2>"$D/out.err" && python3 -m json.tool "$D/out.json" >/dev/null 2>&1 || {
                t_fail "'$*' gave no JSON: $(head -c 300 "$D/out.json") $(cat "$D/out.err")"
                return 1
        }
}

# py EXPR < JSON: evaluates EXPR with the parsed input as j.
py() {
        python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"
}

if [ ! -x "$SLIPWAYD" ] || [ ! -x "$C" ]; then
        t_case "slipwayd and slipctl are built"
        t_fail "no $SLIPWAYD or $C (make, or set SLIPWAYD)"
        t_end
        exit 1
fi

# A server and an image published on it (with curl, as the API documents).
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
sample_def "$D/tiny.conf"
id1=$($B -q --store "$D/store" build --key "$D/k.key" --lock "$D/tiny.lock" --no-disk --image-version 1.0 \
        "$D/tiny.conf" 2>"$D/build.log")
$B --store "$D/store" export tiny:1.0 "$D/export" >/dev/null
start_server srv "$D/keys" || exit 1
for f in "$D"/export/*; do
        curl -sf -o /dev/null -T "$f" -H "Authorization: Bearer $TOKEN" \
                "$URL/v1/blobs/sha256/$(sha256sum <"$f" | cut -c1-64)" || echo "upload of $f failed"
done
curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"manifest\": \"$id1\", \"signature\": \"$(sha256sum <"$D/export/manifest.sig" | cut -c1-64)\"}" \
        "$URL/v1/images" || echo "publishing failed"

export SLIPWAY_SERVER=$URL

t_case "status without a token"
if out=$($C status) && grep -q "^server: *$URL\$" <<<"$out" && grep -q '^images: *1$' <<<"$out" &&
        grep -q '^token: *none' <<<"$out"; then t_ok; else t_fail "$out"; fi

export SLIPWAY_TOKEN=$TOKEN

t_case "status checks the token"
if out=$($C status) && grep -q '^token: *accepted$' <<<"$out" &&
        ctl_fail 1 "the token was refused: server: unknown token \(unauthorized\)" $C --token slw_nope status; then
        t_ok
else
        t_fail "status: ${out:-no output}"
fi

t_case "image list"
if out=$($C image list) && grep -q '^NAME  *VERSION  *ARCH  *ID  *SIZE  *HOSTS  *CREATED$' <<<"$out" &&
        grep -E -q "^tiny  +1.0  +x86_64  +${id1:0:12}  +[0-9.]+ MiB  +0  +[0-9]+ (s|min) ago$" <<<"$out"; then
        t_ok
else
        t_fail "$out"
fi

t_case "image show"
if out=$($C image show tiny:1.0) && grep -q "^id: *$id1\$" <<<"$out" && grep -q '^signed by: *k.pub$' <<<"$out" &&
        grep -q '^  rootfs .*(erofs)$' <<<"$out" && grep -q '^  kernel ' <<<"$out" &&
        [ "$($C image show "${id1:0:10}" | head -1)" = "$(head -1 <<<"$out")" ]; then
        t_ok
else
        t_fail "$out"
fi

t_case "hosts register through iPXE and are listed"
curl -sf "$URL/boot/ipxe?mac=$MAC1" >"$D/ipxe1" && curl -sf "$URL/boot/ipxe?mac=$MAC2" >/dev/null
H1=$($C --json host show "$MAC1" | py 'j["id"]')
H2=$($C --json host show "$MAC2" | py 'j["id"]')
if out=$($C host list) && grep -q '^HOST  *MAC  *HOSTNAME  *STATE  *IMAGE  *VERSION  *LABELS  *LAST SEEN$' <<<"$out" &&
        grep -q "^$H1  *$MAC1  *-  *registered  *-  " <<<"$out" && grep -q "^$H2  *$MAC2 " <<<"$out" &&
        grep -q '#!ipxe' "$D/ipxe1"; then
        t_ok
else
        t_fail "$out"
fi

t_case "host label sets and removes"
if $C host label "$H1" rack=r1 service=web >/dev/null && out=$($C host label "$MAC1" rack- zone=a) &&
        [ "$out" = "$H1: labels service=web, zone=a" ] && $C host label "$H2" service=db >/dev/null; then
        t_ok
else
        t_fail "${out:-label failed}"
fi

t_case "host list filters by label and state"
if out=$($C host list --label service=web) && grep -q "^$H1 " <<<"$out" && ! grep -q "^$H2 " <<<"$out" &&
        out2=$($C host list --label service=web --label zone=b) && [ "$out2" = "no hosts match" ] &&
        [ "$($C host list --state registered | grep -c '^h-')" = 2 ] &&
        [ "$($C host list --state healthy)" = "no hosts match" ]; then
        t_ok
else
        t_fail "$out / ${out2:-}"
fi

t_case "host assign and show"
if out=$($C host assign "$MAC1" tiny:1.0) && [ "$out" = "$H1: assigned tiny:1.0 (${id1:0:12}), boot disk" ] &&
        $C host assign "$H2" tiny --boot live >/dev/null && show=$($C host show "$H1") &&
        grep -q "^image: *tiny:1.0 (${id1:0:12}), boot disk$" <<<"$show" &&
        grep -q '^labels: *service=web, zone=a$' <<<"$show" && grep -q "^mac: *$MAC1\$" <<<"$show" &&
        grep -q "^$H2 .* tiny:1.0 " <<<"$($C host list)" &&
        [ "$($C --json host show "$H2" | py 'j["boot"]')" = live ]; then
        t_ok
else
        t_fail "$out / ${show:-}"
fi

t_case "an assigned host gets the install script"
if curl -sf "$URL/boot/ipxe?mac=$MAC1" | grep -q 'slipway.mode=install'; then t_ok; else t_fail "no install script"; fi

t_case "image delete is refused while hosts use the image"
if ctl_fail 1 "cannot delete image 'tiny:1.0': server: .*2 host\(s\) \(in_use\)" $C image delete tiny:1.0 &&
        [ "$($C --json image list | py 'len(j["images"])')" = 1 ]; then t_ok; else t_fail "images now: $($C --json image list 2>&1 | head -c 300)"; fi

t_case "host unassign, then image delete"
if out=$($C host unassign "$H1") && [ "$out" = "$H1: no image assigned" ] && $C host unassign "$MAC2" >/dev/null &&
        out=$($C image delete "${id1:0:12}") && grep -q "^deleted image ${id1:0:12} (${id1:0:12}), [0-9]* blob(s) removed$" <<<"$out" &&
        [ "$($C image list)" = "no images are published" ]; then
        t_ok
else
        t_fail "$out"
fi

t_case "--json output parses"
if json_ok $C --json status && json_ok $C --json image list && json_ok $C --json host list &&
        json_ok $C --json host list --label service=web && json_ok $C --json host show "$H1" &&
        json_ok $C --json host label "$H1" x=y && json_ok $C --json host unassign "$H1" &&
        json_ok $C --json audit --limit 3; then
        t_ok
else
        t_fail "a --json command failed"
fi

t_case "audit shows the changes"
if out=$($C audit) && grep -q '^ID  *TIME  *ACTOR  *ACTION  *TARGET  *DETAIL$' <<<"$out" &&
        grep -q " ci  *image.publish  *tiny:1.0 " <<<"$out" && grep -q " ci  *host.labels  *$H1 " <<<"$out" &&
        grep -q " ci  *host.assign  *$H1  *boot=null, image=$id1, ref=tiny:1.0, reinstall=false$" <<<"$out" &&
        grep -q " ci  *image.delete  *${id1:0:12} " <<<"$out" && grep -q " pxe  *host.register  *$H2 " <<<"$out"; then
        t_ok
else
        t_fail "$out"
fi

t_case "audit --action, --since, --limit"
last=$($C --json audit | py 'j["entries"][-1]["id"]')
# host.assign: two assignments, three unassignments.
if [ "$($C audit --action host.assign | grep -c ' host.assign ')" = 5 ] &&
        ! $C audit --action host | grep -q -v -E '^ID|  host\.' &&
        [ "$($C --json audit --since $((last - 3)) | py 'len(j["entries"])')" = 3 ] &&
        [ "$($C --json audit --limit 2 | py '[e["id"] for e in j["entries"]]')" = "[1, 2]" ] &&
        [ "$($C audit --since "$last")" = "no audit entries match" ]; then
        t_ok
else
        t_fail "$($C audit --action host | head -5)"
fi

t_case "audit --follow prints new entries as they come"
$C audit --follow --limit 1 >"$D/follow.out" 2>"$D/follow.err" &
fpid=$!
# Labelled once follow has printed the last entry, not before.
t_wait_until 60 grep -q '^[0-9]' "$D/follow.out"
$C host label "$H2" followed=yes >/dev/null
for ((i = 0; i < 600; i++)); do
        grep -q 'followed' "$D/follow.out" && break
        sleep 0.1
done
kill $fpid 2>/dev/null
wait $fpid 2>/dev/null
if grep -q "host.labels  *$H2 .*followed" "$D/follow.out" && [ "$(grep -c '^ID ' "$D/follow.out")" = 1 ] &&
        [ "$(grep -c '^[0-9]' "$D/follow.out")" = 2 ]; then
        t_ok
else
        t_fail "$(cat "$D/follow.out" "$D/follow.err")"
fi

t_case "an unknown image or host: exit 1 and the server's message"
if ctl_fail 1 "cannot show image 'nope:1': server: image 'nope:1': not found \(not_found\)" $C image show nope:1 &&
        ctl_fail 1 "cannot assign image 'nope' to host '$H1': server: .*\(not_found\)" \
                $C host assign "$H1" nope &&
        ctl_fail 1 "cannot show host 'h-000000000000': server: .*not found \(not_found\)" \
                $C host show h-000000000000; then
        t_ok
else
        t_fail "an unknown image or host was not refused as expected"
fi

t_case "an unreachable server: exit 2"
if ctl_fail 2 "cannot reach the server at http://127.0.0.1:9: " $C --server http://127.0.0.1:9 status &&
        ctl_fail 2 "cannot list hosts: cannot reach the server at http://127.0.0.1:9" \
                env SLIPWAY_SERVER=http://127.0.0.1:9 $C host list; then
        t_ok
else
        t_fail "an unreachable server was not exit 2"
fi

t_case "missing or wrong token: exit 1 and how to pass one"
echo "slw_wrong" >"$D/wrong-token"
if ctl_fail 1 "cannot list images: server: a bearer token is required \(unauthorized\); pass --token" \
        env SLIPWAY_TOKEN= $C image list &&
        ctl_fail 1 "server: unknown token \(unauthorized\)$" $C --token-file "$D/wrong-token" host list &&
        ctl_fail 1 "cannot read the token file '$D/none'" $C --token-file "$D/none" host list; then
        t_ok
else
        t_fail "a missing or wrong token was not refused as expected"
fi

t_case "usage errors: exit 1"
if ctl_fail 1 "unknown command 'frobnicate'" $C frobnicate &&
        ctl_fail 1 "unknown command 'image frob'" $C image frob &&
        ctl_fail 1 "usage: slipctl image show IMAGE" $C image show &&
        ctl_fail 1 "--follow is not an option of 'host list'" $C host list --follow &&
        ctl_fail 1 "--boot: expected disk or live, got 'usb'" $C host assign "$H1" tiny --boot usb &&
        ctl_fail 1 "label argument 'rack': expected KEY=VALUE to set or KEY- to remove" $C host label "$H1" rack &&
        ctl_fail 1 "server URL 'ftp://x' is not an http:// or https:// URL" $C --server ftp://x status; then
        t_ok
else
        t_fail "a usage error was not refused as expected"
fi

t_case "https: verified against --ca-file, refused without"
if command -v openssl >/dev/null; then
        mkdir -p "$D/tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
                -addext subjectAltName=IP:127.0.0.1 -keyout "$D/tls/key.pem" -out "$D/tls/cert.pem" 2>/dev/null
        start_server tls "$D/keys" --tls-cert "$D/tls/cert.pem" --tls-key "$D/tls/key.pem"
        if [ "${URL:0:8}" = https:// ] &&
                out=$($C --server "$URL" --token "$TOKEN" --ca-file "$D/tls/cert.pem" status) &&
                grep -q '^token: *accepted$' <<<"$out" &&
                SLIPWAY_CA_FILE=$D/tls/cert.pem $C --server "$URL" --token "$TOKEN" host list >/dev/null &&
                ctl_fail 2 "cannot talk TLS with the server at $URL: .*certificate" $C --server "$URL" status; then
                t_ok
        else
                t_fail "TLS: url $URL, status: ${out:-no output}"
        fi
else
        t_skip "no openssl for a test certificate"
fi

t_case "every command is in --help and the man page"
help=$($C --help)
missing=""
for cmd in "status" "image list" "image show" "image delete" "host list" "host show" "host label" \
        "host assign" "host unassign" "audit"; do
        grep -q "^  $cmd" <<<"$help" || missing="$missing help:'$cmd'"
        grep -q "^\.B $cmd\|^\.B \"$cmd\"\|^\.BR\? $cmd" "$TOP/docs/man/slipctl.1" || missing="$missing man:'$cmd'"
done
if [ -z "$missing" ]; then t_ok; else t_fail "missing$missing"; fi

stop_servers
t_end
