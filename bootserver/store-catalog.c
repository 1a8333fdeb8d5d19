/* The image catalog (store-catalog.h): images, their artifacts, blobs. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-catalog.h"
#include "store-db.h"
#include "store-instances-sql.h"
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

/* The one ID that sql (name ?1, version ?2) finds. */
static int find_by_name(StoreTx *tx, const char *sql, const char *name, const char *version, char ret_id[65]) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, sql, &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_text(st, 2, version);
        return find_one(st, ret_id);
}

/* The one ID that sql (the first two IDs from prefix ?1) finds:
 * -ENOTUNIQ when there are two. */
static int find_by_prefix(StoreTx *tx, const char *sql, const char *prefix, char ret_id[65]) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        char id[65];
        int r;

        r = store_stmt(tx, sql, &st);
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

int store_image_find(StoreTx *tx, const char *name, const char *version, char ret_id[65]) {
        return find_by_name(tx, "SELECT id FROM images WHERE name = ? AND version = ?", name, version, ret_id);
}

int store_image_find_prefix(StoreTx *tx, const char *prefix, char ret_id[65]) {
        return find_by_prefix(tx, "SELECT id FROM images WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT 2", prefix,
                              ret_id);
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

/* The tables of visible images and of those still replicating, which have
 * the same columns: their statements, as literals (the drivers keep a
 * prepared statement per text). */
typedef struct ImageTables {
        const char *select_image, *select_artifacts, *insert_image, *insert_artifact;
} ImageTables;

#define IMAGE_COLUMNS "id, name, version, arch, kernel_version, manifest, signature, signed_by, created"
#define ARTIFACT_COLUMNS "image_id, type, sha256, size, fstype"

static const ImageTables visible_tables = {
        "SELECT " IMAGE_COLUMNS " FROM images WHERE id = ?",
        "SELECT type, sha256, size, fstype FROM artifacts WHERE image_id = ? ORDER BY type",
        "INSERT INTO images (" IMAGE_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "INSERT INTO artifacts (" ARTIFACT_COLUMNS ") VALUES (?, ?, ?, ?, ?)",
};
static const ImageTables replicating_tables = {
        "SELECT " IMAGE_COLUMNS " FROM images_replicating WHERE id = ?",
        "SELECT type, sha256, size, fstype FROM artifacts_replicating WHERE image_id = ? ORDER BY type",
        "INSERT INTO images_replicating (" IMAGE_COLUMNS ", actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "INSERT INTO artifacts_replicating (" ARTIFACT_COLUMNS ") VALUES (?, ?, ?, ?, ?)",
};

static int read_artifacts(StoreTx *tx, const ImageTables *t, Image *i) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        size_t cap = 0;
        int r;

        r = store_stmt(tx, t->select_artifacts, &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, i->id);
        while ((r = db_step(st)) > 0) {
                ImageArtifact *a = ARRAY_PUSH(i->artifacts, i->n_artifacts, cap);
                if (!a)
                        return -ENOMEM;
                *a = (ImageArtifact) {
                        .type = db_column_strdup(st, 0),
                        .size = (uint64_t) db_column_int64(st, 2),
                        .fstype = db_column_strdup(st, 3),
                };
                snprintf(a->sha256, sizeof a->sha256, "%s", db_column_text(st, 1));
                if (!a->type)
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

static int image_read(StoreTx *tx, const ImageTables *t, const char *id, Image *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        Image i = {};
        int r;

        r = store_stmt(tx, t->select_image, &st);
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
                r = read_artifacts(tx, t, &i);
        /* Nothing can be assigned an image that is not visible. */
        if (r >= 0 && t == &visible_tables)
                r = count_hosts(tx, &i);
        if (r < 0) {
                catalog_image_release(&i);
                return r;
        }
        *ret = i;
        return 0;
}

int store_image_get(StoreTx *tx, const char *id, Image *ret) {
        return image_read(tx, &visible_tables, id, ret);
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

static int image_insert(StoreTx *tx, const ImageTables *t, const Image *i, const char *actor) {
        _cleanup_stmt_reset_ DbStmt *st = NULL, *ar = NULL;
        int r;

        assert(!actor == (t == &visible_tables));
        r = store_stmt(tx, t->insert_image, &st);
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
        if (actor)
                db_bind_text(st, 10, actor);
        r = db_step(st);
        if (r < 0)
                return r;
        r = store_stmt(tx, t->insert_artifact, &ar);
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

int store_image_insert(StoreTx *tx, const Image *i) {
        return image_insert(tx, &visible_tables, i, NULL);
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

/* Referenced: by a visible image or by one still replicating. */
#define BLOB_UNREFERENCED                                                                               \
        "sha256 NOT IN (SELECT sha256 FROM artifacts) AND sha256 NOT IN (SELECT manifest FROM images) "  \
        "AND sha256 NOT IN (SELECT signature FROM images) "                                             \
        "AND sha256 NOT IN (SELECT sha256 FROM artifacts_replicating) "                                 \
        "AND sha256 NOT IN (SELECT manifest FROM images_replicating) "                                  \
        "AND sha256 NOT IN (SELECT signature FROM images_replicating)"

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

static int exec_text(StoreTx *tx, const char *sql, const char *a, const char *b) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, sql, &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, a);
        if (b)
                db_bind_text(st, 2, b);
        r = db_step(st);
        return r < 0 ? r : (int) (db_changes(st) > 0);
}

int store_blob_release(StoreTx *tx, const char *hex) {
        return exec_text(tx, "UPDATE blobs SET created = 0 WHERE sha256 = ?", hex, NULL);
}

int store_blob_renew(StoreTx *tx, const char *hex, int64_t now) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE blobs SET created = ? WHERE sha256 = ? AND created = 0", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, now);
        db_bind_text(st, 2, hex);
        r = db_step(st);
        return r < 0 ? r : (int) (db_changes(st) > 0);
}

int store_blob_holder_add(StoreTx *tx, const char *hex, const char *instance, const char *url, int64_t now) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        /* The URL follows the instance's; since stays the first time. */
        r = store_stmt(tx,
                       "INSERT INTO blob_holders (sha256, instance, url, since) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (sha256, instance) DO UPDATE SET url = excluded.url "
                       "WHERE blob_holders.url <> excluded.url",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, hex);
        db_bind_text(st, 2, instance);
        db_bind_text(st, 3, url);
        db_bind_int64(st, 4, now);
        return db_step(st);
}

int store_blob_holder_missing(StoreTx *tx, const char *instance, char ***ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT sha256 FROM blobs WHERE sha256 NOT IN "
                       "(SELECT sha256 FROM blob_holders WHERE instance = ?) ORDER BY sha256",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, instance);
        return column_strv(st, ret);
}

