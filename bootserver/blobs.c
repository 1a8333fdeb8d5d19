#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#include "audit.h"
#include "blobs.h"
#include "blobstore.h"
#include "server.h"
#include "fileio.h"
#include "hash.h"
#include "log.h"
#include "util.h"
#include "store-sqlite.h"

struct BlobWriter {
        char hex[65];
        BlobstoreWriter *w;
};

char *blob_path(const Server *s, const char *hex) {
        char *p = NULL;

        return blobstore_path(s->state_dir, hex, &p) < 0 ? NULL : p;
}

int blob_writer_new(Server *s, const char *hex, BlobWriter **ret) {
        BlobWriter *w;
        int r;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        r = blobstore_writer_new(s->state_dir, hex, &w->w);
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

static int record(Server *s, const char *hex, uint64_t size, const char *actor) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *detail;
        int r;

        r = store_tx_begin(s->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = db_prepare(store_tx_sqlite(tx), "INSERT OR IGNORE INTO blobs (sha256, size, created) VALUES (?, ?, ?)", &st);
        if (r >= 0) {
                sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, (sqlite3_int64) size);
                sqlite3_bind_int64(st, 3, (sqlite3_int64) time(NULL));
                r = db_errno(sqlite3_step(st));
        }
        if (r >= 0 && sqlite3_changes(store_tx_sqlite(tx)) > 0) {
                detail = json_pack("{s:I}", "size", (json_int_t) size);
                r = audit_log(tx, actor, "blob.upload", hex, detail);
                json_decref(detail);
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        return r;
}

int blob_writer_commit(Server *s, BlobWriter *w, const char *actor, bool *ret_created) {
        uint64_t size = 0;
        int r, made;

        made = blobstore_writer_commit(TAKE_PTR(w->w), NULL, &size);
        if (made == -EBADMSG)
                log_debug("blob upload: the bytes are not %s", w->hex);
        /* A blob that was there already: the catalog must know it too. */
        r = made < 0 ? made : record(s, w->hex, size, actor);
        blob_writer_abort(w);
        if (r >= 0)
                *ret_created = made > 0;
        return r;
}

int blobs_present(const char *state_dir, StoreTx *tx, const char *hex, uint64_t size_check) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *path = NULL;
        struct stat sb;
        int r;

        if (blobstore_path(state_dir, hex, &path) < 0)
                return 0;
        /* The file decides, as for GET and HEAD; a file that lost its row
         * (a crash between rename and commit) gets it back. */
        if (stat(path, &sb) < 0)
                return 0;
        if (size_check != UINT64_MAX && (uint64_t) sb.st_size != size_check)
                return 0;
        r = db_prepare(db, "INSERT OR IGNORE INTO blobs (sha256, size, created) VALUES (?, ?, ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) sb.st_size);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) time(NULL));
        r = db_errno(sqlite3_step(st));
        return r < 0 ? r : 1;
}

int blobs_collect_garbage(StoreTx *tx, char *const *candidates, int64_t orphan_cutoff, char ***ret_removed) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *sel = NULL, *del = NULL;
        _cleanup_strv_free_ char **removed = NULL;
        static const char unreferenced[] =
                "sha256 NOT IN (SELECT sha256 FROM artifacts) AND sha256 NOT IN (SELECT manifest FROM images) "
                "AND sha256 NOT IN (SELECT signature FROM images)";
        _cleanup_free_ char *sql = NULL;
        int r;

        /* Orphans younger than the cutoff may belong to a push in progress. */
        sql = strdup_printf("SELECT sha256 FROM blobs WHERE %s AND (created < ?1 OR sha256 IN (SELECT value FROM "
                            "json_each(?2)))",
                            unreferenced);
        if (!sql)
                return -ENOMEM;
        r = db_prepare(db, sql, &sel);
        if (r < 0)
                return r;
        json_t *list = json_array();
        for (size_t i = 0; candidates && candidates[i]; i++)
                json_array_append_new(list, json_string(candidates[i]));
        _cleanup_free_ char *list_text = json_dumps(list, JSON_COMPACT);
        json_decref(list);
        if (!list_text)
                return -ENOMEM;
        sqlite3_bind_int64(sel, 1, orphan_cutoff);
        sqlite3_bind_text(sel, 2, list_text, -1, SQLITE_STATIC);
        while ((r = db_step(sel)) > 0) {
                r = strv_extend(&removed, (const char *) sqlite3_column_text(sel, 0));
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = db_prepare(db, "DELETE FROM blobs WHERE sha256 = ?", &del);
        for (size_t i = 0; r >= 0 && removed && removed[i]; i++) {
                sqlite3_bind_text(del, 1, removed[i], -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(del));
                sqlite3_reset(del);
        }
        if (r < 0)
                return r;
        *ret_removed = TAKE_PTR(removed);
        return 0;
}

void blobs_unlink(const Server *s, char *const *hexes) {
        for (size_t i = 0; hexes && hexes[i]; i++) {
                _cleanup_free_ char *p = blob_path(s, hexes[i]);
                if (p && unlink(p) < 0 && errno != ENOENT)
                        log_warning_errno(negative_errno(), "cannot remove blob '%s': %m", p);
        }
}
