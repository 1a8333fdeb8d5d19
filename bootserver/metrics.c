/* /metrics in Prometheus text format, and /v1/status. */
#include "server.h"
#include "util.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif

static void gauge_by(FILE *f, sqlite3 *db, const char *metric, const char *label, const char *sql) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (db_prepare(db, sql, &st) < 0)
                return;
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *v = (const char *) sqlite3_column_text(st, 0);
                _cleanup_free_ char *esc = json_escape_string(v ? v : "");
                /* A JSON string literal is a valid Prometheus label value. */
                fprintf(f, "%s{%s=%s} %lld\n", metric, label, esc ? esc : "\"\"", sqlite3_column_int64(st, 1));
        }
}

static long long count(sqlite3 *db, const char *sql) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (db_prepare(db, sql, &st) < 0 || sqlite3_step(st) != SQLITE_ROW)
                return 0;
        return sqlite3_column_int64(st, 0);
}

enum MHD_Result handle_metrics(Request *req) {
        Metrics *m = &req->server->metrics;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        sqlite3 *db;
        FILE *f;

        f = open_memstream(&text, &size);
        if (!f)
                return MHD_NO;
        fputs("# HELP slipway_hosts Hosts by state.\n# TYPE slipway_hosts gauge\n", f);
        db = db_lock(req->server->db);
        gauge_by(f, db, "slipway_hosts", "state", "SELECT state, count(*) FROM hosts GROUP BY state ORDER BY state");
        fputs("# HELP slipway_hosts_by_version Hosts by the image version they run.\n"
              "# TYPE slipway_hosts_by_version gauge\n",
              f);
        gauge_by(f, db, "slipway_hosts_by_version", "version",
                 "SELECT coalesce(version, ''), count(*) FROM hosts GROUP BY 1 ORDER BY 1");
        fprintf(f, "# HELP slipway_images Published images.\n# TYPE slipway_images gauge\nslipway_images %lld\n",
                count(db, "SELECT count(*) FROM images"));
        fprintf(f, "# HELP slipway_blobs_bytes Bytes of blobs stored.\n# TYPE slipway_blobs_bytes gauge\n"
                   "slipway_blobs_bytes %lld\n",
                count(db, "SELECT coalesce(sum(size), 0) FROM blobs"));
        db_unlock(req->server->db);

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
        if (fclose(f) != 0)
                return MHD_NO;
        return reply_text(req, 200, "text/plain; version=0.0.4", text);
}

enum MHD_Result handle_status(Request *req) {
        long long images, hosts;
        sqlite3 *db;

        db = db_lock(req->server->db);
        images = count(db, "SELECT count(*) FROM images");
        hosts = count(db, "SELECT count(*) FROM hosts");
        db_unlock(req->server->db);
        return reply_json(req, 200,
                          json_pack("{s:s, s:I, s:I, s:I}", "version", SLIPWAY_VERSION, "images", (json_int_t) images,
                                    "hosts", (json_int_t) hosts, "uptime_sec",
                                    (json_int_t) ((now_usec() - req->server->started_usec) / 1000000)));
}
