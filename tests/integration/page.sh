#!/bin/bash
# The fleet page in a real browser: headless Chromium, driven over its
# DevTools protocol (tests/page/cdp.py), logs in to slipwayd on loopback
# with a token, while 200 simulated hosts (tests/bench/checkins.c --follow)
# check in, take reboot leases and run what they are given. What a person
# would see is checked against the API (tests/page/page-test.py): the
# matrix's counts, a rollout moving the matrix live, a host's version, a
# pause through the rollout page's button, the audit view, the leases,
# the package diff of two images, the instances, the matrix a page of rows
# at a time, a pipeline waiting for its approval and approved through its
# button, a viewer's page without write buttons; then the event
# stream: an entry there as it is written (the fallback poll an hour), one
# that no commit announced there at the fallback poll, its resume and its
# bound, and, on PostgreSQL (SLIPWAY_TEST_STORE=postgresql), an entry
# written through a second instance reaching the first's stream.
# Screenshots go to build/test-page/.
#
# tests/bench/page.sh runs it at 10,000 hosts (PAGE_MODE=bench,
# PAGE_HOSTS=10000): the time to the first render and how fast the page
# follows a rollout of the whole fleet.
. "$(dirname "$0")/../lib.sh"
t_begin page
MODE=${PAGE_MODE:-check}
HOSTS=${PAGE_HOSTS:-200}

SD=$BIN/slipwayd
CK=$TOP/build/bench/checkins
D=$T_DIR
SHOTS=$TOP/build/$([ "$MODE" = bench ] && echo bench || echo test)-page
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

if ! command -v chromium >/dev/null; then
        t_case "the fleet page in Chromium"
        t_skip "no chromium (make deps)"
        t_end
        exit
fi

sha() { sha256sum "$1" | cut -c1-64; }
api() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }

