/* The image catalog over a real store: publishing (signature checked, every
 * blob present, name:version taken once), lookup by reference, listing,
 * deletion with its blobs, and a database that fails at any step of a
 * publish or a delete, which must refuse and leave nothing half written. */
#include <sys/stat.h>

#include "tests.h"

#include "blobs.h"
#include "blobstore.h"
#include "catalog.h"
#include "hash.h"
#include "manifest.h"
#include "sign.h"
#include "store-sqlite.h"
#include "util.h"

#define NOW 1800000000

static const BlobSite site = { .state_dir = ".", .instance = "a", .url = "http://a.test" };

static void put_blob(const void *data, size_t n, char ret_hex[65]) {
        BlobstoreWriter *w = NULL;

        (void) mkdir(BLOBSTORE_TMP_DIR, 0755);
        assert_int_equal(blobstore_writer_new(".", NULL, &w), 0);
        assert_int_equal(blobstore_writer_write(w, data, n), 0);
        assert_true(blobstore_writer_commit(w, ret_hex, NULL) >= 0);
}

typedef struct Published {
        char manifest[65], signature[65], rootfs[65];
} Published;

/* Writes the blobs of image tiny:version signed with the key of keys/ (made
 * once); the rootfs blob only when upload_rootfs. */
static void make_image(const char *version, const char *rootfs_data, bool upload_rootfs, Published *ret) {
        _cleanup_manifest_free_ Manifest *m = manifest_new();
        _cleanup_free_ char *bytes = NULL;
        uint8_t sig[ED25519_SIG_SIZE];
        size_t n;

        if (access("keys/test.pub", F_OK) < 0) {
                assert_int_equal(mkdir("keys", 0755), 0);
                assert_int_equal(sign_keygen("test.key", "keys/test.pub"), 0);
        }
        if (upload_rootfs)
                put_blob(rootfs_data, strlen(rootfs_data), ret->rootfs);
        else
                sha256_buffer_hex(rootfs_data, strlen(rootfs_data), ret->rootfs);
        assert_non_null(m);
        m->name = strdup("tiny");
        m->version = strdup(version);
        m->arch = strdup("x86_64");
        m->kernel_version = strdup("6.1.0-1-amd64");
        m->build_time = 1700000000;
        m->root_size = 1 << 20;
        m->lock = json_pack("{s:i, s:[]}", "format", 1, "packages");
        assert_int_equal(manifest_add_artifact(m, "rootfs", ret->rootfs, strlen(rootfs_data), "erofs"), 0);
        assert_int_equal(manifest_to_bytes(m, &bytes, &n), 0);
        put_blob(bytes, n, ret->manifest);
        assert_int_equal(sign_data("test.key", bytes, n, sig), 0);
        put_blob(sig, sizeof sig, ret->signature);
}

/* Verifies and publishes p in one transaction, committed on success. */
static int publish(StoreDb *db, const Published *p, char ***ret_missing, bool *ret_created) {
        _cleanup_manifest_free_ Manifest *m = NULL;
        _cleanup_free_ char *key = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        char err[256], existing[65];
        bool at_sig;
        int r;

        r = catalog_image_verify(".", "keys", p->manifest, p->signature, &m, &key, &at_sig, err, sizeof err);
        if (r < 0)
                return r;
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        uint64_t copies = 0;
        r = catalog_image_publish(tx, &site, m, p->manifest, p->signature, key, "admin", NOW, 1, ret_missing,
                                  existing, ret_created, &copies);
        if (r < 0)
                return r;
        return store_tx_commit(&tx);
}

