#!/bin/bash
# make bench: slipwayd's HTTP serving side by side with nginx, from one run on
# this machine, as ratios: blob downloads (MiB/s) and agent check-ins
# (requests/s, p99). Both servers run privately on 127.0.0.1 under a temporary
# directory and are stopped by pid at the end. A benchmark, not a test: it
# exits 0 whatever the figures; a side that cannot run, or that crashes or
# hangs under the load, shows "n/a" and why.
#
# BENCH_DURATION (default 10): seconds per load run. SLIPWAYD: the binary.
# An argument "blobs" or "checkins" runs that part alone (default: both).
set -uo pipefail
PART=${1:-all}
case $PART in
all | blobs | checkins) ;;
*)
        echo "usage: $0 [blobs|checkins]" >&2
        exit 2
        ;;
esac
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SLIPWAYD=${SLIPWAYD:-$TOP/build/bin/slipwayd}
DUR=${BENCH_DURATION:-10}
CONNS=64
BLOB_MIB=256
D=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench-server.XXXXXX")
SW_PID="" SW_JOB="" SW_URL="" NG_PID="" NG_URL="" DL_PIDS=()

# stop PID [JOB]: SIGTERM, then SIGKILL if PID is still there after 5 s (a
# hung server does not finish its shutdown; $D/stop.note says so); then
# reaps JOB (default PID).
stop() {
        local pid=$1 job=${2:-$1}
        : >"$D/stop.note"
        if kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null
                for _ in $(seq 50); do
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.1
                done
                if kill -0 "$pid" 2>/dev/null; then
                        echo "pid $pid did not stop on SIGTERM within 5 s: killed" >"$D/stop.note"
                        kill -KILL "$pid" 2>/dev/null
                fi
        fi
        wait "$job" 2>/dev/null
}
slipwayd_stop() {
        [ -n "$SW_PID" ] && stop "$SW_PID" "$SW_JOB"
        SW_PID="" SW_JOB=""
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
        # The download loops and the curl each is running.
        local p kids
        for p in "${DL_PIDS[@]}"; do
                kids=$(pgrep -P "$p")
                # shellcheck disable=SC2086
                kill "$p" $kids 2>/dev/null
        done
        slipwayd_stop
        [ -n "$NG_PID" ] && stop "$NG_PID"
        rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

row() {
        local unit=${3:-}
        [ "$2" = n/a ] && unit=""
        printf '    %-44s %8s %s\n' "$1" "$2" "$unit" | sed 's/ *$//'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# why: the reason for an n/a, from stdin, indented under it.
why() { sed -e '/^$/d' -e 's/^/      | /'; }
now() { date +%s%N; }

# The peers: Debian's nginx and wrk, installed only when missing.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
missing=()
[ -x "$NGINX" ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
        if ! apt-get install -y "${missing[@]}" >"$D/apt.log" 2>&1; then
                apt-get update >>"$D/apt.log" 2>&1 && apt-get install -y "${missing[@]}" >>"$D/apt.log" 2>&1
        fi
        NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
have_wrk=0 have_nginx=0
command -v wrk >/dev/null && have_wrk=1
[ -x "$NGINX" ] && have_nginx=1

# An nginx started as root runs its workers as nobody: they must reach $D.
chmod 711 "$D"
: >"$D/stop.note"

# wrk's end-of-run summary as one line to parse.
cat >"$D/report.lua" <<'EOF'
done = function(summary, latency, requests)
        local e = summary.errors
        io.write(string.format("RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d " ..
                "connect=%d read=%d write=%d status=%d timeout=%d\n", summary.requests, summary.duration,
                summary.bytes, latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write,
                e.status, e.timeout))
end
EOF

# bench ARGS...: runs wrk ARGS; sets W[requests], W[duration_us], W[p99_us]...
# Returns 1, the reason in $D/why, when wrk failed, could not connect, got
# error statuses or no answer at all.
declare -A W
bench() {
        local line kv rc
        W=()
        if [ $have_wrk = 0 ]; then
                echo "wrk is missing and could not be installed" >"$D/why"
                [ -f "$D/apt.log" ] && tail -n 4 "$D/apt.log" >>"$D/why"
                return 1
        fi
        wrk "$@" >"$D/wrk.log" 2>&1
        rc=$?
        line=$(grep '^RESULT ' "$D/wrk.log")
        if [ $rc -ne 0 ] || [ -z "$line" ]; then
                { echo "wrk failed (exit $rc); its first lines:"; sed -n 1,6p "$D/wrk.log"; } >"$D/why"
                return 1
        fi
        for kv in ${line#RESULT }; do
                W[${kv%%=*}]=${kv#*=}
        done
        if [ "${W[connect]}" -gt 0 ] || [ "${W[status]}" -gt 0 ] || [ "${W[requests]}" -eq 0 ]; then
                echo "${W[requests]} answers in ${DUR} s, ${W[status]} of them >= 400; ${W[connect]} connect," \
                        "${W[read]} read, ${W[write]} write errors" >"$D/why"
                return 1
        fi
}
rps() { awk -v n="${W[requests]}" -v us="${W[duration_us]}" 'BEGIN { printf "%.0f", n / (us / 1e6) }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }

# download URL: $CONNS clients, each downloading URL over and over with curl
# for $DUR seconds (the last download cut at the deadline counts with the
# bytes it got); sets MIBS. Returns 1, the reason in $D/why, on HTTP errors.
download() {
        local url=$1 t0 t1 end i
        rm -rf "$D/curl"
        mkdir "$D/curl"
        t0=$(now)
        end=$((t0 + DUR * 1000000000))
        for i in $(seq "$CONNS"); do
                (
                        while left=$(((end - $(now)) / 1000000)) && [ $left -gt 100 ]; do
                                curl -s -o /dev/null -m "$((left / 1000)).$(printf %03d $((left % 1000)))" \
                                        -w '%{http_code} %{size_download}\n' "$url"
                        done >"$D/curl/$i"
                ) &
                DL_PIDS+=($!)
        done
        wait "${DL_PIDS[@]}"
        DL_PIDS=()
        t1=$(now)
        MIBS=$(cat "$D"/curl/* | awk -v ns=$((t1 - t0)) '{ b += $2 } END { printf "%.0f", b / 1048576 / (ns / 1e9) }')
        if cat "$D"/curl/* | awk '$1 !~ /^(200|000)$/ { bad++ } END { exit !bad }'; then
                { echo "HTTP errors:"; cat "$D"/curl/* | awk '{ print $1 }' | sort | uniq -c; } >"$D/why"
                return 1
        fi
        if [ "$MIBS" = 0 ]; then
                echo "no bytes in ${DUR} s" >"$D/why"
                return 1
        fi
}

# slipwayd_start [ARGS...]: a server on the state directory $D/state; sets
# SW_PID and SW_URL. A subshell waits for it, so that its exit status (a
# crash's signal) lands in $D/slipwayd.status. Returns 1 (the reason in
# $D/why) when it does not come up.
slipwayd_start() {
        rm -f "$D/state/slipwayd.url" "$D/slipwayd.pid" "$D/slipwayd.status"
        (
                "$SLIPWAYD" -c /dev/null --state-dir "$D/state" --listen 127.0.0.1:0 --trusted-keys "" --log-json no \
                        --log-level warning --enroll-token bench "$@" &
                echo $! >"$D/slipwayd.pid"
                wait $!
                echo $? >"$D/slipwayd.status"
        ) >"$D/slipwayd.log" 2>&1 &
        SW_JOB=$!
        for _ in $(seq 100); do
                [ -s "$D/state/slipwayd.url" ] && break
                [ -e "$D/slipwayd.status" ] && break
                sleep 0.1
        done
        SW_PID=$(cat "$D/slipwayd.pid" 2>/dev/null)
        SW_URL=$(cat "$D/state/slipwayd.url" 2>/dev/null)
        if [ -z "$SW_URL" ] || [ -z "$SW_PID" ]; then
                { echo "slipwayd $* did not start; its log:"; sed -n 1,6p "$D/slipwayd.log"; } >"$D/why"
                slipwayd_stop
                return 1
        fi
}
# slipwayd_check: after a run, whether the server is still up and answering;
# when not, prints what became of it.
slipwayd_check() {
        local st busy
        for _ in $(seq 10); do
                [ -s "$D/slipwayd.status" ] && break
                kill -0 "$SW_PID" 2>/dev/null || sleep 0.1
        done
        if [ -s "$D/slipwayd.status" ]; then
                st=$(cat "$D/slipwayd.status")
                if [ "$st" -gt 128 ]; then
                        echo "slipwayd crashed under the load: killed by SIG$(kill -l $((st - 128)))"
                else
                        echo "slipwayd exited under the load with status $st; its log:"
                        sed -n 1,6p "$D/slipwayd.log"
                fi
                return 1
        fi
        [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$SW_URL/v1/status")" = 200 ] && return 0
        busy=$(awk '$3 == "R" { n++ } END { print n + 0 " of " NR }' /proc/"$SW_PID"/task/*/stat 2>/dev/null)
        echo "slipwayd hung under the load: GET /v1/status got no answer within 5 s;" \
                "threads running: $busy"
        return 1
}

# nginx_start: a private nginx on a free loopback port serving $D/nginx/root;
# sets NG_PID and NG_URL. Returns 1 (the reason in $D/why) when it fails.
nginx_start() {
        local n=$D/nginx port
        if [ $have_nginx = 0 ]; then
                echo "nginx is missing and could not be installed" >"$D/why"
                [ -f "$D/apt.log" ] && tail -n 4 "$D/apt.log" >>"$D/why"
                return 1
        fi
        mkdir -p "$n/tmp"
        for _ in 1 2 3 4 5; do
                port=$((20000 + RANDOM % 40000))
                cat >"$n/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 1024; }
http {
        sendfile on;
        tcp_nopush on;
        access_log off;
        # slipwayd does not close kept-alive connections after N requests.
        keepalive_requests 1000000;
        types { application/json json; }
        default_type application/octet-stream;
        client_body_temp_path $n/tmp/body;
        proxy_temp_path $n/tmp/proxy;
        fastcgi_temp_path $n/tmp/fastcgi;
        uwsgi_temp_path $n/tmp/uwsgi;
        scgi_temp_path $n/tmp/scgi;
        server {
                listen 127.0.0.1:$port;
                root $n/root;
        }
}
EOF
                : >"$n/error.log"
                "$NGINX" -e "$n/error.log" -c "$n/nginx.conf" -p "$n/" >"$n/stdout.log" 2>&1 &
                NG_PID=$!
                for _ in $(seq 50); do
                        kill -0 "$NG_PID" 2>/dev/null || break
                        curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/" && break
                        sleep 0.1
                done
                if kill -0 "$NG_PID" 2>/dev/null; then
                        NG_URL=http://127.0.0.1:$port
                        return 0
                fi
                wait "$NG_PID" 2>/dev/null
                NG_PID=""
                grep -q 'Address already in use' "$n/error.log" || break
        done
        { echo "nginx did not start; its log:"; cat "$n/stdout.log" "$n/error.log" | sed -n 1,6p; } >"$D/why"
        return 1
}

cores=$(nproc)
load=$(cut -d' ' -f1 /proc/loadavg)
echo "== slipwayd vs nginx $("$NGINX" -v 2>&1 | sed -n 's|.*nginx/||p') on 127.0.0.1 (nginx: sendfile on, tcp_nopush on, access_log off)"
echo "   $cores cores for the server and its clients together; load average $load at the start$(
        awk -v l="$load" -v c="$cores" 'BEGIN { if (l >= c / 2) print " (busy: noisy figures)" }')"

sw_ok=1 ng_ok=1 sw_why="" ng_why=""
if [ ! -x "$SLIPWAYD" ]; then
        sw_ok=0 sw_why="$SLIPWAYD is missing: build it first (make build/bin/slipwayd)"
fi
# slipwayd's default: one thread per CPU, at least 2.
default_threads=$(nproc)
[ "$default_threads" -ge 2 ] || default_threads=2

mkdir -p "$D/nginx/root"
nginx_start || ng_ok=0 ng_why=$(cat "$D/why")
if [ $sw_ok = 1 ]; then
        mkdir -p "$D/state"
        if ! admin=$("$SLIPWAYD" -c /dev/null --state-dir "$D/state" token create bench 2>"$D/why"); then
                sw_ok=0 sw_why="slipwayd token create failed: $(head -c 300 "$D/why")"
        fi
fi

# The blob: random bytes, published in slipwayd, and the same bytes under
# nginx's root at the same path.
blobs() {
        head -c $((BLOB_MIB << 20)) /dev/urandom >"$D/blob"
        hex=$(sha256sum "$D/blob" | cut -c1-64)
        mkdir -p "$D/nginx/root/blobs/sha256"
        ln "$D/blob" "$D/nginx/root/blobs/sha256/$hex" 2>/dev/null || cp "$D/blob" "$D/nginx/root/blobs/sha256/$hex"
        if [ $sw_ok = 1 ]; then
                if slipwayd_start --threads "$default_threads"; then
                        code=$(curl -s -o "$D/put.out" -w '%{http_code}' -T "$D/blob" -H "Authorization: Bearer $admin" \
                                "$SW_URL/v1/blobs/sha256/$hex")
                        if [ "$code" != 201 ] && [ "$code" != 200 ]; then
                                sw_ok=0 sw_why="the blob upload got HTTP $code: $(head -c 300 "$D/put.out")"
                        fi
                else
                        sw_ok=0 sw_why=$(cat "$D/why")
                fi
        fi

        echo "== blob download: GET /blobs/sha256/<hex>, $BLOB_MIB MiB of random bytes, $CONNS curl clients in a loop for ${DUR} s"
        echo "   (not wrk: its 8 KiB reads cap it near 1.4 GiB/s here, whichever the server)"
        ng_blob=n/a
        if [ $ng_ok = 1 ] && download "$NG_URL/blobs/sha256/$hex"; then
                ng_blob=$MIBS
                row "nginx (worker_processes auto)" "$ng_blob" MiB/s
        else
                [ $ng_ok = 1 ] && ng_why=$(cat "$D/why")
                row "nginx" n/a
                why <<<"$ng_why"
        fi
        declare -A sw_blob
        best_t="" best=0
        for t in "$default_threads" 2 4 8; do
                [ -n "${sw_blob[$t]:-}" ] && continue
                label="slipwayd --threads $t"
                [ "$t" = "$default_threads" ] && label+=" (default)"
                sw_blob[$t]=n/a
                if [ $sw_ok = 0 ]; then
                        row "$label" n/a
                        why <<<"$sw_why"
                        break
                fi
                # The default's server is the one that took the upload.
                if [ -z "$SW_PID" ] && ! slipwayd_start --threads "$t"; then
                        row "$label" n/a
                        why <"$D/why"
                        continue
                fi
                reason=""
                if download "$SW_URL/blobs/sha256/$hex"; then
                        sw_blob[$t]=$MIBS
                else
                        reason=$(cat "$D/why")
                fi
                if ! slipwayd_check >"$D/check"; then
                        # What it did before it went away is no figure.
                        sw_blob[$t]=n/a reason+=$'\n'$(cat "$D/check")
                fi
                slipwayd_stop
                reason+=$'\n'$(cat "$D/stop.note")
                row "$label" "${sw_blob[$t]}" MiB/s
                why <<<"$reason"
                if [ "${sw_blob[$t]}" != n/a ] && [ "${sw_blob[$t]}" -gt "$best" ]; then
                        best=${sw_blob[$t]} best_t=$t
                fi
        done
        row "ratio slipwayd/nginx, default threads" "$(ratio "${sw_blob[$default_threads]}" "$ng_blob")" "     (aim >= 1.0)"
        if [ -n "$best_t" ]; then
                row "best: slipwayd --threads $best_t" "$best" MiB/s
                row "ratio slipwayd/nginx, --threads $best_t" "$(ratio "$best" "$ng_blob")"
        fi
}
[ "$PART" = checkins ] || blobs
[ "$PART" = blobs ] && exit 0

# Check-ins: one registered host reporting over and over, as its agent does
# every checkin-interval. The same report each time is answered by one read
# (its last_seen written once a second with every other host's), as most
# check-ins of a fleet are; a report that differs every time (a counter in
# its facts) makes each check-in a commit, as a host changing state does.
# nginx serves a static file of the size of slipwayd's reply.
echo "== agent check-ins: POST /v1/hosts/<id>/checkin vs nginx GET of a file of the reply's size"
echo "   wrk -c $CONNS -t 2 -d ${DUR}s --latency; one host with its token; slipwayd --threads $default_threads"
report='{"state":"healthy","version":"1.0","booted_slot":"a","slots":{"a":{"version":"1.0"},"b":{"version":null}},"health":{"required":"pass"}'
size=""
declare -A ck_rps ck_p99 ck_why
# checkin same|changing: one run against a fresh server; sets ck_*[$1].
checkin() {
        local kind=$1 reg id token code
        ck_rps[$kind]=n/a ck_p99[$kind]=n/a ck_why[$kind]=$sw_why
        [ $sw_ok = 1 ] || return
        if ! slipwayd_start --threads "$default_threads"; then
                ck_why[$kind]=$(cat "$D/why")
                return
        fi
        reg=$(curl -s -m 10 -X POST -H 'Content-Type: application/json' \
                -d '{"mac":"52:54:00:00:00:01","enroll":"bench"}' "$SW_URL/v1/hosts/register")
        id=$(sed -n 's/.*"id": *"\(h-[0-9a-f]*\)".*/\1/p' <<<"$reg")
        token=$(sed -n 's/.*"token": *"\([A-Za-z0-9_]*\)".*/\1/p' <<<"$reg")
        code=000
        if [ -n "$id" ] && [ -n "$token" ]; then
                code=$(curl -s -m 10 -o "$D/reply.json" -w '%{http_code}' -X POST \
                        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$report}" \
                        "$SW_URL/v1/hosts/$id/checkin")
        fi
        if [ "$code" != 200 ]; then
                ck_why[$kind]="registration or the first check-in failed (HTTP $code): ${reg:0:200}"
                slipwayd_stop
                return
        fi
        [ -n "$size" ] || { cp "$D/reply.json" "$D/nginx/root/checkin.json" && size=$(wc -c <"$D/reply.json"); }
        {
                echo 'wrk.method = "POST"'
                echo 'wrk.headers["Content-Type"] = "application/json"'
                echo "wrk.headers[\"Authorization\"] = \"Bearer $token\""
                if [ "$kind" = same ]; then
                        echo "wrk.body = '$report}'"
                else
                        echo 'local n = 0'
                        echo 'request = function()'
                        echo '        n = n + 1'
                        echo "        return wrk.format(nil, nil, nil, '$report,\"facts\":{\"seq\":' .. n .. '}}')"
                        echo 'end'
                fi
                cat "$D/report.lua"
        } >"$D/checkin.lua"
        if bench -c "$CONNS" -t 2 -d "${DUR}s" --timeout 10s --latency -s "$D/checkin.lua" \
                "$SW_URL/v1/hosts/$id/checkin"; then
                ck_rps[$kind]=$(rps) ck_p99[$kind]=$(ms "${W[p99_us]}")
        fi
        ck_why[$kind]=$(cat "$D/why")
        if ! slipwayd_check >"$D/check"; then
                # What it did before it went away is no figure.
                ck_why[$kind]="$(cat "$D/check")"$'\n'"wrk counted ${W[requests]:-0} answers in ${DUR} s"
                ck_rps[$kind]=n/a ck_p99[$kind]=n/a
        fi
        slipwayd_stop
        ck_why[$kind]+=$'\n'$(cat "$D/stop.note")
        # Its log, less the shell's notes on how it ended (said above).
        grep -vF "$0: line " "$D/slipwayd.log" | sed -n 1,4p >"$D/log.head"
        if [ "${ck_rps[$kind]}" = n/a ] && [ -s "$D/log.head" ]; then
                ck_why[$kind]+=$'\n'"slipwayd's log:"$'\n'$(cat "$D/log.head")
        fi
}
checkin same
checkin changing
if [ -z "$size" ]; then
        # No reply to copy: one of the size the API gives an unassigned host.
        printf '{"checkin_interval":30,"desired":null}\n' >"$D/nginx/root/checkin.json"
        size=$(wc -c <"$D/nginx/root/checkin.json")
fi
ng_rps=n/a ng_p99=n/a
if [ $ng_ok = 1 ]; then
        if bench -c "$CONNS" -t 2 -d "${DUR}s" --timeout 10s --latency -s "$D/report.lua" "$NG_URL/checkin.json"; then
                ng_rps=$(rps) ng_p99=$(ms "${W[p99_us]}")
        else
                ng_why=$(cat "$D/why")
        fi
fi
row "slipwayd, the same report each time" "${ck_rps[same]}" req/s
[ "${ck_rps[same]}" = n/a ] && why <<<"${ck_why[same]}"
row "slipwayd, a report that changes the row" "${ck_rps[changing]}" req/s
[ "${ck_rps[changing]}" = n/a ] && why <<<"${ck_why[changing]}"
row "nginx ($size-byte file)" "$ng_rps" req/s
[ "$ng_rps" = n/a ] && why <<<"$ng_why"
row "ratio slipwayd/nginx, same report" "$(ratio "${ck_rps[same]}" "$ng_rps")" "     (aim >= 0.5)"
# The aim is for an agent's check-in, which repeats its report; one that
# changes the row every time is a commit each time, shown for its cost.
row "ratio slipwayd/nginx, changing report" "$(ratio "${ck_rps[changing]}" "$ng_rps")" "     (a commit each: no aim)"
row "p99 latency slipwayd, same report" "${ck_p99[same]}" ms
row "p99 latency slipwayd, changing report" "${ck_p99[changing]}" ms
row "p99 latency nginx" "$ng_p99" ms
row "p99 ratio slipwayd/nginx, same report" "$(ratio "${ck_p99[same]}" "$ng_p99")" "     (aim <= 2.0)"
exit 0
