/* The image catalog (store-catalog.h) in sqlite. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-catalog.h"
#include "store-sqlite.h"
#include "util.h"

void catalog_image_release(Image *i) {
        if (!i)
                return;
        free(i->name);
        free(i->version);
        free(i->arch);
        free(i->kernel_version);
        free(i->signed_by);
        for (size_t k = 0; k < i->n_artifacts; k++) {
                free(i->artifacts[k].type);
                free(i->artifacts[k].fstype);
        }
        free(i->artifacts);
        *i = (Image) {};
}

void catalog_image_list_free(Image *l, size_t n) {
        for (size_t k = 0; l && k < n; k++)
                catalog_image_release(&l[k]);
        free(l);
}

static int find_one(sqlite3_stmt *st, char ret_id[65]) {
        int r = db_step(st);

        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        snprintf(ret_id, 65, "%s", (const char *) sqlite3_column_text(st, 0));
        return 0;
}

int store_image_find(StoreTx *tx, const char *name, const char *version, char ret_id[65]) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM images WHERE name = ? AND version = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, version, -1, SQLITE_STATIC);
        return find_one(st, ret_id);
}

int store_image_find_prefix(StoreTx *tx, const char *prefix, char ret_id[65]) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        char id[65];
        int r;

        r = store_stmt(tx, "SELECT id FROM images WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT 2", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
        r = find_one(st, id);
        if (r < 0)
                return r;
        r = db_step(st);
        if (r != 0)
                return r < 0 ? r : -ENOTUNIQ;
        memcpy(ret_id, id, sizeof id);
        return 0;
}

int store_image_find_latest(StoreTx *tx, const char *name, char ret_id[65]) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM images WHERE name = ? ORDER BY created DESC, rowid DESC LIMIT 1", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        return find_one(st, ret_id);
}

static int read_artifacts(StoreTx *tx, Image *i) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        size_t cap = 0;
        int r;

        r = store_stmt(tx, "SELECT type, sha256, size, fstype FROM artifacts WHERE image_id = ? ORDER BY type", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, i->id, -1, SQLITE_STATIC);
        while ((r = db_step(st)) > 0) {
                ImageArtifact *t = ARRAY_PUSH(i->artifacts, i->n_artifacts, cap);
                if (!t)
                        return -ENOMEM;
                *t = (ImageArtifact) {
                        .type = db_column_strdup(st, 0),
                        .size = (uint64_t) sqlite3_column_int64(st, 2),
                        .fstype = db_column_strdup(st, 3),
                };
                snprintf(t->sha256, sizeof t->sha256, "%s", (const char *) sqlite3_column_text(st, 1));
                if (!t->type)
                        return -ENOMEM;
        }
        return r;
}

static int count_hosts(StoreTx *tx, Image *i) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT count(*) FROM hosts WHERE image = ?1 OR current_image = ?1", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, i->id, -1, SQLITE_STATIC);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        i->hosts = (uint64_t) sqlite3_column_int64(st, 0);
        return 0;
}

int store_image_get(StoreTx *tx, const char *id, Image *ret) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        Image i = {};
        int r;

        r = store_stmt(tx,
                       "SELECT id, name, version, arch, kernel_version, manifest, signature, signed_by, created "
                       "FROM images WHERE id = ?",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        snprintf(i.id, sizeof i.id, "%s", (const char *) sqlite3_column_text(st, 0));
        i.name = db_column_strdup(st, 1);
        i.version = db_column_strdup(st, 2);
        i.arch = db_column_strdup(st, 3);
        i.kernel_version = db_column_strdup(st, 4);
        snprintf(i.manifest, sizeof i.manifest, "%s", (const char *) sqlite3_column_text(st, 5));
        snprintf(i.signature, sizeof i.signature, "%s", (const char *) sqlite3_column_text(st, 6));
        i.signed_by = db_column_strdup(st, 7);
        i.created = sqlite3_column_int64(st, 8);
        r = !i.name || !i.version || !i.arch ? -ENOMEM : 0;
        if (r >= 0)
                r = read_artifacts(tx, &i);
        if (r >= 0)
                r = count_hosts(tx, &i);
        if (r < 0) {
                catalog_image_release(&i);
                return r;
        }
        *ret = i;
        return 0;
}

static int column_strv(sqlite3_stmt *st, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        int r;

        while ((r = db_step(st)) > 0)
                if (strv_extend(&l, (const char *) sqlite3_column_text(st, 0)) < 0)
                        return -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

int store_image_ids(StoreTx *tx, char ***ret) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM images ORDER BY created DESC, rowid DESC", &st);
        if (r < 0)
                return r;
        return column_strv(st, ret);
}

int store_image_insert(StoreTx *tx, const Image *i) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL, *ar = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO images (id, name, version, arch, kernel_version, manifest, signature, signed_by, "
                       "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, i->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, i->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, i->version, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, i->arch, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, i->kernel_version, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, i->manifest, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, i->signature, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, i->signed_by, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, (sqlite3_int64) i->created);
        r = db_step(st);
        if (r < 0)
                return r;
        r = store_stmt(tx, "INSERT INTO artifacts (image_id, type, sha256, size, fstype) VALUES (?, ?, ?, ?, ?)", &ar);
        for (size_t k = 0; r >= 0 && k < i->n_artifacts; k++) {
                const ImageArtifact *a = &i->artifacts[k];
                sqlite3_bind_text(ar, 1, i->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(ar, 2, a->type, -1, SQLITE_STATIC);
                sqlite3_bind_text(ar, 3, a->sha256, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ar, 4, (sqlite3_int64) a->size);
                sqlite3_bind_text(ar, 5, a->fstype, -1, SQLITE_STATIC);
                r = db_step(ar);
                sqlite3_reset(ar);
        }
        return r;
}

int store_image_blobs(StoreTx *tx, const char *id, char ***ret) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT sha256 FROM artifacts WHERE image_id = ?1 UNION SELECT manifest FROM images WHERE id = ?1 "
                       "UNION SELECT signature FROM images WHERE id = ?1",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        return column_strv(st, ret);
}

int store_image_delete(StoreTx *tx, const char *id) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_stmt(tx, "DELETE FROM images WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        return db_step(st);
}

int store_blob_insert(StoreTx *tx, const char *hex, uint64_t size, int64_t now) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_stmt(tx, "INSERT INTO blobs (sha256, size, created) VALUES (?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) size);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) now);
        r = db_step(st);
        if (r < 0)
                return r;
        return sqlite3_changes(store_tx_sqlite(tx)) > 0;
}

#define BLOB_UNREFERENCED                                                                   \
        "sha256 NOT IN (SELECT sha256 FROM artifacts) AND sha256 NOT IN (SELECT manifest FROM images) " \
        "AND sha256 NOT IN (SELECT signature FROM images)"

int store_blobs_unreferenced(StoreTx *tx, char *const *candidates, int64_t cutoff, char ***ret) {
        _cleanup_stmt_reset_ sqlite3_stmt *old = NULL, *one = NULL;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        /* Orphans younger than the cutoff may belong to a push in progress. */
        r = store_stmt(tx, "SELECT sha256 FROM blobs WHERE created < ? AND " BLOB_UNREFERENCED, &old);
        if (r < 0)
                return r;
        sqlite3_bind_int64(old, 1, (sqlite3_int64) cutoff);
        r = column_strv(old, &l);
        if (r < 0)
                return r;
        r = store_stmt(tx, "SELECT sha256 FROM blobs WHERE sha256 = ? AND " BLOB_UNREFERENCED, &one);
        for (size_t i = 0; r >= 0 && candidates && candidates[i]; i++) {
                if (strv_contains(l, candidates[i]))
                        continue;
                sqlite3_bind_text(one, 1, candidates[i], -1, SQLITE_STATIC);
                r = db_step(one);
                if (r > 0)
                        r = strv_extend(&l, candidates[i]);
                sqlite3_reset(one);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

int store_blob_delete(StoreTx *tx, const char *hex) {
        _cleanup_stmt_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_stmt(tx, "DELETE FROM blobs WHERE sha256 = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
        return db_step(st);
}
