#!/bin/bash
# What the fleets of real agents share (tests/fleet/agents.sh and
# tests/fleet/ha.sh): the namespaces, the images, the hosts and their
# labels, and the checks made on the audit log afterwards. Sourced after
# tests/lib.sh; the suite sets D (its directory), HOSTS, REBOOT (seconds a
# simulated reboot takes), B (slipway-build), AG (slipway-agent) and URL
# (the server as the suite asks it), and defines agent_server N (the server
# list host N is given), api (curl to the server with the admin token, as
# in `api "$URL/v1/hosts"`) and failing N (true when host N fails its
# health check on 2.0).

SERVICES=(a b c d e)
# host_ns N: the namespace host N lives in (odd and even hosts alternate).
host_ns() { echo "${NSS[$(($1 % 2))]}"; }
service_of() { echo "${SERVICES[$(($1 % 5))]}"; }
rack_of() { echo "r$(($1 / 5 % 10))"; }

# fleet_netns SRV NS0 NS1: namespace SRV holds the bridge 10.96.0.1/16 (the
# servers' side); NS0 and NS1 are joined to it by veth pairs, as
# 10.96.1.1 and 10.96.2.1. NSS holds the two host namespaces. Returns 1
# when namespaces cannot be made here (the reason in $D/netns.err), 2 when
# joining them failed.
fleet_netns() {
        local srv=$1 i ns
        NSS=("$2" "$3")
        t_netns_add "$srv" 2>"$D/netns.err" && ip -n "$srv" link set lo up &&
                ip -n "$srv" link add br0 type bridge && ip -n "$srv" addr add 10.96.0.1/16 dev br0 &&
                ip -n "$srv" link set br0 up || return 1
        for i in 0 1; do
                ns=${NSS[$i]}
                t_netns_add "$ns" 2>>"$D/netns.err" && ip -n "$ns" link set lo up &&
                        ip -n "$srv" link add "v$i" type veth peer name eth0 netns "$ns" &&
                        ip -n "$srv" link set "v$i" master br0 && ip -n "$srv" link set "v$i" up &&
                        ip -n "$ns" addr add "10.96.$((i + 1)).1/16" dev eth0 && ip -n "$ns" link set eth0 up ||
                        return 2
        done
}

