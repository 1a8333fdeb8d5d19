/* Blobs over a real store: an upload is recorded and audited once, a file
 * that lost its row gets it back when an image needs it, and garbage
 * collection forgets the unreferenced blobs it is given and the old
 * orphans, not a young orphan that may belong to a push in progress. */
#include <sys/stat.h>

#include "tests.h"

#include "blobs.h"
#include "blobstore.h"
#include "hash.h"
#include "store-sqlite.h"
#include "util.h"

#define NOW 1800000000
#define DAY (24 * 3600)

static const BlobSite site = { .state_dir = ".", .instance = "a", .url = "http://a.test" };

static long long count(StoreDb *db, const char *sql, const char *arg) {
        sqlite3_stmt *st = NULL;
        long long n;

        assert_int_equal(sqlite3_prepare_v2(store_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
        if (arg)
                sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return n;
}

static int upload(StoreDb *db, const char *hex, const char *data, int64_t now, bool *ret_created) {
        BlobWriter *w = NULL;
        int r;

        r = blob_writer_new(".", hex, &w);
        if (r < 0)
                return r;
        r = blob_writer_write(w, data, strlen(data));
        if (r < 0) {
                blob_writer_abort(w);
                return r;
        }
        return blob_writer_commit(db, w, &site, "admin", now, ret_created);
}

static void put_file(const char *data, char ret_hex[65]) {
        BlobstoreWriter *w = NULL;

        assert_int_equal(blobstore_writer_new(".", NULL, &w), 0);
        assert_int_equal(blobstore_writer_write(w, data, strlen(data)), 0);
        assert_true(blobstore_writer_commit(w, ret_hex, NULL) >= 0);
}

static void test_upload(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_free_ char *path = NULL;
        char hex[65], other[65];
        bool created = false;
        (void) state;

        assert_int_equal(mkdir(BLOBSTORE_TMP_DIR, 0755), 0);
        assert_int_equal(store_db_open("state.db", &db), 0);
        sha256_buffer_hex("hello", 5, hex);
        sha256_buffer_hex("other", 5, other);

        assert_int_equal(upload(db, "not-a-digest", "hello", NOW, &created), -EINVAL);
        assert_int_equal(upload(db, other, "hello", NOW, &created), -EBADMSG);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs", NULL), 0);

        assert_int_equal(upload(db, hex, "hello", NOW, &created), 0);
        assert_true(created);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs WHERE sha256 = ? AND size = 5 AND created = 1800000000",
                               hex),
                         1);
        assert_int_equal(count(db,
                               "SELECT count(*) FROM audit WHERE action = 'blob.upload' AND target = ? "
                               "AND time = 1800000000",
                               hex),
                         1);
        path = blob_path(".", hex);
        assert_non_null(path);
        assert_int_equal(access(path, R_OK), 0);
        assert_null(blob_path(".", "../x"));

        /* Again: nothing new, nothing audited. */
        created = true;
        assert_int_equal(upload(db, hex, "hello", NOW + 10, &created), 0);
        assert_false(created);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs WHERE created = 1800000000", NULL), 1);
        assert_int_equal(count(db, "SELECT count(*) FROM audit", NULL), 1);
}

static void test_present(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        char hex[65], absent[65];
        (void) state;

        assert_int_equal(mkdir(BLOBSTORE_TMP_DIR, 0755), 0);
        assert_int_equal(store_db_open("state.db", &db), 0);
        put_file("lost row", hex);
        sha256_buffer_hex("absent", 6, absent);

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(blobs_present(&site, tx, absent, UINT64_MAX, NOW), 0);
        assert_int_equal(blobs_present(&site, tx, hex, 7, NOW), 0);
        assert_int_equal(blobs_present(&site, tx, hex, 8, NOW), 1);
        assert_int_equal(blobs_present(&site, tx, hex, UINT64_MAX, NOW + 5), 1);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs WHERE sha256 = ? AND size = 8 AND created = 1800000000",
                               hex),
                         1);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs", NULL), 1);
}

static void test_collect_garbage(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_strv_free_ char **removed = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        char old[65], given[65], young[65];
        bool created;
        (void) state;

        assert_int_equal(mkdir(BLOBSTORE_TMP_DIR, 0755), 0);
        assert_int_equal(store_db_open("state.db", &db), 0);
        sha256_buffer_hex("old", 3, old);
        sha256_buffer_hex("given", 5, given);
        sha256_buffer_hex("young", 5, young);
        assert_int_equal(upload(db, old, "old", NOW - 2 * DAY, &created), 0);
        assert_int_equal(upload(db, given, "given", NOW, &created), 0);
        assert_int_equal(upload(db, young, "young", NOW, &created), 0);

        char *candidates[] = { given, old, NULL };
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(blobs_collect_garbage(tx, "a", candidates, NOW - DAY, &removed), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(strv_length(removed), 2);
        assert_true(strv_contains(removed, old));
        assert_true(strv_contains(removed, given));
        assert_int_equal(count(db, "SELECT count(*) FROM blobs", NULL), 1);
        assert_int_equal(count(db, "SELECT count(*) FROM blobs WHERE sha256 = ?", young), 1);

        blobs_unlink(".", removed);
        _cleanup_free_ char *p_old = blob_path(".", old), *p_young = blob_path(".", young);
        assert_int_equal(access(p_old, F_OK), -1);
        assert_int_equal(access(p_young, F_OK), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_upload),
                test_in_dir(test_present),
                test_in_dir(test_collect_garbage),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
