/* /metrics in Prometheus text format, and /v1/status. */
#include <inttypes.h>

#include "api-leases.h"
#include "coordinator.h"
#include "json.h"
#include "routes.h"
#include "server.h"
#include "leader.h"
#include "metrics-text.h"
#include "store-instances.h"
#include "store-stats.h"
#include "util.h"
#include "webhooks.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif

/* "# HELP" and "# TYPE" of a metric: printed also when it has no sample,
 * so that a scrape names every metric there is. */
static void family(FILE *f, const char *metric, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
}

/* Writes metric{label="key"} N for each count. */
static void counts_put(FILE *f, const char *metric, const char *label, const StatsCount *l, size_t n) {
        for (size_t k = 0; k < n; k++) {
                fprintf(f, "%s{%s=", metric, label);
                metrics_label_put(f, l[k].key);
                fprintf(f, "} %lld\n", (long long) l[k].n);
        }
}

/* Writes metric{rollout="id"[,label="value"]} n. */
static void rollout_put(FILE *f, const char *metric, int64_t id, const char *label, const char *value, int64_t n) {
        fprintf(f, "%s{rollout=\"%lld\"", metric, (long long) id);
        if (label) {
                fprintf(f, ",%s=", label);
                metrics_label_put(f, value);
        }
        fprintf(f, "} %lld\n", (long long) n);
}

/* Writes metric{group="key=value"} n. */
static void group_put(FILE *f, const char *metric, const char *group, int64_t n) {
        fprintf(f, "%s{group=", metric);
        metrics_label_put(f, group);
        fprintf(f, "} %lld\n", (long long) n);
}

static const char *const rollout_states[] = { "running", "paused", "done", "aborted" };
static const char *const rollout_statuses[] = { "pending", "assigned", "done", "failed", "skipped" };

/* Each reboot window of a rollout's stored spec, open (1) or not at now. */
static void windows_put(FILE *f, const StatsRollout *ro, uint64_t now) {
        json_t *spec = json_loads(ro->spec, 0, NULL), *v;
        const char *sel;

        json_object_foreach(json_object_get(spec, "windows"), sel, v) {
                int start, end;

                if (window_parse(json_string_value(v), &start, &end) < 0)
                        continue;
                fprintf(f, "slipway_rollout_window_open{rollout=\"%lld\",selector=", (long long) ro->id);
                metrics_label_put(f, sel);
                fprintf(f, "} %d\n", window_wait(start, end, now) == 0 ? 1 : 0);
        }
        json_decref(spec);
}

static const char *const pipeline_states[] = { "running", "done", "failed", "aborted" };
static const char *const pipeline_phases[] = { "rolling", "baking", "approval" };

/* Writes metric{pipeline="id"[,label="value"]} n. */
static void pipeline_put(FILE *f, const char *metric, int64_t id, const char *label, const char *value, int64_t n) {
        fprintf(f, "%s{pipeline=\"%lld\"", metric, (long long) id);
        if (label) {
                fprintf(f, ",%s=", label);
                metrics_label_put(f, value);
        }
        fprintf(f, "} %lld\n", (long long) n);
}

/* The running pipelines and those that finished within a day: what each
 * is, its stage of its stages, its state and, while it runs, its phase. */