static long long count(StoreDb *db, const char *sql) {
        sqlite3_stmt *st = NULL;
        long long n;

        assert_int_equal(sqlite3_prepare_v2(store_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return n;
}

static void test_publish_lookup_delete(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_strv_free_ char **missing = NULL, **removed = NULL;
        Published a, b;
        bool created;
        char id[65];
        Image *l = NULL;
        size_t n;
        (void) state;

        assert_int_equal(store_db_open("state.db", &db), 0);
        make_image("1.0", "root one", true, &a);
        assert_int_equal(publish(db, &a, &missing, &created), 0);
        assert_true(created);
        /* Again: the same image, nothing new. */
        assert_int_equal(publish(db, &a, &missing, &created), 0);
        assert_false(created);
        make_image("2.0", "root two", true, &b);
        assert_int_equal(publish(db, &b, &missing, &created), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM audit WHERE action = 'image.publish' AND time = 1800000000"),
                         2);

        _cleanup_store_tx_ StoreTx *tx = NULL;
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(catalog_resolve(tx, "tiny:1.0", id), 0);
        assert_string_equal(id, a.manifest);
        assert_int_equal(catalog_resolve(tx, "tiny", id), 0);
        assert_string_equal(id, b.manifest);
        char prefix[13];
        snprintf(prefix, sizeof prefix, "%.12s", a.manifest);
        assert_int_equal(catalog_resolve(tx, prefix, id), 0);
        assert_string_equal(id, a.manifest);
        assert_int_equal(catalog_resolve(tx, "tiny:3.0", id), -ENOENT);
        assert_int_equal(catalog_resolve(tx, "", id), -EINVAL);

        Image img = {};
        assert_int_equal(catalog_image_get(tx, a.manifest, &img), 0);
        assert_string_equal(img.version, "1.0");
        assert_string_equal(img.signed_by, "test.pub");
        assert_int_equal(img.created, NOW);
        assert_int_equal(img.n_artifacts, 1);
        assert_string_equal(img.artifacts[0].sha256, a.rootfs);
        catalog_image_release(&img);
        assert_int_equal(catalog_image_list(tx, &l, &n), 0);
        assert_int_equal(n, 2);
        catalog_image_list_free(l, n);
        store_tx_rollback(&tx);

        /* Deleting 1.0 forgets its three blobs, 2.0 keeps its own. */
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(catalog_image_delete(tx, a.manifest, "a", "admin", NOW, &removed), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(strv_length(removed), 3);
        assert_true(strv_contains(removed, a.rootfs));
        assert_int_equal(count(db, "SELECT count(*) FROM images"), 1);
        assert_int_equal(count(db, "SELECT count(*) FROM audit WHERE action = 'image.delete' AND time = 1800000000"),
                         1);
}

static void test_publish_refused(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_strv_free_ char **missing = NULL;
        _cleanup_manifest_free_ Manifest *m = NULL;
        _cleanup_free_ char *key = NULL;
        Published a, b;
        bool created = false, at_sig;
        char err[256];
        (void) state;

        assert_int_equal(store_db_open("state.db", &db), 0);
        /* A blob of the manifest not uploaded: named, nothing written. */
        make_image("1.0", "never uploaded", false, &a);
        assert_int_equal(publish(db, &a, &missing, &created), -ENOENT);
        assert_int_equal(strv_length(missing), 1);
        assert_string_equal(missing[0], a.rootfs);
        assert_int_equal(count(db, "SELECT count(*) FROM images"), 0);

        /* Signed by a key that is not trusted. */
        make_image("2.0", "root two", true, &b);
        assert_int_equal(mkdir("other", 0755), 0);
        assert_int_equal(sign_keygen("other.key", "other/other.pub"), 0);
        assert_int_equal(catalog_image_verify(".", "other", b.manifest, b.signature, &m, &key, &at_sig, err,
                                              sizeof err),
                         -EKEYREJECTED);
        assert_int_equal(catalog_image_verify(".", "keys", b.signature, b.signature, &m, &key, &at_sig, err,
                                              sizeof err),
                         -EBADMSG);
        char none[65];
        sha256_buffer_hex("nothing", 7, none);
        assert_int_equal(catalog_image_verify(".", "keys", b.manifest, none, &m, &key, &at_sig, err, sizeof err),
                         -ENOENT);
        assert_true(at_sig);
        assert_int_equal(count(db, "SELECT count(*) FROM images"), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM audit"), 0);
}

typedef struct Fault {
        unsigned long calls, fail_at;
} Fault;

static int interrupt_at(void *userdata) {
        Fault *f = userdata;

        return ++f->calls == f->fail_at;
}

/* Fails each step of a publish and of a delete in turn: each is refused and
 * leaves the catalog and the audit log as they were, or goes through whole. */
static void test_fail_closed(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_manifest_free_ Manifest *m = NULL;
        _cleanup_free_ char *key = NULL;
        Published a;
        char err[256], existing[65];
        unsigned long steps = 0;
        bool at_sig;
        (void) state;

        assert_int_equal(store_db_open("state.db", &db), 0);
        make_image("1.0", "root one", true, &a);
        assert_int_equal(catalog_image_verify(".", "keys", a.manifest, a.signature, &m, &key, &at_sig, err, sizeof err),
                         0);
        sqlite3 *s = store_sqlite(db);

        for (unsigned long k = 1;; k++) {
                _cleanup_strv_free_ char **missing = NULL;
                StoreTx *tx = NULL;
                bool created = false;
                Fault f = { .fail_at = k };
                int r;

                assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
                sqlite3_progress_handler(s, 1, interrupt_at, &f);
                uint64_t copies = 0;
                r = catalog_image_publish(tx, &site, m, a.manifest, a.signature, key, "admin", NOW, 1, &missing,
                                          existing, &created, &copies);
                sqlite3_progress_handler(s, 0, NULL, NULL);
                if (r < 0) {
                        store_tx_rollback(&tx);
                        assert_null(missing);
                        assert_int_equal(count(db, "SELECT count(*) FROM images"), 0);
                        assert_int_equal(count(db, "SELECT count(*) FROM artifacts"), 0);
                        assert_int_equal(count(db, "SELECT count(*) FROM audit"), 0);
                        continue;
                }
                /* No fault fired: the whole publish. */
                assert_true(f.calls < k);
                assert_true(created);
                assert_int_equal(store_tx_commit(&tx), 0);
                steps = k - 1;
                break;
        }
        assert_true(steps > 5);
        assert_int_equal(count(db, "SELECT count(*) FROM images"), 1);
        assert_int_equal(count(db, "SELECT count(*) FROM artifacts"), 1);

        for (unsigned long k = 1;; k++) {
                _cleanup_strv_free_ char **removed = NULL;
                StoreTx *tx = NULL;
                Fault f = { .fail_at = k };
                int r;

                assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
                sqlite3_progress_handler(s, 1, interrupt_at, &f);
                r = catalog_image_delete(tx, a.manifest, "a", "admin", NOW, &removed);
                sqlite3_progress_handler(s, 0, NULL, NULL);
                if (r < 0) {
                        store_tx_rollback(&tx);
                        assert_null(removed);
                        assert_int_equal(count(db, "SELECT count(*) FROM images"), 1);
                        assert_int_equal(count(db, "SELECT count(*) FROM artifacts"), 1);
                        assert_int_equal(count(db, "SELECT count(*) FROM blobs"), 3);
                        assert_int_equal(count(db, "SELECT count(*) FROM audit WHERE action = 'image.delete'"), 0);
                        continue;
                }
                assert_true(f.calls < k);
                assert_int_equal(store_tx_commit(&tx), 0);
                assert_int_equal(strv_length(removed), 3);
                break;
        }
        assert_int_equal(count(db, "SELECT count(*) FROM images"), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs"), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_publish_lookup_delete),
                test_in_dir(test_publish_refused),
                test_in_dir(test_fail_closed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
