#!/bin/bash
# Network boot with two slipwayd instances on one PostgreSQL database: the
# install script a host fetches from instance b tells the booted system
# both instances' URLs, b's first (a stale registry entry is left out),
# while iPXE's own fetches stay on b; the install path of the agent,
# started with that kernel command line, registers and keeps both URLs in
# its state. An instance that stops is no longer named.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pg.sh"
t_begin pg-pxe

B=$BIN/slipway-build
SD=$BIN/slipwayd
AG=$BIN/slipway-agent
D=$T_DIR
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$D/cache
PIDS=()
t_on_exit 't_stop "${PIDS[@]}"'

if ! pg_start >"$D/pg-start.log" 2>&1; then
        t_case "a PostgreSQL server of the suite's own"
        t_fail "pg_start: $(tail -n 5 "$D/pg-start.log")"
        t_end
        exit 1
fi
TOKEN=$("$SD" --state-dir "$D/a" --database "$PGURL" --log-json no token create ci 2>>"$D/token.log")
mkdir -p "$D/keys"
$B keygen "$D/k.key" "$D/keys/k.pub" >/dev/null
sample_def "$D/tiny.conf"
$B -q --store "$D/store" build --key "$D/k.key" --no-disk --image-version 1.0 "$D/tiny.conf" >/dev/null
$B -q --store "$D/store" export tiny:1.0 "$D/v1" >/dev/null

# start NAME: instance NAME with state directory $D/NAME on $PGURL; its
# PID in PID_NAME, its URL in URL_NAME.
start() {
        local n=$1 i
        rm -f "$D/$n/slipwayd.url"
        "$SD" --state-dir "$D/$n" --database "$PGURL" --instance "$n" --listen 127.0.0.1:0 --log-json no \
                --trusted-keys "$D/keys" >>"$D/$n.log" 2>&1 &
        PIDS+=($!)
        printf -v "PID_$n" %s "$!"
        for ((i = 0; i < 1200; i++)); do
                [ -s "$D/$n/slipwayd.url" ] && curl -s -o /dev/null "$(cat "$D/$n/slipwayd.url")/v1/status" && break
                sleep 0.05
        done
        if [ ! -s "$D/$n/slipwayd.url" ]; then
                t_case "slipwayd $n starts on the database"
                t_fail "$(tail -n 5 "$D/$n.log")"
                t_end
                exit 1
        fi
        printf -v "URL_$n" %s "$(cat "$D/$n/slipwayd.url")"
}
api() { curl -s -m 5 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
# up N: waits until the registry names N live instances.
up() {
        local i
        for ((i = 0; i < 600; i++)); do
                [ "$(api "$URL_b/v1/instances" | jq '[.instances[] | select(.state == "up")] | length')" = "$1" ] &&
                        return 0
                sleep 0.1
        done
        return 1
}
# servers_of FILE: the value of slipway.server= in a boot script.
servers_of() { grep -o ' slipway\.server=[^ ]*' "$1" | head -n 1 | cut -d= -f2-; }

start a
start b

# The image's blobs on both instances (each keeps its own), published once.
for n in a b; do
        u=URL_$n
        for f in "$D/v1"/*; do api -o /dev/null -T "$f" "${!u}/v1/blobs/sha256/$(sha "$f")"; done
done
api -o /dev/null -d "{\"manifest\":\"$(sha "$D/v1/manifest.json")\",\"signature\":\"$(sha "$D/v1/manifest.sig")\"}" \
        "$URL_a/v1/images"
# An instance that stopped beating a minute ago, still in the registry.
psql -X -q -d "$PGURL" -c "INSERT INTO instances (name, incarnation, url, version, pid, started, heartbeat)
        VALUES ('gone', 'x', 'http://127.0.0.1:9/', 'old', 1, 0,
                CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT) - 60000)" >"$D/psql.log" 2>&1

MAC=52:54:00:0c:00:01
t_case "a host's install script from b names both instances, b first; iPXE fetches from b"
up 2
curl -s -o /dev/null "$URL_b/boot/ipxe?mac=$MAC"
id=$(api "$URL_a/v1/hosts/$MAC" | jq -r .id)
api -o /dev/null -X PUT -d '{"image": "tiny:1.0"}' "$URL_a/v1/hosts/$id/image"
curl -s "$URL_b/boot/ipxe?mac=$MAC" >"$D/install.ipxe"
got=$(servers_of "$D/install.ipxe")
if [ "$got" = "$URL_b,$URL_a" ] && grep -q "^kernel $URL_b/blobs/sha256/" "$D/install.ipxe" &&
        grep -q "^chain --replace $URL_b/boot/ipxe?mac=$MAC" "$D/install.ipxe"; then
        t_ok "slipway.server=$got"
else
        t_fail "want $URL_b,$URL_a; $(cat "$D/install.ipxe") $(cat "$D/psql.log")"
fi

t_case "the same host asking a names a first"
got=$(curl -s "$URL_a/boot/ipxe?mac=$MAC" | grep -o ' slipway\.server=[^ ]*' | cut -d= -f2-)
[ "$got" = "$URL_a,$URL_b" ] && t_ok || t_fail "want $URL_a,$URL_b; got '$got'"

t_case "the install path of the agent, booted with b's command line, keeps both URLs"
curl -s "$URL_b/boot/ipxe?mac=$MAC" >"$D/install2.ipxe"
cmdline=$(grep '^kernel ' "$D/install2.ipxe" | sed -e 's/^kernel [^ ]* //' -e 's/ || goto retry$//')
want=$(servers_of "$D/install2.ipxe")
SLIPWAY_CMDLINE=$cmdline "$AG" --state-dir "$D/h/state" --keys-dir "$D/keys" install >"$D/h.log" 2>&1
# The image has no disk artifact: the install stops after registering.
# The agent keeps its list blank-separated.
if [ "$want" = "$URL_b,$URL_a" ] && [ "$(jq -r .server "$D/h/state/agent.json" 2>/dev/null | tr ' ' ,)" = "$want" ] &&
        [ "$(jq -r .host_id "$D/h/state/agent.json")" = "$id" ] && grep -q 'registering with' "$D/h.log"; then
        t_ok
else
        t_fail "want $want; agent.json: $(cat "$D/h/state/agent.json" 2>&1); $(tail -n 3 "$D/h.log")"
fi

t_case "a stops: b's scripts name b alone"
kill -TERM "$PID_a"
wait "$PID_a" 2>/dev/null
up 1
api -o /dev/null -X PUT -d '{"image": "tiny:1.0"}' "$URL_b/v1/hosts/$id/image"
curl -s "$URL_b/boot/ipxe?mac=$MAC" >"$D/alone.ipxe"
got=$(servers_of "$D/alone.ipxe")
[ "$got" = "$URL_b" ] && t_ok || t_fail "want $URL_b; $(cat "$D/alone.ipxe")"

t_end
