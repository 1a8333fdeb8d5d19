/* The rollouts' HTTP API (docs/api.md, "Rollouts"): plan, start, list,
 * show, and pause, resume, abort or roll back. The rollouts themselves are
 * rollout.c's and rollout-plan.c's, through the coordinator. */
#include <time.h>

#include "api-leases.h"
#include "api-object.h"
#include "coordinator.h"
#include "routes.h"
#include "server.h"
#include "util.h"

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
                return reply_object_error(req, "rollout", r, error);
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
                return reply_object_error(req, "rollout", r, error);
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

static int rollout_view(StoreTx *tx, Request *req, int64_t id, json_t **ret) {
        CoordConfig cc = server_coord_config(req->server);

        return coord_rollout_json(tx, &cc, id, req->now, ret);
}

/* A rollback shows the new rollout that moves the hosts back. */
static int rollout_act(StoreTx *tx, Request *req, int64_t id, int64_t *ret_id, char **ret_error) {
        int64_t nid = 0;
        int r;

        r = coord_rollout_action(tx, id, req->args[1], req->actor, req->now, &nid, ret_error);
        if (r >= 0 && nid)
                *ret_id = nid;
        return r;
}

static enum MHD_Result handle_rollout_get(Request *req) {
        return reply_object(req, "rollout", NULL, rollout_view);
}

static enum MHD_Result handle_rollout_action(Request *req) {
        return reply_object(req, "rollout", rollout_act, rollout_view);
}

const Route rollout_routes[] = {
        { "POST", "v1/rollouts/plan", AUTH_OPERATOR, BODY_JSON, handle_rollout_plan },
        { "POST", "v1/rollouts", AUTH_OPERATOR, BODY_JSON, handle_rollout_start },
        { "GET", "v1/rollouts", AUTH_VIEWER, BODY_NONE, handle_rollouts_list },
        { "GET", "v1/rollouts/*", AUTH_VIEWER, BODY_NONE, handle_rollout_get },
        { "POST", "v1/rollouts/*/*", AUTH_OPERATOR, BODY_NONE, handle_rollout_action },
        {},
};
