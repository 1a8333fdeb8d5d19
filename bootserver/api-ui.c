/* The fleet page: its files (built in, ui-assets.h), the fleet's matrix
 * over two label keys (GET /v1/fleet, a window of its columns and rows at
 * a time) and the live stream of events (GET /v1/events, events.h).
 * docs/operations.md, "The fleet page". */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "hosts.h"
#include "labels.h"
#include "routes.h"
#include "server.h"
#include "store-fleet.h"
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

static void count_in(json_t *o, const char *key, json_int_t n) {
        json_t *v = json_object_get(o, key);

        json_object_set_new(o, key, json_integer(v ? json_integer_value(v) + n : n));
}

/* The columns or rows a matrix sends at most, and unless asked. */
#define AXIS_MAX 1000
#define AXIS_DEFAULT 100

typedef struct FleetCount {
        json_t *fleet;
        json_t *xs, *ys; /* value -> hosts, of each axis */
        json_t *cells;   /* "x\ty" -> {"version\tstate": count} */
        char **holders;  /* hosts with a lease, for their labels */
        size_t n;
} FleetCount;

static int fleet_add(const FleetRow *h, void *userdata) {
        FleetCount *fc = userdata;
        _cleanup_free_ char *cell = strdup_printf("%s\t%s", h->x, h->y);
        _cleanup_free_ char *vs = strdup_printf("%s\t%s", h->version, h->state);
        json_t *c;

        if (!cell || !vs)
                return -ENOMEM;
        c = json_object_get(fc->cells, cell);
        if (!c) {
                c = json_object();
                if (json_object_set_new(fc->cells, cell, c) < 0)
                        return -ENOMEM;
        }
        count_in(c, vs, 1);
        count_in(fc->xs, h->x, 1);
        count_in(fc->ys, h->y, 1);
        count_in(json_object_get(fc->fleet, "versions"), h->version, 1);
        count_in(json_object_get(fc->fleet, "states"), h->state, 1);
        if (h->has_lease) {
                json_array_append_new(json_object_get(fc->fleet, "leases"),
                                      json_pack("{s:s, s:I, s:I, s:s, s:{}}", "host", h->id, "epoch",
                                                (json_int_t) h->lease_epoch, "expires",
                                                (json_int_t) h->lease_expires, "state", h->state, "labels"));
                if (strv_extend(&fc->holders, h->id) < 0)
                        return -ENOMEM;
        }
        if (h->quarantined)
                json_array_append_new(json_object_get(fc->fleet, "quarantined"), json_string(h->id));
        fc->n++;
        return 0;
}

static int fleet_key(const char *key, int64_t hosts, void *userdata) {
        FleetCount *fc = userdata;

        count_in(json_object_get(fc->fleet, "keys"), key, (json_int_t) hosts);
        return 0;
}

/* The labels of the hosts that hold a lease (few: a budget's worth). */
static int fleet_lease_labels(StoreTx *tx, FleetCount *fc) {
        json_t *leases = json_object_get(fc->fleet, "leases");

        for (size_t i = 0; fc->holders && fc->holders[i]; i++) {
                _cleanup_(host_release) Host h = {};
                json_t *labels = json_object_get(json_array_get(leases, i), "labels");
                int r = store_host_get(tx, fc->holders[i], &h);

                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                for (size_t k = 0; k < h.n_labels; k++)
                        json_object_set_new(labels, h.labels[k].key, json_string(h.labels[k].value));
        }
        return 0;
}

/* Compares as people read "r2" before "r10": runs of digits by their
 * value, the rest byte by byte. */
static int natural_cmp(const char *a, const char *b) {
        while (*a && *b) {
                if (isdigit((unsigned char) *a) && isdigit((unsigned char) *b)) {
                        size_t la, lb;
                        int c;

                        while (*a == '0' && isdigit((unsigned char) a[1]))
                                a++;
                        while (*b == '0' && isdigit((unsigned char) b[1]))
                                b++;
                        for (la = 0; isdigit((unsigned char) a[la]); la++)
                                ;
                        for (lb = 0; isdigit((unsigned char) b[lb]); lb++)
                                ;
                        if (la != lb)
                                return la < lb ? -1 : 1;
                        c = strncmp(a, b, la);
                        if (c != 0)
                                return c;
                        a += la;
                        b += lb;
                        continue;
                }
                if (*a != *b)
                        return (unsigned char) *a < (unsigned char) *b ? -1 : 1;
                a++;
                b++;
        }
        return *a ? 1 : *b ? -1 : 0;
}

/* "r01" and "r1" are equal to natural_cmp(): byte order decides. */
static int natural_cmp_p(const void *a, const void *b) {
        const char *x = *(const char *const *) a, *y = *(const char *const *) b;
        int c = natural_cmp(x, y);

        return c ? c : strcmp(x, y);
}

/* The values of an axis (the keys of counts) in natural order, from offset,
 * at most limit: a list, and *ret_in the same as a set. */
static json_t *axis_window(json_t *counts, uint64_t offset, uint64_t limit, json_t **ret_in) {
        size_t n = json_object_size(counts), k = 0;
        _cleanup_free_ const char **v = calloc(n ? n : 1, sizeof *v);
        json_t *list = json_array(), *in = json_object(), *c;
        const char *key;

        if (!v || !list || !in) {
                json_decref(list);
                json_decref(in);
                return NULL;
        }
        json_object_foreach(counts, key, c)
                v[k++] = key;
        qsort(v, n, sizeof *v, natural_cmp_p);
        for (size_t i = offset; i < n && i - offset < limit; i++) {
                json_array_append_new(list, json_string(v[i]));
                json_object_set_new(in, v[i], json_true());
        }
        *ret_in = in;
        return list;
}

