/* /v1/instances: the slipwayd instances that share the state, their
 * health and which one coordinates. */
#include "leader.h"
#include "routes.h"
#include "server.h"
#include "store-instances.h"
#include "util.h"

/* Whether i holds the lease described by l. */
static bool leads(const Instance *i, const LeaderRow *l) {
        return l->holder && l->expires_in > 0 && streq(l->holder, i->incarnation);
}

static enum MHD_Result handle_instances(Request *req) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        LeaderRow lead = {};
        Instance *l = NULL;
        size_t n = 0;
        json_t *a, *reply;
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_instance_list(tx, &l, &n);
        if (r >= 0)
                r = store_leader_get(tx, &lead);
        store_tx_rollback(&tx);
        if (r < 0) {
                instance_list_free(l, n);
                return reply_errno(req, r, "instances");
        }
        a = json_array();
        for (size_t k = 0; a && k < n; k++) {
                const Instance *i = &l[k];
                json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:b}", "name", i->name, "url", i->url,
                                      "version", i->version, "pid", (json_int_t) i->pid, "started",
                                      (json_int_t) (i->started / 1000), "heartbeat_age_ms",
                                      (json_int_t) i->heartbeat_age, "state",
                                      i->heartbeat_age > INSTANCE_STALE_MS ? "stale" : "up", "leader", leads(i, &lead));
                if (o && leads(i, &lead))
                        json_object_set_new(o, "epoch", json_integer((json_int_t) lead.epoch));
                if (!o || json_array_append_new(a, o) < 0) {
                        json_decref(a);
                        a = NULL;
                }
        }
        reply = a ? json_pack("{s:s?, s:o, s:{s:s?, s:I, s:I}}", "instance",
                              req->server->leader ? leader_name(req->server->leader) : NULL,
                              "instances", a, "leader", "instance", lead.expires_in > 0 ? lead.instance : NULL,
                              "epoch", (json_int_t) lead.epoch, "expires_in_ms",
                              (json_int_t) (lead.holder ? MAX(lead.expires_in, 0) : 0))
                  : NULL;
        instance_list_free(l, n);
        leader_row_release(&lead);
        if (!reply)
                return reply_errno(req, -ENOMEM, "instances");
        return reply_json(req, 200, reply);
}

const Route instance_routes[] = {
        { "GET", "v1/instances", AUTH_PUBLIC, BODY_NONE, handle_instances },
        {},
};
