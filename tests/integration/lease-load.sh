#!/bin/bash
# Lease decisions under concurrent HTTP load: 200 registered hosts (services
# of 40, racks of 10) check in from 8 threads while asking for and giving
# back their reboot leases (tests/bench/checkins.c, the bench's load at a
# smaller scale). Every grant and release is in the audit log; replaying them
# must never find two hosts of a rack, or more than 10% of a service, holding
# a lease at once.
. "$(dirname "$0")/../lib.sh"
t_begin lease-load

SD=$BIN/slipwayd
CK=$TOP/build/bench/checkins
D=$T_DIR
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT

TOKEN=$("$SD" --state-dir "$D/srv" --log-json no token create ci)
"$SD" --state-dir "$D/srv" --listen 127.0.0.1:0 --log-json no --enroll-token sekrit >"$D/srv.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 100; i++)); do [ -s "$D/srv/slipwayd.url" ] && break; sleep 0.05; done
URL=$(cat "$D/srv/slipwayd.url")
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }

t_case "200 hosts, 8 threads: check-ins, lease requests and releases all answered"
if "$CK" --url "$URL" --admin-token "$TOKEN" --enroll sekrit --hosts 200 --threads 8 --seconds 4 --lease-every 2 \
        >"$D/ck.out" 2>"$D/ck.err"; then
        granted=$(sed -n '1s/.*leases: \([0-9]*\) granted, \([0-9]*\) refused.*/\1/p' "$D/ck.out")
        refused=$(sed -n '1s/.*leases: \([0-9]*\) granted, \([0-9]*\) refused.*/\2/p' "$D/ck.out")
        if [ "${granted:-0}" -gt 0 ] && [ "${refused:-0}" -gt 0 ]; then
                t_ok "$granted granted, $refused refused"
        else
                t_fail "expected grants and refusals: $(head -1 "$D/ck.out")"
        fi
else
        t_fail "$(cat "$D/ck.err")"
fi

t_case "the audit log's grants and releases never exceed a budget"
# Every lease entry, page by page.
: >"$D/audit.json"
since=0
while :; do
        page=$(api "$URL/v1/audit?action=lease&since=$since&limit=1000")
        n=$(jq '.entries | length' <<<"$page")
        [ "$n" -gt 0 ] || break
        jq -c '.entries[] | select(.action == "lease.grant" or .action == "lease.release") | [.action, .target]' \
                <<<"$page" >>"$D/audit.json"
        since=$(jq '.entries[-1].id' <<<"$page")
        [ "$n" -lt 1000 ] && break
done
labels=$(api "$URL/v1/hosts" | jq -c '[.hosts[] | {key: .id, value: .labels}] | from_entries')
# Only a granted lease's release counts (a release of nothing is logged too).
max=$(jq -rs --argjson L "$labels" '
        reduce .[] as $e ({held: {}, rack: {}, svc: {}, r: 0, s: 0, n: 0};
                $L[$e[1]] as $l
                | if $e[0] == "lease.grant" and (.held[$e[1]] | not) then
                        .held[$e[1]] = true | .n += 1
                        | .rack[$l.rack] += 1 | .svc[$l.service] += 1
                        | .r = ([.r, .rack[$l.rack]] | max) | .s = ([.s, .svc[$l.service]] | max)
                  elif $e[0] == "lease.release" and .held[$e[1]] then
                        .held[$e[1]] = false | .rack[$l.rack] -= 1 | .svc[$l.service] -= 1
                  else . end)
        | "\(.n) \(.r) \(.s)"' "$D/audit.json")
read -r n r s <<<"$max"
if [ "${n:-0}" -gt 0 ] && [ "${r:-9}" -le 1 ] && [ "${s:-9}" -le 4 ]; then
        t_ok "$n grants; at most $r per rack and $s per service at once"
else
        t_fail "grants ${n:-?}, most at once: rack ${r:-?} (budget 1), service ${s:-?} (budget 4 of 40)"
fi

t_end
