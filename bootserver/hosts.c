#include <ctype.h>
#include <time.h>

#include "audit.h"
#include "checkin.h"
#include "coordinator.h"
#include "enroll.h"
#include "hash.h"
#include "hoststate.h"
#include "hosts.h"
#include "images.h"
#include "log.h"
#include "tokens.h"
#include "util.h"
#include "store-sqlite.h"

/* Checks s against pattern, where 'x' is a hex digit (lowercased into ret)
 * and any other character must appear as itself or as one of the
 * characters in alt (written as the pattern's). ret holds strlen(pattern)+1. */
static int normalize_hex(const char *s, const char *pattern, const char *alt, char *ret) {
        size_t n = strlen(pattern);
        char out[64];

        if (!s || strlen(s) != n || n >= sizeof out)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (pattern[i] == 'x') {
                        if (!isxdigit((unsigned char) s[i]))
                                return -EINVAL;
                        out[i] = (char) tolower((unsigned char) s[i]);
                } else {
                        if (s[i] != pattern[i] && !(alt && strchr(alt, s[i])))
                                return -EINVAL;
                        out[i] = pattern[i];
                }
        }
        out[n] = 0;
        memcpy(ret, out, n + 1);
        return 0;
}

int mac_normalize(const char *s, char ret[18]) {
        return normalize_hex(s, "xx:xx:xx:xx:xx:xx", "-", ret);
}

int uuid_normalize(const char *s, char ret[37]) {
        return normalize_hex(s, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", NULL, ret);
}

int hosts_find(StoreTx *tx, const char *ref, char ret_id[16]) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char mac[18] = "";
        int r;

        (void) mac_normalize(ref, mac);
        r = db_prepare(db, "SELECT id FROM hosts WHERE id = ?1 OR mac = ?2", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, mac, -1, SQLITE_STATIC);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        snprintf(ret_id, 16, "%s", (const char *) sqlite3_column_text(st, 0));
        return 0;
}

static json_t *column_json(sqlite3_stmt *st, int col) {
        const char *t = (const char *) sqlite3_column_text(st, col);
        json_t *j = t ? json_loads(t, 0, NULL) : NULL;
        return j ? j : json_null();
}

json_t *hosts_to_json(StoreTx *tx, const char *id) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *lb = NULL;
        json_t *labels, *h;
        int r;

        if (db_prepare(db,
                       "SELECT id, mac, uuid, hostname, image, boot, state, installed, version, current_image, "
                       "booted_slot, slots, health, facts, message, registered, last_seen, lease_epoch, lease_expires, "
                       "quarantined, pxe_seen, enroll_address, enroll_expires FROM hosts WHERE id = ?",
                       &st) < 0)
                return NULL;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (db_step(st) <= 0)
                return NULL;
        if (db_prepare(db, "SELECT key, value FROM host_labels WHERE host_id = ? ORDER BY key", &lb) < 0)
                return NULL;
        labels = json_object();
        sqlite3_bind_text(lb, 1, id, -1, SQLITE_STATIC);
        while ((r = db_step(lb)) > 0)
                json_object_set_new(labels, (const char *) sqlite3_column_text(lb, 0),
                                    json_string((const char *) sqlite3_column_text(lb, 1)));
        if (r < 0) {
                json_decref(labels);
                return NULL;
        }
