/* The hosts' HTTP API (docs/api.md, "Hosts"): registration, the inventory,
 * labels, assignment and check-ins. Parses and checks requests, calls the
 * inventory (hosts.h) and writes the replies. */
#include <string.h>
#include <time.h>

#include "audit.h"
#include "checkin.h"
#include "enroll.h"
#include "error.h"
#include "filesets.h"
#include "hash.h"
#include "hosts.h"
#include "images.h"
#include "labels.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "tokens.h"
#include "util.h"

/* Constant-time comparison of two NUL-terminated secrets. */
static bool secret_equal(const char *a, const char *b) {
        size_t na = strlen(a), nb = strlen(b);
        unsigned char d = na != nb;

        for (size_t i = 0; i < na && i < nb; i++)
                d |= (unsigned char) (a[i] ^ b[i]);
        return d == 0;
}

static enum MHD_Result handle_hosts_register(Request *req) {
        static const char *const allowed[] = { "mac", "uuid", "hostname", "facts", "enroll", NULL };
        _cleanup_free_ char *site = NULL, *token = NULL, *facts = NULL, *why = NULL;
        enum MHD_Result result;
        const char *mac_s, *uuid_s, *hostname, *enroll;
        char mac[18], uuid[37], id[16], rnd[65], hash[65], address[REQUEST_ADDRESS_MAX];
        bool is_new = false, ok = false;
        json_t *body, *facts_j;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        uint64_t now = req->now;
        int r;

        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        mac_s = json_string_value(json_object_get(body, "mac"));
        uuid_s = json_string_value(json_object_get(body, "uuid"));
        hostname = json_string_value(json_object_get(body, "hostname"));
        enroll = json_string_value(json_object_get(body, "enroll"));
        facts_j = json_object_get(body, "facts");
        if (mac_normalize(mac_s, mac) < 0)
                result = reply_error(req, KIND_INVALID_VALUE, "'mac': not a MAC address");
        else if (json_object_get(body, "uuid") && uuid_normalize(uuid_s, uuid) < 0)
                result = reply_error(req, KIND_INVALID_VALUE, "'uuid': not a UUID");
        else if (json_object_get(body, "hostname") && (!hostname || strlen(hostname) > 253))
                result = reply_error(req, KIND_INVALID_VALUE, "'hostname': expected a string of at most 253 bytes");
        else if (facts_j && !json_is_object(facts_j))
                result = reply_error(req, KIND_INVALID_VALUE, "'facts': expected an object");
        else if (!enroll || strlen(enroll) > 256)
                result = reply_error(req, KIND_UNAUTHORIZED, "'enroll': the enrollment secret is required");
        else if ((r = request_client_address(req, address)) < 0)
                result = reply_errno(req, r, "client address");
        else
                ok = true;
        if (!ok) {
                json_decref(body);
                return result;
        }
        facts = facts_j ? json_dumps(facts_j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        const ServerConfig *c = config_get(req->server);
        site = c->enroll_token ? strdup(c->enroll_token) : NULL;
        config_put(req->server);

        r = token_random_hex(rnd);
        token = r >= 0 ? strdup_printf("slh_%s", rnd) : NULL;
        if (!token) {
                json_decref(body);
                return reply_errno(req, r < 0 ? r : -ENOMEM, "register");
        }
        sha256_buffer_hex(token, strlen(token), hash);

        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        ok = site && secret_equal(site, enroll);
        if (r >= 0 && !ok) {
                /* The install boot's secret, from the address it was issued to. */
                r = enroll_check(tx, req->server->state_dir, mac, address, enroll, now, &why);
                ok = r > 0;
        }
        if (r >= 0 && !ok)
                r = -EPERM;
        if (r >= 0)
                r = hosts_ensure(tx, mac, json_object_get(body, "uuid") ? uuid : NULL, now, req->actor, id, &is_new);
        if (r >= 0)
                r = hosts_set_token(tx, id, mac, is_new, address, hash, hostname, facts, now);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        if (r == -EPERM) {
                log_warning("registration of %s from %s refused: %s", mac, address, strempty(why));
                hosts_audit_rejected(req->server->store, now, req->actor, mac, address, why);
        }
        store_tx_rollback(&tx);
        json_decref(body);
        if (r == -EPERM)
                return reply_error(req, KIND_FORBIDDEN,
                                   "the enrollment secret for %s is wrong, expired, used, or was issued to another "
                                   "client",
                                   mac);
        if (r < 0)
                return reply_errno(req, r, "register");
        return reply_json(req, 200, json_pack("{s:s, s:s}", "id", id, "token", token));
}

static enum MHD_Result handle_hosts_list(Request *req) {
        _cleanup_strv_free_ char **ids = NULL;
        _cleanup_free_ char *lkey = NULL;
        const char *label = request_arg(req, "label"), *state = request_arg(req, "state");
        const char *lval = NULL;
        json_t *list;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        if (label) {
                const char *eq = strchr(label, '=');
                if (!eq)
                        return reply_error(req, KIND_INVALID_VALUE, "'label': expected KEY=VALUE, got \"%s\"", label);
                lkey = strndup(label, (size_t) (eq - label));
                lval = eq + 1;
                if (!lkey)
                        return MHD_NO;
        }
        list = json_array();
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_host_list(tx, lkey, lval, state, &ids);
        for (char **i = ids; i && *i; i++) {
                json_t *h;

                if (r < 0)
                        break;
                h = hosts_to_json(tx, *i);
                if (!h)
                        r = -EIO;
                else
                        json_array_append_new(list, h);
        }
        store_tx_rollback(&tx);
        if (r < 0) {
                json_decref(list);
                return reply_errno(req, r, "host list");
        }
        return reply_json(req, 200, json_pack("{s:o}", "hosts", list));
}

static enum MHD_Result handle_host_get(Request *req) {
        json_t *h = NULL;
        char id[16];
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = hosts_find(tx, req->args[0], id);
        if (r >= 0)
                h = hosts_to_json(tx, id);
        store_tx_rollback(&tx);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0 || !h)
                return reply_errno(req, r < 0 ? r : -EIO, "host");
        return reply_json(req, 200, h);
}

