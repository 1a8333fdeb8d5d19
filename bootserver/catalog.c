#include <errno.h>

#include "audit.h"
#include "blobs.h"
#include "blobstore.h"
#include "catalog.h"
#include "fileio.h"
#include "manifest.h"
#include "sign.h"
#include "util.h"

/* A signature is 64 bytes (Ed25519); anything near this cap is not one. */
#define SIGNATURE_SIZE_MAX 4096

static bool is_hex(const char *s) {
        for (; *s; s++)
                if (!strchr("0123456789abcdef", *s))
                        return false;
        return true;
}

/* ref among the visible images, or among the replicating ones (which have
 * no "newest of a name"). */
static int resolve(StoreTx *tx, const char *ref, bool replicating, char ret_id[65]) {
        _cleanup_free_ char *name = NULL;
        const char *colon = strchr(ref, ':');
        size_t n = strlen(ref);

        if (n == 0 || n > 200)
                return -EINVAL;
        if (colon) {
                name = strndup(ref, (size_t) (colon - ref));
                if (!name)
                        return -ENOMEM;
                return replicating ? store_replicating_find(tx, name, colon + 1, ret_id)
                                   : store_image_find(tx, name, colon + 1, ret_id);
        }
        if (n >= 8 && n <= 64 && is_hex(ref))
                return replicating ? store_replicating_find_prefix(tx, ref, ret_id)
                                   : store_image_find_prefix(tx, ref, ret_id);
        return replicating ? -ENOENT : store_image_find_latest(tx, ref, ret_id);
}

int catalog_resolve(StoreTx *tx, const char *ref, char ret_id[65]) {
        return resolve(tx, ref, false, ret_id);
}

int catalog_image_get(StoreTx *tx, const char *id, Image *ret) {
        return store_image_get(tx, id, ret);
}

