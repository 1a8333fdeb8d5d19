#!/bin/bash
# Check-ins with lease decisions at fleet scale over HTTP, side by side on
# three set-ups: slipwayd on sqlite, one slipwayd on PostgreSQL, and three
# slipwayd sharing one PostgreSQL database with the load spread evenly over
# them (tests/bench/checkins.c: 10,000 registered hosts, 8 connections,
# each host asking for its reboot lease every 10th turn). Then the
# coordinator's tick during a rollout of those 10,000 hosts, on sqlite and
# on PostgreSQL, with the same steps: an image, a rollout in waves of 1%,
# 10% and 100%, the hosts checking in, taking their leases and running the
# image they are given (checkins --follow), and the tick's time read from
# the leader's slipway_coordinator_tick_seconds after every tick. Last,
# the agent's own HTTP client (checkins-own) beside libcurl (checkins) on
# one slipwayd, over http and https: libcurl opens a connection for every
# request, the agent's client keeps one.
#
# Everything runs on this machine: the instances, PostgreSQL and the load
# generator share its CPUs, and the CPU each took is printed beside the
# figures. So that more instances can bring more CPU, as machines of their
# own would, the PostgreSQL set-ups run a second time with each instance
# held to CHECKINS_CAP percent of one CPU (default 25) by a cgroup's CPU
# quota; where cgroups cannot be made, those rows are n/a. Figures, not a
# test: it never fails because the machine is slow.
#
#     tests/bench/checkins.sh [client]
#
# "client" runs the last part alone. CHECKINS_HOSTS (default 10000),
# CHECKINS_SECONDS (default 20) per set-up; the last part: CLIENT_HOSTS
# (default 1000), CLIENT_SECONDS (default 5) per client.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SD=$TOP/build/bin/slipwayd
B=$TOP/build/bin/slipway-build
CK=$TOP/build/bench/checkins
CK_OWN=$TOP/build/bench/checkins-own
HOSTS=${CHECKINS_HOSTS:-10000}
SECS=${CHECKINS_SECONDS:-20}
CAP=${CHECKINS_CAP:-25}
THREADS=8
D=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench-checkins.XXXXXX")
SRVS=()
SAMPLER=""
CGROUPS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
        [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null && wait "$SAMPLER" 2>/dev/null
        stop_servers
        uncap
        "$TOP/tests/pg.sh" stop "$D/pg" >/dev/null 2>&1
        rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
HZ=$(getconf CLK_TCK)

why() { sed -n '1,8s/^/      | /p'; }
sha() { openssl dgst -sha256 -r "$1" | cut -c1-64; }

stop_servers() {
        local p
        for p in "${SRVS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
        SRVS=()
}

# cap PID: holds process PID (all its threads) to CAP% of one CPU in a
# cgroup of its own: cgroup v2's cpu.max, or v1's CFS quota. Fails where
# neither can be made.
cap() {
        local cg root=/sys/fs/cgroup quota=$((CAP * 1000))
        if grep -qw cpu "$root/cgroup.controllers" 2>/dev/null; then
                grep -qw cpu "$root/cgroup.subtree_control" 2>/dev/null ||
                        echo +cpu >"$root/cgroup.subtree_control" 2>/dev/null || return 1
                cg=$root/slipway-bench-$$-$1
                mkdir "$cg" 2>/dev/null && CGROUPS+=("$cg") && echo "$quota 100000" >"$cg/cpu.max" &&
                        echo "$1" >"$cg/cgroup.procs"
        elif [ -w "$root/cpu/cgroup.procs" ]; then
                cg=$root/cpu/slipway-bench-$$-$1
                mkdir "$cg" 2>/dev/null && CGROUPS+=("$cg") && echo 100000 >"$cg/cpu.cfs_period_us" &&
                        echo "$quota" >"$cg/cpu.cfs_quota_us" && echo "$1" >"$cg/cgroup.procs"
        else
                return 1
        fi
}
# uncap: removes the cgroups cap made (their processes have stopped).
uncap() {
        local cg
        for cg in "${CGROUPS[@]}"; do rmdir "$cg" 2>/dev/null; done
        CGROUPS=()
}

# start DIR NAME [FLAGS...]: a slipwayd on loopback with state directory
# DIR; appends its pid to SRVS and its URL to URLS.
start() {
        local dir=$1 name=$2 i url
        shift 2
        mkdir -p "$dir"
        rm -f "$dir/slipwayd.url"
        "$SD" --state-dir "$dir" --listen 127.0.0.1:0 --log-json no --enroll-token sekrit --trusted-keys "$D/keys" \
                "$@" >>"$D/$name.log" 2>&1 &
        SRVS+=($!)
        if [ "${CAPPED:-0}" = 1 ] && ! cap $!; then
                echo "    cannot hold an instance to $CAP% of a CPU here (no cgroup with a CPU quota)"
                return 1
        fi
        for ((i = 0; i < 500; i++)); do
                [ -s "$dir/slipwayd.url" ] && url=$(cat "$dir/slipwayd.url") &&
                        curl -s -k -o /dev/null "$url/v1/status" && break
                sleep 0.02
        done
        url=$(cat "$dir/slipwayd.url" 2>/dev/null)
        [ -n "$url" ] || return 1
        URLS+=("$url")
}

# cpu_ticks PID...: user + system clock ticks of these processes so far.
cpu_ticks() {
        local p s sum=0
        for p in "$@"; do
                { read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
                s=${s##*) }
                # shellcheck disable=SC2086
                set -- $s
                sum=$((sum + ${12} + ${13}))
        done
        echo "$sum"
}

# pg_pids: the PostgreSQL server's processes (the postmaster and its
# children: the backends of slipwayd's connections, the writers).
pg_pids() {
        local pm
        { read -r pm <"$D/pg/data/postmaster.pid"; } 2>/dev/null || return 0
        echo "$pm"
        ps -o pid= --ppid "$pm" 2>/dev/null
}

# pct TICKS SECONDS: TICKS as a percentage of one CPU over SECONDS.
pct() { awk -v t="$1" -v s="$2" -v hz="$HZ" 'BEGIN { if (s > 0) printf "%.0f%%", 100 * t / hz / s; else print "n/a" }'; }

# load NAME FLAGS...: runs the load generator against URLS, with CPU
# samples of the servers and PostgreSQL over its measured part. Sets RPS,
# CK_P99, LEASE_P99, CPU_SD, CPU_PG, CPU_CK; n/a when it failed.
load() {
        local name=$1 u args=() i c0_sd c0_pg c1_sd c1_pg secs
        shift
        RPS=n/a CK_P99=n/a LEASE_P99=n/a CPU_SD=n/a CPU_PG=- CPU_CK=n/a
        for u in "${URLS[@]}"; do args+=(--url "$u"); done
        "$CK" "${args[@]}" --admin-token "$TOKEN" --enroll sekrit --hosts "$HOSTS" --threads "$THREADS" \
                --seconds "$SECS" "$@" >"$D/$name.out" 2>"$D/$name.err" &
        local ck=$!
        # The measured part starts once the hosts are registered.
        for ((i = 0; i < 6000; i++)); do
                grep -q 'hosts set up' "$D/$name.err" 2>/dev/null && break
                t_alive_pid "$ck" || break
                sleep 0.05
        done
        c0_sd=$(cpu_ticks "${SRVS[@]}")
        # shellcheck disable=SC2046
        c0_pg=$(cpu_ticks $(pg_pids))
        [ -n "${ON_MEASURE:-}" ] && "$ON_MEASURE"
        if ! wait "$ck"; then
                echo "    $name: the load failed:"
                why <"$D/$name.err"
                return 1
        fi
        c1_sd=$(cpu_ticks "${SRVS[@]}")
        # shellcheck disable=SC2046
        c1_pg=$(cpu_ticks $(pg_pids))
        RPS=$(sed -n '1s/.* \([0-9][0-9]*\) requests\/s.*/\1/p' "$D/$name.out")
        CK_P99=$(awk '$1 == "check-in" { print $7 }' "$D/$name.out")
        LEASE_P99=$(awk '$1 == "lease" { print $7 }' "$D/$name.out")
        secs=$(sed -n 's/^cpu \([0-9.]*\) s .* in the \([0-9.]*\) s$/\2/p' "$D/$name.out")
        CPU_CK=$(awk -v c="$(sed -n 's/^cpu \([0-9.]*\) s .*/\1/p' "$D/$name.out")" -v s="$secs" \
                'BEGIN { if (s > 0) printf "%.0f%%", 100 * c / s; else print "n/a" }')
        CPU_SD=$(pct $((c1_sd - c0_sd)) "$secs")
        [ "${ON_PG:-0}" = 1 ] && CPU_PG=$(pct $((c1_pg - c0_pg)) "$secs")
        return 0
}
t_alive_pid() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

row() { printf '    %-38s %9s %10s %10s %9s %9s %9s\n' "$@"; }
row_of() { row "$1" "$RPS" "$CK_P99 ms" "$LEASE_P99 ms" "$CPU_SD" "$CPU_PG" "$CPU_CK"; }

# A database of its own in the cluster for each set-up: fresh hosts.
pg_db() {
        psql -X -q -d "$PGURL" -c "CREATE DATABASE $1" >/dev/null 2>"$D/createdb.err" || return 1
        echo "${PGURL/\/slipway\?//$1?}"
}

# client_figures: the same load through libcurl and through the agent's
# own client, each on a slipwayd on sqlite of its own, over http and then
# https (a certificate of its own, given as the CA by --ca-file).
client_figures() {
        local hosts=${CLIENT_HOSTS:-1000} secs=${CLIENT_SECONDS:-5} tls name rps_curl p50
        echo
        echo "== the agent's HTTP client beside libcurl: $hosts hosts, $THREADS threads, $secs s each, slipwayd on sqlite"
        echo "   (tests/bench/checkins and checkins-own; libcurl: a connection per request; own: one kept per thread)"
        printf '    %-38s %9s %10s %10s %9s %9s\n' "" requests/s "check-in" "check-in" "CPU:" load
        printf '    %-38s %9s %10s %10s %9s %9s\n' "" "" p50 p99 slipwayd generator
        [ -x "$CK_OWN" ] || { echo "    $CK_OWN is missing: make build/bench/checkins-own"; return 0; }
        mkdir -p "$D/tls" "$D/keys"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
                -addext subjectAltName=IP:127.0.0.1 -keyout "$D/tls/key.pem" -out "$D/tls/cert.pem" 2>"$D/tls.log"
        for tls in no yes; do
                rps_curl=n/a
                for name in curl own; do
                        local dir=$D/c-$name-$tls flags=() ck=$CK label="libcurl" run=c-$name-$tls
                        [ $name = own ] && ck=$CK_OWN label="agent's client"
                        [ $tls = yes ] && flags=(--tls-cert "$D/tls/cert.pem" --tls-key "$D/tls/key.pem") &&
                                label="$label, https"
                        URLS=()
                        TOKEN=$("$SD" --state-dir "$dir" --log-json no token create bench 2>>"$D/$run.log")
                        if start "$dir" "$run" "${flags[@]}" &&
                                HOSTS=$hosts SECS=$secs CK=$ck load "$run" --ca-file "$D/tls/cert.pem"; then
                                p50=$(awk '$1 == "check-in" { print $4 }' "$D/$run.out")
                                printf '    %-38s %9s %10s %10s %9s %9s\n' "$label" "$RPS" "$p50 ms" "$CK_P99 ms" \
                                        "$CPU_SD" "$CPU_CK"
                                [ $name = curl ] && rps_curl=$RPS
                        else
                                printf '    %-38s %9s\n' "$label" n/a
                                why <"$D/$run.log"
                                RPS=n/a
                        fi
                        stop_servers
                done
                printf '    %-38s %9s\n' "ratio agent's client / libcurl" \
                        "$(awk -v a="$RPS" -v b="$rps_curl" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }')"
        done
}

if [ "${1:-}" = client ]; then
        if [ ! -x "$SD" ] || [ ! -x "$CK" ]; then
                echo "   $SD or $CK is missing: run make first"
                exit 0
        fi
        client_figures
        exit 0
fi

echo "== check-ins with lease decisions: $HOSTS hosts over HTTP, $THREADS connections, $SECS s each (tests/bench/checkins)"
for x in "$SD" "$CK" "$B"; do
        [ -x "$x" ] || { echo "   $x is missing: run make first"; exit 0; }
done
model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "   this machine: $(nproc) CPUs ($model), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start."
echo "   slipwayd, PostgreSQL and the load generator share these CPUs; CPU below is % of one CPU"
echo "   over the measured part (all instances summed; all PostgreSQL processes summed)."
mkdir -p "$D/keys"
"$B" keygen "$D/k.key" "$D/keys/k.pub" >/dev/null

PGOK=1
if ! PGURL=$("$TOP/tests/pg.sh" start "$D/pg" "$D" 2>"$D/pg.err"); then
        echo "   no PostgreSQL server, its set-ups are n/a: $(tail -n 2 "$D/pg.err")"
        PGOK=0
fi
row "" requests/s "check-in" "lease" "CPU:" "" "load"
row "" "" p99 p99 slipwayd postgres generator

# 1. sqlite, as before.
URLS=()
TOKEN=$("$SD" --state-dir "$D/sq" --log-json no token create bench 2>>"$D/sq.log")
if start "$D/sq" sq && load sq; then row_of sqlite; else row sqlite n/a; fi
stop_servers

# pg_setups SUFFIX LABEL: one instance on PostgreSQL, then three on one
# database with the 8 connections spread 3/3/2; rows "PostgreSQL, N
# instances LABEL" and their ratio. Databases are named with SUFFIX.
pg_setups() {
        local sfx=$1 label=$2 rps1=n/a rps3=n/a u r31 met
        if [ $PGOK = 1 ] && u=$(pg_db "one$sfx"); then
                URLS=()
                TOKEN=$("$SD" --state-dir "$D/p1$sfx" --database "$u" --log-json no token create bench 2>>"$D/p1$sfx.log")
                if start "$D/p1$sfx" "p1$sfx" --database "$u" --instance a && ON_PG=1 load "p1$sfx"; then
                        row_of "PostgreSQL, 1 instance$label"
                        rps1=$RPS
                else
                        row "PostgreSQL, 1 instance$label" n/a
                        why <"$D/p1$sfx.log"
                fi
                stop_servers
        else
                row "PostgreSQL, 1 instance$label" n/a
        fi
        if [ $PGOK = 1 ] && u=$(pg_db "three$sfx"); then
                URLS=()
                TOKEN=$("$SD" --state-dir "$D/p3a$sfx" --database "$u" --log-json no token create bench 2>>"$D/p3$sfx.log")
                if start "$D/p3a$sfx" "p3$sfx" --database "$u" --instance a &&
                        start "$D/p3b$sfx" "p3$sfx" --database "$u" --instance b &&
                        start "$D/p3c$sfx" "p3$sfx" --database "$u" --instance c && ON_PG=1 load "p3$sfx"; then
                        row_of "PostgreSQL, 3 instances$label"
                        rps3=$RPS
                else
                        row "PostgreSQL, 3 instances$label" n/a
                        why <"$D/p3$sfx.log"
                fi
                stop_servers
        else
                row "PostgreSQL, 3 instances$label" n/a
        fi
        uncap
        r31=$(awk -v a="$rps3" -v b="$rps1" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }')
        met="not met"
        awk -v r="$r31" 'BEGIN { exit !(r ~ /^[0-9.]+$/ && r >= 2) }' && met=met
        [ "$r31" = n/a ] && met="n/a"
        printf '    %-38s %9s   (aim >= 2: %s)\n' "ratio 3 / 1 instance$label" "$r31" "$met"
}

# 2. and 3. One and three instances on PostgreSQL, sharing this machine's
# CPUs; then each instance held to CAP% of a CPU, as if on a small machine
# of its own, with PostgreSQL and the load generator as before.
pg_setups "" ""
CAPPED=1 pg_setups _cap " ($CAP% CPU each)"
printf '    %-38s %9s\n' "a fleet of 10,000 makes" "333"
echo "   (333 requests/s: check-ins every 30 s. Sharing the CPUs, more instances add no CPU: the"
echo "   first ratio shows what the database and the sharing cost. Held to $CAP% each, three instances"
echo "   have three times one's CPU: the second ratio shows whether the database, with the rest of"
echo "   the machine, keeps up with them.)"

# ---- the coordinator's tick during a rollout of all the hosts ----------------
# A hand-made image of small random blobs, signed with openssl.
mkdir -p "$D/img"
head -c 1M /dev/urandom >"$D/img/rootfs.img"
head -c 64K /dev/urandom >"$D/img/vmlinuz"
head -c 64K /dev/urandom >"$D/img/initrd"
art() { jq -n --arg t "$1" --arg s "$(sha "$2")" --argjson n "$(stat -c %s "$2")" '{type: $t, sha256: $s, size: $n}'; }
jq -n -S --indent 2 --arg arch "$(uname -m)" \
        --argjson r "$(art rootfs "$D/img/rootfs.img" | jq '. + {fstype: "erofs"}')" \
        --argjson k "$(art kernel "$D/img/vmlinuz")" --argjson i "$(art initrd "$D/img/initrd")" \
        '{format: 1, name: "bench", version: "2.0", arch: $arch, build_time: 1700000000,
          cmdline: "console=ttyS0", root_size: 1048576, artifacts: [$r, $k, $i], lock: {}}' >"$D/img/manifest.json"
openssl pkeyutl -sign -rawin -inkey "$D/k.key" -in "$D/img/manifest.json" -out "$D/img/manifest.sig" 2>"$D/sign.log"

api() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }
# publish URL: uploads the image's blobs and publishes it.
publish() {
        local f
        for f in "$D"/img/*; do api -o /dev/null -T "$f" "$1/v1/blobs/sha256/$(sha "$f")" || return; done
        api -f -o "$D/publish.json" -H 'Content-Type: application/json' \
                -d "{\"manifest\":\"$(sha "$D/img/manifest.json")\",\"signature\":\"$(sha "$D/img/manifest.sig")\"}" \
                "$1/v1/images" 2>"$D/publish.err"
}
# tick_sample URL: "COUNT SUM" of the leader's tick summary.
tick_sample() {
        curl -s "$1/metrics" | awk '$1 == "slipway_coordinator_tick_seconds_count" { c = $2 }
                $1 == "slipway_coordinator_tick_seconds_sum" { s = $2 } END { print c + 0, s + 0 }'
}
# start_rollout: the rollout of every host, once they are registered; then
# a sampler that writes each tick's time (ms) to $D/ticks. It scrapes
# /metrics every 0.3 s, a little load beside the hosts', the same on both
# stores.
start_rollout() {
        api -f -o "$D/rollout.json" -H 'Content-Type: application/json' \
                -d '{"image": "bench:2.0", "waves": ["1%", "10%", "100%"]}' "${URLS[0]}/v1/rollouts" 2>"$D/rollout.err"
        (
                read -r c0 s0 < <(tick_sample "${URLS[0]}")
                while :; do
                        sleep 0.3
                        read -r c s < <(tick_sample "${URLS[0]}")
                        [ -n "$c" ] || continue
                        if [ "$c" -gt "$c0" ]; then
                                # One sample a tick; two ticks between samples count as two of their mean.
                                awk -v n=$((c - c0)) -v d="$s" -v d0="$s0" \
                                        'BEGIN { for (i = 0; i < n; i++) printf "%.3f\n", 1000 * (d - d0) / n }'
                                c0=$c s0=$s
                        fi
                done
        ) >"$D/ticks" 2>/dev/null &
        SAMPLER=$!
}
# tick_row NAME: tick mean, p99 and max of the samples, and the rollout's progress.
tick_row() {
        kill "$SAMPLER" 2>/dev/null && wait "$SAMPLER" 2>/dev/null
        local id st
        id=$(jq -r '.id // empty' "$D/rollout.json" 2>/dev/null)
        st=$(api "${URLS[0]}/v1/rollouts/$id" 2>/dev/null |
                jq -r '"wave \(.wave)/\(.waves_total), \([.waves[].done] | add) hosts done"' 2>/dev/null)
        sort -n "$D/ticks" | awk -v name="$1" -v st="${st:-progress n/a}" '{ v[NR] = $1; s += $1 }
                END { if (!NR) { printf "    %-38s %9s   (no tick seen)\n", name, "n/a"; exit }
                      i = int(NR * 0.99); if (i < NR * 0.99) i++; if (i > NR) i = NR
                      printf "    %-38s %6d %8.1f ms %8.1f ms %8.1f ms   %s\n", name, NR, s / NR, v[i], v[NR], st }'
}

echo
echo "== the coordinator's tick during a rollout of $HOSTS hosts (waves 1%, 10%, 100%; hosts run what they are given), $SECS s"
printf '    %-38s %6s %11s %11s %11s\n' "" ticks mean p99 max
ON_MEASURE=start_rollout
URLS=()
TOKEN=$("$SD" --state-dir "$D/tsq" --log-json no token create bench 2>>"$D/tsq.log")
if start "$D/tsq" tsq && publish "${URLS[0]}" && load tsq --follow; then
        tick_row sqlite
else
        printf '    %-38s %9s\n' sqlite n/a
        cat "$D/publish.err" "$D/rollout.err" "$D/tsq.log" 2>/dev/null | why
fi
stop_servers
if [ $PGOK = 1 ] && UT=$(pg_db tick); then
        URLS=()
        TOKEN=$("$SD" --state-dir "$D/tpg" --database "$UT" --log-json no token create bench 2>>"$D/tpg.log")
        if start "$D/tpg" tpg --database "$UT" --instance a && publish "${URLS[0]}" && ON_PG=1 load tpg --follow; then
                tick_row "PostgreSQL, 1 instance"
        else
                printf '    %-38s %9s\n' "PostgreSQL, 1 instance" n/a
                cat "$D/publish.err" "$D/rollout.err" "$D/tpg.log" 2>/dev/null | why
        fi
        stop_servers
else
        printf '    %-38s %9s\n' "PostgreSQL, 1 instance" n/a
fi
echo "    (aim: < 50 ms)"

client_figures
