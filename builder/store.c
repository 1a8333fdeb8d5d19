#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "blobstore.h"
#include "crashpoint.h"
#include "fileio.h"
#include "hash.h"
#include "log.h"
#include "store.h"
#include "util.h"

struct Store {
        char *dir;
        char *tmp_dir;
        int tmp_fd; /* tmp/, held with a shared flock while the store is open */
        sqlite3 *db;
};

static const char schema[] =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS images ("
        "  id TEXT PRIMARY KEY,"
        "  name TEXT NOT NULL,"
        "  version TEXT NOT NULL,"
        "  arch TEXT NOT NULL,"
        "  manifest_sha256 TEXT NOT NULL,"
        "  signature_sha256 TEXT NOT NULL,"
        "  build_key TEXT,"
        "  created INTEGER NOT NULL,"
        "  UNIQUE (name, version));"
        "CREATE TABLE IF NOT EXISTS artifacts ("
        "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
        "  type TEXT NOT NULL,"
        "  sha256 TEXT NOT NULL,"
        "  size INTEGER NOT NULL,"
        "  PRIMARY KEY (image_id, type));"
        "CREATE INDEX IF NOT EXISTS images_build_key ON images(build_key);";

static int sqlite_to_errno(int rc) {
        switch (rc) {
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        default:
                return -EIO;
        }
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        sqlite3_close(s->db);
        closep(&s->tmp_fd);
        free(s->dir);
        free(s->tmp_dir);
        free(s);
        return NULL;
}

const char *store_dir(const Store *s) {
        return s->dir;
}

int store_open(const char *dir, Store **ret) {
        _cleanup_store_free_ Store *s = calloc(1, sizeof(Store));
        _cleanup_free_ char *blobs = NULL, *db = NULL;
        char *err = NULL;
        int r, rc;

        if (!s)
                return -ENOMEM;
        s->tmp_fd = -1;
        s->dir = strdup(dir);
        s->tmp_dir = path_join(dir, BLOBSTORE_TMP_DIR);
        blobs = path_join(dir, BLOBSTORE_BLOBS_DIR);
        db = path_join(dir, "catalog.db");
        if (!s->dir || !s->tmp_dir || !blobs || !db)
                return -ENOMEM;
        r = mkdir_p(blobs, 0755);
        if (r < 0)
                return r;
        r = mkdir_p(s->tmp_dir, 0755);
        if (r < 0)
                return r;
        /* Every process that may write into tmp/ holds it shared; only one
         * that finds no other may empty it (store_clean_tmp()). */
        s->tmp_fd = open(s->tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->tmp_fd < 0)
                return negative_errno();
        if (flock(s->tmp_fd, LOCK_SH) < 0)
                return negative_errno();

        rc = sqlite3_open_v2(db, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return sqlite_to_errno(rc);
        sqlite3_busy_timeout(s->db, 10000);
        rc = sqlite3_exec(s->db, schema, NULL, NULL, &err);
        if (rc != SQLITE_OK) {
                log_debug("store: schema: %s", err ? err : "?");
                sqlite3_free(err);
                return sqlite_to_errno(rc);
        }
        sqlite3_exec(s->db, "PRAGMA foreign_keys=ON;", NULL, NULL, NULL);
        *ret = TAKE_PTR(s);
        return 0;
}

char *store_blob_path(const Store *s, const char *sha256) {
        char *p = NULL;

        return blobstore_path(s->dir, sha256, &p) < 0 ? NULL : p;
}

bool store_has_blob(const Store *s, const char *sha256) {
        return blobstore_has(s->dir, sha256) > 0;
}

int store_add_file(Store *s, const char *src, char ret_sha256[65], uint64_t *ret_size) {
        _cleanup_blobstore_writer_free_ BlobstoreWriter *w = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int in = -1;
        const size_t bufsize = 1 << 20;
        int r;

        in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return negative_errno();
        buf = malloc(bufsize);
        if (!buf)
                return -ENOMEM;
        r = blobstore_writer_new(s->dir, NULL, &w);
        while (r >= 0) {
                ssize_t n = read(in, buf, bufsize);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        break;
                }
                if (n == 0)
                        break;
                r = blobstore_writer_write(w, buf, (size_t) n);
        }
        if (r < 0)
                return r;
        r = blobstore_writer_commit(TAKE_PTR(w), ret_sha256, ret_size);
        return r < 0 ? r : 0;
}

int store_add_data(Store *s, const void *data, size_t n, char ret_sha256[65]) {
        _cleanup_blobstore_writer_free_ BlobstoreWriter *w = NULL;
        char hex[65];
        int r;

        sha256_buffer_hex(data, n, hex);
        /* Named in advance: a blob the store has is not written again. */
        r = blobstore_writer_new(s->dir, hex, &w);
        if (r >= 0)
                r = blobstore_writer_write(w, data, n);
        if (r >= 0)
                r = blobstore_writer_commit(TAKE_PTR(w), NULL, NULL);
        if (r < 0)
                return r;
        memcpy(ret_sha256, hex, 65);
        return 0;
}

static void stmt_finalizep(sqlite3_stmt **st) {
        sqlite3_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(stmt_finalizep)

static int exec(Store *s, const char *sql) {
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : sqlite_to_errno(rc);
}

static int row_to_image(sqlite3_stmt *st, StoreImage *ret) {
        const char *b;
        StoreImage img = {};

        snprintf(img.id, sizeof(img.id), "%s", (const char *) sqlite3_column_text(st, 0));
        img.name = strdup((const char *) sqlite3_column_text(st, 1));
        img.version = strdup((const char *) sqlite3_column_text(st, 2));
        img.arch = strdup((const char *) sqlite3_column_text(st, 3));
        snprintf(img.manifest_sha256, sizeof(img.manifest_sha256), "%s", (const char *) sqlite3_column_text(st, 4));
        snprintf(img.signature_sha256, sizeof(img.signature_sha256), "%s",
                 (const char *) sqlite3_column_text(st, 5));
        b = (const char *) sqlite3_column_text(st, 6);
        img.build_key = b ? strdup(b) : NULL;
        img.created = (uint64_t) sqlite3_column_int64(st, 7);
        if (!img.name || !img.version || !img.arch || (b && !img.build_key)) {
                store_image_release(&img);
                return -ENOMEM;
        }
        *ret = img;
        return 0;
}

#define IMAGE_COLUMNS "id, name, version, arch, manifest_sha256, signature_sha256, build_key, created"

int store_publish(Store *s, const StoreImage *img, char *const *types, char *const *shas, const uint64_t *sizes,
                  size_t n) {
        _cleanup_stmt_ sqlite3_stmt *q = NULL, *ins = NULL, *art = NULL;
        int r, rc;

        /* Every blob the row points to must exist before the row does. */
        if (!store_has_blob(s, img->manifest_sha256) || !store_has_blob(s, img->signature_sha256))
                return -ENOENT;
        for (size_t i = 0; i < n; i++)
                if (!store_has_blob(s, shas[i]))
                        return -ENOENT;

        r = exec(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;

        rc = sqlite3_prepare_v2(s->db, "SELECT id FROM images WHERE name = ?1 AND version = ?2", -1, &q, NULL);
        if (rc != SQLITE_OK)
                goto fail;
        sqlite3_bind_text(q, 1, img->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, img->version, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
                bool same = streq((const char *) sqlite3_column_text(q, 0), img->id);
                exec(s, "ROLLBACK");
                return same ? 0 : -EEXIST;
        }
        if (rc != SQLITE_DONE)
                goto fail;

        rc = sqlite3_prepare_v2(s->db, "INSERT INTO images (" IMAGE_COLUMNS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8)", -1,
                                &ins, NULL);
        if (rc != SQLITE_OK)
                goto fail;
        sqlite3_bind_text(ins, 1, img->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, img->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, img->version, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, img->arch, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, img->manifest_sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, img->signature_sha256, -1, SQLITE_STATIC);
        if (img->build_key)
                sqlite3_bind_text(ins, 7, img->build_key, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(ins, 7);
        sqlite3_bind_int64(ins, 8, img->created ? (sqlite3_int64) img->created : (sqlite3_int64) time(NULL));
        rc = sqlite3_step(ins);
        if (rc != SQLITE_DONE)
                goto fail;

        /* Killed here, the transaction is rolled back when the catalog is
         * next opened. */
        crashpoint("catalog");
        rc = sqlite3_prepare_v2(s->db, "INSERT INTO artifacts (image_id, type, sha256, size) VALUES (?1,?2,?3,?4)",
                                -1, &art, NULL);
        if (rc != SQLITE_OK)
                goto fail;
        for (size_t i = 0; i < n; i++) {
                sqlite3_reset(art);
                sqlite3_bind_text(art, 1, img->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(art, 2, types[i], -1, SQLITE_STATIC);
                sqlite3_bind_text(art, 3, shas[i], -1, SQLITE_STATIC);
                sqlite3_bind_int64(art, 4, (sqlite3_int64) sizes[i]);
                rc = sqlite3_step(art);
                if (rc != SQLITE_DONE)
                        goto fail;
        }
        r = exec(s, "COMMIT");
        if (r < 0) {
                exec(s, "ROLLBACK");
                return r;
        }
        return 0;

fail:
        log_debug("store: %s", sqlite3_errmsg(s->db));
        r = sqlite_to_errno(sqlite3_extended_errcode(s->db) & 0xff);
        exec(s, "ROLLBACK");
        return r;
}

static int find_one(Store *s, const char *sql, const char *a, const char *b, StoreImage *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_to_errno(rc);
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        if (b)
                sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sqlite_to_errno(rc);
        {
                StoreImage img;
                int r = row_to_image(st, &img);
                if (r < 0)
                        return r;
                /* A prefix must name one image only. */
                rc = sqlite3_step(st);
                if (rc != SQLITE_DONE) {
                        store_image_release(&img);
                        return rc == SQLITE_ROW ? -ENOTUNIQ : sqlite_to_errno(rc);
                }
                *ret = img;
        }
        return 0;
}

int store_find_image(Store *s, const char *ref, StoreImage *ret) {
        const char *colon = strchr(ref, ':');
        size_t n = strlen(ref);
        int r;

        if (colon) {
                _cleanup_free_ char *name = strndup(ref, (size_t) (colon - ref));
                if (!name)
                        return -ENOMEM;
                return find_one(s, "SELECT " IMAGE_COLUMNS " FROM images WHERE name = ?1 AND version = ?2", name,
                                colon + 1, ret);
        }
        if (n >= 8 && n <= 64 && strspn(ref, "0123456789abcdef") == n) {
                _cleanup_free_ char *pattern = strdup_printf("%s*", ref);
                if (!pattern)
                        return -ENOMEM;
                r = find_one(s, "SELECT " IMAGE_COLUMNS " FROM images WHERE id GLOB ?1", pattern, NULL, ret);
                if (r != -ENOENT)
                        return r;
        }
        return find_one(s,
                        "SELECT " IMAGE_COLUMNS " FROM images WHERE name = ?1 ORDER BY created DESC, rowid DESC LIMIT 1",
                        ref, NULL, ret);
}

int store_find_by_build_key(Store *s, const char *build_key, StoreImage *ret) {
        return find_one(s, "SELECT " IMAGE_COLUMNS " FROM images WHERE build_key = ?1 LIMIT 1", build_key, NULL, ret);
}

void store_image_release(StoreImage *img) {
        free(img->name);
        free(img->version);
        free(img->arch);
        free(img->build_key);
        img->name = img->version = img->arch = img->build_key = NULL;
}

int store_list_images(Store *s, int (*cb)(const StoreImage *img, void *userdata), void *userdata) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, "SELECT " IMAGE_COLUMNS " FROM images ORDER BY created DESC, rowid DESC",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_to_errno(rc);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                StoreImage img;
                int r = row_to_image(st, &img);
                if (r < 0)
                        return r;
                r = cb(&img, userdata);
                store_image_release(&img);
                if (r < 0)
                        return r;
        }
        return rc == SQLITE_DONE ? 0 : sqlite_to_errno(rc);
}

/* Removes every entry of tmp/. Returns how many. */
static int tmp_remove_all(Store *s) {
        _cleanup_closedir_ DIR *d = NULL;
        struct dirent *de;
        int fd, n = 0, r;

        fd = openat(s->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                r = negative_errno();
                close(fd);
                return r;
        }
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                p = path_join(s->tmp_dir, de->d_name);
                if (!p)
                        return -ENOMEM;
                r = rm_rf(p);
                if (r < 0)
                        return r;
                n++;
        }
        return n;
}

int store_clean_tmp(Store *s) {
        int r;

        if (flock(s->tmp_fd, LOCK_EX | LOCK_NB) < 0)
                r = errno == EWOULDBLOCK ? 0 : negative_errno();
        else
                r = tmp_remove_all(s);
        /* Converting the shared lock dropped it first, whether or not the
         * conversion worked: take it back. */
        if (flock(s->tmp_fd, LOCK_SH) < 0 && r >= 0)
                r = negative_errno();
        return r;
}
