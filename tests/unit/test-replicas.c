/* Blobs on several instances over one store, on both drivers: who holds
 * which blob (an upload and a fetched copy each record their instance, only
 * the upload is audited), garbage collection per instance (each forgets its
 * own copy; the catalog row goes with the last), and the publish rule: an
 * image whose blobs have fewer holders than replicas is replicating, found
 * by no lookup of images and kept from garbage collection, and becomes
 * visible whole once they have enough. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "tests.h"

#include "blobs.h"
#include "blobstore.h"
#include "catalog.h"
#include "hash.h"
#include "manifest.h"
#include "pgserver.h"
#include "store-catalog.h"
#include "store-db.h"
#include "util.h"

#define NOW 1800000000
#define DAY (24 * 3600)

static const BlobSite site_a = { .state_dir = "a", .instance = "a", .url = "http://a.test" };
static const BlobSite site_b = { .state_dir = "b", .instance = "b", .url = "http://b.test" };

static StoreTx *begin(StoreDb *db, StoreTxMode kind) {
        StoreTx *tx = NULL;

        assert_int_equal(store_tx_begin(db, kind, &tx), 0);
        return tx;
}

static long long count(StoreDb *db, const char *sql, const char *arg) {
        _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_READ);
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        long long n;

        assert_int_equal(store_stmt(tx, sql, &st), 0);
        if (arg)
                db_bind_text(st, 1, arg);
        assert_int_equal(db_step(st), 1);
        n = db_column_int64(st, 0);
        return n;
}

static void exec_sql(StoreTx *tx, const char *sql) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, sql, &st), 0);
        assert_int_equal(db_step(st), 0);
}

static void make_dirs(void) {
        assert_int_equal(mkdir("a", 0755), 0);
        assert_int_equal(mkdir("a/" BLOBSTORE_TMP_DIR, 0755), 0);
        assert_int_equal(mkdir("b", 0755), 0);
        assert_int_equal(mkdir("b/" BLOBSTORE_TMP_DIR, 0755), 0);
}

/* Writes data as a blob of site, through the writer: an upload (audited as
 * admin) or a copy from a peer (actor NULL). */
static void write_blob(StoreDb *db, const BlobSite *site, const char *data, const char *actor, char ret_hex[65]) {
        BlobWriter *w = NULL;
        bool created;

        sha256_buffer_hex(data, strlen(data), ret_hex);
        assert_int_equal(blob_writer_new(site->state_dir, ret_hex, &w), 0);
        assert_int_equal(blob_writer_write(w, data, strlen(data)), 0);
        assert_int_equal(blob_writer_commit(db, w, site, actor, NOW, &created), 0);
}

static void test_holders(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_strv_free_ char **urls = NULL, **removed = NULL;
        char hex[65];
        uint64_t n = 0;
        (void) state;

        make_dirs();
        write_blob(db, &site_a, "hello", "admin", hex);
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_READ);
                assert_int_equal(store_blob_copies(tx, hex, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(store_blob_holder_urls(tx, hex, "a", &urls), 0);
                assert_null(urls);
                assert_int_equal(store_blob_holder_urls(tx, hex, "b", &urls), 0);
                assert_int_equal(strv_length(urls), 1);
                assert_string_equal(urls[0], "http://a.test");
        }
        /* B keeps a copy fetched from A: a holder, not an upload. */
        write_blob(db, &site_b, "hello", NULL, hex);
        assert_int_equal(count(db, "SELECT count(*) FROM blob_holders WHERE sha256 = ?", hex), 2);
        assert_int_equal(count(db, "SELECT count(*) FROM audit WHERE action = 'blob.upload'", NULL), 1);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs", NULL), 1);
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_READ);
                assert_int_equal(store_blob_holder_instances(tx, &n), 0);
                assert_int_equal(n, 2);
        }
        /* A copy on an instance registered but silent (dead) is no copy; it
         * counts again once the instance beats. */
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);

                exec_sql(tx, "INSERT INTO instances (name, incarnation, url, version, pid, started, heartbeat) "
                             "VALUES ('a', 'x', 'http://a.test', '1', 1, 0, 0), "
                             "('b', 'y', 'http://b.test', '1', 2, 0, 4102444800000)");
                assert_int_equal(store_blob_copies(tx, hex, &n), 0);
                assert_int_equal(n, 1);
                exec_sql(tx, "UPDATE instances SET heartbeat = 4102444800000");
                assert_int_equal(store_blob_copies(tx, hex, &n), 0);
                assert_int_equal(n, 2);
                exec_sql(tx, "DELETE FROM instances");
                assert_int_equal(store_tx_commit(&tx), 0);
        }

        /* A collects it: its own row goes, the blob stays for B, marked. */
        char *candidates[] = { hex, NULL };
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
                assert_int_equal(blobs_collect_garbage(tx, "a", candidates, NOW - DAY, &removed), 0);
                assert_int_equal(store_tx_commit(&tx), 0);
        }
        assert_int_equal(strv_length(removed), 1);
        assert_int_equal(count(db, "SELECT count(*) FROM blob_holders WHERE instance = 'a'", NULL), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs WHERE created = 0", NULL), 1);
        strv_free(removed);
        removed = NULL;

        /* B's periodic collection (no candidates) takes it as an old orphan:
         * the last holder, so the catalog forgets the blob. */
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
                assert_int_equal(blobs_collect_garbage(tx, "b", NULL, NOW - DAY, &removed), 0);
                assert_int_equal(store_tx_commit(&tx), 0);
        }
        assert_int_equal(strv_length(removed), 1);
        assert_int_equal(count(db, "SELECT count(*) FROM blob_holders", NULL), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs", NULL), 0);

        /* Uploaded again after a release: young again, not collected. */
        write_blob(db, &site_a, "again", "admin", hex);
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
                assert_int_equal(store_blob_release(tx, hex), 1);
                assert_int_equal(store_tx_commit(&tx), 0);
        }
        write_blob(db, &site_a, "again", "admin", hex);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs WHERE created = 1800000000", NULL), 1);
}

