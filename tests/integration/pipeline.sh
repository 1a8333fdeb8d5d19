#!/bin/bash
# Integration tests of pipelines (docs/operations.md, "Pipelines") against
# slipwayd on loopback, with a real Prometheus (Debian's package) that
# scrapes slipwayd's /metrics and an application's metric (a static file
# served by python3's http.server, which the test changes), every second.
# Four simulated hosts (two env=staging, two env=production) check in with
# curl as their agents would, healthy on whatever image they are assigned.
# Cases: a pipeline whose gates pass promotes staging to production; one
# whose Prometheus gate fails stops and rolls staging back; a manual
# approval; a command gate that fails; a restart of slipwayd mid-bake; the
# audit trail; a stage's own budget; abort. slipwayd.conf names the
# Prometheus for the pipelines whose file names none. The pipelines' metrics
# and alerts, as Prometheus reads them (the site's rules loaded).
. "$(dirname "$0")/../lib.sh"
t_begin pipeline

C=$BIN/slipctl
SLIPWAYD=${SLIPWAYD:-$BIN/slipwayd}
export SOURCE_DATE_EPOCH=1700000000
export SLIPWAY_CACHE=$T_DIR/cache
unset SLIPWAY_SERVER SLIPWAY_TOKEN SLIPWAY_CA_FILE
D=$T_DIR
PIDS=""
SRV=""
SIM=""
MACS="52:54:00:e0:00:01 52:54:00:e0:00:02 52:54:00:e0:00:03 52:54:00:e0:00:04"
ENVS=(staging staging production production)

stop_all() {
        # shellcheck disable=SC2086
        t_stop $SIM $SRV $PIDS
        SIM="" SRV="" PIDS=""
}
t_on_exit stop_all

# free_port: a port for a server that is not told port 0 (t_port).
free_port() { t_port; }

need() {
        t_case "$1 is here"
        t_fail "no $2 (make deps)"
        t_end
        exit 1
}
if [ ! -x "$SLIPWAYD" ] || [ ! -x "$C" ]; then need "slipwayd and slipctl" "$SLIPWAYD or $C"; fi
command -v prometheus >/dev/null || need prometheus prometheus

# start_server PORT: slipwayd on 127.0.0.1:PORT (0: any), its URL in $URL.
start_server() {
        t_slipwayd "$D" "127.0.0.1:$1" --config "$D/slipwayd.conf" || exit 1
        SRV=$T_SLIPWAYD_PID
}

t_tiny_images "$D"
TOKEN=$("$SLIPWAYD" --state-dir "$D/srv" --log-json no token create ci)
PROM_PORT=$(free_port)
PROM=http://127.0.0.1:$PROM_PORT
printf '[pipelines]\nprometheus = %s\n' "$PROM" >"$D/slipwayd.conf"
# It starts again later on the same port.
PORT=$(free_port)
start_server "$PORT"
export SLIPWAY_SERVER=$URL SLIPWAY_TOKEN=$TOKEN
t_tiny_push "$D"
H=()
i=0
for m in $MACS; do
        curl -sf -o /dev/null "$URL/boot/ipxe?mac=$m"
        H+=("$($C --json host show "$m" | jq -r .id)")
        $C host label "$m" env="${ENVS[$i]}" >/dev/null || echo "labelling $m failed"
        curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
                -d "{\"state\": \"healthy\", \"image\": \"$ID1\", \"version\": \"x\"}" "$URL/v1/hosts/${H[$i]}/checkin"
        i=$((i + 1))
done

# The hosts, as their agents: every 0.3 s each reports healthy on the
# image it is assigned (the URL read again: slipwayd restarts on its port);
# while $D/hold is there they stay on their way, silent.
sim_hosts() {
        local h img
        while :; do
                if [ -e "$D/hold" ]; then sleep 0.3; continue; fi
                for h in "${H[@]}"; do
                        img=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL/v1/hosts/$h" | jq -r '.image // empty')
                        [ -n "$img" ] || continue
                        curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
                                -d "{\"state\": \"healthy\", \"image\": \"$img\", \"version\": \"x\"}" \
                                "$URL/v1/hosts/$h/checkin"
                done
                sleep 0.3
        done
}
sim_hosts >/dev/null 2>&1 &
SIM=$!

