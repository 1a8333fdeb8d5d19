#!/bin/bash
# Blobs across several slipwayd on one PostgreSQL database (a server of the
# suite's own), each instance with its own state directory: a pushed image
# is invisible until a second instance holds its blobs; an instance asked
# for a blob it lacks fetches it from a holder, verifies it, keeps it,
# records itself and serves it (whole or a range); a holder that serves
# corrupt bytes is refused and the next one used; an image whose pushing
# instance dies before any copy was made stays invisible everywhere.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin replicas

B=$BIN/slipway-build
SD=$BIN/slipwayd
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
unset SLIPWAY_TOKEN SLIPWAY_CA_FILE
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$PGURL" -c "$1"; }
py() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

t_case "a PostgreSQL server and four images"
if ! pg_start >"$D/pg.log" 2>&1; then
        t_fail "pg_start failed: $(cat "$D/pg.log")"
        t_end
        exit 1
fi
mkdir -p "$D/keys"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
ok=1
for v in 1.0 2.0 3.0 4.0; do
        tiny_def "$D/tiny-$v.conf" $v
        $B -q --store "$D/store" build --key "$D/k.key" --no-disk "$D/tiny-$v.conf" >>"$D/build.log" 2>&1 &&
                $B -q --store "$D/store" export tiny:$v "$D/img-$v" >>"$D/build.log" 2>&1 || ok=0
done
TOKEN=$("$SD" --state-dir "$D/a" --database "$PGURL" --log-json no token create ci 2>>"$D/build.log") || ok=0
if [ $ok = 0 ]; then
        t_fail "$(tail -n 5 "$D/build.log")"
        t_end
        exit 1
fi
t_ok