# fleet_images VERSION...: the images fleet:VERSION in the store $D/store,
# signed with $D/k.key (public half in $D/keys): the sample's busybox and
# tiny-base of that version, and a placeholder kernel. Logs in $D/build.log.
fleet_images() {
        local v
        mkdir -p "$D/keys" "$D/fleet-repo/Packages" "$D/rpmbuild"
        "$B" keygen "$D/k.key" "$D/keys/k.pub" >/dev/null || return 1
        rpmbuild -bb --define "_topdir $D/rpmbuild" --define "_rpmdir $D/fleet-repo/Packages" \
                --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
                "$TOP/tests/fleet/fleet-kernel.spec" >"$D/build.log" 2>&1 &&
                "$TOP/images/sign-rpms.sh" -n "Slipway fleet test" "$D/fleet-gnupg" "$D/fleet-repo/RPM-GPG-KEY-fleet" \
                        "$D"/fleet-repo/Packages/*.rpm >>"$D/build.log" 2>&1 &&
                createrepo_c -q "$D/fleet-repo" >/dev/null || return 1
        for v in "$@"; do
                # each release carries the sample's tiny-base of its version
                cat >"$D/fleet-$v.conf" <<EOC
[image]
name = fleet
version = $v
arch = x86_64
[packages]
install = tiny-base = $v busybox fleet-kernel
[repo sample]
baseurl = $TOP/build/sample-repo
gpgkey = $TOP/build/sample-repo/RPM-GPG-KEY-slipway-sample
[repo fleet]
baseurl = $D/fleet-repo
gpgkey = $D/fleet-repo/RPM-GPG-KEY-fleet
[boot]
cmdline = quiet
initramfs-modules =
[rootfs]
type = erofs
EOC
                "$B" -q --store "$D/store" build --no-disk --key "$D/k.key" "$D/fleet-$v.conf" >>"$D/build.log" 2>&1 ||
                        return 1
        done
}

# fleet_agent_args N: slipway-agent's options for host N (sim backend,
# checking in every 2 s, rebooting in $REBOOT s).
fleet_agent_args() {
        local h=$D/h/$1
        echo --backend sim --sim-dir "$h" --state-dir "$h/state" --server "$(agent_server "$1")" --keys-dir "$D/keys" \
                --health-dir "$h/health.d" --checkin-interval 2 --sim-slot-size 8M --sim-reboot-time "$REBOOT" \
                --enroll-token fleet
}

# fleet_register FIRST STEP: registers hosts FIRST, FIRST+STEP, … below
# HOSTS from their namespaces, labels them service and rack, and assigns
# fleet:1.0. A failing host gets a health check that fails on 2.0.
fleet_register() {
        local n mac id
        for ((n = $1; n < HOSTS; n += $2)); do
                mkdir -p "$D/h/$n/health.d"
                if failing "$n"; then
                        printf '#!/bin/sh\n[ "$SLIPWAY_VERSION" != 2.0 ] || { echo "host %s: the service fails on 2.0"; exit 1; }\n' \
                                "$n" >"$D/h/$n/health.d/10-service"
                        chmod +x "$D/h/$n/health.d/10-service"
                fi
                mac=$(printf '52:54:00:96:%02x:%02x' $((n / 256)) $((n % 256)))
                # shellcheck disable=SC2046
                ip netns exec "$(host_ns "$n")" "$AG" $(fleet_agent_args "$n") register "$mac" >>"$D/h/$n.log" 2>&1 ||
                        return 1
                id=$(jq -r .host_id "$D/h/$n/state/agent.json")
                echo "$id" >"$D/h/$n/id"
                api -o /dev/null -f -X POST -H 'Content-Type: application/json' \
                        -d "{\"set\": {\"service\": \"$(service_of "$n")\", \"rack\": \"$(rack_of "$n")\"}}" \
                        "$URL/v1/hosts/$id/labels" || return 1
                api -o /dev/null -f -X PUT -H 'Content-Type: application/json' -d '{"image": "fleet:1.0"}' \
                        "$URL/v1/hosts/$id/image" || return 1
        done
}

# fleet_count_on VERSION: hosts healthy on it.
fleet_count_on() {
        api "$URL/v1/hosts" | jq --arg v "$1" '[.hosts[] | select(.state == "healthy" and .version == $v)] | length'
}

# fleet_audit SINCE: the audit log's lease entries after entry SINCE, one
# JSON object a line, oldest first.
fleet_audit() {
        local since=$1 page
        while :; do
                page=$(api "$URL/v1/audit?action=lease&since=$since&limit=1000")
                jq -c '.entries[]' <<<"$page"
                [ "$(jq '.entries | length' <<<"$page")" -lt 1000 ] && break
                since=$(jq '.entries[-1].id' <<<"$page")
        done
}

# fleet_labels: {host ID: its labels} of every host.
fleet_labels() {
        api "$URL/v1/hosts" | jq -c '[.hosts[] | {key: .id, value: .labels}] | from_entries'
}

# fleet_over AUDIT LABELS SVC: replays the leases of the audit log AUDIT
# grant by grant (a renewal is a grant to a holder) and prints the first
# five times a rack held more than 1 lease or a service more than SVC;
# nothing when the budgets held.
fleet_over() {
        jq -s -r --slurpfile labels "$2" --argjson svc "$3" '
                reduce .[] as $e ({held: {}, over: []};
                        if $e.action == "lease.grant" then .held[$e.target] = true
                        elif $e.action == "lease.release" then del(.held[$e.target])
                        else . end
                        | . as $s
                        | if $e.action != "lease.grant" then . else
                                ([$s.held | keys[] | $labels[0][.] | "rack=\(.rack)", "service=\(.service)"]
                                 | group_by(.) | map({g: .[0], n: length})) as $counts
                                | .over += [$counts[] | select(.n > (if (.g | startswith("rack=")) then 1 else $svc end))
                                            | "\(.g): \(.n) leases after entry \($e.id)"]
                          end)
                | .over | .[:5] | join("; ")' "$1"
}

# fleet_lower_bound AUDIT LABELS SVC: the seconds a rollout takes at least.
# A group with a budget of k lets k hosts down at a time, so the rollout
# takes at least the sum of its hosts' lease times (grant to release, as
# the audit log has them) divided by k, for the busiest group.
fleet_lower_bound() {
        jq -s -r --slurpfile labels "$2" --argjson svc "$3" '
                reduce .[] as $e ({open: {}, sum: {}};
                        if $e.action == "lease.grant" and (.open[$e.target] == null) then .open[$e.target] = $e.time
                        elif $e.action == "lease.release" and .open[$e.target] != null then
                                ($labels[0][$e.target]) as $l | ($e.time - .open[$e.target]) as $t
                                | .sum["rack=\($l.rack)"] += $t | .sum["service=\($l.service)"] += ($t / $svc)
                                | del(.open[$e.target])
                        else . end)
                | [.sum[]] | max // 0 | floor' "$1"
}