#define TEXT(i) ((const char *) sqlite3_column_text(st, (i)))
        h = json_pack("{s:s, s:s?, s:s?, s:s?, s:o, s:s?, s:s, s:s, s:b, s:s?, s:s?, s:s?, s:o, s:o, s:o, s:s?, "
                      "s:I, s:o}",
                      "id", TEXT(0), "mac", TEXT(1), "uuid", TEXT(2), "hostname", TEXT(3), "labels", labels, "image",
                      TEXT(4), "boot", TEXT(5), "state", TEXT(6), "installed", sqlite3_column_int(st, 7), "version",
                      TEXT(8), "current_image", TEXT(9), "booted_slot", TEXT(10), "slots", column_json(st, 11),
                      "health", column_json(st, 12), "facts", column_json(st, 13), "message", TEXT(14), "registered",
                      (json_int_t) sqlite3_column_int64(st, 15), "last_seen",
                      sqlite3_column_type(st, 16) == SQLITE_NULL ? json_null()
                                                                  : json_integer(sqlite3_column_int64(st, 16)));
        if (h && sqlite3_column_type(st, 17) != SQLITE_NULL)
                json_object_set_new(h, "lease", json_pack("{s:I, s:I}", "epoch", (json_int_t) sqlite3_column_int64(st, 17),
                                                          "expires", (json_int_t) sqlite3_column_int64(st, 18)));
        if (h) {
                json_object_set_new(h, "quarantined", json_boolean(sqlite3_column_int(st, 19)));
                /* Its firmware's last script request: shown, never counted as reachable. */
                json_object_set_new(h, "pxe_seen",
                                    sqlite3_column_type(st, 20) == SQLITE_NULL ? json_null()
                                                                                : json_integer(sqlite3_column_int64(st, 20)));
        }
        if (h && sqlite3_column_type(st, 21) != SQLITE_NULL)
                json_object_set_new(h, "enrollment", json_pack("{s:s, s:I}", "address", TEXT(21), "expires",
                                                               (json_int_t) sqlite3_column_int64(st, 22)));
#undef TEXT
        return h;
}

int hosts_ensure(StoreTx *tx, const char *mac, const char *uuid, const char *actor, char ret_id[16], bool *ret_new) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char rnd[65], id[16];
        json_t *detail;
        int r;

        r = hosts_find(tx, mac, id);
        if (r >= 0) {
                if (uuid) {
                        _cleanup_stmt_ sqlite3_stmt *up = NULL;
                        r = db_prepare(db, "UPDATE hosts SET uuid = ? WHERE id = ?", &up);
                        if (r < 0)
                                return r;
                        sqlite3_bind_text(up, 1, uuid, -1, SQLITE_STATIC);
                        sqlite3_bind_text(up, 2, id, -1, SQLITE_STATIC);
                        r = db_errno(sqlite3_step(up));
                        if (r < 0)
                                return r;
                }
                memcpy(ret_id, id, 16);
                *ret_new = false;
                return 0;
        }
        if (r != -ENOENT)
                return r;
        r = token_random_hex(rnd);
        if (r < 0)
                return r;
        snprintf(id, sizeof id, "h-%.12s", rnd);
        r = db_prepare(db, "INSERT INTO hosts (id, mac, uuid, registered) VALUES (?, ?, ?, ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, mac, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, uuid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64) time(NULL));
        r = db_errno(sqlite3_step(st));
        if (r < 0)
                return r;
        detail = json_pack("{s:s, s:s?}", "mac", mac, "uuid", uuid);
        r = audit_log(tx, actor, "host.register", id, detail);
        json_decref(detail);
        if (r < 0)
                return r;
        log_info("new host %s (%s)", id, mac);
        memcpy(ret_id, id, 16);
        *ret_new = true;
        return 0;
}

/* Constant-time comparison of two NUL-terminated secrets. */
static bool secret_equal(const char *a, const char *b) {
        size_t na = strlen(a), nb = strlen(b);
        unsigned char d = na != nb;

        for (size_t i = 0; i < na && i < nb; i++)
                d |= (unsigned char) (a[i] ^ b[i]);
        return d == 0;
}

/* In its own transaction (the registration's was rolled back): a refused
 * enrollment secret, for the operator to see. */
static void audit_rejected(StoreDb *store, const char *actor, const char *mac, const char *address, const char *why) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *detail = json_pack("{s:s, s:s, s:s}", "mac", mac, "address", address, "reason", strempty(why));
        int r = store_tx_begin(store, STORE_TX_WRITE, &tx);

        if (r >= 0)
                r = audit_log(tx, actor, "enroll.reject", mac, detail);
        if (r >= 0)
                r = store_tx_commit(&tx);
        json_decref(detail);
        if (r < 0)
                log_warning("cannot audit the refused registration of %s: %s", mac, strerror(-r));
}

