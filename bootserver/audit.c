#include <time.h>

#include "audit.h"
#include "server.h"
#include "util.h"
#include "store-sqlite.h"

int audit_log(StoreTx *tx, const char *actor, const char *action, const char *target, json_t *detail) {
        sqlite3 *s = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *d = NULL;
        int r;

        if (detail) {
                d = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
                if (!d)
                        return -ENOMEM;
        }
        r = db_prepare(s, "INSERT INTO audit (time, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, (sqlite3_int64) time(NULL));
        sqlite3_bind_text(st, 2, actor ? actor : "system", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, target, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, d, -1, SQLITE_STATIC);
        return db_step(st);
}

static enum MHD_Result handle_audit(Request *req) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const char *since_s = request_arg(req, "since"), *limit_s = request_arg(req, "limit");
        const char *action = request_arg(req, "action"), *last_s = request_arg(req, "last");
        uint64_t since = 0, limit = 1000, last = 0;
        json_t *entries;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        if (since_s && safe_atou64(since_s, &since) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'since': not a non-negative integer: \"%s\"", since_s);
        if (limit_s && (safe_atou64(limit_s, &limit) < 0 || limit == 0 || limit > 1000))
                return reply_error(req, KIND_INVALID_VALUE, "'limit': expected 1..1000, got \"%s\"", limit_s);
        if (last_s && (safe_atou64(last_s, &last) < 0 || last == 0 || last > 1000))
                return reply_error(req, KIND_INVALID_VALUE, "'last': expected 1..1000, got \"%s\"", last_s);
        entries = json_array();
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = db_prepare(store_tx_sqlite(tx),
                       "SELECT * FROM (SELECT id, time, actor, action, target, detail FROM audit WHERE id > ?1 "
                       "AND (?3 IS NULL OR action = ?3 OR action LIKE ?3 || '.%') ORDER BY id * ?4 LIMIT ?2) "
                       "ORDER BY id",
                       &st);
        if (r >= 0) {
                sqlite3_bind_int64(st, 1, (sqlite3_int64) since);
                sqlite3_bind_int64(st, 2, (sqlite3_int64) limit);
                sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
                /* ?last=N: the newest N, still returned oldest first */
                sqlite3_bind_int(st, 4, last ? -1 : 1);
                if (last)
                        sqlite3_bind_int64(st, 2, (sqlite3_int64) last);
                while ((r = db_step(st)) > 0) {
                        const char *d = (const char *) sqlite3_column_text(st, 5);
                        json_t *detail = d ? json_loads(d, 0, NULL) : NULL;
                        json_t *e = json_pack("{s:I, s:I, s:s, s:s, s:s?, s:o}", "id",
                                              (json_int_t) sqlite3_column_int64(st, 0), "time",
                                              (json_int_t) sqlite3_column_int64(st, 1), "actor",
                                              (const char *) sqlite3_column_text(st, 2), "action",
                                              (const char *) sqlite3_column_text(st, 3), "target",
                                              (const char *) sqlite3_column_text(st, 4), "detail",
                                              detail ? detail : json_null());
                        json_array_append_new(entries, e);
                }
        }
        store_tx_rollback(&tx);
        if (r < 0) {
                json_decref(entries);
                return reply_errno(req, r, "audit log");
        }
        return reply_json(req, 200, json_pack("{s:o}", "entries", entries));
}

const Route audit_routes[] = {
        { "GET", "v1/audit", AUTH_ADMIN, BODY_NONE, handle_audit },
        {},
};