/* The cells of the window (xin by yin) as a list: [{"x", "y", "total",
 * "by": [{"version", "state", "count"}]}]. */
static json_t *cells_to_list(json_t *cells, json_t *xin, json_t *yin) {
        json_t *list = json_array(), *c;
        const char *key;

        json_object_foreach(cells, key, c) {
                const char *tab = strchr(key, '\t');
                _cleanup_free_ char *x = strndup(key, (size_t) (tab - key));
                json_t *by, *n;
                const char *vs;
                json_int_t total = 0;

                if (!x || !json_object_get(xin, x) || !json_object_get(yin, tab + 1))
                        continue;
                by = json_array();
                json_object_foreach(c, vs, n) {
                        const char *t = strchr(vs, '\t');

                        json_array_append_new(by, json_pack("{s:s%, s:s, s:I}", "version", vs, (size_t) (t - vs),
                                                            "state", t + 1, "count", json_integer_value(n)));
                        total += json_integer_value(n);
                }
                json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:o}", "x", x, "y", tab + 1, "total", total,
                                                      "by", by));
        }
        return list;
}

/* Reads the query's argument name into *ret (def when absent); false when
 * it is not a number up to max. */
static bool axis_arg(Request *req, const char *name, uint64_t def, uint64_t max, uint64_t *ret) {
        const char *v = request_arg(req, name);

        *ret = def;
        return !v || (safe_atou64(v, ret) >= 0 && *ret <= max);
}

/* Puts the window of one axis ("x" or "y") into the answer. */
static int axis_put(json_t *fleet, const char *axis, json_t *counts, uint64_t offset, uint64_t limit,
                    json_t **ret_in) {
        char name[16];
        json_t *list = axis_window(counts, offset, limit, ret_in);

        if (!list)
                return -ENOMEM;
        snprintf(name, sizeof name, "%ss", axis);
        json_object_set_new(fleet, name, list);
        snprintf(name, sizeof name, "%s_total", axis);
        json_object_set_new(fleet, name, json_integer((json_int_t) json_object_size(counts)));
        snprintf(name, sizeof name, "%s_offset", axis);
        json_object_set_new(fleet, name, json_integer((json_int_t) offset));
        return 0;
}

static enum MHD_Result handle_fleet(Request *req) {
        const char *x = request_arg(req, "x") ?: "service", *y = request_arg(req, "y") ?: "rack";
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *xin = NULL, *yin = NULL;
        uint64_t xoff, xlim, yoff, ylim;
        FleetCount fc = {};
        int r;

        if (!label_valid(x))
                return reply_error(req, KIND_INVALID_VALUE, "'x': not a label key: \"%s\"", x);
        if (!label_valid(y))
                return reply_error(req, KIND_INVALID_VALUE, "'y': not a label key: \"%s\"", y);
        if (!axis_arg(req, "x_offset", 0, UINT32_MAX, &xoff) || !axis_arg(req, "y_offset", 0, UINT32_MAX, &yoff))
                return reply_error(req, KIND_INVALID_VALUE, "'x_offset', 'y_offset': expected a non-negative integer");
        if (!axis_arg(req, "x_limit", AXIS_DEFAULT, AXIS_MAX, &xlim) ||
            !axis_arg(req, "y_limit", AXIS_DEFAULT, AXIS_MAX, &ylim))
                return reply_error(req, KIND_INVALID_VALUE, "'x_limit', 'y_limit': expected 0..%d", AXIS_MAX);
        fc.fleet = json_pack("{s:s, s:s, s:{}, s:{}, s:{}, s:[], s:[]}", "x", x, "y", y, "versions", "states", "keys",
                             "leases", "quarantined");
        fc.cells = json_object();
        fc.xs = json_object();
        fc.ys = json_object();
        if (!fc.fleet || !fc.cells || !fc.xs || !fc.ys)
                r = -ENOMEM;
        else
                r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_fleet_rows(tx, x, y, fleet_add, &fc);
        if (r >= 0)
                r = store_fleet_keys(tx, fleet_key, &fc);
        if (r >= 0)
                r = fleet_lease_labels(tx, &fc);
        store_tx_rollback(&tx);
        strv_free(fc.holders);
        if (r >= 0)
                r = axis_put(fc.fleet, "x", fc.xs, xoff, xlim, &xin);
        if (r >= 0)
                r = axis_put(fc.fleet, "y", fc.ys, yoff, ylim, &yin);
        if (r >= 0) {
                json_object_set_new(fc.fleet, "hosts", json_integer((json_int_t) fc.n));
                json_object_set_new(fc.fleet, "cells", cells_to_list(fc.cells, xin, yin));
                json_object_set_new(fc.fleet, "now", json_integer((json_int_t) req->now));
        }
        json_decref(xin);
        json_decref(yin);
        json_decref(fc.cells);
        json_decref(fc.xs);
        json_decref(fc.ys);
        if (r < 0) {
                json_decref(fc.fleet);
                return reply_errno(req, r, "fleet");
        }
        return reply_json(req, 200, fc.fleet);
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
        { "GET", "v1/fleet", AUTH_VIEWER, BODY_NONE, handle_fleet },
        { "GET", "v1/events", AUTH_VIEWER, BODY_NONE, handle_events },
        {},
};
