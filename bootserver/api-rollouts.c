/* The rollouts' HTTP API (docs/api.md, "Rollouts"): plan, start, list,
 * show, and pause, resume, abort or roll back. The rollouts themselves are
 * rollout.c's and rollout-plan.c's, through the coordinator. */
#include <time.h>

#include "api-leases.h"
#include "coordinator.h"
#include "routes.h"
#include "server.h"
#include "util.h"

static enum MHD_Result reply_coord_error(Request *req, int r, char *error) {
        enum MHD_Result res;

        if (r == -EINVAL)
                res = reply_error(req, KIND_INVALID_VALUE, "%s", strempty(error));
        else if (r == -ENXIO || r == -ENOENT)
                res = reply_error(req, KIND_NOT_FOUND, "%s", error ? error : "rollout: not found");
        else if (r == -EBUSY)
                res = reply_error(req, KIND_CONFLICT, "%s", strempty(error));
        else
                res = reply_errno(req, r, "rollout");
        free(error);
        return res;
}

static enum MHD_Result handle_rollout_plan(Request *req) {
        enum MHD_Result result;
        CoordConfig cc = server_coord_config(req->server);
        json_t *spec, *plan = NULL;
        char *error = NULL;
        int r;

        spec = request_json(req, NULL, &result);
        if (!spec)
                return result;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = coord_rollout_plan(tx, &cc, spec, 60, &plan, &error);
        store_tx_rollback(&tx);
        json_decref(spec);
        if (r < 0)
                return reply_coord_error(req, r, error);
        return reply_json(req, 200, plan);
}

static enum MHD_Result handle_rollout_start(Request *req) {
        enum MHD_Result result;
        CoordConfig cc = server_coord_config(req->server);
        json_t *spec, *ro = NULL;
        char *error = NULL;
        int64_t id = 0;
        int r;

        spec = request_json(req, NULL, &result);
        if (!spec)
                return result;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = coord_rollout_start(tx, &cc, spec, req->actor, req->now, &id, &error);
        /* Its first wave is assigned at once; the other rollouts are the
         * tick's, and none of theirs can refuse this one. */
        if (r >= 0)
                r = coord_rollout_tick(tx, &cc, id, req->now);
        if (r >= 0)
                r = coord_rollout_json(tx, &cc, id, req->now, &ro);
        if (r >= 0)
                r = store_tx_commit(&tx);
        store_tx_rollback(&tx);
        json_decref(spec);
        if (r < 0) {
                json_decref(ro);
                return reply_coord_error(req, r, error);
        }
        return reply_json(req, 201, ro);
}

static enum MHD_Result handle_rollouts_list(Request *req) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *l = store_tx_begin(req->server->store, STORE_TX_READ, &tx) >= 0 ? coord_rollouts_json(tx) : NULL;

        store_tx_rollback(&tx);
        if (!l)
                return reply_errno(req, -EIO, "rollouts");
        return reply_json(req, 200, json_pack("{s:o}", "rollouts", l));
}

static enum MHD_Result handle_rollout_get(Request *req) {
        CoordConfig cc = server_coord_config(req->server);
        json_t *ro = NULL;
        int64_t id;
        int r;

        if (request_id_arg(req, &id) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a rollout number", req->args[0]);
        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = coord_rollout_json(tx, &cc, id, req->now, &ro);
        store_tx_rollback(&tx);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "rollout %s: not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "rollout");
        return reply_json(req, 200, ro);
}

static enum MHD_Result handle_rollout_action(Request *req) {
        CoordConfig cc = server_coord_config(req->server);
        json_t *ro = NULL;
        char *error = NULL;
        int64_t id, nid = 0;
        int r;

        if (request_id_arg(req, &id) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a rollout number", req->args[0]);
        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = coord_rollout_action(tx, id, req->args[1], req->actor, req->now, &nid, &error);
        if (r >= 0)
                r = coord_rollout_json(tx, &cc, nid ? nid : id, req->now, &ro);
        if (r >= 0)
                r = store_tx_commit(&tx);
        store_tx_rollback(&tx);
        if (r == -ENOENT && !error)
                return reply_error(req, KIND_NOT_FOUND, "rollout %s: not found", req->args[0]);
        if (r < 0) {
                json_decref(ro);
                return reply_coord_error(req, r, error);
        }
        return reply_json(req, 200, ro);
}

const Route rollout_routes[] = {
        { "POST", "v1/rollouts/plan", AUTH_OPERATOR, BODY_JSON, handle_rollout_plan },
        { "POST", "v1/rollouts", AUTH_OPERATOR, BODY_JSON, handle_rollout_start },
        { "GET", "v1/rollouts", AUTH_VIEWER, BODY_NONE, handle_rollouts_list },
        { "GET", "v1/rollouts/*", AUTH_VIEWER, BODY_NONE, handle_rollout_get },
        { "POST", "v1/rollouts/*/*", AUTH_OPERATOR, BODY_NONE, handle_rollout_action },
        {},
};