typedef struct Pushed {
        char manifest[65], signature[65], rootfs[65];
        Manifest *m;
} Pushed;

/* The blobs of image tiny:version written on site a (uploads). The manifest
 * and signature blobs stand in for real ones: the publish rule reads only
 * their digests. */
static void make_image(StoreDb *db, const char *version, Pushed *ret) {
        _cleanup_free_ char *root = strdup_printf("root %s", version), *man = strdup_printf("manifest %s", version),
                            *sig = strdup_printf("signature %s", version);

        write_blob(db, &site_a, root, "admin", ret->rootfs);
        write_blob(db, &site_a, man, "admin", ret->manifest);
        write_blob(db, &site_a, sig, "admin", ret->signature);
        ret->m = manifest_new();
        assert_non_null(ret->m);
        ret->m->name = strdup("tiny");
        ret->m->version = strdup(version);
        ret->m->arch = strdup("x86_64");
        assert_int_equal(manifest_add_artifact(ret->m, "rootfs", ret->rootfs, strlen(root), "erofs"), 0);
}

static int push(StoreDb *db, const BlobSite *site, const Pushed *p, uint64_t replicas, bool *ret_created,
                uint64_t *ret_copies) {
        _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
        _cleanup_strv_free_ char **missing = NULL;
        char existing[65];
        int r;

        r = catalog_image_publish(tx, site, p->m, p->manifest, p->signature, "test.pub", "admin", NOW, replicas,
                                  &missing, existing, ret_created, ret_copies);
        if (r < 0)
                return r;
        return store_tx_commit(&tx);
}

/* B copies every blob of p, as its replicator does. */
static void copy_to_b(StoreDb *db, const Pushed *p) {
        _cleanup_free_ char *root = strdup_printf("root %s", p->m->version),
                            *man = strdup_printf("manifest %s", p->m->version),
                            *sig = strdup_printf("signature %s", p->m->version);
        char hex[65];

        write_blob(db, &site_b, root, NULL, hex);
        write_blob(db, &site_b, man, NULL, hex);
        write_blob(db, &site_b, sig, NULL, hex);
}

static int publish_replicating(StoreDb *db, const char *id, uint64_t replicas, uint64_t *ret_copies) {
        _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
        int r;

        r = catalog_replicating_publish(tx, id, replicas, NOW + 1, ret_copies);
        if (r < 0)
                return r;
        assert_int_equal(store_tx_commit(&tx), 0);
        return r;
}