static enum MHD_Result handle_host_labels(Request *req) {
        static const char *const allowed[] = { "set", "remove", NULL };
        enum MHD_Result result;
        json_t *body, *s, *rmv, *v, *h = NULL;
        const char *key;
        size_t i;
        char id[16];
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        s = json_object_get(body, "set");
        rmv = json_object_get(body, "remove");
        if ((s && !json_is_object(s)) || (rmv && !json_is_array(rmv))) {
                json_decref(body);
                return reply_error(req, KIND_INVALID_VALUE, "expected \"set\": {KEY: VALUE} and \"remove\": [KEY]");
        }
        json_object_foreach(s, key, v)
                if (!label_valid(key) || !label_valid(json_string_value(v))) {
                        result = reply_error(req, KIND_INVALID_VALUE,
                                             "label '%s': keys and values are 1-63 of [A-Za-z0-9._-]", key);
                        json_decref(body);
                        return result;
                }
        json_array_foreach(rmv, i, v)
                if (!label_valid(json_string_value(v))) {
                        json_decref(body);
                        return reply_error(req, KIND_INVALID_VALUE, "'remove': item %zu is not a label key", i);
                }

        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = hosts_find(tx, req->args[0], id);
        if (r >= 0)
                r = hosts_set_labels(tx, id, s, rmv, req->now, req->actor, body);
        if (r >= 0) {
                h = hosts_to_json(tx, id);
                r = h ? store_tx_commit(&tx) : -EIO;
                if (r < 0) {
                        json_decref(h);
                        h = NULL;
                }
        }
        store_tx_rollback(&tx);
        json_decref(body);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0 || !h)
                return reply_errno(req, r < 0 ? r : -EIO, "host labels");
        return reply_json(req, 200, h);
}

static enum MHD_Result handle_host_image(Request *req) {
        static const char *const allowed[] = { "image", "boot", "reinstall", NULL };
        enum MHD_Result result;
        json_t *body, *img, *h = NULL;
        _cleanup_free_ char *ref = NULL, *boot = NULL;
        bool reinstall;
        char id[16], image_id[65] = "";
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        img = json_object_get(body, "image");
        reinstall = json_is_true(json_object_get(body, "reinstall"));
        if (json_is_string(json_object_get(body, "boot")))
                boot = strdup(json_string_value(json_object_get(body, "boot")));
        if (!img || (!json_is_null(img) && !json_is_string(img))) {
                json_decref(body);
                return reply_error(req, KIND_INVALID_VALUE, "'image': expected an image reference or null");
        }
        if (json_object_get(body, "boot") && (!boot || (!streq(boot, "disk") && !streq(boot, "live")))) {
                json_decref(body);
                return reply_error(req, KIND_INVALID_VALUE, "'boot': expected \"disk\" or \"live\"");
        }
        if (json_is_string(img)) {
                ref = strdup(json_string_value(img));
                if (!ref) {
                        json_decref(body);
                        return MHD_NO;
                }
        }

        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = hosts_find(tx, req->args[0], id);
        if (r >= 0 && ref) {
                r = images_resolve(tx, ref, image_id);
                if (r == -ENOENT || r == -EINVAL || r == -ENOTUNIQ)
                        r = -ENXIO;
        }
        if (r >= 0)
                r = hosts_assign(tx, id, ref ? image_id : NULL, ref, boot, reinstall, req->now,
                                 req->actor);
        if (r >= 0) {
                h = hosts_to_json(tx, id);
                r = h ? store_tx_commit(&tx) : -EIO;
                if (r < 0) {
                        json_decref(h);
                        h = NULL;
                }
        }
        store_tx_rollback(&tx);
        json_decref(body);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r == -ENXIO)
                return reply_error(req, KIND_NOT_FOUND, "image '%s': not found", ref);
        if (r < 0 || !h)
                return reply_errno(req, r < 0 ? r : -EIO, "host image");
        return reply_json(req, 200, h);
}