static void pipelines_print(FILE *f, const OpsStats *o) {
        family(f, "slipway_pipeline_info", "gauge",
               "Each running pipeline, and each that finished within a day (always 1): its name, image and "
               "current stage's name.");
        for (size_t k = 0; k < o->n_pipelines; k++) {
                const StatsPipeline *p = &o->pipelines[k];
                _cleanup_json_ json_t *spec = json_loads(p->spec, 0, NULL);
                json_t *stage = json_array_get(json_object_get(spec, "stages"), (size_t) p->stage);

                fprintf(f, "slipway_pipeline_info{pipeline=\"%lld\",name=", (long long) p->id);
                metrics_label_put(f, p->name);
                fputs(",image=", f);
                metrics_label_put(f, p->image);
                fputs(",stage=", f);
                metrics_label_put(f, json_string_value(json_object_get(stage, "name")));
                fputs("} 1\n", f);
        }
        family(f, "slipway_pipeline_stage", "gauge", "The current stage of a pipeline (from 1).");
        for (size_t k = 0; k < o->n_pipelines; k++)
                pipeline_put(f, "slipway_pipeline_stage", o->pipelines[k].id, NULL, NULL, o->pipelines[k].stage + 1);
        family(f, "slipway_pipeline_stages", "gauge", "The stages of a pipeline.");
        for (size_t k = 0; k < o->n_pipelines; k++) {
                _cleanup_json_ json_t *spec = json_loads(o->pipelines[k].spec, 0, NULL);

                pipeline_put(f, "slipway_pipeline_stages", o->pipelines[k].id, NULL, NULL,
                             (int64_t) json_array_size(json_object_get(spec, "stages")));
        }
        family(f, "slipway_pipeline_state", "gauge",
               "1 for the state a pipeline is in (running, done, failed, aborted), 0 for the others.");
        for (size_t k = 0; k < o->n_pipelines; k++)
                for (size_t j = 0; j < ELEMENTSOF(pipeline_states); j++)
                        pipeline_put(f, "slipway_pipeline_state", o->pipelines[k].id, "state", pipeline_states[j],
                                     streq(o->pipelines[k].state, pipeline_states[j]));
        family(f, "slipway_pipeline_phase", "gauge",
               "1 for the phase a running pipeline's stage is in (rolling, baking, approval), 0 for the others.");
        for (size_t k = 0; k < o->n_pipelines; k++) {
                const StatsPipeline *p = &o->pipelines[k];

                if (!streq(p->state, "running"))
                        continue;
                for (size_t j = 0; j < ELEMENTSOF(pipeline_phases); j++)
                        pipeline_put(f, "slipway_pipeline_phase", p->id, "phase", pipeline_phases[j],
                                     streq(p->phase, pipeline_phases[j]));
        }
}

/* The rollouts, budgets, leases and hosts operators alert on, from the
 * store (the same on every instance), and this instance's lease requests
 * that wait and were refused. */