int store_blob_holder_remove(StoreTx *tx, const char *hex, const char *instance) {
        return exec_text(tx, "DELETE FROM blob_holders WHERE sha256 = ? AND instance = ?", hex, instance);
}

int store_blob_holder_urls(StoreTx *tx, const char *hex, const char *except, char ***ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        /* The oldest copies first: they are the likeliest to be complete and
         * on an instance that has been up a while. */
        r = store_stmt(tx, "SELECT url FROM blob_holders WHERE sha256 = ? AND instance <> ? ORDER BY since, instance",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, hex);
        db_bind_text(st, 2, except);
        return column_strv(st, ret);
}

static int query_count(StoreTx *tx, const char *sql, const char *arg, uint64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, sql, &st);
        if (r < 0)
                return r;
        if (arg)
                db_bind_text(st, 1, arg);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret = (uint64_t) db_column_int64(st, 0);
        return 0;
}

/* A copy counts unless its instance is registered and silent for more
 * than 5 s (INSTANCE_STALE_MS, leader.h): a copy on an instance that died
 * is no copy until it comes back. sqlite's one instance ('local') is not
 * in the registry under that name: its copies count. */
#define LIVE_HOLDER(NOW) \
        "h.instance NOT IN (SELECT name FROM instances WHERE heartbeat < " NOW " - 5000)"