static enum MHD_Result handle_hosts_register(Request *req) {
        static const char *const allowed[] = { "mac", "uuid", "hostname", "facts", "enroll", NULL };
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        _cleanup_free_ char *site = NULL, *token = NULL, *facts = NULL, *why = NULL;
        enum MHD_Result result;
        const char *mac_s, *uuid_s, *hostname, *enroll;
        char mac[18], uuid[37], id[16], rnd[65], hash[65], address[ENROLL_ADDRESS_MAX];
        bool is_new = false, ok = false;
        json_t *body, *facts_j, *detail;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        sqlite3 *db;
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
        else if ((r = enroll_client_address(req->conn, address)) < 0)
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
        db = r >= 0 ? store_tx_sqlite(tx) : NULL;
        ok = site && secret_equal(site, enroll);
        if (r >= 0 && !ok) {
                /* The install boot's secret, from the address it was issued to. */
                r = enroll_check(tx, req->server->state_dir, mac, address, enroll, (uint64_t) time(NULL), &why);
                ok = r > 0;
        }
        if (r >= 0 && !ok)
                r = -EPERM;
        if (r >= 0)
                r = hosts_ensure(tx, mac, json_object_get(body, "uuid") ? uuid : NULL, req->actor, id, &is_new);
        /* Used: a secret works once. */
        if (r >= 0)
                r = enroll_revoke(tx, id);
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE hosts SET token_hash = ?, hostname = coalesce(?, hostname), "
                               "facts = coalesce(?, facts), last_seen = ? WHERE id = ?",
                               &up);
        if (r >= 0) {
                sqlite3_bind_text(up, 1, hash, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 2, hostname, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 3, facts, -1, SQLITE_STATIC);
                sqlite3_bind_int64(up, 4, (sqlite3_int64) time(NULL));
                sqlite3_bind_text(up, 5, id, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(up));
        }
        if (r >= 0) {
                detail = json_pack("{s:s, s:b, s:s}", "mac", mac, "new", is_new, "address", address);
                r = audit_log(tx, "host:register", "host.token", id, detail);
                json_decref(detail);
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        if (r == -EPERM) {
                log_warning("registration of %s from %s refused: %s", mac, address, strempty(why));
                audit_rejected(req->server->store, req->actor, mac, address, why);
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
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *lkey = NULL;
        const char *label = request_arg(req, "label"), *state = request_arg(req, "state");
        const char *lval = NULL;
        json_t *list;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        sqlite3 *db;
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
        db = r >= 0 ? store_tx_sqlite(tx) : NULL;
        if (r >= 0)
                r = db_prepare(db,
                       "SELECT id FROM hosts h WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM host_labels l WHERE "
                       "l.host_id = h.id AND l.key = ?1 AND l.value = ?2)) AND (?3 IS NULL OR state = ?3) ORDER BY id",
                       &st);
        if (r >= 0) {
                sqlite3_bind_text(st, 1, lkey, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, lval, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, state, -1, SQLITE_STATIC);
                while ((r = db_step(st)) > 0) {
                        json_t *h = hosts_to_json(tx, (const char *) sqlite3_column_text(st, 0));
                        if (!h) {
                                r = -EIO;
                                break;
                        }
                        json_array_append_new(list, h);
                }
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
        _cleanup_stmt_ sqlite3_stmt *set = NULL, *rm = NULL;
        enum MHD_Result result;
        json_t *body, *s, *rmv, *v, *h = NULL;
        const char *key;
        size_t i;
        char id[16];
        _cleanup_store_tx_ StoreTx *tx = NULL;
        sqlite3 *db;
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
        db = r >= 0 ? store_tx_sqlite(tx) : NULL;
        if (r >= 0)
                r = hosts_find(tx, req->args[0], id);
        if (r >= 0)
                r = db_prepare(db, "INSERT OR REPLACE INTO host_labels (host_id, key, value) VALUES (?, ?, ?)", &set);
        if (r >= 0)
                r = db_prepare(db, "DELETE FROM host_labels WHERE host_id = ? AND key = ?", &rm);
        json_array_foreach(rmv, i, v) {
                if (r < 0)
                        break;
                sqlite3_bind_text(rm, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(rm, 2, json_string_value(v), -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(rm));
                sqlite3_reset(rm);
        }
        json_object_foreach(s, key, v) {
                if (r < 0)
                        break;
                sqlite3_bind_text(set, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(set, 2, key, -1, SQLITE_STATIC);
                sqlite3_bind_text(set, 3, json_string_value(v), -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(set));
                sqlite3_reset(set);
        }
        if (r >= 0)
                r = audit_log(tx, req->actor, "host.labels", id, body);
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
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        enum MHD_Result result;
        json_t *body, *img, *h = NULL, *detail;
        _cleanup_free_ char *ref = NULL, *boot = NULL;
        bool reinstall;
        char id[16], image_id[65] = "";
        _cleanup_store_tx_ StoreTx *tx = NULL;
        sqlite3 *db;
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
        db = r >= 0 ? store_tx_sqlite(tx) : NULL;
        if (r >= 0)
                r = hosts_find(tx, req->args[0], id);
        if (r >= 0 && ref) {
                r = images_resolve(tx, ref, image_id);
                if (r == -ENOENT || r == -EINVAL || r == -ENOTUNIQ)
                        r = -ENXIO;
        }
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE hosts SET image = ?, boot = coalesce(?, boot), installed = installed AND NOT ?4 "
                               "WHERE id = ?3",
                               &up);
        if (r >= 0) {
                sqlite3_bind_text(up, 1, ref ? image_id : NULL, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 2, boot, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 3, id, -1, SQLITE_STATIC);
                sqlite3_bind_int(up, 4, reinstall);
                r = db_errno(sqlite3_step(up));
        }
        /* An operator's assignment starts over: a secret issued for an
         * install (perhaps to the wrong client) is no longer good. */
        if (r >= 0)
                r = enroll_revoke(tx, id);
        if (r >= 0) {
                detail = json_pack("{s:s?, s:s?, s:s?, s:b}", "image", ref ? image_id : NULL, "ref", ref, "boot", boot,
                                   "reinstall", reinstall);
                r = audit_log(tx, req->actor, "host.assign", id, detail);
                json_decref(detail);
        }
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

const char *hosts_checkin_invalid(json_t *body) {
        return checkin_request_check(body);
}

static char *dump_or_null(json_t *v) {
        return v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

int hosts_checkin_apply(StoreTx *tx, const char *host, json_t *body, uint64_t now, const char *actor,
                        json_t **ret_desired) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *prev = NULL, *up = NULL, *want = NULL;
        _cleanup_free_ char *slots = NULL, *health = NULL, *facts = NULL, *old_state = NULL;
        const char *state = json_string_value(json_object_get(body, "state"));
        json_t *desired = json_null();
        char id[16];
        int r;

        slots = dump_or_null(json_object_get(body, "slots"));
        health = dump_or_null(json_object_get(body, "health"));
        facts = dump_or_null(json_object_get(body, "facts"));
        r = hosts_find(tx, host, id);
        if (r >= 0)
                r = db_prepare(db, "SELECT state FROM hosts WHERE id = ?", &prev);
        if (r >= 0) {
                sqlite3_bind_text(prev, 1, id, -1, SQLITE_STATIC);
                r = db_step(prev);
                if (r > 0)
                        old_state = db_column_strdup(prev, 0);
        }
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE hosts SET state = ?, version = ?, current_image = ?, booted_slot = ?, slots = ?, "
                               "health = coalesce(?, health), facts = coalesce(?, facts), message = ?, last_seen = ?9, "
                               "installed = installed OR ?, state_since = CASE WHEN state IS ?1 THEN "
                               "state_since ELSE ?9 END, failed_image = ?12 WHERE id = ?11",
                               &up);
        if (r >= 0) {
                sqlite3_bind_text(up, 1, state, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 2, json_string_value(json_object_get(body, "version")), -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 3, json_string_value(json_object_get(body, "image")), -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 4, json_string_value(json_object_get(body, "booted_slot")), -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 5, slots, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 6, health, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 7, facts, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 8, json_string_value(json_object_get(body, "message")), -1, SQLITE_STATIC);
                sqlite3_bind_int64(up, 9, (sqlite3_int64) now);
                sqlite3_bind_int(up, 10, host_state_is_installed(host_state_from_string(state)));
                sqlite3_bind_text(up, 11, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 12, json_string_value(json_object_get(body, "failed_image")), -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(up));
        }
        if (r >= 0 && !streq_ptr(old_state, state)) {
                json_t *detail = json_pack("{s:s?, s:s, s:O?}", "from", old_state, "to", state, "message",
                                           json_object_get(body, "message"));
                r = audit_log(tx, actor, "host.state", id, detail);
                json_decref(detail);
        }
        if (r >= 0)
                r = coord_on_report(tx, id, state, now);
        if (r >= 0)
                r = db_prepare(db,
                               "SELECT i.id, i.name, i.version, i.manifest, i.signature, h.rollback FROM hosts h JOIN "
                               "images i ON i.id = h.image WHERE h.id = ?",
                               &want);
        if (r >= 0) {
                sqlite3_bind_text(want, 1, id, -1, SQLITE_STATIC);
                r = db_step(want);
                if (r > 0)
                        desired = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "image",
                                            (const char *) sqlite3_column_text(want, 0), "name",
                                            (const char *) sqlite3_column_text(want, 1), "version",
                                            (const char *) sqlite3_column_text(want, 2), "manifest",
                                            (const char *) sqlite3_column_text(want, 3), "signature",
                                            (const char *) sqlite3_column_text(want, 4), "rollback",
                                            sqlite3_column_int(want, 5));
        }
        if (r < 0) {
                json_decref(desired);
                return r;
        }
        if (ret_desired)
                *ret_desired = desired;
        else
                json_decref(desired);
        return 0;
}

static enum MHD_Result handle_host_checkin(Request *req) {
        static const char *const allowed[] = { "state",  "version", "image",   "booted_slot",  "slots",
                                               "health", "facts",   "message", "failed_image", NULL };
        enum MHD_Result result;
        json_t *body, *desired = NULL;
        const char *why;
        uint64_t interval;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        why = hosts_checkin_invalid(body);
        if (why) {
                json_decref(body);
                return reply_error(req, KIND_INVALID_VALUE, "%s", why);
        }
        atomic_fetch_add(&req->server->metrics.checkins, 1);
        r = store_tx_begin(req->server->store, STORE_TX_RELAXED, &tx);
        if (r >= 0)
                r = hosts_checkin_apply(tx, req->args[0], body, (uint64_t) time(NULL), req->actor, &desired);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        store_tx_rollback(&tx);
        json_decref(body);
        if (r < 0) {
                json_decref(desired);
                if (r == -ENOENT)
                        return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
                return reply_errno(req, r, "check-in");
        }
        const ServerConfig *c = config_get(req->server);
        interval = c->checkin_interval;
        config_put(req->server);
        return reply_json(req, 200, json_pack("{s:o, s:I}", "desired", desired, "checkin_interval",
                                              (json_int_t) interval));
}

int hosts_ensure_named(StoreTx *tx, const char *name, const char *group, const char *actor, char ret_id[16]) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *lb = NULL;
        char rnd[65], id[16];
        int r;

        r = token_random_hex(rnd);
        if (r < 0)
                return r;
        snprintf(id, sizeof id, "h-%.12s", rnd);
        r = db_prepare(db, "INSERT INTO hosts (id, hostname, state, registered, last_seen) VALUES (?, ?, 'healthy', ?3, ?3)",
                       &st);
        if (r >= 0) {
                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, (sqlite3_int64) time(NULL));
                r = db_errno(sqlite3_step(st));
        }
        if (r >= 0)
                r = db_prepare(db, "INSERT INTO host_labels (host_id, key, value) VALUES (?, 'fleetlock', ?)", &lb);
        if (r >= 0) {
                sqlite3_bind_text(lb, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(lb, 2, group, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(lb));
        }
        if (r >= 0) {
                json_t *d = json_pack("{s:s, s:s}", "name", name, "fleetlock", group);
                r = audit_log(tx, actor, "host.register", id, d);
                json_decref(d);
        }
        if (r >= 0)
                memcpy(ret_id, id, 16);
        return r;
}

int hosts_find_named(StoreTx *tx, const char *name, char ret_id[16]) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = db_prepare(db, "SELECT id FROM hosts WHERE mac IS NULL AND hostname = ?", &st);

        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        snprintf(ret_id, 16, "%s", (const char *) sqlite3_column_text(st, 0));
        return 0;
}

