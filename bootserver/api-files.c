/* The host files' HTTP API (docs/api.md, "Host files"): file sets by
 * name, their versions, and the files one host gets, rendered. Every
 * change is a new version and an audit entry in the same transaction. */
#include <errno.h>
#include <stdlib.h>

#include "audit.h"
#include "filesets.h"
#include "hosts.h"
#include "json.h"
#include "labels.h"
#include "routes.h"
#include "server.h"
#include "store-files.h"
#include "util.h"

/* The reply for one error of the model: its message, its kind. */
static enum MHD_Result reply_model_error(Request *req, int r, const Error *error, const char *what) {
        if (r == -ENOMEM || !error->message)
                return reply_errno(req, r, what);
        if (r == -EEXIST)
                return reply_error(req, KIND_CONFLICT, "%s", error->message);
        if (r == -EINVAL || r == -ENOENT || r == -EFBIG)
                return reply_error(req, KIND_INVALID_VALUE, "%s", error->message);
        return reply_errno(req, r, what);
}

/* What hosts get of set name, into v: "live" (the version a host without
 * a pin gets, null for none), "pinned" (hosts pinned to another by a
 * rollout) and "rollout" (the rollout that moves it, or null). */
static int rollout_state_json(StoreTx *tx, const char *name, json_t *v) {
        int64_t live = 0, pinned = 0, rollout = 0;
        int r;

        r = store_file_set_live_get(tx, name, &live);
        if (r >= 0)
                r = store_file_pins_count(tx, name, &pinned);
        if (r >= 0)
                r = store_file_set_rolling(tx, name, &rollout);
        if (r < 0)
                return r;
        if (json_object_set_new(v, "live", live > 0 ? json_integer(live) : json_null()) < 0 ||
            json_object_set_new(v, "pinned", json_integer(pinned)) < 0 ||
            json_object_set_new(v, "rollout", r > 0 ? json_integer(rollout) : json_null()) < 0)
                return -ENOMEM;
        return 0;
}

static enum MHD_Result handle_files_list(Request *req) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_json_ json_t *l = json_array();
        FileSetRow *rows = NULL;
        size_t n = 0;
        int r;

        if (!l)
                return reply_errno(req, -ENOMEM, "file sets");
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_file_set_list(tx, &rows, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_(file_set_row_release) FileSetRow live = {};
                const FileSetRow *shown = &rows[i];
                json_t *v;

                /* A held deletion: what hosts still get is the live version,
                 * shown with the version that deletes it. */
                if (!rows[i].spec) {
                        int64_t seq = 0;

                        r = store_file_set_live_get(tx, rows[i].name, &seq);
                        if (r >= 0)
                                r = store_file_set_get(tx, rows[i].name, seq, &live);
                        if (r < 0)
                                break;
                        shown = &live;
                }
                v = file_set_version_json(shown->name, shown->seq, shown->digest, shown->spec, shown->actor,
                                          shown->created);
                if (v && !rows[i].spec &&
                    (json_object_set_new(v, "version", json_integer(rows[i].seq)) < 0 ||
                     json_object_set_new(v, "deleted", json_true()) < 0)) {
                        json_decref(v);
                        v = NULL;
                }
                if (v)
                        r = rollout_state_json(tx, rows[i].name, v);
                /* The list names the files; their contents are in GET
                 * /v1/files/NAME. */
                json_t *f;
                size_t k;
                json_array_foreach(json_object_get(v, "files"), k, f)
                        json_object_del(f, "content");
                if (!v || json_array_append_new(l, v) < 0)
                        r = -ENOMEM;
        }
        file_set_rows_free(rows, n);
        if (r < 0)
                return reply_errno(req, r, "file sets");
        return reply_json(req, 200, json_pack("{s:O}", "file_sets", l));
}

/* ?version=N, 0 when not given; -EINVAL for one that is no number. */
static int version_arg(Request *req, int64_t *ret) {
        const char *s = request_arg(req, "version");
        uint64_t v = 0;

        if (s && (safe_atou64(s, &v) < 0 || v == 0 || v > INT64_MAX))
                return -EINVAL;
        *ret = (int64_t) v;
        return 0;
}