int catalog_image_list(StoreTx *tx, Image **ret, size_t *ret_n) {
        _cleanup_strv_free_ char **ids = NULL;
        size_t n;
        Image *l;
        int r;

        r = store_image_ids(tx, &ids);
        if (r < 0)
                return r;
        n = strv_length(ids);
        l = calloc(n ? n : 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        for (size_t k = 0; k < n; k++) {
                r = store_image_get(tx, ids[k], &l[k]);
                if (r < 0) {
                        catalog_image_list_free(l, n);
                        return r == -ENOENT ? -EIO : r;
                }
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

static int read_blob(const char *state_dir, const char *hex, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *path = NULL;

        if (blobstore_path(state_dir, hex, &path) < 0)
                return -EINVAL;
        return read_full_file(path, max, ret, ret_size);
}

int catalog_load_manifest(const char *state_dir, const char *manifest_hex, Manifest **ret) {
        _cleanup_free_ char *data = NULL;
        char err[256];
        size_t n;
        int r;

        r = read_blob(state_dir, manifest_hex, MANIFEST_SIZE_MAX, &data, &n);
        if (r < 0)
                return r;
        return manifest_parse(data, n, ret, err, sizeof err) < 0 ? -EBADMSG : 0;
}

int catalog_image_verify(const char *state_dir, const char *keys_dir, const char *manifest_hex,
                         const char *signature_hex, Manifest **ret_manifest, char **ret_key, bool *ret_signature,
                         char *error, size_t error_size) {
        _cleanup_free_ char *mdata = NULL, *sig = NULL, *key = NULL;
        _cleanup_manifest_free_ Manifest *m = NULL;
        size_t mn = 0, sn = 0;
        int r;

        r = read_blob(state_dir, manifest_hex, MANIFEST_SIZE_MAX, &mdata, &mn);
        if (r >= 0)
                r = read_blob(state_dir, signature_hex, SIGNATURE_SIZE_MAX, &sig, &sn);
        *ret_signature = mdata != NULL;
        if (r < 0)
                return r;
        if (manifest_parse(mdata, mn, &m, error, error_size) < 0)
                return -EBADMSG;
        /* The manifest goes back on a refused signature too, for the
         * message. */
        *ret_manifest = TAKE_PTR(m);
        if (!keys_dir)
                return -ENOKEY;
        if (sign_verify_dir(keys_dir, mdata, mn, (const uint8_t *) sig, sn, &key) < 0)
                return -EKEYREJECTED;
        *ret_key = TAKE_PTR(key);
        return 0;
}

/* The fewest holders that any of the given blobs has. */
static int fewest_copies(StoreTx *tx, const Manifest *m, const char *manifest_hex, const char *signature_hex,
                         uint64_t *ret) {
        uint64_t fewest, c = 0;
        int r;

        r = store_blob_copies(tx, manifest_hex, &fewest);
        if (r >= 0)
                r = store_blob_copies(tx, signature_hex, &c);
        fewest = MIN(fewest, c);
        for (size_t i = 0; r >= 0 && i < m->n_artifacts; i++) {
                r = store_blob_copies(tx, m->artifacts[i].sha256, &c);
                fewest = MIN(fewest, c);
        }
        if (r < 0)
                return r;
        *ret = fewest;
        return 0;
}

static int audit_publish(StoreTx *tx, const char *actor, int64_t now, const char *name, const char *version,
                         const char *id, const char *key, const char *action, uint64_t copies) {
        _cleanup_free_ char *ref = strdup_printf("%s:%s", name, version);
        json_t *detail;
        int r;

        if (!ref)
                return -ENOMEM;
        detail = json_pack("{s:s, s:s?, s:I}", "image", id, "signed_by", key, "copies", (json_int_t) copies);
        r = audit_log_at(tx, now, actor, action, ref, detail);
        json_decref(detail);
        return r;
}

int catalog_image_publish(StoreTx *tx, const BlobSite *site, const Manifest *m, const char *manifest_hex,
                          const char *signature_hex, const char *key, const char *actor, int64_t now,
                          uint64_t replicas, char ***ret_missing, char ret_existing[65], bool *ret_created,
                          uint64_t *ret_copies) {
        _cleanup_strv_free_ char **missing = NULL;
        _cleanup_free_ char *ref = NULL;
        _cleanup_free_ ImageArtifact *arts = NULL;
        uint64_t copies = 0;
        bool have_manifest;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < m->n_artifacts; i++) {
                r = blobs_present(site, tx, m->artifacts[i].sha256, m->artifacts[i].size, now);
                if (r == 0 && strv_extend(&missing, m->artifacts[i].sha256) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        r = blobs_present(site, tx, manifest_hex, UINT64_MAX, now);
        if (r < 0)
                return r;
        have_manifest = r > 0;
        r = blobs_present(site, tx, signature_hex, UINT64_MAX, now);
        if (r < 0)
                return r;
        if ((!have_manifest || r == 0) && strv_extend(&missing, have_manifest ? signature_hex : manifest_hex) < 0)
                return -ENOMEM;
        if (missing) {
                *ret_missing = TAKE_PTR(missing);
                return -ENOENT;
        }

        ref = strdup_printf("%s:%s", m->name, m->version);
        if (!ref)
                return -ENOMEM;
        r = catalog_resolve(tx, ref, ret_existing);
        if (r == 0) {
                if (!streq(ret_existing, manifest_hex))
                        return -EEXIST;
                *ret_created = false;
                *ret_copies = MAX(replicas, 1);
                return 0;
        }
        if (r != -ENOENT)
                return r;
        r = store_replicating_find(tx, m->name, m->version, ret_existing);
        if (r == 0) {
                if (!streq(ret_existing, manifest_hex))
                        return -EEXIST;
                *ret_created = false;
                r = catalog_replicating_publish(tx, manifest_hex, replicas, now, ret_copies);
                return r < 0 ? r : 0;
        }
        if (r != -ENOENT)
                return r;

        r = fewest_copies(tx, m, manifest_hex, signature_hex, &copies);
        if (r < 0)
                return r;
        arts = calloc(m->n_artifacts ? m->n_artifacts : 1, sizeof *arts);
        if (!arts)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_artifacts; i++) {
                arts[i] = (ImageArtifact) {
                        .type = m->artifacts[i].type,
                        .size = m->artifacts[i].size,
                        .fstype = m->artifacts[i].fstype,
                };
                snprintf(arts[i].sha256, sizeof arts[i].sha256, "%s", m->artifacts[i].sha256);
        }
        Image img = {
                .name = m->name,
                .version = m->version,
                .arch = m->arch,
                .kernel_version = m->kernel_version,
                .signed_by = (char *) key,
                .created = now,
                .artifacts = arts,
                .n_artifacts = m->n_artifacts,
        };
        snprintf(img.id, sizeof img.id, "%s", manifest_hex);
        snprintf(img.manifest, sizeof img.manifest, "%s", manifest_hex);
        snprintf(img.signature, sizeof img.signature, "%s", signature_hex);
        if (copies >= replicas)
                r = store_image_insert(tx, &img);
        else
                r = store_replicating_insert(tx, &img, actor);
        if (r >= 0)
                r = audit_publish(tx, actor, now, m->name, m->version, manifest_hex, key,
                                  copies >= replicas ? "image.publish" : "image.push", copies);
        if (r < 0)
                return r;
        *ret_created = true;
        *ret_copies = copies;
        return 0;
}

int catalog_replicating_publish(StoreTx *tx, const char *id, uint64_t replicas, int64_t now, uint64_t *ret_copies) {
        _cleanup_free_ char *actor = NULL;
        char other[65];
        uint64_t copies = 0;
        Image img = {};
        int r;

        r = store_replicating_copies(tx, id, &copies);
        if (r < 0)
                return r;
        *ret_copies = copies;
        if (copies < replicas)
                return 0;
        r = store_replicating_get(tx, id, &img);
        if (r >= 0)
                r = store_replicating_actor(tx, id, &actor);
        if (r >= 0) {
                /* Checked first: a failed INSERT would end the transaction
                 * on PostgreSQL. */
                r = store_image_find(tx, img.name, img.version, other);
                if (r == 0)
                        r = -EEXIST;
                else if (r == -ENOENT)
                        r = store_replicating_publish(tx, id);
        }
        if (r >= 0)
                r = audit_publish(tx, actor, now, img.name, img.version, id, img.signed_by, "image.publish", copies);
        catalog_image_release(&img);
        return r < 0 ? r : 1;
}

int catalog_resolve_replicating(StoreTx *tx, const char *ref, char ret_id[65]) {
        return resolve(tx, ref, true, ret_id);
}

int catalog_image_delete(StoreTx *tx, const char *id, const char *instance, const char *actor, int64_t now,
                         char ***ret_removed) {
        _cleanup_strv_free_ char **blobs = NULL, **removed = NULL;
        json_t *detail;
        Image img = {};
        bool replicating;
        int r;

        r = store_image_get(tx, id, &img);
        replicating = r == -ENOENT;
        catalog_image_release(&img);
        if (r < 0 && !replicating)
                return r;
        r = replicating ? store_replicating_blobs(tx, id, &blobs) : store_image_blobs(tx, id, &blobs);
        if (r < 0)
                return r;
        r = replicating ? store_replicating_delete(tx, id) : store_image_delete(tx, id);
        if (r < 0)
                return r;
        r = blobs_collect_garbage(tx, instance, blobs, now - 24 * 3600, &removed);
        if (r < 0)
                return r;
        detail = json_pack("{s:I, s:b}", "blobs_removed", (json_int_t) strv_length(removed), "replicating",
                           replicating);
        r = audit_log_at(tx, now, actor, "image.delete", id, detail);
        json_decref(detail);
        if (r < 0)
                return r;
        *ret_removed = TAKE_PTR(removed);
        return 0;
}