/* The digest of the host's files into desired->files (docs/host-files.md),
 * read in tx, or in a transaction of its own when tx is NULL.
 * A host whose files cannot be rendered (a label its template needs is
 * missing) is told nothing about files: it keeps what it has staged, and
 * GET /v1/hosts/ID/files says why. */
static void host_desired_files(Request *req, StoreTx *in, DesiredImage *desired) {
        _cleanup_store_tx_ StoreTx *own = NULL;
        _cleanup_error_ Error error = {};
        char id[HOST_ID_MAX], digest[65];
        StoreTx *tx = in;
        int r = 0;

        if (!tx) {
                r = store_tx_begin(req->server->store, STORE_TX_READ, &own);
                tx = own;
        }
        /* Agents check in by ID; with no file sets at all the host is not
         * even read (files_host_render()). */
        if (r >= 0 && startswith(req->args[0], "h-") && strlen(req->args[0]) < sizeof id)
                memcpy(id, req->args[0], strlen(req->args[0]) + 1);
        else if (r >= 0)
                r = hosts_find(tx, req->args[0], id);
        if (r >= 0)
                r = files_host_render(tx, id, NULL, digest, &error);
        if (r < 0) {
                log_debug("host '%s': no files digest: %s", req->args[0], strempty(error.message));
                return;
        }
        desired->files = strdup(digest);
}

/* The hot path: every agent, every interval. The body is parsed once into
 * its struct and the reply written from one. */
static enum MHD_Result handle_host_checkin(Request *req) {
        static const char *const allowed[] = { "state",  "version", "image",   "booted_slot",  "slots",
                                               "health", "facts",   "message", "failed_image", NULL };
        _cleanup_(checkin_request_release) CheckinRequest c = {};
        _cleanup_(checkin_reply_release) CheckinReply reply = {};
        _cleanup_error_ Error error = {};
        _cleanup_store_tx_ StoreTx *tx = NULL;
        enum MHD_Result result;
        json_t *body, *j = NULL;
        uint64_t now;
        int r;

        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        r = checkin_request_from_json(body, &c, &error);
        json_decref(body);
        if (r == -EINVAL)
                return reply_error(req, KIND_INVALID_VALUE, "%s", error.message);
        if (r < 0)
                return reply_errno(req, r, "check-in");
        atomic_fetch_add(&req->server->metrics.checkins, 1);
        now = req->now;
        /* Most check-ins repeat the last report: answered by a read (in the
         * one the host's token was checked in), beside the writes of other
         * requests. */
        tx = TAKE_PTR(req->tx);
        r = tx ? 0 : store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = hosts_checkin_unchanged(tx, req->server->seen, req->args[0], &c, now, &reply.desired);
        if (r > 0 && reply.desired.image)
                host_desired_files(req, tx, &reply.desired);
        store_tx_rollback(&tx);
        if (r == 0) {
                r = store_tx_begin(req->server->store, STORE_TX_RELAXED, &tx);
                if (r >= 0)
                        r = hosts_checkin(tx, req->args[0], &c, now, req->actor, &reply.desired);
                if (r >= 0)
                        r = store_tx_commit(&tx);
                else
                        store_tx_rollback(&tx);
                if (r >= 0 && reply.desired.image)
                        host_desired_files(req, NULL, &reply.desired);
        }
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "check-in");
        const ServerConfig *cfg = config_get(req->server);
        reply.checkin_interval = cfg->checkin_interval;
        config_put(req->server);
        r = checkin_reply_to_json(&reply, &j, NULL);
        if (r < 0)
                return reply_errno(req, r, "check-in");
        return reply_json(req, 200, j);
}

const Route host_routes[] = {
        { "POST", "v1/hosts/register", AUTH_PUBLIC, BODY_JSON, handle_hosts_register },
        { "GET", "v1/hosts", AUTH_VIEWER, BODY_NONE, handle_hosts_list },
        { "GET", "v1/hosts/*", AUTH_VIEWER, BODY_NONE, handle_host_get },
        { "POST", "v1/hosts/*/labels", AUTH_OPERATOR, BODY_JSON, handle_host_labels },
        { "PUT", "v1/hosts/*/image", AUTH_OPERATOR, BODY_JSON, handle_host_image },
        { "POST", "v1/hosts/*/checkin", AUTH_HOST, BODY_JSON, handle_host_checkin },
        {},
};