int hosts_set_fleetlock_group(StoreTx *tx, const char *id, const char *group, const char *actor, char **ret_why) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *cur = NULL, *st = NULL;
        _cleanup_free_ char *held = NULL;
        bool holds, quarantined;
        int r;

        r = db_prepare(db,
                       "SELECT l.value, h.lease_epoch IS NOT NULL, h.quarantined FROM hosts h LEFT JOIN host_labels l "
                       "ON l.host_id = h.id AND l.key = 'fleetlock' WHERE h.id = ?",
                       &cur);
        if (r < 0)
                return r;
        sqlite3_bind_text(cur, 1, id, -1, SQLITE_STATIC);
        r = db_step(cur);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        if (streq_ptr((const char *) sqlite3_column_text(cur, 0), group))
                return 0;
        held = db_column_strdup(cur, 0);
        holds = sqlite3_column_int(cur, 1);
        quarantined = sqlite3_column_int(cur, 2);
        if (holds || quarantined) {
                /* Its place was counted in the old group's budget; moved, it
                 * would be down in a group whose budget never granted it. */
                *ret_why = strdup_printf("%s in group fleetlock=%s: it must report steady-state there before it "
                                         "asks in group fleetlock=%s",
                                         holds ? "the lock is held" : "the node is quarantined", held ? held : "(none)",
                                         group);
                return *ret_why ? -EBUSY : -ENOMEM;
        }
        r = db_prepare(db, "INSERT OR REPLACE INTO host_labels (host_id, key, value) VALUES (?, 'fleetlock', ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, group, -1, SQLITE_STATIC);
        r = db_errno(sqlite3_step(st));
        if (r >= 0) {
                /* As an operator's label change is: the audit log tells which
                 * group each lease was counted in. */
                json_t *d = json_pack("{s:{s:s}}", "set", "fleetlock", group);
                r = audit_log(tx, actor, "host.labels", id, d);
                json_decref(d);
        }
        return r;
}

const Route host_routes[] = {
        { "POST", "v1/hosts/register", AUTH_PUBLIC, BODY_JSON, handle_hosts_register },
        { "GET", "v1/hosts", AUTH_ADMIN, BODY_NONE, handle_hosts_list },
        { "GET", "v1/hosts/*", AUTH_ADMIN, BODY_NONE, handle_host_get },
        { "POST", "v1/hosts/*/labels", AUTH_ADMIN, BODY_JSON, handle_host_labels },
        { "PUT", "v1/hosts/*/image", AUTH_ADMIN, BODY_JSON, handle_host_image },
        { "POST", "v1/hosts/*/checkin", AUTH_HOST, BODY_JSON, handle_host_checkin },
        {},
};