static void ops_print(FILE *f, const FleetStats *st, const OpsStats *o, const StatsCount *waiting, size_t n_waiting,
                      const uint64_t *blocked, const Metrics *m, uint64_t now) {
        family(f, "slipway_leases_held", "gauge", "Hosts holding a reboot lease.");
        fprintf(f, "slipway_leases_held %lld\n", (long long) st->leases);
        family(f, "slipway_hosts_quarantined", "gauge",
               "Hosts quarantined: a lease expired without a healthy report.");
        fprintf(f, "slipway_hosts_quarantined %lld\n", (long long) st->quarantined);
        family(f, "slipway_hosts_silent", "gauge", "Hosts with an agent that did not check in within the heartbeat timeout.");
        fprintf(f, "slipway_hosts_silent %lld\n", (long long) o->silent);
        family(f, "slipway_last_checkin_timestamp_seconds", "gauge",
               "When an agent last checked in (the newest of all hosts; 0 before the first).");
        fprintf(f, "slipway_last_checkin_timestamp_seconds %lld\n", (long long) st->last_seen);
        family(f, "slipway_hosts_health_failed", "gauge",
               "Hosts failing on an image: unhealthy on it, or rolled back or failed from it.");
        counts_put(f, "slipway_hosts_health_failed", "image", st->health_failed, st->n_health_failed);

        family(f, "slipway_rollouts", "gauge", "Rollouts by state.");
        for (size_t k = 0; k < ELEMENTSOF(rollout_states); k++) {
                const StatsCount *c = NULL;
                for (size_t j = 0; !c && j < o->n_rollouts; j++)
                        if (streq(o->rollouts[j].key, rollout_states[k]))
                                c = &o->rollouts[j];
                fprintf(f, "slipway_rollouts{state=\"%s\"} %lld\n", rollout_states[k], c ? (long long) c->n : 0LL);
        }
        family(f, "slipway_rollout_info", "gauge", "Each running or paused rollout (always 1): its kind, image and state.");
        for (size_t k = 0; k < o->n_active; k++) {
                const StatsRollout *ro = &o->active[k];
                _cleanup_json_ json_t *spec = json_loads(ro->spec, 0, NULL);

                fprintf(f, "slipway_rollout_info{rollout=\"%lld\",kind=", (long long) ro->id);
                metrics_label_put(f, ro->kind);
                fputs(",image=", f);
                metrics_label_put(f, json_string_value(json_object_get(spec, "image")));
                fputs(",state=", f);
                metrics_label_put(f, ro->state);
                fputs("} 1\n", f);
        }
        family(f, "slipway_rollout_paused", "gauge", "1 while a running or paused rollout is paused, else 0.");
        for (size_t k = 0; k < o->n_active; k++)
                rollout_put(f, "slipway_rollout_paused", o->active[k].id, NULL, NULL,
                            streq(o->active[k].state, "paused"));
        family(f, "slipway_rollout_wave", "gauge", "The current wave of a running or paused rollout (from 1).");
        for (size_t k = 0; k < o->n_active; k++)
                rollout_put(f, "slipway_rollout_wave", o->active[k].id, NULL, NULL, o->active[k].wave);
        family(f, "slipway_rollout_waves", "gauge", "The waves of a running or paused rollout.");
        for (size_t k = 0; k < o->n_active; k++)
                rollout_put(f, "slipway_rollout_waves", o->active[k].id, NULL, NULL, o->active[k].n_waves);
        family(f, "slipway_rollout_hosts", "gauge", "The hosts of a running or paused rollout by status.");
        for (size_t k = 0; k < o->n_active; k++) {
                const StatsRollout *ro = &o->active[k];
                const int64_t n[] = { ro->pending, ro->assigned, ro->done, ro->failed, ro->skipped };

                for (size_t j = 0; j < ELEMENTSOF(rollout_statuses); j++)
                        rollout_put(f, "slipway_rollout_hosts", ro->id, "status", rollout_statuses[j], n[j]);
        }
        family(f, "slipway_rollout_window_open", "gauge",
               "1 while a reboot window of a running or paused rollout is open, else 0.");
        for (size_t k = 0; k < o->n_active; k++)
                windows_put(f, &o->active[k], now);

        pipelines_print(f, o);

        family(f, "slipway_group_hosts", "gauge", "The members of a budgeted group.");
        for (size_t k = 0; k < o->n_groups; k++)
                group_put(f, "slipway_group_hosts", o->groups[k].group, o->groups[k].members);
        family(f, "slipway_group_down", "gauge",
               "The members of a budgeted group that count as down: leased, quarantined, unhealthy or silent.");
        for (size_t k = 0; k < o->n_groups; k++)
                group_put(f, "slipway_group_down", o->groups[k].group, o->groups[k].held + o->groups[k].silent);
        family(f, "slipway_group_down_allowed", "gauge", "How many members of a budgeted group its budget lets be down.");
        for (size_t k = 0; k < o->n_groups; k++) {
                const StatsGroup *g = &o->groups[k];
                const Budget b = { .max_unavailable = g->max_unavailable,
                                   .max_unavailable_pct = g->max_unavailable_pct,
                                   .min_available = g->min_available };

                group_put(f, "slipway_group_down_allowed", g->group, budget_allowed(&b, g->members));
        }
        family(f, "slipway_group_leases_held", "gauge", "The members of a budgeted group holding a reboot lease.");
        for (size_t k = 0; k < o->n_groups; k++)
                group_put(f, "slipway_group_leases_held", o->groups[k].group, o->groups[k].leases);

        family(f, "slipway_lease_waiting", "gauge",
               "Lease requests this instance holds waiting, by the group that refused them last (none: no group).");
        counts_put(f, "slipway_lease_waiting", "group", waiting, n_waiting);
        family(f, "slipway_hosts_blocked", "gauge",
               "Lease requests this instance holds waiting, by the reason of their last refusal.");
        for (LeaseRefusal k = LEASE_REFUSAL_NONE + 1; k < _LEASE_REFUSAL_MAX; k++)
                fprintf(f, "slipway_hosts_blocked{reason=\"%s\"} %llu\n", lease_refusal_to_string(k),
                        (unsigned long long) blocked[k]);
        family(f, "slipway_lease_refusals_total", "counter", "Lease requests this instance refused, by reason.");
        for (LeaseRefusal k = LEASE_REFUSAL_NONE + 1; k < _LEASE_REFUSAL_MAX; k++)
                fprintf(f, "slipway_lease_refusals_total{reason=\"%s\"} %lu\n", lease_refusal_to_string(k),
                        atomic_load(&m->lease_refusals[k]));
}

