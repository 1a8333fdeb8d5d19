/* The fleet page: its files (built in, ui-assets.h), the fleet's matrix
 * over two label keys (GET /v1/fleet) and the live stream of events
 * (GET /v1/events, events.h). docs/operations.md, "The fleet page". */
#include <errno.h>
#include <string.h>

#include "events.h"
#include "hosts.h"
#include "labels.h"
#include "routes.h"
#include "server.h"
#include "store-hosts.h"
#include "ui-assets.h"
#include "util.h"

static enum MHD_Result reply_asset(Request *req, const char *name) {
        struct MHD_Response *resp;

        for (const UiAsset *a = ui_assets; a->name; a++) {
                if (!streq(a->name, name))
                        continue;
                resp = MHD_create_response_from_buffer(a->size, (void *) a->data, MHD_RESPMEM_PERSISTENT);
                if (!resp)
                        return MHD_NO;
                MHD_add_response_header(resp, "Content-Type", a->content_type);
                MHD_add_response_header(resp, "Cache-Control", "no-cache");
                MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
                /* The page loads nothing but its own files and the API. */
                MHD_add_response_header(resp, "Content-Security-Policy",
                                        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                        "frame-ancestors 'none'");
                return reply_response(req, 200, resp);
        }
        return reply_error(req, KIND_NOT_FOUND, "'%s': no such file of the fleet page", name);
}

static enum MHD_Result handle_page(Request *req) {
        return reply_asset(req, "index.html");
}

static enum MHD_Result handle_asset(Request *req) {
        return reply_asset(req, req->args[0]);
}

static const char *label_of(const Host *h, const char *key) {
        for (size_t i = 0; i < h->n_labels; i++)
                if (streq(h->labels[i].key, key))
                        return h->labels[i].value;
        return "";
}

static void count_in(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);

        json_object_set_new(o, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

/* One host into the matrix's cells (a map from "x\ty" to a map from
 * "version\tstate" to a count) and the fleet's totals. */
static void fleet_add(json_t *fleet, json_t *cells, const Host *h, const char *x, const char *y) {
        _cleanup_free_ char *cell = strdup_printf("%s\t%s", label_of(h, x), label_of(h, y));
        _cleanup_free_ char *vs = strdup_printf("%s\t%s", h->version ?: "", h->state ?: "");
        json_t *c;

        if (!cell || !vs)
                return;
        c = json_object_get(cells, cell);
        if (!c) {
                c = json_object();
                json_object_set_new(cells, cell, c);
        }
        count_in(c, vs);
        count_in(json_object_get(fleet, "versions"), h->version ?: "");
        count_in(json_object_get(fleet, "states"), h->state ?: "");
        for (size_t i = 0; i < h->n_labels; i++)
                count_in(json_object_get(fleet, "keys"), h->labels[i].key);
        if (h->has_lease) {
                json_t *labels = json_object();

                for (size_t i = 0; i < h->n_labels; i++)
                        json_object_set_new(labels, h->labels[i].key, json_string(h->labels[i].value));
                json_array_append_new(json_object_get(fleet, "leases"),
                                      json_pack("{s:s, s:I, s:I, s:s?, s:o}", "host", h->id, "epoch",
                                                (json_int_t) h->lease_epoch, "expires",
                                                (json_int_t) h->lease_expires, "state", h->state, "labels",
                                                labels));
        }
        if (h->quarantined)
                json_array_append_new(json_object_get(fleet, "quarantined"), json_string(h->id));
}

/* The cells map as a sorted list: [{"x", "y", "total", "by": [{"version",
 * "state", "count"}]}]. */
static json_t *cells_to_list(json_t *cells) {
        json_t *list = json_array(), *c;
        const char *key;

        json_object_foreach(cells, key, c) {
                const char *tab = strchr(key, '\t');
                json_t *by = json_array(), *n;
                const char *vs;
                json_int_t total = 0;

                json_object_foreach(c, vs, n) {
                        const char *t = strchr(vs, '\t');

                        json_array_append_new(by, json_pack("{s:s%, s:s, s:I}", "version", vs, (size_t) (t - vs),
                                                            "state", t + 1, "count", json_integer_value(n)));
                        total += json_integer_value(n);
                }
                json_array_append_new(list, json_pack("{s:s%, s:s, s:I, s:o}", "x", key, (size_t) (tab - key), "y",
                                                      tab + 1, "total", total, "by", by));
        }
        return list;
}

static enum MHD_Result handle_fleet(Request *req) {
        const char *x = request_arg(req, "x") ?: "service", *y = request_arg(req, "y") ?: "rack";
        _cleanup_strv_free_ char **ids = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *fleet, *cells;
        size_t n = 0;
        int r;

        if (!label_valid(x))
                return reply_error(req, KIND_INVALID_VALUE, "'x': not a label key: \"%s\"", x);
        if (!label_valid(y))
                return reply_error(req, KIND_INVALID_VALUE, "'y': not a label key: \"%s\"", y);
        fleet = json_pack("{s:s, s:s, s:{}, s:{}, s:{}, s:[], s:[]}", "x", x, "y", y, "versions", "states", "keys",
                          "leases", "quarantined");
        cells = json_object();
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_host_list(tx, NULL, NULL, NULL, &ids);
        for (char **i = ids; r >= 0 && i && *i; i++) {
                _cleanup_(host_release) Host h = {};

                r = store_host_get(tx, *i, &h);
                if (r == -ENOENT) {
                        r = 0;
                        continue;
                }
                if (r >= 0) {
                        fleet_add(fleet, cells, &h, x, y);
                        n++;
                }
        }
        store_tx_rollback(&tx);
        if (r < 0) {
                json_decref(fleet);
                json_decref(cells);
                return reply_errno(req, r, "fleet");
        }
        json_object_set_new(fleet, "hosts", json_integer((json_int_t) n));
        json_object_set_new(fleet, "cells", cells_to_list(cells));
        json_object_set_new(fleet, "now", json_integer((json_int_t) req->now));
        json_decref(cells);
        return reply_json(req, 200, fleet);
}

static enum MHD_Result handle_events(Request *req) {
        const char *last = request_header(req, "Last-Event-ID") ?: request_arg(req, "since");
        uint64_t since = 0;

        if (last && safe_atou64(last, &since) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'since': not a non-negative integer: \"%s\"", last);
        return event_stream_reply(req, last ? (int64_t) since : -1);
}

const Route ui_routes[] = {
        { "GET", "", AUTH_PUBLIC, BODY_NONE, handle_page },
        { "GET", "ui", AUTH_PUBLIC, BODY_NONE, handle_page },
        { "GET", "ui/*", AUTH_PUBLIC, BODY_NONE, handle_asset },
        { "GET", "v1/fleet", AUTH_ADMIN, BODY_NONE, handle_fleet },
        { "GET", "v1/events", AUTH_ADMIN, BODY_NONE, handle_events },
        {},
};