static void test_publish_rule(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        Pushed a = {}, other = {};
        uint64_t copies = 99;
        bool created = false;
        char id[65];
        (void) state;

        make_dirs();
        make_image(db, "1.0", &a);

        /* One copy, two wanted: replicating, invisible. */
        assert_int_equal(push(db, &site_a, &a, 2, &created, &copies), 0);
        assert_true(created);
        assert_int_equal(copies, 1);
        assert_int_equal(count(db, "SELECT count(*) FROM images", NULL), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM artifacts", NULL), 0);
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_READ);
                _cleanup_strv_free_ char **ids = NULL;
                assert_int_equal(catalog_resolve(tx, "tiny:1.0", id), -ENOENT);
                assert_int_equal(catalog_resolve(tx, "tiny", id), -ENOENT);
                assert_int_equal(catalog_resolve(tx, a.manifest, id), -ENOENT);
                assert_int_equal(store_image_ids(tx, &ids), 0);
                assert_null(ids);
                assert_int_equal(catalog_resolve_replicating(tx, "tiny:1.0", id), 0);
                assert_string_equal(id, a.manifest);
        }
        /* Pushed again: nothing new, still one copy. */
        assert_int_equal(push(db, &site_a, &a, 2, &created, &copies), 0);
        assert_false(created);
        assert_int_equal(copies, 1);
        assert_int_equal(publish_replicating(db, a.manifest, 2, &copies), 0);
        assert_int_equal(copies, 1);
        /* Another image under the same name:version is refused. */
        make_image(db, "1.0x", &other);
        free(other.m->version);
        other.m->version = strdup("1.0");
        assert_int_equal(push(db, &site_a, &other, 2, &created, &copies), -EEXIST);

        /* Its blobs are kept from garbage collection while it replicates. */
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
                _cleanup_strv_free_ char **removed = NULL;
                assert_int_equal(blobs_collect_garbage(tx, "a", NULL, NOW + DAY, &removed), 0);
                assert_false(strv_contains(removed, a.rootfs));
                assert_false(strv_contains(removed, a.manifest));
                store_tx_rollback(&tx);
        }

        /* B holds a copy of all three: visible, whole, in one step. */
        copy_to_b(db, &a);
        assert_int_equal(publish_replicating(db, a.manifest, 2, &copies), 1);
        assert_int_equal(copies, 2);
        assert_int_equal(count(db, "SELECT count(*) FROM images_replicating", NULL), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM artifacts_replicating", NULL), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM artifacts", NULL), 1);
        assert_int_equal(count(db, "SELECT count(*) FROM audit WHERE action = 'image.publish' AND actor = 'admin'", NULL),
                         1);
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_READ);
                Image img = {};
                assert_int_equal(catalog_resolve(tx, "tiny:1.0", id), 0);
                assert_int_equal(catalog_image_get(tx, id, &img), 0);
                assert_int_equal(img.n_artifacts, 1);
                assert_string_equal(img.artifacts[0].sha256, a.rootfs);
                assert_int_equal(img.created, NOW);
                catalog_image_release(&img);
        }
        /* Published already: a second publish finds nothing to do. */
        assert_int_equal(publish_replicating(db, a.manifest, 2, &copies), -ENOENT);
        manifest_free(a.m);
        manifest_free(other.m);
}

static void test_replicating_delete(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_strv_free_ char **removed = NULL;
        Pushed a = {};
        uint64_t copies = 0;
        bool created = false;
        char id[65];
        (void) state;

        make_dirs();
        make_image(db, "2.0", &a);
        /* Enough copies at once: visible from the push. */
        assert_int_equal(push(db, &site_a, &a, 1, &created, &copies), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM images", NULL), 1);
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
                assert_int_equal(catalog_image_delete(tx, a.manifest, "a", "admin", NOW, &removed), 0);
                assert_int_equal(store_tx_commit(&tx), 0);
        }
        manifest_free(a.m);
        strv_free(removed);
        removed = NULL;

        /* A replicating image that will never get its copies goes whole. */
        make_image(db, "3.0", &a);
        assert_int_equal(push(db, &site_a, &a, 3, &created, &copies), 0);
        {
                _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
                assert_int_equal(catalog_resolve_replicating(tx, "tiny:3.0", id), 0);
                assert_int_equal(catalog_image_delete(tx, id, "a", "admin", NOW, &removed), 0);
                assert_int_equal(store_tx_commit(&tx), 0);
        }
        assert_int_equal(strv_length(removed), 3);
        assert_int_equal(count(db, "SELECT count(*) FROM images_replicating", NULL), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs", NULL), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM blob_holders", NULL), 0);
        manifest_free(a.m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_holders),
                test_in_dir(test_publish_rule),
                test_in_dir(test_replicating_delete),
        };
        const struct CMUnitTest pg[] = {
                test_in_dir(test_holders),
                test_in_dir(test_publish_rule),
                test_in_dir(test_replicating_delete),
        };
        int r = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