/* This instance's metrics and the registry's: the info, whether it leads,
 * how often that changed, and each registered instance up or stale. */
static void instances_print(FILE *f, const Leader *lead, const Instance *l, size_t n) {
        if (lead) {
                fputs("# HELP slipway_instance_info This instance: its name and version.\n"
                      "# TYPE slipway_instance_info gauge\nslipway_instance_info{instance=",
                      f);
                metrics_label_put(f, leader_name(lead));
                fprintf(f,
                        ",version=\"%s\"} 1\n"
                        "# HELP slipway_coordinator_leader 1 while this instance coordinates, else 0.\n"
                        "# TYPE slipway_coordinator_leader gauge\nslipway_coordinator_leader %d\n"
                        "# HELP slipway_coordinator_leader_changes_total Times this instance took or lost the "
                        "coordinator's lease.\n"
                        "# TYPE slipway_coordinator_leader_changes_total counter\n"
                        "slipway_coordinator_leader_changes_total %" PRIu64 "\n",
                        SLIPWAY_VERSION, leader_leading(lead) ? 1 : 0, leader_changes(lead));
        }
        fputs("# HELP slipway_instance_up The registered instances: 1 while one beats, 0 once it is stale.\n"
              "# TYPE slipway_instance_up gauge\n",
              f);
        for (size_t k = 0; k < n; k++) {
                fputs("slipway_instance_up{instance=", f);
                metrics_label_put(f, l[k].name);
                fprintf(f, "} %d\n", l[k].heartbeat_age > INSTANCE_STALE_MS ? 0 : 1);
        }
}

static enum MHD_Result handle_metrics(Request *req) {
        Metrics *m = &req->server->metrics;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        const Leader *lead = req->server->leader;
        CoordConfig cc = server_coord_config(req->server);
        FleetStats st = {};
        OpsStats ops = {};
        StatsCount *waiting = NULL;
        uint64_t blocked[_LEASE_REFUSAL_MAX];
        Instance *inst = NULL;
        size_t n_inst = 0, n_waiting = 0;
        FILE *f;
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_stats_read(tx, true, &st);
        if (r >= 0)
                r = store_stats_ops_read(tx, req->now, cc.heartbeat_timeout, &ops);
        if (r >= 0)
                r = store_instance_list(tx, &inst, &n_inst);
        store_tx_rollback(&tx);
        if (r >= 0)
                r = lease_waiters_count(req->server, &waiting, &n_waiting, blocked);
        /* A scrape of half the gauges would read as hosts gone: none at all. */
        if (r < 0) {
                fleet_stats_release(&st);
                ops_stats_release(&ops);
                instance_list_free(inst, n_inst);
                return reply_errno(req, r, "metrics");
        }
        f = open_memstream(&text, &size);
        if (!f) {
                fleet_stats_release(&st);
                ops_stats_release(&ops);
                instance_list_free(inst, n_inst);
                stats_counts_free(waiting, n_waiting);
                return MHD_NO;
        }
        instances_print(f, lead, inst, n_inst);
        instance_list_free(inst, n_inst);
        ops_print(f, &st, &ops, waiting, n_waiting, blocked, m, req->now);
        ops_stats_release(&ops);
        stats_counts_free(waiting, n_waiting);
        fputs("# HELP slipway_hosts Hosts by state.\n# TYPE slipway_hosts gauge\n", f);
        counts_put(f, "slipway_hosts", "state", st.by_state, st.n_by_state);
        fputs("# HELP slipway_hosts_by_version Hosts by the image version they run.\n"
              "# TYPE slipway_hosts_by_version gauge\n",
              f);
        counts_put(f, "slipway_hosts_by_version", "version", st.by_version, st.n_by_version);
        fprintf(f, "# HELP slipway_images Published images.\n# TYPE slipway_images gauge\nslipway_images %lld\n",
                (long long) st.images);
        fprintf(f, "# HELP slipway_blobs_bytes Bytes of blobs stored.\n# TYPE slipway_blobs_bytes gauge\n"
                   "slipway_blobs_bytes %lld\n",
                (long long) st.blob_bytes);
        fleet_stats_release(&st);

