/* The pipelines' HTTP API (docs/api.md, "Pipelines"): start, list, show,
 * approve and abort. The pipelines themselves are pipeline.c's. */
#include "api-leases.h"
#include "pipeline.h"
#include "routes.h"
#include "server.h"
#include "util.h"

static enum MHD_Result reply_pipeline_error(Request *req, int r, char *error) {
        enum MHD_Result res;

        if (r == -EINVAL)
                res = reply_error(req, KIND_INVALID_VALUE, "%s", strempty(error));
        else if (r == -ENXIO || r == -ENOENT)
                res = reply_error(req, KIND_NOT_FOUND, "%s", error ? error : "pipeline: not found");
        else if (r == -EBUSY)
                res = reply_error(req, KIND_CONFLICT, "%s", strempty(error));
        else
                res = reply_errno(req, r, "pipeline");
        free(error);
        return res;
}

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
                return reply_pipeline_error(req, r, error);
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

static enum MHD_Result handle_pipeline_get(Request *req) {
        json_t *p = NULL;
        int64_t id;
        int r;

        if (request_id_arg(req, &id) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a pipeline number", req->args[0]);
        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = pipeline_json(tx, id, req->now, &p);
        store_tx_rollback(&tx);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "pipeline %s: not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "pipeline");
        return reply_json(req, 200, p);
}

static enum MHD_Result handle_pipeline_action(Request *req) {
        json_t *p = NULL;
        char *error = NULL;
        int64_t id;
        int r;

        if (request_id_arg(req, &id) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a pipeline number", req->args[0]);
        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = pipeline_action(tx, id, req->args[1], req->actor, req->now, &error);
        if (r >= 0)
                r = pipeline_json(tx, id, req->now, &p);
        if (r >= 0)
                r = store_tx_commit(&tx);
        store_tx_rollback(&tx);
        if (r == -ENOENT && !error)
                return reply_error(req, KIND_NOT_FOUND, "pipeline %s: not found", req->args[0]);
        if (r < 0) {
                json_decref(p);
                return reply_pipeline_error(req, r, error);
        }
        return reply_json(req, 200, p);
}

const Route pipeline_routes[] = {
        { "POST", "v1/pipelines", AUTH_ADMIN, BODY_JSON, handle_pipeline_start },
        { "GET", "v1/pipelines", AUTH_VIEWER, BODY_NONE, handle_pipelines_list },
        { "GET", "v1/pipelines/*", AUTH_VIEWER, BODY_NONE, handle_pipeline_get },
        { "POST", "v1/pipelines/*/*", AUTH_OPERATOR, BODY_NONE, handle_pipeline_action },
        {},
};