# The application's metric, served as a file; set_ratio writes it whole.
mkdir -p "$D/app"
set_ratio() {
        printf '# TYPE app_error_ratio gauge\napp_error_ratio{env="staging"} %s\n' "$1" >"$D/app/metrics.tmp"
        mv "$D/app/metrics.tmp" "$D/app/metrics"
}
set_ratio 0.001
APP_PORT=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$D/app" "$APP_PORT" >"$D/app.log" 2>&1 &
PIDS="$PIDS $!"
cat >"$D/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$TOP/contrib/prometheus/slipway-alerts.yml"]
scrape_configs:
  - job_name: slipwayd
    static_configs: [{targets: ["127.0.0.1:$PORT"]}]
  - job_name: app
    static_configs: [{targets: ["127.0.0.1:$APP_PORT"]}]
EOF
prometheus --config.file="$D/prometheus.yml" --storage.tsdb.path="$D/prom" \
        --web.listen-address="127.0.0.1:$PROM_PORT" >"$D/prometheus.log" 2>&1 &
PIDS="$PIDS $!"

# prom_value QUERY: the value of QUERY's first sample now ("" for none).
prom_value() {
        curl -sf --get --data-urlencode "query=$1" "$PROM/api/v1/query" | jq -r '.data.result[0].value[1] // empty'
}
prom_is() { [ "$(prom_value "$1")" = "$2" ]; }
# firing ALERT LABEL=VALUE: Prometheus fires ALERT for that pipeline.
firing() { prom_is "count(ALERTS{alertname=\"$1\",alertstate=\"firing\",pipeline=\"$2\"})" 1; }

# pipeline_file NAME IMAGE STAGING-GATES PRODUCTION-GATES [STAGING-EXTRA]:
# a two-stage pipeline file at $D/NAME.conf.
pipeline_file() {
        cat >"$D/$1.conf" <<EOF
# $1: staging first, then production
[pipeline]
name = $1
image = $2
prometheus = $PROM

[stage staging]
selector = env=staging
waves = 1, 100%
bake = 3
$3

[stage production]
selector = env=production
bake = 1
$4
EOF
}

# settled: no rollout on its way (the next pipeline's may take its hosts).
settled() {
        $C --json rollout list |
                jq -e '[.rollouts[] | select(.state == "running" or .state == "paused" or
                        (.state == "done" and .done < .hosts))] | length == 0' >/dev/null
}
state_of() { $C --json pipeline status "$1" | jq -r "$2"; }
phase_is() { [ "$(state_of "$1" .phase)" = "$2" ]; }
ended() { [ "$(state_of "$1" .state)" != running ]; }
images_are() {
        local h out=""
        for h in "${H[@]}"; do out="$out $($C --json host show "$h" | jq -r .image)"; done
        [ "$out" = " $*" ]
}
audit_actions() {
        curl -sf -H "Authorization: Bearer $TOKEN" "$URL/v1/audit?action=pipeline&limit=1000" |
                jq -r --arg t "pipeline $1" '[.entries[] | select(.target == $t) | .action] | join(" ")'
}

t_case "Prometheus scrapes slipwayd and the application"
if t_wait_until 90 prom_is 'min(slipway_instance_up)' 1 && t_wait_until 90 prom_is 'app_error_ratio' 0.001; then t_ok; else
        t_fail "no samples: $(curl -s "$PROM/api/v1/targets" | head -c 600)"; fi

t_case "a pipeline file with an unknown key is refused with its line"
printf '[pipeline]\nimage = tiny:2.0\n[stage s]\nselector = env=staging\ncolour = red\n' >"$D/bad.conf"
printf '[pipeline]\nimage = tiny:2.0\n' >"$D/nostage.conf"
if out=$($C pipeline start "$D/bad.conf" 2>&1); then t_fail "started: $out"
elif ! grep -q "bad.conf:5: unknown key 'colour' in \[stage s\]" <<<"$out"; then t_fail "$out"
elif ! out=$($C pipeline start "$D/nostage.conf" 2>&1) && grep -q "'stages': expected 1 to 8 stages" <<<"$out"; then t_ok
else t_fail "$out"; fi

