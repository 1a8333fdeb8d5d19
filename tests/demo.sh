#!/bin/bash
# make demo: the whole story on one machine, in a few minutes. Builds two
# versions of the sample image, starts slipwayd on 127.0.0.1 (state in
# build/demo), publishes both images, brings up 50 simulated hosts on 1.0,
# then rolls 2.0 out to them in waves within disruption budgets, live on
# the terminal. DEMO=once runs through and exits 0, for scripts.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=$TOP/build/bin
D=$TOP/build/demo
HOSTS=${DEMO_HOSTS:-50}
export SLIPWAY_CACHE=$D/cache
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
PIDS=()

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# SIGTERM to the server and the hosts, SIGKILL to any still there after 10 s.
stop_all() {
        local i p left
        [ ${#PIDS[@]} -gt 0 ] || return 0
        kill "${PIDS[@]}" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
                left=()
                for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
                [ ${#left[@]} -gt 0 ] || break
                sleep 0.1
        done
        [ ${#left[@]} -eq 0 ] || kill -KILL "${left[@]}" 2>/dev/null || true
        wait 2>/dev/null || true
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh run each time: hosts, server state, the image store and logs go (a
# store kept from an older tree would refuse the new build of a version it
# holds); the build cache (downloads) stays.
for pidfile in "$D"/pids/*; do [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true; done
rm -rf "$D/srv" "$D/hosts" "$D/pids" "$D/logs" "$D/store"
mkdir -p "$D/keys" "$D/pids" "$D/logs" "$D/hosts"

if [ ! -f "$D/keys/signing.key" ]; then
        step "a signing key pair"
        "$BIN/slipway-build" keygen "$D/keys/signing.key" "$D/keys/signing.pub"
fi
for v in 1.0 2.0; do
        # A definition per release: its version and the tiny-base (the OS
        # release, /etc/os-release) it carries.
        sed -e "s|^baseurl = .*|baseurl = $TOP/build/sample-repo|" -e "s|^version = .*|version = $v|" \
                -e "s|^gpgkey = .*|gpgkey = $TOP/build/sample-repo/RPM-GPG-KEY-slipway-sample|" \
                -e "s|^install = tiny-base = [^ ]*|install = tiny-base = $v|" "$TOP/images/tiny.conf" >"$D/tiny-$v.conf"
        step "slipway-build build tiny-$v.conf   (version $v with tiny-base $v: RPMs → signed image)"
        "$BIN/slipway-build" --store "$D/store" build --no-disk --key "$D/keys/signing.key" "$D/tiny-$v.conf" >/dev/null
done
step "slipway-build inspect tiny:2.0"
"$BIN/slipway-build" --store "$D/store" inspect tiny:2.0 | head -n 14
step "what 1.0 and 2.0 differ in: the tiny-base each carries"
for v in 1.0 2.0; do
        echo "tiny:$v  $("$BIN/slipway-build" --store "$D/store" inspect tiny:$v | grep -o 'tiny-base-[^ ]*')"
done

step "slipwayd on 127.0.0.1 (state in build/demo/srv)"
TOKEN=$("$BIN/slipwayd" --state-dir "$D/srv" --log-json no token create demo)
"$BIN/slipwayd" --state-dir "$D/srv" --listen 127.0.0.1:0 --trusted-keys "$D/keys" --log-json no \
        --enroll-token demo-enroll --checkin-interval 2 --heartbeat-timeout 10 >"$D/logs/slipwayd.log" 2>&1 &
PIDS+=($!)
echo $! >"$D/pids/slipwayd"
for ((i = 0; i < 100; i++)); do [ -s "$D/srv/slipwayd.url" ] && break; sleep 0.05; done
URL=$(cat "$D/srv/slipwayd.url")
export SLIPWAY_SERVER=$URL SLIPWAY_TOKEN=$TOKEN
echo "listening on $URL"
CTL=$BIN/slipctl

step "slipway-build push: only the blobs the server lacks"
for v in 1.0 2.0; do "$BIN/slipway-build" -q --store "$D/store" push --token "$TOKEN" "$URL" "tiny:$v"; done
"$CTL" image list

step "$HOSTS simulated hosts (slipway-agent --backend sim): 5 services in 10 racks"
services=(web api db cache queue)
agent() { # N ARGS...
        local h=$D/hosts/h$1
        shift
        "$BIN/slipway-agent" --backend sim --sim-dir "$h" --state-dir "$h/state" --server "$URL" \
                --keys-dir "$D/keys" --health-dir "$h/health.d" --checkin-interval 2 --sim-slot-size 32M \
                --enroll-token demo-enroll "$@"
}
for ((n = 1; n <= HOSTS; n++)); do
        mac=$(printf '52:54:00:de:%02x:%02x' $((n / 256)) $((n % 256)))
        agent $n register "$mac" >>"$D/logs/h$n.log" 2>&1
        id=$(jq -r .host_id "$D/hosts/h$n/state/agent.json")
        "$CTL" host label "$id" "service=${services[$((n % 5))]}" "rack=r$((n % 10))" >/dev/null
        "$CTL" host assign "$id" tiny:1.0 >/dev/null
        (exec "$BIN/slipway-agent" --backend sim --sim-dir "$D/hosts/h$n" --state-dir "$D/hosts/h$n/state" \
                --server "$URL" --keys-dir "$D/keys" --health-dir "$D/hosts/h$n/health.d" --checkin-interval 2 \
                --sim-slot-size 32M run >>"$D/logs/h$n.log" 2>&1) &
        PIDS+=($!)
        echo $! >"$D/pids/h$n"
done
printf 'waiting for all of them to install 1.0 '
for ((i = 0; i < 600; i++)); do
        up=$("$CTL" --json host list --state healthy | jq '[.hosts[] | select(.version == "1.0")] | length')
        [ "$up" -ge "$HOSTS" ] && break
        printf '.'
        sleep 1
done
echo " $up of $HOSTS healthy on 1.0"

step "disruption budgets: at most 1 host per rack and 20% of a service down at once"
"$CTL" budget set rack --max-unavailable 1 >/dev/null
"$CTL" budget set service --max-unavailable 20% >/dev/null
"$CTL" budget list

ROLLOUT=(tiny:2.0 --waves 1,10%,50%,100% --bake 3 --max-failures 10% --on-failure pause --order service=web,api)
step "slipctl rollout plan ${ROLLOUT[*]}"
"$CTL" rollout plan "${ROLLOUT[@]}"
step "slipctl rollout start, then watch (canary, then growing waves; web before api)"
id=$("$CTL" --json rollout start "${ROLLOUT[@]}" | jq -r .id)
rc=0
"$CTL" rollout watch "$id" || rc=$?
"$CTL" rollout status "$id"

cat <<TXT

The server is $URL; the admin token is in SLIPWAY_TOKEN below.
Try next (in another terminal):
  export SLIPWAY_SERVER=$URL SLIPWAY_TOKEN=$TOKEN
  build/bin/slipctl host list --label service=web
  build/bin/slipctl audit --action lease --limit 20
  build/bin/slipctl rollout rollback $id && build/bin/slipctl rollout watch $((id + 1))
  curl -s $URL/metrics | grep ^slipway_hosts
  build/bin/slipway-agent --backend sim --sim-dir build/demo/hosts/h1 --state-dir build/demo/hosts/h1/state status
Logs: build/demo/logs/. Docs: README.md, docs/operations.md, docs/api.md.
TXT
if [ "${DEMO:-}" = once ]; then
        exit $rc
fi
echo "Everything keeps running; press Ctrl-C to stop the server and the $HOSTS hosts."
wait
