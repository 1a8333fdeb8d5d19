/* /metrics in Prometheus text format, and /v1/status. */
#include <inttypes.h>

#include "routes.h"
#include "server.h"
#include "leader.h"
#include "store-instances.h"
#include "store-stats.h"
#include "util.h"
#include "webhooks.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif

/* Writes metric{label=...} N for each count. */
static void gauge_by(FILE *f, const char *metric, const char *label, const StatsCount *l, size_t n) {
        for (size_t k = 0; k < n; k++) {
                _cleanup_free_ char *esc = json_escape_string(l[k].key);
                /* A JSON string literal is a valid Prometheus label value. */
                fprintf(f, "%s{%s=%s} %lld\n", metric, label, esc ? esc : "\"\"", (long long) l[k].n);
        }
}

/* This instance's metrics and the registry's: the info, whether it leads,
 * how often that changed, and each registered instance up or stale. */
static void instances_print(FILE *f, const Leader *lead, const Instance *l, size_t n) {
        if (lead) {
                _cleanup_free_ char *name = json_escape_string(leader_name(lead));

                fprintf(f,
                        "# HELP slipway_instance_info This instance: its name and version.\n"
                        "# TYPE slipway_instance_info gauge\nslipway_instance_info{instance=%s,version=\"%s\"} 1\n"
                        "# HELP slipway_coordinator_leader 1 while this instance coordinates, else 0.\n"
                        "# TYPE slipway_coordinator_leader gauge\nslipway_coordinator_leader %d\n"
                        "# HELP slipway_coordinator_leader_changes_total Times this instance took or lost the "
                        "coordinator's lease.\n"
                        "# TYPE slipway_coordinator_leader_changes_total counter\n"
                        "slipway_coordinator_leader_changes_total %" PRIu64 "\n",
                        name ? name : "\"\"", SLIPWAY_VERSION, leader_leading(lead) ? 1 : 0, leader_changes(lead));
        }
        fputs("# HELP slipway_instance_up The registered instances: 1 while one beats, 0 once it is stale.\n"
              "# TYPE slipway_instance_up gauge\n",
              f);
        for (size_t k = 0; k < n; k++) {
                _cleanup_free_ char *esc = json_escape_string(l[k].name);
                fprintf(f, "slipway_instance_up{instance=%s} %d\n", esc ? esc : "\"\"",
                        l[k].heartbeat_age > INSTANCE_STALE_MS ? 0 : 1);
        }
}

static enum MHD_Result handle_metrics(Request *req) {
        Metrics *m = &req->server->metrics;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        const Leader *lead = req->server->leader;
        FleetStats st = {};
        Instance *inst = NULL;
        size_t n_inst = 0;
        FILE *f;
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_stats_read(tx, true, &st);
        if (r >= 0)
                r = store_instance_list(tx, &inst, &n_inst);
        store_tx_rollback(&tx);
        /* A scrape of half the gauges would read as hosts gone: none at all. */
        if (r < 0) {
                fleet_stats_release(&st);
                return reply_errno(req, r, "metrics");
        }
        f = open_memstream(&text, &size);
        if (!f) {
                fleet_stats_release(&st);
                instance_list_free(inst, n_inst);
                return MHD_NO;
        }
        instances_print(f, lead, inst, n_inst);
        instance_list_free(inst, n_inst);
        fputs("# HELP slipway_hosts Hosts by state.\n# TYPE slipway_hosts gauge\n", f);
        gauge_by(f, "slipway_hosts", "state", st.by_state, st.n_by_state);
        fputs("# HELP slipway_hosts_by_version Hosts by the image version they run.\n"
              "# TYPE slipway_hosts_by_version gauge\n",
              f);
        gauge_by(f, "slipway_hosts_by_version", "version", st.by_version, st.n_by_version);
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