t_case "gates that pass: staging, then production, then done"
pipeline_file good tiny:2.0 "$(printf '%s\n' 'prometheus = app_error_ratio{env="staging"}' 'condition = < 0.01' \
        'interval = 1' 'command = test -n staging' "http = $URL/v1/status" 'http-body = "version"')" \
        "$(printf '%s\n' 'prometheus = min(slipway_instance_up)' 'condition = == 1')"
t0=$(now_ms)
if out=$($C pipeline start "$D/good.conf" 2>&1) && P1=$(grep -o 'pipeline [0-9]*' <<<"$out" | cut -d' ' -f2) &&
        t_wait_until 120 ended "$P1" && [ "$(state_of "$P1" .state)" = "done" ] &&
        [ "$(state_of "$P1" '[.stages[].state] | join(" ")')" = "promoted done" ] &&
        images_are "$ID2" "$ID2" "$ID2" "$ID2"; then
        t_ok "$(($(now_ms) - t0)) ms"
else
        t_fail "${out:-}: $($C pipeline status "${P1:-0}" 2>&1)"
fi

t_case "every transition is audited"
if [ "$(audit_actions "${P1:-0}")" = "pipeline.start pipeline.stage-done pipeline.promote pipeline.stage-done pipeline.done" ]; then
        t_ok
else
        t_fail "$(audit_actions "${P1:-0}")"
fi

t_case "a Prometheus gate that fails stops the pipeline and rolls staging back"
set_ratio 0.5
pipeline_file bad tiny:1.0 "$(printf '%s\n' 'prometheus = app_error_ratio{env="staging"}' 'condition = < 0.01' \
        'interval = 1' 'on-failure = rollback')" ""
if t_wait_until 60 prom_is 'app_error_ratio' 0.5 && out=$($C pipeline start "$D/bad.conf" 2>&1) &&
        P2=$(grep -o 'pipeline [0-9]*' <<<"$out" | cut -d' ' -f2) && t_wait_until 90 ended "$P2" &&
        [ "$(state_of "$P2" .state)" = failed ] &&
        state_of "$P2" .reason | grep -q "^stage staging: the Prometheus query 'app_error_ratio{env=\"staging\"}' returned 0.5, not < 0.01; rolled back by rollout [0-9]*$" &&
        [ "$(state_of "$P2" '[.stages[].state] | join(" ")')" = "failed pending" ] &&
        t_wait_until 60 images_are "$ID2" "$ID2" "$ID2" "$ID2" &&
        [ "$(audit_actions "$P2")" = "pipeline.start pipeline.stage-done pipeline.gate-failed" ] &&
        t_wait_until 60 prom_is "slipway_pipeline_state{pipeline=\"$P2\",state=\"failed\"}" 1 &&
        prom_is "slipway_pipeline_state{pipeline=\"$P2\",state=\"running\"}" 0 &&
        prom_is "slipway_pipeline_info{pipeline=\"$P2\",name=\"bad\",image=\"tiny:1.0\",stage=\"staging\"}" 1 &&
        prom_is "slipway_pipeline_stage{pipeline=\"$P2\"}" 1 && prom_is "slipway_pipeline_stages{pipeline=\"$P2\"}" 2 &&
        t_wait_until 60 firing SlipwayPipelineFailed "$P2" && ! firing SlipwayPipelineFailed "$P1"; then
        t_ok
else
        t_fail "${out:-}: $($C pipeline status "${P2:-0}" 2>&1)"
fi
set_ratio 0.001

t_case "a manual approval: the pipeline waits, slipctl pipeline approve promotes"
pipeline_file manual tiny:1.0 "approval = yes" ""
if t_wait_until 90 settled && out=$($C pipeline start "$D/manual.conf" 2>&1) && P3=$(grep -o 'pipeline [0-9]*' <<<"$out" | cut -d' ' -f2) &&
        t_wait_until 90 phase_is "$P3" approval &&
        $C pipeline status "$P3" | grep -q "^Approval: *needed (slipctl pipeline approve $P3)" &&
        t_wait_until 60 prom_is "slipway_pipeline_phase{pipeline=\"$P3\",phase=\"approval\"}" 1 &&
        prom_is "slipway_pipeline_phase{pipeline=\"$P3\",phase=\"baking\"}" 0 &&
        sleep 1.5 && [ "$(state_of "$P3" .phase)" = approval ] && images_are "$ID1" "$ID1" "$ID2" "$ID2" &&
        out2=$($C pipeline approve "$P3") && [ "$out2" = "pipeline $P3: running, stage staging" ] &&
        t_wait_until 90 ended "$P3" && [ "$(state_of "$P3" .state)" = "done" ] &&
        [ "$(state_of "$P3" .stages[0].approved_by)" = ci ] && images_are "$ID1" "$ID1" "$ID1" "$ID1" &&
        curl -sf -H "Authorization: Bearer $TOKEN" "$URL/v1/audit?action=pipeline&limit=1000" |
        jq -e --arg t "pipeline $P3" '[.entries[] | select(.target == $t and .action == "pipeline.approve" and .actor == "ci")] | length == 1' >/dev/null &&
        ! $C pipeline approve "$P3" 2>/dev/null; then
        t_ok
