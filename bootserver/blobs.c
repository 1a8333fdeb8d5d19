#include <sys/stat.h>

#include "audit.h"
#include "blobs.h"
#include "blobstore.h"
#include "log.h"
#include "store-catalog.h"
#include "util.h"

struct BlobWriter {
        char hex[65];
        BlobstoreWriter *w;
};

char *blob_path(const char *state_dir, const char *hex) {
        char *p = NULL;

        return blobstore_path(state_dir, hex, &p) < 0 ? NULL : p;
}

int blob_writer_new(const char *state_dir, const char *hex, BlobWriter **ret) {
        BlobWriter *w;
        int r;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        r = blobstore_writer_new(state_dir, hex, &w->w);
        if (r < 0) {
                free(w);
                return r;
        }
        memcpy(w->hex, hex, 65);
        *ret = w;
        return 0;
}

int blob_writer_write(BlobWriter *w, const void *data, size_t n) {
        return blobstore_writer_write(w->w, data, n);
}

void blob_writer_abort(BlobWriter *w) {
        if (!w)
                return;
        blobstore_writer_free(w->w);
        free(w);
}

static int record(StoreDb *db, const BlobSite *site, const char *hex, uint64_t size, const char *actor, int64_t now) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *detail;
        int r;

        r = store_tx_begin(db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = store_blob_insert(tx, hex, size, now);
        /* Uploaded again after its image was deleted: young again, for the
         * push it now belongs to. */
        if (r == 0)
                r = store_blob_renew(tx, hex, now);
        if (r >= 0) {
                int h = store_blob_holder_add(tx, hex, site->instance, site->url, now);
                r = h < 0 ? h : r;
        }
        if (r > 0 && actor) {
                detail = json_pack("{s:I}", "size", (json_int_t) size);
                r = audit_log_at(tx, now, actor, "blob.upload", hex, detail);
                json_decref(detail);
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        return r;
}

int blob_writer_commit(StoreDb *db, BlobWriter *w, const BlobSite *site, const char *actor, int64_t now,
                       bool *ret_created) {
        uint64_t size = 0;
        int r, made;

        made = blobstore_writer_commit(TAKE_PTR(w->w), NULL, &size);
        if (made == -EBADMSG)
                log_debug("blob upload: the bytes are not %s", w->hex);
        /* A blob that was there already: the catalog must know it too. */
        r = made < 0 ? made : record(db, site, w->hex, size, actor, now);
        blob_writer_abort(w);
        if (r >= 0)
                *ret_created = made > 0;
        return r;
}

int blobs_present(const BlobSite *site, StoreTx *tx, const char *hex, uint64_t size_check, int64_t now) {
        _cleanup_free_ char *path = NULL;
        struct stat sb;
        int r;

        if (blobstore_path(site->state_dir, hex, &path) < 0)
                return 0;
        /* The file decides, as for GET and HEAD; a file that lost its row
         * (a crash between rename and commit) gets it back. */
        if (stat(path, &sb) < 0)
                return 0;
        if (size_check != UINT64_MAX && (uint64_t) sb.st_size != size_check)
                return 0;
        r = store_blob_insert(tx, hex, (uint64_t) sb.st_size, now);
        if (r >= 0)
                r = store_blob_holder_add(tx, hex, site->instance, site->url, now);
        return r < 0 ? r : 1;
}

int blobs_collect_garbage(StoreTx *tx, const char *instance, char *const *candidates, int64_t orphan_cutoff,
                          char ***ret_removed) {
        _cleanup_strv_free_ char **removed = NULL;
        uint64_t copies = 0;
        int r;

        r = store_blobs_unreferenced(tx, candidates, orphan_cutoff, &removed);
        for (size_t i = 0; r >= 0 && removed && removed[i]; i++) {
                r = store_blob_holder_remove(tx, removed[i], instance);
                if (r >= 0)
                        r = store_blob_copies(tx, removed[i], &copies);
                if (r >= 0)
                        r = copies == 0 ? store_blob_delete(tx, removed[i]) : store_blob_release(tx, removed[i]);
        }
        if (r < 0)
                return r;
        *ret_removed = TAKE_PTR(removed);
        return 0;
}

void blobs_unlink(const char *state_dir, char *const *hexes) {
        for (size_t i = 0; hexes && hexes[i]; i++) {
                _cleanup_free_ char *p = blob_path(state_dir, hexes[i]);
                if (p && unlink(p) < 0 && errno != ENOENT)
                        log_warning_errno(negative_errno(), "cannot remove blob '%s': %m", p);
        }
}
