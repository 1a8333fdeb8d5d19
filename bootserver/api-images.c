/* /v1/images: publish, list, show and delete images (docs/api.md), visible
 * or still replicating to enough instances. The catalog (catalog.c)
 * decides; this file parses, renders and answers. */
#include <inttypes.h>
#include <time.h>

#include "blobs.h"
#include "catalog.h"
#include "coordinator.h"
#include "log.h"
#include "manifest.h"
#include "peers.h"
#include "replicator.h"
#include "routes.h"
#include "server.h"
#include "util.h"

static json_t *image_to_json(const Image *i) {
        json_t *arts = json_array(), *img;

        for (size_t k = 0; k < i->n_artifacts; k++) {
                const ImageArtifact *a = &i->artifacts[k];
                json_array_append_new(arts, json_pack("{s:s, s:s, s:I, s:s?}", "type", a->type, "sha256", a->sha256,
                                                      "size", (json_int_t) a->size, "fstype", a->fstype));
        }
        img = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:s, s:s?, s:I, s:o}", "id", i->id, "name", i->name,
                        "version", i->version, "arch", i->arch, "kernel_version", i->kernel_version, "manifest",
                        i->manifest, "signature", i->signature, "signed_by", i->signed_by, "created",
                        (json_int_t) i->created, "artifacts", arts);
        if (img)
                json_object_set_new(img, "hosts", json_integer((json_int_t) i->hosts));
        if (img)
                json_object_set_new(img, "state", json_string("visible"));
        return img;
}

/* An image still replicating: what it will be, with its state and copies. */
static json_t *replicating_to_json(const Image *i, uint64_t copies, uint64_t replicas) {
        json_t *img = image_to_json(i);

        if (img) {
                json_object_del(img, "hosts");
                json_object_set_new(img, "state", json_string("replicating"));
                json_object_set_new(img, "copies", json_integer((json_int_t) copies));
                json_object_set_new(img, "replicas", json_integer((json_int_t) replicas));
        }
        return img;
}

/* Reads replicating image id with its copies and the replicas wanted. */
static int replicating_read(Request *req, StoreTx *tx, const char *id, Image *ret, uint64_t *ret_copies,
                            uint64_t *ret_replicas) {
        int r;

        r = replicator_replicas(req->server, tx, ret_replicas);
        if (r >= 0)
                r = store_replicating_copies(tx, id, ret_copies);
        if (r >= 0)
                r = store_replicating_get(tx, id, ret);
        return r;
}

static const char *get_hex(json_t *body, const char *key) {
        const char *v = json_string_value(json_object_get(body, key));
        return v && sha256_hex_valid(v) ? v : NULL;
}

static enum MHD_Result reply_missing(Request *req, char **missing, const Manifest *m) {
        json_t *l = json_array();

        for (char **h = missing; h && *h; h++)
                json_array_append_new(l, json_string(*h));
        return reply_error_extra(req, KIND_MISSING_BLOBS, json_pack("{s:o}", "missing", l),
                                 "%zu blob(s) of %s:%s were not uploaded", strv_length(missing), m->name, m->version);
}

static enum MHD_Result handle_images_post(Request *req) {
        static const char *const allowed[] = { "manifest", "signature", NULL };
        _cleanup_free_ char *key = NULL, *keys_dir = NULL;
        _cleanup_strv_free_ char **missing = NULL;
        _cleanup_manifest_free_ Manifest *m = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        enum MHD_Result result;
        const char *manifest, *signature;
        char err[256] = "", existing[65], mhex[65], shex[65];
        Image img = {};
        bool created = false, at_sig = false;
        json_t *body;
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
        memcpy(mhex, manifest, 65);
        memcpy(shex, signature, 65);
        json_decref(body);

        const ServerConfig *c = config_get(req->server);
        keys_dir = c->trusted_keys ? strdup(c->trusted_keys) : NULL;
        config_put(req->server);
        r = catalog_image_verify(req->server->state_dir, keys_dir, mhex, shex, &m, &key, &at_sig, err, sizeof err);
        if (r == -ENOENT)
                return reply_error_extra(req, KIND_MISSING_BLOBS, json_pack("{s:[s]}", "missing", at_sig ? shex : mhex),
                                         "the %s blob was not uploaded", at_sig ? "signature" : "manifest");
        if (r == -EFBIG)
                return reply_error(req, KIND_TOO_LARGE, "the %s blob %.12s is over the cap of %d bytes",
                                   at_sig ? "signature" : "manifest", at_sig ? shex : mhex,
                                   at_sig ? 4096 : MANIFEST_SIZE_MAX);
        if (r == -EBADMSG)
                return reply_error(req, KIND_INVALID_VALUE, "%s", err);
        if (r == -ENOKEY)
                return reply_error(req, KIND_BAD_SIGNATURE, "no trusted keys are configured");
        if (r == -EKEYREJECTED)
                return reply_error(req, KIND_BAD_SIGNATURE,
                                   "the signature of %s:%s does not verify against any key in '%s'", m->name,
                                   m->version, keys_dir);
        if (r < 0)
                return reply_errno(req, r, at_sig ? "signature" : "manifest");