else
        t_fail "${out:-} ${out2:-}: $($C pipeline status "${P3:-0}" 2>&1)"
fi

t_case "a command gate that fails stops the pipeline with its reason"
printf '[pipeline]\nname = cmd\nimage = tiny:2.0\n[stage staging]\nselector = env=staging\ncommand = false\n' >"$D/cmd.conf"
if t_wait_until 90 settled && out=$($C pipeline start "$D/cmd.conf" 2>&1) && P4=$(grep -o 'pipeline [0-9]*' <<<"$out" | cut -d' ' -f2) &&
        t_wait_until 90 ended "$P4" && [ "$(state_of "$P4" .state)" = failed ] &&
        [ "$(state_of "$P4" .reason)" = "stage staging: the command 'false' exited with status 1" ] &&
        images_are "$ID2" "$ID2" "$ID1" "$ID1"; then
        t_ok
else
        t_fail "${out:-}: $($C pipeline status "${P4:-0}" 2>&1)"
fi

t_case "slipwayd restarted mid-bake: the bake goes on from where it was"
pipeline_file restart tiny:2.0 "" ""
# Long enough for slipwayd to stop and start again on a slow machine
# within the bake.
sed -i 's/^bake = 3$/bake = 20/' "$D/restart.conf"
if t_wait_until 90 settled && out=$($C pipeline start "$D/restart.conf" 2>&1) && P5=$(grep -o 'pipeline [0-9]*' <<<"$out" | cut -d' ' -f2) &&
        t_wait_until 90 phase_is "$P5" baking && ends=$(state_of "$P5" .bake_ends) &&
        t_stop "$SRV" && start_server "$PORT" && [ "$(state_of "$P5" .state)" = running ] &&
        [ "$(state_of "$P5" .bake_ends)" = "$ends" ] && t_wait_until 120 ended "$P5" &&
        [ "$(state_of "$P5" .state)" = "done" ] && images_are "$ID2" "$ID2" "$ID2" "$ID2" &&
        promoted=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL/v1/audit?action=pipeline&limit=1000" |
                jq -r --arg t "pipeline $P5" '[.entries[] | select(.target == $t and .action == "pipeline.promote")][0].time') &&
        [ "$promoted" -ge "$ends" ]; then
        t_ok
else
        t_fail "${out:-}: $($C pipeline status "${P5:-0}" 2>&1) $(tail -5 "$D/srv.log")"
fi

t_case "a pipeline file that names no Prometheus queries slipwayd.conf's"
printf '[pipeline]\nname = conf\nimage = tiny:1.0\n[stage staging]\nselector = env=staging\nbake = 1\n%s\n%s\n' \
        'prometheus = min(slipway_instance_up)' 'condition = == 1' >"$D/conf.conf"
if t_wait_until 90 settled && out=$($C pipeline start "$D/conf.conf" 2>&1) && P7=$(grep -o 'pipeline [0-9]*' <<<"$out" | cut -d' ' -f2) &&
        [ "$(state_of "$P7" .spec.prometheus)" = "$PROM" ] && t_wait_until 90 ended "$P7" &&
        [ "$(state_of "$P7" .state)" = "done" ]; then
        t_ok
else
        t_fail "${out:-}: $($C pipeline status "${P7:-0}" 2>&1)"
fi

t_case "a stage's budget holds its hosts on their way, names itself, and leaves other hosts alone"
# The site has no budgets; the stage lets one env=staging host down. The
# staging hosts run tiny:1.0 (the last case's) and go to 2.0, silent while
# $D/hold is there: they stay assigned, on their way, however slowly the
# case runs. (Sent to the image they run, they would be done a tick later.)
printf '[pipeline]\nname = budget\nimage = tiny:2.0\n[stage staging]\nselector = env=staging\nbudget = env:1\n' \
        >"$D/budget.conf"
