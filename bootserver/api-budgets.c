/* The budgets' HTTP API (docs/api.md, "Budgets"): how many hosts of a
 * group may be down at once. The coordinator keeps and applies them. */
#include <time.h>

#include "coordinator.h"
#include "routes.h"
#include "server.h"
#include "util.h"

static enum MHD_Result handle_budgets_list(Request *req) {
        json_t *l = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;

        l = store_tx_begin(req->server->store, STORE_TX_READ, &tx) >= 0 ? coord_budgets_json(tx) : NULL;
        store_tx_rollback(&tx);
        if (!l)
                return reply_errno(req, -EIO, "budgets");
        return reply_json(req, 200, json_pack("{s:o}", "budgets", l));
}

/* coord_budget_set() in a transaction of its own, ended before the reply
 * reads the budgets in another. */
static int budget_set(Request *req, const Budget *b) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = coord_budget_set(tx, b, req->now, req->actor);
        if (r >= 0)
                r = store_tx_commit(&tx);
        return r;
}

static enum MHD_Result handle_budget_put(Request *req) {
        static const char *const allowed[] = { "max_unavailable", "min_available", NULL };
        enum MHD_Result result;
        Budget b = { .selector = req->args[0], .max_unavailable = -1, .max_unavailable_pct = -1, .min_available = -1 };
        json_t *body, *mu, *ma;
        int r;

        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        mu = json_object_get(body, "max_unavailable");
        ma = json_object_get(body, "min_available");
        if (!!mu == !!ma) {
                json_decref(body);
                return reply_error(req, KIND_INVALID_VALUE, "give either 'max_unavailable' or 'min_available'");
        }
        if (mu)
                r = budget_parse_json(mu, &b.max_unavailable, &b.max_unavailable_pct);
        else {
                r = json_is_integer(ma) && json_integer_value(ma) >= 0 ? 0 : -EINVAL;
                b.min_available = r >= 0 ? json_integer_value(ma) : -1;
        }
        json_decref(body);
        if (r < 0)
                return reply_error(req, KIND_INVALID_VALUE, "expected a count, a percentage (\"10%%\") or, for "
                                                            "min_available, a count");
        r = budget_set(req, &b);
        if (r == -EINVAL)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a label key or KEY=VALUE group", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "budget");
        return handle_budgets_list(req);
}

static enum MHD_Result handle_budget_delete(Request *req) {
        int r;

        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = coord_budget_delete(tx, req->args[0], req->now, req->actor);
        if (r >= 0)
                r = store_tx_commit(&tx);
        store_tx_rollback(&tx);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "budget '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "budget");
        return reply_json(req, 200, json_pack("{s:s}", "deleted", req->args[0]));
}

const Route budget_routes[] = {
        { "GET", "v1/budgets", AUTH_VIEWER, BODY_NONE, handle_budgets_list },
        { "PUT", "v1/budgets/*", AUTH_OPERATOR, BODY_JSON, handle_budget_put },
        { "DELETE", "v1/budgets/*", AUTH_OPERATOR, BODY_NONE, handle_budget_delete },
        {},
};