static enum MHD_Result handle_file_set_get(Request *req) {
        _cleanup_(file_set_row_release) FileSetRow row = {};
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int64_t seq;
        json_t *j;
        int r;

        if (version_arg(req, &seq) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'version': expected a version number 1, 2, ...");
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_file_set_get(tx, req->args[0], seq, &row);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "file set '%s'%s: not found", req->args[0],
                                   seq ? " at that version" : "");
        if (r < 0)
                return reply_errno(req, r, "file set");
        if (!seq && !row.spec)
                return reply_error(req, KIND_NOT_FOUND, "file set '%s': deleted in version %lld", req->args[0],
                                   (long long) row.seq);
        j = file_set_version_json(row.name, row.seq, row.digest, row.spec, row.actor, row.created);
        if (!j)
                return reply_errno(req, -ENOMEM, "file set");
        r = rollout_state_json(tx, row.name, j);
        if (r < 0) {
                json_decref(j);
                return reply_errno(req, r, "file set");
        }
        return reply_json(req, 200, j);
}

static enum MHD_Result handle_file_set_history(Request *req) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_json_ json_t *l = json_array();
        FileSetRow *rows = NULL;
        size_t n = 0;
        int r;

        if (!l)
                return reply_errno(req, -ENOMEM, "file set");
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_file_set_history(tx, req->args[0], &rows, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                json_t *v = file_set_version_json(rows[i].name, rows[i].seq, rows[i].digest, NULL, rows[i].actor,
                                                  rows[i].created);
                if (!v || json_object_set_new(v, "deleted", json_boolean(!rows[i].spec)) < 0 ||
                    json_array_append_new(l, v) < 0)
                        r = -ENOMEM;
        }
        file_set_rows_free(rows, n);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "file set '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "file set");
        return reply_json(req, 200, json_pack("{s:s, s:O}", "name", req->args[0], "versions", l));
}

/* Writes a version of set name (spec NULL: deletes it) with its audit
 * entry; create: the set must not exist (or be deleted), else it must.
 * Unless held back (hold), the version is live at once: every host gets
 * it, pinned or not; a set a rollout moves changes only held back. */
static enum MHD_Result file_set_write(Request *req, const char *name, const char *spec, const char *digest,
                                      bool create, bool hold) {
        _cleanup_(file_set_row_release) FileSetRow last = {};
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_json_ json_t *detail = NULL;
        const char *action = !spec ? "files.delete" : create ? "files.add" : "files.set";
        int64_t seq = 0, live = 0, rollout = 0;
        bool exists;
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = store_file_set_get(tx, name, 0, &last);
        if (r < 0 && r != -ENOENT)
                return reply_errno(req, r, "file set");
        exists = r >= 0 && last.spec;
        if (create && exists)
                return reply_error(req, KIND_CONFLICT, "file set '%s' exists (version %lld); change it with PUT",
                                   name, (long long) last.seq);
        if (!create && !exists)
                return reply_error(req, KIND_NOT_FOUND, "file set '%s': not found", name);
        r = hold ? 0 : store_file_set_rolling(tx, name, &rollout);
        if (r < 0)
                return reply_errno(req, r, "file set");
        if (r > 0)
                return reply_error(req, KIND_CONFLICT,
                                   "file set '%s' is being rolled out by rollout %lld: hold the change back "
                                   "(\"hold\": true) or end the rollout first",
                                   name, (long long) rollout);
        r = store_file_set_live_get(tx, name, &live);
        if (r >= 0)
                r = store_file_set_put(tx, name, spec ? digest : last.digest, spec, req->actor, (int64_t) req->now,
                                       &seq);
        /* Live at once: the pins an earlier rollout left go too. A version
         * held back leaves the live one as it is (none for a new set). */
        if (r >= 0 && !hold && live != seq) {
                r = store_file_set_live_set(tx, name, seq);
                if (r >= 0)
                        r = store_file_pins_drop(tx, name, -1);
                if (r >= 0)
                        r = 1;
        } else if (r >= 0 && hold && live == 0) {
                int k = store_file_set_live_set(tx, name, 0);
                if (k < 0)
                        r = k;
        }
        if (r > 0) {
                detail = json_pack("{s:I, s:s, s:b}", "version", (json_int_t) seq, "digest",
                                   spec ? digest : last.digest, "held", hold);
                r = detail ? audit_log_at(tx, (int64_t) req->now, req->actor, action, name, detail) : -ENOMEM;
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r < 0)
                return reply_errno(req, r, "file set");
        if (!spec)
                return reply_json(req, 200, json_pack("{s:s, s:I, s:b}", "deleted", name, "version", (json_int_t) seq,
                                                      "held", hold));
        json_t *j = file_set_version_json(name, seq, digest, spec, req->actor, (int64_t) req->now);
        if (j)
                json_object_set_new(j, "held", json_boolean(hold));
        return reply_json(req, create ? 201 : 200, j);
}