# start NAME [OPTION...]: starts instance NAME (state directory $D/NAME) on
# the shared database with replicas 2; its PID in PID_NAME, its URL in
# URL_NAME.
start() {
        local n=$1 i pid
        shift
        rm -f "$D/$n/slipwayd.url"
        "$SD" --state-dir "$D/$n" --database "$PGURL" --listen 127.0.0.1:0 --trusted-keys "$D/keys" \
                --log-json no --replicas 2 "$@" >>"$D/$n.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        for ((i = 0; i < 1200; i++)); do
                [ -s "$D/$n/slipwayd.url" ] && curl -s -o /dev/null "$(cat "$D/$n/slipwayd.url")/v1/status" && break
                sleep 0.05
        done
        printf -v "PID_$n" %s "$pid"
        printf -v "URL_$n" %s "$(cat "$D/$n/slipwayd.url" 2>/dev/null)"
}
stop() {
        local pid_var=PID_$1
        t_stop "${!pid_var}"
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
# state URL REF: the image's state there ("visible", "replicating", or
# "none" when it is not found).
state() {
        api "$1/v1/images/$2" | py 'j.get("state", "none")'
}
# listed URL: the name:version of the images GET /v1/images lists there.
listed() {
        api "$1/v1/images" | py '" ".join(i["name"] + ":" + i["version"] for i in j["images"])'
}
# wait_state URL REF STATE [SECONDS]
wait_state() {
        local i
        for ((i = 0; i < ${4:-20} * 10; i++)); do
                [ "$(state "$1" "$2")" = "$3" ] && return 0
                sleep 0.1
        done
        return 1
}
# holders HEX: the instances that hold blob HEX, by URL, sorted.
holders() {
        sql "SELECT string_agg(url, ' ' ORDER BY url) FROM blob_holders WHERE sha256 = '$1'"
}
# blob_of TYPE VERSION: the digest of the artifact TYPE of tiny:VERSION.
blob_of() {
        py "[a['sha256'] for a in j['artifacts'] if a['type'] == '$1'][0]" <"$D/img-$2/manifest.json"
}
have() { [ -e "$D/$1/blobs/sha256/${2:0:2}/$2" ]; }

start a
t_case "pushed to A with replicas 2, tiny:1.0 is replicating and listed nowhere"
$B -q --store "$D/store" push --token "$TOKEN" --replicas-timeout 0 "$URL_a" tiny:1.0 >"$D/push-1.log" 2>&1
rc=$?
sleep 3
if [ $rc != 0 ]; then
        t_fail "push: exit $rc: $(cat "$D/push-1.log")"
elif ! grep -q replicating "$D/push-1.log"; then
        t_fail "the push does not say it is replicating: $(cat "$D/push-1.log")"
elif [ "$(state "$URL_a" tiny:1.0)" != replicating ] || [ -n "$(listed "$URL_a")" ]; then
        t_fail "state $(state "$URL_a" tiny:1.0), listed: $(listed "$URL_a")"
elif [ "$(api "$URL_a/v1/images" | py 'j["replicating"][0]["copies"], j["replicating"][0]["replicas"]')" != "1 2" ]; then
        t_fail "copies: $(api "$URL_a/v1/images")"
else
        t_ok
fi

t_case "when B runs, it copies the blobs and tiny:1.0 becomes visible on both"
start b
if ! wait_state "$URL_b" tiny:1.0 visible 30; then
        t_fail "on B: $(state "$URL_b" tiny:1.0) after 30 s: $(tail -n 5 "$D/b.log")"
elif [ "$(state "$URL_a" tiny:1.0)" != visible ] || [ "$(listed "$URL_a")" != tiny:1.0 ]; then
        t_fail "on A: $(state "$URL_a" tiny:1.0), listed: $(listed "$URL_a")"
elif ! have b "$(blob_of rootfs 1.0)" || ! have b "$(sha "$D/img-1.0/manifest.json")"; then
        t_fail "B lacks blobs: $(find "$D/b/blobs" -type f | wc -l) files"
elif [ "$(holders "$(blob_of rootfs 1.0)")" != "$(printf '%s\n' "$URL_a" "$URL_b" | sort | tr '\n' ' ' | sed 's/ $//')" ]; then
        t_fail "holders of the rootfs: $(holders "$(blob_of rootfs 1.0)")"
else
        t_ok
fi

# Two HTTP threads: a request that held one while it waited for a peer
# would show.
start c --threads 2
ROOTFS=$(blob_of rootfs 1.0)
t_case "C, which lacks the rootfs, fetches it from a holder and serves it byte-exact"
curl -s -f -o "$D/rootfs.got" "$URL_c/blobs/sha256/$ROOTFS"
rc=$?
if [ $rc != 0 ]; then
        t_fail "GET on C: curl exit $rc: $(tail -n 3 "$D/c.log")"
elif [ "$(sha "$D/rootfs.got")" != "$ROOTFS" ] || ! cmp -s "$D/rootfs.got" "$D/a/blobs/sha256/${ROOTFS:0:2}/$ROOTFS"; then
        t_fail "the bytes differ: $(sha "$D/rootfs.got")"
elif ! have c "$ROOTFS"; then
        t_fail "C did not keep its copy"
elif [[ " $(holders "$ROOTFS") " != *" $URL_c "* ]]; then
        t_fail "C is not recorded as a holder: $(holders "$ROOTFS")"
else
        t_ok
fi

# The artifacts of tiny:1.0 other than the rootfs, by type, for the cases
# below: each needs a blob C does not have yet.
mapfile -t OTHERS < <(py '"\n".join(a["sha256"] for a in j["artifacts"] if a["type"] != "rootfs")' <"$D/img-1.0/manifest.json")

t_case "a ranged GET on C of a blob it lacks is answered from a fetched, verified copy"
X=${OTHERS[0]:-}
src=$D/a/blobs/sha256/${X:0:2}/$X
size=$(stat -c %s "$src" 2>/dev/null || echo 0)
code=$(curl -s -o "$D/range.got" -w '%{http_code}' -r 100-199 "$URL_c/blobs/sha256/$X")
if [ -z "$X" ] || [ "$size" -lt 200 ]; then
        t_fail "no artifact of 200 bytes or more besides the rootfs (${#OTHERS[@]}, $size bytes)"
elif have c "$X" && [ "$code" != 206 ]; then
        t_fail "status $code"
elif [ "$code" != 206 ] || ! cmp -s "$D/range.got" <(dd if="$src" bs=1 skip=100 count=100 2>/dev/null); then
        t_fail "status $code, $(stat -c %s "$D/range.got") bytes"
elif ! have c "$X" || [ "$(sha "$D/c/blobs/sha256/${X:0:2}/$X")" != "$X" ]; then
        t_fail "C's copy is missing or wrong"
else
        t_ok
fi

t_case "a holder that serves corrupt bytes is skipped with a reason, and the next one used"
# A holds the oldest copy (it is tried first); a byte of it flipped.
Y=$(sha "$D/img-1.0/manifest.json")
have c "$Y" && Y=${OTHERS[1]:-}
pa=$D/a/blobs/sha256/${Y:0:2}/$Y
if [ -z "$Y" ] || have c "$Y" || [ ! -e "$pa" ]; then
        t_fail "no blob that A holds and C lacks"
else
        cp "$pa" "$D/good"
        chmod u+w "$pa"
        printf '\x00' | cmp -s - <(head -c 1 "$pa") && b='\x01' || b='\x00'
        printf "$b" | dd of="$pa" bs=1 count=1 conv=notrunc 2>/dev/null
        code=$(curl -s -o "$D/y.got" -w '%{http_code}' "$URL_c/blobs/sha256/$Y")
        if [ "$code" != 200 ] || ! cmp -s "$D/y.got" "$D/good"; then
                t_fail "status $code, $(sha "$D/y.got")"
        elif ! grep -q "peer '$URL_a' skipped: the bytes it sent do not hash" "$D/c.log"; then
                t_fail "no reason logged: $(grep -i skipped "$D/c.log" | tail -n 2)"
        elif [ "$(sha "$D/c/blobs/sha256/${Y:0:2}/$Y")" != "$Y" ]; then
                t_fail "C kept corrupt bytes"
        else
                t_ok
        fi
        cp "$D/good" "$pa"
fi

t_case "five requests at once on C for a blob it lacks fetch it once, and all get it"
SIGHEX=$(api "$URL_a/v1/images/tiny:1.0" | py 'j["signature"]')
if have c "$SIGHEX"; then
        t_fail "C has the signature blob already"
else
        gets=()
        for i in 1 2 3 4 5; do
                curl -s -m 60 -o "$D/sig.$i" -w '%{http_code}\n' "$URL_c/blobs/sha256/$SIGHEX" >"$D/sig.$i.code" &
                gets+=($!)
        done
        wait "${gets[@]}"
        bad=$(for i in 1 2 3 4 5; do [ "$(cat "$D/sig.$i.code")" = 200 ] && [ "$(sha "$D/sig.$i")" = "$SIGHEX" ] || echo $i; done)
        n=$(grep -c "blob ${SIGHEX:0:12}: copied from" "$D/c.log")
        if [ -n "$bad" ]; then
                t_fail "requests $(echo $bad) did not get it"
        elif [ "$n" != 1 ]; then
                t_fail "fetched $n times"
        else
                t_ok
        fi
fi

t_case "a blob no instance holds is 404 on C, and nothing is fetched for it"
none=$(printf 'nobody has this' | sha256sum | cut -c1-64)
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL_c/blobs/sha256/$none")
if [ "$code" != 404 ] || have c "$none"; then
        t_fail "status $code"
else
        t_ok
fi

t_case "requests that wait for a holder that never answers hold up neither C's other requests nor its stop"
# A peer that accepts connections and says nothing, the only holder of
# four blobs.
python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
conns = []
while True:
    conns.append(s.accept()[0])
' "$D/silent.port" &
PIDS+=($!)
for ((i = 0; i < 1200; i++)); do [ -s "$D/silent.port" ] && break; sleep 0.05; done
gets=()
for i in 1 2 3 4; do
        hex=$(printf 'silent %s' $i | sha256sum | cut -c1-64)
        sql "INSERT INTO blobs (sha256, size, created) VALUES ('$hex', 1, 1);
             INSERT INTO blob_holders (sha256, instance, url, since)
             VALUES ('$hex', 'silent', 'http://127.0.0.1:$(cat "$D/silent.port")', 1)" >/dev/null
        curl -s -m 60 -o /dev/null -w '%{http_code}' "$URL_c/blobs/sha256/$hex" >"$D/silent.$i.code" &
        gets+=($!)
done
sleep 1
codes=$(for i in 1 2 3 4 5 6; do curl -s -m 3 -o /dev/null -w '%{http_code} ' "$URL_c/v1/status"; done)
t0=$EPOCHREALTIME
stop c
stop_ms=$(((${EPOCHREALTIME/./} - ${t0/./}) / 1000))
wait "${gets[@]}"
if [ "$codes" != "200 200 200 200 200 200 " ]; then
        t_fail "status on C while 4 requests wait: $codes"
elif [ "$stop_ms" -ge 5000 ]; then
        t_fail "C took $stop_ms ms to stop"
elif [ -n "$(cat "$D"/silent.*.code | tr -d '04')" ]; then
        t_fail "the waiting requests got: $(cat "$D"/silent.*.code)"
else
        t_ok "stopped in $stop_ms ms"
fi

t_case "pushed to A, A killed before any copy: tiny:2.0 stays invisible on B and C"
stop b
stop c
$B -q --store "$D/store" push --token "$TOKEN" --replicas-timeout 0 "$URL_a" tiny:2.0 >"$D/push-2.log" 2>&1
rc=$?
kill -9 "$PID_a"
wait "$PID_a" 2>/dev/null
start b
start c
sleep 3
s1="$(state "$URL_b" tiny:2.0) $(state "$URL_c" tiny:2.0) $(listed "$URL_b") $(listed "$URL_c")"
sleep 4
s2="$(state "$URL_b" tiny:2.0) $(state "$URL_c" tiny:2.0) $(listed "$URL_b") $(listed "$URL_c")"
want="replicating replicating tiny:1.0 tiny:1.0"
if [ $rc != 0 ]; then
        t_fail "push: exit $rc: $(cat "$D/push-2.log")"
elif [ "$s1" != "$want" ] || [ "$s2" != "$want" ]; then
        t_fail "at 3 s: $s1; at 7 s: $s2"
elif [ "$(sql "SELECT count(*) FROM images WHERE version = '2.0'")" != 0 ] ||
        [ "$(sql "SELECT count(*) FROM artifacts a JOIN images_replicating r ON r.id = a.image_id")" != 0 ]; then
        t_fail "half visible: $(sql "SELECT id, version FROM images")"
elif ! grep -q "peer '$URL_a' skipped" "$D/b.log"; then
        t_fail "B did not try A: $(tail -n 3 "$D/b.log")"
else
        t_ok
fi

t_case "the replicating image can be deleted: it is gone from every instance"
code=$(api -o "$D/rm.json" -w '%{http_code}' -X DELETE "$URL_b/v1/images/tiny:2.0")
if [ "$code" != 200 ]; then
        t_fail "DELETE: $code $(cat "$D/rm.json")"
elif [ "$(state "$URL_b" tiny:2.0) $(state "$URL_c" tiny:2.0)" != "none none" ] ||
        [ "$(sql "SELECT count(*) FROM images_replicating")" != 0 ]; then
        t_fail "$(state "$URL_b" tiny:2.0) $(state "$URL_c" tiny:2.0)"
else
        t_ok
fi

t_case "slipway-build push to B waits until C holds a copy, then the image is visible on C"
$B --store "$D/store" push --token "$TOKEN" --replicas-timeout 60 "$URL_b" tiny:3.0 >"$D/push-3.log" 2>&1
rc=$?
if [ $rc != 0 ]; then
        t_fail "push: exit $rc: $(cat "$D/push-3.log")"
elif [ "$(state "$URL_c" tiny:3.0)" != visible ] || ! have c "$(blob_of rootfs 3.0)"; then
        t_fail "on C: $(state "$URL_c" tiny:3.0)"
elif ! grep -q "^pushed tiny 3.0" "$D/push-3.log"; then
        t_fail "$(cat "$D/push-3.log")"
else
        t_ok
fi

t_case "with C stopped, the push to B times out naming the copies there are and wanted"
stop c
$B -q --store "$D/store" push --token "$TOKEN" --replicas-timeout 3 "$URL_b" tiny:4.0 >"$D/push-4.log" 2>&1
rc=$?
if [ $rc = 0 ]; then
        t_fail "push: exit 0: $(cat "$D/push-4.log")"
elif ! grep -q "its blobs have 1 of the 2 copies wanted" "$D/push-4.log"; then
        t_fail "$(cat "$D/push-4.log")"
elif [ "$(state "$URL_b" tiny:4.0)" != replicating ]; then
        t_fail "on B: $(state "$URL_b" tiny:4.0)"
else
        t_ok
fi

stop b
pg_stop
t_end