lease() {
        curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{}' "$URL/v1/hosts/$1/lease"
}
assigned() { [ "$($C --json rollout status "$1" | jq '[.waves[].assigned] | add')" = 2 ]; }
refusals() {
        curl -sf -H "Authorization: Bearer $TOKEN" "$URL/metrics" |
                sed -n 's/^slipway_lease_refusals_total{reason="rollout-budget"} //p'
}
touch "$D/hold"
t0=$(now_ms)
if t_wait_until 90 settled && images_are "$ID1" "$ID1" "$ID2" "$ID2" && out=$($C pipeline start "$D/budget.conf" 2>&1) &&
        P8=$(grep -o 'pipeline [0-9]*' <<<"$out" | cut -d' ' -f2) && R8=$(grep -o 'rollout [0-9]*' <<<"$out" | cut -d' ' -f2) &&
        t_wait_until 60 assigned "$R8" &&
        [ "$(lease "${H[0]}" | jq -r .granted)" = true ] && l1=$(lease "${H[1]}") &&
        [ "$(jq -r .granted <<<"$l1")" = false ] &&
        [ "$(jq -r .reason <<<"$l1")" = "group env=staging: 1 of 2 hosts are down and rollout $R8's budget max_unavailable 1 allows 1" ] &&
        [ "$(refusals)" = 1 ] && [ "$(lease "${H[2]}" | jq -r .granted)" = true ] &&
        [ "$($C --json rollout status "$R8" | jq -c '.budgets | map([.selector, .budget])')" = '[["env","max_unavailable 1"]]' ] &&
        st=$($C rollout status "$R8") && grep -q "budgets env: max 1 down" <<<"$st" && grep -q "^env=staging  *2 " <<<"$st"; then
        t_ok "$(($(now_ms) - t0)) ms"
else
        t_fail "${out:-} ${l1:-}: refusals $(refusals); $($C rollout status "${R8:-0}" 2>&1)"
fi
for h in "${H[0]}" "${H[2]}"; do curl -sf -o /dev/null -X DELETE -H "Authorization: Bearer $TOKEN" "$URL/v1/hosts/$h/lease"; done
rm -f "$D/hold"
t_wait_until 90 ended "${P8:-0}" || true

t_case "abort stops a pipeline; list and status show it; the file's Prometheus wins over slipwayd.conf's"
pipeline_file abort tiny:1.0 "approval = yes" ""
sed -i 's|^prometheus = http.*|prometheus = http://prometheus.invalid:9090|' "$D/abort.conf"
if t_wait_until 90 settled && out=$($C pipeline start "$D/abort.conf" 2>&1) && P6=$(grep -o 'pipeline [0-9]*' <<<"$out" | cut -d' ' -f2) &&
        out2=$($C pipeline abort "$P6") && grep -q "^pipeline $P6: aborted, stage staging: aborted by ci$" <<<"$out2" &&
        [ "$($C --json pipeline list | jq -r --argjson p "$P6" '.pipelines[] | select(.id == $p) | .state')" = aborted ] &&
        $C pipeline list | grep -q "^$P6 *abort *tiny:1.0 *aborted" &&
        [ "$(audit_actions "$P6")" = "pipeline.start pipeline.abort" ] &&
        ! $C pipeline abort "$P6" 2>/dev/null &&
        [ "$(state_of "$P6" .spec.prometheus)" = http://prometheus.invalid:9090 ]; then
        t_ok
else
        t_fail "${out:-} ${out2:-}: $($C pipeline list 2>&1)"
fi

t_case "every pipeline command is in --help and the man page"
help=$($C --help)
missing=""
for cmd in "pipeline start" "pipeline list" "pipeline status" "pipeline approve" "pipeline abort"; do
        grep -q "^  $cmd" <<<"$help" || missing="$missing help:'$cmd'"
        grep -q "^\.B $cmd" "$TOP/docs/man/slipctl.1" || missing="$missing man:'$cmd'"
done
if [ -z "$missing" ]; then t_ok; else t_fail "missing$missing"; fi

stop_all
t_end