int store_blob_copies(StoreTx *tx, const char *hex, uint64_t *ret) {
        return query_count(tx,
                           store_tx_postgresql(tx) ?
                               "SELECT count(*) FROM blob_holders h WHERE h.sha256 = ? AND " LIVE_HOLDER(NOW_MS_PG) :
                               "SELECT count(*) FROM blob_holders h WHERE h.sha256 = ? AND " LIVE_HOLDER(NOW_MS_SQLITE),
                           hex, ret);
}

int store_blob_holder_instances(StoreTx *tx, uint64_t *ret) {
        return query_count(tx, "SELECT count(DISTINCT instance) FROM blob_holders", NULL, ret);
}

#define REPLICATING_BLOBS                                                                                \
        "SELECT sha256 FROM artifacts_replicating WHERE image_id = ?1 "                                  \
        "UNION SELECT manifest FROM images_replicating WHERE id = ?1 "                                   \
        "UNION SELECT signature FROM images_replicating WHERE id = ?1"

int store_replicating_copies(StoreTx *tx, const char *id, uint64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       store_tx_postgresql(tx) ?
                           "SELECT min((SELECT count(*) FROM blob_holders h WHERE h.sha256 = b.sha256 AND "
                           LIVE_HOLDER(NOW_MS_PG) ")) FROM (" REPLICATING_BLOBS ") b" :
                           "SELECT min((SELECT count(*) FROM blob_holders h WHERE h.sha256 = b.sha256 AND "
                           LIVE_HOLDER(NOW_MS_SQLITE) ")) FROM (" REPLICATING_BLOBS ") b",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        /* Every image has blobs: none, no such image. */
        if (db_column_is_null(st, 0))
                return -ENOENT;
        *ret = (uint64_t) db_column_int64(st, 0);
        return 0;
}

int store_replicating_blobs(StoreTx *tx, const char *id, char ***ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, REPLICATING_BLOBS " ORDER BY 1", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        return column_strv(st, ret);
}

int store_replicating_insert(StoreTx *tx, const Image *i, const char *actor) {
        return image_insert(tx, &replicating_tables, i, actor);
}

int store_replicating_get(StoreTx *tx, const char *id, Image *ret) {
        return image_read(tx, &replicating_tables, id, ret);
}

int store_replicating_find(StoreTx *tx, const char *name, const char *version, char ret_id[65]) {
        return find_by_name(tx, "SELECT id FROM images_replicating WHERE name = ? AND version = ?", name, version,
                            ret_id);
}

int store_replicating_find_prefix(StoreTx *tx, const char *prefix, char ret_id[65]) {
        return find_by_prefix(tx,
                              "SELECT id FROM images_replicating WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT 2",
                              prefix, ret_id);
}

int store_replicating_ids(StoreTx *tx, char ***ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM images_replicating ORDER BY created, id", &st);
        if (r < 0)
                return r;
        return column_strv(st, ret);
}

int store_replicating_actor(StoreTx *tx, const char *id, char **ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT actor FROM images_replicating WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        *ret = db_column_strdup(st, 0);
        return *ret ? 0 : -ENOMEM;
}

int store_replicating_delete(StoreTx *tx, const char *id) {
        int r;

        r = exec_text(tx, "DELETE FROM artifacts_replicating WHERE image_id = ?", id, NULL);
        if (r >= 0)
                r = exec_text(tx, "DELETE FROM images_replicating WHERE id = ?", id, NULL);
        return r;
}

int store_replicating_publish(StoreTx *tx, const char *id) {
        int r;

        r = exec_text(tx,
                      "INSERT INTO images (id, name, version, arch, kernel_version, manifest, signature, signed_by, "
                      "created) SELECT id, name, version, arch, kernel_version, manifest, signature, signed_by, created "
                      "FROM images_replicating WHERE id = ?",
                      id, NULL);
        if (r == 0)
                return -ENOENT;
        if (r >= 0)
                r = exec_text(tx,
                              "INSERT INTO artifacts (image_id, type, sha256, size, fstype) "
                              "SELECT image_id, type, sha256, size, fstype FROM artifacts_replicating WHERE image_id = ?",
                              id, NULL);
        if (r >= 0)
                r = store_replicating_delete(tx, id);
        return r < 0 ? r : 0;
}
