/* FleetLock v1 (Zincati's reboot manager protocol): POST /v1/pre-reboot
 * and /v1/steady-state with {"client_params": {"group": G, "id": ID}}.
 * Checks the protocol and answers as FleetLock does; the nodes and their
 * locks are fleetlock.c's. */
#include <time.h>

#include "api-leases.h"
#include "fleetlock.h"
#include "labels.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "util.h"

/* A node changes group only while it holds no lock: a holder asking in
 * another group is refused (409, naming the group it holds in), and
 * steady-state gives the lock back before it moves. */
static enum MHD_Result fleetlock(Request *req, bool acquire) {
        static const char *const allowed[] = { "client_params", NULL };
        const char *hdr = request_header(req, "fleet-lock-protocol");
        enum MHD_Result result;
        CoordConfig cc = server_coord_config(req->server);
        _cleanup_free_ char *conflict = NULL;
        const char *group, *cid;
        LeaseDecision d = {};
        json_t *body, *p;
        char **groups = NULL;
        char other[HOST_ID_MAX] = "";
        int r;

        if (!hdr || !streq(hdr, "true"))
                return reply_error_extra(req, KIND_BAD_REQUEST,
                                         json_pack("{s:s}", "value", "FleetLock needs the header fleet-lock-protocol: true"),
                                         "FleetLock needs the header fleet-lock-protocol: true");
        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        p = json_object_get(body, "client_params");
        group = json_string_value(json_object_get(p, "group"));
        cid = json_string_value(json_object_get(p, "id"));
        if (!label_valid(group) || !cid || strlen(cid) == 0 || strlen(cid) > 128) {
                json_decref(body);
                return reply_error_extra(req, KIND_INVALID_VALUE,
                                         json_pack("{s:s}", "value", "client_params: expected a group and an id"),
                                         "client_params: expected a group and an id");
        }
        if (acquire)
                r = fleetlock_lock(req->server->store, &cc, cid, group, req->now, &d, other);
        else
                r = fleetlock_unlock(req->server->store, cid, group, req->now, &groups, other);
        /* cid lives in body. */
        if (r == -EPERM && other[0])
                conflict = strdup_printf("id \"%s\" is the ID or MAC of host %s, which FleetLock may not act for: give "
                                         "this node an id of its own",
                                         cid, other);
        json_decref(body);
        lease_waiters_wake(req->server, groups);
        if (r == -EPERM && other[0]) {
                log_warning("fleetlock: refused an id that names host %s", other);
                return reply_error_extra(req, KIND_FORBIDDEN, json_pack("{s:s}", "value", strempty(conflict)), "%s",
                                         strempty(conflict));
        }
        if (r < 0)
                return reply_errno(req, r, "fleetlock");
        if (acquire && !d.granted) {
                json_t *e = json_pack("{s:s, s:s}", "kind", "failed_lock", "value", strempty(d.reason));

                lease_refusal_count(req->server, &d);
                lease_decision_release(&d);
                return reply_json(req, 409, e);
        }
        lease_decision_release(&d);
        return reply_json(req, 200, json_object());
}

static enum MHD_Result handle_fleetlock_pre_reboot(Request *req) {
        return fleetlock(req, true);
}

static enum MHD_Result handle_fleetlock_steady_state(Request *req) {
        return fleetlock(req, false);
}

const Route fleetlock_routes[] = {
        { "POST", "v1/pre-reboot", AUTH_PUBLIC, BODY_JSON, handle_fleetlock_pre_reboot },
        { "POST", "v1/steady-state", AUTH_PUBLIC, BODY_JSON, handle_fleetlock_steady_state },
        {},
};