# make_image VERSION PACKAGES-JSON: a hand-made image web:VERSION of small
# random blobs, its lock listing PACKAGES, signed; in $D/img-VERSION.
make_image() {
        local d=$D/img-$1
        mkdir -p "$d"
        head -c 64K /dev/urandom >"$d/rootfs.img"
        head -c 16K /dev/urandom >"$d/vmlinuz"
        art() { jq -n --arg t "$1" --arg s "$(sha "$2")" --argjson n "$(stat -c %s "$2")" '{type: $t, sha256: $s, size: $n}'; }
        jq -n -S --indent 2 --arg v "$1" --arg arch "$(uname -m)" --argjson p "$2" \
                --argjson r "$(art rootfs "$d/rootfs.img" | jq '. + {fstype: "erofs"}')" \
                --argjson k "$(art kernel "$d/vmlinuz")" \
                '{format: 1, name: "web", version: $v, arch: $arch, build_time: 1700000000, cmdline: "console=ttyS0",
                  root_size: 1048576, artifacts: [$r, $k], lock: {format: 2, arch: $arch, packages: $p}}' >"$d/manifest.json"
        openssl pkeyutl -sign -rawin -inkey "$D/k.key" -in "$d/manifest.json" -out "$d/manifest.sig"
}
publish() { # VERSION
        local f d=$D/img-$1
        for f in "$d"/*; do api -f -o /dev/null -T "$f" "$URL/v1/blobs/sha256/$(sha "$f")" || return; done
        api -f -o /dev/null -H 'Content-Type: application/json' \
                -d "{\"manifest\":\"$(sha "$d/manifest.json")\",\"signature\":\"$(sha "$d/manifest.sig")\"}" "$URL/v1/images"
}
pkg() { jq -n --arg n "$1" --arg v "$2" '{name: $n, version: $v, release: "1", epoch: "0", arch: "x86_64"}'; }

mkdir -p "$D/keys"
"$BIN/slipway-build" keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
make_image 1.0 "$(jq -s . <(pkg busybox 1.35.0) <(pkg kernel 6.1.0))"
make_image 2.0 "$(jq -s . <(pkg busybox 1.36.1) <(pkg kernel 6.1.0) <(pkg extra 1.0))"
TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create ci)
# A viewer's token where the server knows roles.
VIEWER=$("$SD" --state-dir "$D/srv" --log-json no token create watcher --role viewer 2>/dev/null) || VIEWER=""
# The event stream's fallback poll an hour: what the page sees live came
# by the wake of the transaction that wrote it.
"$SD" --state-dir "$D/srv" --listen 127.0.0.1:0 --log-json no --enroll-token sekrit --trusted-keys "$D/keys" \
        --events-poll 3600 >"$D/srv.log" 2>&1 &
PIDS+=($!)
t_wait_until 60 test -s "$D/srv/slipwayd.url"
URL=$(cat "$D/srv/slipwayd.url")
# Without roles (no GET /v1/whoami) the token is an admin's: no viewer case.
[ -n "$VIEWER" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $VIEWER" "$URL/v1/whoami")" = 200 ] ||
        VIEWER=""

t_case "$HOSTS simulated hosts and two images"
"$CK" --url "$URL" --admin-token "$TOKEN" --enroll sekrit --hosts "$HOSTS" --threads "$([ "$MODE" = bench ] && echo 8 || echo 4)" \
        --seconds 900 --follow >"$D/ck.out" 2>"$D/ck.err" &
PIDS+=($!)
for ((i = 0; i < 6000; i++)); do grep -qs 'hosts set up' "$D/ck.err" && break; sleep 0.1; done
if publish 1.0 && publish 2.0 && grep -q 'hosts set up' "$D/ck.err"; then
        t_ok "$(grep -o 'in [0-9.]* s' "$D/ck.err")"
else
        t_fail "$(tail -3 "$D/ck.err") $(tail -3 "$D/srv.log")"
fi

rm -rf "$SHOTS"
mkdir -p "$SHOTS"
t0=$(now_ms)
python3 -B "$TOP/tests/page/page-test.py" "$MODE" "$URL" "$TOKEN" "$SHOTS" "$D/results" "$VIEWER" >"$D/page.log" 2>&1
rc=$?
while IFS=$'\t' read -r verdict name note; do
        t_case "$name"
        case $verdict in
        ok) t_ok "$note" ;;
        skip) t_skip "$note" ;;
        *) t_fail "$note" ;;
        esac
done <"$D/results"
t_case "the browser's run ended"
if [ $rc = 0 ]; then
        t_ok "$(($(now_ms) - t0)) ms; figures: $(jq -c . "$SHOTS/figures.json" 2>/dev/null)"
else
        t_fail "exit $rc: $(tail -5 "$D/page.log")"
fi

if [ "$MODE" = check ]; then
        t_case "the event stream goes on after Last-Event-ID, from the entry after it"
        # An entry not long ago: the hosts' leases write hundreds a second,
        # and the stream resumes from its last 4096.
        from=$(($(api "$URL/v1/audit?last=1" | jq '.entries[-1].id') - 100))
        curl -sN --max-time 2 -H "Authorization: Bearer $TOKEN" -H "Last-Event-ID: $from" "$URL/v1/events" >"$D/ev1"
        first=$(grep -m1 '^id: ' "$D/ev1")
        if grep -q '^event: hello' "$D/ev1" && [ "$first" = "id: $((from + 1))" ] &&
                grep -q "^data: {.*\"id\":$((from + 1))," "$D/ev1"; then
                t_ok
        else
                t_fail "first id: '$first'; $(head -c 300 "$D/ev1")"
        fi

        t_case "an entry reaches the stream as it is written, not at the fallback poll (an hour)"
        curl -sN --max-time 20 -H "Authorization: Bearer $TOKEN" "$URL/v1/events" >"$D/ev-own" &
        EPID=$!
        for ((i = 0; i < 1200; i++)); do grep -qs '^event: hello' "$D/ev-own" && break; sleep 0.05; done
        host=$(api "$URL/v1/hosts" | jq -r '.hosts[0].id')
        t1=$(now_ms)
        api -o /dev/null -H 'Content-Type: application/json' -d '{"set": {"own": "yes"}}' "$URL/v1/hosts/$host/labels"
        for ((i = 0; i < 6000; i++)); do grep -qs '"own":"yes"' "$D/ev-own" && break; sleep 0.01; done
        t2=$(now_ms)
        kill $EPID 2>/dev/null
        wait $EPID 2>/dev/null
        if grep -q "^data: {\"action\":\"host.labels\".*\"own\":\"yes\".*\"target\":\"$host\"" "$D/ev-own"; then
                t_ok "$((t2 - t1)) ms after the write"
        else
                t_fail "$(tail -c 300 "$D/ev-own")"
        fi

        if [ "$T_STORE" = sqlite ]; then
                t_case "an entry no commit here announced (another process's) arrives at the fallback poll"
                # A second slipwayd of its own, polling every second; the
                # entry is written by the command line, a process of its own.
                "$SD" --state-dir "$D/fb" --log-json no token create fb >/dev/null
                "$SD" --state-dir "$D/fb" --listen 127.0.0.1:0 --log-json no --trusted-keys "$D/keys" --events-poll 1 \
                        >"$D/fb.log" 2>&1 &
                PIDS+=($!)
                t_wait_until 60 test -s "$D/fb/slipwayd.url"
                TOKEN_FB=$("$SD" --state-dir "$D/fb" --log-json no token create fb2)
                curl -sN --max-time 20 -H "Authorization: Bearer $TOKEN_FB" "$(cat "$D/fb/slipwayd.url")/v1/events" \
                        >"$D/ev-fb" &
                EPID=$!
                for ((i = 0; i < 1200; i++)); do grep -qs '^event: hello' "$D/ev-fb" && break; sleep 0.05; done
                "$SD" --state-dir "$D/fb" --log-json no token create by-cli >/dev/null
                for ((i = 0; i < 6000; i++)); do grep -qs '"target":"by-cli"' "$D/ev-fb" && break; sleep 0.01; done
                kill $EPID 2>/dev/null
                wait $EPID 2>/dev/null
                if grep -q '^data: {"action":"token.create".*"target":"by-cli"' "$D/ev-fb"; then
                        t_ok "$((i * 10)) ms or less (events-poll 1 s)"
                else
                        t_fail "$(tail -c 300 "$D/ev-fb"); $(tail -3 "$D/fb.log")"
                fi
        fi

        t_case "64 streams at once on an instance; the 65th is 503 unavailable, and a closed one frees its place"
        # Streams closed just before (the browser's, the case above) leave
        # within a second or so: until then a place may still be taken, and
        # the 64 are opened again.
        for ((try = 0; try < 10; try++)); do
                SPIDS=()
                rm -f "$D"/st-*
                for ((i = 0; i < 64; i++)); do
                        curl -sN --max-time 60 -H "Authorization: Bearer $TOKEN" "$URL/v1/events" >"$D/st-$i" &
                        SPIDS+=($!)
                done
                for ((i = 0; i < 600; i++)); do
                        [ "$(grep -ls -e '^event: hello' -e unavailable "$D"/st-* | wc -l)" = 64 ] && break
                        sleep 0.05
                done
                [ "$(grep -ls '^event: hello' "$D"/st-* | wc -l)" = 64 ] && break
                kill "${SPIDS[@]}" 2>/dev/null
                wait "${SPIDS[@]}" 2>/dev/null
                sleep 1
        done
        code=$(curl -s -o "$D/st-65" -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $TOKEN" "$URL/v1/events")
        kill "${SPIDS[@]}" 2>/dev/null
        wait "${SPIDS[@]}" 2>/dev/null
        # The server sees the closed connections at their next write (the keepalive) or at once.
        again=0
        for ((i = 0; i < 120; i++)); do
                again=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H "Authorization: Bearer $TOKEN" "$URL/v1/events")
                [ "$again" = 200 ] && break
                sleep 0.5
        done
        if [ "$code" = 503 ] && jq -e '.kind == "unavailable" and (.error | test("64 event streams"))' "$D/st-65" >/dev/null &&
                [ "$again" = 200 ]; then
                t_ok
        else
                t_fail "65th: $code $(cat "$D/st-65"); after closing: $again"
        fi
fi
if [ "$MODE" = check ] && [ "$T_STORE" = postgresql ]; then
        t_case "an entry written through another instance reaches this one's stream"
        "$TOP/build/bin/slipwayd" --state-dir "$D/b" --database "$(pg_state_url "$D/srv")" --listen 127.0.0.1:0 \
                --log-json no --trusted-keys "$D/keys" >"$D/b.log" 2>&1 &
        PIDS+=($!)
        t_wait_until 60 test -s "$D/b/slipwayd.url"
        URL_B=$(cat "$D/b/slipwayd.url" 2>/dev/null)
        curl -sN --max-time 30 -H "Authorization: Bearer $TOKEN" "$URL/v1/events" >"$D/ev-a" &
        EPID=$!
        for ((i = 0; i < 1200; i++)); do grep -qs '^event: hello' "$D/ev-a" && break; sleep 0.05; done
        host=$(api "$URL/v1/hosts" | jq -r '.hosts[0].id')
        api -o /dev/null -H 'Content-Type: application/json' -d '{"set": {"written-on": "b"}}' "$URL_B/v1/hosts/$host/labels"
        for ((i = 0; i < 1200; i++)); do grep -qs "\"written-on\"" "$D/ev-a" && break; sleep 0.05; done
        kill $EPID 2>/dev/null
        wait $EPID 2>/dev/null
        if grep -q "^data: {\"action\":\"host.labels\".*\"written-on\".*\"target\":\"$host\"" "$D/ev-a"; then
                t_ok "$((i * 50)) ms or less"
        else
                t_fail "instance b at '$URL_B'; stream: $(tail -c 300 "$D/ev-a"); $(tail -3 "$D/b.log")"
        fi
fi
cp "$D/srv.log" "$SHOTS/" 2>/dev/null
t_end
