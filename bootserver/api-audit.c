/* GET /v1/audit: the audit log, filtered and paged (docs/api.md). */
#include "routes.h"
#include "server.h"
#include "store-audit.h"
#include "util.h"

static json_t *entry_to_json(const AuditEntry *e) {
        json_t *detail = e->detail ? json_loads(e->detail, 0, NULL) : NULL;

        return json_pack("{s:I, s:I, s:s, s:s, s:s?, s:o}", "id", (json_int_t) e->id, "time", (json_int_t) e->time,
                         "actor", e->actor, "action", e->action, "target", e->target, "detail",
                         detail ? detail : json_null());
}

static enum MHD_Result handle_audit(Request *req) {
        const char *since_s = request_arg(req, "since"), *limit_s = request_arg(req, "limit");
        const char *last_s = request_arg(req, "last");
        AuditQuery q = { .limit = 1000, .action = request_arg(req, "action"), .target = request_arg(req, "target") };
        _cleanup_store_tx_ StoreTx *tx = NULL;
        AuditEntry *l = NULL;
        size_t n = 0;
        json_t *entries;
        int r;

        if (since_s && safe_atou64(since_s, &q.since) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'since': not a non-negative integer: \"%s\"", since_s);
        if (limit_s && (safe_atou64(limit_s, &q.limit) < 0 || q.limit == 0 || q.limit > 1000))
                return reply_error(req, KIND_INVALID_VALUE, "'limit': expected 1..1000, got \"%s\"", limit_s);
        if (last_s && (safe_atou64(last_s, &q.last) < 0 || q.last == 0 || q.last > 1000))
                return reply_error(req, KIND_INVALID_VALUE, "'last': expected 1..1000, got \"%s\"", last_s);
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_audit_list(tx, &q, &l, &n);
        store_tx_rollback(&tx);
        if (r < 0)
                return reply_errno(req, r, "audit log");
        entries = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(entries, entry_to_json(&l[i]));
        audit_entries_free(l, n);
        return reply_json(req, 200, json_pack("{s:o}", "entries", entries));
}

const Route audit_routes[] = {
        { "GET", "v1/audit", AUTH_VIEWER, BODY_NONE, handle_audit },
        {},
};
