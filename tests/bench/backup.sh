#!/bin/bash
# The backup's cost at fleet scale: a slipwayd with 10,000 registered hosts
# (tests/bench/checkins.c registers and labels them) serves check-ins and
# lease decisions from 8 threads for BACKUP_BENCH_SECONDS, once alone and
# while `slipwayd backup` runs over and over, and alone again. Prints how long a backup
# of that state takes and the writers' latency (lease grants and releases
# are write transactions) with and without backups running. Figures, not a
# test: nothing fails because the machine is slow. Last, the RTO at that
# size: the server stopped, the last backup restored into a new state
# directory, a server started on it, until it answers.
#
#     tests/bench/backup.sh [HOSTS]
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SD=$TOP/build/bin/slipwayd
CK=$TOP/build/bench/checkins
HOSTS=${1:-10000}
SECS=${BACKUP_BENCH_SECONDS:-20}
D=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench-backup.XXXXXX")
SRV=""
loop=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
        [ -n "$loop" ] && kill "$loop" 2>/dev/null && wait "$loop" 2>/dev/null
        [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
        rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== backup of a serving slipwayd: $HOSTS hosts, check-ins and leases from 8 threads for $SECS s"
TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create bench)
mkdir -p "$D/keys"
"$SD" --state-dir "$D/srv" --listen 127.0.0.1:0 --log-json no --enroll-token sekrit --trusted-keys "$D/keys" \
        >"$D/srv.log" 2>&1 &
SRV=$!
for ((i = 0; i < 200; i++)); do [ -s "$D/srv/slipwayd.url" ] && break; sleep 0.05; done
URL=$(cat "$D/srv/slipwayd.url")
load() { # OUT
        "$CK" --url "$URL" --admin-token "$TOKEN" --enroll sekrit --hosts "$HOSTS" --threads 8 --seconds "$SECS" \
                --lease-every 10 >"$1" 2>"$1.err"
}
# The hosts registered, and the figures without a backup.
if ! load "$D/alone"; then
        echo "  the load failed: $(head -3 "$D/alone.err")"
        exit 0
fi
# The same load with a backup after another, each into a new directory.
(
        n=0
        while :; do
                n=$((n + 1))
                "$SD" --state-dir "$D/srv" --log-json no backup "$D/bk$n" >"$D/bk$n.out" 2>&1 || exit 1
                rm -rf "$D/bk$n"
                sleep 0.5
        done
) &
loop=$!
sleep 1
load "$D/during"
kill "$loop" 2>/dev/null
wait "$loop" 2>/dev/null
loop=""
load "$D/after"

size=$(du -k "$D/srv/state.db" | cut -f1)
n=$(find "$D" -maxdepth 1 -name 'bk*.out' | wc -l)
snap=$(cat "$D"/bk*.out 2>/dev/null | sed -n 's/.*snapshot in \([0-9.]*\) s.*/\1/p' | sort -n)
total=$(cat "$D"/bk*.out 2>/dev/null | sed -n 's/.*done in \([0-9.]*\) s.*/\1/p' | sort -n)
med() { awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "n/a" }'; }
printf '  state.db: %s MiB; %s backups during the load\n' "$((size / 1024))" "$n"
printf '  %-40s median %s s, max %s s\n' "snapshot (online backup API)" "$(med <<<"$snap")" "$(tail -n 1 <<<"$snap")"
printf '  %-40s median %s s, max %s s\n' "whole backup (snapshot, digest, manifest)" "$(med <<<"$total")" \
        "$(tail -n 1 <<<"$total")"
# The last backup, then the recovery.
"$SD" --state-dir "$D/srv" --log-json no backup "$D/last" >"$D/last.out" 2>&1
kill "$SRV" && wait "$SRV" 2>/dev/null
SRV=""
t0=$(date +%s%N)
"$SD" --state-dir "$D/dr" --log-json no restore "$D/last" >"$D/restore.out" 2>&1
t1=$(date +%s%N)
"$SD" --state-dir "$D/dr" --listen 127.0.0.1:0 --log-json no --trusted-keys "$D/keys" >"$D/dr.log" 2>&1 &
SRV=$!
for ((i = 0; i < 400; i++)); do [ -s "$D/dr/slipwayd.url" ] && break; sleep 0.01; done
URL=$(cat "$D/dr/slipwayd.url" 2>/dev/null)
for ((i = 0; i < 400; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL/v1/status")" = 200 ] && break
        sleep 0.01
done
t2=$(date +%s%N)
printf '  %-40s %s ms (restore %s ms, start until it answers %s ms)\n' "RTO: restore and serve" \
        $(((t2 - t0) / 1000000)) $(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000))
for f in alone during after; do
        label="without backups"
        [ $f = during ] && label="with backups running"
        [ $f = after ] && label="without backups, again"
        echo "  $label: $(head -1 "$D/$f")"
        grep -E '^(check-in|lease|release) ' "$D/$f" | sed 's/^/    /'
done