        fputs("# HELP slipway_http_requests_total Requests answered, by status code.\n"
              "# TYPE slipway_http_requests_total counter\n",
              f);
        for (unsigned c = 100; c < 600; c++) {
                unsigned long n = atomic_load(&m->by_code[c]);
                if (n > 0)
                        fprintf(f, "slipway_http_requests_total{code=\"%u\"} %lu\n", c, n);
        }
        fputs("# HELP slipway_http_errors_total Error replies, by kind.\n# TYPE slipway_http_errors_total counter\n", f);
        for (unsigned k = 0; k < _KIND_MAX; k++)
                fprintf(f, "slipway_http_errors_total{kind=\"%s\"} %lu\n", error_kind_to_string(k),
                        atomic_load(&m->errors[k]));
        fprintf(f,
                "# HELP slipway_blob_bytes_served_total Blob bytes sent to clients.\n"
                "# TYPE slipway_blob_bytes_served_total counter\nslipway_blob_bytes_served_total %llu\n"
                "# HELP slipway_blob_requests_total Blob downloads started.\n"
                "# TYPE slipway_blob_requests_total counter\nslipway_blob_requests_total %lu\n"
                "# HELP slipway_checkins_total Agent check-ins.\n"
                "# TYPE slipway_checkins_total counter\nslipway_checkins_total %lu\n",
                atomic_load(&m->blob_bytes), atomic_load(&m->blob_requests), atomic_load(&m->checkins));
        fprintf(f,
                "# HELP slipway_coordinator_tick_seconds Time of the coordinator's ticks on this instance while "
                "it leads (expiries and rollouts, each in its transactions).\n"
                "# TYPE slipway_coordinator_tick_seconds summary\n"
                "slipway_coordinator_tick_seconds_sum %.6f\nslipway_coordinator_tick_seconds_count %lu\n"
                "# HELP slipway_coordinator_tick_seconds_max The longest of those ticks since the start.\n"
                "# TYPE slipway_coordinator_tick_seconds_max gauge\nslipway_coordinator_tick_seconds_max %.6f\n",
                (double) atomic_load(&m->tick_usec_sum) / 1e6, atomic_load(&m->ticks),
                (double) atomic_load(&m->tick_usec_max) / 1e6);
        webhooks_metrics_write(req->server->webhooks, f);
        if (fclose(f) != 0)
                return MHD_NO;
        return reply_text(req, 200, "text/plain; version=0.0.4", text);
}

static enum MHD_Result handle_status(Request *req) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        FleetStats st = {};
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_stats_read(tx, false, &st);
        store_tx_rollback(&tx);
        if (r < 0)
                return reply_errno(req, r, "status");
        return reply_json(req, 200,
                          json_pack("{s:s, s:I, s:I, s:I}", "version", SLIPWAY_VERSION, "images", (json_int_t) st.images,
                                    "hosts", (json_int_t) st.hosts, "uptime_sec",
                                    (json_int_t) ((now_usec() - req->server->started_usec) / 1000000)));
}

const Route metrics_routes[] = {
        { "GET", "v1/status", AUTH_PUBLIC, BODY_NONE, handle_status },
        { "GET", "metrics", AUTH_PUBLIC, BODY_NONE, handle_metrics },
        {},
};
