#include <time.h>

#include "audit.h"
#include "blobs.h"
#include "coordinator.h"
#include "fileio.h"
#include "images.h"
#include "log.h"
#include "manifest.h"
#include "sign.h"
#include "util.h"
#include "store-sqlite.h"

static bool is_hex(const char *s) {
        for (; *s; s++)
                if (!strchr("0123456789abcdef", *s))
                        return false;
        return true;
}

int images_resolve(StoreTx *tx, const char *ref, char ret_id[65]) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *name = NULL;
        const char *colon = strchr(ref, ':');
        size_t n = strlen(ref);
        int r;

        if (n == 0 || n > 200)
                return -EINVAL;
        if (colon) {
                name = strndup(ref, (size_t) (colon - ref));
                if (!name)
                        return -ENOMEM;
                r = db_prepare(db, "SELECT id FROM images WHERE name = ? AND version = ?", &st);
                if (r < 0)
                        return r;
                sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, colon + 1, -1, SQLITE_STATIC);
        } else if (n >= 8 && n <= 64 && is_hex(ref)) {
                r = db_prepare(db, "SELECT id FROM images WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT 2", &st);
                if (r < 0)
                        return r;
                sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
        } else {
                r = db_prepare(db, "SELECT id FROM images WHERE name = ? ORDER BY created DESC, rowid DESC LIMIT 1",
                               &st);
                if (r < 0)
                        return r;
                sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
        }
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        snprintf(ret_id, 65, "%s", (const char *) sqlite3_column_text(st, 0));
        if (!colon && n >= 8 && n <= 64 && is_hex(ref)) {
                r = db_step(st);
                if (r != 0)
                        return r < 0 ? r : -ENOTUNIQ;
        }
        return 0;
}

json_t *images_to_json(StoreTx *tx, const char *id) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *ar = NULL, *hc = NULL;
        json_t *img, *arts;
        int r;

        if (db_prepare(db,
                       "SELECT id, name, version, arch, kernel_version, manifest, signature, signed_by, created "
                       "FROM images WHERE id = ?",
                       &st) < 0)
                return NULL;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (db_step(st) <= 0)
                return NULL;
        if (db_prepare(db, "SELECT type, sha256, size, fstype FROM artifacts WHERE image_id = ? ORDER BY type", &ar) < 0 ||
            db_prepare(db, "SELECT count(*) FROM hosts WHERE image = ?1 OR current_image = ?1", &hc) < 0)
                return NULL;
        arts = json_array();
        sqlite3_bind_text(ar, 1, id, -1, SQLITE_STATIC);
        while ((r = db_step(ar)) > 0)
                json_array_append_new(arts, json_pack("{s:s, s:s, s:I, s:s?}", "type",
                                                      (const char *) sqlite3_column_text(ar, 0), "sha256",
                                                      (const char *) sqlite3_column_text(ar, 1), "size",
                                                      (json_int_t) sqlite3_column_int64(ar, 2), "fstype",
                                                      (const char *) sqlite3_column_text(ar, 3)));
        sqlite3_bind_text(hc, 1, id, -1, SQLITE_STATIC);
        if (r < 0 || db_step(hc) <= 0) {
                json_decref(arts);
                return NULL;
        }
        img = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:s, s:s?, s:I, s:o}", "id",
                        (const char *) sqlite3_column_text(st, 0), "name", (const char *) sqlite3_column_text(st, 1),
                        "version", (const char *) sqlite3_column_text(st, 2), "arch",
                        (const char *) sqlite3_column_text(st, 3), "kernel_version",
                        (const char *) sqlite3_column_text(st, 4), "manifest",
                        (const char *) sqlite3_column_text(st, 5), "signature",
                        (const char *) sqlite3_column_text(st, 6), "signed_by",
                        (const char *) sqlite3_column_text(st, 7), "created",
                        (json_int_t) sqlite3_column_int64(st, 8), "artifacts", arts);
        if (img)
                json_object_set_new(img, "hosts", json_integer(sqlite3_column_int64(hc, 0)));
        return img;
}