/* POST /v1/files {"name", "selector", "files"} and PUT /v1/files/NAME
 * {"selector", "files"}. */
static enum MHD_Result file_set_from_body(Request *req, const char *name, bool create) {
        static const char *const allowed_post[] = { "name", "selector", "files", "hold", NULL };
        static const char *const allowed_put[] = { "selector", "files", "hold", NULL };
        _cleanup_error_ Error error = {};
        _cleanup_free_ char *spec = NULL, *name_copy = NULL;
        enum MHD_Result result;
        json_t *body, *hold;
        char digest[65];
        bool held;
        int r;

        body = request_json(req, create ? allowed_post : allowed_put, &result);
        if (!body)
                return result;
        hold = json_object_get(body, "hold");
        if (hold && !json_is_boolean(hold)) {
                json_decref(body);
                return reply_error(req, KIND_INVALID_VALUE, "'hold': expected true or false");
        }
        held = json_is_true(hold);
        json_object_del(body, "hold");
        if (create) {
                const char *n = json_string_value(json_object_get(body, "name"));
                name_copy = n ? strdup(n) : NULL;
                name = name_copy;
        }
        r = file_set_canonical(body, &spec, digest, &error);
        json_decref(body);
        if (!name || !label_valid(name))
                return reply_error(req, KIND_INVALID_VALUE, "'name': expected 1-%d of [A-Za-z0-9._-]", LABEL_MAX);
        if (r < 0)
                return reply_model_error(req, r, &error, "file set");
        return file_set_write(req, name, spec, digest, create, held);
}

static enum MHD_Result handle_file_set_add(Request *req) {
        return file_set_from_body(req, NULL, true);
}

static enum MHD_Result handle_file_set_put(Request *req) {
        return file_set_from_body(req, req->args[0], false);
}

static enum MHD_Result handle_file_set_delete(Request *req) {
        const char *hold = request_arg(req, "hold");

        if (hold && !streq(hold, "1") && !streq(hold, "0"))
                return reply_error(req, KIND_INVALID_VALUE, "'hold': expected 1 or 0");
        return file_set_write(req, req->args[0], NULL, NULL, false, hold && streq(hold, "1"));
}

static enum MHD_Result handle_host_files(Request *req) {
        _cleanup_error_ Error error = {};
        _cleanup_store_tx_ StoreTx *tx = TAKE_PTR(req->tx);
        char id[HOST_ID_MAX];
        json_t *j = NULL;
        int r;

        r = tx ? 0 : store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = hosts_find(tx, req->args[0], id);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "host files");
        r = files_host_render(tx, id, &j, NULL, &error);
        if (r == -ENOENT && !error.message)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0)
                return reply_model_error(req, r, &error, "host files");
        json_object_set_new(j, "host", json_string(id));
        return reply_json(req, 200, j);
}

const Route file_routes[] = {
        { "GET", "v1/files", AUTH_VIEWER, BODY_NONE, handle_files_list },
        { "POST", "v1/files", AUTH_ADMIN, BODY_JSON, handle_file_set_add },
        { "GET", "v1/files/*", AUTH_ADMIN, BODY_NONE, handle_file_set_get },
        { "PUT", "v1/files/*", AUTH_ADMIN, BODY_JSON, handle_file_set_put },
        { "DELETE", "v1/files/*", AUTH_ADMIN, BODY_NONE, handle_file_set_delete },
        { "GET", "v1/files/*/history", AUTH_VIEWER, BODY_NONE, handle_file_set_history },
        { "GET", "v1/hosts/*/files", AUTH_HOST, BODY_NONE, handle_host_files },
        {},
};
