/* The image catalog (store-catalog.h): images, their artifacts, blobs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-catalog.h"
#include "store-db.h"
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

static int find_one(DbStmt *st, char ret_id[65]) {
        int r = db_step(st);

        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        snprintf(ret_id, 65, "%s", db_column_text(st, 0));
        return 0;
}

int store_image_find(StoreTx *tx, const char *name, const char *version, char ret_id[65]) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM images WHERE name = ? AND version = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_text(st, 2, version);
        return find_one(st, ret_id);
}

int store_image_find_prefix(StoreTx *tx, const char *prefix, char ret_id[65]) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        char id[65];
        int r;

        r = store_stmt(tx, "SELECT id FROM images WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT 2", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, prefix);
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
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM images WHERE name = ? ORDER BY created DESC, seq DESC LIMIT 1", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        return find_one(st, ret_id);
}

static int read_artifacts(StoreTx *tx, Image *i) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        size_t cap = 0;
        int r;

        r = store_stmt(tx, "SELECT type, sha256, size, fstype FROM artifacts WHERE image_id = ? ORDER BY type", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, i->id);
        while ((r = db_step(st)) > 0) {
                ImageArtifact *t = ARRAY_PUSH(i->artifacts, i->n_artifacts, cap);
                if (!t)
                        return -ENOMEM;
                *t = (ImageArtifact) {
                        .type = db_column_strdup(st, 0),
                        .size = (uint64_t) db_column_int64(st, 2),
                        .fstype = db_column_strdup(st, 3),
                };
                snprintf(t->sha256, sizeof t->sha256, "%s", db_column_text(st, 1));
                if (!t->type)
                        return -ENOMEM;
        }
        return r;
}

static int count_hosts(StoreTx *tx, Image *i) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT count(*) FROM hosts WHERE image = ?1 OR current_image = ?1", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, i->id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        i->hosts = (uint64_t) db_column_int64(st, 0);
        return 0;
}

int store_image_get(StoreTx *tx, const char *id, Image *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        Image i = {};
        int r;

        r = store_stmt(tx,
                       "SELECT id, name, version, arch, kernel_version, manifest, signature, signed_by, created "
                       "FROM images WHERE id = ?",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        snprintf(i.id, sizeof i.id, "%s", db_column_text(st, 0));
        i.name = db_column_strdup(st, 1);
        i.version = db_column_strdup(st, 2);
        i.arch = db_column_strdup(st, 3);
        i.kernel_version = db_column_strdup(st, 4);
        snprintf(i.manifest, sizeof i.manifest, "%s", db_column_text(st, 5));
        snprintf(i.signature, sizeof i.signature, "%s", db_column_text(st, 6));
        i.signed_by = db_column_strdup(st, 7);
        i.created = db_column_int64(st, 8);
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

static int column_strv(DbStmt *st, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        int r;

        while ((r = db_step(st)) > 0)
                if (strv_extend(&l, db_column_text(st, 0)) < 0)
                        return -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

int store_image_ids(StoreTx *tx, char ***ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM images ORDER BY created DESC, seq DESC", &st);
        if (r < 0)
                return r;
        return column_strv(st, ret);
}

int store_image_insert(StoreTx *tx, const Image *i) {
        _cleanup_stmt_reset_ DbStmt *st = NULL, *ar = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO images (id, name, version, arch, kernel_version, manifest, signature, signed_by, "
                       "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, i->id);
        db_bind_text(st, 2, i->name);
        db_bind_text(st, 3, i->version);
        db_bind_text(st, 4, i->arch);
        db_bind_text(st, 5, i->kernel_version);
        db_bind_text(st, 6, i->manifest);
        db_bind_text(st, 7, i->signature);
        db_bind_text(st, 8, i->signed_by);
        db_bind_int64(st, 9, i->created);
        r = db_step(st);
        if (r < 0)
                return r;
        r = store_stmt(tx, "INSERT INTO artifacts (image_id, type, sha256, size, fstype) VALUES (?, ?, ?, ?, ?)", &ar);
        for (size_t k = 0; r >= 0 && k < i->n_artifacts; k++) {
                const ImageArtifact *a = &i->artifacts[k];
                db_bind_text(ar, 1, i->id);
                db_bind_text(ar, 2, a->type);
                db_bind_text(ar, 3, a->sha256);
                db_bind_int64(ar, 4, a->size);
                db_bind_text(ar, 5, a->fstype);
                r = db_step(ar);
                db_reset(ar);
        }
        return r;
}

int store_image_blobs(StoreTx *tx, const char *id, char ***ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT sha256 FROM artifacts WHERE image_id = ?1 UNION SELECT manifest FROM images WHERE id = ?1 "
                       "UNION SELECT signature FROM images WHERE id = ?1 ORDER BY 1",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        return column_strv(st, ret);
}

int store_image_delete(StoreTx *tx, const char *id) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "DELETE FROM images WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        return db_step(st);
}

int store_blob_insert(StoreTx *tx, const char *hex, uint64_t size, int64_t now) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "INSERT INTO blobs (sha256, size, created) VALUES (?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, hex);
        db_bind_int64(st, 2, size);
        db_bind_int64(st, 3, now);
        r = db_step(st);
        if (r < 0)
                return r;
        return db_changes(st) > 0;
}

#define BLOB_UNREFERENCED                                                                   \
        "sha256 NOT IN (SELECT sha256 FROM artifacts) AND sha256 NOT IN (SELECT manifest FROM images) " \
        "AND sha256 NOT IN (SELECT signature FROM images)"

int store_blobs_unreferenced(StoreTx *tx, char *const *candidates, int64_t cutoff, char ***ret) {
        _cleanup_stmt_reset_ DbStmt *old = NULL, *one = NULL;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        /* Orphans younger than the cutoff may belong to a push in progress. */
        r = store_stmt(tx, "SELECT sha256 FROM blobs WHERE created < ? AND " BLOB_UNREFERENCED, &old);
        if (r < 0)
                return r;
        db_bind_int64(old, 1, cutoff);
        r = column_strv(old, &l);
        if (r < 0)
                return r;
        r = store_stmt(tx, "SELECT sha256 FROM blobs WHERE sha256 = ? AND " BLOB_UNREFERENCED, &one);
        for (size_t i = 0; r >= 0 && candidates && candidates[i]; i++) {
                if (strv_contains(l, candidates[i]))
                        continue;
                db_bind_text(one, 1, candidates[i]);
                r = db_step(one);
                if (r > 0)
                        r = strv_extend(&l, candidates[i]);
                db_reset(one);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

int store_blob_delete(StoreTx *tx, const char *hex) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "DELETE FROM blobs WHERE sha256 = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, hex);
        return db_step(st);
}