/* A signature is 64 bytes (Ed25519); anything near this cap is not one. */
#define SIGNATURE_SIZE_MAX 4096

static int read_blob(Server *s, const char *hex, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *path = blob_path(s, hex);

        if (!path)
                return -EINVAL;
        return read_full_file(path, max, ret, ret_size);
}

int images_load_manifest(Server *s, const char *manifest_hex, Manifest **ret) {
        _cleanup_free_ char *data = NULL;
        char err[256];
        size_t n;
        int r;

        r = read_blob(s, manifest_hex, MANIFEST_SIZE_MAX, &data, &n);
        if (r < 0)
                return r;
        return manifest_parse(data, n, ret, err, sizeof err) < 0 ? -EBADMSG : 0;
}

static const char *get_hex(json_t *body, const char *key) {
        const char *v = json_string_value(json_object_get(body, key));
        return v && sha256_hex_valid(v) ? v : NULL;
}

/* Inserts the image and its artifacts; the caller's transaction. */
static int insert_image(sqlite3 *db, const char *id, const Manifest *m, const char *manifest, const char *signature,
                        const char *key) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *ar = NULL;
        int r;

        r = db_prepare(db,
                       "INSERT INTO images (id, name, version, arch, kernel_version, manifest, signature, signed_by, "
                       "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, m->version, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, m->arch, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, m->kernel_version, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, manifest, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, signature, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, (sqlite3_int64) time(NULL));
        r = db_errno(sqlite3_step(st));
        if (r < 0)
                return r;
        r = db_prepare(db, "INSERT INTO artifacts (image_id, type, sha256, size, fstype) VALUES (?, ?, ?, ?, ?)", &ar);
        for (size_t i = 0; r >= 0 && i < m->n_artifacts; i++) {
                const ManifestArtifact *a = &m->artifacts[i];
                sqlite3_bind_text(ar, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(ar, 2, a->type, -1, SQLITE_STATIC);
                sqlite3_bind_text(ar, 3, a->sha256, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ar, 4, (sqlite3_int64) a->size);
                sqlite3_bind_text(ar, 5, a->fstype, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(ar));
                sqlite3_reset(ar);
        }
        return r;
}

static enum MHD_Result handle_images_post(Request *req) {
        static const char *const allowed[] = { "manifest", "signature", NULL };
        _cleanup_free_ char *mdata = NULL, *sig = NULL, *key = NULL, *keys_dir = NULL;
        _cleanup_manifest_free_ Manifest *m = NULL;
        enum MHD_Result result;
        const char *manifest, *signature;
        json_t *body, *missing = NULL, *img;
        char err[256], existing[65];
        size_t mn = 0, sn = 0;
        bool created = false;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        sqlite3 *db;
        int r;

        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        manifest = get_hex(body, "manifest");
        signature = get_hex(body, "signature");
        if (!manifest || !signature) {
                json_decref(body);
                return reply_error(req, KIND_INVALID_VALUE, "'%s': expected a sha256 digest",
                                   manifest ? "signature" : "manifest");
        }
        char mhex[65], shex[65];
        memcpy(mhex, manifest, 65);
        memcpy(shex, signature, 65);
        json_decref(body);

        r = read_blob(req->server, mhex, MANIFEST_SIZE_MAX, &mdata, &mn);
        if (r >= 0)
                r = read_blob(req->server, shex, SIGNATURE_SIZE_MAX, &sig, &sn);
        if (r == -ENOENT)
                return reply_error_extra(req, KIND_MISSING_BLOBS,
                                         json_pack("{s:[s]}", "missing", mdata ? shex : mhex),
                                         "the %s blob was not uploaded", mdata ? "signature" : "manifest");
        if (r == -EFBIG)
                return reply_error(req, KIND_TOO_LARGE, "the %s blob %.12s is over the cap of %d bytes",
                                   mdata ? "signature" : "manifest", mdata ? shex : mhex,
                                   mdata ? SIGNATURE_SIZE_MAX : MANIFEST_SIZE_MAX);
        if (r < 0)
                return reply_errno(req, r, mdata ? "signature" : "manifest");
        if (manifest_parse(mdata, mn, &m, err, sizeof err) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "%s", err);

        const ServerConfig *c = config_get(req->server);
        keys_dir = c->trusted_keys ? strdup(c->trusted_keys) : NULL;
        config_put(req->server);
        if (!keys_dir)
                return reply_error(req, KIND_BAD_SIGNATURE, "no trusted keys are configured");
        r = sign_verify_dir(keys_dir, mdata, mn, (const uint8_t *) sig, sn, &key);
        if (r < 0)
                return reply_error(req, KIND_BAD_SIGNATURE,
                                   "the signature of %s:%s does not verify against any key in '%s'", m->name,
                                   m->version, keys_dir);

        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        db = r >= 0 ? store_tx_sqlite(tx) : NULL;
        for (size_t i = 0; r >= 0 && i < m->n_artifacts; i++) {
                r = blob_present(req->server, tx, m->artifacts[i].sha256, m->artifacts[i].size);
                if (r == 0) {
                        if (!missing)
                                missing = json_array();
                        json_array_append_new(missing, json_string(m->artifacts[i].sha256));
                }
        }
        if (r >= 0 && (blob_present(req->server, tx, mhex, UINT64_MAX) <= 0 ||
                       blob_present(req->server, tx, shex, UINT64_MAX) <= 0)) {
                if (!missing)
                        missing = json_array();
                json_array_append_new(missing, json_string(blob_present(req->server, tx, mhex, UINT64_MAX) > 0 ? shex : mhex));
        }
        if (r >= 0 && !missing) {
                _cleanup_free_ char *ref = strdup_printf("%s:%s", m->name, m->version);
                r = ref ? images_resolve(tx, ref, existing) : -ENOMEM;
                if (r == 0)
                        r = streq(existing, mhex) ? 0 : -EEXIST;
                else if (r == -ENOENT) {
                        r = insert_image(db, mhex, m, mhex, shex, key);
                        if (r >= 0) {
                                json_t *detail = json_pack("{s:s, s:s}", "image", mhex, "signed_by", key);
                                r = audit_log(tx, req->actor, "image.publish", ref, detail);
                                json_decref(detail);
                                created = true;
                        }
                }
        }
        img = r >= 0 && !missing ? images_to_json(tx, mhex) : NULL;
        if (r >= 0 && !missing)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        if (r < 0) {
                json_decref(img);
                img = NULL;
        }

        if (missing)
                return reply_error_extra(req, KIND_MISSING_BLOBS, json_pack("{s:o}", "missing", missing),
                                         "%zu blob(s) of %s:%s were not uploaded", json_array_size(missing), m->name,
                                         m->version);
        if (r == -EEXIST)
                return reply_error(req, KIND_CONFLICT, "%s:%s is already published as image %.12s", m->name,
                                   m->version, existing);
        if (r < 0)
                return reply_errno(req, r, "image publish");
        if (!img)
                return reply_error(req, KIND_INTERNAL, "image %s vanished", mhex);
        if (created)
                log_info("published %s:%s (%.12s) signed by %s", m->name, m->version, mhex, key);
        return reply_json(req, created ? 201 : 200, img);
}

static enum MHD_Result handle_images_list(Request *req) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_t *list = json_array();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        sqlite3 *db;
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        db = r >= 0 ? store_tx_sqlite(tx) : NULL;
        if (r >= 0)
                r = db_prepare(db, "SELECT id FROM images ORDER BY created DESC, rowid DESC", &st);
        while (r >= 0 && (r = db_step(st)) > 0) {
                json_t *img = images_to_json(tx, (const char *) sqlite3_column_text(st, 0));
                if (!img) {
                        r = -EIO;
                        break;
                }
                json_array_append_new(list, img);
        }
        store_tx_rollback(&tx);
        if (r < 0) {
                json_decref(list);
                return reply_errno(req, r, "image list");
        }
        return reply_json(req, 200, json_pack("{s:o}", "images", list));
}

