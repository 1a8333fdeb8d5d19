/* The pipelines' HTTP API (docs/api.md, "Pipelines"): start, list, show,
 * approve and abort. The pipelines themselves are pipeline.c's. */
#include "api-leases.h"
#include "api-object.h"
#include "pipeline.h"
#include "routes.h"
#include "server.h"
#include "util.h"

/* A spec that names no Prometheus gets slipwayd.conf's ([pipelines]
 * prometheus), kept with it: the pipeline queries the one it started with,
 * whichever instance leads later. */
static int spec_default_prometheus(Server *s, json_t *spec) {
        const ServerConfig *c;
        int r = 0;

        if (!json_is_object(spec) || json_object_get(spec, "prometheus"))
                return 0;
        c = config_get(s);
        if (c->pipeline_prometheus)
                r = json_object_set_new(spec, "prometheus", json_string(c->pipeline_prometheus)) < 0 ? -ENOMEM : 0;
        config_put(s);
        return r;
}

static enum MHD_Result handle_pipeline_start(Request *req) {
        enum MHD_Result result;
        CoordConfig cc = server_coord_config(req->server);
        json_t *spec, *p = NULL;
        char *error = NULL;
        int64_t id = 0;
        int r;

        spec = request_json(req, NULL, &result);
        if (!spec)
                return result;
        r = spec_default_prometheus(req->server, spec);
        if (r < 0) {
                json_decref(spec);
                return reply_errno(req, r, "pipeline");
        }
        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = pipeline_start(tx, &cc, spec, req->actor, req->now, &id, &error);
        if (r >= 0)
                r = pipeline_json(tx, id, req->now, &p);
        if (r >= 0)
                r = store_tx_commit(&tx);
        store_tx_rollback(&tx);
        json_decref(spec);
        if (r < 0) {
                json_decref(p);
                return reply_object_error(req, "pipeline", r, error);
        }
        return reply_json(req, 201, p);
}

static enum MHD_Result handle_pipelines_list(Request *req) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *l = store_tx_begin(req->server->store, STORE_TX_READ, &tx) >= 0 ? pipelines_json(tx) : NULL;

        store_tx_rollback(&tx);
        if (!l)
                return reply_errno(req, -EIO, "pipelines");
        return reply_json(req, 200, json_pack("{s:o}", "pipelines", l));
}

static int pipeline_view(StoreTx *tx, Request *req, int64_t id, json_t **ret) {
        return pipeline_json(tx, id, req->now, ret);
}

static int pipeline_act(StoreTx *tx, Request *req, int64_t id, int64_t *ret_id _unused_, char **ret_error) {
        return pipeline_action(tx, id, req->args[1], req->actor, req->now, ret_error);
}

static enum MHD_Result handle_pipeline_get(Request *req) {
        return reply_object(req, "pipeline", NULL, pipeline_view);
}

static enum MHD_Result handle_pipeline_action(Request *req) {
        return reply_object(req, "pipeline", pipeline_act, pipeline_view);
}

const Route pipeline_routes[] = {
        { "POST", "v1/pipelines", AUTH_ADMIN, BODY_JSON, handle_pipeline_start },
        { "GET", "v1/pipelines", AUTH_VIEWER, BODY_NONE, handle_pipelines_list },
        { "GET", "v1/pipelines/*", AUTH_VIEWER, BODY_NONE, handle_pipeline_get },
        { "POST", "v1/pipelines/*/*", AUTH_OPERATOR, BODY_NONE, handle_pipeline_action },
        {},
};