        _cleanup_free_ char *name = NULL, *url = NULL;
        uint64_t replicas = 1, copies = 0;
        r = peers_self(req->server, &name, &url);
        if (r < 0)
                return reply_errno(req, r, "image publish");
        BlobSite site = { .state_dir = req->server->state_dir, .instance = name, .url = url };
        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = replicator_replicas(req->server, tx, &replicas);
        if (r >= 0)
                r = catalog_image_publish(tx, &site, m, mhex, shex, key, req->actor, (int64_t) req->now, replicas,
                                          &missing, existing, &created, &copies);
        if (r >= 0)
                r = copies >= replicas ? catalog_image_get(tx, mhex, &img) : store_replicating_get(tx, mhex, &img);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);

        if (missing)
                return reply_missing(req, missing, m);
        if (r == -EEXIST)
                return reply_error(req, KIND_CONFLICT, "%s:%s is already published as image %.12s", m->name,
                                   m->version, existing);
        if (r < 0) {
                catalog_image_release(&img);
                return reply_errno(req, r, "image publish");
        }
        if (copies < replicas) {
                if (created)
                        log_info("pushed %s:%s (%.12s) signed by %s: replicating, %" PRIu64 " of %" PRIu64
                                 " copies", m->name, m->version, mhex, key, copies, replicas);
                body = replicating_to_json(&img, copies, replicas);
                catalog_image_release(&img);
                return reply_json(req, 202, body);
        }
        if (created)
                log_info("published %s:%s (%.12s) signed by %s", m->name, m->version, mhex, key);
        body = image_to_json(&img);
        catalog_image_release(&img);
        return reply_json(req, created ? 201 : 200, body);
}

static enum MHD_Result handle_images_list(Request *req) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        Image *l = NULL;
        size_t n = 0;
        json_t *list;
        int r;

        _cleanup_strv_free_ char **pending = NULL;
        json_t *replicating = json_array();
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = catalog_image_list(tx, &l, &n);
        if (r >= 0)
                r = store_replicating_ids(tx, &pending);
        for (size_t k = 0; r >= 0 && pending && pending[k]; k++) {
                Image img = {};
                uint64_t copies = 0, replicas = 1;
                r = replicating_read(req, tx, pending[k], &img, &copies, &replicas);
                if (r >= 0)
                        json_array_append_new(replicating, replicating_to_json(&img, copies, replicas));
                catalog_image_release(&img);
        }
        store_tx_rollback(&tx);
        if (r < 0) {
                catalog_image_list_free(l, n);
                json_decref(replicating);
                return reply_errno(req, r, "image list");
        }
        list = json_array();
        for (size_t k = 0; k < n; k++)
                json_array_append_new(list, image_to_json(&l[k]));
        catalog_image_list_free(l, n);
        return reply_json(req, 200, json_pack("{s:o, s:o}", "images", list, "replicating", replicating));
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
        _cleanup_store_tx_ StoreTx *tx = NULL;
        char id[65];
        Image img = {};
        json_t *j;
        int r, g = 0;

        uint64_t copies = 0, replicas = 1;
        bool replicating = false;
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = catalog_resolve(tx, req->args[0], id);
        if (r == -ENOENT) {
                r = catalog_resolve_replicating(tx, req->args[0], id);
                replicating = r >= 0;
        }
        if (r >= 0)
                g = replicating ? replicating_read(req, tx, id, &img, &copies, &replicas) : catalog_image_get(tx, id, &img);
        store_tx_rollback(&tx);
        if (r < 0)
                return reply_resolve_error(req, r);
        if (g < 0)
                return reply_error(req, KIND_INTERNAL, "image %s cannot be read", id);
        j = replicating ? replicating_to_json(&img, copies, replicas) : image_to_json(&img);
        catalog_image_release(&img);
        return reply_json(req, 200, j);
}

static enum MHD_Result handle_image_delete(Request *req) {
        _cleanup_strv_free_ char **removed = NULL;
        _cleanup_free_ char *users = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        char id[65];
        int r;

        _cleanup_free_ char *name = NULL, *url = NULL;
        r = peers_self(req->server, &name, &url);
        if (r < 0)
                return reply_errno(req, r, "image delete");
        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = catalog_resolve(tx, req->args[0], id);
        if (r == -ENOENT)
                r = catalog_resolve_replicating(tx, req->args[0], id);
        /* In use: a host runs it or a rollout may roll back to it. */
        if (r >= 0) {
                r = coord_image_users(tx, id, &users);
                if (r > 0)
                        r = -EBUSY;
        }
        if (r >= 0)
                r = catalog_image_delete(tx, id, name, req->actor, (int64_t) req->now, &removed);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        if (r == -EBUSY)
                return reply_error(req, KIND_IN_USE, "image '%s' is in use: %s", req->args[0], strempty(users));
        if (r < 0)
                return reply_resolve_error(req, r);
        blobs_unlink(req->server->state_dir, removed);
        log_info("deleted image %.12s, %zu blob(s) removed", id, strv_length(removed));
        return reply_json(req, 200,
                          json_pack("{s:s, s:I}", "deleted", id, "blobs_removed", (json_int_t) strv_length(removed)));
}

const Route image_routes[] = {
        { "POST", "v1/images", AUTH_ADMIN, BODY_JSON, handle_images_post },
        { "GET", "v1/images", AUTH_VIEWER, BODY_NONE, handle_images_list },
        { "GET", "v1/images/*", AUTH_VIEWER, BODY_NONE, handle_image_get },
        { "DELETE", "v1/images/*", AUTH_ADMIN, BODY_NONE, handle_image_delete },
        {},
};