static enum MHD_Result reply_resolve_error(Request *req, int r) {
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "image '%s': not found", req->args[0]);
        if (r == -ENOTUNIQ)
                return reply_error(req, KIND_INVALID_VALUE, "image '%s': the prefix matches several images",
                                   req->args[0]);
        if (r == -EINVAL)
                return reply_error(req, KIND_INVALID_VALUE, "image '%s': not an image reference", req->args[0]);
        return reply_errno(req, r, "image");
}

static enum MHD_Result handle_image_get(Request *req) {
        char id[65];
        json_t *img = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = images_resolve(tx, req->args[0], id);
        if (r >= 0)
                img = images_to_json(tx, id);
        store_tx_rollback(&tx);
        if (r < 0)
                return reply_resolve_error(req, r);
        if (!img)
                return reply_error(req, KIND_INTERNAL, "image %s cannot be read", id);
        return reply_json(req, 200, img);
}

/* The digests of every blob image id is made of. */
static int image_blobs(sqlite3 *db, const char *id, char ***ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        r = db_prepare(db,
                       "SELECT sha256 FROM artifacts WHERE image_id = ?1 UNION SELECT manifest FROM images WHERE id = ?1 "
                       "UNION SELECT signature FROM images WHERE id = ?1",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        while ((r = db_step(st)) > 0)
                if (strv_extend(&l, (const char *) sqlite3_column_text(st, 0)) < 0)
                        return -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

static enum MHD_Result handle_image_delete(Request *req) {
        _cleanup_stmt_ sqlite3_stmt *del = NULL;
        _cleanup_strv_free_ char **removed = NULL, **blobs = NULL;
        _cleanup_free_ char *users = NULL;
        char id[65];
        _cleanup_store_tx_ StoreTx *tx = NULL;
        sqlite3 *db;
        int r;

        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        db = r >= 0 ? store_tx_sqlite(tx) : NULL;
        if (r >= 0)
                r = images_resolve(tx, req->args[0], id);
        if (r >= 0) {
                r = coord_image_users(tx, id, &users);
                if (r > 0)
                        r = -EBUSY;
        }
        if (r >= 0)
                r = image_blobs(db, id, &blobs);
        if (r >= 0)
                r = db_prepare(db, "DELETE FROM images WHERE id = ?", &del);
        if (r >= 0) {
                sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(del));
        }
        if (r >= 0)
                r = blobs_collect_garbage(tx, blobs, (int64_t) time(NULL) - 24 * 3600, &removed);
        if (r >= 0) {
                json_t *detail = json_pack("{s:I}", "blobs_removed", (json_int_t) strv_length(removed));
                r = audit_log(tx, req->actor, "image.delete", id, detail);
                json_decref(detail);
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        store_tx_rollback(&tx);
        if (r == -EBUSY)
                return reply_error(req, KIND_IN_USE, "image '%s' is in use: %s", req->args[0], strempty(users));
        if (r < 0)
                return reply_resolve_error(req, r);
        blobs_unlink(req->server, removed);
        log_info("deleted image %.12s, %zu blob(s) removed", id, strv_length(removed));
        return reply_json(req, 200,
                          json_pack("{s:s, s:I}", "deleted", id, "blobs_removed", (json_int_t) strv_length(removed)));
}

char *images_manifest_cmdline(Manifest *m) {
        char *c = strdup(m && m->cmdline ? m->cmdline : "");
        manifest_free(m);
        return c;
}

const Route image_routes[] = {
        { "POST", "v1/images", AUTH_ADMIN, BODY_JSON, handle_images_post },
        { "GET", "v1/images", AUTH_ADMIN, BODY_NONE, handle_images_list },
        { "GET", "v1/images/*", AUTH_ADMIN, BODY_NONE, handle_image_get },
        { "DELETE", "v1/images/*", AUTH_ADMIN, BODY_NONE, handle_image_delete },
        {},
};
